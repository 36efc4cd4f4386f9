import { beforeEach, describe, expect, it } from 'vitest';
import {
  closeDatabase,
  openDatabase,
  type SqliteDatabase,
} from '../../functions/adapters/sqlite/database.ts';
import { SqliteDeliveryStore } from '../../functions/adapters/sqlite/deliveries.ts';
import { SqliteEventLog } from '../../functions/adapters/sqlite/events.ts';
import { SqliteOrderedLines } from '../../functions/adapters/sqlite/ordered-lines.ts';
import { SqliteSubscriptionStore } from '../../functions/adapters/sqlite/subscriptions.ts';
import { type DeliverDeps, deliver } from '../../functions/core/delivery.ts';
import { fanoutDeliveryId } from '../../functions/core/fanout.ts';
import { newId } from '../../functions/core/ids.ts';
import type { Delivery, DeliveryMessage, Subscription } from '../../functions/core/model.ts';
import type {
  CallbackRequest,
  CallbackResult,
  ConnectionPusher,
  DeliveryQueue,
  OutgoingMessage,
  ParkedTry,
  PushRequest,
} from '../../functions/core/ports.ts';
import { DEFAULT_RETRY_SCHEDULE } from '../../functions/core/retry.ts';
import { verifySignature } from '../../functions/core/signing.ts';
import { testCipher } from '../support/cipher.ts';

const NOW = new Date('2026-11-25T12:00:00.000Z');
const DAY = 24 * 60 * 60 * 1000;
const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

/** A CallbackSender that records requests and answers from a script. */
function scriptedSender(results: CallbackResult[]) {
  const requests: CallbackRequest[] = [];
  return {
    requests,
    async send(request: CallbackRequest): Promise<CallbackResult> {
      requests.push(request);
      return results.shift() ?? { statusCode: 200, durationMs: 1 };
    },
  };
}

/** A DeliveryQueue that records what it is given. */
function recordingQueue(hasSlowLane = false) {
  const sent: OutgoingMessage<DeliveryMessage>[] = [];
  const dead: DeliveryMessage[] = [];
  const queue: DeliveryQueue & { sent: typeof sent; dead: typeof dead } = {
    hasSlowLane,
    sent,
    dead,
    async send(messages) {
      sent.push(...messages);
    },
    async deadLetter(m) {
      dead.push(m);
    },
  };
  return queue;
}

/**
 * SQLite stores in memory holding one event, one subscription and its untried delivery (with
 * `stored` false, the delivery is left to the message, as fan-out's storeAtFirstTry leaves it).
 */
async function storesWithOneDelivery(status: Subscription['status'] = 'active', stored = true) {
  const db = openDatabase(':memory:');
  const events = new SqliteEventLog(db);
  const subscriptions = new SqliteSubscriptionStore(db, testCipher());
  const deliveries = new SqliteDeliveryStore(db);
  const partnerId = newId('ptr');
  const { event } = await events.append({
    partnerId,
    type: 'order.created',
    payload: { orderId: 'o_1' },
    createdAt: NOW.toISOString(),
  });
  const subscription: Subscription = {
    id: newId('sub'),
    partnerId,
    url: 'https://partner.example/hooks',
    eventTypes: [],
    status,
    secrets: [{ secret: SECRET, createdAt: NOW.toISOString() }],
    createdAt: NOW.toISOString(),
    updatedAt: NOW.toISOString(),
  };
  await subscriptions.put(subscription);
  const delivery: Delivery = {
    id: fanoutDeliveryId(event.id, subscription.id),
    eventId: event.id,
    subscriptionId: subscription.id,
    partnerId,
    eventType: event.type,
    origin: 'fanout',
    status: 'pending',
    attempts: 0,
    createdAt: NOW.toISOString(),
    updatedAt: NOW.toISOString(),
  };
  if (stored) await deliveries.createForEvent([delivery]);
  const message: DeliveryMessage = {
    deliveryId: delivery.id,
    eventId: event.id,
    subscriptionId: subscription.id,
    partnerId,
    ...(stored ? {} : { unstored: { createdAt: delivery.createdAt, eventType: delivery.eventType } }),
  };
  return { db, events, subscriptions, deliveries, subscription, message };
}

