import 'aws-sdk-client-mock-vitest/extend';
import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqsQueue } from '../../functions/adapters/aws/sqs-queue.ts';
import { openDatabase, type SqliteDatabase } from '../../functions/adapters/sqlite/database.ts';
import { SqliteDeliveryStore } from '../../functions/adapters/sqlite/deliveries.ts';
import { SqliteEventLog } from '../../functions/adapters/sqlite/events.ts';
import { SqliteSubscriptionStore } from '../../functions/adapters/sqlite/subscriptions.ts';
import {
  DeliveriesNotQueuedError,
  MessagesNotSentError,
  ServiceUnavailableError,
  SubscriptionDisabledError,
  TooManyRequestsError,
} from '../../functions/core/errors.ts';
import { newId } from '../../functions/core/ids.ts';
import type { Delivery, DeliveryMessage, Subscription } from '../../functions/core/model.ts';
import type { OutgoingMessage, QueueSender } from '../../functions/core/ports.ts';
import {
  REPLAY_ALLOWANCE,
  type RedeliveryDeps,
  redeliverEvent,
  replaySubscription,
  sendTestEvent,
  TEST_ALLOWANCE,
} from '../../functions/core/redelivery.ts';
import { ManualClock } from '../contract/fixtures.ts';
import { testCipher } from '../support/cipher.ts';

const QUEUE_URL = 'https://sqs.eu-west-1.amazonaws.com/123456789012/delivery';
const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const sqs = mockClient(SQSClient);

/** A QueueSender that records what it sent and fails as the test says. */
class ScriptedQueue implements QueueSender<DeliveryMessage> {
  readonly sent: OutgoingMessage<DeliveryMessage>[] = [];
  /** Positions of a send's messages to refuse; 'all' fails the whole send. */
  refuse: number[] | 'all' = [];

  async send(messages: OutgoingMessage<DeliveryMessage>[]): Promise<void> {
    if (this.refuse === 'all') throw new Error('queue unreachable');
    const refused = this.refuse;
    this.sent.push(...messages.filter((_, i) => !refused.includes(i)));
    if (refused.length > 0) throw new MessagesNotSentError('some were not sent', refused);
  }
}

describe('partner-requested deliveries when the queue fails', () => {
  let db: SqliteDatabase;
  let clock: ManualClock;
  let queue: ScriptedQueue;
  let deps: RedeliveryDeps;
  let subscription: Subscription;
  const partnerId = newId('ptr');

  beforeEach(async () => {
    db = openDatabase(':memory:');
    clock = new ManualClock();
    queue = new ScriptedQueue();
    deps = {
      events: new SqliteEventLog(db),
      subscriptions: new SqliteSubscriptionStore(db, testCipher()),
      deliveries: new SqliteDeliveryStore(db),
      deliveryQueue: queue,
      clock,
    };
    const now = clock.now().toISOString();
    subscription = {
      id: newId('sub'),
      partnerId,
      url: 'https://partner.example/hooks',
      eventTypes: [],
      status: 'active',
      secrets: [{ secret: SECRET, createdAt: now }],
      createdAt: now,
      updatedAt: now,
    };
    await deps.subscriptions.put(subscription);
  });

  afterEach(() => {
    db.close();
    sqs.reset();
  });

  async function publish(count: number): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < count; i++) {
      const { event } = await deps.events.append({
        partnerId,
        type: 'order.created',
        payload: { i },
        createdAt: clock.now().toISOString(),
      });
      ids.push(event.id);
    }
    return ids;
  }

  /** The subscription's deliveries, oldest first. */
  async function stored(): Promise<Delivery[]> {
    const page = await deps.deliveries.listBySubscription(subscription.id, { limit: 100 });
    return page.items.toReversed();
  }

  it('queues every delivery and skips none when the send succeeds', async () => {
    await publish(3);

    expect(
      await replaySubscription(deps, partnerId, subscription.id, { since: clock.now().toISOString() }),
    ).toEqual({ queued: 3, next: null });

    expect((await stored()).map((d) => d.status)).toEqual(['pending', 'pending', 'pending']);
    expect(queue.sent).toHaveLength(3);
  });

  it('ends every new delivery skipped when the send fails outright, and answers 503', async () => {
    await publish(3);
    queue.refuse = 'all';
    const since = clock.now().toISOString();
    clock.advance(1);

    const replay = replaySubscription(deps, partnerId, subscription.id, { since });

    await expect(replay).rejects.toThrow(DeliveriesNotQueuedError);
    await expect(replay).rejects.toBeInstanceOf(ServiceUnavailableError);
    // Not sooner than the replay allowance lets it in again: a retry then is not a 429.
    await expect(replay).rejects.toMatchObject({ retryAfterSeconds: 10 });
    const deliveries = await stored();
    expect(deliveries).toHaveLength(3);
    for (const d of deliveries) {
      expect(d).toMatchObject({
        status: 'skipped',
        skippedReason: 'not queued',
        updatedAt: clock.now().toISOString(),
      });
    }
  });

  it('ends only the deliveries whose messages were not sent', async () => {
    await publish(4);
    queue.refuse = [1, 3];

    await expect(
      replaySubscription(deps, partnerId, subscription.id, { since: clock.now().toISOString() }),
    ).rejects.toThrow('2 of 4 deliveries could not be queued');

    const deliveries = await stored();
    expect(deliveries.map((d) => d.status)).toEqual(['pending', 'skipped', 'pending', 'skipped']);
    // Every delivery still pending has its message on the queue: nothing is left orphaned.
    expect(queue.sent.map((m) => m.body.deliveryId).sort()).toEqual(
      deliveries
        .filter((d) => d.status === 'pending')
        .map((d) => d.id)
        .sort(),
    );
  });

  it('skips the redelivery of an event that could not be queued', async () => {
    const [eventId = ''] = await publish(1);
    queue.refuse = 'all';

    await expect(redeliverEvent(deps, partnerId, eventId)).rejects.toThrow(DeliveriesNotQueuedError);

    expect(await stored()).toMatchObject([
      { origin: 'redelivery', status: 'skipped', skippedReason: 'not queued' },
    ]);
  });

  it('skips the test delivery that could not be queued; its event stays in the log', async () => {
    queue.refuse = 'all';

    await expect(sendTestEvent(deps, partnerId, subscription.id)).rejects.toThrow(DeliveriesNotQueuedError);

    expect(await stored()).toMatchObject([
      { origin: 'test', status: 'skipped', skippedReason: 'not queued' },
    ]);
    expect((await deps.events.list(partnerId, { limit: 10 })).items.map((e) => e.type)).toEqual([
      'webhook.test',
    ]);
  });

  it('on SQS, ends only the deliveries of entries that still failed after the retries, across batches', async () => {
    await publish(12);
    deps.deliveryQueue = new SqsQueue<DeliveryMessage>(new SQSClient({ region: 'eu-west-1' }), QUEUE_URL, {
      backoffMs: 1,
    });
    // First batch (messages 0-9): entry 3 keeps failing. Second batch (10-11): entry 1 is refused.
    sqs.on(SendMessageBatchCommand).callsFake((input: { Entries?: { Id?: string }[] }) => {
      const ids = (input.Entries ?? []).map((e) => e.Id);
      if (ids.length === 2)
        return { Failed: [{ Id: '1', Code: 'InvalidParameterValue', SenderFault: true }] };
      return ids.includes('3')
        ? { Failed: [{ Id: '3', Code: 'InternalError', SenderFault: false }] }
        : { Failed: [] };
    });

    await expect(
      replaySubscription(deps, partnerId, subscription.id, { since: clock.now().toISOString() }),
    ).rejects.toThrow('2 of 12 deliveries could not be queued');

    const statuses = (await stored()).map((d) => d.status);
    expect(statuses.flatMap((s, i) => (s === 'skipped' ? [i] : []))).toEqual([3, 11]);
    expect(statuses.filter((s) => s === 'pending')).toHaveLength(10);
  });
});

