import * as fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { closeDatabase, openDatabase } from '../../functions/adapters/sqlite/database.ts';
import { SqliteDeliveryStore } from '../../functions/adapters/sqlite/deliveries.ts';
import { SqliteEventLog } from '../../functions/adapters/sqlite/events.ts';
import { SqliteOrderedLines } from '../../functions/adapters/sqlite/ordered-lines.ts';
import { SqliteSubscriptionStore } from '../../functions/adapters/sqlite/subscriptions.ts';
import { fanOutEvent } from '../../functions/core/fanout.ts';
import {
  filterIssues,
  filterTakes,
  MAX_FILTER_VALUES,
  MAX_FILTER_WORK,
} from '../../functions/core/filters.ts';
import { newId } from '../../functions/core/ids.ts';
import type { DeliveryMessage, JsonValue, Subscription } from '../../functions/core/model.ts';
import { type EventPattern, matchesPattern, PatternTooCostlyError } from '../../functions/core/patterns.ts';
import type { EventLog, OutgoingMessage } from '../../functions/core/ports.ts';
import { testCipher } from '../support/cipher.ts';

const NOW = new Date('2026-12-03T12:00:00.000Z');

describe('filterIssues', () => {
  it('takes every form EventBridge patterns have, over type and payload', () => {
    const good: unknown[] = [
      { type: ['order.created', { prefix: 'invoice.' }] },
      {
        payload: {
          total: [{ numeric: ['>', 0, '<=', 100] }],
          currency: [{ 'anything-but': ['EUR', 'GBP'] }],
        },
      },
      {
        payload: {
          name: [{ suffix: { 'equals-ignore-case': '.PDF' } }, { wildcard: 'a*\\*b' }, null, true, 3],
        },
      },
      { payload: { note: [{ exists: false }], tag: [{ 'anything-but': { prefix: 'test-' } }] } },
      { $or: [{ type: ['a'] }, { payload: { b: [1] } }] },
      { payload: { deep: { deeper: { deepest: [{ 'equals-ignore-case': 'x' }] } } } },
    ];
    for (const filter of good) expect(filterIssues(filter), JSON.stringify(filter)).toEqual([]);
  });

  it('names each part at fault, by its path under the filter', () => {
    const cases: [unknown, (string | number)[], RegExp][] = [
      [{ payload: { a: [{ numeric: ['>=', 'x'] }] } }, ['payload', 'a', 0, 'numeric', 1], /number/],
      [{ payload: { a: [{ numeric: ['<', 1, '>', 5] }] } }, ['payload', 'a', 0, 'numeric', 0], /lower/],
      [{ payload: { a: [{ prefix: 5 }] } }, ['payload', 'a', 0, 'prefix'], /string/],
      [
        { payload: { a: [{ 'anything-but': [1, 'x'] }] } },
        ['payload', 'a', 0, 'anything-but'],
        /strings, or of numbers/,
      ],
      [
        { payload: { a: [{ 'anything-but': { exists: true } }] } },
        ['payload', 'a', 0, 'anything-but', 'exists'],
        /does not take/,
      ],
      [{ payload: { a: [{ prefix: 'x', suffix: 'y' }] } }, ['payload', 'a', 0], /one operator/],
      [{ payload: { a: [{}] } }, ['payload', 'a', 0], /one operator/],
      [{ payload: { a: [[1]] } }, ['payload', 'a', 0], /value/],
      [{ payload: {} }, ['payload'], /at least one field/],
      [{ detail: { a: [1] } }, ['detail'], /"type" and "payload"/],
      [{ payload: { a: [Number.NaN] } }, ['payload', 'a', 0], /value|finite/],
    ];
    for (const [filter, path, message] of cases) {
      const issues = filterIssues(filter);
      expect(
        issues.map((i) => i.path),
        JSON.stringify(filter),
      ).toContainEqual(path);
      expect(issues.find((i) => JSON.stringify(i.path) === JSON.stringify(path))?.message).toMatch(message);
    }
  });

  it('bounds a filter: its size, its depth, its values', () => {
    expect(filterIssues({ payload: { a: ['x'.repeat(5000)] } })[0]?.message).toMatch(/bytes/);
    let deep: Record<string, unknown> = { leaf: [1] };
    for (let i = 0; i < 10; i++) deep = { n: deep };
    expect(filterIssues({ payload: deep }).some((i) => /nest/.test(i.message))).toBe(true);
    const many = Array.from({ length: MAX_FILTER_VALUES + 1 }, (_, i) => i);
    expect(filterIssues({ payload: { a: many } }).some((i) => /values in all/.test(i.message))).toBe(true);
  });

  it('lets through only filters the pattern engine evaluates without error', () => {
    const leaf = fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.boolean(), fc.constant(null));
    const content = fc.oneof(
      fc.record({ prefix: fc.oneof(fc.string(), fc.integer()) }),
      fc.record({
        numeric: fc.array(fc.oneof(fc.constantFrom('>', '<', '=', '>=', 'x'), fc.integer()), {
          maxLength: 5,
        }),
      }),
      fc.record({ 'anything-but': fc.oneof(leaf, fc.array(leaf, { maxLength: 3 })) }),
      fc.record({ exists: fc.oneof(fc.boolean(), fc.string()) }),
      fc.record({ wildcard: fc.string({ maxLength: 6 }) }),
      fc.dictionary(fc.string({ maxLength: 5 }), leaf, { maxKeys: 2 }),
    );
    const values = fc.array(fc.oneof(leaf, content), { maxLength: 4 });
    const filter = fc.record({
      payload: fc.dictionary(fc.constantFrom('a', 'b', 'c'), values, { maxKeys: 3 }),
    });
    const event = fc.record({
      type: fc.string(),
      payload: fc.dictionary(
        fc.constantFrom('a', 'b', 'c'),
        fc.oneof(leaf, fc.array(leaf, { maxLength: 3 })),
      ),
    });
    fc.assert(
      fc.property(filter, event, (f, e) => {
        if (filterIssues(f).length > 0) return;
        expect(() => matchesPattern(f as EventPattern, e)).not.toThrow();
      }),
    );
  });
});

