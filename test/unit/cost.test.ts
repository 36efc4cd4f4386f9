/**
 * The cost model's parts that need no DynamoDB: item sizes and index writes by AWS's rules,
 * the length of an invocation's chain of waits, the pricing of a measured scenario, what is
 * read from the synthesized templates, and the report. The measurement itself runs on
 * DynamoDB Local in test/contract/dynamodb-cost*.test.ts.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type Deployment,
  functionOf,
  type IndexSpec,
  synthesizeDeployment,
  withDefinitionProjections,
} from '../../cost/deployment.ts';
import type { Measured, MeasuredConnection, MeasuredStep } from '../../cost/harness.ts';
import { itemBytes, numberBytes, unitsOf } from '../../cost/item-size.ts';
import { indexWriteUnits, type Span, Usage, webSocketMessages } from '../../cost/meter.ts';
import {
  answerReads,
  billedWebSocketMessages,
  chainMs,
  priceConnectionMonth,
  priceIdleMonth,
  pricePolling,
  priceScenario,
  readableName,
} from '../../cost/model.ts';
import { type CostReport, formatReport, toJson } from '../../cost/report.ts';
import { runCost } from '../../cost/run.ts';
import { ASSUMPTIONS, SCENARIOS } from '../../cost/scenarios.ts';
import { ANSWER_POLL_MS } from '../../functions/adapters/aws/connections.ts';
import { PIPE_FILTER_PATTERN } from '../../functions/adapters/aws/pipe.ts';
import { DELIVERIES_TABLE } from '../../functions/adapters/aws/tables.ts';
import {
  API_GATEWAY_PRICES,
  DATA_TRANSFER_PRICES,
  DYNAMODB_PRICES,
  HOURS_PER_MONTH,
  LAMBDA_PRICES,
  priceOf,
  SECONDS_PER_MONTH,
  VPC_PRICES,
  WEBSOCKET_LIMITS,
} from '../../functions/aws-prices.ts';
import { LAMBDA_ENV } from '../../functions/config.ts';
import { DISPATCHER_BATCH_SIZE, FANOUT_BATCH_SIZE } from '../../lib/constructs/delivery-pipeline.ts';

/** A step of an agent's connection: the connections function once, and what it read, wrote and sent. */
function step(overrides: Partial<MeasuredStep> = {}): MeasuredStep {
  return {
    invocations: [{ service: 'connections', records: 1, awsCalls: 0, callbacks: 0, spans: [] }],
    dynamo: {},
    sqs: {},
    webSocket: { sent: 0, received: 0, billed: 0, sentBytes: 0, receivedBytes: 0 },
    httpApiRequests: 0,
    logBytes: 0,
    ...overrides,
  };
}

/** The steps of a connection as measured, in round figures. */
function connectionSteps(): MeasuredConnection {
  const units = (readUnits: number, writeUnits: number) => ({
    ConnectionsTableD638DF3E: { readUnits, writeUnits, requests: 2 },
  });
  const frames = (received: number, sent: number) => ({
    sent,
    received,
    billed: sent + received,
    sentBytes: sent * 100,
    receivedBytes: received * 30,
  });
  return {
    connectInfo: step({ invocations: [], httpApiRequests: 1 }),
    connect: step({ dynamo: units(1, 2) }),
    firstPing: step({ dynamo: units(1, 2), webSocket: frames(1, 2) }),
    ping: step({ dynamo: units(1, 1), webSocket: frames(1, 1) }),
    disconnect: step({ dynamo: units(1, 2) }),
    stored: { ConnectionsTableD638DF3E: 1024 },
  };
}