describe('rate limits of replay and test', () => {
  let db: SqliteDatabase;
  let clock: ManualClock;
  let deps: RedeliveryDeps;
  const partnerId = newId('ptr');

  beforeEach(() => {
    db = openDatabase(':memory:');
    clock = new ManualClock();
    deps = {
      events: new SqliteEventLog(db),
      subscriptions: new SqliteSubscriptionStore(db, testCipher()),
      deliveries: new SqliteDeliveryStore(db),
      deliveryQueue: new ScriptedQueue(),
      clock,
    };
  });

  afterEach(() => {
    db.close();
  });

  async function subscribe(status: Subscription['status'] = 'active'): Promise<string> {
    const now = clock.now().toISOString();
    const subscription: Subscription = {
      id: newId('sub'),
      partnerId,
      url: 'https://partner.example/hooks',
      eventTypes: [],
      status,
      secrets: [{ secret: SECRET, createdAt: now }],
      createdAt: now,
      updatedAt: now,
    };
    await deps.subscriptions.put(subscription);
    return subscription.id;
  }

  const replay = (subscriptionId: string) =>
    replaySubscription(deps, partnerId, subscriptionId, { since: clock.now().toISOString() });

  it('allows one replay per subscription every 10 s, then answers 429 saying when to try again', async () => {
    const subscriptionId = await subscribe();
    const other = await subscribe();
    await replay(subscriptionId);
    clock.advance(3);

    const error = await replay(subscriptionId).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(TooManyRequestsError);
    expect(error).toMatchObject({ status: 429, retryAfterSeconds: REPLAY_ALLOWANCE.windowMs / 1000 - 3 });
    await expect(replay(other)).resolves.toEqual({ queued: 0, next: null });
    clock.advance(7);
    await expect(replay(subscriptionId)).resolves.toEqual({ queued: 0, next: null });
  });

  it('allows 10 test events per subscription a minute', async () => {
    const subscriptionId = await subscribe();
    for (let i = 0; i < TEST_ALLOWANCE.limit; i++) await sendTestEvent(deps, partnerId, subscriptionId);
    clock.advance(20);

    const error = await sendTestEvent(deps, partnerId, subscriptionId).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(TooManyRequestsError);
    expect(error).toMatchObject({ retryAfterSeconds: 40 });
    // The refused test wrote nothing.
    expect((await deps.events.list(partnerId, { limit: 100 })).items).toHaveLength(TEST_ALLOWANCE.limit);
    clock.advance(40);
    await expect(sendTestEvent(deps, partnerId, subscriptionId)).resolves.toMatchObject({
      event: { type: 'webhook.test' },
    });
  });

  it('refuses a disabled subscription with 409 without using its allowance', async () => {
    const subscriptionId = await subscribe('disabled');

    await expect(replay(subscriptionId)).rejects.toThrow(SubscriptionDisabledError);

    expect(
      await deps.subscriptions.takeAllowance(subscriptionId, 'replay', REPLAY_ALLOWANCE, clock.now()),
    ).toEqual({ allowed: true });
  });
});
