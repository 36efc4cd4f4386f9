import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../functions/adapters/clock.ts';
import { SqliteConsumerStore } from '../../functions/adapters/sqlite/consumers.ts';
import {
  closeDatabase,
  openDatabase,
  SCHEMA_VERSION,
  type SqliteDatabase,
  transaction,
  vacuum,
} from '../../functions/adapters/sqlite/database.ts';
import { SqliteDeliveryStore } from '../../functions/adapters/sqlite/deliveries.ts';
import { SqliteEventLog } from '../../functions/adapters/sqlite/events.ts';
import { SqliteOrderedLines } from '../../functions/adapters/sqlite/ordered-lines.ts';
import { type OutboxEntry, SqliteOutbox } from '../../functions/adapters/sqlite/outbox.ts';
import { SqlitePartnerStore } from '../../functions/adapters/sqlite/partners.ts';
import { SqliteQueue } from '../../functions/adapters/sqlite/queues.ts';
import { SqliteSubscriptionStore } from '../../functions/adapters/sqlite/subscriptions.ts';
import type { Event } from '../../functions/core/model.ts';
import { apiKeyIdOf } from '../../functions/core/partners.ts';
import { testCipher } from '../support/cipher.ts';
import { consumerStoreContract } from './consumer-store.contract.ts';
import { deliveryStoreContract } from './delivery-store.contract.ts';
import { eventLogContract } from './event-log.contract.ts';
import {
  at,
  id,
  ManualClock,
  makeApiKey,
  makeAttempt,
  makeDelivery,
  makeEvent,
  makePartner,
  newEvent,
  tempDir,
} from './fixtures.ts';
import { orderedLinesContract } from './ordered-lines.contract.ts';
import { partnerStoreContract } from './partner-store.contract.ts';
import { subscriptionStoreContract } from './subscription-store.contract.ts';

interface Backing {
  name: string;
  open(): { db: SqliteDatabase; close(): Promise<void> };
}

const backings: Backing[] = [
  {
    name: 'SQLite in memory',
    open: () => {
      const db = openDatabase(':memory:');
      return { db, close: async () => db.close() };
    },
  },
  {
    name: 'SQLite file (WAL)',
    open: () => {
      const tmp = tempDir();
      const db = openDatabase(join(tmp.dir, 'data', 'local.db'));
      return {
        db,
        close: async () => {
          db.close();
          tmp.remove();
        },
      };
    },
  },
];

for (const backing of backings) {
  eventLogContract(backing.name, async () => {
    const { db, close } = backing.open();
    return { log: new SqliteEventLog(db), close };
  });
  partnerStoreContract(backing.name, async () => {
    const { db, close } = backing.open();
    return { partners: new SqlitePartnerStore(db), close };
  });
  consumerStoreContract(backing.name, async () => {
    const { db, close } = backing.open();
    return { consumers: new SqliteConsumerStore(db), close };
  });
  subscriptionStoreContract(backing.name, async () => {
    const { db, close } = backing.open();
    return {
      subscriptions: new SqliteSubscriptionStore(db, testCipher()),
      storedSecrets: async (id) => {
        const row = db.prepare('SELECT secrets FROM subscriptions WHERE id = ?').get(id);
        return JSON.parse(String(row?.secrets));
      },
      storeClearSecrets: async (id, secrets) => {
        db.prepare('UPDATE subscriptions SET secrets = ? WHERE id = ?').run(JSON.stringify(secrets), id);
      },
      close,
    };
  });
  deliveryStoreContract(backing.name, async () => {
    const { db, close } = backing.open();
    return { deliveries: new SqliteDeliveryStore(db), close };
  });
  deliveryStoreContract(`${backing.name}, remembering what fan-out stores`, async () => {
    const { db, close } = backing.open();
    const remember = { limit: 100, forMs: 10_000, clock: systemClock };
    return { deliveries: new SqliteDeliveryStore(db, { remember }), close };
  });
  orderedLinesContract(backing.name, async () => {
    const { db, close } = backing.open();
    return { lines: new SqliteOrderedLines(db), close };
  });
}

