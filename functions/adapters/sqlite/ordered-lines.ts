/**
 * Ordered subscriptions' gates and lines on SQLite (the tables of migration 9): `key_gates` and
 * `key_parked` per partner and key, `line_entries` and `line_heads` per subscription and key.
 * Each method is one statement, or one write of a few; a claim is an insert that does nothing
 * if the line has a head, so of two claims exactly one wins.
 */
import { type EventRef, FanoutMessage } from '../../core/model.ts';
import { lineOf } from '../../core/ordering.ts';
import type { LineEntry, LineHead, OrderedLines } from '../../core/ports.ts';
import { prepared, type Row, readInteger, readText, type SqliteDatabase, write } from './database.ts';

function toEntry(row: Row): LineEntry {
  return {
    seq: readInteger(row, 'key_seq'),
    deliveryId: readText(row, 'delivery_id'),
    eventId: readText(row, 'event_id'),
    partnerId: readText(row, 'partner_id'),
  };
}

const ENTRY_COLUMNS = 'key_seq, delivery_id, event_id, partner_id';

export class SqliteOrderedLines implements OrderedLines {
  readonly #db: SqliteDatabase;

  constructor(db: SqliteDatabase) {
    this.#db = db;
  }

  async fannedThrough(partnerId: string, key: string): Promise<number> {
    const row = prepared(
      this.#db,
      'SELECT fanned FROM key_gates WHERE partner_id = ? AND ordering_key = ?',
    ).get(partnerId, key);
    return row === undefined ? 0 : readInteger(row, 'fanned');
  }

  advanceGate(partnerId: string, key: string, from: number, to: number): Promise<boolean> {
    const db = this.#db;
    return write(db, () => {
      const moved =
        from === 0
          ? prepared(
              db,
              `INSERT INTO key_gates (partner_id, ordering_key, fanned) VALUES (?, ?, ?)
                 ON CONFLICT (partner_id, ordering_key) DO NOTHING`,
            ).run(partnerId, key, to)
          : prepared(
              db,
              'UPDATE key_gates SET fanned = ? WHERE partner_id = ? AND ordering_key = ? AND fanned = ?',
            ).run(to, partnerId, key, from);
      return Number(moved.changes) === 1;
    });
  }

  async park(ref: EventRef & { orderingKey: string; keySeq: number }): Promise<void> {
    const db = this.#db;
    await write(db, () => {
      prepared(
        db,
        `INSERT INTO key_parked (partner_id, ordering_key, key_seq, ref) VALUES (?, ?, ?, ?)
           ON CONFLICT DO NOTHING`,
      ).run(ref.partnerId, ref.orderingKey, ref.keySeq, JSON.stringify(ref));
    });
  }

  async parked(partnerId: string, key: string, seq: number): Promise<EventRef | undefined> {
    const row = prepared(
      this.#db,
      'SELECT ref FROM key_parked WHERE partner_id = ? AND ordering_key = ? AND key_seq = ?',
    ).get(partnerId, key, seq);
    return row === undefined ? undefined : FanoutMessage.parse(JSON.parse(readText(row, 'ref')));
  }

  async unpark(partnerId: string, key: string, seq: number): Promise<void> {
    const db = this.#db;
    await write(db, () => {
      prepared(db, 'DELETE FROM key_parked WHERE partner_id = ? AND ordering_key = ? AND key_seq = ?').run(
        partnerId,
        key,
        seq,
      );
    });
  }

  async append(subscriptionId: string, key: string, entry: LineEntry): Promise<void> {
    const db = this.#db;
    await write(db, () => {
      prepared(
        db,
        `INSERT INTO line_entries (subscription_id, ordering_key, ${ENTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT DO NOTHING`,
      ).run(subscriptionId, key, entry.seq, entry.deliveryId, entry.eventId, entry.partnerId);
    });
  }

  async head(subscriptionId: string, key: string): Promise<LineHead | undefined> {
    const head = prepared(
      this.#db,
      `SELECT ${ENTRY_COLUMNS}, taken, taken_at FROM line_heads WHERE subscription_id = ? AND ordering_key = ?`,
    ).get(subscriptionId, key);
    return head === undefined
      ? undefined
      : { ...toEntry(head), taken: readInteger(head, 'taken'), takenAt: readInteger(head, 'taken_at') };
  }

  async first(subscriptionId: string, key: string): Promise<LineEntry | undefined> {
    const first = prepared(
      this.#db,
      `SELECT ${ENTRY_COLUMNS} FROM line_entries WHERE subscription_id = ? AND ordering_key = ?
         ORDER BY key_seq LIMIT 1`,
    ).get(subscriptionId, key);
    return first === undefined ? undefined : toEntry(first);
  }

  async line(subscriptionId: string, key: string): Promise<{ head?: LineHead; first?: LineEntry }> {
    return lineOf(this, subscriptionId, key);
  }

  claim(subscriptionId: string, key: string, entry: LineEntry): Promise<boolean> {
    const db = this.#db;
    return write(db, () => {
      // Only an entry still in the line: its turn may have come and gone since it was read.
      const claimed = prepared(
        db,
        `INSERT INTO line_heads (subscription_id, ordering_key, ${ENTRY_COLUMNS})
           SELECT subscription_id, ordering_key, ${ENTRY_COLUMNS} FROM line_entries
             WHERE subscription_id = ? AND ordering_key = ? AND key_seq = ?
           ON CONFLICT DO NOTHING`,
      ).run(subscriptionId, key, entry.seq);
      return Number(claimed.changes) === 1;
    });
  }

  take(
    subscriptionId: string,
    key: string,
    seq: number,
    attempt: number,
    at: Date,
    leaseMs: number,
  ): Promise<boolean> {
    const db = this.#db;
    const now = at.getTime();
    return write(db, () => {
      const taken = prepared(
        db,
        `UPDATE line_heads SET taken = ?, taken_at = ?
           WHERE subscription_id = ? AND ordering_key = ? AND key_seq = ?
             AND (taken < ? OR (taken = ? AND taken_at < ?))`,
      ).run(attempt, now, subscriptionId, key, seq, attempt, attempt, now - leaseMs);
      return Number(taken.changes) === 1;
    });
  }

  async untake(subscriptionId: string, key: string, seq: number, attempt: number): Promise<void> {
    const db = this.#db;
    await write(db, () => {
      prepared(
        db,
        `UPDATE line_heads SET taken = ?, taken_at = 0
           WHERE subscription_id = ? AND ordering_key = ? AND key_seq = ? AND taken = ?`,
      ).run(attempt - 1, subscriptionId, key, seq, attempt);
    });
  }

  async finish(subscriptionId: string, key: string, seq: number): Promise<void> {
    const db = this.#db;
    await write(db, () => {
      prepared(
        db,
        'DELETE FROM line_entries WHERE subscription_id = ? AND ordering_key = ? AND key_seq = ?',
      ).run(subscriptionId, key, seq);
      prepared(
        db,
        'DELETE FROM line_heads WHERE subscription_id = ? AND ordering_key = ? AND key_seq = ?',
      ).run(subscriptionId, key, seq);
    });
  }
}
