/**
 * The items the DynamoDB adapters write, checked against the shapes tables.ts documents: the
 * pipe's filter, the TTL and the indexes depend on them, and the contract suites (which only see
 * domain objects) cannot.
 */
import { DeleteCommand, PutCommand, ScanCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { DynamoDeliveryStore } from '../../functions/adapters/aws/deliveries.ts';
import {
  DynamoEventLog,
  EVENT_STRIPES,
  eventIdAt,
  keyCounterKey,
  pointerKey,
  seqInId,
  waitPauses,
} from '../../functions/adapters/aws/events.ts';
import { DynamoOrderedLines } from '../../functions/adapters/aws/ordered-lines.ts';
import { DynamoPartnerStore } from '../../functions/adapters/aws/partners.ts';
import { DELIVERIES_TABLE, EVENTS_TABLE, PARTNERS_TABLE } from '../../functions/adapters/aws/tables.ts';
import { CursorNotFoundError } from '../../functions/core/errors.ts';
import { eventTag, fanoutDeliveryId } from '../../functions/core/fanout.ts';
import { apiKeyIdOf } from '../../functions/core/partners.ts';
import { localDocumentClient, tablesPerTest } from '../dynamodb-local/tables.ts';
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
} from './fixtures.ts';

const { client, table } = tablesPerTest('items');

async function scan(tableName: string): Promise<Record<string, unknown>[]> {
  const result = await client.send(new ScanCommand({ TableName: tableName, ConsistentRead: true }));
  return (result.Items ?? []).toSorted((a, b) => `${a.pk}${a.sk}`.localeCompare(`${b.pk}${b.sk}`));
}

