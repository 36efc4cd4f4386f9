/**
 * Publishing a batch of events (publishEvents), on the real adapters: SQLite in memory, and
 * DynamoDB Local, where appends take real time and would race if the batch let them. Its
 * defining property: a batch answers and stores exactly what the same events published one
 * by one, in order, would.
 */

import { randomUUID } from 'node:crypto';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoEventLog } from '../../functions/adapters/aws/events.ts';
import { DynamoPartnerStore } from '../../functions/adapters/aws/partners.ts';
import { EVENTS_TABLE, PARTNERS_TABLE } from '../../functions/adapters/aws/tables.ts';
import { systemClock } from '../../functions/adapters/clock.ts';
import { systemResolver } from '../../functions/adapters/dns.ts';
import { InMemoryRateLimiter } from '../../functions/adapters/memory/rate-limiter.ts';
import { SqliteConsumerStore } from '../../functions/adapters/sqlite/consumers.ts';
import {
  closeDatabase,
  openDatabase,
  type SqliteDatabase,
} from '../../functions/adapters/sqlite/database.ts';
import { SqliteDeliveryStore } from '../../functions/adapters/sqlite/deliveries.ts';
import { SqliteEventLog } from '../../functions/adapters/sqlite/events.ts';
import { SqlitePartnerStore } from '../../functions/adapters/sqlite/partners.ts';
import { SqliteQueue } from '../../functions/adapters/sqlite/queues.ts';
import { SqliteSubscriptionStore } from '../../functions/adapters/sqlite/subscriptions.ts';
import { type ApiRequest, createApiHandler, MAX_REQUEST_BYTES } from '../../functions/api/handler.ts';
import {
  DomainError,
  IdempotencyKeyReusedError,
  PartnerNotFoundError,
  PayloadTooLargeError,
  ValidationError,
} from '../../functions/core/errors.ts';
import {
  type BatchEntry,
  type BatchResult,
  EventNotStoredError,
  MAX_PAYLOAD_BYTES,
  type PublishInput,
  publishEvent,
  publishEvents,
} from '../../functions/core/events.ts';
import { newId } from '../../functions/core/ids.ts';
import { DEFAULT_REQUEST_LIMITS } from '../../functions/core/limits.ts';
import type { JsonValue } from '../../functions/core/model.ts';
import type { Clock, EventLog, PartnerStore } from '../../functions/core/ports.ts';
import { lambdaContext } from '../../local/lambda-context.ts';
import { createTable, deleteTables, localDocumentClient, uniquePrefix } from '../dynamodb-local/tables.ts';
import { testCipher } from '../support/cipher.ts';
import { seededRandom } from '../support/seeded-random.ts';
import { makeApiKey } from './fixtures.ts';

interface Stores {
  events: EventLog;
  partners: PartnerStore;
  clock: Clock;
}

const UNKNOWN_PARTNER_ID = 'ptr_00000000000000000000000000';

async function newPartner(stores: Stores, name: string): Promise<string> {
  const id = newId('ptr');
  await stores.partners.create({ id, name, createdAt: new Date().toISOString() }, makeApiKey(id));
  return id;
}

/** Every event of the partner's log, in commit order. */
async function logOf(stores: Stores, partnerId: string) {
  const events = [];
  let after: string | undefined;
  for (;;) {
    const page = await stores.events.list(
      partnerId,
      after === undefined ? { limit: 100 } : { limit: 100, after },
    );
    if (page.items.length === 0) return events;
    events.push(...page.items);
    after = page.next ?? undefined;
  }
}

function sqliteStores(): Stores & { db: SqliteDatabase } {
  const db = openDatabase(':memory:');
  return { db, events: new SqliteEventLog(db), partners: new SqlitePartnerStore(db), clock: systemClock };
}

/** An entry over a few partners, keys, types and payloads, so that keys collide often. */
type Spec =
  | { kind: 'event'; partner: 'a' | 'b' | 'unknown'; type: string; payload: JsonValue; key?: string }
  | { kind: 'invalid' };

function randomBatch(next: () => number, size: number): Spec[] {
  const pick = <T>(options: readonly T[]): T => options[Math.floor(next() * options.length)] as T;
  return Array.from({ length: size }, (): Spec => {
    const roll = next();
    if (roll < 0.05) return { kind: 'invalid' };
    const key = pick([undefined, 'k1', 'k2', 'k3']);
    return {
      kind: 'event',
      partner: roll < 0.1 ? 'unknown' : pick(['a', 'b'] as const),
      type: pick(['order.created', 'order.paid']),
      payload: roll < 0.13 ? 'x'.repeat(MAX_PAYLOAD_BYTES) : pick([{ n: 1 }, { n: 2 }]),
      ...(key === undefined ? {} : { key }),
    };
  });
}

