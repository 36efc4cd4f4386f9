/**
 * The local stream: the events table itself, read in seq order from a cursor kept in the same
 * database. An event's seq is given inside the write lock and SQLite has one writer at a time,
 * so seq order is commit order: every event committed after the cursor is after it in seq. The
 * router reads the events after the cursor and moves it past them once they are fanned out (or
 * in the fan-out queue), so an event is fanned out at least once however the process stops,
 * and appending an event writes nothing but the event.
 */
import type { EventRef } from '../../core/model.ts';
import {
  prepared,
  readInteger,
  readOptionalInteger,
  readOptionalText,
  readText,
  type SqliteDatabase,
} from './database.ts';

export interface OutboxEntry {
  /** The event's commit sequence: the stream's order, and what the cursor moves past. */
  seq: number;
  ref: EventRef;
}

export class SqliteOutbox {
  readonly #db: SqliteDatabase;

  constructor(db: SqliteDatabase) {
    this.#db = db;
  }

  /**
   * Up to `limit` of the events after the cursor, oldest first. Synchronous so it can run
   * inside transaction().
   */
  peek(limit: number): OutboxEntry[] {
    return prepared(
      this.#db,
      `SELECT seq, id, partner_id, type, created_at, ordering_key, key_seq FROM events
         WHERE seq > (SELECT seq FROM stream_cursor WHERE id = 1)
         ORDER BY seq LIMIT ?`,
    )
      .all(limit)
      .map((row) => {
        const orderingKey = readOptionalText(row, 'ordering_key');
        const keySeq = readOptionalInteger(row, 'key_seq');
        return {
          seq: readInteger(row, 'seq'),
          ref: {
            id: readText(row, 'id'),
            partnerId: readText(row, 'partner_id'),
            type: readText(row, 'type'),
            createdAt: readText(row, 'created_at'),
            ...(orderingKey === undefined || keySeq === undefined ? {} : { orderingKey, keySeq }),
          },
        };
      });
  }

  /** Moves the cursor past `seq`: the events up to it are taken. It never moves back. */
  advancePast(seq: number): void {
    prepared(this.#db, 'UPDATE stream_cursor SET seq = ? WHERE id = 1 AND seq < ?').run(seq, seq);
  }
}