describe('item sizes', () => {
  it('counts a number at one byte per two significant digits, plus one', () => {
    expect(numberBytes('123456')).toBe(4);
    expect(numberBytes('1.5')).toBe(2);
    expect(numberBytes('-12345')).toBe(4);
    // Leading and trailing zeroes are trimmed.
    expect(numberBytes('1000')).toBe(2);
    expect(numberBytes('0.0012')).toBe(2);
  });

  it('counts names and values, and lists and maps at 3 bytes plus 1 per element', () => {
    const item = {
      pk: { S: 'abc' }, // 2 + 3
      n: { N: '12' }, // 1 + 2
      m: { M: { a: { S: 'x' } } }, // 1 + 3 + (1 + 1 + 1)
      l: { L: [{ S: 'y' }, { NULL: true }] }, // 1 + 3 + (1 + 1) + (1 + 1)
      é: { BOOL: true }, // 2 + 1
    };
    expect(itemBytes(item)).toBe(5 + 3 + 7 + 8 + 3);
  });

  it('bills at least one unit, and a started unit as a whole one', () => {
    expect(unitsOf(0, 1024)).toBe(1);
    expect(unitsOf(1024, 1024)).toBe(1);
    expect(unitsOf(1025, 1024)).toBe(2);
  });
});

describe('index writes', () => {
  const keysOnly: IndexSpec = {
    name: 'bySubscription',
    keys: [
      { name: 'gsi', type: 'HASH' },
      { name: 'id', type: 'RANGE' },
    ],
    projection: 'KEYS_ONLY',
    nonKeyAttributes: [],
  };
  const all: IndexSpec = { ...keysOnly, projection: 'ALL' };
  const tableKeys = ['pk', 'sk'];
  const item = {
    pk: { S: 'DLV#1' },
    sk: { S: 'DELIVERY' },
    gsi: { S: 'sub_1' },
    id: { S: '1' },
    status: { S: 'pending' },
  };
  const tried = { ...item, status: { S: 'succeeded' } };

  it('writes an entry for a new item that has the index keys, and none for one without them', () => {
    expect(indexWriteUnits(undefined, item, keysOnly, tableKeys)).toBe(1);
    expect(indexWriteUnits(undefined, { pk: { S: 'x' }, sk: { S: 'y' } }, keysOnly, tableKeys)).toBe(0);
  });

  it('writes nothing to a keys-only index for an update that changes no key, and the entry to an ALL one', () => {
    expect(indexWriteUnits(item, tried, keysOnly, tableKeys)).toBe(0);
    expect(indexWriteUnits(item, tried, all, tableKeys)).toBe(1);
    expect(indexWriteUnits(item, item, all, tableKeys)).toBe(0);
  });

  it('deletes and puts the entry when its key changes', () => {
    expect(indexWriteUnits(item, { ...item, gsi: { S: 'sub_2' } }, keysOnly, tableKeys)).toBe(2);
  });
});

describe('the chain of waits of an invocation', () => {
  const span = (kind: Span['kind'], start: number, end: number): Span => ({ kind, start, end });

  it('adds up requests made one after another', () => {
    expect(chainMs([span('aws', 1, 2), span('aws', 3, 4), span('callback', 5, 6)], ASSUMPTIONS)).toBe(
      2 * ASSUMPTIONS.awsRequestMs + ASSUMPTIONS.callbackMs,
    );
  });

  it('counts requests made side by side once', () => {
    expect(chainMs([span('aws', 1, 3), span('aws', 2, 3), span('aws', 4, 5)], ASSUMPTIONS)).toBe(
      2 * ASSUMPTIONS.awsRequestMs,
    );
  });

  it('takes the longest of the paths', () => {
    // A callback beside two requests made in turn: the callback is the longer wait.
    expect(chainMs([span('callback', 1, 6), span('aws', 1, 2), span('aws', 3, 4)], ASSUMPTIONS)).toBe(
      ASSUMPTIONS.callbackMs,
    );
  });

  it('adds the pause an invocation slept before a request, as the dispatcher does between reads of an answer', () => {
    const read = (start: number, pausedMs: number): Span => ({
      kind: 'aws',
      start,
      end: start + 1,
      pausedMs,
    });
    expect(chainMs([span('aws', 1, 2), read(3, 20), read(5, 30), read(7, 50)], ASSUMPTIONS)).toBe(
      4 * ASSUMPTIONS.awsRequestMs + 20 + 30 + 50,
    );
  });
});

