/**
 * The event log on DynamoDB (the events table of tables.ts), spread so that one partner's
 * publishing has no hot item:
 * - `<partnerId>` / `SEQ`: the partner's counter, moved by an atomic ADD (no read, no
 *   condition): an append takes the next seq, and the appends one instance makes for a partner
 *   in the same turn (a batch) take theirs with one ADD, in the order they were made;
 * - `<partnerId>#E<seq mod 4>` / `E#<seq, 15 digits>`: the event, or a `hole` where a seq was
 *   taken and will never hold one (an append that failed, or a repeated idempotency key);
 * - `<partnerId>#K<h>` / `IDEM#<key>`: the event an idempotency key names (h: a hash of the
 *   key, mod 4);
 * - `<partnerId>#I<h>` / `ID#<eventId>`: the seq of an event appended before event ids said
 *   it (see below); read, never written;
 * - `<partnerId>#O<h>` / `OKEY#<orderingKey>`: the ordering key's counter, `keySeq`, the place
 *   of the key's last event (h: a hash of the key, mod 4). It never expires (a key's next
 *   event must not start over at 1) and has no `kind`, so the pipe passes none of its changes.
 *
 * An event with an ordering key takes the key's next place (`keySeq`) in one transaction with
 * its write: the event's put, only into an empty place, and the counter's move from the value
 * read (consistently) to the next, only if it still holds that value. A place a hole took is
 * given up for the next seq, as for any event; a counter another append moved first is read
 * again. The appends of one key that an instance makes wait for each other, so they take their
 * places in the order they were made (appends of other keys go on side by side). Every event
 * item says its ordering in one text attribute, `ordering` (`<keySeq>/<orderingKey>`, or empty),
 * which the pipe's template copies into the fan-out message (pipe.ts).
 *
 * An event's id says where it is: a ULID whose time is `createdAt` and whose 80 other bits
 * are its seq (50 bits) and a check (30 bits of a hash of the partner, the seq and the time).
 * Reading an event by id, or a poll from a cursor, reads no pointer; an id made for another
 * partner, or not by this log, fails the check and is looked up as an id from before.
 *
 * Polling follows seq, which is the order in which appends took their place; a seq taken but
 * not yet written stops the poller there (the read barrier), so an event that commits late
 * is never skipped. A seq whose append died is filled with a hole by the first poller that
 * finds it missing while a later seq has been written for longer than any append can take;
 * both the event and the hole are put only if the place is empty, so exactly one of them
 * holds it, and an append that loses its place to a hole takes the next one.
 */

import { createHash, randomUUID } from 'node:crypto';
import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  ScanCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import * as z from 'zod';
import { CursorNotFoundError, ServiceUnavailableError } from '../../core/errors.ts';
import { composedId, idParts, idTime } from '../../core/ids.ts';
import type { EventRef } from '../../core/model.ts';
import { Event, EventId, EventType, OrderingKey, type Page, PartnerId, Timestamp } from '../../core/model.ts';
import type {
  AppendResult,
  Clock,
  EventListQuery,
  EventLog,
  EventWindowReader,
  NewEvent,
} from '../../core/ports.ts';
import { systemClock } from '../clock.ts';
import {
  attributeNames,
  backoff,
  cancellationCodes,
  compact,
  conditionFailed,
  expiresAt,
  hasConflict,
  type Item,
  isConditionFailure,
  putIfAbsent,
} from './dynamo.ts';

/** A long poll's first read of the counter, and its longest pause between two reads. */
export const WAIT_FIRST_PAUSE_MS = 250;
const WAIT_MAX_PAUSE_MS = 1000;

/**
 * The pauses of a wait of `timeoutMs`, each followed by a read of the counter: doubling from
 * WAIT_FIRST_PAUSE_MS to WAIT_MAX_PAUSE_MS, the last one cut short at the end. A wait of
 * 20 s reads the counter 22 times: 11 read units.
 */
export function waitPauses(timeoutMs: number): number[] {
  const pauses: number[] = [];
  let left = timeoutMs;
  for (let pause = WAIT_FIRST_PAUSE_MS; left > 0; pause = Math.min(pause * 2, WAIT_MAX_PAUSE_MS)) {
    pauses.push(Math.min(pause, left));
    left -= pause;
  }
  return pauses;
}

/** Partition keys one partner's events (and its pointers) are spread over. */
export const EVENT_STRIPES = 4;
/**
 * How long a seq may stay missing below a written one before a poller fills it with a hole:
 * longer than any append can take (the API function's timeout is 25 s, the dispatcher's 30 s).
 */
