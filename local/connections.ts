/**
 * Connections partners open to receive their connection subscriptions' deliveries
 * (docs/connection-protocol.md), served by the local runtime on its own HTTP server: a
 * WebSocket at /v1/connect, authorised by the partner's API key before the upgrade. The
 * dispatcher pushes each try down one open connection of its subscription and waits for the
 * agent's ack or nack (ConnectionPusher); opening a connection releases the tries waiting for
 * one.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';
import * as z from 'zod';
import { bearerToken } from '../functions/authorizer/handler.ts';
import { SubscriptionNotFoundError } from '../functions/core/errors.ts';
import { SubscriptionId } from '../functions/core/model.ts';
import { authenticateApiKey } from '../functions/core/partners.ts';
import type {
  CallbackResult,
  Clock,
  ConnectionPusher,
  PartnerStore,
  PushRequest,
  SubscriptionStore,
} from '../functions/core/ports.ts';
import { connectionSubscriptionOf } from '../functions/core/subscriptions.ts';

/** Where agents open their connections. */
export const CONNECT_PATH = '/v1/connect';
/** How often an agent pings; a connection silent for three of these is closed. */
export const HEARTBEAT_SECONDS = 30;
/** The largest frame an agent may send (an ack, a nack, a ping): larger ones close the connection. */
const MAX_CLIENT_FRAME_BYTES = 4096;
/** Connections one partner may have open at once; one more is refused (429). */
export const MAX_CONNECTIONS_PER_PARTNER = 20;
/** Characters of a nack's `error` kept in the attempt log. */
const MAX_NACK_ERROR_CHARS = 1000;

const ClientFrame = z.discriminatedUnion('type', [
  z.looseObject({
    type: z.literal('ack'),
    deliveryId: z.string(),
    attempt: z.number().int().positive(),
    status: z.number().int().min(200).max(299),
  }),
  z.looseObject({
    type: z.literal('nack'),
    deliveryId: z.string(),
    attempt: z.number().int().positive(),
    status: z.number().int().min(100).max(599).optional(),
    error: z.string().optional(),
  }),
  z.looseObject({ type: z.literal('ping'), id: z.union([z.string().max(100), z.number()]).optional() }),
]);

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

