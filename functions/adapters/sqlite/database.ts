/**
 * The local runtime's one SQLite file: opening it, its schema migrations, the transaction
 * helper every adapter uses, and typed readers for result rows.
 */

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type SQLOutputValue, type StatementSync } from 'node:sqlite';
import { ServiceUnavailableError } from '../../core/errors.ts';
import { ownerOnly } from '../owner-only.ts';

export type SqliteDatabase = DatabaseSync;

/**
 * Schema migrations; entry i takes the database from `user_version` i to i + 1. Append new
 * entries, never edit a released one: a file on disk has already run it.
 *
 * The stores do not reference each other with foreign keys (a delivery's event, a
 * subscription's partner): the DynamoDB adapters cannot enforce them either, and the contract
 * suite must pass on both. Foreign keys hold only inside one store (attempts → deliveries).
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE partners (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    api_key_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
  ) STRICT;

  -- seq is assigned inside the write lock, and SQLite has one writer at a time (also across
  -- processes sharing the file), so seq order is commit order: the polling cursor. AUTOINCREMENT
  -- keeps a rolled-back seq from being reused.
  CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    partner_id TEXT NOT NULL,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL,
    idempotency_key TEXT,
    UNIQUE (partner_id, idempotency_key)
  ) STRICT;
  CREATE INDEX events_by_partner ON events (partner_id, seq);

  -- The local stream: one row per appended event, written in the append's transaction, removed
  -- by the router once it has enqueued the event.
  CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY REFERENCES events (seq),
    event_id TEXT NOT NULL,
    partner_id TEXT NOT NULL,
    type TEXT NOT NULL,
    created_at TEXT NOT NULL
  ) STRICT;

  CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY,
    partner_id TEXT NOT NULL,
    url TEXT NOT NULL,
    event_types TEXT NOT NULL,
    description TEXT,
    status TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    disabled_reason TEXT,
    failing_since TEXT,
    secrets TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
  ) STRICT;
  CREATE INDEX subscriptions_by_partner ON subscriptions (partner_id, id);

  CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    partner_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    origin TEXT NOT NULL CHECK (origin IN ('fanout', 'redelivery', 'replay', 'test')),
    status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'dead')),
    attempts INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    last_attempt_at TEXT,
    next_attempt_at TEXT
  ) STRICT;
  -- Fan-out creates at most one delivery per (event, subscription); a partner's redeliveries,
  -- replays and tests add more.
  CREATE UNIQUE INDEX deliveries_fanout ON deliveries (event_id, subscription_id) WHERE origin = 'fanout';
  CREATE INDEX deliveries_by_subscription ON deliveries (subscription_id, id);
  CREATE INDEX deliveries_by_event ON deliveries (event_id, id);

  CREATE TABLE attempts (
    id TEXT PRIMARY KEY,
    delivery_id TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    subscription_id TEXT NOT NULL,
    partner_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    duration_ms REAL NOT NULL,
    status_code INTEGER,
    error TEXT,
    error_message TEXT,
    response_excerpt TEXT
  ) STRICT;
  CREATE INDEX attempts_by_delivery ON attempts (delivery_id, number);

  -- Every local queue in one table. Times are epoch milliseconds. receipt_handle is replaced on
  -- every receive, so only the latest receiver can delete the message or change its visibility.
  CREATE TABLE queue_messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    sent_at INTEGER NOT NULL,
    visible_at INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    first_received_at INTEGER,
    receipt_handle TEXT UNIQUE,
    dead_letter_source TEXT,
    group_id TEXT
  ) STRICT;
  CREATE INDEX queue_messages_by_queue ON queue_messages (queue, visible_at);
  `,
  // Receives read each message group's visible messages in order, one index seek per group.
  `
  CREATE INDEX queue_messages_by_group ON queue_messages (queue, group_id, visible_at);
  `,
  // Deliveries can end `skipped`, with the reason; indexes for the retention sweep; the
  // allowances of rate-limited partner actions on each subscription.
  //
  // A CHECK cannot be altered, so deliveries is rebuilt. attempts is rebuilt with it: foreign
  // keys stay on (they cannot be turned off inside the migration's transaction), so dropping
  // the old deliveries would cascade to every attempt referencing it. The new attempts table
  // references deliveries_new, and renaming that to deliveries carries the reference along.
  `
  CREATE TABLE deliveries_new (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    partner_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    origin TEXT NOT NULL CHECK (origin IN ('fanout', 'redelivery', 'replay', 'test')),
    status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'dead', 'skipped')),
    attempts INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    last_attempt_at TEXT,
    next_attempt_at TEXT,
    -- Checked on read (SkippedReason), not here, so that a new reason needs no rebuild.
    skipped_reason TEXT
  ) STRICT;
  INSERT INTO deliveries_new (id, event_id, subscription_id, partner_id, event_type, origin, status,
      attempts, created_at, updated_at, last_attempt_at, next_attempt_at)
    SELECT id, event_id, subscription_id, partner_id, event_type, origin, status,
      attempts, created_at, updated_at, last_attempt_at, next_attempt_at
    FROM deliveries;

  CREATE TABLE attempts_new (
    id TEXT PRIMARY KEY,
    delivery_id TEXT NOT NULL REFERENCES deliveries_new (id) ON DELETE CASCADE,
    subscription_id TEXT NOT NULL,
    partner_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    duration_ms REAL NOT NULL,
    status_code INTEGER,
    error TEXT,
    error_message TEXT,
    response_excerpt TEXT
  ) STRICT;
  INSERT INTO attempts_new (id, delivery_id, subscription_id, partner_id, number, started_at,
      duration_ms, status_code, error, error_message, response_excerpt)
    SELECT id, delivery_id, subscription_id, partner_id, number, started_at,
      duration_ms, status_code, error, error_message, response_excerpt
    FROM attempts;

  DROP TABLE attempts;
  DROP TABLE deliveries;
  ALTER TABLE deliveries_new RENAME TO deliveries;
  ALTER TABLE attempts_new RENAME TO attempts;

  CREATE UNIQUE INDEX deliveries_fanout ON deliveries (event_id, subscription_id) WHERE origin = 'fanout';
  CREATE INDEX deliveries_by_subscription ON deliveries (subscription_id, id);
  CREATE INDEX deliveries_by_event ON deliveries (event_id, id);
  CREATE INDEX attempts_by_delivery ON attempts (delivery_id, number);

  -- The retention sweep finds what has expired without reading what has not.
  CREATE INDEX events_by_created_at ON events (created_at);
  CREATE INDEX deliveries_by_created_at ON deliveries (created_at);

  -- Allowances of rate-limited partner actions: the start of the current window (epoch ms)
  -- and the uses counted in it. Only SqliteSubscriptionStore.takeAllowance writes them.
  ALTER TABLE subscriptions ADD COLUMN replay_window_start INTEGER;
  ALTER TABLE subscriptions ADD COLUMN replay_count INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE subscriptions ADD COLUMN test_window_start INTEGER;
  ALTER TABLE subscriptions ADD COLUMN test_count INTEGER NOT NULL DEFAULT 0;
  `,
  `
  -- A partner holds several API keys. Each key's id is 'key_' and the first 24 hex digits of
  -- its hash, so the key each partner had so far keeps working and gets an id here; its first
  -- characters were never kept, so its prefix shows only 'dk_'.
  CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    partner_id TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_used_at TEXT
  ) STRICT;
  CREATE INDEX api_keys_by_partner ON api_keys (partner_id, created_at, id);
  INSERT INTO api_keys (id, partner_id, key_hash, name, prefix, created_at)
    SELECT 'key_' || substr(api_key_hash, 1, 24), id, api_key_hash, 'first key', 'dk_', created_at
    FROM partners;

  CREATE TABLE partners_new (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL
  ) STRICT;
  INSERT INTO partners_new (id, name, created_at) SELECT id, name, created_at FROM partners;
  DROP TABLE partners;
  ALTER TABLE partners_new RENAME TO partners;
  `,
  `
  -- Consumers: server-kept cursors over a partner's log. position_id is the last event the
  -- consumer acknowledged (null: before the first), position_at that event's time.
  CREATE TABLE consumers (
    partner_id TEXT NOT NULL,
    name TEXT NOT NULL,
    types TEXT NOT NULL,
    position_id TEXT,
    position_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (partner_id, name)
  ) STRICT;
  `,
  `
  -- Per partner, the last event the retention deleted: a reader whose position is older tells
  -- from it whether anything after its position expired unseen.
  CREATE TABLE expired_marks (
    partner_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    event_id TEXT NOT NULL
  ) STRICT;
  `,
  `
  -- How a subscription's deliveries reach the partner: its url, or a connection it opens (then
  -- url is '', the column staying NOT NULL).
  ALTER TABLE subscriptions ADD COLUMN transport TEXT NOT NULL DEFAULT 'url'
    CHECK (transport IN ('url', 'connection'));
  `,
  `
  -- A subscription's payload filter (an event pattern, as JSON); NULL: every event its types take.
  ALTER TABLE subscriptions ADD COLUMN filter TEXT;
  `,
  `
  -- How a subscription's callbacks are signed: v1 by a shared secret, or v1a by a signing key
  -- (its secrets are then whsk_ keys).
  ALTER TABLE subscriptions ADD COLUMN signature TEXT NOT NULL DEFAULT 'hmac'
    CHECK (signature IN ('hmac', 'ed25519'));
  `,
  `
  -- Ordering per key. An event's ordering key and its place among the key's events; each
  -- key's last place, kept after its events expire (a key's places never start again).
  ALTER TABLE events ADD COLUMN ordering_key TEXT;
  ALTER TABLE events ADD COLUMN key_seq INTEGER;
  ALTER TABLE outbox ADD COLUMN ordering_key TEXT;
  ALTER TABLE outbox ADD COLUMN key_seq INTEGER;
  CREATE TABLE ordering_keys (
    partner_id TEXT NOT NULL,
    ordering_key TEXT NOT NULL,
    key_seq INTEGER NOT NULL,
    PRIMARY KEY (partner_id, ordering_key)
  ) STRICT;
  -- Fan-out's gate: the key's place fanned out through, and the events that came early.
  CREATE TABLE key_gates (
    partner_id TEXT NOT NULL,
    ordering_key TEXT NOT NULL,
    fanned INTEGER NOT NULL,
    PRIMARY KEY (partner_id, ordering_key)
  ) STRICT;
  CREATE TABLE key_parked (
    partner_id TEXT NOT NULL,
    ordering_key TEXT NOT NULL,
    key_seq INTEGER NOT NULL,
    ref TEXT NOT NULL,
    PRIMARY KEY (partner_id, ordering_key, key_seq)
  ) STRICT;
  -- Ordered subscriptions' lines: the deliveries waiting their turn, and the one being tried.
  CREATE TABLE line_entries (
    subscription_id TEXT NOT NULL,
    ordering_key TEXT NOT NULL,
    key_seq INTEGER NOT NULL,
    delivery_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    partner_id TEXT NOT NULL,
    PRIMARY KEY (subscription_id, ordering_key, key_seq)
  ) STRICT;
  -- taken: the try last taken (0: none yet), taken_at when (epoch ms).
  CREATE TABLE line_heads (
    subscription_id TEXT NOT NULL,
    ordering_key TEXT NOT NULL,
    key_seq INTEGER NOT NULL,
    delivery_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    partner_id TEXT NOT NULL,
    taken INTEGER NOT NULL DEFAULT 0,
    taken_at INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (subscription_id, ordering_key)
  ) STRICT;
  ALTER TABLE subscriptions ADD COLUMN ordering TEXT CHECK (ordering IN ('key'));
  `,
  `
  -- A subscription's transformation: its JSONata expression; NULL: the event as polled.
  ALTER TABLE subscriptions ADD COLUMN transformation TEXT;
  `,
  `
  -- Queue messages without the unique indexes on message_id and receipt_handle: ids are
  -- random UUIDs, never looked up, and a receipt handle names its message's seq, so a delete
  -- finds the row by its key. Two fewer index writes at every send, receive and delete.
  CREATE TABLE queue_messages_new (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    body TEXT NOT NULL,
    sent_at INTEGER NOT NULL,
    visible_at INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    first_received_at INTEGER,
    receipt_handle TEXT,
    dead_letter_source TEXT,
    group_id TEXT
  ) STRICT;
  -- A handle of the old form names no seq and can never be deleted with: none is kept.
  INSERT INTO queue_messages_new
      (seq, queue, message_id, body, sent_at, visible_at, receive_count, first_received_at,
       receipt_handle, dead_letter_source, group_id)
    SELECT seq, queue, message_id, body, sent_at, visible_at, receive_count, first_received_at,
           NULL, dead_letter_source, group_id
      FROM queue_messages;
  -- The new table goes on from the old one's last seq.
  DELETE FROM sqlite_sequence WHERE name = 'queue_messages_new';
  INSERT INTO sqlite_sequence (name, seq)
    SELECT 'queue_messages_new', seq FROM sqlite_sequence WHERE name = 'queue_messages';
  DROP TABLE queue_messages;
  ALTER TABLE queue_messages_new RENAME TO queue_messages;
  CREATE INDEX queue_messages_by_queue ON queue_messages (queue, visible_at);
  CREATE INDEX queue_messages_by_group ON queue_messages (queue, group_id, visible_at);
  `,
  `
  -- The local stream is the events table itself, read in seq order (commit order) from where
  -- the router got to: no outbox row to write with every event and delete after it. The cursor
  -- starts before the oldest event the router had not taken (one it took out of order and
  -- was behind would be fanned out again: fan-out finds the deliveries it made), or after the
  -- last event ever stored.
  CREATE TABLE stream_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
  ) STRICT;
  INSERT INTO stream_cursor (id, seq) VALUES (1, coalesce(
    (SELECT min(seq) - 1 FROM outbox),
    (SELECT seq FROM sqlite_sequence WHERE name = 'events'),
    (SELECT max(seq) FROM events),
    0));
  DROP TABLE outbox;
  `,
];

/** The database's file name in the local runtime's data directory. */
export const DATABASE_FILE = 'dispatcher.db';

