/**
 * What ops are told of each kind of dead letter, over the real SQLite queues and stores: a
 * stream batch the pipe gave up on, a delivery that died before it was stored, a bus envelope
 * an older fan-out queue holds, an unreadable message; dry runs and unknown queues.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  closeDatabase,
  openDatabase,
  type SqliteDatabase,
} from '../../functions/adapters/sqlite/database.ts';
import { SqliteQueue } from '../../functions/adapters/sqlite/queues.ts';
import { QueueNotFoundError } from '../../functions/core/errors.ts';
import {
  describeAttempt,
  listDeadLetters,
  type OpsDeps,
  redriveDeadLetters,
} from '../../functions/core/ops.ts';
import { createLocalMetrics, MINUTES_KEPT } from '../../local/metrics.ts';
import { LocalOpsQueues } from '../../local/ops-queues.ts';
import { sqliteApiDeps } from '../support/api-deps.ts';

const EVENT_ID = 'evt_01JAAAAAAAAAAAAAAAAAAAAAAA';
const PARTNER_ID = 'ptr_01JAAAAAAAAAAAAAAAAAAAAAAA';

describe('dead letters as ops see them', () => {
  let db: SqliteDatabase;
  let work: SqliteQueue<unknown>;
  let dlq: SqliteQueue<unknown>;
  let deps: OpsDeps;

  beforeEach(() => {
    db = openDatabase(':memory:');
    dlq = new SqliteQueue<unknown>(db, { name: 'work-dlq', visibilityTimeoutSeconds: 30 });
    work = new SqliteQueue<unknown>(db, {
      name: 'work',
      visibilityTimeoutSeconds: 30,
      maxReceiveCount: 2,
      deadLetterQueue: dlq,
    });
    const api = sqliteApiDeps(db);
    deps = {
      queues: new LocalOpsQueues([{ work, deadLetters: dlq }], api.clock),
      deliveries: api.deliveries,
      subscriptions: api.subscriptions,
    };
  });

  afterEach(() => closeDatabase(db));

  it('reads a stream batch the pipe gave up on as the span of writes a redrive fans out again', async () => {
    dlq.sendNow([
      {
        body: {
          DDBStreamBatchInfo: {
            shardId: 'shardId-000001',
            batchSize: 7,
            approximateArrivalOfFirstRecord: '2026-12-01T10:00:00Z',
            approximateArrivalOfLastRecord: '2026-12-01T10:00:02Z',
          },
        },
      },
    ]);
    const [letter] = await listDeadLetters(deps, 'work-dlq', 10);
    expect(letter).toMatchObject({
      kind: 'stream-batch',
      window: { from: '2026-12-01T09:55:00.000Z', to: '2026-12-01T10:05:02.000Z' },
    });
    expect(letter?.reason).toBe(
      'the pipe gave up on a stream batch of 7 record(s) of shard shardId-000001: its events are in the log but were not fanned out',
    );
  });

  it('says a delivery that died before it was stored was never tried, and how often it was received', async () => {
    work.sendNow([
      {
        body: {
          deliveryId: 'dlv_01JAAAAAAAAAAAAAAAAAAAAAAA',
          eventId: EVENT_ID,
          subscriptionId: 'sub_01JAAAAAAAAAAAAAAAAAAAAAAA',
          partnerId: PARTNER_ID,
          unstored: { createdAt: '2026-12-01T10:00:00.000Z', eventType: 'order.created' },
        },
      },
    ]);
    // Received twice and not deleted (the handler failed): the next receive dead-letters it.
    for (let i = 0; i < 3; i++) {
      for (const record of work.receive(10)) await work.changeVisibility(record.receiptHandle, 0);
    }
    const [letter] = await listDeadLetters(deps, 'work-dlq', 10);
    expect(letter).toMatchObject({
      kind: 'delivery',
      eventType: 'order.created',
      tries: 0,
      receiveCount: 2,
      reason: 'never tried: the dispatcher failed on it 2 time(s) before storing it (see its log)',
    });
    expect(letter?.url).toBeUndefined();
  });

  it('reads an event reference, also inside a bus envelope, and shows the start of anything else', async () => {
    const ref = {
      id: EVENT_ID,
      partnerId: PARTNER_ID,
      type: 'order.created',
      createdAt: '2026-12-01T10:00:00Z',
    };
    dlq.sendNow([{ body: { 'detail-type': 'order.created', detail: ref } }, { body: 'x'.repeat(1000) }]);
    const [envelope, other] = await listDeadLetters(deps, 'work-dlq', 10);
    expect(envelope).toMatchObject({ kind: 'event', eventId: EVENT_ID, partnerId: PARTNER_ID });
    expect(other?.kind).toBe('unreadable');
    expect(other?.body).toHaveLength(301);
  });

  it('describes a try by its status and answer, or by its error', () => {
    const base = {
      id: 'att_01JAAAAAAAAAAAAAAAAAAAAAAA',
      deliveryId: 'dlv_01JAAAAAAAAAAAAAAAAAAAAAAA',
      subscriptionId: 'sub_01JAAAAAAAAAAAAAAAAAAAAAAA',
      partnerId: PARTNER_ID,
      number: 3,
      startedAt: '2026-12-01T10:00:00.000Z',
      durationMs: 12,
    };
    expect(describeAttempt({ ...base, statusCode: 503, responseExcerpt: 'down for maintenance' })).toBe(
      'HTTP 503: down for maintenance',
    );
    expect(describeAttempt({ ...base, error: 'timeout', errorMessage: 'no answer within 10000 ms' })).toBe(
      'timeout: no answer within 10000 ms',
    );
  });

  it('plans a dry run without moving anything, and knows only its dead-letter queues', async () => {
    dlq.sendNow([{ body: 1 }, { body: 2 }, { body: 3 }]);
    expect(await redriveDeadLetters(deps, 'work-dlq', { dryRun: true, max: 2 })).toEqual({
      dryRun: true,
      plan: { queue: 'work-dlq', destination: 'work', wouldMove: 2 },
    });
    expect(dlq.stats().visible).toBe(3);
    await expect(listDeadLetters(deps, 'work', 10)).rejects.toThrow(QueueNotFoundError);
    await expect(listDeadLetters(deps, 'work', 10)).rejects.toThrow('the queues here: work-dlq');

    const moved = await redriveDeadLetters(deps, 'work-dlq', { max: 2 });
    expect(moved).toMatchObject({ dryRun: false, task: { status: 'completed', moved: 2, toMove: 2 } });
    expect(work.stats().visible).toBe(2);
    expect(dlq.stats().visible).toBe(1);
  });
});

describe('delivery rates on the local runtime', () => {
  const record = { messageId: 'm' } as Parameters<ReturnType<typeof createLocalMetrics>['observe']>[0];
  const message = {
    deliveryId: 'dlv_01JAAAAAAAAAAAAAAAAAAAAAAA',
    eventId: EVENT_ID,
    subscriptionId: 'sub_01JAAAAAAAAAAAAAAAAAAAAAAA',
    partnerId: PARTNER_ID,
    attempt: 2,
  };

  it('counts outcomes by minute, fills quiet minutes with zeros, and forgets minutes past three hours', async () => {
    let now = Date.parse('2026-12-01T10:00:30Z');
    const metrics = createLocalMetrics([], () => now);
    metrics.observe(record, { kind: 'done', reason: 'succeeded' }, message);
    metrics.observe(record, { kind: 'dead' }, message);
    now += 2 * 60_000;
    metrics.observe(record, { kind: 'retry', delaySeconds: 5 }, message);
    metrics.observe(record, { kind: 'done', reason: 'succeeded' }, message);

    expect(await metrics.rates.lastMinutes(3)).toEqual([
      { minute: '2026-12-01T10:00:00.000Z', succeeded: 1, failed: 0, dead: 1, skipped: 0 },
      { minute: '2026-12-01T10:01:00.000Z', succeeded: 0, failed: 0, dead: 0, skipped: 0 },
      { minute: '2026-12-01T10:02:00.000Z', succeeded: 1, failed: 1, dead: 0, skipped: 0 },
    ]);
    expect(await metrics.rates.lastMinutes(1000)).toHaveLength(MINUTES_KEPT);

    now += MINUTES_KEPT * 60_000;
    metrics.observe(record, { kind: 'done', reason: 'succeeded' }, message);
    const kept = await metrics.rates.lastMinutes(MINUTES_KEPT);
    expect(kept.reduce((n, m) => n + m.succeeded + m.dead + m.failed, 0)).toBe(1);
  });
});