describe('a pushed delivery: WebSocket messages and the reads of its answer', () => {
  const KB = 1024;

  it('prices WebSocket messages and connection minutes as the pricing page does, in us-east-1', () => {
    expect(API_GATEWAY_PRICES.webSocketMessage).toEqual({ usd: 1.0, per: 1_000_000 });
    expect(API_GATEWAY_PRICES.webSocketConnectionMinute).toEqual({ usd: 0.25, per: 1_000_000 });
    expect(API_GATEWAY_PRICES.webSocketMeteringBytes).toBe(32 * KB);
    expect(WEBSOCKET_LIMITS.connectionSeconds).toBe(7200);
  });

  it('bills a frame in 32 KB increments: a 33 KB frame is two messages, an empty one still one', () => {
    expect(billedWebSocketMessages(0)).toBe(1);
    expect(billedWebSocketMessages(1)).toBe(1);
    expect(billedWebSocketMessages(32 * KB)).toBe(1);
    expect(billedWebSocketMessages(32 * KB + 1)).toBe(2);
    expect(billedWebSocketMessages(33 * KB)).toBe(2);
    // The largest frame the dispatcher sends (MAX_SERVER_FRAME_BYTES): four.
    expect(billedWebSocketMessages(120 * KB)).toBe(4);
    expect(webSocketMessages(33 * KB, API_GATEWAY_PRICES.webSocketMeteringBytes)).toBe(2);
  });

  it('counts frames each way, and the messages they are billed as', () => {
    const usage = new Usage();
    usage.addWebSocket('sent', 33 * KB, API_GATEWAY_PRICES.webSocketMeteringBytes);
    usage.addWebSocket('received', 80, API_GATEWAY_PRICES.webSocketMeteringBytes);
    expect(usage.webSocket).toEqual({
      sent: 1,
      received: 1,
      billed: 3,
      sentBytes: 33 * KB,
      receivedBytes: 80,
    });
  });

  it('reads the answer after each pause until one starts once the agent has answered', () => {
    // Reads start at 20, 60 (20 + 10 + 30) and 120 ms after the frame: one of 100 ms is the third's.
    expect(answerReads(100, ANSWER_POLL_MS, 10)).toEqual({ reads: 3, ms: 130 });
    expect(answerReads(0, ANSWER_POLL_MS, 10)).toEqual({ reads: 1, ms: 30 });
    expect(answerReads(20, ANSWER_POLL_MS, 10)).toEqual({ reads: 1, ms: 30 });
    expect(answerReads(21, ANSWER_POLL_MS, 10)).toEqual({ reads: 2, ms: 70 });
    // Past the schedule the last pause repeats: 20+30+50+100+150 = 350 ms of pauses, then 250s.
    expect(answerReads(1000, [20, 30, 50, 100, 150, 250], 0)).toEqual({ reads: 8, ms: 1100 });
    expect(ASSUMPTIONS.agentAnswerMs).toBe(ASSUMPTIONS.callbackMs);
  });
});

