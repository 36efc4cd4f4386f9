/**
 * The webhook dispatcher's client for partners: poll and long-poll your events, follow a
 * consumer the dispatcher keeps the cursor of, manage subscriptions and API keys, and verify a
 * callback. Its types are generated from the API's OpenAPI document (openapi-types.ts); it
 * needs nothing but `fetch` (Node 18 or later, or a browser) and, to verify, `standardwebhooks`.
 */
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { ListenError, type ListenOptions, listen } from './connections.ts';
import type {
  ApiKey,
  ApiKeyPage,
  ConnectInfo,
  Consumer,
  ConsumerPage,
  CreatedApiKey,
  CreateSubscriptionRequest,
  Delivery,
  DeliveryPage,
  Event,
  EventPage,
  Problem,
  Redelivered,
  ReplayQueued,
  Subscription,
  SubscriptionPage,
  SubscriptionWithSecret,
  TestSent,
  TransformPreview,
  TransformPreviewRequest,
  UpdateSubscriptionRequest,
} from './openapi-types.ts';

export {
  type ConnectionDelivery,
  type ConnectionHello,
  type DeliveryHandler,
  type DeliveryResult,
  forwardTo,
  ListenError,
  type ListenOptions,
  MAX_IN_FLIGHT,
  type WebSocketConstructor,
  type WebSocketLike,
} from './connections.ts';
export type * from './openapi-types.ts';
export { Webhook, WebhookVerificationError };

function isProblem(value: unknown): value is Problem {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof Reflect.get(value, 'title') === 'string' &&
    typeof Reflect.get(value, 'detail') === 'string'
  );
}

/** An answer of the API that is not a success: its status, its problem, and its request id. */
export class DispatcherError extends Error {
  readonly status: number;
  readonly problem: Problem | undefined;
  /**
   * The answer's `x-request-id` (or, for an answer API Gateway gave itself, its
   * `apigw-requestid`): give it to the platform's support to find its logs.
   */
  readonly requestId: string | undefined;
  /** Seconds the API asked to wait before trying again (429, 503). */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    status: number,
    problem: Problem | undefined,
    requestId: string | undefined,
    retryAfter: number | undefined,
    message = `HTTP ${status}`,
  ) {
    super(problem === undefined ? message : `${problem.title}: ${problem.detail}`);
    this.name = 'DispatcherError';
    this.status = status;
    this.problem = problem;
    this.requestId = requestId;
    this.retryAfterSeconds = retryAfter;
  }
}

export interface ClientOptions {
  /** The dispatcher's API address, e.g. `https://api.example.com` or `http://127.0.0.1:3000`. */
  baseUrl: string;
  /** Your API key (`dk_…`). */
  apiKey: string;
  /** Tries of a request answered 429 or 503, or failing to connect, before it fails. @default 3 */
  maxTries?: number;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
}

export interface ListOptions {
  /** The `next` of the page before. */
  after?: string;
  /** 1 to 1000. @default 100 */
  limit?: number;
}

export interface EventListOptions extends ListOptions {
  /** Only these event types. */
  types?: string[];
  /** Seconds (up to 20) to wait for an event when there is none after the cursor: a long poll. */
  wait?: number;
}

export interface PollOptions {
  /** Start after this event (the `next` you kept); absent: from the oldest event kept. */
  after?: string;
  types?: string[];
  /** Events per page. @default 100 */
  limit?: number;
  /** Stops the loop. */
  signal?: AbortSignal;
}

export interface FollowOptions {
  /** Events per page. @default 100 */
  limit?: number;
  signal?: AbortSignal;
}

type Query = Record<string, string | number | string[] | undefined>;

function queryString(query: Query): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value === undefined) continue;
    params.set(name, Array.isArray(value) ? value.join(',') : String(value));
  }
  const text = params.toString();
  return text === '' ? '' : `?${text}`;
}

const segment = (value: string) => encodeURIComponent(value);

const delay = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });

/** The longest a long poll waits, by the API's rule. */
export const MAX_WAIT_SECONDS = 20;

export class DispatcherClient {
  readonly #baseUrl: string;
  readonly #apiKey: string;
  readonly #maxTries: number;
  readonly #fetch: typeof fetch;

  constructor(options: ClientOptions) {
    this.#baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.#apiKey = options.apiKey;
    this.#maxTries = options.maxTries ?? 3;
    this.#fetch = options.fetch ?? globalThis.fetch;
  }

