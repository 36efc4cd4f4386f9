/**
 * The WAL checkpointer's thread (see checkpointer.ts): its own connection to the database,
 * copying committed pages from the write-ahead log into the database file five times a
 * second. Self-contained (no project imports): Node runs it as it is.
 */
import { DatabaseSync } from 'node:sqlite';
import { parentPort, workerData } from 'node:worker_threads';

interface CheckpointWorkerData {
  path: string;
  intervalMs: number;
}

const { path, intervalMs } = workerData as CheckpointWorkerData;
// Short: a RESTART holds the writer back while it waits for readers, so it waits briefly and
// tries again at a later tick rather than stalling the runtime's commits.
const db = new DatabaseSync(path, { timeout: 100 });
// PASSIVE copies what it can without waiting for, or blocking, the writer and the readers.
const passive = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
// Under steady writes a passive checkpoint never catches the log's end, and the log only starts
// over once it has; past this many pages (16 MiB) a RESTART makes it, holding the writer back
// only while it copies the few pages the passive checkpoints left.
const restart = db.prepare('PRAGMA wal_checkpoint(RESTART)');
const RESTART_AFTER_PAGES = 4096;

/** Failed checkpoints in a row after which the thread gives up (two seconds' worth at 200 ms). */
const GIVE_UP_AFTER_FAILURES = 10;
let failures = 0;

function run(): void {
  try {
    const result = passive.get();
    if (typeof result?.log === 'number' && result.log > RESTART_AFTER_PAGES) restart.get();
    failures = 0;
  } catch (error) {
    // Retried at the next tick. The first failure of a run is told; a run that goes on ends
    // the thread, and the runtime's connection checkpoints by itself again.
    failures += 1;
    if (failures === 1 || failures >= GIVE_UP_AFTER_FAILURES) {
      parentPort?.postMessage({
        kind: 'error',
        message: error instanceof Error ? error.message : String(error),
      });
    }
    if (failures >= GIVE_UP_AFTER_FAILURES) process.exit(1);
  }
}

const timer = setInterval(run, intervalMs);
parentPort?.postMessage({ kind: 'ready' });
parentPort?.on('message', (message: unknown) => {
  if (message !== 'stop') return;
  clearInterval(timer);
  run();
  db.close();
  parentPort?.close();
});