describe('DynamoEventLog items', () => {
  it('writes the counter, the event on its stripe under an id that says its seq, and its key claim spread by hash, all but the counter expiring retentionDays after the append', async () => {
    const name = await table(EVENTS_TABLE);
    // Now, to the second: a clock in the past would have DynamoDB Local's TTL delete the items.
    const now = Math.floor(Date.now() / 1000);
    const log = new DynamoEventLog(client, name, {
      clock: new ManualClock(new Date(now * 1000)),
      retentionDays: 7,
    });
    const draft = newEvent(id('ptr'), { idempotencyKey: 'k-1', payload: { big: 2 ** 60, nested: [null] } });
    const expiresAt = now + 7 * 86_400;

    const { event } = await log.append(draft);

    expect(event.id).toBe(eventIdAt(draft.partnerId, 1, Date.parse(draft.createdAt)));
    expect(seqInId(draft.partnerId, event.id)).toBe(1);
    const items = await scan(name);
    expect(items).toHaveLength(3);
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
          // On every event item, empty without an ordering key: the pipe's template copies it.
          ordering: '',
          writtenAt: now * 1000,
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

  it('writes a keyed event with its key, its place and their text, and the key’s counter, which never expires and has no kind', async () => {
    const name = await table(EVENTS_TABLE);
    const now = Math.floor(Date.now() / 1000);
    const log = new DynamoEventLog(client, name, {
      clock: new ManualClock(new Date(now * 1000)),
      retentionDays: 7,
    });
    const partnerId = id('ptr');
    const key = 'order#1/line:2';

    const { event: first } = await log.append(newEvent(partnerId, { orderingKey: key }));
    const { event: second } = await log.append(newEvent(partnerId, { orderingKey: key }));

    expect([first.keySeq, second.keySeq]).toEqual([1, 2]);
    const items = await scan(name);
    // Two events, the partner's counter and the key's.
    expect(items).toHaveLength(4);
    expect(items).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          sk: 'E#000000000000002',
          kind: 'event',
          id: second.id,
          orderingKey: key,
          keySeq: 2,
          ordering: `2/${key}`,
          expiresAt: now + 7 * 86_400,
        }),
        {
          pk: expect.stringMatching(new RegExp(`^${partnerId}#O[0-${EVENT_STRIPES - 1}]$`)),
          sk: `OKEY#${key}`,
          keySeq: 2,
        },
      ]),
    );
    expect(items.find((item) => item.sk === `OKEY#${key}`)?.pk).toBe(keyCounterKey(partnerId, key).pk);
  });

  it('spreads the counters of a partner’s keys by a hash of the key', async () => {
    const name = await table(EVENTS_TABLE);
    const log = new DynamoEventLog(client, name);
    const partnerId = id('ptr');
    const keys = Array.from({ length: 16 }, (_, i) => `key-${i}`);

    for (const orderingKey of keys) await log.append(newEvent(partnerId, { orderingKey }));

    const counters = (await scan(name)).filter((item) => String(item.sk).startsWith('OKEY#'));
    expect(counters).toHaveLength(keys.length);
    expect(new Set(counters.map((item) => item.pk)).size).toBeGreaterThan(1);
    for (const counter of counters) {
      expect(counter.pk).toBe(keyCounterKey(partnerId, String(counter.sk).slice('OKEY#'.length)).pk);
    }
  });

  it('spreads one partner’s events over its stripes, seq by seq', async () => {
    const name = await table(EVENTS_TABLE);
    const log = new DynamoEventLog(client, name);
    const partnerId = id('ptr');
    for (let i = 0; i < 2 * EVENT_STRIPES; i++) await log.append(newEvent(partnerId));

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
    const { event: first } = await log.append(newEvent(partnerId, { idempotencyKey: 'a' }));
    await log.append(newEvent(partnerId, { idempotencyKey: 'a' }));
    const { event: third } = await log.append(newEvent(partnerId));

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

  it('moves the cursor past a hole at the end of the log, so a long poll from it waits rather than reads again', async () => {
    const name = await table(EVENTS_TABLE);
    const partnerId = id('ptr');
    const reads: string[] = [];
    const counting = localDocumentClient();
    counting.middlewareStack.add(
      (next, context) => async (args) => {
        reads.push(String(context.commandName));
        return next(args);
      },
      { step: 'initialize', name: 'countCommands' },
    );
    const log = new DynamoEventLog(counting, name);
    const { event: first } = await log.append(newEvent(partnerId, { idempotencyKey: 'a' }));
    await log.append(newEvent(partnerId, { idempotencyKey: 'a' })); // its place becomes a hole

    const page = await log.list(partnerId, { limit: 10, after: first.id });
    expect(page.items).toEqual([]);
    expect(seqInId(partnerId, page.next ?? '')).toBe(2);
    reads.length = 0;
    await log.waitForEvents(partnerId, { after: page.next ?? '' }, 600);
    // Only the counter, once after each pause: nothing came after the hole.
    expect(reads).toEqual(waitPauses(600).map(() => 'GetItemCommand'));
    counting.destroy();
  });

  it('tells a reader whether the place after its cursor expired (TTL took it) or was never taken', async () => {
    const name = await table(EVENTS_TABLE);
    const log = new DynamoEventLog(client, name);
    const partnerId = id('ptr');
    const { event: first } = await log.append(newEvent(partnerId));
    expect(await log.resumeAfter(partnerId, first.id)).toEqual({ expired: false, after: first.id });
    const { event: second } = await log.append(newEvent(partnerId));
    await log.append(newEvent(partnerId));
    expect(await log.resumeAfter(partnerId, first.id)).toEqual({ expired: false, after: first.id });
    // TTL deletes the second event's place.
    await client.send(
      new DeleteCommand({
        TableName: name,
        Key: { pk: `${partnerId}#E2`, sk: `E#${'2'.padStart(15, '0')}` },
      }),
    );
    expect(await log.resumeAfter(partnerId, first.id)).toEqual({ expired: true });
    expect(await log.resumeAfter(partnerId, second.id)).toEqual({ expired: false, after: second.id });
  });

  it('reads an event stored before ids said their seq through its pointer, by id and as a cursor', async () => {
    const name = await table(EVENTS_TABLE);
    const log = new DynamoEventLog(client, name);
    const partnerId = id('ptr');
    // As an earlier version appended it: a plain ULID, and an ID# pointer to its seq.
    const old = makeEvent(partnerId);
    await client.send(
      new UpdateCommand({
        TableName: name,
        Key: { pk: partnerId, sk: 'SEQ' },
        UpdateExpression: 'SET seq = :one',
        ExpressionAttributeValues: { ':one': 1 },
      }),
    );
    await client.send(
      new PutCommand({
        TableName: name,
        Item: {
          pk: `${partnerId}#E1`,
          sk: 'E#000000000000001',
          kind: 'event',
          seq: 1,
          ...old,
          payload: JSON.stringify(old.payload),
          writtenAt: Date.now(),
        },
      }),
    );
    await client.send(
      new PutCommand({
        TableName: name,
        Item: { ...pointerKey(partnerId, old.id), kind: 'eventId', seq: 1 },
      }),
    );
    expect(seqInId(partnerId, old.id)).toBeUndefined();
    const { event: next } = await log.append(newEvent(partnerId));

    expect(seqInId(partnerId, next.id)).toBe(2);
    expect(await log.get(partnerId, old.id)).toEqual(old);
    expect(await log.list(partnerId, { limit: 10 })).toEqual({ items: [old, next], next: next.id });
    expect(await log.list(partnerId, { limit: 10, after: old.id })).toEqual({ items: [next], next: next.id });
  });

  it("finds nothing for an id made for another partner's seq, by id or as a cursor", async () => {
    const name = await table(EVENTS_TABLE);
    const log = new DynamoEventLog(client, name);
    const partnerId = id('ptr');
    const { event } = await log.append(newEvent(partnerId));
    const forged = eventIdAt(id('ptr'), 1, Date.parse(event.createdAt));

    expect(seqInId(partnerId, forged)).toBeUndefined();
    expect(await log.get(partnerId, forged)).toBeUndefined();
    await expect(log.list(partnerId, { limit: 10, after: forged })).rejects.toBeInstanceOf(
      CursorNotFoundError,
    );
  });
});