describe('the deployment, read from the synthesized templates', () => {
  let deployment: Deployment;

  beforeAll(() => {
    deployment = synthesizeDeployment();
  }, 60_000);

  it('finds each function with its memory and architecture', () => {
    const byService = Object.fromEntries(deployment.functions.map((f) => [f.service, f]));
    expect(Object.keys(byService).sort()).toEqual([
      'api',
      'authorizer',
      'connections',
      'dispatcher',
      'fanout',
      'ops',
      'poll',
      'recovery',
      'sweeper',
    ]);
    expect(byService.poll?.memoryMb).toBe(128);
    for (const fn of deployment.functions) {
      expect(fn.architecture).toBe('arm64');
      expect(fn.memoryMb).toBeGreaterThanOrEqual(128);
      expect(fn.entry).toBe(`functions/${fn.service}/lambda.ts`);
    }
  });

  it('finds which queue feeds which function, in batches of its event source', () => {
    const consumers = deployment.queues.flatMap((q) => (q.consumer ? [[q.name, q.consumer] as const] : []));
    expect(Object.fromEntries(consumers)).toEqual({
      fanout: { service: 'fanout', batchSize: FANOUT_BATCH_SIZE },
      delivery: { service: 'dispatcher', batchSize: DISPATCHER_BATCH_SIZE },
      'delivery-slow': { service: 'dispatcher', batchSize: DISPATCHER_BATCH_SIZE },
      // A dead letter of the pipe at a time: each scans the events table.
      'pipe-recovery': { service: 'recovery', batchSize: 1 },
    });
  });

  it('finds the key that seals signing secrets, and the functions that use it', () => {
    expect(deployment.keys).toHaveLength(1);
    const users = deployment.functions
      .filter((f) => f.environment.SECRETS_KEY_ARN?.kind === 'key')
      .map((f) => f.service)
      .sort();
    expect(users).toEqual(['api', 'dispatcher', 'fanout']);
  });

  it('finds the pipe with its filter, sending every event to the fan-out queue ten to a batch', () => {
    expect(deployment.pipe.filters).toEqual([PIPE_FILTER_PATTERN]);
    expect(deployment.pipe.batchSize).toBe(10);
    const fanout = deployment.queues.find((q) => q.name === 'fanout');
    expect(deployment.pipe.targetQueue).toBe(fanout?.logicalId);
    expect(deployment.schedules).toEqual([{ service: 'sweeper', everySeconds: 60 }]);
  });

  it('finds the WebSocket API: its stage, the one function its routes invoke, and the addresses the functions are given', () => {
    expect(deployment.webSocket?.stage).toBe('v1');
    // Every route, the frames' (selected by their type) among them, invokes the connections function.
    expect(deployment.webSocket?.routes).toMatchObject({
      $connect: 'connections',
      $disconnect: 'connections',
      $default: 'connections',
    });
    expect(new Set(Object.values(deployment.webSocket?.routes ?? {}))).toEqual(new Set(['connections']));
    expect(deployment.webSocket?.routeSelection).toEqual(['type']);
    for (const service of ['api', 'dispatcher', 'connections']) {
      const endpoint = functionOf(deployment, service).environment[LAMBDA_ENV.connectionsEndpoint];
      expect(endpoint?.kind, service).toBe('url');
      expect(endpoint?.kind === 'url' ? endpoint.parts[0] : undefined, service).toBe('https://');
      expect(functionOf(deployment, service).environment[LAMBDA_ENV.connectionsTable]?.kind, service).toBe(
        'table',
      );
    }
    const connectUrl = functionOf(deployment, 'api').environment[LAMBDA_ENV.connectUrl];
    expect(connectUrl?.kind === 'url' ? connectUrl.parts.at(-1) : undefined).toBe('/v1');
  });

  it('finds the connections table in the service stack, beside the data stack’s', () => {
    const connections = deployment.tables.find((t) => t.logicalId.startsWith('ConnectionsTable'));
    expect(connections?.keys.map((k) => k.name)).toEqual(['pk', 'sk']);
    expect(connections?.ttlAttribute).toBe('expiresAt');
    expect(deployment.tables).toHaveLength(5);
  });

  it('finds the deliveries indexes, and their projections as the table definition asks them', () => {
    const deliveries = withDefinitionProjections(deployment).tables.find((t) =>
      t.indexes.some((i) => i.name === 'bySubscription'),
    );
    expect(deliveries?.indexes.map((i) => [i.name, i.projection])).toEqual(
      DELIVERIES_TABLE.globalIndexes.map((i) => [i.indexName, i.projection ?? 'ALL']),
    );
  });
});

