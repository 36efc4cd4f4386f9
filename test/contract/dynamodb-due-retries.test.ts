/**
 * Due retries on DynamoDB Local: the tries whose wait is longer than SQS can delay a message,
 * and the sweep that queues them shortly before their time.
 */
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { SqsDeliveryQueue } from '../../functions/adapters/aws/delivery-queue.ts';
import { DUE_SHARDS, DynamoDueRetryStore } from '../../functions/adapters/aws/due-retries.ts';
import { DELIVERIES_TABLE } from '../../functions/adapters/aws/tables.ts';
import { DUE_LOOKAHEAD_SECONDS, sweepDueRetries } from '../../functions/core/due-retries.ts';
import { MessagesNotSentError } from '../../functions/core/errors.ts';
import type { DeliveryMessage } from '../../functions/core/model.ts';
import type { DueRetry } from '../../functions/core/ports.ts';
import { tablesPerTest } from '../dynamodb-local/tables.ts';
import { RecordingQueue } from '../support/recording-queue.ts';
import { id, ManualClock } from './fixtures.ts';

const local = tablesPerTest('due');
const client = local.client;
const table = () => local.table(DELIVERIES_TABLE);

// The start of today, not a fixed date: due items expire (TTL) 14 days past their time, and
// DynamoDB Local's TTL sweep deletes those already past.
const T0 = new Date(Math.floor(Date.now() / 86_400_000) * 86_400_000);

function message(attempt = 2): DeliveryMessage {
  return {
    deliveryId: id('dlv'),
    eventId: id('evt'),
    subscriptionId: id('sub'),
    partnerId: id('ptr'),
    attempt,
    step: 1,
  };
}

function dueIn(seconds: number, lane?: 'slow'): DueRetry {
  const m = message();
  return {
    message: lane === undefined ? m : { ...m, lane },
    groupId: m.subscriptionId,
    dueAt: new Date(T0.getTime() + seconds * 1000).toISOString(),
  };
}

