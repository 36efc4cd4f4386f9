/**
 * The local runtime's retention sweep on a real SQLite file: what has outlived the retention
 * goes, with everything hanging off it; what has not stays.
 */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  closeDatabase,
  openDatabase,
  readInteger,
  type SqliteDatabase,
} from '../../functions/adapters/sqlite/database.ts';
import { SqliteDeliveryStore } from '../../functions/adapters/sqlite/deliveries.ts';
import { SqliteEventLog } from '../../functions/adapters/sqlite/events.ts';
import { SqliteOutbox } from '../../functions/adapters/sqlite/outbox.ts';
import { parseLocalConfig } from '../../functions/config.ts';
import { CursorNotFoundError } from '../../functions/core/errors.ts';
import type { Event } from '../../functions/core/model.ts';
import { type RetentionSweep, startRetentionSweep } from '../../local/retention.ts';
import { eventually } from '../e2e/harness.ts';
import { id, ManualClock, makeAttempt, makeDelivery, makeEvent, tempDir } from './fixtures.ts';

const DAY = 86_400;
const RETENTION_DAYS = 30;
/** Long enough that only the test's own calls sweep, after the one at start. */
const NEVER = 24 * 60 * 60 * 1000;

describe('local retention sweep', () => {
  let tmp: ReturnType<typeof tempDir>;
  let db: SqliteDatabase;
  let clock: ManualClock;
  let events: SqliteEventLog;
  let deliveries: SqliteDeliveryStore;
  let outbox: SqliteOutbox;
  let sweeps: RetentionSweep[];
  const partnerId = id('ptr');
  const subscriptionId = id('sub');

  beforeEach(() => {
    tmp = tempDir();
    db = openDatabase(join(tmp.dir, 'dispatcher.db'));
    clock = new ManualClock();
    events = new SqliteEventLog(db);
    deliveries = new SqliteDeliveryStore(db);
    outbox = new SqliteOutbox(db);
    sweeps = [];
  });

  afterEach(async () => {
    for (const sweep of sweeps) await sweep.stop();
    closeDatabase(db);
    tmp.remove();
  });

  function start(options: { batchSize?: number; intervalMs?: number } = {}): RetentionSweep {
    const sweep = startRetentionSweep(db, {
      retentionDays: RETENTION_DAYS,
      clock,
      intervalMs: options.intervalMs ?? NEVER,
      log: () => {},
      ...(options.batchSize === undefined ? {} : { batchSize: options.batchSize }),
    });
    sweeps.push(sweep);
    return sweep;
  }

  /** An event published now, with one fan-out delivery tried once. */
  async function publish(overrides: Partial<Event> = {}): Promise<Event> {
    const now = clock.now().toISOString();
    const { event } = await events.append(makeEvent(partnerId, { createdAt: now, ...overrides }));
    const delivery = makeDelivery(event, subscriptionId, {
      id: id('dlv', clock.now().getTime()),
      createdAt: now,
      updatedAt: now,
    });
    await deliveries.createForEvent([delivery]);
    await deliveries.recordAttempt(makeAttempt(delivery, { startedAt: now }), {
      ...delivery,
      status: 'succeeded',
      attempts: 1,
      lastAttemptAt: now,
    });
    return event;
  }

  function count(table: 'events' | 'deliveries' | 'attempts'): number {
    const row = db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get();
    return row === undefined ? 0 : readInteger(row, 'n');
  }

  it('deletes events older than the retention with their deliveries and attempts, the stream passing over them; younger ones stay', async () => {
    const old = [await publish(), await publish()];
    outbox.advancePast(outbox.peek(1)[0]?.seq ?? 0); // the router took the first; the second is still to take
    clock.advance(2 * DAY);
    const young = await publish();
    // A redelivery of an old event, made recently: it goes with its event.
    clock.advance(27 * DAY);
    const redelivery = makeDelivery(old[0] ?? young, subscriptionId, {
      origin: 'redelivery',
      createdAt: clock.now().toISOString(),
      updatedAt: clock.now().toISOString(),
    });
    await deliveries.create([redelivery]);
    clock.advance(2 * DAY); // the old events are 31 days old now, the young one 29

    const result = await start().sweep();

    expect(result).toMatchObject({ events: 2, deliveries: 3 });
    for (const event of old) expect(await events.get(partnerId, event.id)).toBeUndefined();
    expect(await events.get(partnerId, young.id)).toEqual(young);
    expect(await deliveries.get(redelivery.id)).toBeUndefined();
    expect((await deliveries.listByEvent(partnerId, young.id, { limit: 10 })).items).toHaveLength(1);
    expect(count('events')).toBe(1);
    expect(count('deliveries')).toBe(1);
    expect(count('attempts')).toBe(1);
    expect(outbox.peek(10).map((e) => e.ref.id)).toEqual([young.id]);
    expect(db.prepare('PRAGMA foreign_key_check').all()).toEqual([]);
  });

  it('keeps everything younger than the retention', async () => {
    await publish();
    clock.advance(RETENTION_DAYS * DAY - 1);

    expect(await start().sweep()).toMatchObject({ events: 0, deliveries: 0 });
    expect(count('events')).toBe(1);
    expect(count('attempts')).toBe(1);
  });

  it('lets an idempotency key whose event expired be used again', async () => {
    const first = await publish({ idempotencyKey: 'order-42' });
    clock.advance((RETENTION_DAYS + 1) * DAY);
    await start().sweep();

    const again = await events.append(
      makeEvent(partnerId, { idempotencyKey: 'order-42', createdAt: clock.now().toISOString() }),
    );

    expect(again.created).toBe(true);
    expect(again.event.id).not.toBe(first.id);
  });

  it('refuses a poll cursor naming an expired event, as any cursor that is not one of the partner’s events', async () => {
    const expired = await publish();
    clock.advance((RETENTION_DAYS + 1) * DAY);
    await start().sweep();

    await expect(events.list(partnerId, { after: expired.id, limit: 10 })).rejects.toThrow(
      CursorNotFoundError,
    );
  });

  it('deletes a backlog in bounded batches, letting other writes commit between them', async () => {
    for (let i = 0; i < 25; i++) {
      const event = await publish();
      // Two more deliveries each: fan-out to another subscription, and a redelivery.
      await deliveries.createForEvent([makeDelivery(event, id('sub'))]);
      await deliveries.create([makeDelivery(event, subscriptionId, { origin: 'redelivery' })]);
    }
    clock.advance((RETENTION_DAYS + 1) * DAY);
    const sweep = start({ batchSize: 10 });

    let finished = false;
    const swept = sweep.sweep().then((result) => {
      finished = true;
      return result;
    });
    // An API write issued meanwhile commits long before the sweep is done.
    await events.append(makeEvent(partnerId, { createdAt: clock.now().toISOString() }));
    expect(finished).toBe(false);
    const result = await swept;

    expect(result.events).toBe(25);
    expect(result.deliveries).toBe(75);
    // 75 deliveries and 25 events, at most 10 of each per batch, and a last batch finding nothing.
    expect(result.batches).toBeGreaterThanOrEqual(9);
    expect(count('events')).toBe(1);
    expect(count('deliveries')).toBe(0);
    expect(count('attempts')).toBe(0);
  });

  it('sweeps at start and then every interval, until stopped', async () => {
    await publish();
    clock.advance((RETENTION_DAYS + 1) * DAY);
    const sweep = start({ intervalMs: 20 });
    await eventually(() => (count('events') === 0 ? true : undefined));

    await publish();
    clock.advance((RETENTION_DAYS + 1) * DAY);
    await eventually(() => (count('events') === 0 ? true : undefined));

    await sweep.stop();
    await publish();
    clock.advance((RETENTION_DAYS + 1) * DAY);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(count('events')).toBe(1);
  });
});

describe('DISPATCHER_RETENTION_DAYS', () => {
  it('defaults to 30 days, as on AWS', () => {
    expect(parseLocalConfig({}).retentionDays).toBe(30);
  });

  it('takes a number of days, and refuses a bad one naming the variable', () => {
    expect(parseLocalConfig({ DISPATCHER_RETENTION_DAYS: '7' }).retentionDays).toBe(7);
    expect(() => parseLocalConfig({ DISPATCHER_RETENTION_DAYS: '0' })).toThrow(/DISPATCHER_RETENTION_DAYS/);
  });
});