describe('pricing a measured scenario', () => {
  let deployment: Deployment;

  beforeAll(() => {
    deployment = synthesizeDeployment();
  }, 60_000);

  function measured(overrides: Partial<Measured> = {}): Measured {
    const scenario = SCENARIOS[0];
    if (scenario === undefined) throw new Error('no scenario');
    return {
      scenario,
      callbacks: 10,
      apiRequestBytes: [600 * 1024],
      invocations: [],
      dynamo: {},
      sqs: {},
      kms: {},
      stream: { records: 0, pipeEvents: 0, pipeRequests: 0 },
      stored: {},
      logBytes: 0,
      failedConditions: 0,
      failedTransactions: 0,
      callbackBytes: { requests: 0, responses: 0 },
      ...overrides,
    };
  }

  it('prices write units per million callbacks at the on-demand rate, by table and index', () => {
    const cost = priceScenario(
      measured({
        dynamo: { 'DeliveriesTable439E74BF/byEvent': { readUnits: 0, writeUnits: 10, requests: 10 } },
      }),
      deployment,
      ASSUMPTIONS,
    );
    const line = cost.lines.find((l) => l.item === 'Deliveries/byEvent: writes');
    expect(line?.quantity).toBe(1);
    expect(line?.usd).toBeCloseTo(priceOf(DYNAMODB_PRICES.writeRequestUnit, 1_000_000));
    expect(cost.writeUnitsPerCallback).toEqual({ 'Deliveries/byEvent': 1 });
  });

  it('meters an API request in 512 KB steps', () => {
    const cost = priceScenario(measured(), deployment, ASSUMPTIONS);
    expect(cost.lines.find((l) => l.service === 'API Gateway')?.quantity).toBe(2 / 10);
  });

  it('bills a function its invocations and its chain of waits at its memory', () => {
    const cost = priceScenario(
      measured({
        invocations: [
          {
            service: 'dispatcher',
            records: 10,
            awsCalls: 1,
            callbacks: 1,
            spans: [
              { kind: 'aws', start: 1, end: 2 },
              { kind: 'callback', start: 3, end: 4 },
            ],
          },
        ],
      }),
      deployment,
      ASSUMPTIONS,
    );
    const memoryGb = (deployment.functions.find((f) => f.service === 'dispatcher')?.memoryMb ?? 0) / 1024;
    const ms = ASSUMPTIONS.invocationOverheadMs + ASSUMPTIONS.awsRequestMs + ASSUMPTIONS.callbackMs;
    expect(cost.lines.find((l) => l.item === 'dispatcher: invocations')?.quantity).toBe(1 / 10);
    expect(cost.lines.find((l) => l.item.startsWith('dispatcher: duration'))?.quantity).toBeCloseTo(
      ((ms / 1000) * memoryGb) / 10,
    );
  });

  it('adds up to the sum of its lines, and prices an idle month apart', () => {
    const cost = priceScenario(measured(), deployment, ASSUMPTIONS);
    expect(cost.perMillionCallbacksUsd).toBeCloseTo(cost.lines.reduce((sum, l) => sum + l.usd, 0));
    const idle = priceIdleMonth(
      deployment,
      { sweeper: { invocations: [], dynamo: {}, sqs: {} } },
      ASSUMPTIONS,
    );
    expect(idle.find((l) => l.item.startsWith('sweeper: scheduled'))?.quantity).toBeCloseTo(
      (365 / 12) * 1440,
    );
    expect(idle.find((l) => l.service === 'KMS')).toMatchObject({ quantity: 1, usd: 1 });
  });

  it('prices the WebSocket messages of pushed deliveries, as billed, per callback', () => {
    const cost = priceScenario(
      measured({
        webSocket: { sent: 10, received: 10, billed: 21, sentBytes: 15_000, receivedBytes: 800 },
      }),
      deployment,
      ASSUMPTIONS,
    );
    const messages = cost.lines.find((l) => l.item.startsWith('WebSocket messages'));
    expect(messages?.quantity).toBeCloseTo(2.1);
    expect(messages?.usd).toBeCloseTo(2.1);
    expect(cost.pushBytes?.frame).toBe(1500);
    // The frame leaves AWS at API Gateway: data transfer out, apart from the total.
    expect(cost.dataTransferOutUsdPerMillion).toBeCloseTo(
      priceOf(
        DATA_TRANSFER_PRICES.outToInternetGb,
        ((1500 + ASSUMPTIONS.callbackOverheadBytes / 2) / 2 ** 30) * 1e6,
      ),
    );
    expect(
      priceScenario(measured(), deployment, ASSUMPTIONS).lines.some((l) => l.item.startsWith('WebSocket')),
    ).toBe(false);
  });

  it('prices KMS requests per callback', () => {
    const cost = priceScenario(
      measured({ kms: { Decrypt: 2, GenerateDataKey: 1 } }),
      deployment,
      ASSUMPTIONS,
    );
    const kms = cost.lines.find((l) => l.service === 'KMS');
    expect(kms?.quantity).toBeCloseTo(3 / 10);
    expect(kms?.usd).toBeCloseTo((0.03 / 10_000) * (3 / 10) * 1_000_000);
  });

  it('names tables and indexes without their CDK hash', () => {
    expect(readableName('DeliveriesTable439E74BF/bySubscription')).toBe('Deliveries/bySubscription');
    expect(readableName('EventsTable4B7491D3')).toBe('Events');
  });

  it('reports a table per service and the same as JSON, with a name and a price per scenario', () => {
    const cost = priceScenario(measured(), deployment, ASSUMPTIONS);
    const report: CostReport = {
      region: 'us-east-1',
      pricing: 'on-demand',
      projections: 'template',
      target: { scenario: cost.name, usdPerMillionCallbacks: 5, met: true },
      scenarios: [cost],
      idleMonthUsd: 0,
      idleMonth: [],
      connection: priceConnectionMonth(connectionSteps(), deployment, ASSUMPTIONS),
      answerReads: answerReads(ASSUMPTIONS.agentAnswerMs, ANSWER_POLL_MS, ASSUMPTIONS.awsRequestMs),
      polling: pricePolling(
        {
          invocations: [
            { service: 'api', records: 0, awsCalls: 3, callbacks: 0, spans: [], waitedMs: 20_000 },
          ],
          dynamo: {},
        },
        { invocations: [{ service: 'api', records: 0, awsCalls: 3, callbacks: 0, spans: [] }], dynamo: {} },
        20,
        deployment,
        ASSUMPTIONS,
      ),
      assumptions: ASSUMPTIONS,
    };
    const text = formatReport(report);
    expect(text).toContain('**API Gateway**');
    expect(text).toContain('**total**');
    expect(text).toMatch(/an idle long poll of 20 s costs \$0\.0001/);
    expect(text).toMatch(/per connection a month: \$0\.\d{3}/);
    expect(text).toContain('| ping ');
    const json: unknown = JSON.parse(toJson(report));
    expect(json).toMatchObject({
      scenarios: [{ name: cost.name, perMillionCallbacksUsd: expect.any(Number) }],
    });
  });
});