describe('deliver', () => {
  let deps: DeliverDeps & {
    sender: ReturnType<typeof scriptedSender>;
    queue: ReturnType<typeof recordingQueue>;
  };
  let message: DeliveryMessage;
  let subscription: Subscription;

  let db: SqliteDatabase;

  /** The message of try number `attempt`, at its place in the schedule. */
  function tryOf(attempt: number, step = attempt - 1): DeliveryMessage {
    return { ...message, attempt, step };
  }

  async function setUp(results: CallbackResult[], status: Subscription['status'] = 'active', stored = true) {
    const stores = await storesWithOneDelivery(status, stored);
    db = stores.db;
    subscription = stores.subscription;
    message = stores.message;
    deps = {
      events: stores.events,
      subscriptions: stores.subscriptions,
      deliveries: stores.deliveries,
      lines: new SqliteOrderedLines(stores.db),
      sender: scriptedSender(results),
      queue: recordingQueue(),
      clock: { now: () => NOW },
      retrySchedule: [0, 5, 300],
      deliveryTimeoutMs: 1000,
      disableAfterMs: DAY,
      random: () => 0.5,
    };
  }

  describe('a 2xx answer', () => {
    beforeEach(() => setUp([{ statusCode: 204, durationMs: 12 }]));

    it('marks the delivery succeeded and asks the queue to drop the message', async () => {
      expect(await deliver(deps, tryOf(1))).toEqual({ kind: 'done', reason: 'succeeded' });
      const stored = await deps.deliveries.get(message.deliveryId);
      expect(stored).toMatchObject({ status: 'succeeded', attempts: 1, lastAttemptAt: NOW.toISOString() });
      expect(stored?.nextAttemptAt).toBeUndefined();
      expect(await deps.deliveries.listAttempts(message.deliveryId)).toMatchObject([
        { number: 1, statusCode: 204, durationMs: 12 },
      ]);
    });

    it('posts the event signed with the delivery id as webhook-id', async () => {
      await deliver(deps, tryOf(1));
      const [request] = deps.sender.requests;
      expect(request?.url).toBe(subscription.url);
      expect(request?.headers['webhook-id']).toBe(message.deliveryId);
      expect(JSON.parse(request?.body ?? '')).toEqual({
        id: message.eventId,
        type: 'order.created',
        payload: { orderId: 'o_1' },
        createdAt: NOW.toISOString(),
      });
      expect(
        verifySignature({
          headers: request?.headers ?? {},
          body: request?.body ?? '',
          secret: SECRET,
          now: NOW,
        }),
      ).toBe(true);
    });

    it('skips a delivery that already succeeded, without sending again', async () => {
      await deliver(deps, tryOf(1));
      expect(await deliver(deps, tryOf(2))).toEqual({ kind: 'done', reason: 'already-succeeded' });
      expect(deps.sender.requests).toHaveLength(1);
    });
  });

  describe('a failed try', () => {
    it('queues the next try as a message of its own, in the slow lane, after a wait of at least 80% of the schedule’s', async () => {
      await setUp([{ statusCode: 500, durationMs: 3, responseExcerpt: 'oops' }]);
      deps.random = () => 0;
      expect(await deliver(deps, tryOf(1))).toEqual({ kind: 'retry', delaySeconds: 4 });
      expect(deps.queue.sent).toEqual([
        {
          body: { ...message, attempt: 2, step: 1, lane: 'slow' },
          delaySeconds: 4,
          groupId: subscription.id,
        },
      ]);
      expect(await deps.deliveries.get(message.deliveryId)).toMatchObject({
        status: 'failed',
        attempts: 1,
        nextAttemptAt: new Date(NOW.getTime() + 4000).toISOString(),
      });
      expect(await deps.deliveries.listAttempts(message.deliveryId)).toMatchObject([
        { number: 1, statusCode: 500, error: 'http_status', responseExcerpt: 'oops' },
      ]);
    });

    it('records a connection error with its kind', async () => {
      await setUp([{ error: 'timeout', errorMessage: 'no answer in 1000 ms', durationMs: 1000 }]);
      expect(await deliver(deps, tryOf(1))).toMatchObject({ kind: 'retry' });
      expect(await deps.deliveries.listAttempts(message.deliveryId)).toMatchObject([
        { number: 1, error: 'timeout', errorMessage: 'no answer in 1000 ms' },
      ]);
    });

    it('after the last scheduled try, puts the next try at the start of a fresh schedule in the dead-letter queue', async () => {
      await setUp([{ statusCode: 503, durationMs: 1 }]);
      expect(await deliver(deps, tryOf(3))).toEqual({ kind: 'dead' });
      expect(deps.queue.dead).toEqual([{ ...message, attempt: 4, step: 0 }]);
      expect(deps.queue.sent).toEqual([]);
      const stored = await deps.deliveries.get(message.deliveryId);
      expect(stored?.status).toBe('dead');
      expect(stored?.nextAttemptAt).toBeUndefined();
    });

    it('tries a redriven dead letter at once and numbers its attempts on, with the schedule from its start', async () => {
      await setUp([
        { statusCode: 500, durationMs: 1 },
        { statusCode: 500, durationMs: 1 },
        { statusCode: 200, durationMs: 1 },
      ]);
      await deliver(deps, tryOf(1, 2));
      const [redriven] = deps.queue.dead;
      if (!redriven) throw new Error('nothing dead-lettered');

      // The redriven message's failure waits the schedule's second wait (5 s), not its last.
      deps.random = () => 1;
      expect(await deliver(deps, redriven)).toEqual({ kind: 'retry', delaySeconds: 5 });
      const next = deps.queue.sent.at(-1)?.body;
      expect(next).toMatchObject({ attempt: 3, step: 1 });
      expect(await deliver(deps, next ?? message)).toEqual({ kind: 'done', reason: 'succeeded' });
      const attempts = await deps.deliveries.listAttempts(message.deliveryId);
      expect(attempts.map((a) => a.number)).toEqual([1, 2, 3]);
    });

    it('drops a stale copy of a message whose try is already recorded, without sending', async () => {
      await setUp([{ statusCode: 500, durationMs: 1 }]);
      await deliver(deps, tryOf(1));
      expect(await deliver(deps, tryOf(1))).toEqual({ kind: 'done', reason: 'stale' });
      expect(deps.sender.requests).toHaveLength(1);
      expect(deps.queue.sent).toHaveLength(1);
    });

    it('spends no try on an error of its own: the next try is queued before the attempt is recorded', async () => {
      await setUp([
        { statusCode: 500, durationMs: 1 },
        { statusCode: 500, durationMs: 1 },
      ]);
      const record = deps.deliveries.recordAttempt.bind(deps.deliveries);
      deps.deliveries.recordAttempt = async () => {
        throw new Error('store unavailable');
      };
      await expect(deliver(deps, tryOf(1))).rejects.toThrow('store unavailable');
      // The next try was queued already, so the delivery is not left without one ...
      expect(deps.queue.sent.map((m) => m.body.attempt)).toEqual([2]);
      // ... and the message comes back as the same try, which counts once.
      deps.deliveries.recordAttempt = record;
      expect(await deliver(deps, tryOf(1))).toMatchObject({ kind: 'retry' });
      expect(await deps.deliveries.get(message.deliveryId)).toMatchObject({ attempts: 1, status: 'failed' });
    });

    it('records nothing when the next try cannot be queued, so the same message tries again', async () => {
      await setUp([
        { statusCode: 500, durationMs: 1 },
        { statusCode: 500, durationMs: 1 },
      ]);
      deps.queue.send = async () => {
        throw new Error('queue unavailable');
      };
      await expect(deliver(deps, tryOf(1))).rejects.toThrow('queue unavailable');
      expect(await deps.deliveries.get(message.deliveryId)).toMatchObject({ attempts: 0, status: 'pending' });
      expect(await deps.deliveries.listAttempts(message.deliveryId)).toEqual([]);
    });

    it('takes the try and its place from the delivery for a message that carries neither', async () => {
      await setUp([
        { statusCode: 500, durationMs: 1 },
        { statusCode: 500, durationMs: 1 },
      ]);
      await deliver(deps, tryOf(1));
      deps.random = () => 1;
      expect(await deliver(deps, message)).toEqual({ kind: 'retry', delaySeconds: 300 });
      expect(deps.queue.sent.at(-1)?.body).toMatchObject({ attempt: 3, step: 2 });
    });
  });

  describe('lanes', () => {
    async function failing() {
      await deps.subscriptions.updateHealth(subscription.id, { kind: 'failing', since: NOW.toISOString() });
    }

    it('moves a main-lane message of a failing endpoint to the slow lane, untried', async () => {
      await setUp([]);
      deps.queue = recordingQueue(true);
      await failing();
      expect(await deliver(deps, tryOf(1))).toEqual({ kind: 'moved' });
      expect(deps.sender.requests).toHaveLength(0);
      expect(deps.queue.sent).toEqual([
        { body: { ...message, attempt: 1, step: 0, lane: 'slow' }, groupId: subscription.id },
      ]);
      expect(await deps.deliveries.get(message.deliveryId)).toMatchObject({ attempts: 0, status: 'pending' });
    });

    it('tries a failing endpoint’s slow-lane message, and a healthy endpoint’s in either lane', async () => {
      await setUp([{ statusCode: 204, durationMs: 1 }]);
      deps.queue = recordingQueue(true);
      await failing();
      expect(await deliver(deps, { ...tryOf(1), lane: 'slow' })).toEqual({
        kind: 'done',
        reason: 'succeeded',
      });
      expect((await deps.subscriptions.get(subscription.id))?.failingSince).toBeUndefined();
    });

    it('never moves a message where the queue has no slow lane', async () => {
      await setUp([{ statusCode: 204, durationMs: 1 }]);
      await failing();
      expect(await deliver(deps, tryOf(1))).toEqual({ kind: 'done', reason: 'succeeded' });
    });
  });

  describe('Retry-After', () => {
    it('waits what a 429 asked for, within the schedule’s longest wait', async () => {
      await setUp([{ statusCode: 429, retryAfterSeconds: 120, durationMs: 1 }]);
      expect(await deliver(deps, tryOf(1))).toEqual({ kind: 'retry', delaySeconds: 120 });
    });

    it('caps a longer Retry-After at the schedule’s longest wait', async () => {
      await setUp([{ statusCode: 503, retryAfterSeconds: 86_400, durationMs: 1 }]);
      expect(await deliver(deps, tryOf(1))).toEqual({ kind: 'retry', delaySeconds: 300 });
    });

    it('does not buy a try beyond the schedule', async () => {
      await setUp([{ statusCode: 429, retryAfterSeconds: 10, durationMs: 1 }]);
      expect(await deliver(deps, tryOf(3))).toEqual({ kind: 'dead' });
    });
  });

  describe('endpoint health', () => {
    async function disabledEvents() {
      const page = await deps.events.list(subscription.partnerId, {
        limit: 10,
        types: ['subscription.disabled'],
      });
      return page.items;
    }

    it('disables the subscription on 410 Gone, without retrying, and tells the partner in its log', async () => {
      await setUp([{ statusCode: 410, durationMs: 1 }]);
      expect(await deliver(deps, tryOf(1))).toEqual({ kind: 'done', reason: 'endpoint-gone' });
      expect(await deps.subscriptions.get(subscription.id)).toMatchObject({
        status: 'disabled',
        disabledReason: 'the endpoint answered 410 Gone',
      });
      // Tried, and not to be tried again: skipped, because the subscription is now disabled.
      const stored = await deps.deliveries.get(message.deliveryId);
      expect(stored).toMatchObject({
        status: 'skipped',
        skippedReason: 'subscription disabled',
        attempts: 1,
      });
      expect(stored?.nextAttemptAt).toBeUndefined();
      expect(deps.queue.sent).toEqual([]);
      expect(deps.queue.dead).toEqual([]);
      const [event] = await disabledEvents();
      expect(event?.payload).toMatchObject({ subscriptionId: subscription.id, url: subscription.url });
    });

    it('marks when a run of failures began, and a success ends it', async () => {
      await setUp([
        { statusCode: 500, durationMs: 1 },
        { statusCode: 200, durationMs: 1 },
      ]);
      await deliver(deps, tryOf(1));
      expect((await deps.subscriptions.get(subscription.id))?.failingSince).toBe(NOW.toISOString());
      await deliver(deps, tryOf(2));
      expect((await deps.subscriptions.get(subscription.id))?.failingSince).toBeUndefined();
    });

    it('disables a subscription failing without a success for the whole period, once', async () => {
      await setUp([
        { statusCode: 500, durationMs: 1 },
        { statusCode: 500, durationMs: 1 },
        { statusCode: 500, durationMs: 1 },
      ]);
      let now = NOW;
      deps.clock = { now: () => now };
      await deliver(deps, tryOf(1));
      now = new Date(NOW.getTime() + DAY - 1000);
      await deliver(deps, tryOf(2));
      expect((await deps.subscriptions.get(subscription.id))?.status).toBe('active');

      now = new Date(NOW.getTime() + DAY);
      await deliver(deps, tryOf(3));
      expect(await deps.subscriptions.get(subscription.id)).toMatchObject({
        status: 'disabled',
        disabledReason: `no successful delivery since ${NOW.toISOString()}`,
      });
      expect(await disabledEvents()).toHaveLength(1);
    });
  });

  describe('nothing to send to', () => {
    it('drops the message of a disabled subscription without sending, and ends the delivery skipped', async () => {
      await setUp([], 'disabled');
      expect(await deliver(deps, tryOf(1))).toEqual({ kind: 'done', reason: 'disabled' });
      expect(deps.sender.requests).toHaveLength(0);
      const stored = await deps.deliveries.get(message.deliveryId);
      expect(stored).toMatchObject({
        status: 'skipped',
        skippedReason: 'subscription disabled',
        attempts: 0,
        updatedAt: NOW.toISOString(),
      });
    });

    it('drops the message of a deleted subscription without sending, and ends the delivery skipped', async () => {
      await setUp([]);
      await deps.subscriptions.delete(subscription.id);
      expect(await deliver(deps, tryOf(1))).toEqual({ kind: 'done', reason: 'gone' });
      expect(deps.sender.requests).toHaveLength(0);
      expect(await deps.deliveries.get(message.deliveryId)).toMatchObject({
        status: 'skipped',
        skippedReason: 'subscription deleted',
      });
    });

    it('drops the message of an expired event without sending, and ends the delivery skipped', async () => {
      await setUp([]);
      db.prepare('DELETE FROM events WHERE id = ?').run(message.eventId);
      expect(await deliver(deps, tryOf(1))).toEqual({ kind: 'done', reason: 'gone' });
      expect(deps.sender.requests).toHaveLength(0);
      expect(await deps.deliveries.get(message.deliveryId)).toMatchObject({
        status: 'skipped',
        skippedReason: 'event expired',
      });
    });

    it('skips a delivery that failed once and whose subscription was disabled before its next try', async () => {
      await setUp([{ statusCode: 500, durationMs: 1 }]);
      await deliver(deps, tryOf(1));
      await deps.subscriptions.updateHealth(subscription.id, {
        kind: 'disable',
        reason: 'disabled by the partner',
        at: NOW.toISOString(),
      });

      expect(await deliver(deps, tryOf(2))).toEqual({ kind: 'done', reason: 'disabled' });
      const stored = await deps.deliveries.get(message.deliveryId);
      expect(stored).toMatchObject({
        status: 'skipped',
        skippedReason: 'subscription disabled',
        attempts: 1,
      });
      expect(stored?.nextAttemptAt).toBeUndefined();
    });

    it('still sends a delivery skipped as not queued whose message arrives after all', async () => {
      await setUp([{ statusCode: 204, durationMs: 1 }]);
      await deps.deliveries.skip(message.deliveryId, 'not queued', NOW.toISOString());

      expect(await deliver(deps, tryOf(1))).toEqual({ kind: 'done', reason: 'succeeded' });
      const stored = await deps.deliveries.get(message.deliveryId);
      expect(stored).toMatchObject({ status: 'succeeded', attempts: 1 });
      expect(stored).not.toHaveProperty('skippedReason');
    });

    it('keeps a success when a stale copy of the message finds the subscription disabled', async () => {
      await setUp([{ statusCode: 200, durationMs: 1 }]);
      await deliver(deps, tryOf(1));
      await deps.subscriptions.updateHealth(subscription.id, {
        kind: 'disable',
        reason: 'disabled by the partner',
        at: NOW.toISOString(),
      });

      expect(await deliver(deps, tryOf(2))).toEqual({ kind: 'done', reason: 'already-succeeded' });
      expect(await deps.deliveries.get(message.deliveryId)).toMatchObject({ status: 'succeeded' });
    });
  });
  describe('a delivery fan-out queued without storing it', () => {
    const untried = (createdAt: string) => ({
      status: 'pending',
      attempts: 0,
      origin: 'fanout',
      eventType: 'order.created',
      createdAt,
    });

    it('is stored by its first try, with that try: one write', async () => {
      await setUp([{ statusCode: 204, durationMs: 7 }], 'active', false);
      expect(await deps.deliveries.get(message.deliveryId)).toBeUndefined();

      expect(await deliver(deps, tryOf(1))).toEqual({ kind: 'done', reason: 'succeeded' });

      expect(deps.sender.requests).toHaveLength(1);
      expect(await deps.deliveries.get(message.deliveryId)).toMatchObject({
        status: 'succeeded',
        attempts: 1,
        origin: 'fanout',
        createdAt: NOW.toISOString(),
      });
      expect(await deps.deliveries.listAttempts(message.deliveryId)).toEqual([
        expect.objectContaining({ number: 1, statusCode: 204, durationMs: 7 }),
      ]);
      expect(
        (await deps.deliveries.listByEvent(message.partnerId, message.eventId, { limit: 10 })).items,
      ).toHaveLength(1);
    });

    it('is stored failed by a failed first try, its next try queued with what stores it still', async () => {
      await setUp([{ statusCode: 500, durationMs: 1 }], 'active', false);

      expect(await deliver(deps, tryOf(1))).toMatchObject({ kind: 'retry' });

      expect(await deps.deliveries.get(message.deliveryId)).toMatchObject({ status: 'failed', attempts: 1 });
      expect(deps.queue.sent[0]?.body).toMatchObject({ attempt: 2, unstored: message.unstored });
    });

    it('sends nothing again for a copy of its message once its try is stored', async () => {
      await setUp([{ statusCode: 204, durationMs: 1 }], 'active', false);
      await deliver(deps, tryOf(1));

      expect(await deliver(deps, tryOf(1))).toEqual({ kind: 'done', reason: 'already-succeeded' });
      expect(deps.sender.requests).toHaveLength(1);
    });

    it('counts a try once when two copies were tried side by side', async () => {
      await setUp(
        [
          { statusCode: 500, durationMs: 1 },
          { statusCode: 500, durationMs: 1 },
        ],
        'active',
        false,
      );

      await Promise.all([deliver(deps, tryOf(1)), deliver(deps, tryOf(1))]);

      expect(await deps.deliveries.get(message.deliveryId)).toMatchObject({ status: 'failed', attempts: 1 });
      expect(await deps.deliveries.listAttempts(message.deliveryId)).toHaveLength(2);
    });

    it('is stored skipped, with the reason, when its subscription is disabled', async () => {
      await setUp([], 'disabled', false);

      expect(await deliver(deps, tryOf(1))).toEqual({ kind: 'done', reason: 'disabled' });

      expect(deps.sender.requests).toHaveLength(0);
      expect(await deps.deliveries.get(message.deliveryId)).toMatchObject({
        ...untried(NOW.toISOString()),
        status: 'skipped',
        skippedReason: 'subscription disabled',
        updatedAt: NOW.toISOString(),
      });
    });

    it('stays skipped when its event is fanned out again after its subscription is back on', async () => {
      await setUp([{ statusCode: 204, durationMs: 1 }], 'disabled', false);
      await deliver(deps, tryOf(1));
      await deps.subscriptions.put({ ...subscription, status: 'active' });

      expect(await deliver(deps, tryOf(1))).toEqual({ kind: 'done', reason: 'stale' });

      expect(deps.sender.requests).toHaveLength(0);
      expect(await deps.deliveries.get(message.deliveryId)).toMatchObject({ status: 'skipped' });
    });

    it('is stored pending when it moves to the slow lane, where it may wait', async () => {
      await setUp([], 'active', false);
      deps.queue = recordingQueue(true);
      await deps.subscriptions.updateHealth(subscription.id, { kind: 'failing', since: NOW.toISOString() });

      expect(await deliver(deps, tryOf(1))).toEqual({ kind: 'moved' });

      expect(await deps.deliveries.get(message.deliveryId)).toMatchObject(untried(NOW.toISOString()));
      expect(deps.queue.sent[0]?.body).toMatchObject({ lane: 'slow', attempt: 1 });
    });

    it('is gone when neither the store nor the message has it', async () => {
      await setUp([], 'active', false);
      const { unstored: _unstored, ...plain } = tryOf(1);

      expect(await deliver(deps, plain)).toEqual({ kind: 'done', reason: 'gone' });
      expect(await deps.deliveries.get(message.deliveryId)).toBeUndefined();
    });
  });
});