export const HOLE_AFTER_MS = 60_000;
const SEQ_DIGITS = 15;
const COUNTER_SK = 'SEQ';
const EVENT_PREFIX = 'E#';
/** How often, and how far apart, a repeated key looks for the first event before a 503. */
const FIRST_EVENT_LOOKS = 20;
const FIRST_EVENT_WAIT_MS = 50;
/** Items read from each stripe per round of a poll, beyond the page's share. */
const READ_AHEAD = 2;
/**
 * How often an append of an ordering key reads the key's counter and tries its transaction
 * again when other appends of the key (on other instances) moved it first, before a 503; and
 * the pauses between tries (full jitter, doubling from the base to the cap).
 */
const KEY_SEQ_TRIES = 8;
const KEY_SEQ_PAUSE_MS = 10;
const KEY_SEQ_MAX_PAUSE_MS = 200;

const Seq = z.number().int().positive();
const Counter = z.object({ seq: Seq });
const IdPointer = z.object({ seq: Seq });
const IdempotencyClaim = z.object({ eventId: EventId, claimedAt: z.number() });
const KeyCounter = z.object({ keySeq: Seq });
const EventRefItem = z.object({
  id: EventId,
  partnerId: PartnerId,
  type: EventType,
  createdAt: Timestamp,
  orderingKey: OrderingKey.optional(),
  keySeq: Seq.optional(),
});
const Placed = z.object({ seq: Seq, kind: z.enum(['event', 'hole']), writtenAt: z.number() });

function hash(text: string): number {
  let h = 0;
  for (let i = 0; i < text.length; i++) h = (h * 31 + text.charCodeAt(i)) >>> 0;
  return h;
}

/** Bits of an event id's random part: the seq, then the check. */
const SEQ_BITS = 50n;
const CHECK_BITS = 30n;
const CHECK_MASK = (1n << CHECK_BITS) - 1n;

/** 30 bits of SHA-256 over the partner, the seq and the time. */
function checkOf(partnerId: string, seq: number, time: number): bigint {
  const digest = createHash('sha256').update(`${partnerId}\n${seq}\n${time}`).digest();
  return BigInt(digest.readUInt32BE(0)) & CHECK_MASK;
}

/** The id of the partner's event at `seq`, created at `time` (ms). */
export function eventIdAt(partnerId: string, seq: number, time: number): string {
  if (!Number.isSafeInteger(seq) || seq < 1 || BigInt(seq) >= 1n << SEQ_BITS) {
    throw new RangeError(`seq must be from 1 to 2^${SEQ_BITS} - 1, got ${seq}`);
  }
  return composedId('evt', time, (BigInt(seq) << CHECK_BITS) | checkOf(partnerId, seq, time));
}

/** The seq an id of eventIdAt says, or undefined when it is not such an id of this partner. */
export function seqInId(partnerId: string, eventId: string): number | undefined {
  const parts = idParts('evt', eventId);
  if (parts === undefined) return undefined;
  const seq = Number(parts.random >> CHECK_BITS);
  if (seq < 1) return undefined;
  return (parts.random & CHECK_MASK) === checkOf(partnerId, seq, parts.time) ? seq : undefined;
}

const counterKey = (partnerId: string) => ({ pk: partnerId, sk: COUNTER_SK });
const stripeOf = (partnerId: string, seq: number) => `${partnerId}#E${seq % EVENT_STRIPES}`;
const eventKey = (partnerId: string, seq: number) => ({
  pk: stripeOf(partnerId, seq),
  sk: `${EVENT_PREFIX}${String(seq).padStart(SEQ_DIGITS, '0')}`,
});
/** The key of the pointer an event appended before ids said their seq has. */
export const pointerKey = (partnerId: string, eventId: string) => ({
  pk: `${partnerId}#I${hash(eventId) % EVENT_STRIPES}`,
  sk: `ID#${eventId}`,
});
const idempotencyKey = (partnerId: string, key: string) => ({
  pk: `${partnerId}#K${hash(key) % EVENT_STRIPES}`,
  sk: `IDEM#${key}`,
});
/** The key of an ordering key's counter. */
export const keyCounterKey = (partnerId: string, orderingKey: string) => ({
  pk: `${partnerId}#O${hash(orderingKey) % EVENT_STRIPES}`,
  sk: `OKEY#${orderingKey}`,
});

/** What an event item's `ordering` says: `<keySeq>/<orderingKey>`, or empty for an event without a key. */
function orderingText(event: Event): string {
  return event.orderingKey === undefined || event.keySeq === undefined
    ? ''
    : `${event.keySeq}/${event.orderingKey}`;
}

/** Back from an item to the domain event: the payload was stored as JSON text. */
function toEvent(item: Item): Event {
  // Event's zod object drops what only the table needs (pk, sk, kind, seq, writtenAt, expiresAt).
  return Event.parse({ ...item, payload: JSON.parse(z.string().parse(item.payload)) });
}

