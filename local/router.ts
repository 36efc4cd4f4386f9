import { type SqliteDatabase, transaction } from '../functions/adapters/sqlite/database.ts';
import type { SqliteOutbox } from '../functions/adapters/sqlite/outbox.ts';
import type { SqliteQueue } from '../functions/adapters/sqlite/queues.ts';
import type { EventRef } from '../functions/core/model.ts';

/**
 * The local stand-in for the EventBridge Pipe: moves outbox entries (written with each event)
 * to the fan-out queue, each as the EventRef the pipe sends. Moving a batch and removing it
 * from the outbox is one transaction, so an entry is routed exactly once even across a crash.
 */
export class OutboxRouter {
  readonly #db: SqliteDatabase;
  readonly #outbox: SqliteOutbox;
  readonly #fanout: SqliteQueue<EventRef>;

  constructor(db: SqliteDatabase, outbox: SqliteOutbox, fanout: SqliteQueue<EventRef>) {
    this.#db = db;
    this.#outbox = outbox;
    this.#fanout = fanout;
  }

  /** Routes up to `limit` entries; returns how many were taken from the outbox. */
  routeBatch(limit = 100): number {
    return transaction(this.#db, () => {
      const entries = this.#outbox.peek(limit);
      this.#fanout.sendNow(entries.map((entry) => ({ body: entry.ref })));
      this.#outbox.remove(entries.map((e) => e.seq));
      return entries.length;
    });
  }
}
