/**
 * What a callback costs, measured as `npm run cost` measures it: the functions' own Lambda
 * entries on DynamoDB Local, with the tables, batch sizes and projections of the synthesized
 * templates. The per-callback counts are pinned here, so a change that adds a write, a read or
 * a request fails this test and has to say so. Beside it, the meter's own rules are checked
 * against DynamoDB Local where DynamoDB Local reports capacity faithfully.
 */
import { CreateTableCommand } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TableSpec } from '../../cost/deployment.ts';
import { itemBytes, unitsOf } from '../../cost/item-size.ts';
import { type MeterSink, meterDynamo, Usage, Waves } from '../../cost/meter.ts';
import type { CostReport } from '../../cost/report.ts';
import { measureCost } from '../../cost/run.ts';
import { waitPauses } from '../../functions/adapters/aws/events.ts';
import { SECONDS_PER_MONTH } from '../../functions/aws-prices.ts';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../dynamodb-local/server.ts';
import {
  deleteTables,
  localClient,
  localDocumentClient,
  localEndpoint,
  uniquePrefix,
} from '../dynamodb-local/tables.ts';

/** Every figure is per callback. */
describe('the cost of a callback, with the indexes the template builds', () => {
  let report: CostReport;

  beforeAll(async () => {
    report = await measureCost(localEndpoint(), { projections: 'template', pollWaitSeconds: 2 });
  }, 180_000);

  function scenario(name: string) {
    const found = report.scenarios.find((s) => s.name === name);
    if (found === undefined) throw new Error(`no scenario ${name}`);
    return found;
  }

  const quantity = (name: string, service: string, item: string) =>
    scenario(name).lines.find((l) => l.service === service && l.item === item)?.quantity ?? 0;

  it('makes every callback at the first try, with no refused condition and no cancelled transaction', () => {
    for (const s of report.scenarios) {
      expect(s.callbacks, s.name).toBe(100);
      expect(s.failedConditions, s.name).toBe(0);
      expect(s.failedTransactions, s.name).toBe(0);
      // Nothing is logged on success but the dispatcher's embedded metrics: one line a batch.
      const logBytesPerCallback = quantity(s.name, 'CloudWatch', 'logs ingested') * 2 ** 30;
      expect(logBytesPerCallback, s.name).toBeGreaterThan(0);
      expect(logBytesPerCallback, s.name).toBeLessThan(100);
    }
  });

  it('writes the delivery once (its first try stores it, with the attempt) and its one index entry', () => {
    for (const name of ['batched', 'single']) {
      const writes = scenario(name).writeUnitsPerCallback;
      // Fan-out queues a main-lane delivery without storing it (storeAtFirstTry).
      expect(writes.Deliveries, name).toBe(1);
      expect(writes['Deliveries/bySubscription'], name).toBe(1);
      // Under its event's tag, listed by event without the byEvent index.
      expect(writes['Deliveries/byEvent'], name).toBeUndefined();
    }
  });

  it('reads the delivery, its subscription and its event once each, and the partner’s subscriptions once', () => {
    for (const name of ['batched', 'single']) {
      const reads = scenario(name).readUnitsPerCallback;
      expect(reads.Deliveries, name).toBe(1);
      expect(reads.Subscriptions, name).toBe(1);
      expect(reads['Subscriptions/byPartner'], name).toBe(0.5);
      // The event, at the place its id says, read eventually consistent: half a unit.
      expect(reads.Events, name).toBe(0.5);
    }
  });

  it('costs the event log at most its present write units, and the batch one rate-limit count per request', () => {
    // The event item (a little over 1 KB: 2 units) and, per request, the counter's ADD.
    expect(scenario('batched').writeUnitsPerCallback.Events).toBeLessThanOrEqual(2.01);
    expect(scenario('single').writeUnitsPerCallback.Events).toBeLessThanOrEqual(3);
    expect(scenario('batched').writeUnitsPerCallback.Partners).toBeCloseTo(0.01);
    expect(scenario('single').writeUnitsPerCallback.Partners).toBe(1);
  });

  it('takes one API request and pipe request per event, batching only what is batched, and no bus', () => {
    expect(quantity('batched', 'API Gateway', 'HTTP API requests (512 KB each)')).toBeCloseTo(0.01);
    expect(quantity('single', 'API Gateway', 'HTTP API requests (512 KB each)')).toBe(1);
    for (const name of ['batched', 'single']) {
      expect(quantity(name, 'EventBridge Pipes', 'events past the filter (64 KB each)'), name).toBe(1);
      expect(
        scenario(name).lines.filter((l) => l.service === 'EventBridge'),
        name,
      ).toEqual([]);
    }
  });

  it('sends each queue one message a callback, ten to a request, received and deleted in batches of ten', () => {
    for (const name of ['batched', 'single']) {
      const sqs = Object.fromEntries(
        scenario(name)
          .lines.filter((l) => l.service === 'SQS')
          .map((l) => [l.item, l.quantity]),
      );
      expect(sqs, name).toEqual({
        // The pipe sends ten events a SendMessageBatch.
        'fanout queue: SendMessageBatch (pipe target)': 0.1,
        'fanout queue: ReceiveMessage (event source)': 0.1,
        'fanout queue: DeleteMessageBatch (event source)': 0.1,
        // Fan-out queues the deliveries of a batch of ten events in one request.
        'delivery queue: SendMessageBatch': 0.1,
        'delivery queue: ReceiveMessage (event source)': 0.1,
        'delivery queue: DeleteMessageBatch (event source)': 0.1,
      });
    }
  });

  it('invokes the API once a request and each consumer once a batch of ten', () => {
    expect(quantity('batched', 'Lambda', 'api: invocations')).toBeCloseTo(0.01);
    expect(quantity('single', 'Lambda', 'api: invocations')).toBe(1);
    for (const name of ['batched', 'single']) {
      expect(quantity(name, 'Lambda', 'fanout: invocations'), name).toBe(0.1);
      expect(quantity(name, 'Lambda', 'dispatcher: invocations'), name).toBe(0.1);
    }
  });

  it('bills an idle long poll for its wait, with a handful of small reads, and a poll answered at once for neither', () => {
    const { polling } = report;
    const lambda = (lines: typeof polling.idleLongPoll, item: string) =>
      lines.find((l) => l.service === 'Lambda' && l.item.startsWith(item))?.quantity ?? 0;
    // 2 s at 128 MB (the polling function's), and not much more.
    expect(lambda(polling.idleLongPoll, 'poll: duration (128 MB')).toBeGreaterThanOrEqual(0.25);
    expect(lambda(polling.idleLongPoll, 'poll: duration (128 MB')).toBeLessThan(0.3);
    expect(lambda(polling.shortPoll, 'poll: duration (128 MB')).toBeLessThan(0.01);
    const reads = (lines: typeof polling.idleLongPoll) =>
      lines
        .filter((l) => l.service === 'DynamoDB' && l.unit === 'RRU')
        .reduce((sum, l) => sum + l.quantity, 0);
    // Beside what a poll answered at once reads (the list of an empty log, each of its queries
    // billed as a read though it finds nothing), the same list again once the wait is over, and
    // the counter, eventually consistently, after each pause.
    expect(reads(polling.shortPoll)).toBeGreaterThan(0);
    expect(reads(polling.idleLongPoll) - 2 * reads(polling.shortPoll)).toBe(waitPauses(2000).length / 2);
    expect(polling.idleLongPollUsd).toBeGreaterThan(polling.shortPollUsd);
    expect(polling.longPollingMonthUsd).toBeCloseTo((polling.idleLongPollUsd * SECONDS_PER_MONTH) / 2, 6);
  });

  it('pushes each delivery down the connection: its frame and its ack, the ack written once, the answer read three times', () => {
    const pushed = scenario('pushed');
    expect(pushed.callbacks).toBe(100);
    // Nothing went over HTTP to a receiver.
    expect(pushed.callbackBytes).toEqual({ request: 0, response: 0 });
    // A 1 KB event's delivery frame, signed headers and all, is one message; its ack another.
    expect(pushed.pushBytes?.frame).toBeGreaterThan(1024);
    expect(pushed.pushBytes?.frame).toBeLessThan(32 * 1024);
    expect(
      quantity(
        'pushed',
        'API Gateway',
        'WebSocket messages (32 KB each): delivery frames sent, answers received',
      ),
    ).toBe(2);
    // The agent answers within a callback's 100 ms: the dispatcher's third read sees it.
    expect(report.answerReads).toEqual({ reads: 3, ms: 130 });
    // The ack, written by the connections function, invoked once a delivery.
    expect(pushed.writeUnitsPerCallback.Connections).toBe(1);
    expect(quantity('pushed', 'Lambda', 'connections: invocations')).toBe(1);
    // Each read of the answer a consistent get of it (the connection's owner item is read with
    // it only every fourth read); the partner's connections read once for the tries of a
    // second, so a fraction of a unit a push.
    const connectionReads = pushed.readUnitsPerCallback.Connections ?? 0;
    expect(connectionReads).toBeGreaterThan(report.answerReads.reads);
    expect(connectionReads).toBeLessThanOrEqual(report.answerReads.reads + 0.2);
    // The rest of the path is a URL callback's.
    const batched = scenario('batched');
    for (const table of ['Deliveries', 'Deliveries/bySubscription', 'Events', 'Partners']) {
      expect(pushed.writeUnitsPerCallback[table], table).toBe(batched.writeUnitsPerCallback[table]);
    }
    for (const table of ['Deliveries', 'Events', 'Subscriptions', 'Subscriptions/byPartner']) {
      expect(pushed.readUnitsPerCallback[table], table).toBe(batched.readUnitsPerCallback[table]);
    }
    expect(quantity('pushed', 'Lambda', 'dispatcher: invocations')).toBe(0.1);
    // The dispatcher waits for the answer as for a callback, and for its connection queries.
    const dispatcherGbs = (name: string) =>
      scenario(name).lines.find((l) => l.item.startsWith('dispatcher: duration'))?.quantity ?? 0;
    expect(dispatcherGbs('pushed')).toBeGreaterThan(dispatcherGbs('batched'));
  });

  it('keeps an agent connected: each ping two messages and an invocation that reads the connection and its key and writes the connection', () => {
    const { connection } = report;
    const once = (step: string) =>
      Object.fromEntries(
        (connection.steps.find((s) => s.step === step)?.once ?? []).map((l) => [
          `${l.service}: ${l.item}`,
          l.quantity,
        ]),
      );
    const dynamo = (step: string) =>
      Object.fromEntries(Object.entries(once(step)).filter(([item]) => item.startsWith('DynamoDB:')));
    // The connection's owner item and its key (still live?) read, its lastSeen written.
    expect(once('ping')).toMatchObject({
      'API Gateway: WebSocket messages (1 received, 1 sent)': 2,
      'Lambda: connections: invocations': 1,
    });
    expect(dynamo('ping')).toEqual({
      'DynamoDB: Connections: reads': 1,
      'DynamoDB: Connections: writes': 1,
      'DynamoDB: Partners: reads': 1,
    });
    // The first: hello too, the connection made ready, and its parked tries looked for (none).
    expect(once('firstPing')).toMatchObject({ 'API Gateway: WebSocket messages (1 received, 2 sent)': 3 });
    expect(dynamo('firstPing')).toEqual({
      'DynamoDB: Connections: reads': 1,
      'DynamoDB: Connections: writes': 3,
      'DynamoDB: Deliveries: reads': 1,
      'DynamoDB: Partners: reads': 1,
    });
    // $connect: the partner's connections counted (a query of nothing), the key looked up, its
    // connection subscriptions listed, the connection's two items written.
    expect(once('connect')).toMatchObject({ 'Lambda: connections: invocations': 1 });
    expect(dynamo('connect')).toEqual({
      'DynamoDB: Connections: reads': 1,
      'DynamoDB: Connections: writes': 2,
      'DynamoDB: Partners: reads': 2,
      'DynamoDB: Subscriptions/byPartner: reads': 0.5,
    });
    expect(once('disconnect')).toMatchObject({ 'DynamoDB: Connections: writes': 2 });
    expect(once('connectInfo')).toMatchObject({
      'API Gateway: HTTP API requests': 1,
      'Lambda: authorizer: invocations': 1,
      'Lambda: api: invocations': 1,
    });
    expect(connection.monthUsd).toBeCloseTo(
      connection.month.reduce((sum, l) => sum + l.usd, 0),
      9,
    );
    // Pings are most of it.
    const pings = connection.steps.find((s) => s.step === 'ping')?.monthUsd ?? 0;
    expect(pings / connection.monthUsd).toBeGreaterThan(0.8);
  });

  it('prices publishing in batches below publishing one by one, and says whether the target is met', () => {
    expect(scenario('batched').perMillionCallbacksUsd).toBeLessThan(
      scenario('single').perMillionCallbacksUsd,
    );
    expect(report.target).toEqual({
      scenario: 'batched',
      usdPerMillionCallbacks: 5,
      met: scenario('batched').perMillionCallbacksUsd <= 5,
    });
  });
});

