/**
 * The local stream: the outbox rows SqliteEventLog.append writes in the event's transaction.
 * The router reads them oldest first and removes each once its event is fanned out (or in the
 * fan-out queue), so an event is fanned out at least once however the process stops.
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
  /** The event's commit sequence: removal key, and the stream's order. */
  seq: number;
  ref: EventRef;
}

export class SqliteOutbox {
  readonly #db: SqliteDatabase;

  constructor(db: SqliteDatabase) {
    this.#db = db;
  }

  /** Up to `limit` entries, oldest first. Synchronous so it can run inside transaction(). */
  peek(limit: number): OutboxEntry[] {
    return prepared(
      this.#db,
      `SELECT seq, event_id, partner_id, type, created_at, ordering_key, key_seq FROM outbox
         ORDER BY seq LIMIT ?`,
    )
      .all(limit)
      .map((row) => {
        const orderingKey = readOptionalText(row, 'ordering_key');
        const keySeq = readOptionalInteger(row, 'key_seq');
        return {
          seq: readInteger(row, 'seq'),
          ref: {
            id: readText(row, 'event_id'),
            partnerId: readText(row, 'partner_id'),
            type: readText(row, 'type'),
            createdAt: readText(row, 'created_at'),
            ...(orderingKey === undefined || keySeq === undefined ? {} : { orderingKey, keySeq }),
          },
        };
      });
  }

  /** Removes the entries; seqs that are already gone are ignored. */
  remove(seqs: number[]): void {
    if (seqs.length === 0) return;
    prepared(this.#db, 'DELETE FROM outbox WHERE seq IN (SELECT value FROM json_each(?))').run(
      JSON.stringify(seqs),
    );
  }
}
