/**
 * Consumers: cursors the dispatcher keeps for a partner, so a partner's reader needs to
 * remember nothing. A reader asks for the page after its consumer's position, handles it, and
 * acknowledges it (its `next`), which commits the position; a page not acknowledged comes
 * again (at least once). A position older than the retention whose next events have expired
 * is refused (410) until the consumer is moved: reading on would skip them unseen.
 */
import {
  ConsumerLimitError,
  ConsumerNotFoundError,
  ConsumerPositionExpiredError,
  CursorNotFoundError,
  ValidationError,
} from './errors.ts';
import { type EventView, listEvents } from './events.ts';
import type { Consumer, ConsumerPosition, Page } from './model.ts';
import type { Clock, ConsumerStore, EventLog, ListQuery } from './ports.ts';

/** Consumers a partner may have at once. */
export const MAX_CONSUMERS_PER_PARTNER = 50;

export interface ConsumerDeps {
  consumers: ConsumerStore;
  events: EventLog;
  clock: Clock;
  /** Days an event is kept: a position older than this may have lost what came after it. */
  retentionDays: number;
}

/** Where a consumer starts: before the oldest event kept, after the newest, or after an event. */
export type ConsumerStart = 'earliest' | 'latest' | { after: string };

/** What a partner sees of a consumer. */
export interface ConsumerView {
  name: string;
  types: string[];
  /** The last event acknowledged; null: before the first. */
  position: string | null;
  /** That event's time. */
  positionAt: string | null;
  createdAt: string;
  updatedAt: string;
  /** Events in the log after the position, of every type. */
  lag: number;
}

async function toView(deps: Pick<ConsumerDeps, 'events'>, consumer: Consumer): Promise<ConsumerView> {
  let lag = 0;
  try {
    lag = await deps.events.countAfter(consumer.partnerId, consumer.position?.eventId ?? null);
  } catch (error) {
    // A position whose event has expired: everything kept comes after it.
    if (!(error instanceof CursorNotFoundError)) throw error;
    lag = await deps.events.countAfter(consumer.partnerId, null);
  }
  return {
    name: consumer.name,
    types: consumer.types,
    position: consumer.position?.eventId ?? null,
    positionAt: consumer.position?.createdAt ?? null,
    createdAt: consumer.createdAt,
    updatedAt: consumer.updatedAt,
    lag,
  };
}

/** The position `start` names. @throws ValidationError naming `start` for an event not the partner's. */
async function positionAt(
  deps: Pick<ConsumerDeps, 'events' | 'clock'>,
  partnerId: string,
  start: ConsumerStart,
): Promise<ConsumerPosition | undefined> {
  if (start === 'earliest') return undefined;
  if (start === 'latest') {
    const cursor = await deps.events.latestCursor(partnerId);
    return cursor === null ? undefined : { eventId: cursor, createdAt: deps.clock.now().toISOString() };
  }
  const event = await deps.events.get(partnerId, start.after);
  if (event === undefined) {
    throw new ValidationError(`start: event ${start.after} is not one of your events`, [
      { field: 'start', message: 'must be earliest, latest or the id of one of your events' },
    ]);
  }
  return { eventId: event.id, createdAt: event.createdAt };
}

/**
 * Creates the consumer, or changes the one of that name.
 * 1. A new consumer starts at `start` (default: earliest); an existing one moves there only
 *    when `start` is given (a seek), and otherwise keeps its position.
 * 2. Save it, within the partner's cap on a new one.
 * @throws ValidationError (a start that is not the partner's event), ConsumerLimitError
 */
export async function putConsumer(
  deps: ConsumerDeps,
  partnerId: string,
  name: string,
  input: { types?: string[] | undefined; start?: ConsumerStart | undefined },
): Promise<{ consumer: ConsumerView; created: boolean }> {
  const existing = await deps.consumers.get(partnerId, name);
  const now = deps.clock.now().toISOString();
  const position =
    input.start === undefined && existing !== undefined
      ? existing.position
      : await positionAt(deps, partnerId, input.start ?? 'earliest');
  const consumer: Consumer = {
    partnerId,
    name,
    types: input.types ?? existing?.types ?? [],
    ...(position === undefined ? {} : { position }),
    createdAt: existing?.createdAt ?? now,
    updatedAt: now,
  };
  // Without a start, an existing consumer keeps its position as stored, not as read here: an
  // acknowledgement made meanwhile stands.
  const keepPosition = input.start === undefined && existing !== undefined;
  const saved = await deps.consumers.save(consumer, {
    maxPerPartner: MAX_CONSUMERS_PER_PARTNER,
    keepPosition,
  });
  if (saved === 'limit') throw new ConsumerLimitError(MAX_CONSUMERS_PER_PARTNER);
  const stored = keepPosition ? ((await deps.consumers.get(partnerId, name)) ?? consumer) : consumer;
  return { consumer: await toView(deps, stored), created: saved === 'created' };
}

