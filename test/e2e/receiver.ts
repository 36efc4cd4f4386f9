/**
 * A real HTTP receiver on 127.0.0.1 for end-to-end tests: records every callback, verifies it
 * with the `standardwebhooks` library (what a partner would use), and answers as the test says.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

export interface Callback {
  headers: Record<string, string>;
  body: string;
  /** Which of the receiver's secrets verified it, by index; empty when none did. */
  verifiedBy: number[];
}

export type Responder = (callback: Callback, res: ServerResponse, req: IncomingMessage) => void;

export interface TestReceiver {
  url: string;
  callbacks: Callback[];
  /** Secrets to verify with; set after the subscription returns its secret. */
  secrets: string[];
  respond: Responder;
  close(): Promise<void>;
}

export const answer =
  (status: number): Responder =>
  (_callback, res) => {
    res.writeHead(status).end();
  };

export async function startReceiver(respond: Responder = answer(204)): Promise<TestReceiver> {
  const open = new Set<ServerResponse>();
  const receiver: TestReceiver = {
    url: '',
    callbacks: [],
    secrets: [],
    respond,
    close: async () => {
      for (const res of open) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = createServer(async (req, res) => {
    open.add(res);
    res.on('close', () => open.delete(res));
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers))
      if (typeof value === 'string') headers[name] = value;
    const verifiedBy = receiver.secrets.flatMap((secret, i) => {
      try {
        new Webhook(secret).verify(body, headers);
        return [i];
      } catch {
        return [];
      }
    });
    const callback = { headers, body, verifiedBy };
    receiver.callbacks.push(callback);
    receiver.respond(callback, res, req);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks`;
  return receiver;
}