describe('the retry promise', () => {
  it('loses nothing to a receiver that is down for a day: with the default schedule and the shortest waits, the last try comes after it is back', async () => {
    const { db, events, subscriptions, deliveries, message: first } = await storesWithOneDelivery();

    // The fake clock moves by each queued wait; the receiver answers 503 for a whole day.
    let now = NOW.getTime();
    const backAt = NOW.getTime() + DAY;
    const queue = recordingQueue();
    const deps: DeliverDeps = {
      events,
      subscriptions,
      deliveries,
      lines: new SqliteOrderedLines(db),
      queue,
      sender: {
        async send() {
          return now >= backAt ? { statusCode: 204, durationMs: 1 } : { statusCode: 503, durationMs: 1 };
        },
      },
      clock: { now: () => new Date(now) },
      retrySchedule: DEFAULT_RETRY_SCHEDULE,
      deliveryTimeoutMs: 1000,
      // The endpoint is not disabled meanwhile: this is about the schedule alone.
      disableAfterMs: 7 * DAY,
      random: () => 0, // every wait at its shortest: 80% of the schedule's
    };

    let message: DeliveryMessage = { ...first, attempt: 1, step: 0 };
    let outcome = await deliver(deps, message);
    while (outcome.kind === 'retry') {
      const next = queue.sent.at(-1);
      if (next === undefined) throw new Error('no next try queued');
      now += (next.delaySeconds ?? 0) * 1000;
      message = next.body;
      outcome = await deliver(deps, message);
    }

    expect(outcome).toEqual({ kind: 'done', reason: 'succeeded' });
    expect(queue.dead).toEqual([]);
    expect(await deliveries.get(first.deliveryId)).toMatchObject({ status: 'succeeded' });
    expect(now - NOW.getTime()).toBeGreaterThanOrEqual(DAY);
    closeDatabase(db);
  });
});