function pragma(db: SqliteDatabase, name: string): unknown {
  const row = db.prepare(`PRAGMA ${name}`).get();
  return row === undefined ? undefined : Object.values(row)[0];
}

/** Back to the outbox table, as a file written before the stream cursor (version 12). */
const OUTBOX_BEFORE_CURSOR = `
  DROP TABLE stream_cursor;
  CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY REFERENCES events (seq), event_id TEXT NOT NULL, partner_id TEXT NOT NULL,
    type TEXT NOT NULL, created_at TEXT NOT NULL, ordering_key TEXT, key_seq INTEGER
  ) STRICT;
`;
/** The schema version OUTBOX_BEFORE_CURSOR goes back to. */
const VERSION_BEFORE_CURSOR = 12;

/**
 * Back to partners with one key each, and nothing since (api_keys, consumers, expired_marks,
 * subscriptions' transport, filter, signature, ordering and transformation, ordering keys and lines), as a
 * file written before keys had records (version 3).
 */
const PARTNERS_WITH_ONE_KEY = `
  ${OUTBOX_BEFORE_CURSOR}
  ALTER TABLE subscriptions DROP COLUMN transformation;
  DROP TABLE line_heads;
  DROP TABLE line_entries;
  DROP TABLE key_parked;
  DROP TABLE key_gates;
  DROP TABLE ordering_keys;
  ALTER TABLE subscriptions DROP COLUMN ordering;
  ALTER TABLE outbox DROP COLUMN key_seq;
  ALTER TABLE outbox DROP COLUMN ordering_key;
  ALTER TABLE events DROP COLUMN key_seq;
  ALTER TABLE events DROP COLUMN ordering_key;
  ALTER TABLE subscriptions DROP COLUMN signature;
  ALTER TABLE subscriptions DROP COLUMN filter;
  ALTER TABLE subscriptions DROP COLUMN transport;
  DROP TABLE expired_marks;
  DROP TABLE consumers;
  DROP TABLE api_keys;
  DROP TABLE partners;
  CREATE TABLE partners (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, api_key_hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL
  ) STRICT;
`;
/** The schema version PARTNERS_WITH_ONE_KEY goes back to. */
const VERSION_BEFORE_API_KEYS = 3;

