/**
 * Receiving deliveries over a connection (docs/connection-protocol.md): a WebSocket the client
 * opens to the dispatcher, which sends each delivery of the partner's connection subscriptions
 * down it. `listen` keeps one connection open (heartbeats, reconnects with backoff), hands each
 * delivery to a handler and answers it with an `ack` or a `nack`; `forwardTo` is a ready-made
 * handler that POSTs each delivery to a local receiver, exactly as a URL callback would.
 */
import type { ConnectInfo } from './openapi-types.ts';

/** The server's first frame on a connection. */
export interface ConnectionHello {
  connectionId: string;
  /** The connection subscriptions whose deliveries come down this connection. */
  subscriptions: string[];
  heartbeatSeconds: number;
  ackTimeoutSeconds: number;
}

/** One try of a delivery: exactly what a callback to a URL would POST. */
export interface ConnectionDelivery {
  deliveryId: string;
  attempt: number;
  subscriptionId: string;
  /** The callback's headers: `content-type`, `webhook-id`, `webhook-timestamp`, `webhook-signature`. */
  headers: Record<string, string>;
  /** The exact body the signature covers: verify it as it is, pass it on byte for byte. */
  body: string;
  /** Aborted when the answer is due (`ackTimeoutSeconds` after the delivery came): later, it is ignored. */
  signal: AbortSignal;
}

/**
 * A handler's answer: the HTTP status the delivery got (2xx acknowledges it, anything else is a
 * failed try, retried on the subscription's schedule; 410 disables the subscription), or a
 * failure without a status (`{ error }`: the receiver could not be reached).
 */
export type DeliveryResult = number | { status?: number; error?: string };

/** Handles one delivery. A handler that throws answers it as a failed try with status 500. */
export type DeliveryHandler = (delivery: ConnectionDelivery) => DeliveryResult | Promise<DeliveryResult>;

/** A WebSocket as `listen` uses it: the WHATWG interface, with headers on the opening request. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
  addEventListener(type: 'close', listener: (event: { code: number; reason: string }) => void): void;
  addEventListener(type: 'open' | 'error', listener: (event: unknown) => void): void;
}

/** A WebSocket class that takes headers: Node's (22 or later) and Bun's global one, or the `ws` package's. */
export type WebSocketConstructor = new (
  url: string,
  init: { headers: Record<string, string> },
) => WebSocketLike;

export interface ListenOptions {
  /** Only this connection subscription's deliveries; absent: every connection subscription of yours. */
  subscriptionId?: string;
  /** Handles each delivery; its result is the answer (see `DeliveryResult`). `forwardTo(url)` is one. */
  onDelivery: DeliveryHandler;
  /** Stops listening: deliveries being handled are answered, then the connection is closed. */
  signal?: AbortSignal;
  /**
   * One line per delivery, `<webhook-id> <status> <ms>ms` (a failure without a status shows
   * `-`, and its reason after), and one per connection opened or lost.
   */
  log?: (line: string) => void;
  /** Called with each connection's `hello`. */
  onConnect?: (hello: ConnectionHello) => void;
  /** The first wait before reconnecting; each failure in a row doubles it, with jitter. @default 1000 */
  initialBackoffMs?: number;
  /** The longest wait before reconnecting. @default 30000 */
  maxBackoffMs?: number;
  /** @default globalThis.WebSocket */
  WebSocket?: WebSocketConstructor;
}

/** A reason `listen` stops for good, rather than reconnecting. */
export class ListenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ListenError';
  }
}

/** What `listen` needs of the client: the key, and the calls it makes over HTTP. */
export interface ListenContext {
  apiKey: string;
  /** The API's address: an `https` one is never answered with an unencrypted socket. */
  baseUrl: string;
  connectInfo(signal?: AbortSignal): Promise<ConnectInfo>;
  /** Fails (a `ListenError`, or the API's 404) unless the id is one of the partner's connection subscriptions. */
  checkSubscription(id: string): Promise<void>;
  /** Whether an error of those calls means trying again cannot help (a refused key, say). */
  isFatal(error: unknown): boolean;
}

