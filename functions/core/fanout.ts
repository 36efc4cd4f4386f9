import { filterTakes } from './filters.ts';
import { derivedId, hashTag, idTime, newId, TAG_CHARS } from './ids.ts';
import type {
  Delivery,
  DeliveryLane,
  DeliveryMessage,
  DeliveryOrigin,
  EventRef,
  Subscription,
} from './model.ts';
import { claimStarts, enterGate, idleLineStart, isKeyed, type LineStart, leaveGate } from './ordering.ts';
import type {
  Clock,
  DeliveryStore,
  EventLog,
  OrderedLines,
  OutgoingMessage,
  QueueSender,
  SubscriptionStore,
} from './ports.ts';
import { subscriptionWants } from './subscriptions.ts';

/**
 * The tag every delivery id of an event ends with (30 bits of a hash of the event id): the
 * DynamoDB store keeps an event's deliveries together under it, so it lists them without an
 * index and reads one by its id alone.
 */
export function eventTag(eventId: string): string {
  return hashTag(eventId);
}

const ULID_CHARS = 26;

/** The event tag a delivery id ends with, or undefined for an id from before ids had one. */
export function eventTagOf(deliveryId: string): string | undefined {
  const bare = deliveryId.slice(deliveryId.indexOf('_') + 1);
  return bare.length === ULID_CHARS + TAG_CHARS ? bare.slice(ULID_CHARS) : undefined;
}

/**
 * The id of the fan-out delivery of an event to a subscription: the same every time for the
 * pair (with the event's time), so fanning an event out again, after a retry, a redrive or a
 * recovery of the pipe's dead letters, finds the delivery made the first time instead of
 * sending a second callback. It ends with the event's tag.
 */
export function fanoutDeliveryId(eventId: string, subscriptionId: string): string {
  return fanoutIdOf(eventId, idTime(eventId), eventTag(eventId), subscriptionId);
}

/** fanoutDeliveryId, given the event's time and tag. */
function fanoutIdOf(eventId: string, eventTime: number, tag: string, subscriptionId: string): string {
  return derivedId('dlv', eventTime, `${eventId}/${subscriptionId}`) + tag;
}

/** A delivery of the event to the subscription, not tried yet. */
export function newDelivery(
  event: Pick<EventRef, 'id' | 'partnerId' | 'type'>,
  subscriptionId: string,
  origin: DeliveryOrigin,
  now: Date,
): Delivery {
  return newDeliveries(event, [subscriptionId], origin, now)[0] as Delivery;
}

/**
 * The deliveries of the event to each subscription, not tried yet: what is the event's alone
 * (its tag, its time, the time now) is worked out once, not once per subscription.
 */
export function newDeliveries(
  event: Pick<EventRef, 'id' | 'partnerId' | 'type'>,
  subscriptionIds: readonly string[],
  origin: DeliveryOrigin,
  now: Date,
): Delivery[] {
  const tag = eventTag(event.id);
  const eventTime = origin === 'fanout' ? idTime(event.id) : 0;
  const at = now.toISOString();
  return subscriptionIds.map((subscriptionId) => ({
    // Only fan-out is one per pair; a partner's redelivery, replay or test is a new delivery.
    id:
      origin === 'fanout'
        ? fanoutIdOf(event.id, eventTime, tag, subscriptionId)
        : newId('dlv', now.getTime()) + tag,
    eventId: event.id,
    subscriptionId,
    partnerId: event.partnerId,
    eventType: event.type,
    origin,
    status: 'pending',
    attempts: 0,
    createdAt: at,
    updatedAt: at,
  }));
}

/** The lane of a subscription's deliveries: the slow one while it is failing. */
export function laneOf(subscription: Pick<Subscription, 'failingSince'>): DeliveryLane {
  return subscription.failingSince === undefined ? 'main' : 'slow';
}

/**
 * The queue message of a delivery's next try, in the subscription's lane. One group per
 * subscription (a fair queue's tenant): a slow endpoint's backlog does not hold back the
 * other subscriptions' deliveries.
 */
export function queuedDelivery(
  d: Delivery,
  lane: DeliveryLane = 'main',
  options: { unstored?: boolean } = {},
): OutgoingMessage<DeliveryMessage> {
  return {
    body: {
      deliveryId: d.id,
      eventId: d.eventId,
      subscriptionId: d.subscriptionId,
      partnerId: d.partnerId,
      attempt: d.attempts + 1,
      step: 0,
      ...(lane === 'main' ? {} : { lane }),
      ...(options.unstored ? { unstored: { createdAt: d.createdAt, eventType: d.eventType } } : {}),
    },
    groupId: d.subscriptionId,
  };
}

/**
 * The delivery a fan-out message queued without storing it stands for, as fan-out would have
 * stored it: pending, untried, created when it was queued.
 */
export function unstoredDelivery(message: DeliveryMessage): Delivery | undefined {
  if (message.unstored === undefined) return undefined;
  return {
    id: message.deliveryId,
    eventId: message.eventId,
    subscriptionId: message.subscriptionId,
    partnerId: message.partnerId,
    eventType: message.unstored.eventType,
    origin: 'fanout',
    status: 'pending',
    attempts: 0,
    createdAt: message.unstored.createdAt,
    updatedAt: message.unstored.createdAt,
  };
}

