/**
 * Checkpoints the local database's write-ahead log on a thread of its own.
 *
 * SQLite checkpoints inside a commit by default: every thousand pages or so, the committing
 * connection copies the log into the database file and waits for the disk (fsync), on the
 * event loop, holding up every request and callback behind it. Here the runtime's connection
 * never checkpoints; a worker thread with its own connection does, five times a second, so
 * the disk waits happen beside the event loop. Durability across a crash of the process is
 * unchanged: with synchronous = NORMAL a commit is never synced by itself, only by the
 * checkpoints (an OS crash or power loss can lose the commits since the last one).
 *
 * Five times a second rather than every few milliseconds: a checkpoint copies each page once
 * however often it was written since the last, and the pages written most (the ends of the
 * tables and indexes that grow with every callback) are written in almost every commit. At
 * 20 ms the thread took about 5.6% of the runtime's CPU under load, at 200 ms about 2.4%; the
 * log between two checkpoints stays well under the 16 MiB at which the thread restarts it.
 *
 * If the worker fails, the connection checkpoints by itself again, as SQLite does by default.
 */
import { Worker } from 'node:worker_threads';
import type { SqliteDatabase } from '../functions/adapters/sqlite/database.ts';

/** SQLite's default wal_autocheckpoint, restored when the worker is gone. */
const DEFAULT_AUTOCHECKPOINT_PAGES = 1000;
/** How often the thread checkpoints (see above). */
export const CHECKPOINT_INTERVAL_MS = 200;

export interface Checkpointer {
  /**
   * Settles once the thread checkpoints (the connection stops checkpointing only then), or
   * once it has failed (the connection goes on checkpointing by itself).
   */
  ready: Promise<void>;
  /** Runs a last checkpoint and ends the thread. */
  stop(): Promise<void>;
}

export function startCheckpointer(
  db: SqliteDatabase,
  path: string,
  options: { intervalMs?: number; log: (message: string, error?: unknown) => void },
): Checkpointer {
  const worker = new Worker(new URL('./checkpoint-worker.ts', import.meta.url), {
    workerData: { path, intervalMs: options.intervalMs ?? CHECKPOINT_INTERVAL_MS },
  });
  // Never what keeps the process alive: a runtime that failed to start still exits.
  worker.unref();
  let stopped = false;
  let readyNow: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    readyNow = resolve;
  });
  const fallBack = (why: string, error?: unknown) => {
    if (db.isOpen) db.exec(`PRAGMA wal_autocheckpoint = ${DEFAULT_AUTOCHECKPOINT_PAGES}`);
    if (!stopped) options.log(`checkpointer: ${why}; the database checkpoints on commit again`, error);
    readyNow();
  };
  worker.on('message', (message: { kind?: string; message?: string }) => {
    if (message.kind === 'ready') {
      // Until now the connection kept checkpointing as SQLite does by default.
      if (db.isOpen && !stopped) db.exec('PRAGMA wal_autocheckpoint = 0');
      readyNow();
    } else if (message.kind === 'error') {
      options.log(`checkpointer: checkpoint failed: ${message.message}`);
    }
  });
  worker.on('error', (error) => fallBack('the thread failed', error));
  const exited = new Promise<void>((resolve) => {
    worker.once('exit', (code) => {
      if (!stopped) fallBack(`the thread exited with code ${code}`);
      resolve();
    });
  });
  return {
    ready,
    async stop() {
      if (!stopped) {
        stopped = true;
        // Waited for now: the last checkpoint and the close are what stopping is for.
        worker.ref();
        worker.postMessage('stop');
      }
      await exited;
    },
  };
}