/** @throws ConsumerNotFoundError */
async function consumerOf(
  deps: Pick<ConsumerDeps, 'consumers'>,
  partnerId: string,
  name: string,
): Promise<Consumer> {
  const consumer = await deps.consumers.get(partnerId, name);
  if (consumer === undefined) throw new ConsumerNotFoundError(name);
  return consumer;
}

export async function getConsumer(
  deps: ConsumerDeps,
  partnerId: string,
  name: string,
): Promise<ConsumerView> {
  return toView(deps, await consumerOf(deps, partnerId, name));
}

/** A page of the partner's consumers by name, each with its lag. */
export async function listConsumers(
  deps: ConsumerDeps,
  partnerId: string,
  query: ListQuery,
): Promise<Page<ConsumerView>> {
  const page = await deps.consumers.list(partnerId, query);
  return { items: await Promise.all(page.items.map((c) => toView(deps, c))), next: page.next };
}

/**
 * The page after the consumer's position, of its types; with `waitSeconds`, a long poll.
 * Reading commits nothing: the same page comes again until its last event is acknowledged.
 * @throws ConsumerNotFoundError, ConsumerPositionExpiredError (410) for a position after
 * which events have expired
 */
export async function readConsumer(
  deps: ConsumerDeps,
  partnerId: string,
  name: string,
  query: { limit: number },
  waitSeconds = 0,
  beforeWait?: () => Promise<void>,
): Promise<{ data: EventView[]; next: string | null }> {
  const consumer = await consumerOf(deps, partnerId, name);
  const position = consumer.position;
  let after = position?.eventId;
  const retainedSince = deps.clock.now().getTime() - deps.retentionDays * 86_400_000;
  if (position !== undefined && Date.parse(position.createdAt) < retainedSince) {
    // Old enough for what came after it to have expired: ask the log whether anything did.
    const resumed = await deps.events.resumeAfter(partnerId, position.eventId);
    if (resumed.expired) throw new ConsumerPositionExpiredError(name, position.eventId);
    after = resumed.after;
  }
  try {
    return await listEvents(
      deps,
      partnerId,
      {
        limit: query.limit,
        ...(after === undefined ? {} : { after }),
        ...(consumer.types.length > 0 ? { types: consumer.types } : {}),
      },
      waitSeconds,
      beforeWait,
    );
  } catch (error) {
    if (error instanceof CursorNotFoundError && position !== undefined) {
      throw new ConsumerPositionExpiredError(name, position.eventId);
    }
    throw error;
  }
}

/**
 * Commits the consumer's position at `eventId`: the `next` of the page handled (or one of its
 * events); the next read starts after it. Acknowledging an earlier one moves the position back.
 * Acknowledging `next` rather than the last event moves past the events the consumer's types
 * left out too, so a consumer of a rare type does not read them again.
 * @throws ConsumerNotFoundError, ValidationError naming `eventId` when it is not a cursor of
 * the partner's log
 */
export async function ackConsumer(
  deps: ConsumerDeps,
  partnerId: string,
  name: string,
  eventId: string,
): Promise<ConsumerView> {
  const consumer = await consumerOf(deps, partnerId, name);
  const createdAt = await deps.events.cursorTime(partnerId, eventId);
  if (createdAt === undefined) {
    throw new ValidationError(`eventId: ${eventId} is not one of your events`, [
      { field: 'eventId', message: 'must be the `next` of a page of this consumer, or one of its events' },
    ]);
  }
  const position = { eventId, createdAt };
  const at = deps.clock.now().toISOString();
  if (!(await deps.consumers.commit(partnerId, name, position, at))) throw new ConsumerNotFoundError(name);
  return toView(deps, { ...consumer, position, updatedAt: at });
}

/** @throws ConsumerNotFoundError */
export async function deleteConsumer(
  deps: Pick<ConsumerDeps, 'consumers'>,
  partnerId: string,
  name: string,
): Promise<void> {
  if (!(await deps.consumers.delete(partnerId, name))) throw new ConsumerNotFoundError(name);
}
