/**
 * What only concurrent writers show on DynamoDB: appends take their places from one counter
 * and a poller never passes a place still being written, so it sees every event once; the
 * conditional writes keep idempotency keys and fan-out pairs unique. Writers use independent clients, as separate Lambda instances would.
 */

import { setTimeout as sleep } from 'node:timers/promises';
import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DynamoConsumerStore } from '../../functions/adapters/aws/consumers.ts';
import { DynamoDeliveryStore } from '../../functions/adapters/aws/deliveries.ts';
import {
  DynamoEventLog,
  EVENT_STRIPES,
  eventIdAt,
  keyCounterKey,
  OrderingKeyBusyError,
  seqInId,
} from '../../functions/adapters/aws/events.ts';
import { DynamoSubscriptionStore } from '../../functions/adapters/aws/subscriptions.ts';
import { DELIVERIES_TABLE, EVENTS_TABLE, SUBSCRIPTIONS_TABLE } from '../../functions/adapters/aws/tables.ts';
import { systemClock } from '../../functions/adapters/clock.ts';
import { ServiceUnavailableError, SubscriptionLimitError } from '../../functions/core/errors.ts';
import type { Subscription } from '../../functions/core/model.ts';
import {
  createSubscription,
  MAX_SUBSCRIPTIONS_PER_PARTNER,
  rotateSecret,
  signingSecrets,
  updateSubscription,
} from '../../functions/core/subscriptions.ts';
import { createTable, deleteTables, localDocumentClient, uniquePrefix } from '../dynamodb-local/tables.ts';
import { testCipher } from '../support/cipher.ts';
import { id, makeDelivery, makeEvent, makeSubscription, newEvent } from './fixtures.ts';
import { followConsumer } from './follow-consumer.ts';

const WRITERS = 5;
const APPENDS = 50;

let clients: DynamoDBDocumentClient[];
let admin: DynamoDBDocumentClient;

beforeAll(() => {
  admin = localDocumentClient();
  clients = Array.from({ length: WRITERS }, () => localDocumentClient());
});

afterAll(() => {
  for (const client of [admin, ...clients]) client.destroy();
});

function writer(i: number): DynamoDBDocumentClient {
  const client = clients[i % clients.length];
  if (client === undefined) throw new Error('no writer clients');
  return client;
}

/** The partner's events as stored, in seq order (the order in which they took their places). */
async function committed(
  client: DynamoDBDocumentClient,
  table: string,
  partnerId: string,
): Promise<{ id: string; seq: number }[]> {
  const rows: { id: string; seq: number; kind: string }[] = [];
  for (let stripe = 0; stripe < EVENT_STRIPES; stripe++) {
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await client.send(
        new QueryCommand({
          TableName: table,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :e)',
          ExpressionAttributeValues: { ':pk': `${partnerId}#E${stripe}`, ':e': 'E#' },
          ConsistentRead: true,
          ExclusiveStartKey: startKey,
        }),
      );
      for (const item of page.Items ?? []) {
        rows.push({ id: String(item.id), seq: Number(item.seq), kind: String(item.kind) });
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey !== undefined);
  }
  return rows
    .filter((row) => row.kind === 'event')
    .sort((a, b) => a.seq - b.seq)
    .map(({ id, seq }) => ({ id, seq }));
}

/**
 * APPENDS appends for the partner from the writers' clients, spread over about half a second
 * so that a reader reads while they commit (appends made at once would all be done before its
 * first page); each created up to 50 ms in the past, as by a slow writer, so that its id (a
 * ULID of that time) does not follow commit order.
 */
function startWriters(table: string, partnerId: string) {
  let done = false;
  const writes = Promise.all(
    Array.from({ length: APPENDS }, (_, i) =>
      sleep(i * 10).then(() =>
        new DynamoEventLog(writer(i), table).append(
          newEvent(partnerId, {
            createdAt: new Date(Date.now() - Math.floor(Math.random() * 50)).toISOString(),
            type: i % 3 === 0 ? 'load.rare' : 'load.test',
            payload: { i },
          }),
        ),
      ),
    ),
  ).finally(() => {
    done = true;
  });
  return { writes, done: () => done };
}