function entriesOf(specs: readonly Spec[], partners: { a: string; b: string }): BatchEntry[] {
  return specs.map((spec) => {
    if (spec.kind === 'invalid')
      return new ValidationError('type: invalid', [{ field: 'type', message: 'x' }]);
    const partnerId = spec.partner === 'unknown' ? UNKNOWN_PARTNER_ID : partners[spec.partner];
    return {
      partnerId,
      type: spec.type,
      payload: spec.payload,
      ...(spec.key === undefined ? {} : { idempotencyKey: spec.key }),
    };
  });
}

/** Publishes the entries one at a time with the single publish: what a batch must equal. */
async function oneByOne(stores: Stores, entries: readonly BatchEntry[]): Promise<BatchResult[]> {
  const results: BatchResult[] = [];
  for (const entry of entries) {
    if (entry instanceof DomainError) {
      results.push({ error: entry });
      continue;
    }
    try {
      results.push(await publishEvent(stores, entry));
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      results.push({ error });
    }
  }
  return results;
}

/**
 * Results and logs with event ids replaced by where the event sits in its partner's log, so
 * that two runs minting different ids compare equal when they did the same thing.
 */
async function canonical(stores: Stores, partners: { a: string; b: string }, results: BatchResult[]) {
  const place = new Map<string, string>();
  const logs: Record<string, unknown[]> = {};
  for (const name of ['a', 'b'] as const) {
    const log = await logOf(stores, partners[name]);
    for (const [i, event] of log.entries()) place.set(event.id, `${name}#${i}`);
    logs[name] = log.map((e) => ({ type: e.type, payload: e.payload, key: e.idempotencyKey }));
  }
  const outcomes = results.map((result) =>
    'error' in result
      ? { error: result.error.name, status: result.error.status, fields: result.error.errors }
      : { event: place.get(result.event.id) ?? 'not in the log', created: result.created },
  );
  return { outcomes, logs };
}

/** Two batches in a row (the second meets the first's keys), against the same events one by one. */
async function checkSeed(stores: Stores, seed: number, maxSize: number): Promise<void> {
  const next = seededRandom(seed);
  const batches = [
    randomBatch(next, 1 + Math.floor(next() * maxSize)),
    randomBatch(next, 1 + Math.floor(next() * maxSize)),
  ];
  const viaBatch = { a: await newPartner(stores, 'a'), b: await newPartner(stores, 'b') };
  const viaSingle = { a: await newPartner(stores, 'a'), b: await newPartner(stores, 'b') };
  const batchResults: BatchResult[] = [];
  const singleResults: BatchResult[] = [];
  for (const specs of batches) {
    const batchEntries = entriesOf(specs, viaBatch);
    const results = await publishEvents(stores, batchEntries);
    expect(results, `seed ${seed}`).toHaveLength(batchEntries.length);
    batchResults.push(...results);
    singleResults.push(...(await oneByOne(stores, entriesOf(specs, viaSingle))));
  }
  const got = await canonical(stores, viaBatch, batchResults);
  const want = await canonical(stores, viaSingle, singleResults);
  expect(got, `seed ${seed}`).toEqual(want);
}

function input(partnerId: string, overrides: Partial<PublishInput> = {}): PublishInput {
  return { partnerId, type: 'order.created', payload: { n: 1 }, ...overrides };
}

