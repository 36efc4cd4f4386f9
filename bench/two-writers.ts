/**
 * `node bench/two-writers.ts`: what a second connection writing the same SQLite file costs a
 * writer, the price of running part of the local runtime (the dispatcher, say) on a thread or
 * in a process of its own. Two connections of this process, on one database in a temporary
 * directory, make the same small write transaction (five deliveries inserted, five earlier
 * ones updated): B alone, then B with A writing between each of its transactions, turn about
 * for a few rounds. SQLite drops a connection's page cache when it finds that another
 * connection committed since its last transaction (the WAL's header changed), so each
 * transaction then reads its pages again. Prints the mean time of a transaction in each case
 * (synchronous, on one thread: its CPU time). About seven seconds.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  closeDatabase,
  openDatabase,
  prepared,
  type SqliteDatabase,
  transaction,
} from '../functions/adapters/sqlite/database.ts';

const TRANSACTIONS = 2_000;
const ROUNDS = 3;
/** The WAL is restarted this often, as the runtime's checkpointer keeps it from growing. */
const RESTART_EVERY = 500;

const dir = mkdtempSync(join(tmpdir(), 'two-writers-'));
const path = join(dir, 'dispatcher.db');
const a = openDatabase(path);
const b = openDatabase(path);
for (const db of [a, b]) db.exec('PRAGMA wal_autocheckpoint = 0');
a.exec(
  `INSERT INTO partners (id, name, created_at) VALUES ('ptn_bench', 'bench', '2026-01-01T00:00:00.000Z')`,
);

let made = 0;
const idOf = (n: number) => `dlv_${String(n).padStart(26, '0')}`;

/** Five deliveries in, five made earlier marked succeeded: a fan-out's and a dispatcher's writes. */
function write(db: SqliteDatabase): void {
  transaction(db, () => {
    const insert = prepared(
      db,
      `INSERT INTO deliveries (id, event_id, subscription_id, partner_id, event_type, origin, status,
         attempts, created_at, updated_at) VALUES (?, ?, ?, 'ptn_bench', 'order.created', 'fanout', 'pending', 0, ?, ?)`,
    );
    const succeed = prepared(db, `UPDATE deliveries SET status = 'succeeded', attempts = 1 WHERE id = ?`);
    const at = new Date().toISOString();
    for (let i = 0; i < 5; i++) {
      made += 1;
      insert.run(idOf(made), `evt_${String(made).padStart(26, '0')}`, `sub_${made % 10}`, at, at);
      if (made > 50) succeed.run(idOf(made - 50));
    }
  });
}

/** Mean microseconds of B's transactions, and of A's when they alternate. */
function measure(alternate: boolean): { b: number; a: number | null } {
  let spentB = 0;
  let spentA = 0;
  for (let i = 1; i <= TRANSACTIONS; i++) {
    if (alternate) {
      const started = performance.now();
      write(a);
      spentA += performance.now() - started;
    }
    const started = performance.now();
    write(b);
    spentB += performance.now() - started;
    if (i % RESTART_EVERY === 0) a.exec('PRAGMA wal_checkpoint(RESTART)');
  }
  const mean = (ms: number) => (ms / TRANSACTIONS) * 1000;
  return { b: mean(spentB), a: alternate ? mean(spentA) : null };
}

try {
  // Warm: the tables and the statements exist, the JIT has compiled the loop.
  measure(true);
  for (let round = 1; round <= ROUNDS; round++) {
    for (const alternate of round % 2 === 1 ? [false, true] : [true, false]) {
      const took = measure(alternate);
      console.log(
        took.a === null
          ? `round ${round}, B alone:    B ${took.b.toFixed(0)} µs a transaction`
          : `round ${round}, A, B, A, …: B ${took.b.toFixed(0)} µs, A ${took.a.toFixed(0)} µs a transaction`,
      );
    }
  }
} finally {
  closeDatabase(a);
  closeDatabase(b);
  rmSync(dir, { recursive: true, force: true });
}
