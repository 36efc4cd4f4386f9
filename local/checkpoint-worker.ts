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
// The log starts over only at the first commit after a checkpoint copied it to its end, and under
// steady writes one passive checkpoint seldom does. Past this many pages (16 MiB) the thread
// tries a few more passes in a row (below), and if commits still keep ahead, a RESTART makes it,
// holding the writer back while it copies the few pages the passive checkpoints left.
const restart = db.prepare('PRAGMA wal_checkpoint(RESTART)');
const RESTART_AFTER_PAGES = 4096;

/** Failed checkpoints in a row after which the thread gives up (two seconds' worth at 200 ms). */
const GIVE_UP_AFTER_FAILURES = 10;
let failures = 0;

/**
 * Passes a long log gets before a RESTART: each copies only the frames committed during the one
 * before, so one of them usually finds no commit came in meanwhile and copies the log to its end.
 * The next commit then starts the log over by itself, and the writer was never held back.
 */
const CATCH_UP_PASSES = 4;

/** Pages of the log a checkpoint left uncopied (0 when it copied to the end). */
function behind(result: Record<string, unknown> | undefined): number {
  const log = Number(result?.log ?? 0);
  const copied = Number(result?.checkpointed ?? 0);
  return log > RESTART_AFTER_PAGES && copied < log ? log - copied : 0;
}

function run(): void {
  try {
    let result = passive.get();
    for (let pass = 0; pass < CATCH_UP_PASSES && behind(result) > 0; pass++) result = passive.get();
    if (behind(result) > 0) restart.get();
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
