import { isDeepStrictEqual } from 'node:util';
import type { Clock, EventListQuery, EventLog, PartnerStore } from '../ports.ts';
import {
  EventNotFoundError,
  IdempotencyKeyReusedError,
  PartnerNotFoundError,
  PayloadTooLargeError,
} from './errors.ts';
import { newId } from './ids.ts';
import type { Event, JsonValue } from './model.ts';

/** What a partner sees of an event, both when polling and in a callback body. */
export interface EventView {
  id: string;
  type: string;
  payload: JsonValue;
  createdAt: string;
}

export function toEventView(event: Event): EventView {
  return { id: event.id, type: event.type, payload: event.payload, createdAt: event.createdAt };
}

export interface PublishInput {
  partnerId: string;
  type: string;
  payload: JsonValue;
  idempotencyKey?: string;
}

/** An event's payload, serialised, at most: what EventBridge and SQS carry in one message. */
export const MAX_PAYLOAD_BYTES = 256 * 1024;

/**
 * Publishes an event to a partner's log; delivery to its subscriptions follows from the
 * log's stream.
 * 1. Check the payload's size, then that the partner exists.
 * 2. Append the event; a repeated idempotency key returns the first event instead, unless
 *    the key came with a different type or payload (409).
 * @throws PayloadTooLargeError, PartnerNotFoundError, IdempotencyKeyReusedError
 */
export async function publishEvent(
  deps: { events: EventLog; partners: PartnerStore; clock: Clock },
  input: PublishInput,
): Promise<{ event: Event; created: boolean }> {
  const size = Buffer.byteLength(JSON.stringify(input.payload));
  if (size > MAX_PAYLOAD_BYTES) {
    throw new PayloadTooLargeError(`payload is ${size} bytes; at most ${MAX_PAYLOAD_BYTES} are allowed`, [
      { field: 'payload', message: `at most ${MAX_PAYLOAD_BYTES} bytes` },
    ]);
  }
  const partner = await deps.partners.get(input.partnerId);
  if (!partner) throw new PartnerNotFoundError(input.partnerId);
  const now = deps.clock.now();
  const event: Event = {
    id: newId('evt', now.getTime()),
    partnerId: partner.id,
    type: input.type,
    payload: input.payload,
    createdAt: now.toISOString(),
    ...(input.idempotencyKey === undefined ? {} : { idempotencyKey: input.idempotencyKey }),
  };
  const result = await deps.events.append(event);
  // A retry may repeat a key; a different event under the same key is a producer's bug, and
  // answering with the first event would hide it.
  if (
    !result.created &&
    (result.event.type !== event.type || !isDeepStrictEqual(result.event.payload, event.payload))
  ) {
    throw new IdempotencyKeyReusedError(input.idempotencyKey ?? '', result.event.id);
  }
  return result;
}

/**
 * The most event JSON one page carries: Lambda's synchronous responses are limited to 6 MB,
 * and a page of a hundred 256 KiB payloads would be far over.
 */
export const MAX_PAGE_BYTES = 5 * 1024 * 1024;

/**
 * A page of the partner's events as the partner sees them.
 * 1. Read the page from the log (commit order, after the cursor).
 * 2. Stop early when the events' JSON would pass MAX_PAGE_BYTES (always keeping the first),
 *    with `next` at the last event kept, so nothing is skipped.
 */
export async function listEvents(
  deps: { events: EventLog },
  partnerId: string,
  query: EventListQuery,
): Promise<{ data: EventView[]; next: string | null }> {
  const page = await deps.events.list(partnerId, query);
  const data: EventView[] = [];
  let bytes = 0;
  for (const event of page.items) {
    const view = toEventView(event);
    bytes += Buffer.byteLength(JSON.stringify(view));
    if (bytes > MAX_PAGE_BYTES && data.length > 0) return { data, next: data.at(-1)?.id ?? null };
    data.push(view);
  }
  return { data, next: page.next };
}

/**
 * One of the partner's events.
 * @throws EventNotFoundError, also for another partner's event.
 */
export async function getEvent(
  deps: { events: EventLog },
  partnerId: string,
  eventId: string,
): Promise<Event> {
  const event = await deps.events.get(partnerId, eventId);
  if (!event) throw new EventNotFoundError(eventId);
  return event;
}
