import { CursorNotFoundError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import type { Event, JsonValue, Page } from '../../core/model.ts';
import type { AppendResult, EventListQuery, EventLog, NewEvent } from '../../core/ports.ts';
import { RecentlyWritten, type RecentlyWrittenOptions } from '../recently-written.ts';
import {
  prepared,
  type Row,
  readInteger,
  readOptionalInteger,
  readOptionalText,
  readText,
  type SqliteDatabase,
  withoutUndefined,
  write,
} from './database.ts';

const COLUMNS = 'id, partner_id, type, payload, created_at, idempotency_key, ordering_key, key_seq';

function toEvent(row: Row): Event {
  const payload: JsonValue = JSON.parse(readText(row, 'payload'));
  return withoutUndefined({
    id: readText(row, 'id'),
    partnerId: readText(row, 'partner_id'),
    type: readText(row, 'type'),
    payload,
    createdAt: readText(row, 'created_at'),
    idempotencyKey: readOptionalText(row, 'idempotency_key'),
    orderingKey: readOptionalText(row, 'ordering_key'),
    keySeq: readOptionalInteger(row, 'key_seq'),
  });
}

/**
 * The event log on SQLite. Events are polled in `seq` order, which is commit order (see the
 * schema), not id order: ids are minted before the write lock is taken, so a later commit can
 * carry a smaller id, and paging by id could skip it.
 */
/**
 * How often a waiting poller looks at the file itself: appends of this instance wake it at
 * once, and this finds those of another process writing the same file.
 */
const WAIT_LOOK_MS = 1000;

export interface EventLogOptions {
  /**
   * Keep the events this log appended last in memory for `get`, for a short while: fan-out
   * and the first try read an event soon after it is published, and an event never changes.
   * It goes only by the retention (a day at least) or by a deletion of the database's own,
   * never this soon after its append. Its `limit` counts the payloads' JSON characters.
   */
  remember?: RecentlyWrittenOptions;
}

/** An event this instance stored, with its seq: its place in the stream (see SqliteOutbox). */
export interface AppendedEvent {
  seq: number;
  event: Event;
}

export class SqliteEventLog implements EventLog {
  readonly #db: SqliteDatabase;
  /** The events appended last, by id, weighed by their payloads' length (see EventLogOptions.remember). */
  readonly #recent: RecentlyWritten<Event> | undefined;
  /** Per partner, the pollers waiting for its next event (see waitForEvents). */
  readonly #waiting = new Map<string, Set<() => void>>();
  /** Told of every event this instance stores (see onAppend). */
  readonly #appendListeners = new Set<(appended: AppendedEvent) => void>();

  constructor(db: SqliteDatabase, options: EventLogOptions = {}) {
    this.#db = db;
    this.#recent = options.remember && new RecentlyWritten(options.remember);
  }

  /** The new event's id is a ULID of its `createdAt`, minted before the write lock is taken. */
  async append(draft: NewEvent): Promise<AppendResult> {
    const { result, chars, seq } = await this.#append(draft);
    if (result.created) {
      this.#recent?.keep(result.event.id, result.event, chars);
      // Committed: whoever waits for the partner's next event lists again now.
      for (const wake of [...(this.#waiting.get(draft.partnerId) ?? [])]) wake();
      for (const listener of this.#appendListeners) listener({ seq, event: result.event });
    }
    return result;
  }

  /**
   * Calls `listener` after each event this instance stores is committed, in commit order (the
   * local runtime's router wakes on it, and its stream follows it); returns what stops it. A
   * listener must not throw: the append it hears of is stored, whatever the listener meets.
   */
  onAppend(listener: (appended: AppendedEvent) => void): () => void {
    this.#appendListeners.add(listener);
    return () => this.#appendListeners.delete(listener);
  }

  /**
   * Resolves at the first of: an append of this instance for the partner, an event found
   * after the cursor (at once, or at a look every WAIT_LOOK_MS for another process's
   * appends), or the timeout. A cursor that is not the partner's resolves at once: the list
   * that follows answers for it.
   */
  waitForEvents(
    partnerId: string,
    query: Pick<EventListQuery, 'after' | 'types'>,
    timeoutMs: number,
  ): Promise<void> {
    return new Promise((resolve) => {
      let waiting = this.#waiting.get(partnerId);
      if (waiting === undefined) {
        waiting = new Set();
        this.#waiting.set(partnerId, waiting);
      }
      const set = waiting;
      const done = () => {
        clearTimeout(timer);
        clearInterval(look);
        set.delete(done);
        if (set.size === 0 && this.#waiting.get(partnerId) === set) this.#waiting.delete(partnerId);
        resolve();
      };
      set.add(done);
      const timer = setTimeout(done, Math.max(0, timeoutMs));
      const look = setInterval(() => {
        try {
          if (this.#hasEventAfter(partnerId, query)) done();
        } catch {
          done(); // the database is closing: the list that follows answers for it
        }
      }, WAIT_LOOK_MS);
      // A wait never keeps the process alive by itself.
      timer.unref();
      look.unref();
      // Registered before this look, so an append committed in between still wakes it.
      if (this.#hasEventAfter(partnerId, query)) done();
    });
  }

  async latestCursor(partnerId: string): Promise<string | null> {
    const row = prepared(
      this.#db,
      'SELECT id FROM events WHERE partner_id = ? ORDER BY seq DESC LIMIT 1',
    ).get(partnerId);
    return row === undefined ? null : readText(row, 'id');
  }

  async resumeAfter(
    partnerId: string,
    cursor: string,
  ): Promise<{ expired: true } | { expired: false; after?: string }> {
    const mark = prepared(this.#db, 'SELECT seq, event_id FROM expired_marks WHERE partner_id = ?').get(
      partnerId,
    );
    const found = prepared(this.#db, 'SELECT seq FROM events WHERE id = ? AND partner_id = ?').get(
      cursor,
      partnerId,
    );
    if (found !== undefined) {
      const expired = mark !== undefined && readInteger(mark, 'seq') > readInteger(found, 'seq');
      return expired ? { expired: true } : { expired: false, after: cursor };
    }
    // Gone: fine only if it was the last to expire (everything kept comes after it).
    return mark !== undefined && readText(mark, 'event_id') === cursor
      ? { expired: false }
      : { expired: true };
  }

  /** Every cursor of this log is an event's id. */
  async cursorTime(partnerId: string, cursor: string): Promise<string | undefined> {
    return (await this.get(partnerId, cursor))?.createdAt;
  }

  /** @throws CursorNotFoundError when `after` is not one of the partner's events. */
  async countAfter(partnerId: string, after: string | null): Promise<number> {
    const row = prepared(this.#db, 'SELECT count(*) AS n FROM events WHERE partner_id = ? AND seq > ?').get(
      partnerId,
      after === null ? 0 : this.#seqOf(partnerId, after),
    );
    return row === undefined ? 0 : readInteger(row, 'n');
  }

  #seqOf(partnerId: string, eventId: string): number {
    const cursor = prepared(this.#db, 'SELECT seq FROM events WHERE id = ? AND partner_id = ?').get(
      eventId,
      partnerId,
    );
    if (cursor === undefined) throw new CursorNotFoundError(eventId);
    return readInteger(cursor, 'seq');
  }

  /** Ends every wait now (the runtime is stopping): each poll lists once more and answers. */
  releaseWaiters(): void {
    for (const waiting of [...this.#waiting.values()]) for (const wake of [...waiting]) wake();
  }

  #hasEventAfter(partnerId: string, query: Pick<EventListQuery, 'after' | 'types'>): boolean {
    const types = query.types ?? [];
    // A cursor that is not the partner's counts any event: the list that follows answers for it.
    const row = prepared(
      this.#db,
      `SELECT 1 AS found FROM events WHERE partner_id = ?
         AND seq > coalesce((SELECT seq FROM events WHERE id = ? AND partner_id = ?), CASE WHEN ? THEN -1 ELSE 0 END)
         AND (? = 0 OR type IN (SELECT value FROM json_each(?)))
       LIMIT 1`,
    ).get(
      partnerId,
      query.after ?? null,
      partnerId,
      query.after === undefined ? 0 : 1,
      types.length,
      JSON.stringify(types),
    );
    return row !== undefined;
  }

  /** The append, the length of the event's payload as stored, and its seq (0 when not stored). */
  async #append(draft: NewEvent): Promise<{ result: AppendResult; chars: number; seq: number }> {
    const db = this.#db;
    const { keySeq: _unplaced, ...fields } = draft;
    const event: Event = { ...fields, id: newId('evt', Date.parse(draft.createdAt)) };
    const payload = JSON.stringify(event.payload);
    const { result, seq } = await write(db, (): { result: AppendResult; seq: number } => {
      // With an ordering key, the event takes the key's next place as it is inserted, and the
      // key's counter moves to it in the same transaction: a key's places have no gaps.
      const inserted = prepared(
        db,
        `INSERT INTO events (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?,
             CASE WHEN ?7 IS NULL THEN NULL ELSE 1 + COALESCE(
               (SELECT key_seq FROM ordering_keys WHERE partner_id = ?2 AND ordering_key = ?7), 0) END)
           ON CONFLICT (partner_id, idempotency_key) DO NOTHING
           RETURNING seq, key_seq`,
      ).get(
        event.id,
        event.partnerId,
        event.type,
        payload,
        event.createdAt,
        event.idempotencyKey ?? null,
        event.orderingKey ?? null,
      );
      if (inserted === undefined) {
        // Only an idempotency key can conflict here (a null key never does): return the first.
        const first = prepared(
          db,
          `SELECT ${COLUMNS} FROM events WHERE partner_id = ? AND idempotency_key = ?`,
        ).get(event.partnerId, event.idempotencyKey ?? null);
        if (first === undefined) throw new Error(`event ${event.id} neither inserted nor found`);
        return { result: { event: toEvent(first), created: false }, seq: 0 };
      }
      // As stored: the payload is the one just serialised, so it is not read back and parsed.
      const stored: Event = withoutUndefined({
        id: event.id,
        partnerId: event.partnerId,
        type: event.type,
        payload: event.payload,
        createdAt: event.createdAt,
        idempotencyKey: event.idempotencyKey,
        orderingKey: event.orderingKey,
        keySeq: readOptionalInteger(inserted, 'key_seq'),
      });
      if (stored.orderingKey !== undefined && stored.keySeq !== undefined) {
        prepared(
          db,
          `INSERT INTO ordering_keys (partner_id, ordering_key, key_seq) VALUES (?, ?, ?)
             ON CONFLICT (partner_id, ordering_key) DO UPDATE SET key_seq = excluded.key_seq`,
        ).run(stored.partnerId, stored.orderingKey, stored.keySeq);
      }
      return { result: { event: stored, created: true }, seq: readInteger(inserted, 'seq') };
    });
    return { result, chars: payload.length, seq };
  }

  async get(partnerId: string, eventId: string): Promise<Event | undefined> {
    const recent = this.#recent?.get(eventId);
    if (recent?.partnerId === partnerId) return recent;
    const row = prepared(this.#db, `SELECT ${COLUMNS} FROM events WHERE id = ? AND partner_id = ?`).get(
      eventId,
      partnerId,
    );
    return row === undefined ? undefined : toEvent(row);
  }

  /**
   * Up to `limit` of the oldest events, of any partner, created before `before`: what the
   * retention sweep removes next. Synchronous, so it can run inside the sweep's write.
   */
  expired(before: string, limit: number): { seq: number; id: string }[] {
    return prepared(this.#db, 'SELECT seq, id FROM events WHERE created_at < ? ORDER BY created_at LIMIT ?')
      .all(before, limit)
      .map((row) => ({ seq: readInteger(row, 'seq'), id: readText(row, 'id') }));
  }

  /**
   * Deletes the events with these seqs, their idempotency keys with them (a key whose event is
   * gone can be used again).
   * Returns how many events were deleted. Synchronous, like `expired`.
   */
  deleteEvents(seqs: readonly number[]): number {
    if (seqs.length === 0) return 0;
    this.#recent?.clear();
    const list = JSON.stringify(seqs);
    // Each partner's last deleted event, for readers to tell what expired after them.
    prepared(
      this.#db,
      `INSERT INTO expired_marks (partner_id, seq, event_id)
         SELECT partner_id, seq, id FROM events
           WHERE seq IN (SELECT max(seq) FROM events WHERE seq IN (SELECT value FROM json_each(?)) GROUP BY partner_id)
         ON CONFLICT (partner_id) DO UPDATE SET seq = excluded.seq, event_id = excluded.event_id
           WHERE excluded.seq > expired_marks.seq`,
    ).run(list);
    const result = prepared(this.#db, 'DELETE FROM events WHERE seq IN (SELECT value FROM json_each(?))').run(
      list,
    );
    return Number(result.changes);
  }

  /**
   * `next` is the id of the last event returned, or, when the page is empty, the `after` given
   * (null when there was none): the log is open-ended, so a poller always resumes from `next`
   * and an empty page just means "nothing new yet", never "the end".
   */
  async list(partnerId: string, query: EventListQuery): Promise<Page<Event>> {
    const afterSeq = query.after === undefined ? 0 : this.#seqOf(partnerId, query.after);
    const types = query.types ?? [];
    // Stored times are all toISOString's (UTC, milliseconds), so the instant `since` names,
    // written the same way, compares as text exactly as it does as a time.
    const since = query.since === undefined ? '' : new Date(query.since).toISOString();
    const rows = prepared(
      this.#db,
      `SELECT ${COLUMNS} FROM events
         WHERE partner_id = ? AND seq > ?
           AND (? = 0 OR type IN (SELECT value FROM json_each(?)))
           AND created_at >= ?
         ORDER BY seq LIMIT ?`,
    ).all(partnerId, afterSeq, types.length, JSON.stringify(types), since, query.limit);
    const items = rows.map(toEvent);
    return { items, next: items.at(-1)?.id ?? query.after ?? null };
  }
}
