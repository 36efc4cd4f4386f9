import type { Clock, EventLog, PartnerStore } from '../ports.ts';
import { EventNotFoundError, PartnerNotFoundError } from './errors.ts';
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

/**
 * Publishes an event to a partner's log; delivery to its subscriptions follows from the
 * log's stream.
 * 1. Check the partner exists.
 * 2. Append the event; a repeated idempotency key returns the first event instead.
 * @throws PartnerNotFoundError
 */
export async function publishEvent(
  deps: { events: EventLog; partners: PartnerStore; clock: Clock },
  input: PublishInput,
): Promise<{ event: Event; created: boolean }> {
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
  return deps.events.append(event);
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