describe('pricing fixed egress addresses (-c staticEgress=true)', () => {
  let withEgress: Deployment;
  let withoutEgress: Deployment;

  beforeAll(() => {
    withEgress = synthesizeDeployment({ staticEgress: 'true' });
    withoutEgress = synthesizeDeployment();
  }, 60_000);

  const GB = 1024 ** 3;

  function measured(): Measured {
    const scenario = SCENARIOS[0];
    if (scenario === undefined) throw new Error('no scenario');
    return {
      scenario,
      callbacks: 10,
      apiRequestBytes: [],
      invocations: [{ service: 'dispatcher', records: 10, awsCalls: 0, callbacks: 10, spans: [] }],
      dynamo: {},
      sqs: {},
      kms: {},
      stream: { records: 0, pipeEvents: 0, pipeRequests: 0 },
      stored: {},
      logBytes: 0,
      failedConditions: 0,
      failedTransactions: 0,
      callbackBytes: { requests: 13_330, responses: 1_110 },
    };
  }

  it('reads the NAT gateways, their Elastic IPs, the free DynamoDB endpoint and the dispatcher attached', () => {
    expect(withEgress.egress).toEqual({
      natGateways: 2,
      publicIpv4Addresses: 2,
      interfaceEndpointZones: 0,
      gatewayEndpoints: ['dynamodb'],
      attachedServices: ['dispatcher'],
      flowLogTraffic: ['REJECT'],
    });
    expect(functionOf(withEgress, 'api').environment[LAMBDA_ENV.egressIps]).toMatchObject({
      kind: 'publicIps',
      addresses: [expect.any(String), expect.any(String)],
    });
    expect(withoutEgress.egress).toBeUndefined();
  });

  it('bills each NAT gateway and its Elastic IP by the hour: $73 a month for two zones', () => {
    const idle = priceIdleMonth(
      withEgress,
      { sweeper: { invocations: [], dynamo: {}, sqs: {} } },
      ASSUMPTIONS,
    );
    const vpc = idle.filter((l) => l.service === 'VPC');
    const expected =
      2 * HOURS_PER_MONTH * VPC_PRICES.natGatewayHour.usd +
      2 * HOURS_PER_MONTH * VPC_PRICES.publicIpv4Hour.usd;
    expect(vpc.reduce((sum, l) => sum + l.usd, 0)).toBeCloseTo(expected);
    expect(expected).toBeCloseTo(73, 6);
    const plain = priceIdleMonth(
      withoutEgress,
      { sweeper: { invocations: [], dynamo: {}, sqs: {} } },
      ASSUMPTIONS,
    );
    expect(plain.filter((l) => l.service === 'VPC')).toEqual([]);
  });

  it('bills every byte of a callback through the NAT gateways, and data transfer out apart from the total', () => {
    const cost = priceScenario(measured(), withEgress, ASSUMPTIONS);
    const perCallback = 1333 + 111 + ASSUMPTIONS.callbackOverheadBytes;
    const nat = cost.lines.find((l) => l.service === 'VPC');
    expect(nat?.quantity).toBeCloseTo(perCallback / GB, 12);
    expect(nat?.usd).toBeCloseTo(priceOf(VPC_PRICES.natGatewayProcessedGb, (perCallback / GB) * 1_000_000));
    expect(cost.callbackBytes).toEqual({ request: 1333, response: 111 });
    expect(cost.dataTransferOutUsdPerMillion).toBeCloseTo(
      priceOf(
        DATA_TRANSFER_PRICES.outToInternetGb,
        ((1333 + ASSUMPTIONS.callbackOverheadBytes / 2) / GB) * 1e6,
      ),
    );
    expect(cost.perMillionCallbacksUsd).toBeCloseTo(cost.lines.reduce((sum, l) => sum + l.usd, 0));
    const plain = priceScenario(measured(), withoutEgress, ASSUMPTIONS);
    expect(plain.lines.filter((l) => l.service === 'VPC')).toEqual([]);
    expect(cost.perMillionCallbacksUsd - plain.perMillionCallbacksUsd).toBeCloseTo(nat?.usd ?? Number.NaN);
  });
});

