/**
 * `node bench/fanout-writes.ts`: what one more subscription costs each event's fan-out in the
 * local runtime's storage, the price a hanging or failing subscription makes its healthy
 * neighbours pay (the bench's isolation row). For each event, fan-out stores one delivery and
 * sends one queue message per subscription, through the runtime's own adapters
 * (SqliteDeliveryStore.createForEvent, SqliteQueue.send), in group commits of 1, 4 and 16
 * events. It times 10 subscriptions and 20, turn about, and takes the difference per added
 * delivery; then the same with the two indexes keyed by subscription dropped (the deliveries'
 * by subscription, the queue's by message group): each event writes one leaf page of each per
 * subscription, where the other B-trees take the event's deliveries side by side. Prints the
 * process's CPU microseconds per event and per added delivery, the least of three runs. About
 * a minute.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../functions/adapters/clock.ts';
import { closeDatabase, openDatabase, type SqliteDatabase } from '../functions/adapters/sqlite/database.ts';
import { SqliteDeliveryStore } from '../functions/adapters/sqlite/deliveries.ts';
import type { SqliteQueue } from '../functions/adapters/sqlite/queues.ts';
import { DELIVERY_TIMEOUT_MS } from '../functions/config.ts';
import { newDeliveries, queuedDelivery } from '../functions/core/fanout.ts';
import { newId } from '../functions/core/ids.ts';
import type { DeliveryMessage } from '../functions/core/model.ts';
import { openLocalQueues, REMEMBERED_DELIVERIES } from '../local/runtime.ts';

const EVENTS = 2_000;
const ROUNDS = 3;
const EVENTS_PER_COMMIT = [1, 4, 16];
const SUBSCRIPTIONS = { healthy: 10, withOthers: 20 };
const cpuMicros = () => {
  const { user, system } = process.cpuUsage();
  return user + system;
};

interface Store {
  db: SqliteDatabase;
  deliveries: SqliteDeliveryStore;
  queue: SqliteQueue<DeliveryMessage>;
  subscriptionIds: string[];
}

function openStore(dir: string, name: string, subscriptions: number, scattered: boolean): Store {
  const db = openDatabase(join(dir, `${name}.db`));
  if (!scattered) db.exec('DROP INDEX deliveries_by_subscription; DROP INDEX queue_messages_by_group');
  // The runtime's delivery store and delivery queue, as local/runtime.ts opens them.
  return {
    db,
    deliveries: new SqliteDeliveryStore(db, { remember: { ...REMEMBERED_DELIVERIES, clock: systemClock } }),
    queue: openLocalQueues(db, { deliveryTimeoutMs: DELIVERY_TIMEOUT_MS.default }).delivery,
    subscriptionIds: Array.from({ length: subscriptions }, () => newId('sub')),
  };
}

/** One event's fan-out writes: its deliveries, then a queue message for each, as fan-out makes them. */
async function fanOut(store: Store, partnerId: string): Promise<void> {
  const now = new Date();
  const event = { id: newId('evt', now.getTime()), partnerId, type: 'order.created' };
  const made = newDeliveries(event, store.subscriptionIds, 'fanout', now);
  const stored = await store.deliveries.createForEvent(made);
  await store.queue.send(stored.map((d) => queuedDelivery(d)));
}

/** CPU microseconds per event of `events` fan-outs, `perCommit` events to a commit. */
async function measure(store: Store, events: number, perCommit: number): Promise<number> {
  const partnerId = 'ptr_bench';
  const started = cpuMicros();
  for (let i = 0; i < events; i += perCommit) {
    // Started in one turn, so their writes share the turn's commit (write()'s group commit).
    await Promise.all(Array.from({ length: perCommit }, () => fanOut(store, partnerId)));
  }
  const spent = cpuMicros() - started;
  // The runtime keeps the WAL from growing (local/checkpointer.ts); so does this, between runs.
  store.db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
  return spent / events;
}

const dir = mkdtempSync(join(tmpdir(), 'fanout-writes-'));
try {
  for (const scattered of [true, false]) {
    console.log(
      scattered ? 'with every index:' : 'without deliveries_by_subscription and queue_messages_by_group:',
    );
    for (const perCommit of EVENTS_PER_COMMIT) {
      const few = openStore(dir, `few-${scattered}-${perCommit}`, SUBSCRIPTIONS.healthy, scattered);
      const many = openStore(dir, `many-${scattered}-${perCommit}`, SUBSCRIPTIONS.withOthers, scattered);
      try {
        // Warm: the statements exist, the JIT has compiled the loop, the B-trees have depth.
        await measure(few, EVENTS, perCommit);
        await measure(many, EVENTS, perCommit);
        const took = { few: [] as number[], many: [] as number[] };
        for (let round = 0; round < ROUNDS; round++) {
          const order = round % 2 === 0 ? (['few', 'many'] as const) : (['many', 'few'] as const);
          for (const side of order)
            took[side].push(await measure(side === 'few' ? few : many, EVENTS, perCommit));
        }
        const least = (xs: number[]) => Math.min(...xs);
        const added =
          (least(took.many) - least(took.few)) / (SUBSCRIPTIONS.withOthers - SUBSCRIPTIONS.healthy);
        console.log(
          `  ${String(perCommit).padStart(2)} events a commit: ${least(took.few).toFixed(0)} µs an event with ${SUBSCRIPTIONS.healthy} subscriptions, ${least(took.many).toFixed(0)} µs with ${SUBSCRIPTIONS.withOthers}: ${added.toFixed(1)} µs per added delivery (least of ${ROUNDS})`,
        );
      } finally {
        closeDatabase(few.db);
        closeDatabase(many.db);
      }
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
