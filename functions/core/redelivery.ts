import {
  DeliveriesNotQueuedError,
  MessagesNotSentError,
  SubscriptionDisabledError,
  SubscriptionNotFoundError,
  TooManyRequestsError,
} from './errors.ts';
import { getEvent } from './events.ts';
import { laneOf, newDelivery, queuedDelivery } from './fanout.ts';
import {
  type Delivery,
  type DeliveryMessage,
  type DeliveryOrigin,
  type Event,
  type Subscription,
  WEBHOOK_TEST,
} from './model.ts';
import type {
  Allowance,
  Clock,
  DeliveryStore,
  EventLog,
  QueueSender,
  RateLimitedAction,
  SubscriptionStore,
} from './ports.ts';
import { getSubscription, subscriptionTakes } from './subscriptions.ts';

/** Events one replay request queues at most; the partner continues from `next`. */
export const REPLAY_LIMIT = 1000;
/** Pages of the log one replay request reads at most. */
const REPLAY_MAX_PAGES = 20;

/**
 * How often a partner may replay or test one subscription: a replay can queue REPLAY_LIMIT
 * callbacks and a test writes an event, so unbounded they would turn one client loop into a
 * flood of traffic to the partner's own endpoint and into the log.
 */
export const REPLAY_ALLOWANCE: Allowance = { limit: 1, windowMs: 10_000 };
export const TEST_ALLOWANCE: Allowance = { limit: 10, windowMs: 60_000 };

const ALLOWANCES: Record<RateLimitedAction, Allowance> = { replay: REPLAY_ALLOWANCE, test: TEST_ALLOWANCE };

export interface RedeliveryDeps {
  events: EventLog;
  subscriptions: SubscriptionStore;
  deliveries: DeliveryStore;
  deliveryQueue: QueueSender<DeliveryMessage>;
  clock: Clock;
}

/**
 * Creates and queues a new delivery of each event to its subscription. Each has a new id, so
 * a new `webhook-id`: a receiver that deduplicates will not drop it as a retry; the event id
 * in the body is the original's.
 * 1. Store the deliveries, then send their queue messages.
 * 2. When some messages were not sent, end those deliveries `skipped` ('not queued'), and
 *    answer 503 so the partner asks again after `retryAfterSeconds` (a caller whose request
 *    spent an allowance says when it reopens); the ones that were sent go out as usual.
 */
async function queueDeliveries(
  deps: RedeliveryDeps,
  pairs: readonly { event: Pick<Event, 'id' | 'partnerId' | 'type'>; subscription: Subscription }[],
  origin: Exclude<DeliveryOrigin, 'fanout'>,
  retryAfterSeconds = 1,
): Promise<Delivery[]> {
  const now = deps.clock.now();
  const deliveries = pairs.map(({ event, subscription }) => newDelivery(event, subscription.id, origin, now));
  if (deliveries.length === 0) return deliveries;
  await deps.deliveries.create(deliveries);
  try {
    await deps.deliveryQueue.send(
      deliveries.map((d, i) => queuedDelivery(d, laneOf(pairs[i]?.subscription ?? {}))),
    );
  } catch (error) {
    // Skipped rather than deleted: a failed send can be ambiguous (a request that timed out
    // after the queue took it), and the dispatcher still tries a skipped delivery whose
    // message does arrive, where a deleted one would be dropped unsent. The partner's log
    // also shows what became of the request it was told to retry.
    const unsent =
      error instanceof MessagesNotSentError ? error.unsent.flatMap((i) => deliveries[i] ?? []) : deliveries;
    const at = deps.clock.now().toISOString();
    // Settled, not awaited one by one: a store that fails too must not turn the 503 into a 500.
    await Promise.allSettled(unsent.map((d) => deps.deliveries.skip(d.id, 'not queued', at)));
    throw new DeliveriesNotQueuedError(unsent.length, deliveries.length, error, retryAfterSeconds);
  }
  return deliveries;
}

async function activeSubscription(deps: RedeliveryDeps, partnerId: string, subscriptionId: string) {
  const subscription = await getSubscription(deps, partnerId, subscriptionId);
  if (subscription.status !== 'active') throw new SubscriptionDisabledError(subscriptionId);
  return subscription;
}

/**
 * Counts one use of a rate-limited action on the subscription (see ALLOWANCES).
 * @throws TooManyRequestsError when its allowance is used up, saying when to try again
 */