describe('DynamoEventLog under concurrent writers', () => {
  let table: string;

  beforeEach(async () => {
    table = await createTable(admin, EVENTS_TABLE, uniquePrefix('concurrency'));
  });

  afterEach(async () => {
    await deleteTables(admin, [table]);
  });

  it('lets a poller following next see every event exactly once, in commit order', async () => {
    const partnerId = id('ptr');
    const poller = new DynamoEventLog(admin, table);

    const { writes, done: writersDone } = startWriters(table, partnerId);

    const seen: string[] = [];
    let after: string | undefined;
    let pagesWhileWriting = 0;
    for (;;) {
      const done = writersDone();
      const page = await poller.list(partnerId, after === undefined ? { limit: 5 } : { limit: 5, after });
      seen.push(...page.items.map((e) => e.id));
      after = page.next ?? undefined;
      if (!done && page.items.length > 0) pagesWhileWriting++;
      if (page.items.length === 0) {
        // One empty page after the writers finished proves the end.
        if (done) break;
        await sleep(2);
      }
    }
    const results = await writes;

    const stored = await committed(admin, table, partnerId);
    expect(results.every((r) => r.created)).toBe(true);
    expect(stored.map((row) => row.seq)).toEqual(Array.from({ length: APPENDS }, (_, i) => i + 1));
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual(stored.map((row) => row.id));
    // The hazard was really there: the poller read while writers committed, and commit order
    // is not id order.
    expect(pagesWhileWriting).toBeGreaterThan(0);
    expect(seen).not.toEqual(seen.toSorted());
  });

  it('gives a reader following a consumer, acknowledging each page, every event exactly once, in commit order', async () => {
    const partnerId = id('ptr');
    const { writes, done: writersDone } = startWriters(table, partnerId);
    const deps = {
      consumers: new DynamoConsumerStore(admin, table),
      events: new DynamoEventLog(admin, table),
      clock: systemClock,
      retentionDays: 30,
    };
    const { seen, pagesWhileWriting } = await followConsumer(deps, partnerId, {
      limit: 3,
      writersDone,
    });
    await writes;

    const stored = await committed(admin, table, partnerId);
    expect(stored).toHaveLength(APPENDS);
    expect(seen).toEqual(stored.map((row) => row.id));
    expect(pagesWhileWriting).toBeGreaterThan(0);
  });

  it('gives a reader following a consumer of one type every event of it exactly once, in commit order', async () => {
    const partnerId = id('ptr');
    const { writes, done: writersDone } = startWriters(table, partnerId);
    const deps = {
      consumers: new DynamoConsumerStore(admin, table),
      // Few events examined per page, so pages pass over the other type's events.
      events: new DynamoEventLog(admin, table, { maxExamined: 4 }),
      clock: systemClock,
      retentionDays: 30,
    };
    const { seen } = await followConsumer(deps, partnerId, { limit: 2, writersDone, types: ['load.rare'] });
    await writes;

    const rare = new Set((await writes).filter((r) => r.event.type === 'load.rare').map((r) => r.event.id));
    const stored = (await committed(admin, table, partnerId)).filter((row) => rare.has(row.id));
    expect(rare.size).toBe(Math.ceil(APPENDS / 3));
    expect(seen).toEqual(stored.map((row) => row.id));
  });

  it('stores one event for concurrent appends with the same idempotency key', async () => {
    const partnerId = id('ptr');
    const attempts = Array.from({ length: 10 }, () =>
      newEvent(partnerId, { idempotencyKey: 'order-42', payload: { n: Math.random() } }),
    );

    const results = await Promise.all(
      attempts.map((event, i) => new DynamoEventLog(writer(i), table).append(event)),
    );

    const winners = results.filter((r) => r.created);
    expect(winners).toHaveLength(1);
    for (const result of results) expect(result.event).toEqual(winners[0]?.event);
    // The others' places are holes: the log holds the one event.
    expect((await committed(admin, table, partnerId)).map((row) => row.id)).toEqual([winners[0]?.event.id]);
  });

  it('gives one ordering key’s appends from several instances the places 1 to N, each once, each instance’s in the order it made them', async () => {
    const partnerId = id('ptr');
    const instances = Array.from({ length: 3 }, (_, i) => new DynamoEventLog(writer(i), table));
    const perInstance = 5;

    const results = await Promise.all(
      instances.map((log, i) =>
        Promise.all(
          Array.from({ length: perInstance }, (_, n) =>
            log.append(newEvent(partnerId, { orderingKey: 'hot', payload: { i, n } })),
          ),
        ),
      ),
    );

    const all = results.flat().map((result) => result.event.keySeq ?? 0);
    expect(all.toSorted((a, b) => a - b)).toEqual(
      Array.from({ length: instances.length * perInstance }, (_, i) => i + 1),
    );
    for (const made of results) {
      const seqs = made.map((result) => result.event.keySeq ?? 0);
      expect(seqs).toEqual(seqs.toSorted((a, b) => a - b));
    }
    // Every event was stored once, with the place it was given.
    const stored = await committed(admin, table, partnerId);
    expect(stored).toHaveLength(all.length);
    for (const result of results.flat()) {
      expect(await instances[0]?.get(partnerId, result.event.id)).toEqual(result.event);
    }
  });
});