/**
 * Another append with the same idempotency key is under way (or died less than HOLE_AFTER_MS
 * ago): its event is not readable yet, so whether this one is the same cannot be told. 503.
 */
export class IdempotencyKeyInProgressError extends ServiceUnavailableError {
  constructor(key: string) {
    super(`an event with idempotency key "${key}" is being published; publish it again shortly`);
  }
}

/**
 * Other appends of the ordering key kept taking its next place first (KEY_SEQ_TRIES times):
 * nothing was stored. 503.
 */
export class OrderingKeyBusyError extends ServiceUnavailableError {
  constructor(key: string) {
    super(
      `events with ordering key "${key}" are being published faster than they can be ordered; publish again shortly`,
    );
  }
}

export interface DynamoEventLogOptions {
  /**
   * Days after the append when TTL deletes the event and its pointers. Counted from the
   * clock, not from createdAt: a backfilled event with an old createdAt would otherwise be
   * deleted as soon as it is written. @default 30
   */
  retentionDays?: number;
  /** @default systemClock */
  clock?: Clock;
  /** Events one filtered page reads at most (see list). @default 1000 */
  maxExamined?: number;
  /** See HOLE_AFTER_MS. @default HOLE_AFTER_MS */
  holeAfterMs?: number;
}

/** The appends of one partner waiting for their seqs, in the order they were made. */
interface SeqWaiters {
  waiting: { resolve: (seq: number) => void; reject: (error: unknown) => void }[];
}

export class DynamoEventLog implements EventLog, EventWindowReader {
  readonly tableName: string;
  readonly retentionDays: number;
  readonly #client: DynamoDBDocumentClient;
  readonly #clock: Clock;
  readonly #maxExamined: number;
  readonly #holeAfterMs: number;
  /** Per partner: the appends gathering for the next ADD, and the ADD under way (one at a time). */
  readonly #gathering = new Map<string, SeqWaiters>();
  readonly #taking = new Map<string, Promise<void>>();
  /** Per partner and ordering key: the end of the last append of the key made here (see #keyTurn). */
  readonly #keyTurns = new Map<string, Promise<void>>();

  constructor(client: DynamoDBDocumentClient, tableName: string, options: DynamoEventLogOptions = {}) {
    const retentionDays = options.retentionDays ?? 30;
    if (!(retentionDays > 0)) throw new RangeError(`retentionDays must be positive, got ${retentionDays}`);
    this.#client = client;
    this.tableName = tableName;
    this.retentionDays = retentionDays;
    this.#clock = options.clock ?? systemClock;
    this.#maxExamined = options.maxExamined ?? 1000;
    this.#holeAfterMs = options.holeAfterMs ?? HOLE_AFTER_MS;
  }

  /**
   * 1. Take the next seq (at once, before anything is awaited, so appends made in one order
   *    are placed in that order); the event's id says it. With an ordering key, take a turn
   *    among this instance's appends of the key too, and wait for it.
   * 2. With an idempotency key: claim it, or return the event that claimed it first.
   * 3. Put the event at its seq, only if the place is empty (with an ordering key, in one
   *    transaction with the key's counter: see the module's comment). A place a poller has
   *    filled with a hole is given up for the next seq, under a new id (and the key's claim
   *    moves with it).
   * A seq taken and not used (a repeated key, an error) is filled with a hole at once.
   */
  async append(input: NewEvent): Promise<AppendResult> {
    // The key's place is the log's to give, whatever the draft says.
    const { keySeq: _given, ...draft } = input;
    const time = Date.parse(draft.createdAt);
    const reserved = this.#takeSeq(draft.partnerId);
    const turn =
      draft.orderingKey === undefined ? undefined : this.#keyTurn(draft.partnerId, draft.orderingKey);
    let seq: number | undefined;
    try {
      seq = await reserved;
      await turn?.ready;
      let event: Event = { ...draft, id: eventIdAt(draft.partnerId, seq, time) };
      const key = draft.idempotencyKey;
      if (key !== undefined) {
        const first = await this.#claimKey(event, key);
        if (first !== undefined) {
          await this.#fillHole(draft.partnerId, seq);
          return { event: first, created: false };
        }
      }
      for (;;) {
        const stored = await this.#putEvent(event, seq);
        if (stored !== undefined) return { event: stored, created: true };
        seq = await this.#takeSeq(draft.partnerId);
        const moved: Event = { ...event, id: eventIdAt(draft.partnerId, seq, time) };
        if (key !== undefined) await this.#moveClaim(event, moved.id, key);
        event = moved;
      }
    } catch (error) {
      // Whatever happened, the seq must not stop pollers for HOLE_AFTER_MS: fill it now.
      const unused = seq ?? (await reserved.catch(() => undefined));
      if (unused !== undefined) await this.#fillHole(draft.partnerId, unused).catch(() => {});
      throw error;
    } finally {
      turn?.end();
    }
  }