/** The schema version this code expects; a file from newer code is refused. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Opens (creating if needed) the database at `path`, or an in-memory one for ':memory:', and
 * brings its schema up to date.
 */
export function openDatabase(path: string): SqliteDatabase {
  if (path !== ':memory:') {
    mkdirSync(dirname(path), { recursive: true });
    // The file holds partners' events and subscriptions: its owner's alone. SQLite gives the
    // WAL and shared-memory files it creates the database file's mode.
    ownerOnly(path, [`${path}-wal`, `${path}-shm`]);
  }
  // The busy timeout applies from the first statement: another process may hold the lock.
  const db = new DatabaseSync(path, { timeout: 5000, enableForeignKeyConstraints: true });
  try {
    db.exec('PRAGMA journal_mode = WAL');
    db.exec('PRAGMA busy_timeout = 5000');
    db.exec('PRAGMA foreign_keys = ON');
    // NORMAL is durable across process crashes in WAL mode; only an OS crash or power loss can
    // lose the last commits, acceptable for a local runtime.
    db.exec('PRAGMA synchronous = NORMAL');
    // Group commit runs each write in a savepoint (see write), and a savepoint keeps the
    // pages it changes in a sub-journal. Past 64 KiB SQLite moves a sub-journal to a temporary
    // file, and every page after that is a write to the disk: a fan-out to a few subscriptions
    // gets there. In memory a page costs a copy alone. (`vacuum`, which copies the whole
    // file, sets FILE for its time.)
    db.exec('PRAGMA temp_store = MEMORY');
    migrate(db);
  } catch (error) {
    db.close();
    throw error;
  }
  return db;
}

