/**
 * Connections partners open to receive their connection subscriptions' deliveries
 * (docs/connection-protocol.md), served by the local runtime on its own HTTP server: a
 * WebSocket at /v1/connect, authorised by the partner's API key before the upgrade. The
 * dispatcher pushes each try down one open connection of its subscription and waits for the
 * agent's ack or nack (ConnectionPusher); opening a connection releases the tries waiting for
 * one. The frames, who may connect and what an answer means are the protocol's, shared with the
 * AWS WebSocket API (functions/core/connection-protocol.ts); this file is the `ws` transport.
 */
import { randomUUID } from 'node:crypto';
import { type IncomingMessage, type Server, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';
import { bearerToken } from '../functions/authorizer/handler.ts';
import {
  type Admitted,
  admitConnection,
  answerOf,
  deliveryFrames,
  HEARTBEAT_SECONDS,
  helloFrame,
  type KeyConnectionCloser,
  MAX_CLIENT_FRAME_BYTES,
  parseClientFrame,
  pongFrame,
} from '../functions/core/connection-protocol.ts';
import type {
  CallbackResult,
  Clock,
  ConnectionPusher,
  PartnerStore,
  PushRequest,
  SubscriptionStore,
} from '../functions/core/ports.ts';

/** Where agents open their connections. */
export const CONNECT_PATH = '/v1/connect';

interface Pending {
  resolve(result: CallbackResult): void;
  timer: NodeJS.Timeout;
  started: number;
}

interface Connection {
  id: string;
  partnerId: string;
  /** The API key it was opened with: revoking the key closes it. */
  keyId: string;
  /** Only this subscription's deliveries; absent: every connection subscription of the partner. */
  subscriptionId: string | undefined;
  socket: WebSocket;
  lastSeen: number;
  /** Tries sent and not answered, by `<deliveryId>#<attempt>`. */
  pending: Map<string, Pending>;
}

export interface ConnectionHubDeps {
  partners: PartnerStore;
  subscriptions: SubscriptionStore;
  clock: Clock;
  /** Seconds an agent has to answer a delivery: the delivery timeout. */
  ackTimeoutSeconds: number;
  /** Makes the subscription's tries that wait for a connection due now. */
  release(subscriptionId: string): Promise<void>;
  log: (message: string, error?: unknown) => void;
  /** @default HEARTBEAT_SECONDS */
  heartbeatSeconds?: number;
}

export class ConnectionHub implements ConnectionPusher, KeyConnectionCloser {
  readonly heartbeatSeconds: number;
  readonly ackTimeoutSeconds: number;
  readonly #deps: ConnectionHubDeps;
  readonly #wss = new WebSocketServer({ noServer: true, maxPayload: MAX_CLIENT_FRAME_BYTES });
  readonly #connections = new Set<Connection>();
  readonly #sweep: NodeJS.Timeout;

  constructor(deps: ConnectionHubDeps) {
    this.#deps = deps;
    this.heartbeatSeconds = deps.heartbeatSeconds ?? HEARTBEAT_SECONDS;
    this.ackTimeoutSeconds = deps.ackTimeoutSeconds;
    // A connection that has sent nothing for three heartbeats is gone.
    this.#sweep = setInterval(() => {
      const silentSince = Date.now() - 3 * this.heartbeatSeconds * 1000;
      for (const connection of this.#connections) {
        if (connection.lastSeen < silentSince) connection.socket.terminate();
      }
    }, this.heartbeatSeconds * 1000).unref();
  }

  /** Serves upgrades to CONNECT_PATH on `server`; other upgrades are refused. */
  attach(server: Server): void {
    server.on('upgrade', (req, socket, head) => {
      this.#upgrade(req, socket, head).catch((error: unknown) => {
        this.#deps.log('connection: upgrade failed', error);
        refuse(socket, 500, 'the connection could not be opened');
      });
    });
  }

  async isOpen(partnerId: string, subscriptionId: string): Promise<boolean> {
    return this.#serving(partnerId, subscriptionId).length > 0;
  }

  /** The open connections that take the subscription's deliveries. */
  #serving(partnerId: string, subscriptionId: string): Connection[] {
    return [...this.#connections].filter(
      (c) =>
        c.partnerId === partnerId &&
        (c.subscriptionId === undefined || c.subscriptionId === subscriptionId) &&
        c.socket.readyState === c.socket.OPEN,
    );
  }

  async push(request: PushRequest): Promise<CallbackResult | undefined> {
    const candidates = this.#serving(request.partnerId, request.subscriptionId);
    if (candidates.length === 0) return undefined;
    // The least busy one: connections of a subscription share its deliveries.
    const connection = candidates.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    const key = `${request.deliveryId}#${request.attempt}`;
    const started = Date.now();
    return new Promise<CallbackResult>((resolve) => {
      const timer = setTimeout(() => {
        connection.pending.delete(key);
        resolve({
          error: 'timeout',
          errorMessage: `no ack or nack within ${request.timeoutMs} ms`,
          durationMs: Date.now() - started,
        });
      }, request.timeoutMs);
      connection.pending.set(key, { resolve, timer, started });
      // One frame, or a head and its parts (a large body): sent in order, and a failure to send
      // any of them fails the try.
      const failed = (error: Error | undefined | null) => {
        if (error === undefined || error === null) return;
        this.#settle(connection, key, {
          error: 'connection',
          errorMessage: `the connection failed: ${error.message}`,
          durationMs: Date.now() - started,
        });
      };
      for (const frame of deliveryFrames(request)) {
        if (!connection.pending.has(key)) break;
        connection.socket.send(frame, failed);
      }
    });
  }

  /**
   * Closes the connections opened with a key that has been revoked (4401), at once: a revoked
   * key receives nothing more. Their unanswered tries fail and are retried.
   */
  closeKey(partnerId: string, keyId: string): void {
    for (const connection of this.#connections) {
      if (connection.partnerId === partnerId && connection.keyId === keyId)
        connection.socket.close(4401, 'the API key was revoked');
    }
  }

  /** How many connections are open, for tests and logs. */
  get size(): number {
    return this.#connections.size;
  }

  /** Closes every connection (going away, 1001): their unanswered tries fail and are retried. */
  close(): void {
    clearInterval(this.#sweep);
    for (const connection of this.#connections) connection.socket.close(1001, 'the dispatcher is stopping');
    this.#wss.close();
  }

  async #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://local');
    if (url.pathname !== CONNECT_PATH)
      return refuse(socket, 404, `no WebSocket here: connect to ${CONNECT_PATH}`);
    const admitted = await admitConnection(this.#deps, {
      apiKey: bearerToken(req.headers.authorization),
      subscription: url.searchParams.get('subscription') ?? undefined,
      openConnections: async (partnerId) =>
        [...this.#connections].filter((c) => c.partnerId === partnerId).length,
    });
    if ('status' in admitted) return refuse(socket, admitted.status, admitted.detail);
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#open(ws, admitted));
  }

  #open(socket: WebSocket, { partnerId, keyId, subscriptionId, subscriptions }: Admitted): void {
    const connection: Connection = {
      id: `con_${randomUUID()}`,
      partnerId,
      keyId,
      subscriptionId,
      socket,
      lastSeen: Date.now(),
      pending: new Map(),
    };
    this.#connections.add(connection);
    socket.on('message', (data, isBinary) => this.#receive(connection, data, isBinary));
    socket.on('close', () => {
      this.#connections.delete(connection);
      for (const key of [...connection.pending.keys()]) {
        this.#settle(connection, key, {
          error: 'connection',
          errorMessage: 'the connection closed before an answer',
          durationMs: Date.now() - (connection.pending.get(key)?.started ?? Date.now()),
        });
      }
    });
    socket.on('error', (error) => this.#deps.log(`connection ${connection.id}: ${error.message}`));
    // Hello at once: this server can send before the client's first frame (API Gateway cannot,
    // and answers that frame with it; clients take either). Deliveries only after it.
    socket.send(
      helloFrame({
        connectionId: connection.id,
        subscriptions,
        heartbeatSeconds: this.heartbeatSeconds,
        ackTimeoutSeconds: this.ackTimeoutSeconds,
      }),
    );
    // What waited for a connection goes now.
    for (const id of subscriptions) {
      this.#deps
        .release(id)
        .catch((error: unknown) => this.#deps.log(`connection: release of ${id} failed`, error));
    }
  }

  #receive(connection: Connection, data: RawData, isBinary: boolean): void {
    connection.lastSeen = Date.now();
    // Not a frame of the protocol (binary, too large, a newer client's): ignored.
    const frame = isBinary ? undefined : parseClientFrame(String(data));
    if (frame === undefined) return;
    if (frame.type === 'ping') {
      connection.socket.send(pongFrame(frame.id));
      return;
    }
    const key = `${frame.deliveryId}#${frame.attempt}`;
    const pending = connection.pending.get(key);
    if (pending === undefined) return; // late, or not this connection's: ignored
    const durationMs = Date.now() - pending.started;
    this.#settle(connection, key, answerOf(frame, durationMs));
  }

  #settle(connection: Connection, key: string, result: CallbackResult): void {
    const pending = connection.pending.get(key);
    if (pending === undefined) return;
    connection.pending.delete(key);
    clearTimeout(pending.timer);
    pending.resolve(result);
  }
}

/** Answers an upgrade with an HTTP error instead, and closes the socket. */
function refuse(socket: Duplex, status: number, detail: string): void {
  const reason = STATUS_CODES[status] ?? 'Error';
  const body = JSON.stringify({ type: 'about:blank', title: reason, status, detail });
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\n` +
      'content-type: application/problem+json\r\n' +
      `content-length: ${Buffer.byteLength(body)}\r\n` +
      `${status === 401 ? 'www-authenticate: Bearer\r\n' : ''}` +
      'connection: close\r\n\r\n' +
      body,
  );
}
