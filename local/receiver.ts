/**
 * A callback receiver for trying the dispatcher out: verifies each callback's Standard
 * Webhooks signature with the subscription's secret, prints it, and answers 204 (401 when the
 * signature does not verify). What a partner's endpoint does, in a few lines.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { verifySignature } from '../functions/core/signing.ts';

export interface ReceivedCallback {
  webhookId: string;
  verified: boolean;
  body: string;
}

export interface ReceiverOptions {
  port: number;
  host?: string;
  secret: string;
  onCallback?: (callback: ReceivedCallback) => void;
}

export async function startReceiver(options: ReceiverOptions): Promise<{ url: string; server: Server }> {
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const headers: Record<string, string | undefined> = {};
    for (const [name, value] of Object.entries(req.headers))
      headers[name] = Array.isArray(value) ? value[0] : value;
    const verified = verifySignature({ headers, body, secret: options.secret });
    options.onCallback?.({ webhookId: headers['webhook-id'] ?? '', verified, body });
    res.writeHead(verified ? 204 : 401).end();
  });
  await new Promise<void>((resolve) => server.listen(options.port, options.host ?? '127.0.0.1', resolve));
  const address = server.address() as AddressInfo;
  return { url: `http://${options.host ?? '127.0.0.1'}:${address.port}`, server };
}