describe('DynamoEventLog: places taken and never written', () => {
  let table: string;

  beforeEach(async () => {
    table = await createTable(admin, EVENTS_TABLE, uniquePrefix('holes'));
  });

  afterEach(async () => {
    await deleteTables(admin, [table]);
  });

  /** Takes the partner's next seq as an append would, and never writes it: a writer that died. */
  async function takeSeqAndDie(partnerId: string): Promise<void> {
    await admin.send(
      new UpdateCommand({
        TableName: table,
        Key: { pk: partnerId, sk: 'SEQ' },
        UpdateExpression: 'ADD #seq :one',
        ExpressionAttributeNames: { '#seq': 'seq' },
        ExpressionAttributeValues: { ':one': 1 },
      }),
    );
  }

  it('stops a poller at a place still being written, and fills it once a later event is older than any append takes', async () => {
    const partnerId = id('ptr');
    const log = new DynamoEventLog(admin, table, { holeAfterMs: 300 });
    const { event: before } = await log.append(newEvent(partnerId));
    await takeSeqAndDie(partnerId);
    const { event: after } = await log.append(newEvent(partnerId));

    // The read barrier: the missing place may still be written, so nothing past it is read.
    expect(await log.list(partnerId, { limit: 10 })).toEqual({ items: [before], next: before.id });

    await sleep(350);
    const page = await log.list(partnerId, { limit: 10, after: before.id });
    expect(page).toEqual({ items: [after], next: after.id });
    expect(await log.list(partnerId, { limit: 10 })).toEqual({ items: [before, after], next: after.id });
  });

  /** A poller gave up on `seq` before the append that took it got there. */
  async function holeAt(partnerId: string, seq: number): Promise<void> {
    await admin.send(
      new PutCommand({
        TableName: table,
        Item: {
          pk: `${partnerId}#E${seq % EVENT_STRIPES}`,
          sk: `E#${String(seq).padStart(15, '0')}`,
          kind: 'hole',
          seq,
          writtenAt: 0,
        },
      }),
    );
  }

  it('moves an append whose place a poller filled to the next one, under the id of that place', async () => {
    const partnerId = id('ptr');
    const log = new DynamoEventLog(admin, table);
    const { event: first } = await log.append(newEvent(partnerId));
    await holeAt(partnerId, 2);
    const draft = newEvent(partnerId);

    const { event: late, created } = await log.append(draft);

    expect(created).toBe(true);
    expect(late).toEqual({ ...draft, id: eventIdAt(partnerId, 3, Date.parse(draft.createdAt)) });
    expect(await log.get(partnerId, late.id)).toEqual(late);
    expect(await log.get(partnerId, eventIdAt(partnerId, 2, Date.parse(draft.createdAt)))).toBeUndefined();
    expect(await log.list(partnerId, { limit: 10 })).toEqual({ items: [first, late], next: late.id });
    expect((await committed(admin, table, partnerId)).map((row) => row.seq)).toEqual([1, 3]);
  });

  it('moves the idempotency key with a moved append, so the key still finds its event', async () => {
    const partnerId = id('ptr');
    const log = new DynamoEventLog(admin, table);
    await holeAt(partnerId, 1);

    const moved = await log.append(newEvent(partnerId, { idempotencyKey: 'order-7' }));
    const repeated = await log.append(newEvent(partnerId, { idempotencyKey: 'order-7' }));

    expect(seqInId(partnerId, moved.event.id)).toBe(2);
    expect(repeated).toEqual({ event: moved.event, created: false });
    expect((await committed(admin, table, partnerId)).map((row) => row.id)).toEqual([moved.event.id]);
  });

  it('claims the key anew when it moves, so a retry waits for the moved event instead of taking the key over', async () => {
    const partnerId = id('ptr');
    // A clock a second further on at every reading: the claim's first time is its first reading.
    const start = Date.now();
    let readings = 0;
    const clock = { now: () => new Date(start + ++readings * 1000) };
    const log = new DynamoEventLog(admin, table, { clock });
    await holeAt(partnerId, 1);

    await log.append(newEvent(partnerId, { idempotencyKey: 'order-8' }));

    const claims = [];
    for (let stripe = 0; stripe < EVENT_STRIPES; stripe++) {
      const got = await admin.send(
        new GetCommand({ TableName: table, Key: { pk: `${partnerId}#K${stripe}`, sk: 'IDEM#order-8' } }),
      );
      if (got.Item !== undefined) claims.push(got.Item);
    }
    expect(claims).toHaveLength(1);
    expect(Number(claims[0]?.claimedAt)).toBeGreaterThan(start + 1000);
  });

  it('moves a keyed append whose place a poller filled to the next one, with the key’s next place all the same', async () => {
    const partnerId = id('ptr');
    const log = new DynamoEventLog(admin, table);
    const { event: first } = await log.append(newEvent(partnerId, { orderingKey: 'k' }));
    await holeAt(partnerId, 2);
    const draft = newEvent(partnerId, { orderingKey: 'k' });

    const { event: late } = await log.append(draft);

    expect(late).toEqual({ ...draft, id: eventIdAt(partnerId, 3, Date.parse(draft.createdAt)), keySeq: 2 });
    expect(await log.list(partnerId, { limit: 10 })).toEqual({ items: [first, late], next: late.id });
  });

  it('reads the key’s counter again when another instance moved it between the read and the write', async () => {
    const partnerId = id('ptr');
    const other = new DynamoEventLog(admin, table);
    let raced: Promise<unknown> | undefined;
    const racing = localDocumentClient();
    racing.middlewareStack.add(
      (next, context) => async (args) => {
        // Before this instance's first transaction: another appends the key and commits first.
        if (context.commandName === 'TransactWriteItemsCommand' && raced === undefined) {
          raced = other.append(newEvent(partnerId, { orderingKey: 'k', payload: { other: true } }));
          await raced;
        }
        return next(args);
      },
      { step: 'initialize', name: 'raceOnce' },
    );
    try {
      const log = new DynamoEventLog(racing, table);

      const { event } = await log.append(newEvent(partnerId, { orderingKey: 'k' }));

      expect(raced).toBeDefined();
      expect(event.keySeq).toBe(2);
      // Its seq was taken first, so the log lists it first: across instances the key's order is
      // its keySeq, not the log's.
      const listed = (await log.list(partnerId, { limit: 10 })).items;
      expect(listed.map((e) => [e.payload, e.keySeq])).toEqual([
        [event.payload, 2],
        [{ other: true }, 1],
      ]);
    } finally {
      racing.destroy();
    }
  });

  it('gives up with a 503 when other appends of the key keep moving its counter first, and leaves no place unfilled', async () => {
    const partnerId = id('ptr');
    let moved = 0;
    const racing = localDocumentClient();
    racing.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'TransactWriteItemsCommand') {
          moved++;
          await admin.send(
            new UpdateCommand({
              TableName: table,
              Key: keyCounterKey(partnerId, 'k'),
              UpdateExpression: 'ADD #keySeq :one',
              ExpressionAttributeNames: { '#keySeq': 'keySeq' },
              ExpressionAttributeValues: { ':one': 1 },
            }),
          );
        }
        return next(args);
      },
      { step: 'initialize', name: 'alwaysFirst' },
    );
    try {
      const log = new DynamoEventLog(racing, table);

      await expect(log.append(newEvent(partnerId, { orderingKey: 'k' }))).rejects.toBeInstanceOf(
        OrderingKeyBusyError,
      );
      expect(moved).toBeGreaterThan(1);
      // Its place is a hole: a poller passes it at once, and the next append comes after it.
      const { event } = await log.append(newEvent(partnerId));
      expect(seqInId(partnerId, event.id)).toBe(2);
      expect(await log.list(partnerId, { limit: 10 })).toEqual({ items: [event], next: event.id });
    } finally {
      racing.destroy();
    }
  });

  it('places the appends of a batch in the order they were made, with one counter update', async () => {
    const partnerId = id('ptr');
    const updates: string[] = [];
    const counting = localDocumentClient();
    counting.middlewareStack.add(
      (next, context) => async (args) => {
        if (String(context.commandName).startsWith('Update')) updates.push(String(context.commandName));
        return next(args);
      },
      { step: 'initialize', name: 'countUpdates' },
    );
    try {
      const log = new DynamoEventLog(counting, table);
      const drafts = Array.from({ length: 100 }, (_, i) => newEvent(partnerId, { payload: { i } }));

      const results = await Promise.all(drafts.map((draft) => log.append(draft)));

      expect(updates).toHaveLength(1);
      const page = await log.list(partnerId, { limit: 100 });
      expect(page.items.map((e) => e.payload)).toEqual(drafts.map((draft) => draft.payload));
      expect(page.items.map((e) => e.id)).toEqual(results.map((r) => r.event.id));
    } finally {
      counting.destroy();
    }
  });
});

