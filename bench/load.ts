/**
 * The load generator: the dispatcher's HTTP API called as a platform and its partners would,
 * over one undici pool, and the bare-undici ceiling the end-to-end figures are compared with.
 * Every loop here is bounded by a count and by a deadline.
 */
import { Pool } from 'undici';
import { z } from 'zod';
import { benchPayload, EVENT_TYPE, signedCallback } from './payload.ts';
import { nowMs, sleep } from './rpc.ts';

/** No request of the bench waits longer than this for an answer (undici's default is 5 minutes). */
const ANSWER_TIMEOUT_MS = 30_000;
const POOL_TIMEOUTS = { headersTimeout: ANSWER_TIMEOUT_MS, bodyTimeout: ANSWER_TIMEOUT_MS };

const Partner = z.object({ id: z.string(), apiKey: z.string() });
const Subscription = z.object({ id: z.string(), secret: z.string() });

export class DispatcherApi {
  readonly #pool: Pool;
  readonly #adminToken: string;

  constructor(url: string, adminToken: string, connections = 16) {
    this.#pool = new Pool(url, { connections, keepAliveTimeout: 10_000, ...POOL_TIMEOUTS });
    this.#adminToken = adminToken;
  }

  async call(method: 'GET' | 'POST', path: string, token: string, body?: unknown) {
    const response = await this.#pool.request({
      method,
      path,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.body.text();
    const json: unknown = text === '' ? {} : JSON.parse(text);
    return { status: response.statusCode, body: json };
  }

  async createPartner(name: string) {
    const res = await this.call('POST', '/v1/partners', this.#adminToken, { name });
    if (res.status !== 201) throw new Error(`create partner: ${res.status} ${JSON.stringify(res.body)}`);
    return Partner.parse(res.body);
  }

  async subscribe(apiKey: string, url: string) {
    const res = await this.call('POST', '/v1/subscriptions', apiKey, { url });
    if (res.status !== 201) throw new Error(`subscribe ${url}: ${res.status} ${JSON.stringify(res.body)}`);
    return Subscription.parse(res.body);
  }

  /** Publishes one bench event stamped with its send time; true when the API accepted it. */
  async publish(partnerId: string, seq: number): Promise<boolean> {
    const res = await this.call('POST', '/v1/events', this.#adminToken, {
      partnerId,
      type: EVENT_TYPE,
      payload: benchPayload(seq, nowMs()),
    });
    return res.status === 202;
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}

export interface PublishStats {
  accepted: number;
  rejected: number;
  firstAt: number;
  lastAt: number;
}

/** Publishes `count` events as fast as the API takes them, `concurrency` at a time. */
export async function publishBurst(
  api: DispatcherApi,
  partnerId: string,
  count: number,
  concurrency: number,
  timeLimitMs: number,
): Promise<PublishStats> {
  const firstAt = nowMs();
  const deadline = firstAt + timeLimitMs;
  let next = 0;
  let accepted = 0;
  let rejected = 0;
  const worker = async () => {
    while (next < count && nowMs() < deadline) {
      const seq = next++;
      const ok = await api.publish(partnerId, seq).catch(() => false);
      if (ok) accepted++;
      else rejected++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { accepted, rejected, firstAt, lastAt: nowMs() };
}

export interface PacedStats {
  sent: number;
  accepted: number;
  rejected: number;
  /** Requests per second from the first send to the last answer: the rate the server took them at. */
  achievedRate: number;
  /** How far behind its schedule the latest send went, ms (the generator's own lag). */
  maxLagMs: number;
  /** Sends that had to wait because `maxInFlight` requests were already open. */
  throttled: number;
}

/**
 * Sends `rate` requests a second for `durationMs`, each on its own schedule (i / rate), with
 * at most `maxInFlight` open at once; `send(i)` resolves true when the request was accepted.
 */
export async function paced(
  rate: number,
  durationMs: number,
  maxInFlight: number,
  send: (i: number) => Promise<boolean>,
): Promise<PacedStats> {
  const total = Math.round((rate * durationMs) / 1000);
  const start = nowMs();
  const open = new Set<Promise<void>>();
  let accepted = 0;
  let rejected = 0;
  let maxLagMs = 0;
  let throttled = 0;
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - nowMs();
    if (wait > 1) await sleep(wait);
    if (open.size >= maxInFlight) {
      throttled++;
      await Promise.race(open);
    }
    maxLagMs = Math.max(maxLagMs, nowMs() - due);
    const request: Promise<void> = send(i).then(
      (ok) => {
        if (ok) accepted++;
        else rejected++;
        open.delete(request);
      },
      () => {
        rejected++;
        open.delete(request);
      },
    );
    open.add(request);
  }
  await Promise.all(open);
  const elapsed = nowMs() - start;
  return { sent: total, accepted, rejected, achievedRate: total / (elapsed / 1000), maxLagMs, throttled };
}

/** Signed callbacks of the bench's shape, built before any clock starts. */
export function prepareCallbacks(count: number, secret: string) {
  return Array.from({ length: count }, (_, i) => signedCallback(i, secret));
}

/**
 * The raw ceiling: a bare undici pool POSTing the prepared callbacks to `origin` + `path`,
 * `inFlight` at a time over `connections` sockets, reading each answer as the dispatcher's
 * sender does. Returns when every request was answered (or the time limit passed).
 */
export async function postAll(
  origin: string,
  path: string,
  callbacks: readonly { body: string; headers: Record<string, string> }[],
  options: { connections: number; inFlight: number; timeLimitMs: number },
): Promise<{ answered: number; ok: number; startedAt: number; endedAt: number }> {
  const pool = new Pool(origin, {
    connections: options.connections,
    keepAliveTimeout: 4_000,
    ...POOL_TIMEOUTS,
  });
  const startedAt = nowMs();
  const deadline = startedAt + options.timeLimitMs;
  let next = 0;
  let answered = 0;
  let ok = 0;
  const worker = async () => {
    while (next < callbacks.length && nowMs() < deadline) {
      const callback = callbacks[next++];
      if (!callback) break;
      const response = await pool.request({
        path,
        method: 'POST',
        headers: callback.headers,
        body: callback.body,
      });
      await response.body.text();
      answered++;
      if (response.statusCode >= 200 && response.statusCode < 300) ok++;
    }
  };
  try {
    await Promise.all(Array.from({ length: options.inFlight }, worker));
  } finally {
    await pool.close();
  }
  return { answered, ok, startedAt, endedAt: nowMs() };
}

/** A pool for paced single POSTs (the latency baseline). */
export function rawPool(origin: string, connections: number): Pool {
  return new Pool(origin, { connections, keepAliveTimeout: 4_000, ...POOL_TIMEOUTS });
}