describe('openDatabase', () => {
  let tmp: ReturnType<typeof tempDir>;

  beforeEach(() => {
    tmp = tempDir();
  });

  afterEach(() => {
    tmp.remove();
  });

  it('creates the parent directory and opens the file in WAL mode with the expected pragmas', () => {
    const path = join(tmp.dir, 'a', 'b', 'local.db');

    const db = openDatabase(path);

    expect(existsSync(path)).toBe(true);
    expect(pragma(db, 'journal_mode')).toBe('wal');
    expect(pragma(db, 'busy_timeout')).toBe(5000);
    expect(pragma(db, 'foreign_keys')).toBe(1);
    expect(pragma(db, 'synchronous')).toBe(1);
    // Savepoint journals stay in memory, however large (2 = MEMORY).
    expect(pragma(db, 'temp_store')).toBe(2);
    expect(pragma(db, 'user_version')).toBe(SCHEMA_VERSION);
    db.close();
  });

  it('keeps the data and the schema version when the file is opened again', async () => {
    const path = join(tmp.dir, 'local.db');
    const first = openDatabase(path);
    const { event } = await new SqliteEventLog(first).append(newEvent(id('ptr')));
    first.close();

    const second = openDatabase(path);

    expect(await new SqliteEventLog(second).get(event.partnerId, event.id)).toEqual(event);
    expect(pragma(second, 'user_version')).toBe(SCHEMA_VERSION);
    second.close();
  });

  it('migrates a file of the version before API keys, giving each partner its one key as its first', async () => {
    const path = join(tmp.dir, 'local.db');
    const db = openDatabase(path);
    db.exec(`${PARTNERS_WITH_ONE_KEY} PRAGMA user_version = ${VERSION_BEFORE_API_KEYS};`);
    const partner = makePartner();
    const hash = makeApiKey(partner.id).hash;
    db.prepare('INSERT INTO partners (id, name, api_key_hash, created_at) VALUES (?, ?, ?, ?)').run(
      partner.id,
      partner.name,
      hash,
      partner.createdAt,
    );
    db.close();

    const migrated = openDatabase(path);
    const partners = new SqlitePartnerStore(migrated);
    const first = {
      id: apiKeyIdOf(hash),
      partnerId: partner.id,
      hash,
      name: 'first key',
      prefix: 'dk_',
      createdAt: partner.createdAt,
    };
    expect(pragma(migrated, 'user_version')).toBe(SCHEMA_VERSION);
    expect(await partners.get(partner.id)).toEqual(partner);
    expect(await partners.findApiKey(hash)).toEqual(first);
    expect(await partners.addApiKey(makeApiKey(partner.id), { maxPerPartner: 2 })).toBe('done');
    expect(await partners.listApiKeys(partner.id)).toHaveLength(2);
    closeDatabase(migrated);
  });

  it('migrates a file of the version before, keeping its deliveries and their attempts', async () => {
    const path = join(tmp.dir, 'local.db');
    const db = openDatabase(path);
    // Back to that version's deliveries and attempts, as a file written by older code.
    db.exec(`
      ${PARTNERS_WITH_ONE_KEY}
      DROP TABLE attempts;
      DROP TABLE deliveries;
      DROP INDEX events_by_created_at;
      ALTER TABLE subscriptions DROP COLUMN replay_window_start;
      ALTER TABLE subscriptions DROP COLUMN replay_count;
      ALTER TABLE subscriptions DROP COLUMN test_window_start;
      ALTER TABLE subscriptions DROP COLUMN test_count;
      CREATE TABLE deliveries (
        id TEXT PRIMARY KEY, event_id TEXT NOT NULL, subscription_id TEXT NOT NULL,
        partner_id TEXT NOT NULL, event_type TEXT NOT NULL,
        origin TEXT NOT NULL CHECK (origin IN ('fanout', 'redelivery', 'replay', 'test')),
        status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'dead')),
        attempts INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        last_attempt_at TEXT, next_attempt_at TEXT
      ) STRICT;
      CREATE UNIQUE INDEX deliveries_fanout ON deliveries (event_id, subscription_id) WHERE origin = 'fanout';
      CREATE INDEX deliveries_by_subscription ON deliveries (subscription_id, id);
      CREATE INDEX deliveries_by_event ON deliveries (event_id, id);
      CREATE TABLE attempts (
        id TEXT PRIMARY KEY,
        delivery_id TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
        subscription_id TEXT NOT NULL, partner_id TEXT NOT NULL, number INTEGER NOT NULL,
        started_at TEXT NOT NULL, duration_ms REAL NOT NULL, status_code INTEGER, error TEXT,
        error_message TEXT, response_excerpt TEXT
      ) STRICT;
      CREATE INDEX attempts_by_delivery ON attempts (delivery_id, number);
      PRAGMA user_version = ${VERSION_BEFORE_API_KEYS - 1};
    `);
    const delivery = makeDelivery(makeEvent(id('ptr')), id('sub'));
    const attempt = makeAttempt(delivery, { statusCode: 500, error: 'http_status' });
    const failed = { ...delivery, status: 'failed' as const, attempts: 1, nextAttemptAt: at(5) };
    db.prepare(
      `INSERT INTO deliveries (id, event_id, subscription_id, partner_id, event_type, origin, status,
         attempts, created_at, updated_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      failed.id,
      failed.eventId,
      failed.subscriptionId,
      failed.partnerId,
      failed.eventType,
      failed.origin,
      failed.status,
      failed.attempts,
      failed.createdAt,
      failed.updatedAt,
      failed.nextAttemptAt,
    );
    db.prepare(
      `INSERT INTO attempts (id, delivery_id, subscription_id, partner_id, number, started_at,
         duration_ms, status_code, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      attempt.id,
      attempt.deliveryId,
      attempt.subscriptionId,
      attempt.partnerId,
      attempt.number,
      attempt.startedAt,
      attempt.durationMs,
      attempt.statusCode ?? null,
      attempt.error ?? null,
    );
    db.close();

    const migrated = openDatabase(path);
    const deliveries = new SqliteDeliveryStore(migrated);

    expect(pragma(migrated, 'user_version')).toBe(SCHEMA_VERSION);
    expect(await deliveries.get(delivery.id)).toEqual(failed);
    expect(await deliveries.listAttempts(delivery.id)).toEqual([attempt]);
    expect(migrated.prepare('PRAGMA foreign_key_check').all()).toEqual([]);
    // The new status is accepted, and deleting a delivery still takes its attempts along.
    expect(await deliveries.skip(delivery.id, 'subscription deleted', at(6))).toBe(true);
    migrated.prepare('DELETE FROM deliveries WHERE id = ?').run(delivery.id);
    expect(await deliveries.listAttempts(delivery.id)).toEqual([]);
    migrated.close();
  });

  it('migrates the queue messages of the version before, keeping them and their seq order', async () => {
    const path = join(tmp.dir, 'local.db');
    const db = openDatabase(path);
    // That version's queue table: message ids and receipt handles unique.
    db.exec(`
      ${OUTBOX_BEFORE_CURSOR}
      DROP TABLE queue_messages;
      CREATE TABLE queue_messages (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, message_id TEXT NOT NULL UNIQUE,
        body TEXT NOT NULL, sent_at INTEGER NOT NULL, visible_at INTEGER NOT NULL,
        receive_count INTEGER NOT NULL DEFAULT 0, first_received_at INTEGER, receipt_handle TEXT UNIQUE,
        dead_letter_source TEXT, group_id TEXT
      ) STRICT;
      CREATE INDEX queue_messages_by_queue ON queue_messages (queue, visible_at);
      CREATE INDEX queue_messages_by_group ON queue_messages (queue, group_id, visible_at);
      INSERT INTO queue_messages (seq, queue, message_id, body, sent_at, visible_at, group_id)
        VALUES (41, 'work', 'm-41', '{"n":1}', 1, 1, 'g');
      INSERT INTO queue_messages (seq, queue, message_id, body, sent_at, visible_at, receive_count,
          first_received_at, receipt_handle)
        VALUES (42, 'work', 'm-42', '{"n":2}', 1, 9999999999999, 1, 1, 'old-handle');
      DELETE FROM queue_messages WHERE seq = 42;
      PRAGMA user_version = ${VERSION_BEFORE_CURSOR - 1};
    `);
    db.close();

    const migrated = openDatabase(path);
    const queue = new SqliteQueue<{ n: number }>(migrated, { name: 'work', visibilityTimeoutSeconds: 30 });
    await queue.send([{ body: { n: 3 } }]);

    expect(pragma(migrated, 'user_version')).toBe(SCHEMA_VERSION);
    // Sent after the migration, the new message comes after every seq the old table gave out.
    const seqs = migrated.prepare('SELECT seq FROM queue_messages ORDER BY seq').all();
    expect(seqs.map((row) => row.seq)).toEqual([41, 43]);
    const received = queue.receive(10);
    expect(received.map((r) => JSON.parse(r.body))).toEqual([{ n: 1 }, { n: 3 }]);
    expect(received.map((r) => r.messageId)[0]).toBe('m-41');
    expect(await queue.deleteBatch(received.map((r) => r.receiptHandle))).toBe(2);
    expect(queue.stats()).toEqual({ visible: 0, inFlight: 0, delayed: 0 });
    closeDatabase(migrated);
  });

  /**
   * A file of the version before the stream cursor: `count` events of one partner appended,
   * then the outbox table back in place of the cursor, then `sql` (the outbox's rows, say).
   * Closed; the caller opens it again to migrate it.
   */
  async function fileBeforeCursor(count: number, sql: (events: Event[]) => string = () => '') {
    const path = join(tmp.dir, 'local.db');
    const db = openDatabase(path);
    const partnerId = makePartner().id;
    const log = new SqliteEventLog(db);
    const events: Event[] = [];
    for (let i = 0; i < count; i++) events.push((await log.append(newEvent(partnerId))).event);
    db.exec(`${OUTBOX_BEFORE_CURSOR} ${sql(events)} PRAGMA user_version = ${VERSION_BEFORE_CURSOR};`);
    closeDatabase(db);
    return { path, partnerId, events };
  }

  it('migrates the outbox of the version before to the stream cursor: what the router had not taken comes next', async () => {
    // The router had taken the first event; the other two were still in the outbox.
    const { path, partnerId, events } = await fileBeforeCursor(
      3,
      () => `INSERT INTO outbox (seq, event_id, partner_id, type, created_at)
        SELECT seq, id, partner_id, type, created_at FROM events WHERE seq > 1;`,
    );

    const migrated = openDatabase(path);
    const outbox = new SqliteOutbox(migrated);

    expect(pragma(migrated, 'user_version')).toBe(SCHEMA_VERSION);
    expect(outbox.peek(10).map((e) => e.ref.id)).toEqual([events[1]?.id, events[2]?.id]);
    const { event } = await new SqliteEventLog(migrated).append(newEvent(partnerId));
    expect(outbox.peek(10).map((e) => e.ref.id)).toEqual([events[1]?.id, events[2]?.id, event.id]);
    closeDatabase(migrated);
  });

  it('migrates an empty outbox to a cursor after the last event ever stored, though it was deleted', async () => {
    const { path, partnerId } = await fileBeforeCursor(
      2,
      (events) => `DELETE FROM events WHERE id = '${events[1]?.id}';`,
    );

    const migrated = openDatabase(path);
    const outbox = new SqliteOutbox(migrated);

    expect(outbox.peek(10)).toEqual([]);
    const { event } = await new SqliteEventLog(migrated).append(newEvent(partnerId));
    expect(outbox.peek(10).map((e) => e.ref.id)).toEqual([event.id]);
    closeDatabase(migrated);
  });

  it('migrates an empty outbox to a cursor after the last event stored when the sequence table has lost its row', async () => {
    const { path } = await fileBeforeCursor(2, () => "DELETE FROM sqlite_sequence WHERE name = 'events';");

    const migrated = openDatabase(path);

    expect(new SqliteOutbox(migrated).peek(10)).toEqual([]);
    closeDatabase(migrated);
  });

  it('vacuums the file with its temporary storage on disk, and keeps it in memory after', async () => {
    const path = join(tmp.dir, 'local.db');
    const db = openDatabase(path);
    const { event } = await new SqliteEventLog(db).append(newEvent(makePartner().id));

    vacuum(db);

    expect(pragma(db, 'temp_store')).toBe(2);
    expect(await new SqliteEventLog(db).get(event.partnerId, event.id)).toEqual(event);
    closeDatabase(db);
  });

  it('refuses a file migrated by newer code', () => {
    const path = join(tmp.dir, 'local.db');
    const db = openDatabase(path);
    db.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
    db.close();

    expect(() => openDatabase(path)).toThrow(/newer/);
  });

  it('opens an in-memory database with the schema', () => {
    const db = openDatabase(':memory:');

    expect(pragma(db, 'user_version')).toBe(SCHEMA_VERSION);
    db.close();
  });
});

describe('transaction', () => {
  let db: SqliteDatabase;

  beforeEach(() => {
    db = openDatabase(':memory:');
    db.exec('CREATE TABLE t (v INTEGER NOT NULL)');
  });

  afterEach(() => {
    db.close();
  });

  const values = () =>
    db
      .prepare('SELECT v FROM t ORDER BY v')
      .all()
      .map((row) => row.v);
  const insert = (v: number) => db.prepare('INSERT INTO t (v) VALUES (?)').run(v);

  it('commits what the callback wrote and returns its result', () => {
    const result = transaction(db, () => {
      insert(1);
      return 'done';
    });

    expect(result).toBe('done');
    expect(values()).toEqual([1]);
    expect(db.isTransaction).toBe(false);
  });

  it('rolls back everything and rethrows when the callback throws', () => {
    expect(() =>
      transaction(db, () => {
        insert(1);
        throw new Error('boom');
      }),
    ).toThrow('boom');

    expect(values()).toEqual([]);
    expect(db.isTransaction).toBe(false);
  });

  it('rolls back only the inner part when a nested transaction throws', () => {
    transaction(db, () => {
      insert(1);
      expect(() =>
        transaction(db, () => {
          insert(2);
          throw new Error('inner');
        }),
      ).toThrow('inner');
      insert(3);
    });

    expect(values()).toEqual([1, 3]);
  });

  it('rolls back a nested transaction together with the outer one', () => {
    expect(() =>
      transaction(db, () => {
        transaction(db, () => insert(1));
        throw new Error('outer');
      }),
    ).toThrow('outer');

    expect(values()).toEqual([]);
  });

  it('rejects an async callback and rolls back what it wrote synchronously', () => {
    expect(() =>
      transaction(db, async () => {
        insert(1);
      }),
    ).toThrow(TypeError);

    expect(values()).toEqual([]);
  });
});

describe.each([
  { name: 'reading the table', follow: false },
  { name: 'following the event log', follow: true },
])('SqliteOutbox (the events table read from a cursor), $name', ({ follow }) => {
  let db: SqliteDatabase;
  let log: SqliteEventLog;
  let outbox: SqliteOutbox;
  const partnerId = makePartner().id;

  beforeEach(() => {
    db = openDatabase(':memory:');
    log = new SqliteEventLog(db);
    outbox = new SqliteOutbox(db, follow ? { follow: log } : {});
    // Caught up before anything is appended, as the runtime's router is.
    expect(outbox.peek(10)).toEqual([]);
  });

  /** Where the cursor stands in the table, whatever the stream keeps in memory. */
  const cursor = () => db.prepare('SELECT seq FROM stream_cursor WHERE id = 1').get()?.seq;

  afterEach(() => {
    db.close();
  });

  describe('append', () => {
    it('puts the event in the stream, referenced by its commit sequence', async () => {
      const { event } = await log.append(newEvent(partnerId));

      expect(outbox.peek(10)).toEqual([
        {
          seq: expect.any(Number),
          ref: { id: event.id, partnerId, type: event.type, createdAt: event.createdAt },
        },
      ]);
    });

    it('carries an ordering key and its place', async () => {
      const { event } = await log.append(newEvent(partnerId, { orderingKey: 'order-7' }));

      expect(outbox.peek(10).map((e) => e.ref)).toEqual([
        {
          id: event.id,
          partnerId,
          type: event.type,
          createdAt: event.createdAt,
          orderingKey: 'order-7',
          keySeq: 1,
        },
      ]);
    });

    it('puts no second entry for a repeated idempotency key', async () => {
      await log.append(newEvent(partnerId, { idempotencyKey: 'k' }));
      await log.append(newEvent(partnerId, { idempotencyKey: 'k' }));

      expect(outbox.peek(10)).toHaveLength(1);
    });

    it('puts nothing when the event cannot be stored', async () => {
      db.exec(`CREATE TEMP TRIGGER refuse BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'refused'); END`);

      await expect(log.append(newEvent(partnerId))).rejects.toThrow('refused');
      expect(outbox.peek(10)).toEqual([]);
    });
  });

  describe('peek', () => {
    it('returns entries oldest first, up to the limit, without taking them', async () => {
      const events = [];
      for (let i = 0; i < 3; i++) events.push((await log.append(newEvent(partnerId))).event);

      expect(outbox.peek(2).map((e) => e.ref.id)).toEqual([events[0]?.id, events[1]?.id]);
      expect(outbox.peek(10)).toHaveLength(3);
    });
  });

  describe('advancePast', () => {
    it('takes the entries up to the given one; later ones stay, and so do events appended after', async () => {
      for (let i = 0; i < 3; i++) await log.append(newEvent(partnerId));
      const [, second, third] = outbox.peek(10);

      outbox.advancePast(second?.seq ?? -1);
      outbox.passed(second?.seq ?? -1);
      expect(outbox.peek(10)).toEqual([third]);
      expect(cursor()).toBe(second?.seq);

      const { event } = await log.append(newEvent(partnerId));
      expect(outbox.peek(10).map((e) => e.ref.id)).toEqual([third?.ref.id, event.id]);
    });

    it('never moves the cursor back', async () => {
      for (let i = 0; i < 3; i++) await log.append(newEvent(partnerId));
      const [first, , third] = outbox.peek(10);

      outbox.advancePast(third?.seq ?? -1);
      outbox.passed(third?.seq ?? -1);
      outbox.advancePast(first?.seq ?? -1);
      outbox.passed(first?.seq ?? -1);

      expect(outbox.peek(10)).toEqual([]);
      expect(cursor()).toBe(third?.seq);
    });

    it('is undone with the transaction it ran in', async () => {
      await log.append(newEvent(partnerId));
      const entries = outbox.peek(10);

      expect(() =>
        transaction(db, () => {
          outbox.advancePast(entries[0]?.seq ?? -1);
          throw new Error('queue send failed');
        }),
      ).toThrow();

      expect(outbox.peek(10)).toEqual(entries);
      expect(cursor()).toBe(0);
    });
  });
});

describe('SqliteOutbox reading the table alone', () => {
  it('passes over an event deleted before it was taken (the retention)', async () => {
    const db = openDatabase(':memory:');
    const log = new SqliteEventLog(db);
    const outbox = new SqliteOutbox(db);
    const events = [];
    for (let i = 0; i < 3; i++) events.push((await log.append(newEvent(makePartner().id))).event);
    db.prepare('DELETE FROM events WHERE id = ?').run(events[1]?.id ?? '');

    expect(outbox.peek(10).map((e) => e.ref.id)).toEqual([events[0]?.id, events[2]?.id]);
    db.close();
  });
});

describe('SqliteOutbox following its event log, its database closed', () => {
  it('never reports failed an append that committed, though it cannot read the table any more', async () => {
    const db = openDatabase(':memory:');
    const log = new SqliteEventLog(db);
    const outbox = new SqliteOutbox(db, { follow: log });
    const partnerId = makePartner().id;
    expect(outbox.peek(10)).toEqual([]);
    await log.append(newEvent(partnerId, { idempotencyKey: 'k' }));
    await log.append(newEvent(partnerId, { idempotencyKey: 'k' })); // takes a seq: the next has a gap

    const pending = log.append(newEvent(partnerId));
    closeDatabase(db); // commits the append, then closes before it settles

    await expect(pending).resolves.toMatchObject({ created: true });
  });
});

describe('SqliteOutbox following its event log', () => {
  let db: SqliteDatabase;
  let log: SqliteEventLog;
  let outbox: SqliteOutbox;
  let clock: ManualClock;
  const partnerId = makePartner().id;

  beforeEach(() => {
    db = openDatabase(':memory:');
    log = new SqliteEventLog(db);
    clock = new ManualClock();
    outbox = new SqliteOutbox(db, { follow: log, now: () => clock.now().getTime() });
  });

  afterEach(() => {
    db.close();
  });

  it('gives the events appended since it caught up from memory, without reading the table', async () => {
    expect(outbox.peek(10)).toEqual([]);
    const { event } = await log.append(newEvent(partnerId));
    // Gone from the table (as the retention would), still in memory: the read was not the table's.
    db.prepare('DELETE FROM events WHERE id = ?').run(event.id);

    expect(outbox.peek(10).map((e) => e.ref.id)).toEqual([event.id]);
  });

  it('reads the table until it has caught up, then follows', async () => {
    const before = [];
    for (let i = 0; i < 3; i++) before.push((await log.append(newEvent(partnerId))).event);

    expect(outbox.peek(2).map((e) => e.ref.id)).toEqual([before[0]?.id, before[1]?.id]);
    outbox.advancePast(outbox.peek(2)[1]?.seq ?? -1);
    expect(outbox.peek(2).map((e) => e.ref.id)).toEqual([before[2]?.id]);
    const { event } = await log.append(newEvent(partnerId));
    expect(outbox.peek(10).map((e) => e.ref.id)).toEqual([before[2]?.id, event.id]);
  });

  it('keeps what the router took until its write has committed (passed)', async () => {
    expect(outbox.peek(10)).toEqual([]);
    const first = (await log.append(newEvent(partnerId))).event;
    const second = (await log.append(newEvent(partnerId))).event;
    const [taken] = outbox.peek(1);

    outbox.advancePast(taken?.seq ?? -1);
    expect(outbox.peek(10).map((e) => e.ref.id)).toEqual([first.id, second.id]);
    outbox.passed(taken?.seq ?? -1);
    expect(outbox.peek(10).map((e) => e.ref.id)).toEqual([second.id]);
  });

  it('keeps following past an append whose idempotency key was used (it takes a seq, and stores nothing)', async () => {
    expect(outbox.peek(10)).toEqual([]);
    const first = (await log.append(newEvent(partnerId, { idempotencyKey: 'k' }))).event;
    expect((await log.append(newEvent(partnerId, { idempotencyKey: 'k' }))).created).toBe(false);
    const next = (await log.append(newEvent(partnerId))).event;
    // Gone from the table, still in memory: the stream did not go back to the table.
    db.prepare('DELETE FROM events WHERE id = ?').run(next.id);

    expect(outbox.peek(10).map((e) => e.ref.id)).toEqual([first.id, next.id]);
  });

  it('finds an event another writer appended between two of its own, in commit order', async () => {
    const elsewhere = new SqliteEventLog(db);
    expect(outbox.peek(10)).toEqual([]);
    const first = (await log.append(newEvent(partnerId))).event;
    const foreign = (await elsewhere.append(newEvent(partnerId))).event;
    const last = (await log.append(newEvent(partnerId))).event;

    expect(outbox.peek(10).map((e) => e.ref.id)).toEqual([first.id, foreign.id, last.id]);
  });

  it('finds an event another writer appended after its own within a second of having none in memory', async () => {
    const elsewhere = new SqliteEventLog(db);
    expect(outbox.peek(10)).toEqual([]);
    const own = (await log.append(newEvent(partnerId))).event;
    const foreign = (await elsewhere.append(newEvent(partnerId))).event;

    const [first] = outbox.peek(10);
    expect(first?.ref.id).toBe(own.id);
    outbox.advancePast(first?.seq ?? -1);
    outbox.passed(first?.seq ?? -1);
    // None in memory: trusted for a second, then the table is read again.
    expect(outbox.peek(10)).toEqual([]);
    clock.advance(1);
    expect(outbox.peek(10).map((e) => e.ref.id)).toEqual([foreign.id]);
  });

  it('does not give twice an event it read from the table before its append was told', async () => {
    db.close();
    db = openDatabase(':memory:');
    log = new SqliteEventLog(db);
    // Told before the stream is: it reads the stream after the commit, before the stream hears.
    let readFirst: OutboxEntry[] = [];
    log.onAppend(() => {
      readFirst = outbox.peek(10);
    });
    outbox = new SqliteOutbox(db, { follow: log, now: () => clock.now().getTime() });
    expect(outbox.peek(10)).toEqual([]);
    clock.advance(1); // the next look reads the table

    const { event } = await log.append(newEvent(partnerId));

    expect(readFirst.map((e) => e.ref.id)).toEqual([event.id]);
    expect(outbox.peek(10).map((e) => e.ref.id)).toEqual([event.id]);
  });
});

describe('SqliteEventLog.resumeAfter', () => {
  it('tells from the last deleted event whether anything after a cursor expired', async () => {
    const db = openDatabase(':memory:');
    try {
      const log = new SqliteEventLog(db);
      const partnerId = id('ptr');
      const [a, b, c] = [
        (await log.append(newEvent(partnerId))).event,
        (await log.append(newEvent(partnerId))).event,
        (await log.append(newEvent(partnerId))).event,
      ];
      const seqs = db
        .prepare('SELECT seq FROM events ORDER BY seq')
        .all()
        .map((row) => Number(row.seq));
      expect(await log.resumeAfter(partnerId, a.id)).toEqual({ expired: false, after: a.id });
      log.deleteEvents(seqs.slice(0, 1)); // a, the cursor itself, was the last to expire
      expect(await log.resumeAfter(partnerId, a.id)).toEqual({ expired: false });
      log.deleteEvents(seqs.slice(1, 2)); // b expires: a reader still at a missed it
      expect(await log.resumeAfter(partnerId, a.id)).toEqual({ expired: true });
      expect(await log.resumeAfter(partnerId, b.id)).toEqual({ expired: false });
      expect(await log.resumeAfter(partnerId, c.id)).toEqual({ expired: false, after: c.id });
    } finally {
      closeDatabase(db);
    }
  });
});
