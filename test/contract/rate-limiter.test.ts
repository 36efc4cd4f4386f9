/**
 * The RateLimiter port on both its adapters: in memory (the local runtime, one process) and
 * on DynamoDB Local (every API instance on AWS shares one count per caller and window).
 */

import { describe, expect, it } from 'vitest';
import { DynamoRateLimiter, PER_ITEM } from '../../functions/adapters/aws/rate-limiter.ts';
import { PARTNERS_TABLE } from '../../functions/adapters/aws/tables.ts';
import { InMemoryRateLimiter } from '../../functions/adapters/memory/rate-limiter.ts';
import type { RateLimiter } from '../../functions/core/ports.ts';
import { tablesPerTest } from '../dynamodb-local/tables.ts';

const local = tablesPerTest('rate');

// A whole second a minute ahead: a window in the past would have DynamoDB Local's TTL delete
// its count item while the test runs.
const T0 = Math.ceil(Date.now() / 1000) * 1000 + 60_000;
const at = (ms: number) => new Date(T0 + ms);
const perSecond = (limit: number) => ({ limit, windowMs: 1000 });

describe.each([
  ['in memory', async (): Promise<RateLimiter> => new InMemoryRateLimiter()],
  [
    'DynamoDB Local',
    async (): Promise<RateLimiter> => new DynamoRateLimiter(local.client, await local.table(PARTNERS_TABLE)),
  ],
])('RateLimiter contract: %s', (_, make) => {
  it('allows the limit in a window, refuses the next with the time to the next window, and counts anew there', async () => {
    const limiter = await make();
    for (let i = 0; i < 3; i++)
      expect(await limiter.take('partner:a', perSecond(3), at(100 + i))).toEqual({ allowed: true });

    expect(await limiter.take('partner:a', perSecond(3), at(400))).toEqual({
      allowed: false,
      retryAfterMs: 600,
    });
    expect(await limiter.take('partner:a', perSecond(3), at(1000))).toEqual({ allowed: true });
  });

  it('counts each key apart: one caller over its limit costs another nothing', async () => {
    const limiter = await make();
    await limiter.take('partner:a', perSecond(1), at(0));
    expect((await limiter.take('partner:a', perSecond(1), at(1))).allowed).toBe(false);

    expect(await limiter.take('partner:b', perSecond(1), at(2))).toEqual({ allowed: true });
    expect(await limiter.take('producer:x', perSecond(1), at(3))).toEqual({ allowed: true });
  });

  it('never allows more than the limit to concurrent requests', async () => {
    const limiter = await make();
    const results = await Promise.all(
      Array.from({ length: 25 }, (_, i) => limiter.take('partner:busy', perSecond(10), at(i))),
    );
    expect(results.filter((r) => r.allowed)).toHaveLength(10);
  });
});

describe('DynamoRateLimiter above one item’s share', () => {
  it('spreads a high limit over several items and still allows no more than the limit in a window', async () => {
    const limiter = new DynamoRateLimiter(local.client, await local.table(PARTNERS_TABLE));
    const limit = 3 * PER_ITEM;
    const results = await Promise.all(
      Array.from({ length: limit + 200 }, (_, i) =>
        limiter.take('producer:big', perSecond(limit), at(i % 900)),
      ),
    );
    const allowed = results.filter((r) => r.allowed).length;
    // Each part refuses past its share, so the total never passes the limit; a random part
    // may fill before the others, so a few under it can be refused.
    expect(allowed).toBeLessThanOrEqual(limit);
    expect(allowed).toBeGreaterThan(limit * 0.9);
  });
});