function userVersion(db: SqliteDatabase): number {
  const row = db.prepare('PRAGMA user_version').get();
  return row === undefined ? 0 : readInteger(row, 'user_version');
}

function migrate(db: SqliteDatabase): void {
  if (userVersion(db) === SCHEMA_VERSION) return;
  // Read the version again inside the write lock: another process opening the same file may
  // have migrated it in the meantime.
  transaction(db, () => {
    const from = userVersion(db);
    if (from > SCHEMA_VERSION) {
      throw new Error(`database schema version ${from} is newer than this code's ${SCHEMA_VERSION}`);
    }
    for (const sql of MIGRATIONS.slice(from)) db.exec(sql);
    db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
  });
}

/**
 * Runs one of transaction()'s own statements, prepared once per connection (exec would parse
 * its text each time, and there are several per write). Its savepoints all have one name:
 * they nest strictly, and RELEASE and ROLLBACK TO take the innermost of that name.
 */
function control(
  db: SqliteDatabase,
  sql:
    | 'BEGIN IMMEDIATE'
    | 'COMMIT'
    | 'ROLLBACK'
    | 'SAVEPOINT nested'
    | 'RELEASE nested'
    | 'ROLLBACK TO nested',
): void {
  prepared(db, sql).run();
}

/**
 * Runs `fn` in a transaction: committed when it returns, rolled back when it throws. Inside
 * another transaction it runs in a savepoint, so adapters can use it freely and callers can
 * still group several adapters' writes (the stream cursor's move and a queue send) into one.
 *
 * Synchronous on purpose: node:sqlite is synchronous, and an `await` inside `fn` would let
 * other code's statements on this connection run inside the transaction.
 * BEGIN IMMEDIATE takes the write lock up front, so a read-then-write never fails halfway
 * with SQLITE_BUSY when another process wrote in between.
 */
