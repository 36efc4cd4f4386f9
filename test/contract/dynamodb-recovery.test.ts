/**
 * Recovering the pipe's dead letters on DynamoDB Local: the events written in a failed batch's
 * span are read from the table and queued for fan-out again; queued twice, they still make
 * one delivery per subscription.
 */
import { describe, expect, it } from 'vitest';
import { DynamoDeliveryStore } from '../../functions/adapters/aws/deliveries.ts';
import { DynamoEventLog } from '../../functions/adapters/aws/events.ts';
import { DynamoOrderedLines } from '../../functions/adapters/aws/ordered-lines.ts';
import { DynamoSubscriptionStore } from '../../functions/adapters/aws/subscriptions.ts';
import { DELIVERIES_TABLE, EVENTS_TABLE, SUBSCRIPTIONS_TABLE } from '../../functions/adapters/aws/tables.ts';
import { fanOutEvent } from '../../functions/core/fanout.ts';
import type { DeliveryMessage, EventRef } from '../../functions/core/model.ts';
import type { DeadLetterSource, OutgoingMessage } from '../../functions/core/ports.ts';
import {
  pipeBatchWindow,
  RECOVERY_MARGIN_MS,
  recoverPipeDeadLetters,
} from '../../functions/core/recovery.ts';
import { tablesPerTest } from '../dynamodb-local/tables.ts';
import { testCipher } from '../support/cipher.ts';
import { id, ManualClock, makeEvent, makeSubscription, newEvent, pipeDeadLetter } from './fixtures.ts';

const local = tablesPerTest('recovery');

class Letters implements DeadLetterSource {
  readonly deleted: string[] = [];
  #queue: { messageId: string; body: string; receiptHandle: string }[];

  constructor(bodies: string[]) {
    this.#queue = bodies.map((body, i) => ({ messageId: `m${i}`, body, receiptHandle: `r${i}` }));
  }

  async receive() {
    const visible = this.#queue.filter((m) => !this.deleted.includes(m.receiptHandle));
    return visible.slice(0, 10);
  }

  async delete(receiptHandle: string) {
    this.deleted.push(receiptHandle);
  }
}

/** The fan-out queue, recording what it is sent. */
class RecordingQueue {
  readonly put: EventRef[] = [];
  async send(messages: OutgoingMessage<EventRef>[]) {
    this.put.push(...messages.map((m) => m.body));
  }
}

describe('pipeBatchWindow', () => {
  it('is the batch’s arrival times, widened by the margin on either side', () => {
    const first = new Date('2026-12-01T10:00:00.000Z');
    const last = new Date('2026-12-01T10:00:07.000Z');
    expect(pipeBatchWindow(pipeDeadLetter(first, last))).toEqual({
      from: new Date(first.getTime() - RECOVERY_MARGIN_MS),
      to: new Date(last.getTime() + RECOVERY_MARGIN_MS),
    });
  });

  it('refuses a message that is not a stream batch’s metadata, naming what is missing', () => {
    expect(() => pipeBatchWindow('{"detail": {}}')).toThrow(/DDBStreamBatchInfo/);
  });
});

describe('recoverPipeDeadLetters on DynamoDB Local', () => {
  it('queues the events written in each batch’s span for fan-out once, deletes the dead letters, and leaves what it cannot read', async () => {
    const now = Date.now();
    const clock = new ManualClock(new Date(now));
    const log = new DynamoEventLog(local.client, await local.table(EVENTS_TABLE), { clock });
    const partnerId = id('ptr');
    const inSpan = [
      (await log.append(newEvent(partnerId))).event,
      (await log.append(newEvent(partnerId))).event,
    ];
    clock.advance((3 * RECOVERY_MARGIN_MS) / 1000);
    await log.append(newEvent(partnerId));

    const letters = new Letters([
      pipeDeadLetter(new Date(now), new Date(now + 1000)),
      // The same batch again (a second failure of it): its events are queued once.
      pipeDeadLetter(new Date(now), new Date(now + 1000)),
      'not a dead letter',
    ]);
    const fanout = new RecordingQueue();

    const report = await recoverPipeDeadLetters({ events: log, fanout, deadLetters: letters, clock }, 60_000);

    expect(report).toEqual({ batches: 2, events: 2, left: 1 });
    expect(fanout.put.map((r) => r.id).sort()).toEqual(inSpan.map((e) => e.id).sort());
    expect(fanout.put[0]).toEqual({
      id: expect.any(String),
      partnerId,
      type: inSpan[0]?.type,
      createdAt: inSpan[0]?.createdAt,
    });
    expect(letters.deleted).toEqual(['r0', 'r1']);
  });

  it('queues a keyed event again with its ordering key and place, an event without a key without them', async () => {
    const now = Date.now();
    const clock = new ManualClock(new Date(now));
    const log = new DynamoEventLog(local.client, await local.table(EVENTS_TABLE), { clock });
    const partnerId = id('ptr');
    const plain = (await log.append(newEvent(partnerId))).event;
    const keyed = (await log.append(newEvent(partnerId, { orderingKey: 'order#9' }))).event;
    const fanout = new RecordingQueue();

    await recoverPipeDeadLetters(
      {
        events: log,
        fanout,
        deadLetters: new Letters([pipeDeadLetter(new Date(now), new Date(now + 1000))]),
        clock,
      },
      60_000,
    );

    const ref = ({ id, type, createdAt }: typeof plain) => ({ id, partnerId, type, createdAt });
    expect(fanout.put.toSorted((a, b) => a.id.localeCompare(b.id))).toEqual(
      [ref(plain), { ...ref(keyed), orderingKey: 'order#9', keySeq: 1 }].toSorted((a, b) =>
        a.id.localeCompare(b.id),
      ),
    );
  });

  it('makes no second delivery when an event that did get through is fanned out again', async () => {
    const subscriptions = new DynamoSubscriptionStore(
      local.client,
      await local.table(SUBSCRIPTIONS_TABLE),
      testCipher(),
    );
    const deliveriesTable = await local.table(DELIVERIES_TABLE);
    const deliveries = new DynamoDeliveryStore(local.client, deliveriesTable);
    const partnerId = id('ptr');
    await subscriptions.put(makeSubscription(partnerId, { eventTypes: [] }));
    const sent: OutgoingMessage<DeliveryMessage>[] = [];
    const deps = {
      subscriptions,
      events: new DynamoEventLog(local.client, await local.table(EVENTS_TABLE)),
      deliveries,
      deliveryQueue: { send: async (m: OutgoingMessage<DeliveryMessage>[]) => void sent.push(...m) },
      clock: new ManualClock(),
      lines: new DynamoOrderedLines(local.client, deliveriesTable),
      fanoutQueue: { send: async () => {} },
    };
    const event = makeEvent(partnerId);

    expect(await fanOutEvent(deps, event)).toBe(1);
    expect(await fanOutEvent(deps, event)).toBe(1);

    // The second fan-out finds the delivery the first made: one id, queued again only while untried.
    expect(new Set(sent.map((m) => m.body.deliveryId)).size).toBe(1);
  });
});
