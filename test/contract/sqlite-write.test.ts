import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  closeDatabase,
  openDatabase,
  prepared,
  type SqliteDatabase,
  write,
} from '../../functions/adapters/sqlite/database.ts';
import { tempDir } from './fixtures.ts';

/** Group commit: the writes of one turn of the event loop share one transaction. */
describe('write (group commit)', () => {
  let tmp: ReturnType<typeof tempDir>;
  let path: string;
  let db: SqliteDatabase;
  /** A second connection to the same file: it sees only what was committed. */
  let observer: DatabaseSync;

  const insert = (name: string) => () =>
    prepared(db, "INSERT INTO partners (id, name, created_at) VALUES (?, ?, '')").run(`ptr_${name}`, name);
  const committed = () =>
    observer
      .prepare('SELECT name FROM partners ORDER BY name')
      .all()
      .map((row) => row.name);

  beforeEach(() => {
    tmp = tempDir();
    path = join(tmp.dir, 'write.db');
    db = openDatabase(path);
    observer = new DatabaseSync(path);
  });

  afterEach(() => {
    observer.close();
    if (db.isOpen) db.close();
    tmp.remove();
  });

  it('commits the writes of one turn together, and settles each only once they are committed', async () => {
    const seenInside: boolean[] = [];
    const a = write(db, () => {
      seenInside.push(db.isTransaction);
      return insert('a')();
    });
    const b = write(db, () => {
      seenInside.push(db.isTransaction);
      // The same transaction: a's row is already there.
      return prepared(db, 'SELECT count(*) AS n FROM partners').get()?.n;
    });
    expect(committed()).toEqual([]);

    const [, countInB] = await Promise.all([a, b]);

    expect(countInB).toBe(1);
    expect(seenInside).toEqual([true, true]);
    expect(committed()).toEqual(['a']);
  });

  it('rejects only the write that threw; the others of its turn commit', async () => {
    const results = await Promise.allSettled([
      write(db, insert('a')),
      write(db, () => {
        insert('b')();
        throw new Error('refused');
      }),
      write(db, insert('c')),
    ]);

    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(committed()).toEqual(['a', 'c']);
  });

  it('rejects every write of a turn whose transaction could not be taken, and commits nothing', async () => {
    db.exec('PRAGMA busy_timeout = 0');
    observer.exec('BEGIN IMMEDIATE'); // another process holds the write lock
    const results = await Promise.allSettled([write(db, insert('a')), write(db, insert('b'))]);
    observer.exec('ROLLBACK');

    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(committed()).toEqual([]);
    // The next turn starts afresh.
    await write(db, insert('c'));
    expect(committed()).toEqual(['c']);
  });

  it('rejects every write of a turn that SQLite rolled back whole (disk full), and commits none', async () => {
    const pages = Number(prepared(db, 'PRAGMA page_count').get()?.page_count);
    db.exec(`PRAGMA max_page_count = ${pages + 2}`); // room for a small row, not for a large one
    const huge = () =>
      prepared(db, "INSERT INTO partners (id, name, created_at) VALUES ('p', ?, '')").run(
        'x'.repeat(64 * 1024),
      );

    const results = await Promise.allSettled([
      write(db, insert('a')),
      write(db, huge),
      write(db, insert('c')),
    ]);

    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    for (const r of results) if (r.status === 'rejected') expect(String(r.reason)).toMatch(/full/);
    expect(committed()).toEqual([]);
    expect(db.isTransaction).toBe(false);
  });

  it('commits what is still waiting when the database is closed with closeDatabase', async () => {
    const pending = write(db, insert('a'));
    closeDatabase(db);

    await expect(pending).resolves.toBeDefined();
    expect(committed()).toEqual(['a']);
  });

  it('rejects a write whose database was closed before its turn ended', async () => {
    const pending = write(db, insert('a'));
    db.close();

    await expect(pending).rejects.toThrow(/closed before this write was committed/);
    expect(committed()).toEqual([]);
  });
});