  /**
   * One call. A 429 or 503 (or a failed connection) is tried again after its Retry-After (or a
   * second), up to maxTries, for calls that are safe to repeat (`retry`).
   */
  async #call<T>(
    method: string,
    path: string,
    options: { body?: unknown; retry?: boolean; signal?: AbortSignal | undefined } = {},
  ): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.#apiKey}` };
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    const tries = options.retry === false ? 1 : this.#maxTries;
    for (let attempt = 1; ; attempt++) {
      let response: Response;
      try {
        response = await this.#fetch(`${this.#baseUrl}${path}`, {
          method,
          headers,
          ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
          ...(options.signal === undefined ? {} : { signal: options.signal }),
        });
      } catch (error) {
        if (options.signal?.aborted || attempt >= tries) throw error;
        await delay(1000 * attempt, options.signal);
        continue;
      }
      if (response.ok) {
        const text = await response.text();
        return (text === '' ? undefined : JSON.parse(text)) as T;
      }
      const retryAfter = Number(response.headers.get('retry-after') ?? '') || undefined;
      if ((response.status === 429 || response.status === 503) && attempt < tries) {
        await response.body?.cancel();
        await delay((retryAfter ?? 1) * 1000, options.signal);
        continue;
      }
      const text = await response.text();
      let problem: Problem | undefined;
      let message = `HTTP ${response.status}`;
      try {
        const parsed: unknown = JSON.parse(text);
        if (isProblem(parsed)) problem = parsed;
        // API Gateway's own answers (a refused key, its throttling) are `{"message": …}`.
        else if (typeof parsed === 'object' && parsed !== null && 'message' in parsed)
          message = `HTTP ${response.status}: ${String(parsed.message)}`;
      } catch {
        problem = undefined;
      }
      const requestId =
        response.headers.get('x-request-id') ?? response.headers.get('apigw-requestid') ?? undefined;
      throw new DispatcherError(response.status, problem, requestId, retryAfter, message);
    }
  }

  /** Your events. */
  readonly events = {
    /** A page of your events after `after`; with `wait`, a long poll. */
    list: (options: EventListOptions = {}, signal?: AbortSignal): Promise<EventPage> =>
      this.#call('GET', `/v1/events${queryString({ ...options })}`, { signal }),
    get: (id: string): Promise<Event> => this.#call('GET', `/v1/events/${segment(id)}`),
    deliveries: (id: string, options: ListOptions = {}): Promise<DeliveryPage> =>
      this.#call('GET', `/v1/events/${segment(id)}/deliveries${queryString({ ...options })}`),
    redeliver: (id: string, subscriptionId?: string): Promise<Redelivered> =>
      this.#call('POST', `/v1/events/${segment(id)}/redeliver`, {
        body: subscriptionId === undefined ? {} : { subscriptionId },
        retry: false,
      }),
    /**
     * Every event from `after` on, as it comes: long polls one after another, keeping the
     * cursor. Keep the id of the last event you handled to start from it next time (or use a
     * consumer, whose cursor the dispatcher keeps).
     */
    poll: (options: PollOptions = {}): AsyncGenerator<Event> => this.#poll(options),
  };

  async *#poll(options: PollOptions): AsyncGenerator<Event> {
    let after = options.after;
    while (!options.signal?.aborted) {
      const page = await this.events.list(
        {
          ...(after === undefined ? {} : { after }),
          ...(options.types === undefined ? {} : { types: options.types }),
          limit: options.limit ?? 100,
          wait: MAX_WAIT_SECONDS,
        },
        options.signal,
      );
      for (const event of page.data) yield event;
      after = page.next ?? after;
    }
  }

  /** Consumers: cursors the dispatcher keeps for your readers. */
  readonly consumers = {
    /** Creates the consumer, or changes it; a `start` moves it (earliest, latest or after an event id). */
    put: (
      name: string,
      options: { types?: string[]; start?: 'earliest' | 'latest' | string } = {},
    ): Promise<Consumer> => this.#call('PUT', `/v1/consumers/${segment(name)}`, { body: options }),
    get: (name: string): Promise<Consumer> => this.#call('GET', `/v1/consumers/${segment(name)}`),
    list: (options: ListOptions = {}): Promise<ConsumerPage> =>
      this.#call('GET', `/v1/consumers${queryString({ ...options })}`),
    delete: (name: string): Promise<void> => this.#call('DELETE', `/v1/consumers/${segment(name)}`),
    /** The page after the consumer's position; it moves nothing until you `ack`. */
    read: (
      name: string,
      options: { limit?: number; wait?: number } = {},
      signal?: AbortSignal,
    ): Promise<EventPage> =>
      this.#call('GET', `/v1/consumers/${segment(name)}/events${queryString({ ...options })}`, { signal }),
    /** Moves the consumer to `eventId` (a page's `next`, or one of its events): the next read starts after it. */
    ack: (name: string, eventId: string): Promise<Consumer> =>
      this.#call('POST', `/v1/consumers/${segment(name)}/ack`, { body: { eventId } }),
    /**
     * Reads the consumer page after page (long polls), hands each event to `handle` in order,
     * and acknowledges each page once all its events are handled. If `handle` throws, nothing
     * of that page is acknowledged and the error is thrown: the page comes again on the next
     * follow (at least once; an event's `id` tells a repeat).
     */
    follow: async (
      name: string,
      handle: (event: Event) => unknown,
      options: FollowOptions = {},
    ): Promise<void> => {
      let position = (await this.consumers.get(name)).position;
      while (!options.signal?.aborted) {
        let page: EventPage;
        try {
          page = await this.consumers.read(
            name,
            { limit: options.limit ?? 100, wait: MAX_WAIT_SECONDS },
            options.signal,
          );
        } catch (error) {
          if (options.signal?.aborted) return;
          throw error;
        }
        for (const event of page.data) await handle(event);
        // `next`, not the last event: it also moves past the events the consumer's types left out.
        if (page.next !== null && (page.data.length > 0 || page.next !== position)) {
          await this.consumers.ack(name, page.next);
          position = page.next;
        }
      }
    },
  };

  /** Subscriptions: where your callbacks go. */
  readonly subscriptions = {
    /** The answer holds the signing secret (`whsec_…`), shown this once; an `ed25519` subscription's holds its `publicKey` instead. */
    create: (body: CreateSubscriptionRequest): Promise<SubscriptionWithSecret> =>
      this.#call('POST', '/v1/subscriptions', { body, retry: false }),
    list: (options: ListOptions = {}): Promise<SubscriptionPage> =>
      this.#call('GET', `/v1/subscriptions${queryString({ ...options })}`),
    get: (id: string): Promise<Subscription> => this.#call('GET', `/v1/subscriptions/${segment(id)}`),
    update: (id: string, body: UpdateSubscriptionRequest): Promise<Subscription> =>
      this.#call('PATCH', `/v1/subscriptions/${segment(id)}`, { body }),
    delete: (id: string): Promise<void> => this.#call('DELETE', `/v1/subscriptions/${segment(id)}`),
    /** A new secret (an `ed25519` subscription: a new key, its `publicKey` in the answer); the old one signs beside it for 24 hours. */
    rotateSecret: (id: string): Promise<SubscriptionWithSecret> =>
      this.#call('POST', `/v1/subscriptions/${segment(id)}/rotate-secret`, { retry: false }),
    deliveries: (id: string, options: ListOptions = {}): Promise<DeliveryPage> =>
      this.#call('GET', `/v1/subscriptions/${segment(id)}/deliveries${queryString({ ...options })}`),
    /** Sends the events since `since` (an ISO-8601 time) again; `next` says where to go on. */
    replay: (id: string, since: string, after?: string): Promise<ReplayQueued> =>
      this.#call('POST', `/v1/subscriptions/${segment(id)}/replay`, {
        body: { since, ...(after === undefined ? {} : { after }) },
        retry: false,
      }),
    test: (id: string): Promise<TestSent> =>
      this.#call('POST', `/v1/subscriptions/${segment(id)}/test`, { retry: false }),
    /** The body a receiver of the subscription would get for `event`, after its transformation (or the one given). */
    previewTransformation: (id: string, body: TransformPreviewRequest): Promise<TransformPreview> =>
      this.#call('POST', `/v1/subscriptions/${segment(id)}/transform-preview`, { body }),
  };

  /**
   * Deliveries pushed over a connection you open (for a receiver the internet cannot reach):
   * see docs/connection-protocol.md.
   */
  readonly connections = {
    /** Where to open the connection (`GET /v1/connect-info`), and its heartbeat and answer timings. */
    info: (signal?: AbortSignal): Promise<ConnectInfo> => this.#call('GET', '/v1/connect-info', { signal }),
    /**
     * Receives your connection subscriptions' deliveries until `options.signal` aborts, handing
     * each to `options.onDelivery` and answering it with the status that gives (2xx
     * acknowledges; anything else, or a throw, is a failed try, retried on the schedule).
     * Reconnects by itself; resolves once stopped and closed. Rejects for a refused key or a
     * `subscriptionId` that is not one of your connection subscriptions.
     */
    listen: (options: ListenOptions): Promise<void> =>
      listen(
        {
          apiKey: this.#apiKey,
          baseUrl: this.#baseUrl,
          connectInfo: (signal) => this.connections.info(signal),
          checkSubscription: async (id) => {
            const { transport } = await this.subscriptions.get(id);
            if (transport !== 'connection')
              throw new ListenError(`${id} is not a connection subscription (its transport is ${transport})`);
          },
          // A refused key, a missing subscription, a dispatcher without connections: no retry mends them.
          isFatal: (error) =>
            error instanceof DispatcherError &&
            error.status >= 400 &&
            error.status < 500 &&
            error.status !== 408 &&
            error.status !== 429,
        },
        options,
      ),
  };

  /** Your API keys: several at once, so you can rotate one without downtime. */
  readonly keys = {
    /** The answer holds the key, shown this once. */
    create: (name?: string): Promise<CreatedApiKey> =>
      this.#call('POST', '/v1/keys', { body: name === undefined ? {} : { name }, retry: false }),
    list: (options: ListOptions = {}): Promise<ApiKeyPage> =>
      this.#call('GET', `/v1/keys${queryString({ ...options })}`),
    revoke: (id: string): Promise<void> => this.#call('DELETE', `/v1/keys/${segment(id)}`),
  };
}