describe('DynamoDueRetryStore', () => {
  it('returns the retries due before the horizon, soonest first, across shards', async () => {
    const store = new DynamoDueRetryStore(client, await table(), { clock: new ManualClock(T0) });
    const retries = Array.from({ length: 40 }, (_, i) => dueIn(3600 + i * 60));
    await store.put([...retries].reverse());

    const due = await store.due(new Date(T0.getTime() + (3600 + 20 * 60) * 1000), 100);

    expect(due).toEqual(retries.slice(0, 20));
    expect(await store.due(new Date(T0.getTime() + 10 * 86_400_000), 5)).toEqual(retries.slice(0, 5));
  });

  it('spreads one endpoint’s retries over the shards, each item expiring well after its time', async () => {
    const name = await table();
    const store = new DynamoDueRetryStore(client, name, { clock: new ManualClock(T0) });
    const subscriptionId = id('sub');
    await store.put(Array.from({ length: 64 }, (_, i) => ({ ...dueIn(7200 + i), groupId: subscriptionId })));

    const items = (await client.send(new ScanCommand({ TableName: name }))).Items ?? [];
    const shards = new Set(items.map((item) => item.pk));
    expect(shards.size).toBeGreaterThan(DUE_SHARDS / 2);
    for (const item of items) {
      expect(item.pk).toMatch(/^DUE#\d{2}$/);
      expect(item.expiresAt).toBeGreaterThan(Date.parse(String(item.dueAt)) / 1000);
    }
  });

  it('removes what it is given, and removing one already gone is no error', async () => {
    const store = new DynamoDueRetryStore(client, await table(), { clock: new ManualClock(T0) });
    const retries = [dueIn(1000), dueIn(2000), dueIn(3000)];
    await store.put(retries);

    await store.remove(retries.slice(0, 2));
    await store.remove(retries.slice(0, 2));

    expect(await store.due(new Date(T0.getTime() + 86_400_000), 10)).toEqual([retries[2]]);
  });
});

describe('sweepDueRetries', () => {
  it('queues the retries due within the lookahead with the rest of their wait, in their lanes, and removes them', async () => {
    const clock = new ManualClock(T0);
    const due = new DynamoDueRetryStore(client, await table(), { clock });
    const main = new RecordingQueue();
    const slow = new RecordingQueue();
    const queue = new SqsDeliveryQueue({ main, slow, clock });
    const late = dueIn(-30);
    const soon = dueIn(120, 'slow');
    const later = dueIn(DUE_LOOKAHEAD_SECONDS + 60);
    await due.put([late, soon, later]);

    expect(await sweepDueRetries({ due, queue, clock }, { lookaheadSeconds: DUE_LOOKAHEAD_SECONDS })).toBe(2);

    expect(main.sent).toEqual([{ body: late.message, groupId: late.groupId, delaySeconds: 0 }]);
    expect(slow.sent).toEqual([{ body: soon.message, groupId: soon.groupId, delaySeconds: 120 }]);
    expect(await due.due(new Date(T0.getTime() + 86_400_000), 10)).toEqual([later]);
  });

  it('keeps what the queue did not take for the next sweep, and removes what it took', async () => {
    const clock = new ManualClock(T0);
    const due = new DynamoDueRetryStore(client, await table(), { clock });
    const main = new RecordingQueue();
    const retries = [dueIn(10), dueIn(20), dueIn(30)];
    await due.put(retries);
    main.refuse = [1];

    await expect(
      sweepDueRetries({ due, queue: main, clock }, { lookaheadSeconds: DUE_LOOKAHEAD_SECONDS }),
    ).rejects.toThrow(MessagesNotSentError);
    expect(await due.due(new Date(T0.getTime() + 86_400_000), 10)).toEqual([retries[1]]);

    expect(
      await sweepDueRetries({ due, queue: main, clock }, { lookaheadSeconds: DUE_LOOKAHEAD_SECONDS }),
    ).toBe(1);
    expect(main.sent.map((m) => m.body)).toEqual([0, 2, 1].map((i) => retries[i]?.message));
  });

  it('pages through more due retries than one round reads', async () => {
    const clock = new ManualClock(T0);
    const due = new DynamoDueRetryStore(client, await table(), { clock });
    const main = new RecordingQueue();
    await due.put(Array.from({ length: 70 }, (_, i) => dueIn(i)));

    expect(
      await sweepDueRetries(
        { due, queue: main, clock },
        { lookaheadSeconds: DUE_LOOKAHEAD_SECONDS, pageSize: 25 },
      ),
    ).toBe(70);
    expect(main.sent).toHaveLength(70);
    expect(await due.due(new Date(T0.getTime() + 86_400_000), 10)).toEqual([]);
  });
});

describe('SqsDeliveryQueue', () => {
  it('sends a wait within 900 s to its lane and holds a longer one as a due retry', async () => {
    const clock = new ManualClock(T0);
    const due = new DynamoDueRetryStore(client, await table(), { clock });
    const main = new RecordingQueue();
    const slow = new RecordingQueue();
    const queue = new SqsDeliveryQueue({ main, slow, due, clock });
    const short = message();
    const long = { ...message(), lane: 'slow' as const };

    await queue.send([
      { body: short, delaySeconds: 900, groupId: short.subscriptionId },
      { body: long, delaySeconds: 901, groupId: long.subscriptionId },
    ]);

    expect(main.sent).toEqual([{ body: short, delaySeconds: 900, groupId: short.subscriptionId }]);
    expect(slow.sent).toEqual([]);
    expect(await due.due(new Date(T0.getTime() + 86_400_000), 10)).toEqual([
      { message: long, groupId: long.subscriptionId, dueAt: new Date(T0.getTime() + 901_000).toISOString() },
    ]);
  });

  it('names by position in the send the messages a lane did not take', async () => {
    const main = new RecordingQueue();
    const slow = new RecordingQueue();
    const queue = new SqsDeliveryQueue({ main, slow });
    slow.refuse = [1];
    const messages = [
      message(),
      { ...message(), lane: 'slow' as const },
      message(),
      { ...message(), lane: 'slow' as const },
    ];

    const error = await queue.send(messages.map((body) => ({ body }))).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(MessagesNotSentError);
    expect((error as MessagesNotSentError).unsent).toEqual([3]);
  });

  it('puts a dead letter in the dead-letter queue', async () => {
    const deadLetters = new RecordingQueue();
    const queue = new SqsDeliveryQueue({
      main: new RecordingQueue(),
      slow: new RecordingQueue(),
      deadLetters,
    });
    const dead = message(9);

    await queue.deadLetter(dead);

    expect(deadLetters.sent).toEqual([{ body: dead }]);
  });
});
