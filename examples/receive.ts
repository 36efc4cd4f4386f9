/**
 * Receive callbacks and verify them: a plain Node HTTP server, the subscription's secret, and
 * the client's verifyCallback (Standard Webhooks). Answer 2xx quickly, do the work after;
 * anything else is retried, with backoff. Deduplicate on the `webhook-id` header: a retry, or a
 * delivery you already had, has the same one.
 * Run: WEBHOOK_SECRET=whsec_… PORT=4000 node examples/receive.ts
 */
import { createServer } from 'node:http';
import { verifyCallback, WebhookVerificationError } from '@webhook-dispatcher/client';

const secret = process.env.WEBHOOK_SECRET ?? '';
const seen = new Set<string>(); // use your database in production

const server = createServer(async (req, res) => {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const body = Buffer.concat(chunks).toString('utf8'); // the raw body, as signed
  try {
    const event = verifyCallback(secret, body, req.headers);
    const id = String(req.headers['webhook-id']);
    res.writeHead(204).end();
    if (seen.has(id)) return;
    seen.add(id);
    console.log('verified', id, event.id, event.type, JSON.stringify(event.payload));
  } catch (error) {
    if (!(error instanceof WebhookVerificationError)) throw error;
    res.writeHead(401).end();
    console.log('rejected', error.message);
  }
});
server.listen(Number(process.env.PORT ?? 4000), '127.0.0.1', () => {
  const address = server.address();
  console.log('listening', typeof address === 'object' && address !== null ? address.port : address);
});
