/**
 * The AWS path from an append to a queued delivery, on DynamoDB Local with the strings the
 * stack deploys: DynamoEventLog writes the events table, its real stream records go through
 * the pipe's filter and transformation (pipe.ts, via pipe-transform.ts) into the fan-out
 * queue's messages, and the fan-out handler runs on the Dynamo stores.
 */
import { DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import {
  type _Record,
  DescribeStreamCommand,
  DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
} from '@aws-sdk/client-dynamodb-streams';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoDeliveryStore } from '../../functions/adapters/aws/deliveries.ts';
import { DynamoEventLog } from '../../functions/adapters/aws/events.ts';
import { DynamoOrderedLines } from '../../functions/adapters/aws/ordered-lines.ts';
import { DynamoSubscriptionStore } from '../../functions/adapters/aws/subscriptions.ts';
import { type DeliverDeps, deliver } from '../../functions/core/delivery.ts';
import { fanOutEvent, fanoutDeliveryId } from '../../functions/core/fanout.ts';
import type { DeliveryMessage, EventRef } from '../../functions/core/model.ts';
import type { OutgoingMessage, QueueSender } from '../../functions/core/ports.ts';
import { createFanoutHandler } from '../../functions/fanout/handler.ts';
import { lambdaContext } from '../../local/lambda-context.ts';
import { id, ManualClock, makeEvent, makeSubscription, newEvent } from '../contract/fixtures.ts';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../dynamodb-local/server.ts';
import {
  createTables,
  deleteTables,
  localDocumentClient,
  localEndpoint,
  type TableNames,
  uniquePrefix,
} from '../dynamodb-local/tables.ts';
import { testCipher } from '../support/cipher.ts';
import { applyPipeTransform, pipeAccepts, pipeMessageBody } from './pipe-transform.ts';

class RecordingQueue<T> implements QueueSender<T> {
  readonly sent: OutgoingMessage<T>[] = [];

  async send(messages: OutgoingMessage<T>[]): Promise<void> {
    this.sent.push(...messages);
  }
}

/**
 * A record as Pipes (and Lambda) receive it. The SDK hands back `ApproximateCreationDateTime`
 * as a Date where the event source sends epoch seconds; the images are already attribute-value
 * JSON ({ "S": "…" }), which a JSON round trip keeps as it is.
 */
function asPipeRecord(record: _Record, streamArn: string): unknown {
  const plain: unknown = JSON.parse(JSON.stringify(record));
  if (typeof plain !== 'object' || plain === null) throw new Error('stream record is not an object');
  const dynamodb: unknown = Reflect.get(plain, 'dynamodb');
  const created = record.dynamodb?.ApproximateCreationDateTime;
  return {
    ...plain,
    eventSourceARN: streamArn,
    dynamodb: {
      ...(typeof dynamodb === 'object' && dynamodb !== null ? dynamodb : {}),
      ...(created === undefined ? {} : { ApproximateCreationDateTime: Math.floor(created.getTime() / 1000) }),
    },
  };
}

/** An SQS record of the fan-out queue: the pipe's body as it rendered it, or an EventRef as sent. */
function sqsRecord(body: EventRef | string, queueArn: string): SQSRecord {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const name = typeof body === 'string' ? String(Reflect.get(JSON.parse(body), 'id')) : body.id;
  return {
    messageId: `message-${name}`,
    receiptHandle: `handle-${name}`,
    body: text,
    attributes: {
      ApproximateReceiveCount: '1',
      SentTimestamp: String(Date.now()),
      SenderId: 'pipes.amazonaws.com',
      ApproximateFirstReceiveTimestamp: String(Date.now()),
    },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: queueArn,
    awsRegion: LOCAL_REGION,
  };
}

