/**
 * Receiving deliveries over a connection (docs/connection-protocol.md): a WebSocket the client
 * opens to the dispatcher, which sends each delivery of the partner's connection subscriptions
 * down it. `listen` keeps one connection open (heartbeats, reconnects with backoff), puts
 * together a delivery that comes in parts, hands each delivery to a handler and answers it with
 * an `ack` or a `nack`; `forwardTo` is a ready-made handler that POSTs each delivery to a local
 * receiver, exactly as a URL callback would.
 */
import type { ConnectInfo } from './openapi-types.ts';

/** The server's greeting on a connection: at once, or in answer to the client's first frame. */
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
   * `-`, and its reason after; a delivery in parts dropped unanswered shows `-` and why), and
   * one per connection opened or lost.
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

/**
 * At most this many deliveries are handled at once per connection; more wait their turn (their
 * answer still due `ackTimeoutSeconds` after each came). The server sends at most 16 unanswered
 * deliveries per subscription, or on AWS as many as the dispatcher's concurrency allows.
 */
export const MAX_IN_FLIGHT = 16;
/**
 * The largest body a delivery in parts may add up to, in UTF-8 bytes (an event's is at most
 * 256 KiB): past it, the delivery is dropped unanswered, and the server tries it again.
 */
const MAX_ASSEMBLED_BODY_BYTES = 1024 * 1024;
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

const encoder = new TextEncoder();

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

type Delivery = Omit<ConnectionDelivery, 'signal'>;

/**
 * A `delivery` frame: whole (`body`), or the head of one that comes in parts (`bodyParts`, how
 * many `delivery-part` frames carry its body); undefined when it is neither.
 */
function deliveryOf(
  frame: Record<string, unknown>,
): { whole: Delivery } | { head: Omit<Delivery, 'body'>; parts: number } | undefined {
  const { deliveryId, attempt, subscriptionId, headers, body, bodyParts } = frame;
  if (typeof deliveryId !== 'string' || typeof attempt !== 'number' || !isRecord(headers)) return undefined;
  const plain: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) if (typeof value === 'string') plain[name] = value;
  const head = {
    deliveryId,
    attempt,
    subscriptionId: typeof subscriptionId === 'string' ? subscriptionId : '',
    headers: plain,
  };
  if (typeof body === 'string') return { whole: { ...head, body } };
  if (typeof bodyParts === 'number' && Number.isInteger(bodyParts) && bodyParts >= 1)
    return { head, parts: bodyParts };
  return undefined;
}

/** A delivery whose body is coming in parts. */
interface Assembling {
  head: Omit<Delivery, 'body'>;
  /** How many parts its body comes in. */
  count: number;
  /** The parts come so far, by number. */
  parts: Map<number, string>;
  /** Their UTF-8 bytes, together. */
  bytes: number;
  /** When its `delivery` frame came: the answer is due `ackTimeoutSeconds` later. */
  received: number;
  /** Drops it when its parts have not all come by then. */
  timer: ReturnType<typeof setTimeout>;
}

