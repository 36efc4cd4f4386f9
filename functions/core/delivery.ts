import type { CallbackSender, Clock, DeliveryStore, EventLog, SubscriptionStore } from '../ports.ts';
import { toEventView } from './events.ts';
import { newId } from './ids.ts';
import type { Attempt, Delivery, DeliveryMessage } from './model.ts';
import { retryDelaySeconds } from './retry.ts';
import { webhookHeaders } from './signing.ts';
import { signingSecrets } from './subscriptions.ts';

export interface DeliverDeps {
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
  | { kind: 'done'; reason: 'succeeded' | 'already-succeeded' | 'gone' | 'disabled' }
  | { kind: 'retry'; delaySeconds: number }
  | { kind: 'dead' };

/**
 * Makes one HTTP try of a delivery.
 * 1. Load the delivery, its subscription and its event; a delivery that already succeeded,
 *    or whose subscription or event is gone or disabled, needs nothing more.
 * 2. Sign the event with the subscription's live secrets; `webhook-id` is the delivery id,
 *    the same on every retry, so receivers can dedupe.
 * 3. POST it, and store the attempt with the delivery's new state.
 * 4. 2xx: done. Otherwise retry after the schedule's next wait, or, when `receiveCount`
 *    (the queue's count of tries, which a DLQ redrive resets) has used the schedule up, dead.
 */
export async function deliver(
  deps: DeliverDeps,
  message: DeliveryMessage,
  receiveCount: number,
): Promise<DeliverOutcome> {
  const delivery = await deps.deliveries.get(message.deliveryId);
  if (!delivery) return { kind: 'done', reason: 'gone' };
  if (delivery.status === 'succeeded') return { kind: 'done', reason: 'already-succeeded' };
  const subscription = await deps.subscriptions.get(delivery.subscriptionId);
  if (!subscription) return { kind: 'done', reason: 'gone' };
  if (subscription.status !== 'active') return { kind: 'done', reason: 'disabled' };
  const event = await deps.events.get(delivery.partnerId, delivery.eventId);
  if (!event) return { kind: 'done', reason: 'gone' };

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
  const succeeded = result.statusCode !== undefined && result.statusCode >= 200 && result.statusCode < 300;

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
    ...(result.error === undefined
      ? succeeded
        ? {}
        : { error: 'http_status' as const }
      : { error: result.error }),
    ...(result.errorMessage === undefined ? {} : { errorMessage: result.errorMessage }),
    ...(result.responseExcerpt === undefined ? {} : { responseExcerpt: result.responseExcerpt }),
  };
  const delay = succeeded ? null : retryDelaySeconds(deps.retrySchedule, receiveCount, deps.random);
  const { nextAttemptAt: _previous, ...rest } = delivery;
  const updated: Delivery = {
    ...rest,
    status: succeeded ? 'succeeded' : delay === null ? 'dead' : 'failed',
    attempts: number,
    updatedAt: deps.clock.now().toISOString(),
    lastAttemptAt: attempt.startedAt,
    ...(delay === null
      ? {}
      : { nextAttemptAt: new Date(deps.clock.now().getTime() + delay * 1000).toISOString() }),
  };
  await deps.deliveries.recordAttempt(attempt, updated);
  if (succeeded) return { kind: 'done', reason: 'succeeded' };
  return delay === null ? { kind: 'dead' } : { kind: 'retry', delaySeconds: delay };
}
