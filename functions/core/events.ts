import { isDeepStrictEqual } from 'node:util';
import {
  DomainError,
  EventNotFoundError,
  IdempotencyKeyReusedError,
  PartnerNotFoundError,
  PayloadTooLargeError,
  ServiceUnavailableError,
} from './errors.ts';
import type { Event, JsonValue, Partner } from './model.ts';
import type { Clock, EventListQuery, EventLog, NewEvent, PartnerStore } from './ports.ts';

/** What a partner sees of an event, both when polling and in a callback body. */
export interface EventView {
  id: string;
  type: string;
  payload: JsonValue;
  createdAt: string;
  /** Present when the event was published with one. */
  orderingKey?: string;
}

export function toEventView(event: Event): EventView {
  return {
    id: event.id,
    type: event.type,
    payload: event.payload,
    createdAt: event.createdAt,
    ...(event.orderingKey === undefined ? {} : { orderingKey: event.orderingKey }),
  };
}

export interface PublishInput {
  partnerId: string;
  type: string;
  payload: JsonValue;
  idempotencyKey?: string;
  /** Ordered subscriptions receive the events of one key in publish order (ordering.ts). */
  orderingKey?: string;
}

/** What publishing needs: the log, the partners (only to look one up) and the clock. */
export interface PublishDeps {
  events: EventLog;
  partners: Pick<PartnerStore, 'get'>;
  clock: Clock;
}

/**
 * An event's payload, serialised, at most: 256 KiB, as webhook providers and EventBridge
 * take, and well within DynamoDB's 400 KB item that stores it with its keys (test/unit/
 * quotas.test.ts holds the two together).
 */
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
  deps: PublishDeps,
  input: PublishInput,
): Promise<{ event: Event; created: boolean }> {
  const size = payloadBytes(input);
  if (size > MAX_PAYLOAD_BYTES) {
    throw new PayloadTooLargeError(`payload is ${size} bytes; at most ${MAX_PAYLOAD_BYTES} are allowed`, [
      { field: 'payload', message: `at most ${MAX_PAYLOAD_BYTES} bytes` },
    ]);
  }
  const partner = await deps.partners.get(input.partnerId);
  if (!partner) throw new PartnerNotFoundError(input.partnerId);
  const now = deps.clock.now();
  const event: NewEvent = {
    partnerId: partner.id,
    type: input.type,
    payload: input.payload,
    createdAt: now.toISOString(),
    ...(input.idempotencyKey === undefined ? {} : { idempotencyKey: input.idempotencyKey }),
    ...(input.orderingKey === undefined ? {} : { orderingKey: input.orderingKey }),
  };
  const result = await deps.events.append(event);
  // A retry may repeat a key; a different event under the same key is a producer's bug, and
  // answering with the first event would hide it.
  if (
    !result.created &&
    (result.event.type !== event.type ||
      result.event.orderingKey !== event.orderingKey ||
      !isDeepStrictEqual(result.event.payload, event.payload))
  ) {
    throw new IdempotencyKeyReusedError(input.idempotencyKey ?? '', result.event.id);
  }
  return result;
}

/** The size of the event's payload as JSON, what MAX_PAYLOAD_BYTES bounds. */
function payloadBytes(input: PublishInput): number {
  return Buffer.byteLength(JSON.stringify(input.payload));
}

/** Events one batch publishes at most. */
export const MAX_BATCH_EVENTS = 100;

/** Partners whose events one batch publishes at the same time. */
export const BATCH_PARTNER_CONCURRENCY = 10;

/** An entry of a batch could not be stored (its table or database failed): publish it again. */
export class EventNotStoredError extends ServiceUnavailableError {
  constructor(cause: unknown) {
    super('the event could not be stored; publish it again', [], { cause });
  }
}

/** One entry of a batch: the event to publish, or the error the edge already found in it. */
export type BatchEntry = PublishInput | DomainError;

/** What became of one entry: as publishEvent answers, or why it was not published. */
export type BatchResult = { event: Event; created: boolean } | { error: DomainError };

/**
 * Publishes a batch of events, each exactly as publishEvent would on its own, and answers for
 * each in the request's order; an entry that fails fails alone.
 * 1. Answer entries that arrived as errors with those errors.
 * 2. Group the others by partner, in request order; look each partner up once.
 * 3. Publish each partner's entries side by side, started in request order: the log places
 *    appends in the order they are made (on DynamoDB, one counter update for them all), so
 *    the partner's log holds them in request order. An entry repeating an idempotency key
 *    of the batch waits for the first, so the two are two successive publishes (the second
 *    gets the first's id, or a 409). Up to BATCH_PARTNER_CONCURRENCY partners at a time.
 * 4. An entry whose storage failed is answered with EventNotStoredError (503); the others
 *    still go ahead.
 */