describe('DynamoDeliveryStore under concurrent fan-outs', () => {
  let table: string;

  beforeEach(async () => {
    table = await createTable(admin, DELIVERIES_TABLE, uniquePrefix('concurrency'));
  });

  afterEach(async () => {
    await deleteTables(admin, [table]);
  });

  it('creates one delivery per (event, subscription) pair when fan-outs of one event race', async () => {
    const event = makeEvent(id('ptr'));
    const subscriptionIds = [id('sub'), id('sub'), id('sub')];

    // Every racer mints its own delivery ids for the same pairs, as retried fan-outs do.
    const results = await Promise.all(
      Array.from({ length: WRITERS }, (_, i) =>
        new DynamoDeliveryStore(writer(i), table).createForEvent(
          subscriptionIds.map((subscriptionId) => makeDelivery(event, subscriptionId)),
        ),
      ),
    );

    const first = results[0] ?? [];
    expect(first.map((d) => d.subscriptionId)).toEqual(subscriptionIds);
    for (const result of results) expect(result).toEqual(first);
    const store = new DynamoDeliveryStore(admin, table);
    for (const subscriptionId of subscriptionIds) {
      expect((await store.listBySubscription(subscriptionId, { limit: 10 })).items).toHaveLength(1);
    }
  });
});

