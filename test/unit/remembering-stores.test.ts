import { describe, expect, it } from 'vitest';
import { openDatabase, write } from '../../functions/adapters/sqlite/database.ts';
import { SqliteDeliveryStore } from '../../functions/adapters/sqlite/deliveries.ts';
import { SqliteEventLog } from '../../functions/adapters/sqlite/events.ts';
import { SqlitePartnerStore } from '../../functions/adapters/sqlite/partners.ts';
import { SqliteSubscriptionStore } from '../../functions/adapters/sqlite/subscriptions.ts';
import { newId } from '../../functions/core/ids.ts';
import type { Subscription } from '../../functions/core/model.ts';
import type { SecretCipher } from '../../functions/core/ports.ts';
import { ManualClock, makeAttempt, makeDelivery, makeEvent } from '../contract/fixtures.ts';
import { testCipher } from '../support/cipher.ts';

const NOW = new Date('2026-12-03T10:00:00.000Z');

function subscription(partnerId: string, changes: Partial<Subscription> = {}): Subscription {
  return {
    id: newId('sub'),
    partnerId,
    url: 'https://partner.example/hooks',
    eventTypes: ['order.*'],
    status: 'active',
    secrets: [{ secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', createdAt: NOW.toISOString() }],
    createdAt: NOW.toISOString(),
    updatedAt: NOW.toISOString(),
    ...changes,
  };
}

/** Counts the statements the database prepares or runs that read `table`. */
function readsOf(db: ReturnType<typeof openDatabase>, table: string) {
  const reads = { count: 0 };
  const prepare = db.prepare.bind(db);
  db.prepare = (sql: string) => {
    const statement = prepare(sql);
    if (!new RegExp(`^\\s*SELECT[\\s\\S]*FROM ${table}\\b`).test(sql)) return statement;
    for (const method of ['get', 'all'] as const) {
      const original = statement[method].bind(statement) as (...args: never[]) => unknown;
      Object.defineProperty(statement, method, {
        value: (...args: never[]) => {
          reads.count++;
          return original(...args);
        },
      });
    }
    return statement;
  };
  return reads;
}

describe('a subscription store that remembers', () => {
  async function setUp() {
    const db = openDatabase(':memory:');
    const reads = readsOf(db, 'subscriptions');
    const store = new SqliteSubscriptionStore(db, testCipher(), { remember: true });
    return { db, reads, store };
  }

  it('reads a subscription and a partner’s active list once, then answers from memory, frozen', async () => {
    const { reads, store } = await setUp();
    const partnerId = newId('ptr');
    const sub = subscription(partnerId);
    await store.put(sub);
    const first = await store.get(sub.id);
    const again = await store.get(sub.id);
    expect(again).toEqual(sub);
    expect(again).toBe(first);
    expect(await store.listActive(partnerId)).toEqual([sub]);
    expect(await store.listActive(partnerId)).toEqual([sub]);
    expect(reads.count).toBe(2);
    expect(Object.isFrozen(again)).toBe(true);
    expect(Object.isFrozen(again?.secrets[0])).toBe(true);
    expect(() => {
      (again as { status: string }).status = 'disabled';
    }).toThrow(TypeError);
  });

  it('forgets everything when it writes a subscription: an update, a health change, a delete', async () => {
    const { store } = await setUp();
    const partnerId = newId('ptr');
    const sub = subscription(partnerId);
    await store.put(sub);
    await store.get(sub.id);
    await store.listActive(partnerId);

    await store.put({ ...sub, url: 'https://partner.example/v2' });
    expect((await store.get(sub.id))?.url).toBe('https://partner.example/v2');

    await store.updateHealth(sub.id, { kind: 'failing', since: NOW.toISOString() });
    expect((await store.get(sub.id))?.failingSince).toBe(NOW.toISOString());
    await store.updateHealth(sub.id, { kind: 'disable', reason: 'gone', at: NOW.toISOString() });
    expect(await store.listActive(partnerId)).toEqual([]);

    const other = subscription(partnerId);
    await store.create(other, { maxPerPartner: 10 });
    expect((await store.listActive(partnerId)).map((s) => s.id)).toEqual([other.id]);
    await store.delete(other.id);
    expect(await store.get(other.id)).toBeUndefined();
    expect(await store.listActive(partnerId)).toEqual([]);
  });

  it('does not remember a read that a write overlapped', async () => {
    // Opening a secret waits for the test: the read can be held until the write is through.
    const cipher = testCipher();
    let held: (() => void) | undefined;
    const slow: SecretCipher = {
      seal: (secret, context) => cipher.seal(secret, context),
      open: async (sealed, context) => {
        if (held === undefined) await new Promise<void>((resolve) => (held = resolve));
        return cipher.open(sealed, context);
      },
    };
    const store = new SqliteSubscriptionStore(openDatabase(':memory:'), slow, { remember: true });
    const sub = subscription(newId('ptr'));
    await store.put(sub);
    // The read takes the old row, then the update commits, then the read ends.
    const reading = store.get(sub.id);
    await store.put({ ...sub, url: 'https://partner.example/v2' });
    held?.();
    expect((await reading)?.url).toBe(sub.url);
    expect((await store.get(sub.id))?.url).toBe('https://partner.example/v2');
  });

  it('without the option, reads the database every time', async () => {
    const db = openDatabase(':memory:');
    const reads = readsOf(db, 'subscriptions');
    const store = new SqliteSubscriptionStore(db, testCipher());
    const sub = subscription(newId('ptr'));
    await store.put(sub);
    await store.get(sub.id);
    await store.get(sub.id);
    expect(reads.count).toBe(2);
  });
});

describe('a partner store', () => {
  it('reads a partner once; an unknown one every time', async () => {
    const db = openDatabase(':memory:');
    const reads = readsOf(db, 'partners');
    const store = new SqlitePartnerStore(db);
    const partner = { id: newId('ptr'), name: 'Acme', createdAt: NOW.toISOString() };
    await store.create(partner, {
      id: 'key_01',
      partnerId: partner.id,
      hash: 'h'.repeat(64),
      name: 'first',
      prefix: 'pk_live_abcd',
      createdAt: NOW.toISOString(),
    });
    expect(await store.get(partner.id)).toEqual(partner);
    const copy = await store.get(partner.id);
    expect(copy).toEqual(partner);
    // Each caller gets its own copy.
    if (copy) copy.name = 'changed';
    expect(await store.get(partner.id)).toEqual(partner);
    expect(await store.get('ptr_unknown')).toBeUndefined();
    expect(await store.get('ptr_unknown')).toBeUndefined();
    expect(reads.count).toBe(3);
  });
});

describe('an event log that remembers', () => {
  function setUp(chars = 1000) {
    const db = openDatabase(':memory:');
    const reads = readsOf(db, 'events');
    const clock = new ManualClock(NOW);
    const log = new SqliteEventLog(db, { remember: { limit: chars, forMs: 10_000, clock } });
    const append = async (partnerId: string, payload: unknown = { n: 1 }) =>
      (
        await log.append({
          partnerId,
          type: 'order.created',
          payload: payload as never,
          createdAt: NOW.toISOString(),
        })
      ).event;
    return { db, reads, log, append, clock };
  }

  it('answers for an event it appended, frozen, for the time it is told, then reads it again', async () => {
    const t = setUp();
    const partnerId = newId('ptr');
    const event = await t.append(partnerId, { order: { id: 7 } });
    const got = await t.log.get(partnerId, event.id);
    expect(got).toEqual(event);
    const payload = got?.payload;
    expect(payload !== null && typeof payload === 'object' && !Array.isArray(payload)).toBe(true);
    expect(Object.isFrozen((payload as Record<string, unknown>).order)).toBe(true);
    expect(t.reads.count).toBe(0);
    t.clock.advance(11);
    expect(await t.log.get(partnerId, event.id)).toEqual(event);
    expect(t.reads.count).toBe(1);
  });

  it('never answers another partner’s event, nor one the retention deleted', async () => {
    const t = setUp();
    const partnerId = newId('ptr');
    const event = await t.append(partnerId);
    expect(await t.log.get(newId('ptr'), event.id)).toBeUndefined();
    const deleted = await write(t.db, () => {
      const expired = t.log.expired(new Date(NOW.getTime() + 1).toISOString(), 10);
      return t.log.deleteEvents(expired.map((e) => e.seq));
    });
    expect(deleted).toBe(1);
    expect(await t.log.get(partnerId, event.id)).toBeUndefined();
  });

  it('keeps no more than its bound, the oldest going first, and never one larger than it', async () => {
    const t = setUp(30);
    const partnerId = newId('ptr');
    const first = await t.append(partnerId, 'a'.repeat(10));
    const second = await t.append(partnerId, 'b'.repeat(10));
    const third = await t.append(partnerId, 'c'.repeat(10));
    const large = await t.append(partnerId, 'd'.repeat(40));
    for (const event of [second, third]) await t.log.get(partnerId, event.id);
    expect(t.reads.count).toBe(0);
    for (const event of [first, large]) await t.log.get(partnerId, event.id);
    expect(t.reads.count).toBe(2);
  });
});

describe('a delivery store that remembers', () => {
  function setUp(count = 100) {
    const db = openDatabase(':memory:');
    const reads = readsOf(db, 'deliveries');
    const clock = new ManualClock(NOW);
    const store = new SqliteDeliveryStore(db, { remember: { limit: count, forMs: 10_000, clock } });
    const fannedOut = async () => {
      const delivery = makeDelivery(makeEvent(newId('ptr')), newId('sub'));
      await store.createForEvent([delivery]);
      return delivery;
    };
    return { db, reads, store, fannedOut, clock };
  }

  it('answers for a delivery fan-out stored, frozen, for the time it is told, then reads it again', async () => {
    const t = setUp();
    const delivery = await t.fannedOut();
    const got = await t.store.get(delivery.id);
    expect(got).toEqual(delivery);
    expect(Object.isFrozen(got)).toBe(true);
    expect(t.reads.count).toBe(0);
    t.clock.advance(11);
    expect(await t.store.get(delivery.id)).toEqual(delivery);
    expect(t.reads.count).toBe(1);
  });

  it('forgets a delivery it writes: a try recorded, a skip, a delivery stored again', async () => {
    const t = setUp();
    const tried = await t.fannedOut();
    const failed = { ...tried, status: 'failed' as const, attempts: 1 };
    await t.store.recordAttempt(makeAttempt(tried, { statusCode: 500, error: 'http_status' }), failed);
    expect(await t.store.get(tried.id)).toEqual(failed);
    const skipped = await t.fannedOut();
    await t.store.skip(skipped.id, 'subscription deleted', NOW.toISOString());
    expect(await t.store.get(skipped.id)).toMatchObject({
      status: 'skipped',
      skippedReason: 'subscription deleted',
    });
    const again = await t.fannedOut();
    const succeeded = { ...again, status: 'succeeded' as const, attempts: 1 };
    await t.store.createWithAttempt(makeAttempt(again), succeeded);
    expect(await t.store.get(again.id)).toEqual(succeeded);
    expect(t.reads.count).toBe(3);
  });

  it('never answers for a delivery the retention deleted, nor keeps one whose write failed', async () => {
    const t = setUp();
    const old = await t.fannedOut();
    const deleted = await write(t.db, () => t.store.deleteCreatedBefore('9999-12-31T00:00:00.000Z', 10));
    expect(deleted).toBe(1);
    expect(await t.store.get(old.id)).toBeUndefined();
    // A write that stores one delivery and fails at the next: the first is rolled back with
    // it, and must not be answered from memory.
    const delivery = makeDelivery(makeEvent(newId('ptr')), newId('sub'));
    const refused = makeDelivery(makeEvent(newId('ptr')), newId('sub'));
    t.db.exec(
      `CREATE TRIGGER refuse BEFORE INSERT ON deliveries WHEN NEW.id = '${refused.id}'
         BEGIN SELECT RAISE(ABORT, 'refused'); END`,
    );
    await expect(t.store.createForEvent([delivery, refused])).rejects.toThrow(/refused/);
    t.db.exec('DROP TRIGGER refuse');
    expect(await t.store.get(delivery.id)).toBeUndefined();
  });

  it('keeps no more than its bound, the oldest going first', async () => {
    const t = setUp(2);
    const first = await t.fannedOut();
    const second = await t.fannedOut();
    const third = await t.fannedOut();
    for (const d of [second, third]) await t.store.get(d.id);
    expect(t.reads.count).toBe(0);
    await t.store.get(first.id);
    expect(t.reads.count).toBe(1);
  });
});