async function takeAllowance(deps: RedeliveryDeps, subscription: Subscription, action: RateLimitedAction) {
  const allowance = ALLOWANCES[action];
  const result = await deps.subscriptions.takeAllowance(subscription.id, action, allowance, deps.clock.now());
  if (result === undefined) throw new SubscriptionNotFoundError(subscription.id);
  if (!result.allowed) {
    const seconds = Math.ceil(result.retryAfterMs / 1000);
    throw new TooManyRequestsError(
      `${action} of subscription ${subscription.id} is allowed ${allowance.limit} time(s) per ${allowance.windowMs / 1000} s; try again in ${seconds} s`,
      seconds,
    );
  }
}

/**
 * Sends one of the partner's events again.
 * 1. Load the event (partner-scoped: another partner's is not found).
 * 2. To the one subscription named, which must be active, or else to every active
 *    subscription whose types and payload filter take the event.
 * 3. Create and queue a new delivery for each.
 */
export async function redeliverEvent(
  deps: RedeliveryDeps,
  partnerId: string,
  eventId: string,
  subscriptionId?: string,
): Promise<Delivery[]> {
  const event = await getEvent(deps, partnerId, eventId);
  const subscriptions =
    subscriptionId === undefined
      ? (await deps.subscriptions.listActive(partnerId)).filter((s) => subscriptionTakes(s, event))
      : [await activeSubscription(deps, partnerId, subscriptionId)];
  return queueDeliveries(
    deps,
    subscriptions.map((subscription) => ({ event, subscription })),
    'redelivery',
  );
}

export interface ReplayRequest {
  /** Replay events created at or after this time. */
  since: string;
  /** Continue a replay after this event (the `next` of the previous answer). */
  after?: string;
}

export interface ReplayResult {
  queued: number;
  /** Set when REPLAY_LIMIT was reached: pass it as `after` to replay the rest. */
  next: string | null;
}

/**
 * Re-sends everything since a time to one subscription, e.g. after its receiver lost data.
 * 1. Load the subscription, which must be active, and take one replay from its allowance
 *    (REPLAY_ALLOWANCE; 429 when used up).
 * 2. Page through the partner's events since then (after `after`, when continuing), keeping
 *    those the subscription's filter takes, up to REPLAY_LIMIT events or REPLAY_MAX_PAGES pages.
 * 3. Create and queue a new delivery for each; say where to continue if a bound was hit.
 */
export async function replaySubscription(
  deps: RedeliveryDeps,
  partnerId: string,
  subscriptionId: string,
  request: ReplayRequest,
): Promise<ReplayResult> {
  const subscription = await activeSubscription(deps, partnerId, subscriptionId);
  await takeAllowance(deps, subscription, 'replay');
  const wanted: Event[] = [];
  let after = request.after;
  let cutShort = false;
  for (let pages = 0; wanted.length < REPLAY_LIMIT; pages++) {
    // A narrow filter over a long log: stop after a bounded read and say where to go on.
    if (pages >= REPLAY_MAX_PAGES) {
      cutShort = true;
      break;
    }
    const page = await deps.events.list(partnerId, {
      since: request.since,
      limit: Math.min(500, REPLAY_LIMIT - wanted.length),
      ...(after === undefined ? {} : { after }),
    });
    wanted.push(...page.items.filter((e) => subscriptionTakes(subscription, e)));
    // The log's cursor also moves past events a filtered page passed over.
    if (page.next === null || page.next === after) break;
    after = page.next;
  }
  await queueDeliveries(
    deps,
    wanted.map((event) => ({ event, subscription })),
    'replay',
    // This replay spent the allowance: asking again sooner would only be refused with a 429.
    Math.ceil(REPLAY_ALLOWANCE.windowMs / 1000),
  );
  return { queued: wanted.length, next: wanted.length >= REPLAY_LIMIT || cutShort ? (after ?? null) : null };
}

/**
 * Sends a `webhook.test` event to one subscription, so a partner can check its receiver.
 * 1. Load the subscription, which must be active, and take one test from its allowance
 *    (TEST_ALLOWANCE; 429 when used up).
 * 2. Append the test event to the partner's log (pollable like any other; fan-out never
 *    delivers this type, so no other subscription gets it).
 * 3. Create and queue its delivery to this subscription.
 */
export async function sendTestEvent(
  deps: RedeliveryDeps,
  partnerId: string,
  subscriptionId: string,
): Promise<{ event: Event; delivery: Delivery }> {
  const subscription = await activeSubscription(deps, partnerId, subscriptionId);
  await takeAllowance(deps, subscription, 'test');
  const now = deps.clock.now();
  const { event } = await deps.events.append({
    partnerId,
    type: WEBHOOK_TEST,
    payload: { subscriptionId, message: 'A test event, sent at your request.' },
    createdAt: now.toISOString(),
  });
  const [delivery] = await queueDeliveries(deps, [{ event, subscription }], 'test');
  if (!delivery) throw new Error('test delivery was not created');
  return { event, delivery };
}
