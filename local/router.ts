import { type SqliteDatabase, transaction } from '../functions/adapters/sqlite/database.ts';
import type { SqliteOutbox } from '../functions/adapters/sqlite/outbox.ts';
import type { SqliteQueue } from '../functions/adapters/sqlite/queues.ts';
import { type BusEnvelope, ROUTING_RULES, routeTargets, toBusEnvelope } from '../functions/core/patterns.ts';

/**
 * The local stand-in for the pipe and the bus: moves outbox entries (written with each event)
 * to the queues whose rules match, evaluating the same patterns the CDK stack deploys. Moving
 * a batch and removing it from the outbox is one transaction, so an entry is routed exactly
 * once even across a crash.
 */
export class OutboxRouter {
  readonly #db: SqliteDatabase;
  readonly #outbox: SqliteOutbox;
  readonly #targets: Record<(typeof ROUTING_RULES)[number]['target'], SqliteQueue<BusEnvelope>>;

  constructor(
    db: SqliteDatabase,
    outbox: SqliteOutbox,
    targets: Record<(typeof ROUTING_RULES)[number]['target'], SqliteQueue<BusEnvelope>>,
  ) {
    this.#db = db;
    this.#outbox = outbox;
    this.#targets = targets;
  }

  /** Routes up to `limit` entries; returns how many were taken from the outbox. */
  routeBatch(limit = 100): number {
    return transaction(this.#db, () => {
      const entries = this.#outbox.peek(limit);
      for (const entry of entries) {
        const envelope = toBusEnvelope(entry.ref);
        for (const target of routeTargets(envelope, ROUTING_RULES)) {
          this.#targets[target].sendNow([{ body: envelope }]);
        }
      }
      this.#outbox.remove(entries.map((e) => e.seq));
      return entries.length;
    });
  }
}