describe('DynamoPartnerStore items', () => {
  it("writes the partner with its keys' map, and the key's own item", async () => {
    const name = await table(PARTNERS_TABLE);
    const partner = makePartner();
    const key = makeApiKey(partner.id);

    await new DynamoPartnerStore(client, name).create(partner, key);

    expect(await scan(name)).toEqual([
      {
        pk: `KEY#${key.hash}`,
        kind: 'apiKey',
        partnerId: partner.id,
        keyId: key.id,
        name: key.name,
        prefix: key.prefix,
        createdAt: key.createdAt,
      },
      {
        pk: `PARTNER#${partner.id}`,
        kind: 'partner',
        ...partner,
        keys: { [key.id]: key.hash },
        keysVersion: 1,
      },
    ]);
  });

  it('stores nothing when the id is taken, even with a new key', async () => {
    const name = await table(PARTNERS_TABLE);
    const store = new DynamoPartnerStore(client, name);
    const partner = makePartner();
    await store.create(partner, makeApiKey(partner.id));
    const other = makeApiKey(partner.id);

    await expect(store.create(partner, other)).rejects.toThrow(/already exists/);
    expect(await store.findApiKey(other.hash)).toBeUndefined();
  });

  it('reads a partner stored with its one key before keys had records, and takes its keys over on a change', async () => {
    const name = await table(PARTNERS_TABLE);
    const store = new DynamoPartnerStore(client, name);
    const partner = makePartner();
    const hash = makeApiKey(partner.id).hash;
    // The layout of before: the partner with apiKeyHash, the key's item with its partner alone.
    await client.send(
      new PutCommand({
        TableName: name,
        Item: { pk: `PARTNER#${partner.id}`, kind: 'partner', ...partner, apiKeyHash: hash },
      }),
    );
    await client.send(
      new PutCommand({ TableName: name, Item: { pk: `KEY#${hash}`, kind: 'apiKey', partnerId: partner.id } }),
    );
    const legacy = {
      id: apiKeyIdOf(hash),
      partnerId: partner.id,
      hash,
      name: 'first key',
      prefix: 'dk_',
      createdAt: partner.createdAt,
    };

    expect(await store.findApiKey(hash)).toEqual(legacy);
    expect(await store.listApiKeys(partner.id)).toEqual([legacy]);
    expect(await store.removeApiKey(partner.id, legacy.id, { keepLast: true })).toBe('last');

    const added = makeApiKey(partner.id, {
      createdAt: new Date(Date.parse(partner.createdAt) + 1000).toISOString(),
    });
    expect(await store.addApiKey(added, { maxPerPartner: 2 })).toBe('done');
    expect(await store.addApiKey(makeApiKey(partner.id), { maxPerPartner: 2 })).toBe('limit');
    expect(await store.listApiKeys(partner.id)).toEqual([legacy, added]);

    expect(await store.removeApiKey(partner.id, legacy.id, { keepLast: true })).toBe('done');
    expect(await store.findApiKey(hash)).toBeUndefined();
    const item = (await scan(name)).find((i) => i.pk === `PARTNER#${partner.id}`);
    expect(item).toMatchObject({ keys: { [added.id]: added.hash }, keysVersion: 2 });
    expect(item).not.toHaveProperty('apiKeyHash');
  });
});

