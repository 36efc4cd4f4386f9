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
import type { Measured } from '../../cost/harness.ts';
import { itemBytes, numberBytes, unitsOf } from '../../cost/item-size.ts';
import { indexWriteUnits, type Span } from '../../cost/meter.ts';
import { chainMs, priceIdleMonth, pricePolling, priceScenario, readableName } from '../../cost/model.ts';
import { type CostReport, formatReport, toJson } from '../../cost/report.ts';
import { runCost } from '../../cost/run.ts';
import { ASSUMPTIONS, SCENARIOS } from '../../cost/scenarios.ts';
import { PIPE_FILTER_PATTERN } from '../../functions/adapters/aws/pipe.ts';
import { DELIVERIES_TABLE } from '../../functions/adapters/aws/tables.ts';
import {
  DATA_TRANSFER_PRICES,
  DYNAMODB_PRICES,
  HOURS_PER_MONTH,
  priceOf,
  VPC_PRICES,
} from '../../functions/aws-prices.ts';
import { LAMBDA_ENV } from '../../functions/config.ts';
import { DISPATCHER_BATCH_SIZE, FANOUT_BATCH_SIZE } from '../../lib/constructs/delivery-pipeline.ts';

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