/** At most this many unanswered deliveries per connection (the protocol's limit). */
export const MAX_IN_FLIGHT = 16;
/** The longest `error` text sent in a `nack`: the client's frames are at most 4 KiB. */
const MAX_ERROR_LENGTH = 500;
/** How long a closing connection may take to finish its closing handshake. */
const CLOSE_GRACE_MS = 2000;
const OPEN = 1;

const HOP_BY_HOP = new Set([
  'connection',
  'content-length',
  'expect',
  'host',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause: unknown = error.cause;
    if (cause instanceof Error && cause.message !== '') return cause.message;
    return error.message === '' ? error.name : error.message;
  }
  return String(error);
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Resolves after `ms`, or at once when `signal` aborts. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * A handler that POSTs each delivery to `url`, its body byte for byte with its headers, so that a
 * receiver written for URL callbacks (and its signature check) works unchanged; the delivery is
 * answered with the receiver's status. A receiver that cannot be reached, or does not answer
 * before `timeoutMs` or the delivery's deadline, fails the try without a status. Redirects are
 * not followed: a 3xx is a failed try, as for a URL callback.
 */
export function forwardTo(
  url: string,
  options: { timeoutMs?: number; fetch?: typeof fetch } = {},
): DeliveryHandler {
  const target = new URL(url);
  if (target.protocol !== 'http:' && target.protocol !== 'https:')
    throw new TypeError(`forwardTo needs an http or https URL, not ${url}`);
  const send = options.fetch ?? globalThis.fetch;
  return async (delivery) => {
    const headers = new Headers();
    for (const [name, value] of Object.entries(delivery.headers))
      if (!HOP_BY_HOP.has(name.toLowerCase())) headers.set(name, value);
    const signal =
      options.timeoutMs === undefined
        ? delivery.signal
        : AbortSignal.any([delivery.signal, AbortSignal.timeout(options.timeoutMs)]);
    try {
      const response = await send(target, {
        method: 'POST',
        headers,
        body: delivery.body,
        redirect: 'manual',
        signal,
      });
      await response.body?.cancel();
      return { status: response.status };
    } catch (error) {
      return { error: signal.aborted ? 'timeout: the receiver did not answer in time' : describe(error) };
    }
  };
}

interface Answer {
  type: 'ack' | 'nack';
  status?: number;
  error?: string;
}

function answerOf(result: DeliveryResult): Answer {
  const { status, error } = typeof result === 'number' ? { status: result, error: undefined } : result;
  if (status !== undefined && !(Number.isInteger(status) && status >= 100 && status <= 599))
    return { type: 'nack', error: `the handler gave ${String(status)}, not an HTTP status` };
  if (status !== undefined && status >= 200 && status <= 299) return { type: 'ack', status };
  const answer: Answer = { type: 'nack' };
  if (status !== undefined) answer.status = status;
  if (error !== undefined) answer.error = error;
  else if (status === undefined) answer.error = 'the handler gave no status';
  return answer;
}

function deliveryOf(frame: Record<string, unknown>): Omit<ConnectionDelivery, 'signal'> | undefined {
  const { deliveryId, attempt, subscriptionId, headers, body } = frame;
  if (typeof deliveryId !== 'string' || typeof attempt !== 'number') return undefined;
  if (typeof body !== 'string' || !isRecord(headers)) return undefined;
  const plain: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) if (typeof value === 'string') plain[name] = value;
  return {
    deliveryId,
    attempt,
    subscriptionId: typeof subscriptionId === 'string' ? subscriptionId : '',
    headers: plain,
    body,
  };
}

function helloOf(frame: Record<string, unknown>, info: ConnectInfo): ConnectionHello {
  const seconds = (value: unknown, otherwise: number) =>
    typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : otherwise;
  return {
    connectionId: typeof frame.connectionId === 'string' ? frame.connectionId : '',
    subscriptions: Array.isArray(frame.subscriptions)
      ? frame.subscriptions.filter((id): id is string => typeof id === 'string')
      : [],
    heartbeatSeconds: seconds(frame.heartbeatSeconds, info.heartbeatSeconds),
    ackTimeoutSeconds: seconds(frame.ackTimeoutSeconds, info.ackTimeoutSeconds),
  };
}

interface SessionEnd {
  /** Whether the server said hello: the connection was accepted. */
  greeted: boolean;
  reason: string;
}