describe('the DynamoDB meter against DynamoDB Local', () => {
  const client = localDocumentClient();
  const raw = localClient();
  const tableName = `${uniquePrefix('cost-meter')}-Things`;
  const spec: TableSpec = {
    logicalId: 'ThingsTable00000000',
    keys: [{ name: 'pk', type: 'HASH' }],
    attributeTypes: { pk: 'S', gsi: 'S' },
    indexes: [
      { name: 'byGsi', keys: [{ name: 'gsi', type: 'HASH' }], projection: 'KEYS_ONLY', nonKeyAttributes: [] },
    ],
    pointInTimeRecovery: false,
  };
  const sink: MeterSink = { usage: new Usage(), invocation: undefined, waves: new Waves() };
  let meterClient: { destroy(): void } | undefined;

  beforeAll(async () => {
    await raw.send(
      new CreateTableCommand({
        TableName: tableName,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [
          { AttributeName: 'pk', AttributeType: 'S' },
          { AttributeName: 'gsi', AttributeType: 'S' },
        ],
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
        GlobalSecondaryIndexes: [
          {
            IndexName: 'byGsi',
            KeySchema: [{ AttributeName: 'gsi', KeyType: 'HASH' }],
            Projection: { ProjectionType: 'KEYS_ONLY' },
          },
        ],
      }),
    );
    meterClient = meterDynamo(client, sink, {
      endpoint: localEndpoint(),
      region: LOCAL_REGION,
      credentials: LOCAL_CREDENTIALS,
      tables: new Map([[tableName, spec]]),
    });
  });

  afterAll(async () => {
    await deleteTables(client, [tableName]);
    client.destroy();
    raw.destroy();
    meterClient?.destroy();
  });

  function fresh(): Usage {
    const usage = new Usage();
    sink.usage = usage;
    return usage;
  }

  it('sizes items as DynamoDB Local bills their puts, on both sides of the 1 KB steps', async () => {
    for (const length of [10, 990, 1000, 1010, 2000, 3100]) {
      const usage = fresh();
      const item = { pk: `p-${length}`, data: 'x'.repeat(length), n: 12345, tags: ['a', 'b'] };
      await client.send(new PutCommand({ TableName: tableName, Item: item }));
      const bytes = itemBytes({
        pk: { S: item.pk },
        data: { S: item.data },
        n: { N: '12345' },
        tags: { L: [{ S: 'a' }, { S: 'b' }] },
      });
      expect(usage.dynamo.get(spec.logicalId)?.writeUnits, `${length}`).toBe(unitsOf(bytes, 1024));
    }
  });

  it('writes no keys-only index entry for an update that changes no key', async () => {
    await client.send(
      new PutCommand({ TableName: tableName, Item: { pk: 'indexed', gsi: 'g', status: 'new' } }),
    );
    const usage = fresh();
    await client.send(
      new UpdateCommand({
        TableName: tableName,
        Key: { pk: 'indexed' },
        UpdateExpression: 'SET #s = :s',
        ExpressionAttributeNames: { '#s': 'status' },
        ExpressionAttributeValues: { ':s': 'tried' },
      }),
    );
    expect(usage.dynamo.get(spec.logicalId)?.writeUnits).toBe(1);
    expect(usage.dynamo.get(`${spec.logicalId}/byGsi`)).toBeUndefined();
  });

  it('bills a batch get a unit for each key it finds nothing at, which DynamoDB Local reports as nothing', async () => {
    await client.send(new PutCommand({ TableName: tableName, Item: { pk: 'found' } }));
    const usage = fresh();
    await client.send(
      new BatchGetCommand({
        RequestItems: {
          [tableName]: {
            Keys: [{ pk: 'found' }, { pk: 'missing-1' }, { pk: 'missing-2' }],
            ConsistentRead: true,
          },
        },
      }),
    );
    expect(usage.dynamo.get(spec.logicalId)?.readUnits).toBe(3);
    const eventually = fresh();
    await client.send(
      new BatchGetCommand({ RequestItems: { [tableName]: { Keys: [{ pk: 'missing-1' }] } } }),
    );
    expect(eventually.dynamo.get(spec.logicalId)?.readUnits).toBe(0.5);
  });

  it('bills a query that finds nothing as a read of one item, on the table or an index', async () => {
    const usage = fresh();
    await client.send(
      new QueryCommand({
        TableName: tableName,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': 'nothing here' },
        ConsistentRead: true,
      }),
    );
    expect(usage.dynamo.get(spec.logicalId)?.readUnits).toBe(1);
    const onIndex = fresh();
    await client.send(
      new QueryCommand({
        TableName: tableName,
        IndexName: 'byGsi',
        KeyConditionExpression: 'gsi = :gsi',
        ExpressionAttributeValues: { ':gsi': 'nothing here' },
      }),
    );
    expect(onIndex.dynamo.get(`${spec.logicalId}/byGsi`)?.readUnits).toBe(0.5);
  });

  it('prices a transaction at two units per KB of each item, whatever DynamoDB Local reports', async () => {
    const usage = fresh();
    await client.send(
      new TransactWriteCommand({
        TransactItems: [
          { Put: { TableName: tableName, Item: { pk: 'tx-1', data: 'x'.repeat(100) } } },
          { Put: { TableName: tableName, Item: { pk: 'tx-2', data: 'x'.repeat(1500), gsi: 'g' } } },
        ],
      }),
    );
    // 1 KB and 2 KB, doubled; the second item's new index entry at the standard rate.
    expect(usage.dynamo.get(spec.logicalId)?.writeUnits).toBe(2 * 1 + 2 * 2);
    expect(usage.dynamo.get(`${spec.logicalId}/byGsi`)?.writeUnits).toBe(1);
  });
});