  /**
   * A turn among the appends of the partner's ordering key made by this instance, taken when
   * the append is made: `ready` once every earlier one has ended (stored, repeated or failed),
   * `end` when this one has.
   */
  #keyTurn(partnerId: string, orderingKey: string): { ready: Promise<void>; end: () => void } {
    const name = `${partnerId}\n${orderingKey}`;
    const ready = this.#keyTurns.get(name) ?? Promise.resolve();
    const ended = Promise.withResolvers<void>();
    const last = ready.then(() => ended.promise);
    this.#keyTurns.set(name, last);
    void last.then(() => {
      if (this.#keyTurns.get(name) === last) this.#keyTurns.delete(name);
    });
    return { ready, end: () => ended.resolve() };
  }

  /**
   * The event, read eventually consistent first (half the read units; an event never changes
   * once the append has returned), and consistently when that finds nothing: an event written
   * less than a second ago. An id from before ids said their seq is looked up by its pointer.
   */
  async get(partnerId: string, eventId: string): Promise<Event | undefined> {
    const seq = seqInId(partnerId, eventId);
    if (seq === undefined) return this.#getByPointer(partnerId, eventId);
    return (
      (await this.#readAt(partnerId, seq, eventId, false)) ?? this.#readAt(partnerId, seq, eventId, true)
    );
  }

  async #getByPointer(partnerId: string, eventId: string): Promise<Event | undefined> {
    for (const consistent of [false, true]) {
      const seq = await this.#pointedSeq(partnerId, eventId, consistent);
      const event = seq === undefined ? undefined : await this.#readAt(partnerId, seq, eventId, consistent);
      if (event !== undefined) return event;
    }
    return undefined;
  }