export async function publishEvents(
  deps: PublishDeps,
  entries: readonly BatchEntry[],
): Promise<BatchResult[]> {
  const results: BatchResult[] = new Array(entries.length);
  const byPartner = new Map<string, { index: number; input: PublishInput }[]>();
  entries.forEach((entry, index) => {
    if (entry instanceof DomainError) {
      results[index] = { error: entry };
      return;
    }
    const lane = byPartner.get(entry.partnerId) ?? [];
    lane.push({ index, input: entry });
    byPartner.set(entry.partnerId, lane);
  });

  const publishDeps = { ...deps, partners: lookUpOnce(deps.partners) };
  const lanes = [...byPartner.values()];
  const worker = async () => {
    for (let lane = lanes.shift(); lane !== undefined; lane = lanes.shift()) {
      const byKey = new Map<string, Promise<unknown>>();
      // Entries of one ordering key are published one after the other, in the batch's order.
      const byOrderingKey = new Map<string, Promise<unknown>>();
      await Promise.all(
        lane.map(({ index, input }) => {
          // The first entry of a key that gets as far as the log claims it; a later one with
          // the key waits for it and finds the key used, as it would published after it. An
          // entry refused before the log (its payload too large) claims nothing.
          const key = payloadBytes(input) > MAX_PAYLOAD_BYTES ? undefined : input.idempotencyKey;
          const earlier = [
            key === undefined ? undefined : byKey.get(key),
            input.orderingKey === undefined ? undefined : byOrderingKey.get(input.orderingKey),
          ].filter((p) => p !== undefined);
          const published =
            earlier.length === 0
              ? publishOne(publishDeps, input)
              : Promise.all(earlier).then(() => publishOne(publishDeps, input));
          if (key !== undefined) byKey.set(key, published);
          if (input.orderingKey !== undefined) byOrderingKey.set(input.orderingKey, published);
          return published.then((result) => {
            results[index] = result;
          });
        }),
      );
    }
  };
  await Promise.all(Array.from({ length: Math.min(BATCH_PARTNER_CONCURRENCY, lanes.length) }, worker));
  return results;
}

/** publishEvent, its failure as a result; one that is not the domain's is the storage's. */
async function publishOne(deps: PublishDeps, input: PublishInput): Promise<BatchResult> {
  try {
    return await publishEvent(deps, input);
  } catch (error) {
    return { error: error instanceof DomainError ? error : new EventNotStoredError(error) };
  }
}

/** The partner store's `get`, asked once per partner; a lookup that failed is asked again. */
function lookUpOnce(partners: Pick<PartnerStore, 'get'>): Pick<PartnerStore, 'get'> {
  const lookups = new Map<string, Promise<Partner | undefined>>();
  return {
    get(partnerId) {
      let lookup = lookups.get(partnerId);
      if (lookup === undefined) {
        lookup = partners.get(partnerId);
        lookups.set(partnerId, lookup);
        lookup.catch(() => lookups.delete(partnerId));
      }
      return lookup;
    },
  };
}

/**
 * The most event JSON one page carries: Lambda's synchronous responses are limited to 6 MB,
 * and a page of a hundred 256 KiB payloads would be far over.
 */
export const MAX_PAGE_BYTES = 5 * 1024 * 1024;

/** The longest a poll may wait for an event (well within API Gateway's 30 s). */
export const MAX_POLL_WAIT_SECONDS = 20;

/**
 * A page of the partner's events as the partner sees them; with `waitSeconds`, a long poll.
 * 1. Read the page from the log (commit order, after the cursor).
 * 2. Stop early when the events' JSON would pass MAX_PAGE_BYTES (always keeping the first),
 *    with `next` at the last event kept, so nothing is skipped.
 * 3. An empty page, while time is left of the wait: count the wait against the partner's
 *    allowance (`beforeWait`), wait for the log to say an event may have come after the cursor
 *    (which moved past any events the types filtered out), and read again. The wait ends with
 *    the first event, or with an empty page at its end.
 */
export async function listEvents(
  deps: { events: EventLog; clock: Clock },
  partnerId: string,
  query: EventListQuery,
  waitSeconds = 0,
  /** Called once, before the first wait: the partner's allowance of waiting polls. */
  beforeWait: () => Promise<void> = async () => {},
): Promise<{ data: EventView[]; next: string | null }> {
  const deadline = deps.clock.now().getTime() + waitSeconds * 1000;
  let after = query.after;
  let waited = false;
  for (;;) {
    const page = await pageOfEvents(deps, partnerId, { ...query, ...(after === undefined ? {} : { after }) });
    const left = deadline - deps.clock.now().getTime();
    if (page.data.length > 0 || left <= 0) return page;
    if (!waited) await beforeWait();
    waited = true;
    after = page.next ?? after;
    await deps.events.waitForEvents(
      partnerId,
      { ...(after === undefined ? {} : { after }), ...(query.types ? { types: query.types } : {}) },
      left,
    );
  }
}

async function pageOfEvents(
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