/** One connection, from opening it to its end (closed by either side, dead, or stopped). */
function session(
  context: ListenContext,
  options: ListenOptions,
  info: ConnectInfo,
  Socket: WebSocketConstructor,
): Promise<SessionEnd> {
  const log = options.log ?? (() => {});
  const signal = options.signal;
  const address = new URL(info.url);
  if (options.subscriptionId !== undefined) address.searchParams.set('subscription', options.subscriptionId);

  return new Promise((resolve) => {
    const socket = new Socket(address.toString(), { headers: { authorization: `Bearer ${context.apiKey}` } });
    let heartbeatMs = info.heartbeatSeconds * 1000;
    let ackTimeoutMs = info.ackTimeoutSeconds * 1000;
    let greeted = false;
    let stopping = false;
    let finished = false;
    let lastError: string | undefined;
    let pings = 0;
    /** Pings sent since the last pong: the third one unanswered at the next heartbeat ends the connection. */
    let unanswered = 0;
    let heartbeat: ReturnType<typeof setInterval> | undefined;
    let closing: ReturnType<typeof setTimeout> | undefined;
    const running = new Set<Promise<void>>();
    const waiting: { delivery: Omit<ConnectionDelivery, 'signal'>; received: number }[] = [];

    const finish = (reason: string) => {
      if (finished) return;
      finished = true;
      clearInterval(heartbeat);
      clearTimeout(closing);
      waiting.length = 0;
      signal?.removeEventListener('abort', stop);
      resolve({ greeted, reason });
    };

    const send = (frame: Record<string, unknown>): boolean => {
      if (socket.readyState !== OPEN) return false;
      socket.send(JSON.stringify(frame));
      return true;
    };

    const startHeartbeat = () => {
      clearInterval(heartbeat);
      heartbeat = setInterval(() => {
        if (unanswered >= 3) {
          socket.close(4000, 'no pong');
          finish('no pong for three heartbeats');
          return;
        }
        if (send({ type: 'ping', id: String(++pings) })) unanswered++;
      }, heartbeatMs);
    };

    const handle = async (delivery: Omit<ConnectionDelivery, 'signal'>, received: number) => {
      const deadline = new AbortController();
      const timer = setTimeout(
        () => deadline.abort(new Error('the answer is due')),
        Math.max(0, ackTimeoutMs - (performance.now() - received)),
      );
      let answer: Answer;
      try {
        answer = answerOf(await options.onDelivery({ ...delivery, signal: deadline.signal }));
      } catch (error) {
        answer = { type: 'nack', status: 500, error: describe(error) };
      } finally {
        clearTimeout(timer);
      }
      if (answer.error !== undefined && answer.error.length > MAX_ERROR_LENGTH)
        answer.error = `${answer.error.slice(0, MAX_ERROR_LENGTH - 1)}…`;
      const sent = send({ ...answer, deliveryId: delivery.deliveryId, attempt: delivery.attempt });
      const ms = Math.round(performance.now() - received);
      const id = delivery.headers['webhook-id'] ?? delivery.deliveryId;
      const why = answer.type === 'nack' && answer.error !== undefined ? ` ${answer.error}` : '';
      log(`${id} ${answer.status ?? '-'} ${ms}ms${why}${sent ? '' : ' (connection lost: not answered)'}`);
    };

    const start = (delivery: Omit<ConnectionDelivery, 'signal'>, received: number) => {
      const task: Promise<void> = handle(delivery, received).finally(() => {
        running.delete(task);
        const next = waiting.shift();
        if (next !== undefined && !stopping && !finished) start(next.delivery, next.received);
      });
      running.add(task);
    };

    const onFrame = (data: unknown) => {
      if (typeof data !== 'string') return;
      let frame: unknown;
      try {
        frame = JSON.parse(data);
      } catch {
        return;
      }
      if (!isRecord(frame)) return;
      switch (frame.type) {
        case 'hello': {
          const hello = helloOf(frame, info);
          greeted = true;
          ackTimeoutMs = hello.ackTimeoutSeconds * 1000;
          if (hello.heartbeatSeconds * 1000 !== heartbeatMs) {
            heartbeatMs = hello.heartbeatSeconds * 1000;
            startHeartbeat();
          }
          log(`connected ${hello.connectionId} (${hello.subscriptions.join(', ') || 'no subscriptions'})`);
          options.onConnect?.(hello);
          return;
        }
        case 'pong':
          unanswered = 0;
          return;
        case 'delivery': {
          if (stopping) return;
          const delivery = deliveryOf(frame);
          if (delivery === undefined) return;
          const received = performance.now();
          if (running.size < MAX_IN_FLIGHT) start(delivery, received);
          else waiting.push({ delivery, received });
          return;
        }
        default:
          return;
      }
    };

    /** Answers the deliveries being handled (until they are due), then closes. */
    async function stop() {
      if (stopping || finished) return;
      stopping = true;
      waiting.length = 0;
      if (running.size > 0) {
        const drained = new AbortController();
        void Promise.allSettled(running).then(() => drained.abort());
        await pause(ackTimeoutMs, drained.signal);
      }
      if (finished) return;
      socket.close(1000, 'stopping');
      // The close event ends the session; a server that never answers the close, this.
      closing = setTimeout(() => finish('stopped'), CLOSE_GRACE_MS);
    }

    socket.addEventListener('open', () => {
      startHeartbeat();
    });
    socket.addEventListener('message', (event) => onFrame(event.data));
    socket.addEventListener('error', (event) => {
      const message: unknown = isRecord(event) ? (event.message ?? event.error) : undefined;
      if (message !== undefined && message !== '') lastError = describe(message);
    });
    socket.addEventListener('close', (event) => {
      const code = `closed ${event.code}${event.reason === '' ? '' : ` ${event.reason}`}`;
      if (stopping) finish('stopped');
      else if (!greeted && event.code === 1006)
        finish(`could not connect to ${info.url}${lastError === undefined ? '' : `: ${lastError}`}`);
      else finish(code);
    });
    signal?.addEventListener('abort', stop, { once: true });
    if (signal?.aborted) void stop();
  });
}

