/**
 * The local stream: the events table itself, read in seq order from a cursor kept in the same
 * database. An event's seq is given inside the write lock and SQLite has one writer at a time,
 * so seq order is commit order: every event committed after the cursor is after it in seq. The
 * router reads the events after the cursor and moves it past them once they are fanned out (or
 * in the fan-out queue), so an event is fanned out at least once however the process stops,
 * and appending an event writes nothing but the event.
 *
 * Following the event log that appends them (the local runtime's one writer), the stream also
 * keeps in memory the events after the cursor, told of each as its append commits, and reads
 * the table only when it cannot be sure it has them all, or has had none for a second.
 */
import type { Event, EventRef } from '../../core/model.ts';
import {
  prepared,
  type Row,
  readInteger,
  readOptionalInteger,
  readOptionalText,
  readText,
  type SqliteDatabase,
} from './database.ts';
import type { AppendedEvent, SqliteEventLog } from './events.ts';

export interface OutboxEntry {
  /** The event's commit sequence: the stream's order, and what the cursor moves past. */
  seq: number;
  ref: EventRef;
}

/** Events kept in memory at most; past this the stream reads the table until it has caught up. */
const MAX_FOLLOWED = 10_000;
/**
 * With none in memory, how long the stream trusts that there are none, before it reads the
 * table again (for an event of another writer, which it is not told of): the local runtime's
 * router looks this often when idle.
 */
const TRUST_EMPTY_MS = 1_000;

export interface OutboxOptions {
  /** The event log whose appends the stream keeps in memory (see above). */
  follow?: Pick<SqliteEventLog, 'onAppend'>;
  /**
   * Milliseconds for TRUST_EMPTY_MS, from any origin. @default performance.now, which never
   * goes back: a step of the system clock changes nothing
   */
  now?: () => number;
}

export class SqliteOutbox {
  readonly #db: SqliteDatabase;
  readonly #following: boolean;
  readonly #now: () => number;
  /**
   * Whether #tail holds every event after the cursor: since a read of the table that found
   * them all, every append told has been the one after the last (none was missed, none came
   * from elsewhere).
   */
  #whole = false;
  /** The events after the cursor, oldest first, while #whole. */
  #tail: OutboxEntry[] = [];
  /** The highest seq known: read from the table, or told. */
  #last = 0;
  /** When the table was last read (by #now). */
  #readAt = Number.NEGATIVE_INFINITY;

  constructor(db: SqliteDatabase, options: OutboxOptions = {}) {
    this.#db = db;
    this.#following = options.follow !== undefined;
    this.#now = options.now ?? (() => performance.now());
    options.follow?.onAppend((appended) => this.#appended(appended));
  }

  /**
   * Up to `limit` of the events after the cursor, oldest first. Synchronous so it can run
   * inside transaction().
   */
  peek(limit: number): OutboxEntry[] {
    const now = this.#now();
    if (this.#whole && (this.#tail.length > 0 || now - this.#readAt < TRUST_EMPTY_MS)) {
      return this.#tail.slice(0, limit);
    }
    this.#readAt = now;
    const cursor = prepared(this.#db, 'SELECT seq FROM stream_cursor WHERE id = 1').get();
    const after = cursor === undefined ? 0 : readInteger(cursor, 'seq');
    const entries = prepared(
      this.#db,
      `SELECT seq, id, partner_id, type, created_at, ordering_key, key_seq FROM events
         WHERE seq > ? ORDER BY seq LIMIT ?`,
    )
      .all(after, limit)
      .map(toEntry);
    // Fewer than asked: these are all of them, and what is appended from now on is told.
    this.#whole = this.#following && entries.length < limit;
    this.#tail = this.#whole ? [...entries] : [];
    this.#last = Math.max(this.#last, after, entries.at(-1)?.seq ?? 0);
    return entries;
  }

  /**
   * Moves the cursor past `seq`: the events up to it are taken. It never moves back. Runs
   * inside the caller's write; `passed` says when that write has committed.
   */
  advancePast(seq: number): void {
    prepared(this.#db, 'UPDATE stream_cursor SET seq = ? WHERE id = 1 AND seq < ?').run(seq, seq);
  }

  /** The write that moved the cursor past `seq` has committed: those events leave memory too. */
  passed(seq: number): void {
    const rest = this.#tail.findIndex((entry) => entry.seq > seq);
    this.#tail = rest === -1 ? [] : this.#tail.slice(rest);
  }

  /**
   * Whether the table holds an event after the last known and before `seq`; true when it cannot
   * be read (a database closed while the append was settling): then the next peek reads it.
   * Never throws, so an append that committed is never reported failed for it.
   */
  #anyBefore(seq: number): boolean {
    try {
      const found = prepared(this.#db, 'SELECT 1 AS found FROM events WHERE seq > ? AND seq < ? LIMIT 1');
      return found.get(this.#last, seq) !== undefined;
    } catch {
      return true;
    }
  }

  #appended({ seq, event }: AppendedEvent): void {
    // Read from the table already (committed before a read that found it).
    if (seq <= this.#last) return;
    // Not the one after the last known: an event in between was missed, or came from
    // another writer (then the table is read), or there is none (an append whose idempotency
    // key had been used takes a seq too, and stores nothing).
    if (
      !this.#whole ||
      this.#tail.length >= MAX_FOLLOWED ||
      (seq !== this.#last + 1 && this.#anyBefore(seq))
    ) {
      this.#whole = false;
      this.#tail = [];
      return;
    }
    this.#last = seq;
    this.#tail.push({ seq, ref: refOf(event) });
  }
}

function refOf(
  event: Pick<Event, 'id' | 'partnerId' | 'type' | 'createdAt' | 'orderingKey' | 'keySeq'>,
): EventRef {
  const { id, partnerId, type, createdAt, orderingKey, keySeq } = event;
  return {
    id,
    partnerId,
    type,
    createdAt,
    ...(orderingKey === undefined || keySeq === undefined ? {} : { orderingKey, keySeq }),
  };
}

function toEntry(row: Row): OutboxEntry {
  return {
    seq: readInteger(row, 'seq'),
    ref: refOf({
      id: readText(row, 'id'),
      partnerId: readText(row, 'partner_id'),
      type: readText(row, 'type'),
      createdAt: readText(row, 'created_at'),
      orderingKey: readOptionalText(row, 'ordering_key'),
      keySeq: readOptionalInteger(row, 'key_seq'),
    }),
  };
}