  /** The event at `seq`, if it is the one with this id. */
  async #readAt(
    partnerId: string,
    seq: number,
    eventId: string,
    consistent: boolean,
  ): Promise<Event | undefined> {
    const result = await this.#client.send(
      new GetCommand({
        TableName: this.tableName,
        Key: eventKey(partnerId, seq),
        ConsistentRead: consistent,
      }),
    );
    return result.Item?.kind === 'event' && result.Item.id === eventId ? toEvent(result.Item) : undefined;
  }

  /**
   * The partner's events after the cursor, in seq order, up to the first seq still being
   * written (see the module's comment). `next` is the last event examined (a filter may pass
   * over some), or the `after` given (null when none) when the page examined nothing.
   *
   * Reads are consistent: an eventually consistent read may come from a replica behind the one
   * that served the previous page, and would then not have the events it handed out. The
   * cursor's seq is in its id (or, for an id from before, in its pointer): a cursor whose
   * event has expired still says where to go on from.
   */
  async list(partnerId: string, query: EventListQuery): Promise<Page<Event>> {
    let from = 1;
    if (query.after !== undefined) {
      const seq = seqInId(partnerId, query.after) ?? (await this.#pointedSeq(partnerId, query.after, true));
      if (seq === undefined) throw new CursorNotFoundError(query.after);
      from = seq + 1;
    }
    const types = query.types === undefined || query.types.length === 0 ? undefined : new Set(query.types);
    const since = query.since === undefined ? undefined : Date.parse(query.since);
    const wanted = (event: Event) =>
      (types === undefined || types.has(event.type)) &&
      (since === undefined || Date.parse(event.createdAt) >= since);
    const events: Event[] = [];
    let lastExamined: string | undefined;
    /** A hole passed after the last event examined: `next` moves past it too. */
    let holeAfter: number | undefined;
    let examined = 0;
    while (events.length < query.limit && examined < this.#maxExamined) {
      const share = types === undefined && since === undefined ? query.limit - events.length : 100;
      const round = await this.#readFrom(partnerId, from, Math.ceil(share / EVENT_STRIPES) + READ_AHEAD);
      if (round.items.size === 0) break;
      let stopped = false;
      for (; from <= round.known && events.length < query.limit && examined < this.#maxExamined; from++) {
        let item = round.items.get(from);
        if (item === undefined) {
          if (!this.#abandoned(round.items, from)) {
            stopped = true; // the read barrier: this seq is still being written
            break;
          }
          item = await this.#fillHoleOrRead(partnerId, from);
        }
        if (item.kind !== 'event') {
          holeAfter = from;
          continue;
        }
        const event = toEvent(item);
        examined++;
        lastExamined = event.id;
        holeAfter = undefined;
        if (wanted(event)) events.push(event);
      }
      if (stopped) break;
    }
    // Past a hole, the cursor is an id that says the hole's seq (made now): a poll from it does
    // not read the hole again, nor does a long poll take the taken place for a new event.
    const next =
      holeAfter === undefined ? lastExamined : eventIdAt(partnerId, holeAfter, this.#clock.now().getTime());
    return { items: events, next: next ?? query.after ?? null };
  }

  /**
   * Waits by reading the partner's counter, a small item, eventually consistently (half a read
   * unit): first after WAIT_FIRST_PAUSE_MS, then at pauses doubling to WAIT_MAX_PAUSE_MS, until
   * it has moved past the cursor's seq. Nothing tells a Lambda function that an item changed,
   * so a few reads are the whole cost of a wait (see docs/cost.md, "Long polling"); the pause
   * before the first read keeps a caller that lists again at once from spinning while a seq
   * it found taken is still being written. The counter says nothing of types: a wait for some
   * types ends with an event of any (the list moves the cursor past those it filters out).
   */
  async waitForEvents(
    partnerId: string,
    { after }: Pick<EventListQuery, 'after' | 'types'>,
    timeoutMs: number,
  ): Promise<void> {
    let cursor = 0;
    if (after !== undefined) {
      const seq = seqInId(partnerId, after) ?? (await this.#pointedSeq(partnerId, after, false));
      if (seq === undefined) return; // not a cursor of this partner's: the list answers for it
      cursor = seq;
    }
    for (const pause of waitPauses(timeoutMs)) {
      await new Promise((resolve) => setTimeout(resolve, pause));
      if ((await this.#takenSeq(partnerId)) > cursor) return;
    }
  }

  /**
   * A cursor at the partner's counter: an id that says the highest seq taken, made now (its
   * time is the cursor's, not an event's). An append that has taken its seq but not yet
   * written it counts as before the cursor.
   */
  async latestCursor(partnerId: string): Promise<string | null> {
    const seq = await this.#takenSeq(partnerId, true);
    return seq === 0 ? null : eventIdAt(partnerId, seq, this.#clock.now().getTime());
  }

  /**
   * An id that says its seq stands where its time says (an event's is its createdAt); an id
   * from before ids said their seq is an event's, read through its pointer.
   */
  async cursorTime(partnerId: string, cursor: string): Promise<string | undefined> {
    if (seqInId(partnerId, cursor) !== undefined) return new Date(idTime(cursor)).toISOString();
    return (await this.get(partnerId, cursor))?.createdAt;
  }

  /**
   * TTL deletes an event's place with it (a hole's too): past the cursor's seq, a place taken
   * (the counter says so) that is no longer there has expired. The newest place, missing, is
   * taken to be still being written (the read barrier covers it).
   */
  async resumeAfter(
    partnerId: string,
    cursor: string,
  ): Promise<{ expired: true } | { expired: false; after?: string }> {
    const seq = seqInId(partnerId, cursor) ?? (await this.#pointedSeq(partnerId, cursor, true));
    if (seq === undefined) return { expired: true };
    const taken = await this.#takenSeq(partnerId, true);
    if (taken <= seq + 1) return { expired: false, after: cursor };
    const next = await this.#client.send(
      new GetCommand({ TableName: this.tableName, Key: eventKey(partnerId, seq + 1), ConsistentRead: true }),
    );
    return next.Item === undefined ? { expired: true } : { expired: false, after: cursor };
  }

  /** The places taken after the cursor: its events, and the rare hole among them. */
  async countAfter(partnerId: string, after: string | null): Promise<number> {
    let from = 0;
    if (after !== null) {
      const seq = seqInId(partnerId, after) ?? (await this.#pointedSeq(partnerId, after, true));
      if (seq === undefined) throw new CursorNotFoundError(after);
      from = seq;
    }
    return Math.max(0, (await this.#takenSeq(partnerId, false)) - from);
  }

  /** The highest seq an append of the partner has taken (0: none). */
  async #takenSeq(partnerId: string, consistent = false): Promise<number> {
    const result = await this.#client.send(
      new GetCommand({
        TableName: this.tableName,
        Key: counterKey(partnerId),
        ProjectionExpression: '#seq',
        ExpressionAttributeNames: attributeNames('seq'),
        ConsistentRead: consistent,
      }),
    );
    return result.Item === undefined ? 0 : Counter.parse(result.Item).seq;
  }

  /**
   * The next seq for an append to the partner. Appends made before the ADD is sent (one turn
   * of the event loop) share it; the next ADD waits for this one, so seqs follow the order
   * the appends were made in.
   */
  #takeSeq(partnerId: string): Promise<number> {
    return new Promise((resolve, reject) => {
      let group = this.#gathering.get(partnerId);
      if (group === undefined) {
        group = { waiting: [] };
        this.#gathering.set(partnerId, group);
        const previous = this.#taking.get(partnerId) ?? Promise.resolve();
        const taking = previous
          .then(() => new Promise<void>((done) => setImmediate(done)))
          .then(() => this.#add(partnerId));
        this.#taking.set(partnerId, taking);
        void taking.finally(() => {
          if (this.#taking.get(partnerId) === taking) this.#taking.delete(partnerId);
        });
      }
      group.waiting.push({ resolve, reject });
    });
  }

  /** One ADD for every append gathered: they get the seqs it moved past, in order. */
  async #add(partnerId: string): Promise<void> {
    const group = this.#gathering.get(partnerId);
    this.#gathering.delete(partnerId);
    if (group === undefined) return;
    const count = group.waiting.length;
    try {
      const result = await this.#client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: counterKey(partnerId),
          UpdateExpression: 'ADD #seq :count SET #kind = :kind',
          ExpressionAttributeNames: attributeNames('seq', 'kind'),
          ExpressionAttributeValues: { ':count': count, ':kind': 'counter' },
          ReturnValues: 'UPDATED_NEW',
        }),
      );
      const last = Counter.parse(result.Attributes).seq;
      for (const [i, waiter] of group.waiting.entries()) waiter.resolve(last - count + 1 + i);
    } catch (error) {
      for (const waiter of group.waiting) waiter.reject(error);
    }
  }

  /**
   * Claims the key for the event: undefined when it is this event's now, or the event that
   * claimed it first. A claim whose event never came (its append died more than HOLE_AFTER_MS
   * ago) is taken over.
   */
  async #claimKey(event: Event, key: string): Promise<Event | undefined> {
    const now = this.#clock.now().getTime();
    const item = {
      ...idempotencyKey(event.partnerId, key),
      kind: 'idempotencyKey',
      eventId: event.id,
      claimedAt: now,
      expiresAt: this.#expiresAt(),
    };
    if (await putIfAbsent(this.#client, this.tableName, item)) return undefined;
    const stored = await this.#client.send(
      new GetCommand({
        TableName: this.tableName,
        Key: idempotencyKey(event.partnerId, key),
        ConsistentRead: true,
      }),
    );
    const claim = IdempotencyClaim.parse(stored.Item);
    if (claim.eventId === event.id) return undefined;
    // The first append may still be writing (a producer's retry racing its first try): give
    // it the little time a write takes before answering "in progress".
    for (let look = 0; look < FIRST_EVENT_LOOKS; look++) {
      const first = await this.get(event.partnerId, claim.eventId);
      if (first !== undefined) return first;
      if (now - claim.claimedAt >= this.#holeAfterMs) break;
      await new Promise((resolve) => setTimeout(resolve, FIRST_EVENT_WAIT_MS));
    }
    if (now - claim.claimedAt < this.#holeAfterMs) throw new IdempotencyKeyInProgressError(key);
    try {
      await this.#client.send(
        new PutCommand({
          TableName: this.tableName,
          Item: item,
          ConditionExpression: '#eventId = :first',
          ExpressionAttributeNames: attributeNames('eventId'),
          ExpressionAttributeValues: { ':first': claim.eventId },
        }),
      );
      return undefined;
    } catch (error) {
      if (isConditionFailure(error)) throw new IdempotencyKeyInProgressError(key);
      throw error;
    }
  }

  /**
   * The key's claim follows its event to a new id (the event lost its place to a hole), and
   * is claimed anew (so a retry of the key waits for the event rather than taking over a claim
   * that looks abandoned). It moves only if it still names the event: otherwise the key is
   * another append's now (it took over a claim it found abandoned), and this one gives up with
   * a 503.
   */
  async #moveClaim(event: Event, movedId: string, key: string): Promise<void> {
    try {
      await this.#client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: idempotencyKey(event.partnerId, key),
          // claimedAt moves too: the claim is as fresh as the append now writing its event.
          UpdateExpression: 'SET #eventId = :moved, #claimedAt = :now',
          ConditionExpression: '#eventId = :event',
          ExpressionAttributeNames: attributeNames('eventId', 'claimedAt'),
          ExpressionAttributeValues: {
            ':moved': movedId,
            ':event': event.id,
            ':now': this.#clock.now().getTime(),
          },
        }),
      );
    } catch (error) {
      if (isConditionFailure(error)) throw new IdempotencyKeyInProgressError(key);
      throw error;
    }
  }

  /**
   * Puts the event at `seq` if the place is empty: the event as stored (with its key's place,
   * if it has an ordering key), or undefined when a hole took the place first.
   */
  async #putEvent(event: Event, seq: number): Promise<Event | undefined> {
    if (event.orderingKey !== undefined) return this.#putKeyedEvent(event, event.orderingKey, seq);
    return (await this.#place(event.partnerId, seq, this.#eventItem(event))) ? event : undefined;
  }

  /** The attributes of an event's item besides its place's. */
  #eventItem(event: Event): Item {
    return {
      kind: 'event',
      id: event.id,
      partnerId: event.partnerId,
      type: event.type,
      payload: JSON.stringify(event.payload),
      createdAt: event.createdAt,
      idempotencyKey: event.idempotencyKey,
      orderingKey: event.orderingKey,
      keySeq: event.keySeq,
      // Always there, empty without a key: the pipe's template cannot leave a field out.
      ordering: orderingText(event),
    };
  }

  /**
   * The event at `seq` with its key's next place, in one transaction: the event's put, only
   * into an empty place, and the key's counter moved from the value read to the next, only if
   * it still holds it. Undefined when a hole took the place (nothing written: the counter did
   * not move). A counter moved first by another append (or a transaction on it at the same
   * moment) is read again, up to KEY_SEQ_TRIES times, with a short pause between.
   */
  async #putKeyedEvent(event: Event, orderingKey: string, seq: number): Promise<Event | undefined> {
    const counter = keyCounterKey(event.partnerId, orderingKey);
    for (let attempt = 1; ; attempt++) {
      const last = await this.#keySeq(event.partnerId, orderingKey);
      const stored: Event = { ...event, keySeq: last + 1 };
      try {
        await this.#client.send(
          new TransactWriteCommand({
            TransactItems: [
              {
                Put: {
                  TableName: this.tableName,
                  Item: this.#placed(event.partnerId, seq, this.#eventItem(stored)),
                  ConditionExpression: 'attribute_not_exists(pk)',
                },
              },
              {
                Update: {
                  TableName: this.tableName,
                  Key: counter,
                  UpdateExpression: 'SET #keySeq = :next',
                  ExpressionAttributeNames: attributeNames('keySeq'),
                  ...(last === 0
                    ? {
                        ConditionExpression: 'attribute_not_exists(pk)',
                        ExpressionAttributeValues: { ':next': last + 1 },
                      }
                    : {
                        ConditionExpression: '#keySeq = :last',
                        ExpressionAttributeValues: { ':next': last + 1, ':last': last },
                      }),
                },
              },
            ],
            // A retry of this very request by the SDK (its answer lost) is then not applied
            // twice, nor refused as if another append had taken the place and the key's.
            ClientRequestToken: randomUUID(),
          }),
        );
        return stored;
      } catch (error) {
        const codes = cancellationCodes(error);
        if (codes === undefined) throw error;
        if (conditionFailed(codes, 0)) return undefined;
        if (!conditionFailed(codes, 1) && !hasConflict(codes)) throw error;
      }
      if (attempt >= KEY_SEQ_TRIES) throw new OrderingKeyBusyError(orderingKey);
      await backoff(attempt, KEY_SEQ_PAUSE_MS, KEY_SEQ_MAX_PAUSE_MS);
    }
  }

  /** The place of the ordering key's last event (0: none yet), read consistently. */
  async #keySeq(partnerId: string, orderingKey: string): Promise<number> {
    const result = await this.#client.send(
      new GetCommand({
        TableName: this.tableName,
        Key: keyCounterKey(partnerId, orderingKey),
        ProjectionExpression: '#keySeq',
        ExpressionAttributeNames: attributeNames('keySeq'),
        ConsistentRead: true,
      }),
    );
    return result.Item === undefined ? 0 : KeyCounter.parse(result.Item).keySeq;
  }

  /** A hole at `seq`, if the place is empty. */
  #fillHole(partnerId: string, seq: number): Promise<boolean> {
    return this.#place(partnerId, seq, { kind: 'hole' });
  }

  /**
   * Puts an event or a hole at `seq`, only into an empty place (what keeps an event and a
   * hole from ever sharing one); false when the place was taken.
   */
  #place(partnerId: string, seq: number, item: Item): Promise<boolean> {
    return putIfAbsent(this.#client, this.tableName, this.#placed(partnerId, seq, item));
  }

  /** The whole item of an event or a hole at `seq`, written now. */
  #placed(partnerId: string, seq: number, item: Item): Item {
    return compact({
      ...eventKey(partnerId, seq),
      ...item,
      seq,
      writtenAt: this.#clock.now().getTime(),
      expiresAt: this.#expiresAt(),
    });
  }

  /** Fills `seq` with a hole, or reads the event that got there first. */
  async #fillHoleOrRead(partnerId: string, seq: number): Promise<Item> {
    if (await this.#fillHole(partnerId, seq)) return { kind: 'hole', seq };
    const result = await this.#client.send(
      new GetCommand({ TableName: this.tableName, Key: eventKey(partnerId, seq), ConsistentRead: true }),
    );
    if (result.Item === undefined)
      throw new Error(`seq ${seq} of partner ${partnerId} is neither empty nor filled`);
    return result.Item;
  }

  /**
   * Whether a missing seq will never be written: a later one has been written for longer than
   * an append can take (its seq was taken after this one's, and that append ended long ago).
   */
  #abandoned(items: ReadonlyMap<number, Item>, seq: number): boolean {
    const now = this.#clock.now().getTime();
    for (const [other, item] of items) {
      if (other > seq && now - Placed.parse(item).writtenAt >= this.#holeAfterMs) return true;
    }
    return false;
  }

  /**
   * The items at `from` and after: each stripe's next `perStripe`, side by side. `known` is the
   * highest seq up to which every place was read (a stripe that returned its full count may
   * hold more beyond its last item).
   */
  async #readFrom(
    partnerId: string,
    from: number,
    perStripe: number,
  ): Promise<{ items: Map<number, Item>; known: number }> {
    const stripes = await Promise.all(
      Array.from({ length: EVENT_STRIPES }, (_, stripe) =>
        this.#client.send(
          new QueryCommand({
            TableName: this.tableName,
            KeyConditionExpression: '#pk = :pk AND #sk >= :from',
            ExpressionAttributeNames: attributeNames('pk', 'sk'),
            ExpressionAttributeValues: {
              ':pk': `${partnerId}#E${stripe}`,
              ':from': eventKey(partnerId, from).sk,
            },
            Limit: perStripe,
            ConsistentRead: true,
          }),
        ),
      ),
    );
    const items = new Map<number, Item>();
    let known = Number.POSITIVE_INFINITY;
    let highest = 0;
    for (const page of stripes) {
      const rows = page.Items ?? [];
      for (const row of rows) {
        const seq = Placed.parse(row).seq;
        items.set(seq, row);
        highest = Math.max(highest, seq);
      }
      const last = rows.at(-1);
      if (page.LastEvaluatedKey !== undefined && last !== undefined) {
        // Beyond this stripe's last item, its places are unread: the next round reads them.
        known = Math.min(known, Placed.parse(last).seq);
      }
    }
    return { items, known: Math.min(known, highest) };
  }

  /**
   * The events written from `from` to `to`, of every partner: a parallel Scan of the whole
   * table (one segment per stripe) keeping event items of the span. Costly, and only for
   * recovering what the pipe gave up on (see functions/core/recovery.ts).
   */
  async *writtenBetween(from: Date, to: Date): AsyncGenerator<EventRef[]> {
    const segments = Array.from({ length: EVENT_STRIPES }, (_, segment) =>
      this.#scanSegment(segment, from, to),
    );
    for (const segment of segments) yield* segment;
  }

  async *#scanSegment(segment: number, from: Date, to: Date): AsyncGenerator<EventRef[]> {
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.#client.send(
        new ScanCommand({
          TableName: this.tableName,
          Segment: segment,
          TotalSegments: EVENT_STRIPES,
          FilterExpression: '#kind = :event AND #writtenAt BETWEEN :from AND :to',
          ProjectionExpression: '#id, #partnerId, #type, #createdAt, #orderingKey, #keySeq',
          ExpressionAttributeNames: attributeNames(
            'kind',
            'writtenAt',
            'id',
            'partnerId',
            'type',
            'createdAt',
            'orderingKey',
            'keySeq',
          ),
          ExpressionAttributeValues: { ':event': 'event', ':from': from.getTime(), ':to': to.getTime() },
          ...(startKey === undefined ? {} : { ExclusiveStartKey: startKey }),
        }),
      );
      const refs = (page.Items ?? []).map((item): EventRef => compact(EventRefItem.parse(item)));
      if (refs.length > 0) yield refs;
      startKey = page.LastEvaluatedKey;
    } while (startKey !== undefined);
  }

  /**
   * The seq the pointer of an event from before ids said their seq holds, or undefined when
   * there is none (not one of this partner's events, or one that expired).
   */
  async #pointedSeq(partnerId: string, eventId: string, consistent: boolean): Promise<number | undefined> {
    const result = await this.#client.send(
      new GetCommand({
        TableName: this.tableName,
        Key: pointerKey(partnerId, eventId),
        ConsistentRead: consistent,
      }),
    );
    return result.Item === undefined ? undefined : IdPointer.parse(result.Item).seq;
  }

  /** The TTL of an item written now. */
  #expiresAt(): number {
    return expiresAt(this.#clock, this.retentionDays);
  }
}