describe('publishEvents on SQLite', () => {
  let stores: ReturnType<typeof sqliteStores>;

  beforeAll(() => {
    stores = sqliteStores();
  });

  afterAll(() => {
    closeDatabase(stores.db);
  });

  it('answers each entry in request order; a bad one fails alone', async () => {
    const partnerId = await newPartner(stores, 'acme');
    const invalid = new ValidationError('type: bad', [{ field: 'body.events[1].type', message: 'bad' }]);

    const results = await publishEvents(stores, [
      input(partnerId, { payload: { n: 0 } }),
      invalid,
      input(UNKNOWN_PARTNER_ID),
      input(partnerId, { payload: 'x'.repeat(MAX_PAYLOAD_BYTES) }),
      input(partnerId, { payload: { n: 4 } }),
    ]);

    expect(results[1]).toEqual({ error: invalid });
    expect(results[2]).toEqual({ error: expect.any(PartnerNotFoundError) });
    expect(results[3]).toEqual({ error: expect.any(PayloadTooLargeError) });
    const stored = await logOf(stores, partnerId);
    expect(stored.map((e) => e.payload)).toEqual([{ n: 0 }, { n: 4 }]);
    expect([results[0], results[4]]).toEqual(stored.map((event) => ({ event, created: true })));
  });

  it('treats two entries with one key as two publishes in a row: the second gets the first id or a 409', async () => {
    const partnerId = await newPartner(stores, 'acme');
    const first = input(partnerId, { idempotencyKey: 'k' });

    const results = await publishEvents(stores, [first, { ...first }, { ...first, payload: { n: 2 } }]);

    const [created, repeated, conflicting] = results;
    if (created === undefined || !('event' in created))
      throw new Error(`not published: ${JSON.stringify(created)}`);
    expect(created.created).toBe(true);
    expect(repeated).toEqual({ event: created.event, created: false });
    expect(conflicting).toEqual({ error: expect.any(IdempotencyKeyReusedError) });
    expect((await logOf(stores, partnerId)).map((e) => e.id)).toEqual([created.event.id]);
  });

  it('keeps a partner’s events in request order in its log, with several partners at once', async () => {
    const partners = await Promise.all(['a', 'b', 'c'].map((name) => newPartner(stores, name)));
    const entries = Array.from({ length: 60 }, (_, i) => input(partners[i % 3] ?? '', { payload: { i } }));

    await publishEvents(stores, entries);

    for (const [p, partnerId] of partners.entries()) {
      const want = entries.flatMap((entry, i) => (i % 3 === p ? [entry.payload] : []));
      expect((await logOf(stores, partnerId)).map((e) => e.payload)).toEqual(want);
    }
  });

  it('answers an entry whose storage failed with EventNotStoredError, and stores the others', async () => {
    const partnerId = await newPartner(stores, 'acme');
    stores.db.exec(`CREATE TRIGGER fail_one BEFORE INSERT ON events WHEN NEW.type = 'storage.fails'
      BEGIN SELECT RAISE(ABORT, 'simulated disk failure'); END`);
    try {
      const results = await publishEvents(stores, [
        input(partnerId, { payload: { n: 0 } }),
        input(partnerId, { type: 'storage.fails' }),
        input(partnerId, { payload: { n: 2 } }),
      ]);

      const failed = results[1];
      expect(failed).toEqual({ error: expect.any(EventNotStoredError) });
      expect(failed && 'error' in failed && failed.error.status).toBe(503);
      expect((await logOf(stores, partnerId)).map((e) => e.payload)).toEqual([{ n: 0 }, { n: 2 }]);
    } finally {
      stores.db.exec('DROP TRIGGER fail_one');
    }
  });

  it('answers and stores what the same events published one by one would (200 random batches)', async () => {
    for (let seed = 1; seed <= 200; seed++) await checkSeed(stores, seed, 30);
  });
});

describe('publishEvents on DynamoDB Local', () => {
  let client: DynamoDBDocumentClient;
  let tables: string[];
  let stores: Stores;

  beforeAll(async () => {
    client = localDocumentClient();
    const prefix = uniquePrefix('publish-events');
    tables = [
      await createTable(client, EVENTS_TABLE, prefix),
      await createTable(client, PARTNERS_TABLE, prefix),
    ];
    const [events = '', partners = ''] = tables;
    stores = {
      events: new DynamoEventLog(client, events),
      partners: new DynamoPartnerStore(client, partners),
      clock: systemClock,
    };
  });

  afterAll(async () => {
    await deleteTables(client, tables);
    client.destroy();
  });

  it('answers and stores what the same events published one by one would (random batches)', async () => {
    for (let seed = 1; seed <= 5; seed++) await checkSeed(stores, seed, 30);
  });
});