const partKey = (deliveryId: unknown, attempt: unknown) => `${String(deliveryId)}#${String(attempt)}`;

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
    /**
     * Pings sent since the last pong: the third one unanswered at the next heartbeat ends the
     * connection. The first goes as the socket opens, before any hello (which may come before
     * or after its pong), so a server that answers nothing is left three heartbeats after the
     * socket opened; one pong, whenever it comes, clears the count.
     */
    let unanswered = 0;
    let heartbeat: ReturnType<typeof setInterval> | undefined;
    let closing: ReturnType<typeof setTimeout> | undefined;
    const running = new Set<Promise<void>>();
    const waiting: { delivery: Delivery; received: number }[] = [];
    /** Deliveries whose parts are still coming, by `<deliveryId>#<attempt>`. */
    const assembling = new Map<string, Assembling>();

    /** Forgets the deliveries whose parts are still coming: unanswered, the server tries them again. */
    const dropAssembling = () => {
      for (const held of assembling.values()) clearTimeout(held.timer);
      assembling.clear();
    };

    const finish = (reason: string) => {
      if (finished) return;
      finished = true;
      clearInterval(heartbeat);
      clearTimeout(closing);
      waiting.length = 0;
      dropAssembling();
      signal?.removeEventListener('abort', stop);
      resolve({ greeted, reason });
    };

    const send = (frame: Record<string, unknown>): boolean => {
      if (socket.readyState !== OPEN) return false;
      socket.send(JSON.stringify(frame));
      return true;
    };

    const ping = () => {
      if (send({ type: 'ping', id: String(++pings) })) unanswered++;
    };

    const startHeartbeat = () => {
      clearInterval(heartbeat);
      heartbeat = setInterval(() => {
        if (unanswered >= 3) {
          socket.close(4000, 'no pong');
          finish('no pong for three heartbeats');
          return;
        }
        ping();
      }, heartbeatMs);
    };

    const handle = async (delivery: Delivery, received: number) => {
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

    const start = (delivery: Delivery, received: number) => {
      const task: Promise<void> = handle(delivery, received).finally(() => {
        running.delete(task);
        const next = waiting.shift();
        if (next !== undefined && !stopping && !finished) start(next.delivery, next.received);
      });
      running.add(task);
    };

    /** A whole delivery: handled now, or once fewer than MAX_IN_FLIGHT are. */
    const take = (delivery: Delivery, received: number) => {
      if (running.size < MAX_IN_FLIGHT) start(delivery, received);
      else waiting.push({ delivery, received });
    };

    /** Drops a delivery whose parts will not all come, or are too large: it is not answered. */
    const drop = (key: string, why: string) => {
      const held = assembling.get(key);
      if (held === undefined) return;
      assembling.delete(key);
      clearTimeout(held.timer);
      const id = held.head.headers['webhook-id'] ?? held.head.deliveryId;
      log(`${id} - ${Math.round(performance.now() - held.received)}ms not answered: ${why}`);
    };

    /** A part of a delivery's body: the delivery is taken once its last part has come. */
    const onPart = (frame: Record<string, unknown>) => {
      const key = partKey(frame.deliveryId, frame.attempt);
      const held = assembling.get(key);
      // A part of a delivery not announced, dropped or already whole: ignored.
      if (held === undefined) return;
      const { part, data } = frame;
      if (typeof part !== 'number' || !Number.isInteger(part) || part < 0 || part >= held.count) return;
      if (typeof data !== 'string' || held.parts.has(part)) return;
      held.bytes += encoder.encode(data).byteLength;
      if (held.bytes > MAX_ASSEMBLED_BODY_BYTES)
        return drop(key, `its body in parts is larger than ${MAX_ASSEMBLED_BODY_BYTES} bytes`);
      held.parts.set(part, data);
      if (held.parts.size < held.count) return;
      assembling.delete(key);
      clearTimeout(held.timer);
      let body = '';
      for (let n = 0; n < held.count; n++) body += held.parts.get(n);
      take({ ...held.head, body }, held.received);
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
          // At once, or in answer to this client's first frame (then perhaps after its pong).
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
          if ('whole' in delivery) return take(delivery.whole, received);
          // Its body comes in the `delivery-part` frames that follow: held until the last one,
          // for no longer than its answer may take.
          const key = partKey(delivery.head.deliveryId, delivery.head.attempt);
          clearTimeout(assembling.get(key)?.timer);
          assembling.set(key, {
            head: delivery.head,
            count: delivery.parts,
            parts: new Map(),
            bytes: 0,
            received,
            timer: setTimeout(
              () => drop(key, `its body's ${delivery.parts} parts did not all come in time`),
              ackTimeoutMs,
            ),
          });
          return;
        }
        case 'delivery-part':
          if (!stopping) onPart(frame);
          return;
        default:
          return;
      }
    };

    /** Answers the deliveries being handled (until they are due), then closes. */
    async function stop() {
      if (stopping || finished) return;
      stopping = true;
      waiting.length = 0;
      dropAssembling();
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

    // The client speaks first: a server that cannot send before it (API Gateway's) says hello
    // in answer, so the first ping goes at once, not a heartbeat later.
    socket.addEventListener('open', () => {
      ping();
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
 * /v1/connect-info`), opens it with the API key, pings at once and every heartbeat, puts together
 * the deliveries that come in parts, and reconnects with
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
