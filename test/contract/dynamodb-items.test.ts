/**
 * The items the DynamoDB adapters write, checked against the shapes tables.ts documents: the
 * pipe's filter, the TTL and the indexes depend on them, and the contract suites (which only see
 * domain objects) cannot.
 */
import { QueryCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { DynamoDeliveryStore } from '../../functions/adapters/aws/deliveries.ts';
import { DynamoEventLog } from '../../functions/adapters/aws/events.ts';
import { DynamoPartnerStore } from '../../functions/adapters/aws/partners.ts';
import { DELIVERIES_TABLE, EVENTS_TABLE, PARTNERS_TABLE } from '../../functions/adapters/aws/tables.ts';
import { fanoutDeliveryId } from '../../functions/core/fanout.ts';
import { tablesPerTest } from '../dynamodb-local/tables.ts';
import { id, ManualClock, makeAttempt, makeDelivery, makeEvent, makePartner } from './fixtures.ts';

const { client, table } = tablesPerTest('items');

async function scan(tableName: string): Promise<Record<string, unknown>[]> {
  const result = await client.send(new ScanCommand({ TableName: tableName, ConsistentRead: true }));
  return (result.Items ?? []).toSorted((a, b) => `${a.pk}${a.sk}`.localeCompare(`${b.pk}${b.sk}`));
}

describe('DynamoEventLog items', () => {
  it('writes the counter, the event and its pointers, the latter expiring retentionDays after the append', async () => {
    const name = await table(EVENTS_TABLE);
    // Now, to the second: a clock in the past would have DynamoDB Local's TTL delete the items.
    const now = Math.floor(Date.now() / 1000);
    const log = new DynamoEventLog(client, name, {
      clock: new ManualClock(new Date(now * 1000)),
      retentionDays: 7,
    });
    const event = makeEvent(id('ptr'), { idempotencyKey: 'k-1', payload: { big: 2 ** 60, nested: [null] } });
    const expiresAt = now + 7 * 86_400;

    await log.append(event);

    expect(await scan(name)).toEqual([
      {
        pk: event.partnerId,
        sk: 'E#000000000000001',
        kind: 'event',
        seq: 1,
        id: event.id,
        partnerId: event.partnerId,
        type: event.type,
        // JSON text: DynamoDB numbers and maps would not give every JSON payload back unchanged.
        payload: JSON.stringify(event.payload),
        createdAt: event.createdAt,
        idempotencyKey: 'k-1',
        expiresAt,
      },
      { pk: event.partnerId, sk: `ID#${event.id}`, kind: 'eventId', seq: 1, expiresAt },
      { pk: event.partnerId, sk: 'IDEM#k-1', kind: 'idempotencyKey', eventId: event.id, expiresAt },
      // The counter never expires: a partner's seq must not start over.
      { pk: event.partnerId, sk: 'SEQ', kind: 'counter', seq: 1 },
    ]);
  });

  it('numbers a partner’s events 1, 2, 3… with no gap left by a repeated idempotency key', async () => {
    const name = await table(EVENTS_TABLE);
    const log = new DynamoEventLog(client, name);
    const partnerId = id('ptr');
    await log.append(makeEvent(partnerId, { idempotencyKey: 'a' }));
    await log.append(makeEvent(partnerId, { idempotencyKey: 'a' }));
    await log.append(makeEvent(partnerId));

    const result = await client.send(
      new QueryCommand({
        TableName: name,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :e)',
        ExpressionAttributeValues: { ':pk': partnerId, ':e': 'E#' },
      }),
    );
    expect(result.Items?.map((item) => item.seq)).toEqual([1, 2]);
  });

  it('rejects an event id the partner’s log already holds, writing nothing', async () => {
    const name = await table(EVENTS_TABLE);
    const log = new DynamoEventLog(client, name);
    const event = makeEvent(id('ptr'));
    await log.append(event);
    const before = await scan(name);

    await expect(log.append({ ...event, idempotencyKey: 'new-key' })).rejects.toThrow(/already exists/);
    expect(await scan(name)).toEqual(before);
  });
});