describe('DynamoSubscriptionStore under concurrent creates and deletes', () => {
  let table: string;

  beforeEach(async () => {
    table = await createTable(admin, SUBSCRIPTIONS_TABLE, uniquePrefix('concurrency'));
  });

  afterEach(async () => {
    await deleteTables(admin, [table]);
  });

  /** Creates as an API client would: told to try again (503), it does. */
  async function createAsClient(
    store: DynamoSubscriptionStore,
    subscription: Subscription,
  ): Promise<boolean> {
    for (;;) {
      try {
        await store.create(subscription, { maxPerPartner: MAX_SUBSCRIPTIONS_PER_PARTNER });
        return true;
      } catch (error) {
        if (error instanceof SubscriptionLimitError) return false;
        if (!(error instanceof ServiceUnavailableError)) throw error;
        await sleep(Math.random() * 20);
      }
    }
  }

  async function stored(partnerId: string): Promise<number> {
    const page = await new DynamoSubscriptionStore(admin, table, testCipher()).list(partnerId, {
      limit: 500,
    });
    return page.items.length;
  }

  it('admits exactly the cap when instances create at once', async () => {
    const partnerId = id('ptr');
    const attempts = MAX_SUBSCRIPTIONS_PER_PARTNER + 20;

    const results = await Promise.all(
      Array.from({ length: attempts }, (_, i) =>
        createAsClient(
          new DynamoSubscriptionStore(writer(i), table, testCipher()),
          makeSubscription(partnerId),
        ),
      ),
    );

    expect(results.filter(Boolean)).toHaveLength(MAX_SUBSCRIPTIONS_PER_PARTNER);
    expect(await stored(partnerId)).toBe(MAX_SUBSCRIPTIONS_PER_PARTNER);
  });

  it('keeps the count exact while deletes and creates race at the cap', async () => {
    const partnerId = id('ptr');
    const seed = new DynamoSubscriptionStore(admin, table, testCipher());
    const existing = Array.from({ length: MAX_SUBSCRIPTIONS_PER_PARTNER }, () => makeSubscription(partnerId));
    for (const subscription of existing) {
      await seed.create(subscription, { maxPerPartner: MAX_SUBSCRIPTIONS_PER_PARTNER });
    }

    const [deleted, created] = await Promise.all([
      Promise.all(
        existing
          .slice(0, 10)
          .map((s, i) => new DynamoSubscriptionStore(writer(i), table, testCipher()).delete(s.id)),
      ),
      Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          createAsClient(
            new DynamoSubscriptionStore(writer(i + 1), table, testCipher()),
            makeSubscription(partnerId),
          ),
        ),
      ),
    ]);

    expect(deleted.every(Boolean)).toBe(true);
    const admitted = created.filter(Boolean).length;
    expect(admitted).toBeLessThanOrEqual(10);
    expect(await stored(partnerId)).toBe(MAX_SUBSCRIPTIONS_PER_PARTNER - 10 + admitted);
    // The counter agrees with what is stored: the free places can be taken, and no more.
    const refill = await Promise.all(
      Array.from({ length: 10 - admitted + 3 }, (_, i) =>
        createAsClient(
          new DynamoSubscriptionStore(writer(i), table, testCipher()),
          makeSubscription(partnerId),
        ),
      ),
    );
    expect(refill.filter(Boolean)).toHaveLength(10 - admitted);
    expect(await stored(partnerId)).toBe(MAX_SUBSCRIPTIONS_PER_PARTNER);
  });

  it('counts the subscriptions a partner had before it was counted', async () => {
    const partnerId = id('ptr');
    // Items as an earlier version wrote them: no counter item.
    for (let i = 0; i < MAX_SUBSCRIPTIONS_PER_PARTNER - 1; i++) {
      await admin.send(
        new PutCommand({ TableName: table, Item: { ...makeSubscription(partnerId), kind: 'subscription' } }),
      );
    }
    const store = new DynamoSubscriptionStore(admin, table, testCipher());

    await store.create(makeSubscription(partnerId), { maxPerPartner: MAX_SUBSCRIPTIONS_PER_PARTNER });

    await expect(
      store.create(makeSubscription(partnerId), { maxPerPartner: MAX_SUBSCRIPTIONS_PER_PARTNER }),
    ).rejects.toThrow(SubscriptionLimitError);
  });

  it('starts the counter of a partner from before counting when it deletes, so the count stays exact', async () => {
    const partnerId = id('ptr');
    const old = Array.from({ length: MAX_SUBSCRIPTIONS_PER_PARTNER }, () => makeSubscription(partnerId));
    for (const subscription of old) {
      await admin.send(new PutCommand({ TableName: table, Item: { ...subscription, kind: 'subscription' } }));
    }
    const store = new DynamoSubscriptionStore(admin, table, testCipher());

    expect(await store.delete(old[0]?.id ?? '')).toBe(true);

    // The delete itself started the counter and lowered it, so no later count from the index
    // (eventually consistent, racing other writers) is needed.
    const counter = await admin.send(
      new GetCommand({ TableName: table, Key: { id: `COUNT#${partnerId}` }, ConsistentRead: true }),
    );
    expect(counter.Item?.subscriptionCount).toBe(MAX_SUBSCRIPTIONS_PER_PARTNER - 1);
    // 99 left: one place is free, and only one.
    await store.create(makeSubscription(partnerId), { maxPerPartner: MAX_SUBSCRIPTIONS_PER_PARTNER });
    await expect(
      store.create(makeSubscription(partnerId), { maxPerPartner: MAX_SUBSCRIPTIONS_PER_PARTNER }),
    ).rejects.toThrow(SubscriptionLimitError);
  });

  it('counts a rate-limited action exactly when instances take it at once', async () => {
    const subscription = makeSubscription(id('ptr'));
    await new DynamoSubscriptionStore(admin, table, testCipher()).put(subscription);
    const now = new Date();

    const results = await Promise.all(
      Array.from({ length: 25 }, (_, i) =>
        new DynamoSubscriptionStore(writer(i), table, testCipher()).takeAllowance(
          subscription.id,
          'test',
          { limit: 10, windowMs: 60_000 },
          now,
        ),
      ),
    );

    expect(results.filter((r) => r?.allowed)).toHaveLength(10);
  });
});

