/**
 * What only concurrent writers show on DynamoDB: the seq counter's optimistic transaction keeps
 * commit order and a poller in step, and the conditional writes keep idempotency keys and
 * fan-out pairs unique. Writers use independent clients, as separate Lambda instances would.
 */

import { setTimeout as sleep } from 'node:timers/promises';
import { type DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DynamoDeliveryStore } from '../../functions/adapters/aws/deliveries.ts';
import { DynamoEventLog } from '../../functions/adapters/aws/events.ts';
import { DELIVERIES_TABLE, EVENTS_TABLE } from '../../functions/adapters/aws/tables.ts';
import { createTable, deleteTables, localDocumentClient, uniquePrefix } from '../dynamodb-local/tables.ts';
import { id, makeDelivery, makeEvent } from './fixtures.ts';

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

describe('DynamoEventLog under concurrent writers', () => {
  let table: string;

  beforeEach(async () => {
    table = await createTable(admin, EVENTS_TABLE, uniquePrefix('concurrency'));
  });

  afterEach(async () => {
    await deleteTables(admin, [table]);
  });

  /** The partner's events as stored, in seq order: what commit order was. */
  async function committed(partnerId: string): Promise<{ id: string; seq: number }[]> {
    const rows: { id: string; seq: number }[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await admin.send(
        new QueryCommand({
          TableName: table,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :e)',
          ExpressionAttributeValues: { ':pk': partnerId, ':e': 'E#' },
          ConsistentRead: true,
          ExclusiveStartKey: startKey,
        }),
      );
      for (const item of page.Items ?? []) rows.push({ id: String(item.id), seq: Number(item.seq) });
      startKey = page.LastEvaluatedKey;
    } while (startKey !== undefined);
    return rows;
  }

  it('lets a poller following next see every event exactly once, in commit order', async () => {
    const partnerId = id('ptr');
    const poller = new DynamoEventLog(admin, table);

    let writersDone = false;
    const writes = Promise.all(
      Array.from({ length: APPENDS }, (_, i) =>
        new DynamoEventLog(writer(i), table).append(
          // Each id minted up to 50 ms in the past, as by a slow writer: commit order is not id order.
          makeEvent(partnerId, {
            id: id('evt', Date.now() - Math.floor(Math.random() * 50)),
            type: 'load.test',
            payload: { i },
          }),
        ),
      ),
    ).finally(() => {
      writersDone = true;
    });

    const seen: string[] = [];
    let after: string | undefined;
    let pagesWhileWriting = 0;
    for (;;) {
      const done = writersDone;
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

    const stored = await committed(partnerId);
    expect(results.every((r) => r.created)).toBe(true);
    expect(stored.map((row) => row.seq)).toEqual(Array.from({ length: APPENDS }, (_, i) => i + 1));
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual(stored.map((row) => row.id));
    // The hazard was really there: the poller read while writers committed, and commit order
    // is not id order.
    expect(pagesWhileWriting).toBeGreaterThan(0);
    expect(seen).not.toEqual(seen.toSorted());
  });

  it('stores one event for concurrent appends with the same idempotency key', async () => {
    const partnerId = id('ptr');
    const attempts = Array.from({ length: 10 }, () =>
      makeEvent(partnerId, { idempotencyKey: 'order-42', payload: { n: Math.random() } }),
    );

    const results = await Promise.all(
      attempts.map((event, i) => new DynamoEventLog(writer(i), table).append(event)),
    );

    const winners = results.filter((r) => r.created);
    expect(winners).toHaveLength(1);
    for (const result of results) expect(result.event).toEqual(winners[0]?.event);
    expect(await committed(partnerId)).toEqual([{ id: winners[0]?.event.id, seq: 1 }]);
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