describe('DynamoEventLog filtered polling', () => {
  it('reads a bounded number of events per page, and moves the cursor past those it passed over', async () => {
    const name = await table(EVENTS_TABLE);
    const log = new DynamoEventLog(client, name, { maxExamined: 10 });
    const partnerId = id('ptr');
    const others = [];
    for (let i = 0; i < 25; i++)
      others.push((await log.append(newEvent(partnerId, { type: 'order.created' }))).event);
    const { event: rare } = await log.append(newEvent(partnerId, { type: 'invoice.paid' }));

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

describe('DynamoEventLog long polling', () => {
  it("wakes a wait when another instance appends the partner's next event, and then lists it", async () => {
    const name = await table(EVENTS_TABLE);
    const waiting = new DynamoEventLog(client, name);
    const writer = new DynamoEventLog(client, name);
    const partnerId = id('ptr');
    const { event: seen } = await writer.append(newEvent(partnerId));

    const wait = waiting.waitForEvents(partnerId, { after: seen.id }, 20_000);
    await writer.append(newEvent(id('ptr'))); // another partner's counter
    const { event } = await writer.append(newEvent(partnerId));
    await wait;
    expect((await waiting.list(partnerId, { limit: 10, after: seen.id })).items.map((e) => e.id)).toEqual([
      event.id,
    ]);
  });

  it('ends a wait with nothing appended when its time is up, and at once for a cursor that is not the partner’s', async () => {
    const name = await table(EVENTS_TABLE);
    const log = new DynamoEventLog(client, name);
    const partnerId = id('ptr');
    const { event } = await log.append(newEvent(partnerId));
    await log.waitForEvents(partnerId, { after: event.id }, 600);
    await log.waitForEvents(id('ptr'), { after: event.id }, 60_000);
    expect((await log.list(partnerId, { limit: 10, after: event.id })).items).toEqual([]);
  });
});

describe('DynamoDeliveryStore items', () => {
  it('writes the delivery under its event’s tag with its subscription index key and its first attempt, later attempts beside it, all expiring retentionDays after their writing, and nothing else', async () => {
    const name = await table(DELIVERIES_TABLE);
    const now = Math.floor(Date.now() / 1000);
    const store = new DynamoDeliveryStore(client, name, {
      clock: new ManualClock(new Date(now * 1000)),
      retentionDays: 7,
    });
    const expiresAt = now + 7 * 86_400;
    const delivery = makeDelivery(makeEvent(id('ptr')), id('sub'));
    const first = makeAttempt(delivery, { number: 1, statusCode: 500, error: 'http_status' });
    const second = makeAttempt(delivery, { number: 2 });

    await store.createForEvent([delivery]);
    await store.recordAttempt(first, { ...delivery, status: 'failed', attempts: 1 });
    await store.recordAttempt(second, { ...delivery, status: 'succeeded', attempts: 2 });

    expect(delivery.id).toBe(fanoutDeliveryId(delivery.eventId, delivery.subscriptionId));
    const tag = eventTag(delivery.eventId);
    expect(delivery.id.endsWith(tag)).toBe(true);
    // The first attempt is kept without the ids its delivery already carries.
    const { deliveryId: _d, subscriptionId: _s, partnerId: _p, ...firstAttempt } = first;
    expect((await scan(name)).toSorted((a, b) => String(a.sk).localeCompare(String(b.sk)))).toEqual([
      {
        pk: `EVD#${tag}`,
        sk: delivery.id,
        kind: 'delivery',
        gsiSubscriptionId: delivery.subscriptionId,
        ...delivery,
        status: 'succeeded',
        attempts: 2,
        firstAttempt,
        expiresAt,
      },
      {
        pk: `EVD#${tag}`,
        sk: `${delivery.id}#A#000002#${second.id}`,
        kind: 'attempt',
        ...second,
        expiresAt,
      },
    ]);
    expect(await store.listAttempts(delivery.id)).toEqual([first, second]);
  });

  it('reads, lists and updates a delivery stored before ids had a tag, in its layout, beside tagged ones', async () => {
    const name = await table(DELIVERIES_TABLE);
    const store = new DynamoDeliveryStore(client, name);
    const event = makeEvent(id('ptr'), { id: id('evt', Date.parse(at(0))) });
    const subscriptionId = id('sub');
    // As an earlier version stored it: a plain ULID, its own partition, both index keys.
    const old = makeDelivery(event, subscriptionId, {
      id: id('dlv', Date.parse(at(1))),
      origin: 'redelivery',
    });
    await client.send(
      new PutCommand({
        TableName: name,
        Item: {
          pk: `DLV#${old.id}`,
          sk: 'DELIVERY',
          kind: 'delivery',
          gsiSubscriptionId: subscriptionId,
          gsiEventId: event.id,
          ...old,
        },
      }),
    );
    const tagged = makeDelivery(event, subscriptionId);
    await store.createForEvent([tagged]);
    const attempt = makeAttempt(old, { number: 1, statusCode: 500 });

    await store.recordAttempt(attempt, { ...old, status: 'failed', attempts: 1 });

    expect(await store.get(old.id)).toEqual({ ...old, status: 'failed', attempts: 1 });
    expect(await store.listAttempts(old.id)).toEqual([attempt]);
    const byEvent = await store.listByEvent(event.partnerId, event.id, { limit: 1 });
    expect(byEvent.items.map((d) => d.id)).toEqual([old.id]);
    const rest = await store.listByEvent(event.partnerId, event.id, { limit: 1, after: byEvent.next ?? '' });
    expect(rest).toEqual({ items: [tagged], next: null });
    expect((await store.listBySubscription(subscriptionId, { limit: 10 })).items.map((d) => d.id)).toEqual([
      old.id,
      tagged.id,
    ]);
  });

  it('finds the delivery an event from before had under its id then, when the event is fanned out again', async () => {
    const name = await table(DELIVERIES_TABLE);
    const store = new DynamoDeliveryStore(client, name);
    // An event from before ids said their place (a plain ULID), fanned out then.
    const event = makeEvent(id('ptr'));
    const again = makeDelivery(event, id('sub'));
    const before = { ...again, id: again.id.slice(0, -6), status: 'succeeded' as const, attempts: 1 };
    await client.send(
      new PutCommand({
        TableName: name,
        Item: {
          pk: `DLV#${before.id}`,
          sk: 'DELIVERY',
          kind: 'delivery',
          gsiSubscriptionId: before.subscriptionId,
          gsiEventId: event.id,
          ...before,
        },
      }),
    );

    expect(await store.createForEvent([again])).toEqual([before]);
    expect(await store.get(again.id)).toBeUndefined();
    expect((await store.listByEvent(event.partnerId, event.id, { limit: 10 })).items).toEqual([before]);
  });

  it('lists an event’s deliveries without another event’s that shares its tag', async () => {
    const name = await table(DELIVERIES_TABLE);
    const store = new DynamoDeliveryStore(client, name);
    const event = makeEvent(id('ptr'));
    const mine = makeDelivery(event, id('sub'));
    await store.createForEvent([mine]);
    // Another event's delivery under the same tag (30 bits of a hash: one event in a billion).
    const other = makeDelivery(makeEvent(id('ptr')), id('sub'));
    const sharing = { ...other, id: `${other.id.slice(0, -6)}${eventTag(event.id)}` };
    await client.send(
      new PutCommand({
        TableName: name,
        Item: { pk: `EVD#${eventTag(event.id)}`, sk: sharing.id, kind: 'delivery', ...sharing },
      }),
    );

    expect(await store.listByEvent(event.partnerId, event.id, { limit: 10 })).toEqual({
      items: [mine],
      next: null,
    });
    expect(await store.get(sharing.id)).toEqual(sharing);
  });

  it('refuses a fan-out delivery whose id is not its pair’s, so no pair can have two', async () => {
    const store = new DynamoDeliveryStore(client, await table(DELIVERIES_TABLE));
    const delivery = makeDelivery(makeEvent(id('ptr')), id('sub'), { id: id('dlv') });

    await expect(store.createForEvent([delivery])).rejects.toThrow(/does not have the id of its pair/);
    expect(await store.get(delivery.id)).toBeUndefined();
  });
});

describe('DynamoOrderedLines items', () => {
  it('keeps the gate for good, and parked events, line entries and the head (with its try taken) until the deliveries expire, under the keys tables.ts names', async () => {
    const name = await table(DELIVERIES_TABLE);
    const now = Math.floor(Date.now() / 1000);
    const lines = new DynamoOrderedLines(client, name, {
      clock: new ManualClock(new Date(now * 1000)),
      retentionDays: 7,
    });
    const expiresAt = now + 7 * 86_400;
    const partnerId = id('ptr');
    const subscriptionId = id('sub');
    const key = 'a#b/c:d';
    const event = makeEvent(partnerId);
    const ref = {
      id: event.id,
      partnerId,
      type: event.type,
      createdAt: event.createdAt,
      orderingKey: key,
      keySeq: 12,
    };
    const entry = { seq: 11, deliveryId: id('dlv'), eventId: event.id, partnerId };

    await lines.advanceGate(partnerId, key, 0, 10);
    await lines.park(ref);
    await lines.append(subscriptionId, key, entry);
    await lines.claim(subscriptionId, key, entry);

    expect(await scan(name)).toEqual([
      { pk: `KEY#${partnerId}#${key}`, sk: 'GATE', fanned: 10 },
      { pk: `KEY#${partnerId}#${key}`, sk: 'P#000000000000012', ref: JSON.stringify(ref), expiresAt },
      { pk: `LINE#${subscriptionId}#${key}`, sk: 'E#000000000000011', ...entry, expiresAt },
      { pk: `LINE#${subscriptionId}#${key}`, sk: 'HEAD', ...entry, taken: 0, takenAt: 0, expiresAt },
    ]);
    expect(await lines.take(subscriptionId, key, 11, 1, new Date(now * 1000), 60_000)).toBe(true);
    expect(await scan(name)).toContainEqual({
      pk: `LINE#${subscriptionId}#${key}`,
      sk: 'HEAD',
      ...entry,
      taken: 1,
      takenAt: now * 1000,
      expiresAt,
    });

    await lines.finish(subscriptionId, key, 11);
    await lines.unpark(partnerId, key, 12);
    expect(await scan(name)).toEqual([{ pk: `KEY#${partnerId}#${key}`, sk: 'GATE', fanned: 10 }]);
  });
});