export function transaction<T>(db: SqliteDatabase, fn: () => T): T {
  const nested = db.isTransaction;
  control(db, nested ? 'SAVEPOINT nested' : 'BEGIN IMMEDIATE');
  try {
    const result = fn();
    if (result instanceof Promise) {
      throw new TypeError('transaction() callbacks must be synchronous; do not pass an async function');
    }
    control(db, nested ? 'RELEASE nested' : 'COMMIT');
    return result;
  } catch (error) {
    // Some errors (disk full, I/O) make SQLite roll back the whole transaction itself: then
    // there is no savepoint left to roll back to, and the caller must hear the error itself.
    if (nested && db.isTransaction) {
      control(db, 'ROLLBACK TO nested');
      control(db, 'RELEASE nested');
    } else if (!nested && db.isTransaction) {
      control(db, 'ROLLBACK');
    }
    throw error;
  }
}

interface PendingWrite {
  run(): unknown;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

const pendingWrites = new WeakMap<SqliteDatabase, PendingWrite[]>();

/**
 * Runs `fn` in a transaction shared with every other `write` of this turn of the event loop,
 * and resolves with its result once that transaction has committed (group commit). Each `fn`
 * runs in a savepoint of its own: one that throws rejects its own promise and leaves the
 * others' writes in; a failed COMMIT rejects them all.
 *
 * A commit costs tens of microseconds whatever it holds, and the local runtime makes several
 * small writes per callback (an event, its delivery, the queue messages, the attempt), so
 * committing them together is what lets it go faster than one commit at a time. Nothing is
 * acknowledged early: the promise settles after the commit, and the write lock is held only
 * while the batch runs, never across turns of the event loop.
 */
export function write<T>(db: SqliteDatabase, fn: () => T): Promise<T> {
  let batch = pendingWrites.get(db);
  if (batch === undefined) {
    batch = [];
    pendingWrites.set(db, batch);
    setImmediate(() => flushWrites(db));
  }
  const writes = batch;
  return new Promise<T>((resolve, reject) => {
    writes.push({ run: fn, resolve: (value) => resolve(value as T), reject });
  });
}

/**
 * SQLite's primary result codes that say the storage, not the write, failed: busy or locked
 * past the timeout, read-only, an I/O error, full, or not to be opened. A write refused for
 * one of them may succeed later; the others (a constraint, say) never will.
 */
const STORAGE_FAULTS = new Set([5, 6, 8, 10, 13, 14]);

/** A write refused because the database cannot be written now (see STORAGE_FAULTS): 503, try again. */
export class StorageUnavailableError extends ServiceUnavailableError {
  override readonly retryAfterSeconds = 5;

