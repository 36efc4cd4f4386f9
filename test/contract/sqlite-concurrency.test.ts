import { fork } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, readText, type SqliteDatabase } from '../../functions/adapters/sqlite/database.ts';
import { SqliteEventLog } from '../../functions/adapters/sqlite/events.ts';
import { id, tempDir } from './fixtures.ts';

const WRITERS = 4;
const EVENTS_PER_WRITER = 200;
const WRITER_SCRIPT = fileURLToPath(new URL('./fixtures/append-events.ts', import.meta.url));

/** Runs one writer process; resolves when it exits, rejects with its stderr if it fails. */
async function runWriter(path: string, partnerId: string, name: string): Promise<void> {
  // execArgv: [] so the child does not inherit the test runner's loader flags.
  const child = fork(WRITER_SCRIPT, [path, partnerId, String(EVENTS_PER_WRITER), name], {
    execArgv: [],
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const [code] = await once(child, 'exit');
  if (code !== 0) throw new Error(`writer ${name} exited with ${code}: ${stderr}`);
}

describe('SqliteEventLog under concurrent writers', () => {
  let tmp: ReturnType<typeof tempDir>;
  let db: SqliteDatabase;

  beforeEach(() => {
    tmp = tempDir();
  });

  afterEach(() => {
    if (db?.isOpen) db.close();
    tmp.remove();
  });

  it('lets a poller following next see every event exactly once, in commit order', async () => {
    const path = join(tmp.dir, 'local.db');
    // Migrate before the writers start, so they only ever append.
    db = openDatabase(path);
    const log = new SqliteEventLog(db);
    const partnerId = id('ptr');

    let writersDone = false;
    const writers = Promise.all(
      Array.from({ length: WRITERS }, (_, i) => runWriter(path, partnerId, `w${i}`)),
    ).finally(() => {
      writersDone = true;
    });

    const seen: string[] = [];
    let after: string | undefined;
    let emptyAfterDone = false;
    let pagesWhileWriting = 0;
    // Poll while the writers run; after they finish, one more empty page proves the end.
    while (!emptyAfterDone) {
      const done = writersDone;
      const page = await log.list(partnerId, after === undefined ? { limit: 25 } : { limit: 25, after });
      seen.push(...page.items.map((e) => e.id));
      after = page.next ?? undefined;
      if (!done && page.items.length > 0) pagesWhileWriting++;
      if (page.items.length === 0) {
        if (done) emptyAfterDone = true;
        else await sleep(2);
      }
    }
    await writers;

    const committed = db
      .prepare('SELECT id FROM events WHERE partner_id = ? ORDER BY seq')
      .all(partnerId)
      .map((row) => readText(row, 'id'));
    expect(committed).toHaveLength(WRITERS * EVENTS_PER_WRITER);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual(committed);
    // The hazard was really there: the poller read while writers committed, and commit order
    // is not id order.
    expect(pagesWhileWriting).toBeGreaterThan(1);
    expect(committed).not.toEqual(committed.toSorted());
  });
});