describe('POST /v1/events/batch in the API handler', () => {
  let db: SqliteDatabase;
  let handler: ReturnType<typeof createApiHandler>;
  const logged: { message: string; error: unknown }[] = [];

  beforeAll(() => {
    db = openDatabase(':memory:');
    handler = createApiHandler(
      {
        events: new SqliteEventLog(db),
        partners: new SqlitePartnerStore(db),
        consumers: new SqliteConsumerStore(db),
        subscriptions: new SqliteSubscriptionStore(db, testCipher()),
        deliveries: new SqliteDeliveryStore(db),
        deliveryQueue: new SqliteQueue(db, { name: 'delivery', visibilityTimeoutSeconds: 30 }),
        retentionDays: 30,
        clock: systemClock,
        resolver: systemResolver,
        allowPrivateTargets: true,
        egressIps: [],
        limiter: new InMemoryRateLimiter(),
        limits: DEFAULT_REQUEST_LIMITS,
      },
      (message, error) => logged.push({ message, error }),
    );
  });

  afterAll(() => {
    closeDatabase(db);
  });

  /** The event API Gateway sends for an IAM-signed POST. */
  function post(body: string, isBase64Encoded = false): ApiRequest {
    return {
      version: '2.0',
      routeKey: 'POST /v1/events/batch',
      rawPath: '/v1/events/batch',
      rawQueryString: '',
      headers: { 'content-type': 'application/json' },
      body: isBase64Encoded ? Buffer.from(body).toString('base64') : body,
      isBase64Encoded,
      requestContext: {
        accountId: '123456789012',
        apiId: 'api',
        domainName: 'api.example.com',
        domainPrefix: 'api',
        http: {
          method: 'POST',
          path: '/v1/events/batch',
          protocol: 'HTTP/1.1',
          sourceIp: '10.0.0.1',
          userAgent: 'test',
        },
        requestId: randomUUID(),
        routeKey: 'POST /v1/events/batch',
        stage: '$default',
        time: new Date().toUTCString(),
        timeEpoch: Date.now(),
        authorizer: { iam: { userArn: 'arn:aws:iam::123456789012:role/producer' } },
      },
    };
  }

  it('answers an entry whose storage failed with a 503 problem, and logs the cause', async () => {
    logged.length = 0;
    const stores = {
      events: new SqliteEventLog(db),
      partners: new SqlitePartnerStore(db),
      clock: systemClock,
    };
    const partnerId = await newPartner(stores, 'acme');
    db.exec(`CREATE TRIGGER fail_one BEFORE INSERT ON events WHEN NEW.type = 'storage.fails'
      BEGIN SELECT RAISE(ABORT, 'simulated disk failure'); END`);
    try {
      const body = JSON.stringify({
        events: [
          { partnerId, type: 'order.created', payload: {} },
          { partnerId, type: 'storage.fails', payload: {} },
        ],
      });

      const response = await handler(post(body), lambdaContext('api'));

      expect(response.statusCode).toBe(200);
      const { results } = JSON.parse(String(response.body));
      expect(results[0]).toEqual({ id: expect.stringMatching(/^evt_/), created: true });
      expect(results[1]).toEqual({
        error: {
          type: 'urn:webhook-dispatcher:problem:service-unavailable',
          title: 'Service unavailable',
          status: 503,
          detail: expect.any(String),
          instance: '/v1/events/batch',
        },
      });
      expect(logged).toHaveLength(1);
      const error = logged[0]?.error;
      if (!(error instanceof EventNotStoredError)) throw new Error(`logged ${String(error)}`);
      expect(String(error.cause)).toContain('simulated disk failure');
    } finally {
      db.exec('DROP TRIGGER fail_one');
    }
  });

  it('refuses a body over 1 MiB with 413 on AWS too, where no local server stands in front', async () => {
    const partnerId = newId('ptr');
    const event = { partnerId, type: 'big.one', payload: 'x'.repeat(200 * 1024) };
    const body = JSON.stringify({ events: Array.from({ length: 6 }, () => event) });
    expect(Buffer.byteLength(body)).toBeGreaterThan(MAX_REQUEST_BYTES);

    for (const base64 of [false, true]) {
      const response = await handler(post(body, base64), lambdaContext('api'));
      expect(response.statusCode).toBe(413);
      expect(response.headers?.['content-type']).toBe('application/problem+json');
    }
  });

  it('names a conflicting entry’s fields from the top of the request', async () => {
    const stores = {
      events: new SqliteEventLog(db),
      partners: new SqlitePartnerStore(db),
      clock: systemClock,
    };
    const partnerId = await newPartner(stores, 'acme');
    const event = { partnerId, type: 'order.created', payload: { n: 1 }, idempotencyKey: 'k' };
    const body = JSON.stringify({ events: [event, { ...event, payload: { n: 2 } }] });

    const response = await handler(post(body), lambdaContext('api'));

    const { results } = JSON.parse(String(response.body));
    expect(results[1].error).toMatchObject({
      status: 409,
      errors: [{ field: 'body.events[1].idempotencyKey', message: expect.any(String) }],
    });
    expect(results[1].error.type).toBe('urn:webhook-dispatcher:problem:conflict');
  });
});