/**
 * Keeps a connection open until `options.signal` aborts: finds the socket (`GET
 * /v1/connect-info`), opens it with the API key, pings every heartbeat, and reconnects with
 * exponential backoff and jitter when it closes, fails, or gets no pong for three heartbeats.
 * Resolves once stopped and closed; rejects only for what reconnecting cannot mend (a refused
 * key, a subscription that is not one of your connection subscriptions).
 */
export async function listen(context: ListenContext, options: ListenOptions): Promise<void> {
  const global: unknown = Reflect.get(globalThis, 'WebSocket');
  const Socket =
    options.WebSocket ?? (typeof global === 'function' ? (global as WebSocketConstructor) : undefined);
  if (Socket === undefined)
    throw new ListenError(
      'no WebSocket here: use Node 22 or later, or pass one (the `ws` package’s) as WebSocket',
    );
  const log = options.log ?? (() => {});
  const initial = options.initialBackoffMs ?? 1000;
  const max = options.maxBackoffMs ?? 30_000;
  const signal = options.signal;
  let failures = 0;
  while (!signal?.aborted) {
    let reason: string;
    try {
      const info = await context.connectInfo(signal);
      if (context.baseUrl.startsWith('https:') && !info.url.startsWith('wss:')) {
        throw new ListenError(
          `the dispatcher at ${context.baseUrl} offered an unencrypted socket (${info.url}): refused`,
        );
      }
      // Asked at every connect: a refused upgrade shows no status, so a subscription deleted
      // meanwhile is found here, not retried for ever.
      if (options.subscriptionId !== undefined) await context.checkSubscription(options.subscriptionId);
      const end = await session(context, options, info, Socket);
      if (end.greeted) failures = 0;
      reason = end.reason;
    } catch (error) {
      if (signal?.aborted) return;
      if (error instanceof ListenError || context.isFatal(error)) throw error;
      reason = `could not connect: ${describe(error)}`;
    }
    if (signal?.aborted) return;
    const ceiling = Math.min(max, initial * 2 ** failures);
    const wait = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    failures++;
    log(`${reason}; reconnecting in ${(wait / 1000).toFixed(1)}s`);
    await pause(wait, signal);
  }
}