/** What a verified callback carries: the event, as the API would list it. */
export type CallbackEvent = Event;

/** How far a callback's timestamp may be from now, either way, in seconds (as Standard Webhooks'). */
const TIMESTAMP_TOLERANCE_SECONDS = 5 * 60;

/**
 * The `v1a` side of Standard Webhooks: an Ed25519 signature of `id.timestamp.body` by the
 * dispatcher's key, verified with the subscription's public key (`whpk_`).
 */
function verifyAsymmetric(publicKey: string, body: string, headers: Record<string, string>): void {
  const id = headers['webhook-id'];
  const timestamp = headers['webhook-timestamp'];
  const signatures = headers['webhook-signature'];
  if (id === undefined || timestamp === undefined || signatures === undefined)
    throw new WebhookVerificationError('Missing required headers');
  if (!/^\d+$/.test(timestamp)) throw new WebhookVerificationError('Invalid Signature Headers');
  if (Math.abs(Math.floor(Date.now() / 1000) - Number(timestamp)) > TIMESTAMP_TOLERANCE_SECONDS)
    throw new WebhookVerificationError('Message timestamp too old or too new');
  // Node's own crypto, loaded when first needed: the rest of the client runs anywhere.
  const crypto = globalThis.process?.getBuiltinModule?.('node:crypto');
  if (crypto === undefined)
    throw new WebhookVerificationError('verifying ed25519 (v1a) signatures needs Node.js 22.3 or later');
  const raw = fromBase64(publicKey.slice('whpk_'.length));
  if (raw.length !== 32)
    throw new WebhookVerificationError('a public key is 32 bytes, in base64 after whpk_');
  const key = crypto.createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: toBase64Url(raw) },
    format: 'jwk',
  });
  const signed = new TextEncoder().encode(`${id}.${timestamp}.${body}`);
  const verified = signatures.split(' ').some((entry) => {
    const [version, signature] = entry.split(',');
    if (version !== 'v1a' || signature === undefined) return false;
    const bytes = fromBase64(signature);
    return bytes.length === 64 && crypto.verify(null, signed, key, bytes);
  });
  if (!verified) throw new WebhookVerificationError('No matching signature found');
}