describe('npm run cost', () => {
  it('prints its usage', async () => {
    expect(await runCost(['--help'])).toMatch(/^usage: npm run cost/);
  });

  it('refuses an unknown projection or scenario before starting anything', async () => {
    await expect(runCost(['--projections=mine'])).rejects.toThrow(/--projections/);
    await expect(runCost(['--scenario=nightly'])).rejects.toThrow(/no scenario nightly/);
  });
});

describe('keeping an agent connected, a month', () => {
  let deployment: Deployment;

  beforeAll(() => {
    deployment = synthesizeDeployment();
  }, 60_000);

  it('counts the month in connection minutes, a connection every 2 hours and a ping every 30 s', () => {
    const cost = priceConnectionMonth(connectionSteps(), deployment, ASSUMPTIONS);
    expect(cost.minutesPerMonth).toBeCloseTo(43_800);
    expect(cost.connectionsPerMonth).toBeCloseTo(365);
    expect(cost.pingsPerMonth).toBeCloseTo(87_600);
    const minutes = cost.month.find((l) => l.unit === 'minutes');
    expect(minutes?.usd).toBeCloseTo((43_800 * 0.25) / 1e6, 9);
    const times = Object.fromEntries(cost.steps.map((s) => [s.step, s.perMonth]));
    expect(times.connect).toBeCloseTo(365);
    expect(times.firstPing).toBeCloseTo(365);
    // Every ping but the first of each connection, which makes it ready.
    expect(times.ping).toBeCloseTo(87_600 - 365);
    expect(times.disconnect).toBeCloseTo(365);
    expect(times.connectInfo).toBeCloseTo(365);
  });

  it('prices each step from what it measured, times how often it comes, and adds them up', () => {
    const cost = priceConnectionMonth(connectionSteps(), deployment, ASSUMPTIONS);
    const ping = cost.steps.find((s) => s.step === 'ping');
    const gbSeconds =
      ((ASSUMPTIONS.invocationOverheadMs / 1000) * functionOf(deployment, 'connections').memoryMb) / 1024;
    // Two messages, an invocation of its overhead alone, a read unit and a write unit.
    const once =
      2 / 1e6 +
      LAMBDA_PRICES.request.usd / 1e6 +
      gbSeconds * LAMBDA_PRICES.arm64GbSecond.usd +
      DYNAMODB_PRICES.readRequestUnit.usd / 1e6 +
      DYNAMODB_PRICES.writeRequestUnit.usd / 1e6;
    expect(ping?.onceUsd).toBeCloseTo(once, 12);
    expect(ping?.monthUsd).toBeCloseTo(once * (87_600 - 365), 9);
    const messages = cost.month.filter((l) => l.unit === 'messages').reduce((sum, l) => sum + l.quantity, 0);
    expect(messages).toBeCloseTo(2 * (87_600 - 365) + 3 * 365);
    expect(cost.monthUsd).toBeCloseTo(
      cost.month.reduce((sum, l) => sum + l.usd, 0),
      12,
    );
    expect(cost.monthUsd).toBeCloseTo(
      (43_800 * 0.25) / 1e6 +
        cost.steps.reduce((sum, s) => sum + s.monthUsd, 0) +
        cost.month.filter((l) => l.unit === 'GB-month').reduce((sum, l) => sum + l.usd, 0),
      12,
    );
    // The connection's kilobyte, all month, and its backup.
    const storage = cost.month.filter((l) => l.unit === 'GB-month');
    expect(storage.reduce((sum, l) => sum + l.quantity, 0)).toBeCloseTo((2 * 1024) / 2 ** 30, 15);
    expect(Object.values(cost.byService).reduce((a, b) => a + b, 0)).toBeCloseTo(cost.monthUsd, 12);
    expect(SECONDS_PER_MONTH / WEBSOCKET_LIMITS.connectionSeconds).toBeCloseTo(365);
  });
});