export interface FanOutDeps {
  subscriptions: SubscriptionStore;
  /** Read for an event's payload, only when a subscription its type goes to has a filter. */
  events: Pick<EventLog, 'get'>;
  deliveries: DeliveryStore;
  deliveryQueue: QueueSender<DeliveryMessage>;
  clock: Clock;
  /**
   * Leave a main-lane delivery to be stored by the dispatcher, with its first try, rather
   * than here: one write per delivery instead of two (on AWS, a write unit per callback).
   * Until its first try ends it is in its queue but not listed. Deliveries of a subscription
   * in the slow lane are stored here all the same: they may wait there a long time. A
   * function says it per event (on AWS, events from before their ids said their place are
   * stored here, where the store finds a delivery made for them before).
   * @default false
   */
  storeAtFirstTry?: boolean | ((event: EventRef) => boolean);
  /** Ordered subscriptions' gates and lines (ordering.ts). */
  lines: OrderedLines;
  /** The fan-out queue itself: an event parked at its key's gate is queued here again. */
  fanoutQueue: QueueSender<EventRef>;
}

/**
 * Turns one event into one delivery per matching active subscription.
 * 1. An event with an ordering key passes its key's gate first (ordering.ts): fanned out only
 *    after the key's previous event, else parked until then; a copy of one fanned out already
 *    only starts its ordered subscriptions' lines, should a start have been lost.
 * 2. List the partner's active subscriptions and keep those whose types take the event; if any
 *    of them has a payload filter, read the event once and keep those whose filter matches
 *    (an event gone by then, past the retention, goes to none of them).
 * 3. Create their deliveries (see `storeAtFirstTry` for those left to the dispatcher); a
 *    retried fan-out finds them already there.
 * 4. Queue the deliveries that have not been tried yet, each in its subscription's lane. A
 *    retry may queue one twice; the dispatcher drops a copy whose try is already recorded, and
 *    receivers dedupe on webhook-id. An ordered subscription's delivery of a keyed event is
 *    not queued but put into its key's line, and the line is started if it is idle.
 * Returns the number of deliveries queued or put into a line.
 */
export async function fanOutEvent(deps: FanOutDeps, ref: EventRef): Promise<number> {
  if (!isKeyed(ref)) return fanOut(deps, ref, undefined);
  const call = await enterGate(deps.lines, ref);
  // It waits at the gate; nothing is queued for it yet.
  if (call.kind === 'wait') return 0;
  const count = await fanOut(deps, ref, call.kind === 'done' ? 'copy' : 'first');
  if (call.kind === 'now') await leaveGate(deps.lines, deps.fanoutQueue, ref, call);
  return count;
}

async function fanOut(deps: FanOutDeps, ref: EventRef, keyed: 'first' | 'copy' | undefined): Promise<number> {
  const byType = (await deps.subscriptions.listActive(ref.partnerId)).filter((sub) =>
    subscriptionWants(sub, ref.type),
  );
  // The payload is read only when a filter needs it: one read per event, however many filters.
  const event = byType.some((sub) => sub.filter !== undefined)
    ? await deps.events.get(ref.partnerId, ref.id)
    : undefined;
  const subscriptions = byType.filter(
    (sub) => sub.filter === undefined || (event !== undefined && filterTakes(sub.filter, event)),
  );
  const key = ref.orderingKey;
  const ordered = new Set(
    keyed === undefined || key === undefined
      ? []
      : subscriptions.filter((sub) => sub.ordering === 'key').map((sub) => sub.id),
  );
  if (subscriptions.length === 0) return 0;
  const now = deps.clock.now();
  const lanes = new Map(subscriptions.map((sub) => [sub.id, laneOf(sub)]));
  // A copy of a keyed event fanned out already makes no ordered delivery: one made the first
  // time is in its line, and a subscription ordered since has its key's order from then on.
  const wanted = newDeliveries(
    ref,
    subscriptions.filter((sub) => keyed !== 'copy' || !ordered.has(sub.id)).map((sub) => sub.id),
    'fanout',
    now,
  );
  const atFirstTry =
    typeof deps.storeAtFirstTry === 'function' ? deps.storeAtFirstTry(ref) : (deps.storeAtFirstTry ?? false);
  // An ordered delivery is stored here: its line names it, and it may wait its turn long.
  const unstored = atFirstTry
    ? wanted.filter((d) => lanes.get(d.subscriptionId) === 'main' && !ordered.has(d.subscriptionId))
    : [];
  const leftUnstored = new Set(unstored);
  const toStore = wanted.filter((d) => !leftUnstored.has(d));
  const stored = toStore.length === 0 ? [] : await deps.deliveries.createForEvent(toStore);
  const untried = stored.filter((d) => d.status === 'pending' && d.attempts === 0);
  const queued = untried.filter((d) => !ordered.has(d.subscriptionId));
  let starts: LineStart[] = [];
  if (key !== undefined && ref.keySeq !== undefined && ordered.size > 0) {
    const seq = ref.keySeq;
    // A copy's deliveries are in their lines already (the gate moves only after that).
    if (keyed === 'first') {
      await Promise.all(
        untried
          .filter((d) => ordered.has(d.subscriptionId))
          .map((d) =>
            deps.lines.append(d.subscriptionId, key, {
              seq,
              deliveryId: d.id,
              eventId: d.eventId,
              partnerId: d.partnerId,
            }),
          ),
      );
    }
    const found = await Promise.all([...ordered].map((id) => idleLineStart(deps.lines, id, key)));
    starts = found.filter((s) => s !== undefined);
  }
  await deps.deliveryQueue.send([
    ...unstored.map((d) => queuedDelivery(d, 'main', { unstored: true })),
    ...queued.map((d) => queuedDelivery(d, lanes.get(d.subscriptionId))),
    ...starts.map((s) => s.message),
  ]);
  await claimStarts(deps.lines, starts);
  return unstored.length + untried.length;
}
