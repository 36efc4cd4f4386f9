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

/** Deliveries whose attempts are read at once: a page of a thousand is read in waves. */
const ATTEMPT_READS_AT_ONCE = 25;

/**
 * The most delivery JSON one page carries, as for events (MAX_PAGE_BYTES): a thousand
 * deliveries of nine attempts with their response excerpts would pass Lambda's 6 MB.
 */
export const MAX_DELIVERY_PAGE_BYTES = 5 * 1024 * 1024;

function toDeliveryView(d: Delivery, attempts: Attempt[]): DeliveryView {
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
}

/**
 * The page's deliveries with their attempts, read ATTEMPT_READS_AT_ONCE deliveries at a time;
 * a page whose JSON would pass MAX_DELIVERY_PAGE_BYTES ends early (keeping the first), with
 * `next` at the last delivery kept, so nothing is skipped.
 */
export async function withAttempts(
  deliveries: Pick<DeliveryStore, 'listAttempts'>,
  page: Page<Delivery>,
): Promise<Page<DeliveryView>> {
  const items: DeliveryView[] = [];
  let bytes = 0;
  for (let start = 0; start < page.items.length; start += ATTEMPT_READS_AT_ONCE) {
    const wave = page.items.slice(start, start + ATTEMPT_READS_AT_ONCE);
    const views = await Promise.all(
      wave.map(async (d) => toDeliveryView(d, await deliveries.listAttempts(d.id))),
    );
    for (const view of views) {
      bytes += Buffer.byteLength(JSON.stringify(view));
      if (bytes > MAX_DELIVERY_PAGE_BYTES && items.length > 0)
        return { items, next: items.at(-1)?.id ?? null };
      items.push(view);
    }
  }
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
