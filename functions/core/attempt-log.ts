import { getEvent } from './events.ts';
import type { Attempt, Delivery, Page } from './model.ts';
import type { DeliveryStore, EventLog, ListQuery, SubscriptionStore } from './ports.ts';
import { getSubscription } from './subscriptions.ts';

/** What a partner sees of one try. */
export interface AttemptView {
  id: string;
  number: number;
  startedAt: string;
  durationMs: number;
  statusCode?: number;
  error?: string;
  errorMessage?: string;
  responseExcerpt?: string;
}

/** What a partner sees of a delivery: its state and every try. */
export interface DeliveryView {
  id: string;
  eventId: string;
  eventType: string;
  subscriptionId: string;
  origin: Delivery['origin'];
  status: Delivery['status'];
  attemptCount: number;
  createdAt: string;
  updatedAt: string;
  lastAttemptAt?: string;
  nextAttemptAt?: string;
  /** Why the delivery was not tried (again), when its status is `skipped`. */
  skippedReason?: Delivery['skippedReason'];
  attempts: AttemptView[];
}

function toAttemptView(a: Attempt): AttemptView {
  const { deliveryId: _d, subscriptionId: _s, partnerId: _p, ...view } = a;
  return view;
}

async function withAttempts(deliveries: DeliveryStore, page: Page<Delivery>): Promise<Page<DeliveryView>> {
  const items = await Promise.all(
    page.items.map(async (d): Promise<DeliveryView> => {
      const attempts = await deliveries.listAttempts(d.id);
      return {
        id: d.id,
        eventId: d.eventId,
        eventType: d.eventType,
        subscriptionId: d.subscriptionId,
        origin: d.origin,
        status: d.status,
        attemptCount: d.attempts,
        createdAt: d.createdAt,
        updatedAt: d.updatedAt,
        ...(d.lastAttemptAt === undefined ? {} : { lastAttemptAt: d.lastAttemptAt }),
        ...(d.nextAttemptAt === undefined ? {} : { nextAttemptAt: d.nextAttemptAt }),
        ...(d.skippedReason === undefined ? {} : { skippedReason: d.skippedReason }),
        attempts: attempts.map(toAttemptView),
      };
    }),
  );
  return { items, next: page.next };
}

/**
 * A page of a subscription's deliveries, newest first, each with its attempts.
 * 1. Check the subscription is the partner's.
 * 2. Page through its deliveries and load each one's attempts.
 */
export async function listSubscriptionDeliveries(
  deps: { subscriptions: SubscriptionStore; deliveries: DeliveryStore },
  partnerId: string,
  subscriptionId: string,
  query: ListQuery,
): Promise<Page<DeliveryView>> {
  await getSubscription(deps, partnerId, subscriptionId);
  return withAttempts(deps.deliveries, await deps.deliveries.listBySubscription(subscriptionId, query));
}

/**
 * A page of an event's deliveries (fan-out, redeliveries, replays), newest first, each with
 * its attempts.
 * 1. Check the event is the partner's.
 * 2. Page through its deliveries and load each one's attempts.
 */
export async function listEventDeliveries(
  deps: { events: EventLog; deliveries: DeliveryStore },
  partnerId: string,
  eventId: string,
  query: ListQuery,
): Promise<Page<DeliveryView>> {
  await getEvent(deps, partnerId, eventId);
  return withAttempts(deps.deliveries, await deps.deliveries.listByEvent(partnerId, eventId, query));
}
