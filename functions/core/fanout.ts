import type { Clock, DeliveryStore, OutgoingMessage, QueueSender, SubscriptionStore } from '../ports.ts';
import { newId } from './ids.ts';
import type { Delivery, DeliveryMessage, DeliveryOrigin } from './model.ts';
import type { EventRef } from './patterns.ts';
import { subscriptionWants } from './subscriptions.ts';

/** A delivery of the event to the subscription, not tried yet. */
export function newDelivery(
  event: Pick<EventRef, 'id' | 'partnerId' | 'type'>,
  subscriptionId: string,
  origin: DeliveryOrigin,
  now: Date,
): Delivery {
  return {
    id: newId('dlv', now.getTime()),
    eventId: event.id,
    subscriptionId,
    partnerId: event.partnerId,
    eventType: event.type,
    origin,
    status: 'pending',
    attempts: 0,
    createdAt: now.toISOString(),
    updatedAt: now.toISOString(),
  };
}

/**
 * The queue message of a delivery. One group per subscription (a fair queue's tenant): a slow
 * endpoint's backlog does not hold back the other subscriptions' deliveries.
 */
export function queuedDelivery(d: Delivery): OutgoingMessage<DeliveryMessage> {
  return {
    body: { deliveryId: d.id, eventId: d.eventId, subscriptionId: d.subscriptionId, partnerId: d.partnerId },
    groupId: d.subscriptionId,
  };
}

export interface FanOutDeps {
  subscriptions: SubscriptionStore;
  deliveries: DeliveryStore;
  deliveryQueue: QueueSender<DeliveryMessage>;
  clock: Clock;
}

/**
 * Turns one event into one delivery per matching active subscription.
 * 1. List the partner's active subscriptions and keep those whose filter takes the type.
 * 2. Create their deliveries; a retried fan-out finds them already there.
 * 3. Queue the deliveries that have not been tried yet. A retry may queue one twice; the
 *    dispatcher skips a delivery that already succeeded, and receivers dedupe on webhook-id.
 * Returns the number of deliveries queued.
 */
export async function fanOutEvent(deps: FanOutDeps, ref: EventRef): Promise<number> {
  const subscriptions = (await deps.subscriptions.listActive(ref.partnerId)).filter((sub) =>
    subscriptionWants(sub, ref.type),
  );
  if (subscriptions.length === 0) return 0;
  const now = deps.clock.now();
  const wanted = subscriptions.map((sub) => newDelivery(ref, sub.id, 'fanout', now));
  const stored = await deps.deliveries.createForEvent(wanted);
  const untried = stored.filter((d) => d.status === 'pending' && d.attempts === 0);
  await deps.deliveryQueue.send(untried.map(queuedDelivery));
  return untried.length;
}
