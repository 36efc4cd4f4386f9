import type {
  CallbackResult,
  CallbackSender,
  Clock,
  DeliveryStore,
  EventLog,
  SubscriptionStore,
} from '../ports.ts';
import { toEventView } from './events.ts';
import { type HealthDeps, recordTry } from './health.ts';
import { newId } from './ids.ts';
import type { Attempt, Delivery, DeliveryMessage, SkippedReason } from './model.ts';
import { retryAfterDelaySeconds, retryDelaySeconds } from './retry.ts';
import { webhookHeaders } from './signing.ts';
import { signingSecrets } from './subscriptions.ts';

export interface DeliverDeps extends HealthDeps {
  events: EventLog;
  subscriptions: SubscriptionStore;
  deliveries: DeliveryStore;
  sender: CallbackSender;
  clock: Clock;
  retrySchedule: readonly number[];
  deliveryTimeoutMs: number;
  random?: () => number;
}

/**
 * What the queue should do with the message: drop it (`done`), show it again after
 * `delaySeconds` (`retry`), or let it go to the dead-letter queue (`dead`).
 */
export type DeliverOutcome =
  | { kind: 'done'; reason: 'succeeded' | 'already-succeeded' | 'gone' | 'disabled' | 'endpoint-gone' }
  | { kind: 'retry'; delaySeconds: number }
  | { kind: 'dead' };

/**
 * Makes one HTTP try of a delivery.
 * 1. Load the delivery, its subscription and its event. A delivery that already succeeded
 *    needs nothing more; one whose subscription is disabled or deleted, or whose event has
 *    expired, is not sent and ends `skipped` with the reason (a success is never undone).
 * 2. Sign the event with the subscription's live secrets; `webhook-id` is the delivery id,
 *    the same on every retry, so receivers can dedupe.
 * 3. POST it, and store the attempt with the delivery's new state.
 * 4. Decide what the queue does with the message (see `decide`): `receiveCount` is the
 *    queue's count of tries, which a DLQ redrive resets.
 * 5. Keep the endpoint's health: a long run of failures, or a 410, disables the subscription.
 */
export async function deliver(
  deps: DeliverDeps,
  message: DeliveryMessage,
  receiveCount: number,
): Promise<DeliverOutcome> {
  const delivery = await deps.deliveries.get(message.deliveryId);
  if (!delivery) return { kind: 'done', reason: 'gone' };
  if (delivery.status === 'succeeded') return { kind: 'done', reason: 'already-succeeded' };
  const [subscription, event] = await Promise.all([
    deps.subscriptions.get(delivery.subscriptionId),
    deps.events.get(delivery.partnerId, delivery.eventId),
  ]);
  if (!subscription || !event || subscription.status !== 'active') {
    const reason: SkippedReason = !subscription
      ? 'subscription deleted'
      : !event
        ? 'event expired'
        : 'subscription disabled';
    // Its message is dropped, so this is the delivery's last word: say why it was not sent.
    await deps.deliveries.skip(delivery.id, reason, deps.clock.now().toISOString());
    return { kind: 'done', reason: reason === 'subscription disabled' ? 'disabled' : 'gone' };
  }

  const started = deps.clock.now();
  const body = JSON.stringify(toEventView(event));
  const headers = webhookHeaders({
    id: delivery.id,
    timestamp: Math.floor(started.getTime() / 1000),
    body,
    secrets: signingSecrets(subscription, started),
  });
  const result = await deps.sender.send({
    url: subscription.url,
    headers,
    body,
    timeoutMs: deps.deliveryTimeoutMs,
  });
  const outcome = decide(deps, result, receiveCount);
  const succeeded = outcome.kind === 'done' && outcome.reason === 'succeeded';

  const number = delivery.attempts + 1;
  const attempt: Attempt = {
    id: newId('att', started.getTime()),
    deliveryId: delivery.id,
    subscriptionId: delivery.subscriptionId,
    partnerId: delivery.partnerId,
    number,
    startedAt: started.toISOString(),
    durationMs: result.durationMs,
    ...(result.statusCode === undefined ? {} : { statusCode: result.statusCode }),
    ...(result.error !== undefined
      ? { error: result.error }
      : succeeded
        ? {}
        : { error: 'http_status' as const }),
    ...(result.errorMessage === undefined ? {} : { errorMessage: result.errorMessage }),
    ...(result.responseExcerpt === undefined ? {} : { responseExcerpt: result.responseExcerpt }),
  };
  const now = deps.clock.now();
  const { nextAttemptAt: _previous, skippedReason: _skipped, ...rest } = delivery;
  const updated: Delivery = {
    ...rest,
    status: succeeded ? 'succeeded' : outcome.kind === 'dead' ? 'dead' : 'failed',
    attempts: number,
    updatedAt: now.toISOString(),
    lastAttemptAt: attempt.startedAt,
    ...(outcome.kind === 'retry'
      ? { nextAttemptAt: new Date(now.getTime() + outcome.delaySeconds * 1000).toISOString() }
      : {}),
  };
  await deps.deliveries.recordAttempt(attempt, updated);
  await recordTry(
    deps,
    subscription,
    succeeded ? 'succeeded' : result.statusCode === 410 ? 'gone' : 'failed',
  );
  return outcome;
}

/**
 * What a try's result means for its message: 2xx is done; 410 Gone is done too (the endpoint
 * is disabled, retrying is pointless); anything else is retried after the schedule's next
 * wait, or the wait a 429/503 asked for with Retry-After, until the schedule is used up.
 */
function decide(deps: DeliverDeps, result: CallbackResult, receiveCount: number): DeliverOutcome {
  const status = result.statusCode;
  if (status !== undefined && status >= 200 && status < 300) return { kind: 'done', reason: 'succeeded' };
  if (status === 410) return { kind: 'done', reason: 'endpoint-gone' };
  const delay = retryDelaySeconds(deps.retrySchedule, receiveCount, deps.random);
  if (delay === null) return { kind: 'dead' };
  if (result.retryAfterSeconds !== undefined) {
    return {
      kind: 'retry',
      delaySeconds: retryAfterDelaySeconds(deps.retrySchedule, result.retryAfterSeconds),
    };
  }
  return { kind: 'retry', delaySeconds: delay };
}