describe('deliver: a connection subscription', () => {
  /** A pusher whose connection is open or not, which parks (or not) and answers from a script. */
  function scriptedPusher(options: {
    open: boolean[];
    park?: ('parked' | 'open')[];
    results?: (CallbackResult | undefined)[];
  }) {
    const pushed: PushRequest[] = [];
    const parked: ParkedTry[] = [];
    const pusher: ConnectionPusher & { pushed: PushRequest[]; parked: ParkedTry[] } = {
      pushed,
      parked,
      isOpen: async () => options.open.shift() ?? false,
      push: async (request) => {
        pushed.push(request);
        return options.results?.shift();
      },
      ...(options.park === undefined
        ? {}
        : {
            park: async (try_: ParkedTry) => {
              parked.push(try_);
              return options.park?.shift() ?? 'parked';
            },
          }),
    };
    return pusher;
  }

  async function setUp(pusher: ConnectionPusher, stored: boolean) {
    const stores = await storesWithOneDelivery('active', stored);
    const { url: _url, ...rest } = stores.subscription;
    await stores.subscriptions.put({ ...rest, transport: 'connection', updatedAt: NOW.toISOString() });
    const queue = recordingQueue();
    const deps: DeliverDeps = {
      events: stores.events,
      subscriptions: stores.subscriptions,
      deliveries: stores.deliveries,
      lines: new SqliteOrderedLines(stores.db),
      sender: scriptedSender([]),
      connections: pusher,
      queue,
      clock: { now: () => NOW },
      retrySchedule: [0, 5, 300],
      deliveryTimeoutMs: 1000,
      disableAfterMs: 5 * DAY,
    };
    return { ...stores, deps, queue };
  }

  it('with no connection open and no parking, queues the try again untried, delayed, marked waiting', async () => {
    const pusher = scriptedPusher({ open: [false] });
    const { deps, queue, deliveries, message, db } = await setUp(pusher, false);
    expect(await deliver(deps, message)).toEqual({ kind: 'waiting' });
    expect(pusher.pushed).toEqual([]);
    expect(queue.sent).toHaveLength(1);
    expect(queue.sent[0]?.body).toMatchObject({
      deliveryId: message.deliveryId,
      attempt: 1,
      step: 0,
      waiting: true,
    });
    expect(queue.sent[0]?.delaySeconds).toBe(300);
    // Stored, so it is listed while it waits; no try spent.
    expect((await deliveries.get(message.deliveryId))?.attempts).toBe(0);
    closeDatabase(db);
  });

  it('with no connection open, parks the try where the pusher parks them, and queues nothing', async () => {
    const pusher = scriptedPusher({ open: [false], park: ['parked'] });
    const { deps, queue, deliveries, message, subscription, db } = await setUp(pusher, false);
    expect(await deliver(deps, message)).toEqual({ kind: 'waiting' });
    expect(queue.sent).toEqual([]);
    expect(pusher.parked).toEqual([
      {
        partnerId: subscription.partnerId,
        subscriptionId: subscription.id,
        message: { ...message, attempt: 1, step: 0 },
        groupId: subscription.id,
      },
    ]);
    expect((await deliveries.get(message.deliveryId))?.status).toBe('pending');
    closeDatabase(db);
  });

  it('pushes at once when a connection opened as the try parked, and records the try once', async () => {
    const pusher = scriptedPusher({
      open: [false],
      park: ['open'],
      results: [{ statusCode: 200, durationMs: 4 }],
    });
    const { deps, queue, deliveries, message, db } = await setUp(pusher, false);
    expect(await deliver(deps, message)).toEqual({ kind: 'done', reason: 'succeeded' });
    expect(pusher.pushed).toHaveLength(1);
    expect(queue.sent).toEqual([]);
    const delivery = await deliveries.get(message.deliveryId);
    expect(delivery).toMatchObject({ status: 'succeeded', attempts: 1 });
    expect(await deliveries.listAttempts(message.deliveryId)).toHaveLength(1);
    closeDatabase(db);
  });

  it('parks again when the connection closed before the push; taken back a second time, it is queued, never lost', async () => {
    const pusher = scriptedPusher({ open: [true], park: ['open'], results: [undefined] });
    const { deps, queue, message, db } = await setUp(pusher, true);
    expect(await deliver(deps, message)).toEqual({ kind: 'waiting' });
    expect(pusher.pushed).toHaveLength(1);
    expect(pusher.parked).toHaveLength(1);
    expect(queue.sent).toHaveLength(1);
    expect(queue.sent[0]?.body).toMatchObject({ attempt: 1, waiting: true });
    closeDatabase(db);
  });
});
