/**
 * A stand-in for the dispatcher's side of the connection protocol (docs/connection-protocol.md),
 * on 127.0.0.1: `GET /v1/connect-info`, `GET /v1/subscriptions/{id}`, and the WebSocket at
 * `/v1/connect`, which says hello and records every frame a client sends. A test sends
 * deliveries down a connection and waits for the answers, to drive a client of the protocol.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type WebSocket, WebSocketServer } from 'ws';

export const API_KEY = 'dk_test_connections';

export interface ClientFrame {
  type: string;
  [field: string]: unknown;
}

export interface FakeConnection {
  readonly socket: WebSocket;
  /** The upgrade request's query (`subscription`). */
  readonly query: URLSearchParams;
  readonly authorization: string | undefined;
  /** Every frame the client sent, in order. */
  readonly frames: ClientFrame[];
  /** The close code the client sent, once closed. */
  closeCode: number | undefined;
  send(frame: Record<string, unknown>): void;
}

export interface ConnectServerOptions {
  heartbeatSeconds?: number;
  ackTimeoutSeconds?: number;
  /** Answer pings with pongs. @default true */
  pong?: boolean;
  /** The connection subscriptions there are. @default ['sub_conn'] */
  subscriptions?: string[];
}

export interface ConnectServer {
  /** The API's address, as a client is given it. */
  readonly url: string;
  /** Every connection opened, in order. */
  readonly connections: FakeConnection[];
  /** Requests made over HTTP, as `METHOD path`. */
  readonly requests: string[];
  options: Required<ConnectServerOptions>;
  close(): Promise<void>;
}

function delivery(n: number, body = `{"n":${n}}`, headers: Record<string, string> = {}) {
  return {
    type: 'delivery',
    deliveryId: `dlv_${n}`,
    attempt: 1,
    subscriptionId: 'sub_conn',
    headers: {
      'content-type': 'application/json',
      'webhook-id': `dlv_${n}`,
      'webhook-timestamp': '1700000000',
      'webhook-signature': 'v1,unchecked',
      ...headers,
    },
    body,
  };
}

export { delivery as deliveryFrame };

export async function startConnectServer(initial: ConnectServerOptions = {}): Promise<ConnectServer> {
  const options: Required<ConnectServerOptions> = {
    heartbeatSeconds: 30,
    ackTimeoutSeconds: 10,
    pong: true,
    subscriptions: ['sub_conn'],
    ...initial,
  };
  const connections: FakeConnection[] = [];
  const requests: string[] = [];
  const authorized = (request: IncomingMessage) => request.headers.authorization === `Bearer ${API_KEY}`;
  const json = (status: number, body: unknown) => ({ status, text: JSON.stringify(body) });

  const server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    requests.push(`${request.method} ${path}`);
    const { port } = server.address() as AddressInfo;
    let answer: { status: number; text: string };
    const subscription = /^\/v1\/subscriptions\/([^/]+)$/.exec(path)?.[1];
    if (!authorized(request)) answer = json(401, { title: 'Unauthorized', detail: 'a wrong API key' });
    else if (path === '/v1/connect-info')
      answer = json(200, {
        url: `ws://127.0.0.1:${port}/v1/connect`,
        heartbeatSeconds: options.heartbeatSeconds,
        ackTimeoutSeconds: options.ackTimeoutSeconds,
      });
    else if (subscription !== undefined && options.subscriptions.includes(subscription))
      answer = json(200, { id: subscription, transport: 'connection', status: 'active' });
    else if (subscription === 'sub_url') answer = json(200, { id: subscription, transport: 'url' });
    else answer = json(404, { title: 'Not Found', detail: `nothing at ${path}` });
    response.writeHead(answer.status, { 'content-type': 'application/json' }).end(answer.text);
  });

  const sockets = new WebSocketServer({ noServer: true });
  let next = 0;
  server.on('upgrade', (request, socket, head) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const refuse = (status: number) => {
      socket.end(`HTTP/1.1 ${status} Refused\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    };
    if (url.pathname !== '/v1/connect') return refuse(404);
    if (!authorized(request)) return refuse(401);
    const only = url.searchParams.get('subscription');
    if (only !== null && !options.subscriptions.includes(only)) return refuse(404);
    sockets.handleUpgrade(request, socket, head, (ws) => {
      const connection: FakeConnection = {
        socket: ws,
        query: url.searchParams,
        authorization: request.headers.authorization,
        frames: [],
        closeCode: undefined,
        send: (frame) => ws.send(JSON.stringify(frame)),
      };
      connections.push(connection);
      ws.on('message', (data, isBinary) => {
        if (isBinary) return;
        const frame = JSON.parse(data.toString()) as ClientFrame;
        connection.frames.push(frame);
        if (frame.type === 'ping' && options.pong) connection.send({ type: 'pong', id: frame.id });
      });
      ws.on('close', (code) => {
        connection.closeCode = code;
      });
      connection.send({
        type: 'hello',
        connectionId: `conn_${++next}`,
        subscriptions: only === null ? options.subscriptions : [only],
        heartbeatSeconds: options.heartbeatSeconds,
        ackTimeoutSeconds: options.ackTimeoutSeconds,
      });
    });
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    connections,
    requests,
    options,
    close: async () => {
      for (const client of sockets.clients) client.terminate();
      sockets.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The answers (`ack`/`nack`) a connection got, by delivery id. */
export function answers(connection: FakeConnection | undefined): Map<string, ClientFrame> {
  const found = new Map<string, ClientFrame>();
  for (const frame of connection?.frames ?? [])
    if ((frame.type === 'ack' || frame.type === 'nack') && typeof frame.deliveryId === 'string')
      found.set(frame.deliveryId, frame);
  return found;
}