  constructor(cause: unknown) {
    super(
      `the database cannot be written now (${cause instanceof Error ? cause.message : String(cause)}); nothing was stored, try again`,
      [],
      { cause },
    );
  }
}

/** The error as the write's caller sees it: a storage fault as StorageUnavailableError. */
function asStorageFault(error: unknown): unknown {
  if (!(error instanceof Error) || !('errcode' in error) || typeof error.errcode !== 'number') return error;
  // Extended codes carry the primary one in their low byte.
  return STORAGE_FAULTS.has(error.errcode & 0xff) ? new StorageUnavailableError(error) : error;
}

/** Commits the writes waiting for this turn now; `closeDatabase` calls it before closing. */
export function flushWrites(db: SqliteDatabase): void {
  const batch = pendingWrites.get(db);
  if (batch === undefined) return;
  pendingWrites.delete(db);
  if (!db.isOpen) {
    const closed = new Error('the database was closed before this write was committed');
    for (const w of batch) w.reject(closed);
    return;
  }
  const outcomes: { ok: boolean; value: unknown }[] = [];
  try {
    transaction(db, () => {
      // A write alone needs no savepoint of its own: its failure rolls back the transaction,
      // which held nothing else.
      if (batch.length === 1 && batch[0] !== undefined) {
        outcomes.push({ ok: true, value: batch[0].run() });
        return;
      }
      for (const w of batch) {
        try {
          outcomes.push({ ok: true, value: transaction(db, () => w.run()) });
        } catch (error) {
          // SQLite rolled back the whole batch (disk full, I/O): none of it is committed, and
          // the writes after this one must not commit in a transaction of their own.
          if (!db.isTransaction) throw error;
          outcomes.push({ ok: false, value: error });
        }
      }
    });
  } catch (error) {
    for (const w of batch) w.reject(asStorageFault(error));
    return;
  }
  batch.forEach((w, i) => {
    const outcome = outcomes[i];
    if (outcome?.ok) w.resolve(outcome.value);
    else w.reject(asStorageFault(outcome?.value));
  });
}

/**
 * Rebuilds the file (VACUUM). Its copy of the whole database goes to a temporary file, not to
 * memory as the connection's other temporary storage does (see openDatabase).
 */
export function vacuum(db: SqliteDatabase): void {
  db.exec('PRAGMA temp_store = FILE');
  try {
    db.exec('VACUUM');
  } finally {
    db.exec('PRAGMA temp_store = MEMORY');
  }
}

/** Commits the writes still waiting, then closes the database. */
export function closeDatabase(db: SqliteDatabase): void {
  flushWrites(db);
  db.close();
}

const statements = new WeakMap<SqliteDatabase, Map<string, StatementSync>>();

/**
 * The prepared statement for `sql` on this connection, prepared once: preparing is a large
 * part of a small statement's cost, and the adapters run the same few statements per
 * delivery.
 */
export function prepared(db: SqliteDatabase, sql: string): StatementSync {
  let cache = statements.get(db);
  if (cache === undefined) {
    cache = new Map();
    statements.set(db, cache);
  }
  let statement = cache.get(sql);
  if (statement === undefined) {
    statement = db.prepare(sql);
    cache.set(sql, statement);
  }
  return statement;
}

/** A result row of node:sqlite. */
export type Row = Record<string, SQLOutputValue>;

function columnError(column: string, expected: string, value: SQLOutputValue | undefined): Error {
  return new TypeError(`column ${column}: expected ${expected}, got ${typeof value}`);
}

export function readText(row: Row, column: string): string {
  const value = row[column];
  if (typeof value !== 'string') throw columnError(column, 'text', value);
  return value;
}

export function readOptionalText(row: Row, column: string): string | undefined {
  const value = row[column];
  if (value === null || value === undefined) return undefined;
  if (typeof value !== 'string') throw columnError(column, 'text', value);
  return value;
}

export function readNumber(row: Row, column: string): number {
  const value = row[column];
  if (typeof value !== 'number') throw columnError(column, 'number', value);
  return value;
}

export function readInteger(row: Row, column: string): number {
  const value = readNumber(row, column);
  if (!Number.isInteger(value)) throw columnError(column, 'integer', value);
  return value;
}

export function readOptionalInteger(row: Row, column: string): number | undefined {
  const value = row[column];
  if (value === null || value === undefined) return undefined;
  return readInteger(row, column);
}

/** Optional domain fields are absent, not undefined-valued, so stored rows deep-equal input. */
export function withoutUndefined<T extends object>(value: T): T {
  for (const key of Object.keys(value) as (keyof T)[]) {
    if (value[key] === undefined) delete value[key];
  }
  return value;
}
