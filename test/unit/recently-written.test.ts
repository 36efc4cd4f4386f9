import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RecentlyWritten } from '../../functions/adapters/recently-written.ts';
import { ManualClock } from '../contract/fixtures.ts';

function store(limit: number, forMs = 10_000) {
  const clock = new ManualClock();
  return { clock, recent: new RecentlyWritten<{ n: number }>({ limit, forMs, clock }) };
}

describe('what a store wrote last, in memory', () => {
  it('lets the oldest go first once the weight is over the limit', () => {
    const { recent } = store(10);
    recent.keep('a', { n: 1 }, 4);
    recent.keep('b', { n: 2 }, 4);
    recent.keep('c', { n: 3 }, 4);
    expect(recent.get('a')).toBeUndefined();
    expect(recent.get('b')).toEqual({ n: 2 });
    expect(recent.get('c')).toEqual({ n: 3 });
    // A forgotten entry frees its weight: nothing else has to go for the next one.
    recent.forget('b');
    recent.keep('d', { n: 4 }, 4);
    expect(recent.get('c')).toEqual({ n: 3 });
    expect(recent.get('d')).toEqual({ n: 4 });
    // Kept again, a key is the newest.
    recent.keep('c', { n: 5 }, 4);
    recent.keep('e', { n: 6 }, 4);
    expect(recent.get('d')).toBeUndefined();
    expect(recent.get('c')).toEqual({ n: 5 });
  });

  it('answers for a value only for its time, and lets the expired go as new ones come', () => {
    const { clock, recent } = store(100, 2_000);
    recent.keep('a', { n: 1 });
    clock.advance(1);
    recent.keep('b', { n: 2 });
    expect(recent.get('a')).toEqual({ n: 1 });
    clock.advance(1.5);
    recent.keep('c', { n: 3 });
    expect(recent.queued).toBe(2);
    expect(recent.get('a')).toBeUndefined();
    expect(recent.get('b')).toEqual({ n: 2 });
  });

  it('does not keep one heavier than the limit', () => {
    const { recent } = store(10);
    recent.keep('a', { n: 1 }, 11);
    expect(recent.get('a')).toBeUndefined();
    expect(recent.queued).toBe(0);
  });

  it('hands out frozen values', () => {
    const { recent } = store(10);
    recent.keep('a', { n: 1 });
    expect(Object.isFrozen(recent.get('a'))).toBe(true);
  });

  it('holds a bounded queue however many are kept and forgotten', () => {
    // Every value forgotten soon after it is kept (a delivery once tried): the weight never
    // reaches the limit, and the queue of what was kept must not grow with each one.
    const { recent } = store(1_000_000);
    for (let i = 0; i < 50_000; i++) {
      recent.keep(`k${i}`, { n: i });
      if (i >= 10) recent.forget(`k${i - 10}`);
    }
    expect(recent.queued).toBeLessThanOrEqual(2 * 1024 + 10);
    for (let i = 49_990; i < 50_000; i++) expect(recent.get(`k${i}`)).toEqual({ n: i });
  });

  it('answers as a map with the oldest dropped past the limit would, whatever the order', () => {
    const op = fc.oneof(
      fc.record({
        kind: fc.constant('keep' as const),
        key: fc.nat(20),
        weight: fc.integer({ min: 1, max: 5 }),
      }),
      fc.record({ kind: fc.constant('forget' as const), key: fc.nat(20) }),
      fc.record({ kind: fc.constant('clear' as const) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const limit = 12;
        const { recent } = store(limit);
        // The model: an insertion-ordered list of (key, weight).
        let model: { key: string; weight: number; n: number }[] = [];
        ops.forEach((o, n) => {
          if (o.kind === 'clear') {
            recent.clear();
            model = [];
            return;
          }
          const key = `k${o.key}`;
          model = model.filter((e) => e.key !== key);
          if (o.kind === 'forget') {
            recent.forget(key);
            return;
          }
          recent.keep(key, { n }, o.weight);
          model.push({ key, weight: o.weight, n });
          while (model.reduce((sum, e) => sum + e.weight, 0) > limit) model.shift();
        });
        for (let k = 0; k <= 20; k++) {
          const expected = model.find((e) => e.key === `k${k}`);
          expect(recent.get(`k${k}`)).toEqual(expected === undefined ? undefined : { n: expected.n });
        }
      }),
    );
  });
});
