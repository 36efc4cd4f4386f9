import { CursorNotFoundError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import type { Event, JsonValue, Page } from '../../core/model.ts';
import type { AppendResult, EventListQuery, EventLog, NewEvent } from '../../core/ports.ts';
import {
  prepared,
  type Row,
  readInteger,
  readOptionalText,
  readText,
  type SqliteDatabase,
  withoutUndefined,
  write,
} from './database.ts';

const COLUMNS = 'id, partner_id, type, payload, created_at, idempotency_key';

function toEvent(row: Row): Event {
  const payload: JsonValue = JSON.parse(readText(row, 'payload'));
  return withoutUndefined({
    id: readText(row, 'id'),
    partnerId: readText(row, 'partner_id'),
    type: readText(row, 'type'),
    payload,
    createdAt: readText(row, 'created_at'),
    idempotencyKey: readOptionalText(row, 'idempotency_key'),
  });
}

/**
 * The event log on SQLite. Events are polled in `seq` order, which is commit order (see the
 * schema), not id order: ids are minted before the write lock is taken, so a later commit can
 * carry a smaller id, and paging by id could skip it.
 */
export class SqliteEventLog implements EventLog {
  readonly #db: SqliteDatabase;

  constructor(db: SqliteDatabase) {
    this.#db = db;
  }

  /** The new event's id is a ULID of its `createdAt`, minted before the write lock is taken. */
  async append(draft: NewEvent): Promise<AppendResult> {
    const db = this.#db;
    const event: Event = { ...draft, id: newId('evt', Date.parse(draft.createdAt)) };
    return write(db, () => {
      const inserted = prepared(
        db,
        `INSERT INTO events (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (partner_id, idempotency_key) DO NOTHING
           RETURNING seq, ${COLUMNS}`,
      ).get(
        event.id,
        event.partnerId,
        event.type,
        JSON.stringify(event.payload),
        event.createdAt,
        event.idempotencyKey ?? null,
      );
      if (inserted === undefined) {
        // Only an idempotency key can conflict here (a null key never does): return the first.
        const first = prepared(
          db,
          `SELECT ${COLUMNS} FROM events WHERE partner_id = ? AND idempotency_key = ?`,
        ).get(event.partnerId, event.idempotencyKey ?? null);
        if (first === undefined) throw new Error(`event ${event.id} neither inserted nor found`);
        return { event: toEvent(first), created: false };
      }
      prepared(
        db,
        'INSERT INTO outbox (seq, event_id, partner_id, type, created_at) VALUES (?, ?, ?, ?, ?)',
      ).run(readInteger(inserted, 'seq'), event.id, event.partnerId, event.type, event.createdAt);
      return { event: toEvent(inserted), created: true };
    });
  }

  async get(partnerId: string, eventId: string): Promise<Event | undefined> {
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
   * gone can be used again), and their outbox rows if the router has not taken them yet.
   * Returns how many events were deleted. Synchronous, like `expired`.
   */
  deleteEvents(seqs: readonly number[]): number {
    if (seqs.length === 0) return 0;
    const list = JSON.stringify(seqs);
    prepared(this.#db, 'DELETE FROM outbox WHERE seq IN (SELECT value FROM json_each(?))').run(list);
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
    let afterSeq = 0;
    if (query.after !== undefined) {
      const cursor = prepared(this.#db, 'SELECT seq FROM events WHERE id = ? AND partner_id = ?').get(
        query.after,
        partnerId,
      );
      if (cursor === undefined) throw new CursorNotFoundError(query.after);
      afterSeq = readInteger(cursor, 'seq');
    }
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