describe('wildcard', () => {
  /** A wildcard as a regular expression: the reference the linear matcher must agree with. */
  const reference = (pattern: string, text: string) =>
    new RegExp(
      `^${pattern
        .split('*')
        .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
        .join('.*')}$`,
      's',
    ).test(text);

  it('matches as `*` means any run of characters', () => {
    const pattern = fc.stringMatching(/^[ab*]{0,8}$/);
    const text = fc.stringMatching(/^[ab]{0,10}$/);
    fc.assert(
      fc.property(pattern, text, (p, t) => {
        expect(matchesPattern({ payload: { s: [{ wildcard: p }] } }, { payload: { s: t } })).toBe(
          reference(p, t),
        );
      }),
    );
  });

  it('takes a long text against many stars without backtracking', () => {
    const text = 'a'.repeat(200_000);
    const pattern = `${'*a'.repeat(20)}*b`;
    expect(matchesPattern({ payload: { s: [{ wildcard: pattern }] } }, { payload: { s: text } })).toBe(false);
  });
});

describe('fan-out with payload filters', () => {
  async function setUp(filters: (Subscription['filter'] | undefined)[]) {
    const db = openDatabase(':memory:');
    const events = new SqliteEventLog(db);
    const subscriptions = new SqliteSubscriptionStore(db, testCipher());
    const deliveries = new SqliteDeliveryStore(db);
    const partnerId = newId('ptr');
    const subs: Subscription[] = [];
    for (const filter of filters) {
      const sub: Subscription = {
        id: newId('sub'),
        partnerId,
        url: 'https://partner.example/hooks',
        eventTypes: [],
        ...(filter === undefined ? {} : { filter }),
        status: 'active',
        secrets: [{ secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', createdAt: NOW.toISOString() }],
        createdAt: NOW.toISOString(),
        updatedAt: NOW.toISOString(),
      };
      await subscriptions.put(sub);
      subs.push(sub);
    }
    let reads = 0;
    const counted: Pick<EventLog, 'get'> = {
      get: (p, id) => {
        reads++;
        return events.get(p, id);
      },
    };
    const sent: OutgoingMessage<DeliveryMessage>[] = [];
    const fanOut = async (payload: JsonValue, type = 'order.created') => {
      sent.length = 0;
      const { event } = await events.append({ partnerId, type, payload, createdAt: NOW.toISOString() });
      await fanOutEvent(
        {
          subscriptions,
          events: counted,
          deliveries,
          deliveryQueue: { send: async (m) => void sent.push(...m) },
          clock: { now: () => NOW },
          lines: new SqliteOrderedLines(db),
          fanoutQueue: {
            send: async () => {
              throw new Error('no event here has an ordering key, so none is parked');
            },
          },
        },
        event,
      );
      return sent.map((m) => subs.findIndex((s) => s.id === m.body.subscriptionId)).sort();
    };
    return { db, fanOut, reads: () => reads };
  }

  it('reads the payload once per event, and only when a filter needs it', async () => {
    const plain = await setUp([undefined, undefined]);
    expect(await plain.fanOut({ total: 5 })).toEqual([0, 1]);
    expect(plain.reads()).toBe(0);
    closeDatabase(plain.db);

    const filtered = await setUp([
      undefined,
      { payload: { total: [{ numeric: ['>', 10] }] } },
      { type: ['invoice.paid'] },
    ]);
    expect(await filtered.fanOut({ total: 5 })).toEqual([0]);
    expect(await filtered.fanOut({ total: 50 })).toEqual([0, 1]);
    expect(await filtered.fanOut({ total: 50 }, 'invoice.paid')).toEqual([0, 1, 2]);
    expect(filtered.reads()).toBe(3);
    closeDatabase(filtered.db);
  });

  it('filterTakes passes every event without a filter', () => {
    expect(filterTakes(undefined, { type: 'x', payload: null })).toBe(true);
    expect(filterTakes({ payload: { a: [{ exists: true }] } }, { type: 'x', payload: {} })).toBe(false);
  });
});

describe('review mends', () => {
  it('takes an escaped backslash in a wildcard, and counts anything-but lists of equals-ignore-case', () => {
    expect(filterIssues({ payload: { path: [{ wildcard: 'C:\\\\Users\\\\*' }] } })).toEqual([]);
    expect(
      matchesPattern(
        { payload: { path: [{ wildcard: 'C:\\\\Users\\\\*' }] } },
        { payload: { path: 'C:\\Users\\bob' } },
      ),
    ).toBe(true);
    const many = Array.from({ length: MAX_FILTER_VALUES + 1 }, (_, i) => `v${i}`);
    const issues = filterIssues({ payload: { a: [{ 'anything-but': { 'equals-ignore-case': many } }] } });
    expect(issues.some((i) => /values in all/.test(i.message))).toBe(true);
  });

  it('a filter too costly for an event does not match it, and fan-out goes on for the others', () => {
    const costly = { payload: { s: Array.from({ length: 200 }, () => ({ wildcard: '*b*' })) } };
    expect(filterIssues(costly)).toEqual([]);
    const payload = { s: Array.from({ length: 2000 }, () => 'a'.repeat(100)) };
    expect(() => matchesPattern(costly as EventPattern, { payload }, { maxWork: MAX_FILTER_WORK })).toThrow(
      PatternTooCostlyError,
    );
    expect(filterTakes(costly, { type: 'x', payload })).toBe(false);
    // A small event is matched as ever.
    expect(filterTakes(costly, { type: 'x', payload: { s: ['abc'] } })).toBe(true);
  });

  it('a stored filter a later rule would refuse is still read, and simply does not match', () => {
    const stored = { payload: { a: [{ cidr: '10.0.0.0/8' }] } };
    expect(filterIssues(stored)).not.toEqual([]);
    expect(filterTakes(stored, { type: 'x', payload: { a: '10.0.0.1' } })).toBe(false);
  });
});
