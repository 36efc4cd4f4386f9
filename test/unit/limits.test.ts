import { describe, expect, it } from 'vitest';
import { InMemoryRateLimiter } from '../../functions/adapters/memory/rate-limiter.ts';
import type { ApiRequest } from '../../functions/api/handler.ts';
import { callerOf } from '../../functions/api/handler.ts';
import { TooManyRequestsError } from '../../functions/core/errors.ts';
import { admitRequest, rememberingRefusals } from '../../functions/core/limits.ts';
import type { Allowance, AllowanceResult, RateLimiter } from '../../functions/core/ports.ts';

const T0 = new Date('2026-12-01T00:00:00.250Z');

function counting(inner: RateLimiter): RateLimiter & { calls: number } {
  const self = {
    calls: 0,
    async take(key: string, allowance: Allowance, now: Date): Promise<AllowanceResult> {
      self.calls++;
      return inner.take(key, allowance, now);
    },
  };
  return self;
}

describe('admitRequest', () => {
  it('holds a partner and a producer each to its own limit per second', async () => {
    const deps = {
      limiter: new InMemoryRateLimiter(),
      limits: { partnerPerSecond: 2, producerPerSecond: 1 },
      clock: { now: () => T0 },
    };
    await admitRequest(deps, { kind: 'partner', partnerId: 'ptr_a' });
    await admitRequest(deps, { kind: 'partner', partnerId: 'ptr_a' });
    const refused = await admitRequest(deps, { kind: 'partner', partnerId: 'ptr_a' }).catch(
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(TooManyRequestsError);
    expect((refused as TooManyRequestsError).retryAfterSeconds).toBe(1);

    await admitRequest(deps, { kind: 'producer', identity: 'arn:aws:iam::1:role/publisher' });
    await expect(
      admitRequest(deps, { kind: 'producer', identity: 'arn:aws:iam::1:role/publisher' }),
    ).rejects.toThrow(/1 requests per second/);
    await admitRequest(deps, { kind: 'partner', partnerId: 'ptr_b' });
  });
});

describe('rememberingRefusals', () => {
  it('refuses a key again without asking the shared count until its window ends', async () => {
    const shared = counting(new InMemoryRateLimiter());
    const limiter = rememberingRefusals(shared);
    const one = { limit: 1, windowMs: 1000 };
    await limiter.take('k', one, T0);
    expect(await limiter.take('k', one, T0)).toEqual({ allowed: false, retryAfterMs: 750 });
    expect(shared.calls).toBe(2);

    expect(await limiter.take('k', one, new Date(T0.getTime() + 500))).toEqual({
      allowed: false,
      retryAfterMs: 250,
    });
    expect(shared.calls).toBe(2);

    expect(await limiter.take('k', one, new Date(T0.getTime() + 750))).toEqual({ allowed: true });
    expect(shared.calls).toBe(3);
  });
});

describe('callerOf', () => {
  const request = (authorizer: ApiRequest['requestContext']['authorizer']) =>
    ({ requestContext: { authorizer } }) as ApiRequest;

  it('names a partner by the id its API key resolved to', () => {
    expect(callerOf(request({ lambda: { partnerId: 'ptr_1' } }), 'partner')).toEqual({
      kind: 'partner',
      partnerId: 'ptr_1',
    });
  });

  it('names a producer by its role, whatever the session, so every instance of a service shares one limit', () => {
    const session = (name: string) =>
      request({ iam: { userArn: `arn:aws:sts::123456789012:assumed-role/order-service/${name}` } });
    expect(callerOf(session('i-1'), 'admin')).toEqual({
      kind: 'producer',
      identity: 'arn:aws:sts::123456789012:assumed-role/order-service',
    });
    expect(callerOf(session('i-2'), 'admin')).toEqual(callerOf(session('i-1'), 'admin'));
    expect(callerOf(request({ iam: { userArn: 'arn:aws:iam::123456789012:user/ops' } }), 'admin')).toEqual({
      kind: 'producer',
      identity: 'arn:aws:iam::123456789012:user/ops',
    });
  });

  it('refuses a request without the credentials its route needs', () => {
    expect(() => callerOf(request({ lambda: { partnerId: 'ptr_1' } }), 'admin')).toThrow(/admin credentials/);
    expect(() => callerOf(request({ iam: { userArn: 'arn:x' } }), 'partner')).toThrow(/API key/);
  });
});