export class ConnectionHub implements ConnectionPusher {
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
      connection.socket.send(
        JSON.stringify({
          type: 'delivery',
          deliveryId: request.deliveryId,
          attempt: request.attempt,
          subscriptionId: request.subscriptionId,
          headers: request.headers,
          body: request.body,
        }),
        (error) => {
          if (error === undefined || error === null) return;
          this.#settle(connection, key, {
            error: 'connection',
            errorMessage: `the connection failed: ${error.message}`,
            durationMs: Date.now() - started,
          });
        },
      );
    });
  }

  /**
   * Closes the connections opened with a key that has been revoked (4401), at once: a revoked
   * key receives nothing more. Their unanswered tries fail and are retried.
   */
  closeKey(keyId: string): void {
    for (const connection of this.#connections) {
      if (connection.keyId === keyId) connection.socket.close(4401, 'the API key was revoked');
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
    const token = bearerToken(req.headers.authorization);
    let partnerId: string;
    let keyId: string;
    try {
      if (token === undefined) throw new Error('no key');
      ({ partnerId, keyId } = await authenticateApiKey(this.#deps, token));
    } catch {
      return refuse(socket, 401, 'a valid API key is required: Authorization: Bearer <apiKey>');
    }
    const open = [...this.#connections].filter((c) => c.partnerId === partnerId).length;
    if (open >= MAX_CONNECTIONS_PER_PARTNER) {
      return refuse(
        socket,
        429,
        `a partner may have at most ${MAX_CONNECTIONS_PER_PARTNER} connections open`,
      );
    }
    const wanted = url.searchParams.get('subscription') ?? undefined;
    let subscriptions: string[];
    if (wanted !== undefined) {
      const sub = SubscriptionId.safeParse(wanted).success
        ? await connectionSubscriptionOf(this.#deps, partnerId, wanted).catch((error: unknown) => {
            if (error instanceof SubscriptionNotFoundError) return undefined;
            throw error;
          })
        : undefined;
      if (sub === undefined) {
        return refuse(socket, 404, `subscription ${wanted} is not one of your connection subscriptions`);
      }
      subscriptions = [sub.id];
    } else {
      subscriptions = await this.#connectionSubscriptions(partnerId);
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) =>
      this.#open(ws, { partnerId, keyId }, wanted, subscriptions),
    );
  }

  #open(
    socket: WebSocket,
    { partnerId, keyId }: { partnerId: string; keyId: string },
    subscriptionId: string | undefined,
    subscriptions: string[],
  ): void {
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
    socket.send(
      JSON.stringify({
        type: 'hello',
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
    let frame: z.infer<typeof ClientFrame>;
    try {
      if (isBinary) throw new Error('binary');
      frame = ClientFrame.parse(JSON.parse(String(data)));
    } catch {
      // Not a frame of the protocol (a newer client's, say): ignored.
      return;
    }
    if (frame.type === 'ping') {
      connection.socket.send(
        JSON.stringify({ type: 'pong', ...(frame.id === undefined ? {} : { id: frame.id }) }),
      );
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

  /** The partner's connection subscriptions' ids, every page. */
  async #connectionSubscriptions(partnerId: string): Promise<string[]> {
    const ids: string[] = [];
    let after: string | undefined;
    do {
      const page = await this.#deps.subscriptions.list(partnerId, {
        limit: 100,
        ...(after ? { after } : {}),
      });
      ids.push(...page.items.filter((s) => s.transport === 'connection').map((s) => s.id));
      after = page.next ?? undefined;
    } while (after !== undefined);
    return ids;
  }
}

/**
 * What an ack or a nack says of a try, as an HTTP try's result: an ack is its 2xx; a nack is
 * always a failure, with the receiver's status when it is not a 2xx, else as a refusal.
 */
function answerOf(
  frame: Extract<z.infer<typeof ClientFrame>, { type: 'ack' | 'nack' }>,
  durationMs: number,
): CallbackResult {
  if (frame.type === 'ack') return { statusCode: frame.status, durationMs };
  const error = frame.error?.slice(0, MAX_NACK_ERROR_CHARS);
  if (frame.status !== undefined && (frame.status < 200 || frame.status > 299)) {
    return {
      statusCode: frame.status,
      durationMs,
      ...(error === undefined ? {} : { responseExcerpt: error }),
    };
  }
  const said = frame.status === undefined ? '' : ` (a nack with status ${frame.status})`;
  return {
    error: 'connection',
    errorMessage: `${error ?? 'the agent could not deliver it'}${said}`,
    durationMs,
  };
}

const REASONS: Readonly<Record<number, string>> = {
  401: 'Unauthorized',
  404: 'Not Found',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
};

/**
 * The partner store, closing the connections of each key it removes: a revoked key stops
 * receiving at once, as it stops calling the API.
 */
export function closingRevokedConnections(
  partners: PartnerStore,
  connections: Pick<ConnectionHub, 'closeKey'>,
): PartnerStore {
  return {
    create: (partner, firstKey) => partners.create(partner, firstKey),
    get: (partnerId) => partners.get(partnerId),
    findApiKey: (hash) => partners.findApiKey(hash),
    addApiKey: (key, options) => partners.addApiKey(key, options),
    listApiKeys: (partnerId) => partners.listApiKeys(partnerId),
    async removeApiKey(partnerId, keyId, options) {
      const result = await partners.removeApiKey(partnerId, keyId, options);
      if (result === 'done') connections.closeKey(keyId);
      return result;
    },
    touchApiKey: (key, at, staleBefore) => partners.touchApiKey(key, at, staleBefore),
  };
}

/** Answers an upgrade with an HTTP error instead, and closes the socket. */
function refuse(socket: Duplex, status: number, detail: string): void {
  const reason = REASONS[status] ?? 'Error';
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