/** Standard base64 to bytes (nothing on a malformed input). */
function fromBase64(text: string): Uint8Array {
  try {
    return Uint8Array.from(atob(text), (char) => char.charCodeAt(0));
  } catch {
    return new Uint8Array();
  }
}

function toBase64Url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes))
    .replaceAll('+', '-')
    .replaceAll('/', '_')
    .replace(/=+$/, '');
}

/**
 * Verifies a callback (Standard Webhooks: `webhook-id`, `webhook-timestamp`,
 * `webhook-signature`) and returns its event: against the subscription's secret (`whsec_`, `v1`
 * signatures), or its public key (`whpk_`, an `ed25519` subscription's `v1a` signatures).
 * Give it the body exactly as received (the raw text, before any JSON parsing).
 * @throws WebhookVerificationError for a bad or missing signature, or a stale timestamp
 */
export function verifyCallback(
  secret: string,
  body: string | Buffer,
  headers: Record<string, string | string[] | undefined> | Headers,
): CallbackEvent {
  const plain: Record<string, string> = {};
  if (headers instanceof Headers)
    headers.forEach((value, name) => {
      plain[name] = value;
    });
  else
    for (const [name, value] of Object.entries(headers))
      if (value !== undefined) plain[name.toLowerCase()] = Array.isArray(value) ? value.join(',') : value;
  if (secret.startsWith('whpk_')) {
    const text = typeof body === 'string' ? body : new TextDecoder().decode(body);
    verifyAsymmetric(secret, text, plain);
    return JSON.parse(text) as CallbackEvent;
  }
  return new Webhook(secret).verify(body, plain) as CallbackEvent;
}

export type { ApiKey, Delivery };