describe('events table stream → pipe → fan-out queue → fan-out', () => {
  let client: DynamoDBDocumentClient;
  let streams: DynamoDBStreamsClient;
  let tables: TableNames;

  beforeAll(async () => {
    client = localDocumentClient();
    streams = new DynamoDBStreamsClient({
      endpoint: localEndpoint(),
      region: LOCAL_REGION,
      credentials: LOCAL_CREDENTIALS,
    });
    tables = await createTables(client, uniquePrefix('stream-to-fanout'));
  });

  afterAll(async () => {
    await deleteTables(client, Object.values(tables));
    client.destroy();
    streams.destroy();
  });

  /**
   * Every record of the table's stream so far (those `wanted` picks), from the start of each
   * shard, once at least `expected` of them are there.
   */
  async function streamRecords(
    expected: number,
    wanted: (record: _Record) => boolean = () => true,
  ): Promise<{ records: _Record[]; streamArn: string }> {
    const table = await client.send(new DescribeTableCommand({ TableName: tables.events }));
    const streamArn = table.Table?.LatestStreamArn;
    if (streamArn === undefined) throw new Error(`table ${tables.events} has no stream`);
    const records: _Record[] = [];
    // Records reach the stream asynchronously; read again a few times until all are there.
    for (let round = 0; round < 20 && records.length < expected; round++) {
      records.length = 0;
      const stream = await streams.send(new DescribeStreamCommand({ StreamArn: streamArn }));
      for (const shard of stream.StreamDescription?.Shards ?? []) {
        const start = await streams.send(
          new GetShardIteratorCommand({
            StreamArn: streamArn,
            ShardId: shard.ShardId,
            ShardIteratorType: 'TRIM_HORIZON',
          }),
        );
        let iterator = start.ShardIterator;
        // An open shard always returns a next iterator: stop at the first empty read.
        while (iterator !== undefined) {
          const page = await streams.send(new GetRecordsCommand({ ShardIterator: iterator }));
          const batch = page.Records ?? [];
          records.push(...batch.filter(wanted));
          iterator = batch.length > 0 ? page.NextShardIterator : undefined;
        }
      }
      if (records.length < expected) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return { records, streamArn };
  }

  it('turns an appended event into one delivery queued for the subscription that wants it', async () => {
    // The log on the system clock: its items expire 30 days from now, and DynamoDB Local's TTL
    // really deletes expired items (REMOVE records in the stream).
    const events = new DynamoEventLog(client, tables.events);
    const clock = new ManualClock();
    const subscriptions = new DynamoSubscriptionStore(client, tables.subscriptions, testCipher());
    const deliveries = new DynamoDeliveryStore(client, tables.deliveries);
    const partnerId = id('ptr');
    const subscription = makeSubscription(partnerId, { eventTypes: ['order.*'] });
    await subscriptions.put(subscription);

    const { event: wanted } = await events.append(
      newEvent(partnerId, { type: 'order.created', idempotencyKey: 'order-1' }),
    );
    // A second event, which the subscription does not want: it reaches the fan-out too (the
    // second append also modifies the counter), but creates no delivery.
    const { event: unwanted } = await events.append(newEvent(partnerId, { type: 'invoice.paid' }));

    // Inserts: counter, 2 events, 1 IDEM# item; then the counter's modify.
    const { records, streamArn } = await streamRecords(5);
    const sortKey = (record: _Record) => record.dynamodb?.Keys?.sk?.S;
    expect(records.map((r) => `${r.eventName} ${sortKey(r)}`).sort()).toEqual(
      [
        'INSERT SEQ',
        'MODIFY SEQ',
        'INSERT E#000000000000001',
        'INSERT E#000000000000002',
        'INSERT IDEM#order-1',
      ].sort(),
    );
    const passed = records.filter((record) => pipeAccepts(asPipeRecord(record, streamArn)));
    expect(passed.map(sortKey)).toEqual(['E#000000000000001', 'E#000000000000002']);

    // Each message the pipe sends is the EventRef the local router sends too.
    const messages = passed.map((record) => applyPipeTransform(asPipeRecord(record, streamArn)));
    expect(messages).toEqual(
      [wanted, unwanted].map((event) => ({
        id: event.id,
        partnerId,
        type: event.type,
        createdAt: event.createdAt,
      })),
    );

    const deliveryQueue = new RecordingQueue<DeliveryMessage>();
    const logged: unknown[] = [];
    const handler = createFanoutHandler(
      {
        subscriptions,
        events,
        deliveries,
        deliveryQueue,
        clock,
        lines: new DynamoOrderedLines(client, tables.deliveries),
        fanoutQueue: new RecordingQueue<EventRef>(),
      },
      (_message, error) => logged.push(error),
    );
    const batch: SQSEvent = {
      Records: passed.map((record) =>
        sqsRecord(pipeMessageBody(asPipeRecord(record, streamArn)), 'arn:aws:sqs:local:000000000000:fanout'),
      ),
    };
    const response = await handler(batch, lambdaContext('fanout'));

    expect(logged).toEqual([]);
    expect(response).toEqual({ batchItemFailures: [] });
    const created = await deliveries.listBySubscription(subscription.id, { limit: 10 });
    expect(created.items).toHaveLength(1);
    const delivery = created.items[0];
    expect(delivery).toMatchObject({
      eventId: wanted.id,
      subscriptionId: subscription.id,
      partnerId,
      eventType: 'order.created',
      status: 'pending',
      attempts: 0,
    });
    expect(delivery?.id).toBe(fanoutDeliveryId(wanted.id, subscription.id));
    expect(deliveryQueue.sent).toEqual([
      {
        body: {
          deliveryId: delivery?.id,
          eventId: wanted.id,
          subscriptionId: subscription.id,
          partnerId,
          attempt: 1,
          step: 0,
        },
        groupId: subscription.id,
      },
    ]);
  });

  it('fans out a bus event left in the queue by a deployment that routed through a bus', async () => {
    const subscriptions = new DynamoSubscriptionStore(client, tables.subscriptions, testCipher());
    const deliveries = new DynamoDeliveryStore(client, tables.deliveries);
    const partnerId = id('ptr');
    const subscription = makeSubscription(partnerId, { eventTypes: [] });
    await subscriptions.put(subscription);
    const event = makeEvent(partnerId);
    const ref = { id: event.id, partnerId, type: event.type, createdAt: event.createdAt };
    const envelope = { version: '0', id: 'bus-1', 'detail-type': event.type, source: 'x', detail: ref };
    const record = {
      ...sqsRecord(ref, 'arn:aws:sqs:local:000000000000:fanout'),
      body: JSON.stringify(envelope),
    };
    const deliveryQueue = new RecordingQueue<DeliveryMessage>();
    const handler = createFanoutHandler({
      subscriptions,
      events: new DynamoEventLog(client, tables.events),
      deliveries,
      deliveryQueue,
      clock: new ManualClock(),
      lines: new DynamoOrderedLines(client, tables.deliveries),
      fanoutQueue: new RecordingQueue<EventRef>(),
    });

    expect(await handler({ Records: [record] }, lambdaContext('fanout'))).toEqual({ batchItemFailures: [] });
    expect(deliveryQueue.sent.map((m) => m.body.deliveryId)).toEqual([
      fanoutDeliveryId(event.id, subscription.id),
    ]);
  });

  it('leaves a main-lane delivery to its first try to store, and stores a slow-lane one at once, as deployed', async () => {
    const events = new DynamoEventLog(client, tables.events);
    const subscriptions = new DynamoSubscriptionStore(client, tables.subscriptions, testCipher());
    const deliveries = new DynamoDeliveryStore(client, tables.deliveries);
    const clock = new ManualClock(new Date());
    const partnerId = id('ptr');
    const healthy = makeSubscription(partnerId, { eventTypes: [] });
    const failing = makeSubscription(partnerId, { eventTypes: [], failingSince: clock.now().toISOString() });
    for (const subscription of [healthy, failing]) await subscriptions.put(subscription);
    const { event } = await events.append(newEvent(partnerId));
    const deliveryQueue = new RecordingQueue<DeliveryMessage>();

    const lines = new DynamoOrderedLines(client, tables.deliveries);
    const queued = await fanOutEvent(
      {
        subscriptions,
        events,
        deliveries,
        deliveryQueue,
        clock,
        storeAtFirstTry: true,
        lines,
        fanoutQueue: new RecordingQueue<EventRef>(),
      },
      { id: event.id, partnerId, type: event.type, createdAt: event.createdAt },
    );

    expect(queued).toBe(2);
    const toHealthy = deliveryQueue.sent.find((m) => m.body.subscriptionId === healthy.id)?.body;
    const toFailing = deliveryQueue.sent.find((m) => m.body.subscriptionId === failing.id)?.body;
    expect(toHealthy).toMatchObject({
      unstored: { createdAt: clock.now().toISOString(), eventType: event.type },
    });
    expect(toHealthy?.lane).toBeUndefined();
    expect(toFailing).toMatchObject({ lane: 'slow' });
    expect(toFailing).not.toHaveProperty('unstored');
    expect(await deliveries.get(toHealthy?.deliveryId ?? '')).toBeUndefined();
    expect(await deliveries.get(toFailing?.deliveryId ?? '')).toMatchObject({ status: 'pending' });

    // The dispatcher's first try stores the healthy subscription's delivery, with the try.
    const requests: string[] = [];
    const deps: DeliverDeps = {
      events,
      subscriptions,
      deliveries,
      sender: {
        async send(request) {
          requests.push(request.url);
          return { statusCode: 204, durationMs: 3 };
        },
      },
      queue: { hasSlowLane: true, send: async () => {}, deadLetter: async () => {} },
      clock,
      retrySchedule: [0, 5],
      deliveryTimeoutMs: 1000,
      disableAfterMs: 86_400_000,
      lines,
    };
    if (toHealthy === undefined) throw new Error('nothing queued for the healthy subscription');
    expect(await deliver(deps, toHealthy)).toEqual({ kind: 'done', reason: 'succeeded' });
    expect(await deliver(deps, toHealthy)).toEqual({ kind: 'done', reason: 'already-succeeded' });
    expect(requests).toEqual([healthy.url]);
    expect(await deliveries.get(toHealthy.deliveryId)).toMatchObject({
      id: fanoutDeliveryId(event.id, healthy.id),
      status: 'succeeded',
      attempts: 1,
      origin: 'fanout',
    });
    expect(await deliveries.listAttempts(toHealthy.deliveryId)).toEqual([
      expect.objectContaining({ number: 1, statusCode: 204 }),
    ]);
  });
  it('carries a keyed event’s ordering key and place to fan-out, which keeps the key’s order through the gate; an event without a key carries neither', async () => {
    const events = new DynamoEventLog(client, tables.events);
    const subscriptions = new DynamoSubscriptionStore(client, tables.subscriptions, testCipher());
    const deliveries = new DynamoDeliveryStore(client, tables.deliveries);
    const lines = new DynamoOrderedLines(client, tables.deliveries);
    const clock = new ManualClock();
    const partnerId = id('ptr');
    const plain = makeSubscription(partnerId, { eventTypes: ['order.*'] });
    const ordered = makeSubscription(partnerId, { eventTypes: ['order.*'], ordering: 'key' });
    for (const subscription of [plain, ordered]) await subscriptions.put(subscription);
    const key = 'order#7/eu:1';

    const { event: first } = await events.append(newEvent(partnerId, { orderingKey: key }));
    const { event: unkeyed } = await events.append(newEvent(partnerId));
    const { event: second } = await events.append(newEvent(partnerId, { orderingKey: key }));

    // The partner's items only (earlier tests wrote to this table too): its counter (an insert,
    // two modifies), three events, the key's counter (an insert, a modify).
    const mine = (record: _Record) => String(record.dynamodb?.Keys?.pk?.S).startsWith(partnerId);
    const { records, streamArn } = await streamRecords(8, mine);
    const sortKey = (record: _Record) => record.dynamodb?.Keys?.sk?.S;
    expect(records.map((r) => `${r.eventName} ${sortKey(r)}`).sort()).toEqual(
      [
        'INSERT SEQ',
        'MODIFY SEQ',
        'MODIFY SEQ',
        'INSERT E#000000000000001',
        'INSERT E#000000000000002',
        'INSERT E#000000000000003',
        `INSERT OKEY#${key}`,
        `MODIFY OKEY#${key}`,
      ].sort(),
    );
    const passed = records.filter((record) => pipeAccepts(asPipeRecord(record, streamArn)));
    expect(passed.map(sortKey)).toEqual(['E#000000000000001', 'E#000000000000002', 'E#000000000000003']);

    const bodies = passed.map((record) => pipeMessageBody(asPipeRecord(record, streamArn)));
    const refs = passed.map((record) => applyPipeTransform(asPipeRecord(record, streamArn)));
    const refOf = (event: typeof first) => ({
      id: event.id,
      partnerId,
      type: event.type,
      createdAt: event.createdAt,
    });
    expect(refs).toEqual([
      { ...refOf(first), orderingKey: key, keySeq: 1 },
      refOf(unkeyed),
      { ...refOf(second), orderingKey: key, keySeq: 2 },
    ]);
    expect(refs[1]).not.toHaveProperty('keySeq');

    const deliveryQueue = new RecordingQueue<DeliveryMessage>();
    const fanoutQueue = new RecordingQueue<EventRef>();
    const logged: unknown[] = [];
    const handler = createFanoutHandler(
      { subscriptions, events, deliveries, deliveryQueue, clock, lines, fanoutQueue },
      (_message, error) => logged.push(error),
    );
    const run = async (texts: string[]) =>
      handler(
        { Records: texts.map((text) => sqsRecord(text, 'arn:aws:sqs:local:000000000000:fanout')) },
        lambdaContext('fanout'),
      );
    const [firstBody = '', unkeyedBody = '', secondBody = ''] = bodies;

    // The key's second event comes first (the stream's shards are read side by side): it waits
    // at the gate, and nothing is queued for it.
    expect(await run([secondBody])).toEqual({ batchItemFailures: [] });
    expect(deliveryQueue.sent).toEqual([]);
    expect(await lines.parked(partnerId, key, 2)).toEqual(refs[2]);

    // The first passes the gate and queues the second again.
    expect(await run([firstBody, unkeyedBody])).toEqual({ batchItemFailures: [] });
    expect(fanoutQueue.sent.map((m) => m.body)).toEqual([refs[2]]);
    expect(await lines.parked(partnerId, key, 2)).toBeUndefined();
    expect(await run(fanoutQueue.sent.map((m) => JSON.stringify(m.body)))).toEqual({ batchItemFailures: [] });

    expect(logged).toEqual([]);
    expect(await lines.fannedThrough(partnerId, key)).toBe(2);
    // The plain subscription gets every event at once; the ordered one only its line's head.
    const toPlain = deliveryQueue.sent.filter((m) => m.body.subscriptionId === plain.id);
    expect(toPlain.map((m) => m.body.eventId).sort()).toEqual([first.id, unkeyed.id, second.id].sort());
    for (const message of toPlain) expect(message.body).not.toHaveProperty('line');
    const toOrdered = deliveryQueue.sent.filter((m) => m.body.subscriptionId === ordered.id);
    const unkeyedToOrdered = toOrdered.filter((m) => m.body.eventId === unkeyed.id);
    expect(unkeyedToOrdered).toHaveLength(1);
    expect(unkeyedToOrdered[0]?.body).not.toHaveProperty('line');
    expect(toOrdered.filter((m) => m.body.eventId !== unkeyed.id).map((m) => m.body)).toEqual([
      expect.objectContaining({
        deliveryId: fanoutDeliveryId(first.id, ordered.id),
        eventId: first.id,
        line: { key, seq: 1 },
      }),
    ]);
    const line = await lines.line(ordered.id, key);
    expect(line.head).toMatchObject({ seq: 1, eventId: first.id });
    expect(line.head).toEqual({ ...line.first, taken: 0, takenAt: 0 });
  });
});