describe('DynamoPartnerStore items', () => {
  it('writes the partner and its API key pointer', async () => {
    const name = await table(PARTNERS_TABLE);
    const partner = makePartner();

    await new DynamoPartnerStore(client, name).create(partner, 'hash-1');

    expect(await scan(name)).toEqual([
      { pk: 'KEY#hash-1', kind: 'apiKey', partnerId: partner.id },
      { pk: `PARTNER#${partner.id}`, kind: 'partner', ...partner, apiKeyHash: 'hash-1' },
    ]);
  });

  it('stores nothing when the id is taken, even with a new key', async () => {
    const name = await table(PARTNERS_TABLE);
    const store = new DynamoPartnerStore(client, name);
    const partner = makePartner();
    await store.create(partner, 'hash-1');

    await expect(store.create(partner, 'hash-2')).rejects.toThrow(/already exists/);
    expect(await store.findByApiKeyHash('hash-2')).toBeUndefined();
  });
});

describe('DynamoEventLog filtered polling', () => {
  it('reads a bounded number of events per page, and moves the cursor past those it passed over', async () => {
    const name = await table(EVENTS_TABLE);
    const log = new DynamoEventLog(client, name, { maxExamined: 10 });
    const partnerId = id('ptr');
    const others = Array.from({ length: 25 }, () => makeEvent(partnerId, { type: 'order.created' }));
    const rare = makeEvent(partnerId, { type: 'invoice.paid' });
    for (const event of [...others, rare]) await log.append(event);

    // The rare type is 26th: each page reads about ten events, and the cursor follows them.
    const first = await log.list(partnerId, { limit: 5, types: ['invoice.paid'] });
    expect(first.items).toEqual([]);
    expect(first.next).toBe(others[9]?.id);
    const seen = [];
    let after = first.next ?? undefined;
    for (let i = 0; i < 5 && seen.length === 0; i++) {
      const page = await log.list(partnerId, {
        limit: 5,
        types: ['invoice.paid'],
        ...(after ? { after } : {}),
      });
      seen.push(...page.items);
      after = page.next ?? undefined;
    }
    expect(seen).toEqual([rare]);
    expect(after).toBe(rare.id);
  });
});

describe('DynamoDeliveryStore items', () => {
  it('writes the delivery under the id of its pair with its index keys, and attempts under the delivery, all expiring retentionDays after their writing, and nothing else', async () => {
    const name = await table(DELIVERIES_TABLE);
    const now = Math.floor(Date.now() / 1000);
    const store = new DynamoDeliveryStore(client, name, {
      clock: new ManualClock(new Date(now * 1000)),
      retentionDays: 7,
    });
    const expiresAt = now + 7 * 86_400;
    const delivery = makeDelivery(makeEvent(id('ptr')), id('sub'));
    const attempt = makeAttempt(delivery, { number: 12 });

    await store.createForEvent([delivery]);
    await store.recordAttempt(attempt, { ...delivery, status: 'succeeded', attempts: 12 });

    expect(delivery.id).toBe(fanoutDeliveryId(delivery.eventId, delivery.subscriptionId));
    expect(await scan(name)).toEqual([
      {
        pk: `DLV#${delivery.id}`,
        sk: `ATTEMPT#000012#${attempt.id}`,
        kind: 'attempt',
        ...attempt,
        expiresAt,
      },
      {
        pk: `DLV#${delivery.id}`,
        sk: 'DELIVERY',
        kind: 'delivery',
        gsiSubscriptionId: delivery.subscriptionId,
        gsiEventId: delivery.eventId,
        ...delivery,
        status: 'succeeded',
        attempts: 12,
        expiresAt,
      },
    ]);
  });

  it('refuses a fan-out delivery whose id is not its pair’s, so no pair can have two', async () => {
    const store = new DynamoDeliveryStore(client, await table(DELIVERIES_TABLE));
    const delivery = makeDelivery(makeEvent(id('ptr')), id('sub'), { id: id('dlv') });

    await expect(store.createForEvent([delivery])).rejects.toThrow(/does not have the id of its pair/);
    expect(await store.get(delivery.id)).toBeUndefined();
  });
});
