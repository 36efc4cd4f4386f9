/**
 * The items the DynamoDB adapters write, checked against the shapes tables.ts documents: the
 * pipe's filter, the TTL and the indexes depend on them, and the contract suites (which only see
 * domain objects) cannot.
 */
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { DynamoDeliveryStore } from '../../functions/adapters/aws/deliveries.ts';
import { DynamoEventLog, EVENT_STRIPES } from '../../functions/adapters/aws/events.ts';
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
  it('writes the counter, the event on its stripe and its pointers spread by hash, all but the counter expiring retentionDays after the append', async () => {
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

    const items = await scan(name);
    expect(items).toHaveLength(4);
    expect(items).toEqual(
      expect.arrayContaining([
        {
          pk: `${event.partnerId}#E1`,
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
          writtenAt: now * 1000,
          expiresAt,
        },
        {
          pk: expect.stringMatching(new RegExp(`^${event.partnerId}#I[0-${EVENT_STRIPES - 1}]$`)),
          sk: `ID#${event.id}`,
          kind: 'eventId',
          seq: 1,
          expiresAt,
        },
        {
          pk: expect.stringMatching(new RegExp(`^${event.partnerId}#K[0-${EVENT_STRIPES - 1}]$`)),
          sk: 'IDEM#k-1',
          kind: 'idempotencyKey',
          eventId: event.id,
          claimedAt: now * 1000,
          expiresAt,
        },
        // The counter never expires: a partner's seq must not start over.
        { pk: event.partnerId, sk: 'SEQ', kind: 'counter', seq: 1 },
      ]),
    );
  });

  it('spreads one partner’s events over its stripes, seq by seq', async () => {
    const name = await table(EVENTS_TABLE);
    const log = new DynamoEventLog(client, name);
    const partnerId = id('ptr');
    for (let i = 0; i < 2 * EVENT_STRIPES; i++) await log.append(makeEvent(partnerId));

    const events = (await scan(name)).filter((item) => item.kind === 'event');
    expect(events.map((item) => [item.seq, item.pk])).toEqual(
      expect.arrayContaining(
        Array.from({ length: 2 * EVENT_STRIPES }, (_, i) => [
          i + 1,
          `${partnerId}#E${(i + 1) % EVENT_STRIPES}`,
        ]),
      ),
    );
  });

  it('fills the place a repeated idempotency key took with a hole, which polling passes over', async () => {
    const name = await table(EVENTS_TABLE);
    const log = new DynamoEventLog(client, name);
    const partnerId = id('ptr');
    const first = makeEvent(partnerId, { idempotencyKey: 'a' });
    await log.append(first);
    await log.append(makeEvent(partnerId, { idempotencyKey: 'a' }));
    const third = makeEvent(partnerId);
    await log.append(third);

    const places = (await scan(name))
      .filter((item) => String(item.sk).startsWith('E#'))
      .map((item) => [item.seq, item.kind])
      .toSorted();
    expect(places).toEqual([
      [1, 'event'],
      [2, 'hole'],
      [3, 'event'],
    ]);
    expect(await log.list(partnerId, { limit: 10 })).toEqual({ items: [first, third], next: third.id });
  });

  it('rejects an event id the partner’s log already holds, storing no second copy', async () => {
    const name = await table(EVENTS_TABLE);
    const log = new DynamoEventLog(client, name);
    const event = makeEvent(id('ptr'));
    await log.append(event);

    await expect(log.append({ ...event, idempotencyKey: 'new-key' })).rejects.toThrow(/already exists/);
    expect(await log.list(event.partnerId, { limit: 10 })).toEqual({ items: [event], next: event.id });
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
  it('writes the delivery under the id of its pair with its index keys and its first attempt, later attempts under the delivery, all expiring retentionDays after their writing, and nothing else', async () => {
    const name = await table(DELIVERIES_TABLE);
    const now = Math.floor(Date.now() / 1000);
    const store = new DynamoDeliveryStore(client, name, {
      clock: new ManualClock(new Date(now * 1000)),
      retentionDays: 7,
    });
    const expiresAt = now + 7 * 86_400;
    const delivery = makeDelivery(makeEvent(id('ptr')), id('sub'));
    const first = makeAttempt(delivery, { number: 12, statusCode: 500, error: 'http_status' });
    const second = makeAttempt(delivery, { number: 13 });

    await store.createForEvent([delivery]);
    await store.recordAttempt(first, { ...delivery, status: 'failed', attempts: 12 });
    await store.recordAttempt(second, { ...delivery, status: 'succeeded', attempts: 13 });

    expect(delivery.id).toBe(fanoutDeliveryId(delivery.eventId, delivery.subscriptionId));
    // The first attempt is kept without the ids its delivery already carries.
    const { deliveryId: _d, subscriptionId: _s, partnerId: _p, ...firstAttempt } = first;
    expect(await scan(name)).toEqual([
      {
        pk: `DLV#${delivery.id}`,
        sk: `ATTEMPT#000013#${second.id}`,
        kind: 'attempt',
        ...second,
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
        attempts: 13,
        firstAttempt,
        expiresAt,
      },
    ]);
    expect(await store.listAttempts(delivery.id)).toEqual([first, second]);
  });

  it('refuses a fan-out delivery whose id is not its pair’s, so no pair can have two', async () => {
    const store = new DynamoDeliveryStore(client, await table(DELIVERIES_TABLE));
    const delivery = makeDelivery(makeEvent(id('ptr')), id('sub'), { id: id('dlv') });

    await expect(store.createForEvent([delivery])).rejects.toThrow(/does not have the id of its pair/);
    expect(await store.get(delivery.id)).toBeUndefined();
  });
});
