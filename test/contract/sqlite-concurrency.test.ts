import { fork } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../functions/adapters/clock.ts';
import { SqliteConsumerStore } from '../../functions/adapters/sqlite/consumers.ts';
import { openDatabase, readText, type SqliteDatabase } from '../../functions/adapters/sqlite/database.ts';
import { SqliteEventLog } from '../../functions/adapters/sqlite/events.ts';
import { SqliteSubscriptionStore } from '../../functions/adapters/sqlite/subscriptions.ts';
import { MAX_SUBSCRIPTIONS_PER_PARTNER } from '../../functions/core/subscriptions.ts';
import { testCipher } from '../support/cipher.ts';
import { id, tempDir } from './fixtures.ts';
import { followConsumer } from './follow-consumer.ts';

const WRITERS = 4;
const EVENTS_PER_WRITER = 200;
const WRITER_SCRIPT = fileURLToPath(new URL('./fixtures/append-events.ts', import.meta.url));
const CREATOR_SCRIPT = fileURLToPath(new URL('./fixtures/create-subscriptions.ts', import.meta.url));

/**
 * Runs a fixture script in a process of its own; resolves with what it printed when it exits,
 * rejects with its stderr if it fails.
 */
async function runProcess(script: string, args: string[]): Promise<string> {
  // execArgv: [] so the child does not inherit the test runner's loader flags.
  const child = fork(script, args, { execArgv: [], stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const [code] = await once(child, 'exit');
  if (code !== 0) throw new Error(`${script} ${args.join(' ')} exited with ${code}: ${stderr}`);
  return stdout;
}

/** One writer process appending EVENTS_PER_WRITER events. */
async function runWriter(path: string, partnerId: string, name: string): Promise<void> {
  await runProcess(WRITER_SCRIPT, [path, partnerId, String(EVENTS_PER_WRITER), name]);
}

/** WRITERS writer processes appending to the partner's log at once. */
function startWriters(path: string, partnerId: string) {
  let done = false;
  const writers = Promise.all(
    Array.from({ length: WRITERS }, (_, i) => runWriter(path, partnerId, `w${i}`)),
  ).finally(() => {
    done = true;
  });
  return { writers, done: () => done };
}

// Each test gets a directory of its own for the database file the processes share.
let tmp: ReturnType<typeof tempDir>;
let db: SqliteDatabase;

beforeEach(() => {
  tmp = tempDir();
});

afterEach(() => {
  if (db?.isOpen) db.close();
  tmp.remove();
});

describe('SqliteEventLog under concurrent writers', () => {
  it('lets a poller following next see every event exactly once, in commit order', async () => {
    const path = join(tmp.dir, 'local.db');
    // Migrate before the writers start, so they only ever append.
    db = openDatabase(path);
    const log = new SqliteEventLog(db);
    const partnerId = id('ptr');

    const { writers, done: writersDone } = startWriters(path, partnerId);

    const seen: string[] = [];
    let after: string | undefined;
    let emptyAfterDone = false;
    let pagesWhileWriting = 0;
    // Poll while the writers run; after they finish, one more empty page proves the end.
    while (!emptyAfterDone) {
      const done = writersDone();
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

describe('a consumer under concurrent writers (SQLite)', () => {
  it('gives a reader that acknowledges each page every event exactly once, in commit order', async () => {
    const path = join(tmp.dir, 'local.db');
    db = openDatabase(path);
    const partnerId = id('ptr');
    const { writers, done: writersDone } = startWriters(path, partnerId);
    const deps = {
      consumers: new SqliteConsumerStore(db),
      events: new SqliteEventLog(db),
      clock: systemClock,
      retentionDays: 30,
    };
    const { seen, pagesWhileWriting } = await followConsumer(deps, partnerId, {
      limit: 7,
      writersDone,
    });
    await writers;

    const committed = db
      .prepare('SELECT id FROM events WHERE partner_id = ? ORDER BY seq')
      .all(partnerId)
      .map((row) => readText(row, 'id'));
    expect(committed).toHaveLength(WRITERS * EVENTS_PER_WRITER);
    expect(seen).toEqual(committed);
    expect(pagesWhileWriting).toBeGreaterThan(1);
  });
});

/** Runs one subscription creator process; resolves with what it printed. */
async function runCreator(
  path: string,
  partnerId: string,
  count: number,
): Promise<{ created: number; refused: number }> {
  const stdout = await runProcess(CREATOR_SCRIPT, [
    path,
    partnerId,
    String(count),
    String(MAX_SUBSCRIPTIONS_PER_PARTNER),
  ]);
  return JSON.parse(stdout);
}

describe('SqliteSubscriptionStore under concurrent creators', () => {
  it('admits exactly the cap of subscriptions when several processes create at once', async () => {
    const path = join(tmp.dir, 'local.db');
    db = openDatabase(path);
    const partnerId = id('ptr');
    const PROCESSES = 3;
    const EACH = 45;

    const results = await Promise.all(
      Array.from({ length: PROCESSES }, () => runCreator(path, partnerId, EACH)),
    );

    const created = results.reduce((sum, r) => sum + r.created, 0);
    const refused = results.reduce((sum, r) => sum + r.refused, 0);
    expect(created).toBe(MAX_SUBSCRIPTIONS_PER_PARTNER);
    expect(refused).toBe(PROCESSES * EACH - MAX_SUBSCRIPTIONS_PER_PARTNER);
    // Every process got some in: the creates really raced.
    for (const r of results) expect(r.created).toBeGreaterThan(0);
    const stored = await new SqliteSubscriptionStore(db, testCipher()).list(partnerId, { limit: 500 });
    expect(stored.items).toHaveLength(MAX_SUBSCRIPTIONS_PER_PARTNER);
  });
});
