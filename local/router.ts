import { type SqliteDatabase, write } from '../functions/adapters/sqlite/database.ts';
import type { OutboxEntry, SqliteOutbox } from '../functions/adapters/sqlite/outbox.ts';
import type { SqliteQueue } from '../functions/adapters/sqlite/queues.ts';
import type { FanOutDeps } from '../functions/core/fanout.ts';
import type { EventRef } from '../functions/core/model.ts';
import { fanOutTogether } from '../functions/fanout/handler.ts';

export interface RouterOptions {
  /**
   * Events taken in one batch, fanned out side by side: as many as the fan-out queue's poller
   * had in flight (two batches of ten), so that an event going to many subscriptions does not
   * hold the event loop for a whole backlog's deliveries at once.
   * @default 20
   */
  batchSize?: number;
  /**
   * How long an event whose fan-out failed here waits in the fan-out queue before that queue's
   * poller tries it again: its visibility timeout, as if this had been its first receive.
   */
  retryDelaySeconds: number;
  log: (message: string, error?: unknown) => void;
}

/**
 * The local stand-in for the EventBridge Pipe and the fan-out queue's first receive: takes the
 * events after the stream's cursor (SqliteOutbox: the events table in commit order) oldest
 * first and fans each event out at once, in this process, rather than through a queue message
 * that the fan-out poller would receive and delete: that message's three writes were a large
 * part of a callback's cost.
 *
 * The cursor moves past an event only once its fan-out has committed, or once the event is in
 * the fan-out queue instead: an event whose fan-out failed goes there, and from there has that
 * queue's retries and dead-letter queue as on AWS. So a crash loses nothing: what the last run
 * took but had not moved past is fanned out again after the restart, a copy that fan-out and
 * the dispatcher already take in their stride (deliveries are found rather than made twice; a
 * try already recorded is not made again).
 *
 * One batch at a time (the runtime's loop awaits each): the cursor stays before a batch's
 * events until it ends, so a batch begun beside it would take them again.
 */
export class OutboxRouter {
  readonly #db: SqliteDatabase;
  readonly #outbox: SqliteOutbox;
  readonly #fanout: SqliteQueue<EventRef>;
  readonly #deps: FanOutDeps;
  readonly #options: Required<RouterOptions>;

  constructor(
    db: SqliteDatabase,
    outbox: SqliteOutbox,
    fanout: SqliteQueue<EventRef>,
    deps: FanOutDeps,
    options: RouterOptions,
  ) {
    this.#db = db;
    this.#outbox = outbox;
    this.#fanout = fanout;
    this.#deps = deps;
    this.#options = { batchSize: 20, ...options };
  }

  /**
   * Fans out the next batch of entries; resolves with how many were taken, once the stream's
   * cursor is past them. Rejects when it could not be moved: they are taken again next time.
   */
  async routeBatch(): Promise<number> {
    const entries = this.#outbox.peek(this.#options.batchSize);
    if (entries.length === 0) return 0;
    const failed = await this.#fanOut(entries);
    // One write, all or nothing: the failed events are queued as the cursor passes them.
    const last = entries[entries.length - 1]?.seq ?? 0;
    await write(this.#db, () => {
      this.#fanout.sendNow(
        failed.map((entry) => ({ body: entry.ref, delaySeconds: this.#options.retryDelaySeconds })),
      );
      this.#outbox.advancePast(last);
    });
    this.#outbox.passed(last);
    return entries.length;
  }

  /**
   * Fans the entries' events out side by side, their deliveries queued in one send, as the
   * fan-out handler does a batch's; resolves with the entries whose fan-out failed.
   */
  async #fanOut(entries: readonly OutboxEntry[]): Promise<OutboxEntry[]> {
    const fanOut = fanOutTogether(this.#deps, entries.length);
    const outcomes = await Promise.all(
      entries.map((entry, index) =>
        fanOut(index, () => entry.ref).then(
          () => true,
          (error: unknown) => {
            this.#options.log(
              `router: fan-out of event ${entry.ref.id} failed; it goes to the fan-out queue`,
              error,
            );
            return false;
          },
        ),
      ),
    );
    return entries.filter((_, i) => !outcomes[i]);
  }
}