describe('one DynamoDB subscription changed by many instances at once', () => {
  let table: string;

  beforeEach(async () => {
    table = await createTable(admin, SUBSCRIPTIONS_TABLE, uniquePrefix('concurrency'));
  });

  afterEach(async () => {
    await deleteTables(admin, [table]);
  });

  it('writes every concurrent PATCH and rotation: no request is told of a conflict it did not cause', async () => {
    const now = new Date();
    const depsOf = (i: number) => ({
      subscriptions: new DynamoSubscriptionStore(writer(i), table, testCipher()),
      clock: { now: () => now },
    });
    const partnerId = id('ptr');
    const created = await createSubscription(
      { ...depsOf(0), resolver: { resolve: async () => ['93.184.216.34'] }, allowPrivateTargets: false },
      partnerId,
      { url: 'https://partner.example/hooks' },
    );
    const subscriptionId = created.subscription.id;

    const [patched, rotated] = await Promise.all([
      Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          updateSubscription(
            { ...depsOf(i), resolver: { resolve: async () => [] }, allowPrivateTargets: false },
            partnerId,
            subscriptionId,
            { description: `change ${i}` },
          ),
        ),
      ),
      Promise.all(
        Array.from({ length: 6 }, (_, i) => rotateSecret(depsOf(i + 12), partnerId, subscriptionId)),
      ),
    ]);

    expect(patched).toHaveLength(12);
    const stored = await depsOf(0).subscriptions.get(subscriptionId);
    expect(patched.map((p) => p.description)).toContain(stored?.description);
    const live = stored === undefined ? [] : signingSecrets(stored, now);
    expect(live).toEqual(expect.arrayContaining([created.secret, ...rotated.map((r) => r.secret)]));
  });
});
