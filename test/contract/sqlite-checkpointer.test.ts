import { closeSync, mkdirSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  openDatabase,
  prepared,
  type SqliteDatabase,
  write,
} from '../../functions/adapters/sqlite/database.ts';
import { startCheckpointer } from '../../local/checkpointer.ts';
import { eventually } from '../e2e/harness.ts';
import { tempDir } from './fixtures.ts';

const autocheckpoint = (db: SqliteDatabase) =>
  db.prepare('PRAGMA wal_autocheckpoint').get()?.wal_autocheckpoint;

/**
 * The log's checkpoint sequence number (bytes 12-15 of the WAL header): one more each time the
 * log starts over from its beginning.
 */
function logGeneration(path: string): number {
  const header = Buffer.alloc(16);
  const fd = openSync(`${path}-wal`, 'r');
  try {
    readSync(fd, header, 0, 16, 0);
  } finally {
    closeSync(fd);
  }
  return header.readUInt32BE(12);
}

/** Commits `count` writes of a few pages each, pausing now and then as traffic does. */
async function writePages(db: SqliteDatabase, count: number, { pauses = true } = {}): Promise<void> {
  for (let i = 0; i < count; i++) {
    if (pauses && i % 20 === 19) await new Promise((resolve) => setTimeout(resolve, 5));
    await write(db, () =>
      prepared(db, "INSERT INTO partners (id, name, created_at) VALUES (?, ?, '')").run(
        `ptr_${i}_${Math.random()}`,
        'x'.repeat(3000),
      ),
    );
  }
}

describe('the WAL checkpointer thread', () => {
  let tmp: ReturnType<typeof tempDir>;
  let path: string;
  let db: SqliteDatabase;
  const logged: string[] = [];
  const log = (message: string) => {
    logged.push(message);
  };

  beforeEach(() => {
    tmp = tempDir();
    path = join(tmp.dir, 'runtime.db');
    db = openDatabase(path);
    logged.length = 0;
  });

  afterEach(() => {
    if (db.isOpen) db.close();
    tmp.remove();
  });

  it('takes checkpoints off the connection and copies the log into the database file', async () => {
    const checkpointer = startCheckpointer(db, path, { intervalMs: 5, log });
    expect(autocheckpoint(db)).toBe(1000); // SQLite's own, until the thread is up
    await checkpointer.ready;
    expect(autocheckpoint(db)).toBe(0);
    const before = statSync(path).size;

    await writePages(db, 100); // about 300 pages: short of where the connection would checkpoint

    // The thread copied them into the database file, which the connection would not have yet.
    await eventually(() => (statSync(path).size > before + 100 * 4096 ? true : undefined));
    await checkpointer.stop();
    expect(logged).toEqual([]);
  });

  it('starts the log over under steady writes, which passive checkpoints alone never do', async () => {
    const checkpointer = startCheckpointer(db, path, { intervalMs: 5, log });
    await checkpointer.ready;
    const before = logGeneration(path);

    // About 40 MiB of log without a pause, more than twice the 16 MiB after which the thread
    // restarts it.
    await writePages(db, 3000, { pauses: false });

    // On a busy machine the thread may get its turn only as the writes end. The log starts over
    // at the first write after a RESTART (which no number of passive checkpoints would do), so
    // the writes go on, a few at a time, until it has.
    await eventually(async () => {
      if (logGeneration(path) - before >= 1) return true;
      await writePages(db, 5, { pauses: false });
      return undefined;
    });
    await checkpointer.stop();
  });

  it('gives the checkpoints back to the connection when the thread fails, and says so', async () => {
    const notADatabase = join(tmp.dir, 'a-directory');
    mkdirSync(notADatabase);
    const checkpointer = startCheckpointer(db, notADatabase, { intervalMs: 5, log });

    await checkpointer.ready;
    expect(logged[0]).toMatch(/^checkpointer: the thread failed; the database checkpoints on commit again/);
    expect(autocheckpoint(db)).toBe(1000);
    await checkpointer.stop();
  });
});