describe('pushed deliveries with fixed egress addresses', () => {
  let withEgress: Deployment;

  beforeAll(() => {
    withEgress = synthesizeDeployment({ staticEgress: 'true' });
  }, 60_000);

  it('bills the NAT gateways for the frames the dispatcher posts to the management API', () => {
    const scenario = SCENARIOS.find((s) => s.transport === 'connection');
    if (scenario === undefined) throw new Error('no pushed scenario');
    const cost = priceScenario(
      {
        scenario,
        callbacks: 10,
        apiRequestBytes: [],
        invocations: [
          {
            service: 'dispatcher',
            records: 10,
            awsCalls: 0,
            callbacks: 0,
            spans: [],
            posts: 10,
            postBytes: 23_000,
          },
        ],
        dynamo: {},
        sqs: {},
        kms: {},
        stream: { records: 0, pipeEvents: 0, pipeRequests: 0 },
        stored: {},
        logBytes: 0,
        failedConditions: 0,
        failedTransactions: 0,
        callbackBytes: { requests: 0, responses: 0 },
        webSocket: { sent: 10, received: 10, billed: 20, sentBytes: 14_000, receivedBytes: 800 },
      },
      withEgress,
      ASSUMPTIONS,
    );
    const nat = cost.lines.filter((l) => l.service === 'VPC');
    expect(nat.map((l) => l.item)).toEqual([
      'NAT gateways: the frames posted to the management API (requests, responses, TLS and TCP/IP)',
    ]);
    const perPush = 2300 + ASSUMPTIONS.postOverheadBytes + ASSUMPTIONS.callbackOverheadBytes;
    expect(nat[0]?.quantity).toBeCloseTo(perPush / 2 ** 30, 15);
    expect(cost.pushBytes).toEqual({ frame: 1400, request: 2300 });
  });
});
