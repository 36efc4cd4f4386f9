/**
 * Retention for the local runtime. On AWS, DynamoDB's TTL deletes events, deliveries and
 * attempts `retentionDays` after they were written; here a sweep does the same on SQLite, so
 * the file does not grow for ever and an idempotency key can be used again once its event has
 * expired (as on AWS, where its `IDEM#` item expires with the event).
 *
 * The sweep deletes in small batches, each one write of its own (see `write` in database.ts):
 * the write lock is held for one batch at a time, so the API never waits behind a sweep of a
 * large backlog.
 */
import { type SqliteDatabase, write } from '../functions/adapters/sqlite/database.ts';
import { SqliteDeliveryStore } from '../functions/adapters/sqlite/deliveries.ts';
import { SqliteEventLog } from '../functions/adapters/sqlite/events.ts';
import type { Clock } from '../functions/core/ports.ts';

const DAY_MS = 86_400_000;

/** Rows of each kind one batch deletes at most (attempts go with their deliveries). */
export const RETENTION_BATCH_SIZE = 250;
/** How often the runtime sweeps: expiry is counted in days, so an hour late is nothing. */
export const RETENTION_SWEEP_INTERVAL_MS = 60 * 60 * 1000;

export interface RetentionSweepOptions {
  /** Days events, their deliveries and attempts are kept (DISPATCHER_RETENTION_DAYS). */
  retentionDays: number;
  clock: Clock;
  /** Time between sweeps; the first runs at once. @default RETENTION_SWEEP_INTERVAL_MS */
  intervalMs?: number;
  log?: (message: string, error?: unknown) => void;
  /** @default RETENTION_BATCH_SIZE */
  batchSize?: number;
}

export interface SweepResult {
  events: number;
  deliveries: number;
  /** Writes it took: each deleted at most `batchSize` events and `batchSize` deliveries. */
  batches: number;
}

export interface RetentionSweep {
  /** Sweeps now, or joins the sweep already running; resolves with what it deleted. */
  sweep(): Promise<SweepResult>;
  /** Stops sweeping: no new sweep starts, and the one running stops after its batch. */
  stop(): Promise<void>;
}

/**
 * Starts sweeping `db` every `intervalMs`, the first time at once.
 * Each sweep, until a batch finds nothing more:
 * 1. Delete the deliveries created before the cutoff (now − retentionDays), with their attempts.
 * 2. Take the oldest events created before the cutoff; delete the rest of their deliveries
 *    (a redelivery or replay of an old event is younger than it); once none are left, delete
 *    the events, with their idempotency keys.
 */
export function startRetentionSweep(db: SqliteDatabase, options: RetentionSweepOptions): RetentionSweep {
  const { retentionDays, clock } = options;
  if (!(retentionDays > 0)) throw new RangeError(`retentionDays must be positive, got ${retentionDays}`);
  const intervalMs = options.intervalMs ?? RETENTION_SWEEP_INTERVAL_MS;
  const batchSize = options.batchSize ?? RETENTION_BATCH_SIZE;
  const log =
    options.log ?? ((message, error) => (error ? console.error(message, error) : console.log(message)));
  const events = new SqliteEventLog(db);
  const deliveries = new SqliteDeliveryStore(db);

  let stopped = false;
  let running: Promise<SweepResult> | undefined;
  let timer: NodeJS.Timeout | undefined;

  /** One write: at most `batchSize` deliveries and `batchSize` events. */
  const batch = (cutoff: string) =>
    write(db, () => {
      let deliveriesDeleted = deliveries.deleteCreatedBefore(cutoff, batchSize);
      if (deliveriesDeleted === batchSize) return { events: 0, deliveries: deliveriesDeleted };
      const expired = events.expired(cutoff, batchSize);
      if (expired.length === 0) return { events: 0, deliveries: deliveriesDeleted };
      const room = batchSize - deliveriesDeleted;
      const younger = deliveries.deleteForEvents(
        expired.map((e) => e.id),
        room,
      );
      deliveriesDeleted += younger;
      // Some of their deliveries may be left: the events go in a later batch, after them.
      if (younger === room) return { events: 0, deliveries: deliveriesDeleted };
      return { events: events.deleteEvents(expired.map((e) => e.seq)), deliveries: deliveriesDeleted };
    });

  async function sweepOnce(): Promise<SweepResult> {
    const cutoff = new Date(clock.now().getTime() - retentionDays * DAY_MS).toISOString();
    const total: SweepResult = { events: 0, deliveries: 0, batches: 0 };
    while (!stopped) {
      const deleted = await batch(cutoff);
      total.batches += 1;
      total.events += deleted.events;
      total.deliveries += deleted.deliveries;
      if (deleted.events === 0 && deleted.deliveries === 0) break;
    }
    if (total.events > 0 || total.deliveries > 0) {
      log(
        `retention: deleted ${total.events} event(s) and ${total.deliveries} deliveries created before ${cutoff}`,
      );
    }
    return total;
  }

  function sweep(): Promise<SweepResult> {
    running ??= sweepOnce().finally(() => {
      running = undefined;
    });
    return running;
  }

  function schedule(delayMs: number): void {
    if (stopped) return;
    timer = setTimeout(async () => {
      try {
        await sweep();
      } catch (error) {
        log('retention: sweep failed', error);
      }
      schedule(intervalMs);
    }, delayMs);
    // The sweep alone never keeps the process alive.
    timer.unref();
  }

  schedule(0);
  return {
    sweep,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running?.catch(() => {});
    },
  };
}
