import { TooManyRequestsError } from './errors.ts';
import { MAX_POLL_WAIT_SECONDS } from './events.ts';
import type { Allowance, AllowanceResult, Clock, RateLimiter } from './ports.ts';

/**
 * Requests per second a caller may make, each kind of caller its own limit: a partner by its
 * API key (polling, subscriptions), a producer by its identity (publishing). One caller over
 * its limit is answered 429 and the others do not notice.
 */
export interface RequestLimits {
  partnerPerSecond: number;
  producerPerSecond: number;
}

export const DEFAULT_REQUEST_LIMITS: RequestLimits = { partnerPerSecond: 100, producerPerSecond: 5000 };

/** Bounds of a per-second limit (the upper one: API Gateway's default account throttle). */
export const REQUESTS_PER_SECOND = { min: 1, max: 10_000 } as const;

/** Who is calling: a partner (its id) or a producer (its IAM identity, or the admin token locally). */
export type Caller = { kind: 'partner'; partnerId: string } | { kind: 'producer'; identity: string };

export interface AdmitDeps {
  limiter: RateLimiter;
  limits: RequestLimits;
  clock: Clock;
}

const SECOND: Pick<Allowance, 'windowMs'> = { windowMs: 1000 };

/**
 * Counts the request against its caller's limit.
 * @throws TooManyRequestsError with the seconds until the caller's next window
 */
export async function admitRequest(deps: AdmitDeps, caller: Caller): Promise<void> {
  const [key, limit] =
    caller.kind === 'partner'
      ? [`partner:${caller.partnerId}`, deps.limits.partnerPerSecond]
      : [`producer:${caller.identity}`, deps.limits.producerPerSecond];
  const result = await deps.limiter.take(key, { ...SECOND, limit }, deps.clock.now());
  if (!result.allowed) {
    throw new TooManyRequestsError(
      `${caller.kind === 'partner' ? 'this API key' : 'this producer'} may make ${limit} requests per second; try again shortly`,
      result.retryAfterMs / 1000,
    );
  }
}

/**
 * A limiter that remembers, in this instance, the keys it refused until their window ends,
 * and refuses them again without asking `limiter`: a caller far over its limit costs the
 * shared count nothing more for the rest of the window.
 */
export function rememberingRefusals(limiter: RateLimiter): RateLimiter {
  const refusedUntil = new Map<string, number>();
  return {
    async take(key: string, allowance: Allowance, now: Date): Promise<AllowanceResult> {
      const until = refusedUntil.get(key);
      if (until !== undefined) {
        if (now.getTime() < until) return { allowed: false, retryAfterMs: until - now.getTime() };
        refusedUntil.delete(key);
      }
      const result = await limiter.take(key, allowance, now);
      if (!result.allowed) {
        // Bounded: a refused key is forgotten once its window ends, at its next request.
        if (refusedUntil.size > 10_000) refusedUntil.clear();
        refusedUntil.set(key, now.getTime() + result.retryAfterMs);
      }
      return result;
    },
  };
}

/**
 * Long polls a partner may start waiting in each window of MAX_POLL_WAIT_SECONDS (20 s): since
 * none waits longer, at most twice this many wait at once. Each waiting poll holds a function
 * on AWS, so one partner cannot hold them all.
 */
export const LONG_POLLS_PER_WINDOW = 20;
const LONG_POLL_WINDOW: Pick<Allowance, 'windowMs'> = { windowMs: MAX_POLL_WAIT_SECONDS * 1000 };

/**
 * Counts a long poll that is about to wait against its partner's allowance.
 * @throws TooManyRequestsError with the seconds until the partner's next window
 */
export async function admitLongPoll(deps: AdmitDeps, partnerId: string): Promise<void> {
  const result = await deps.limiter.take(
    `longpoll:${partnerId}`,
    { ...LONG_POLL_WINDOW, limit: LONG_POLLS_PER_WINDOW },
    deps.clock.now(),
  );
  if (!result.allowed) {
    throw new TooManyRequestsError(
      `at most ${LONG_POLLS_PER_WINDOW} long polls may start waiting every ${MAX_POLL_WAIT_SECONDS} s: poll with fewer readers ` +
        'at once, or without wait',
      result.retryAfterMs / 1000,
    );
  }
}

/** The window of `allowance` that holds `now`: its start, and the ms left in it. */
export function windowOf(allowance: Allowance, now: Date): { start: number; remainingMs: number } {
  const start = Math.floor(now.getTime() / allowance.windowMs) * allowance.windowMs;
  return { start, remainingMs: start + allowance.windowMs - now.getTime() };
}
