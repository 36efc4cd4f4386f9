/**
 * Prices what a scenario used (harness.ts) with AWS's us-east-1 on-demand prices
 * (functions/aws-prices.ts): one line per billed item, per callback and per million callbacks,
 * grouped by service; and what an idle deployment pays each month whatever the traffic.
 * Pure: the same measurement always gives the same figures.
 */

import { DELIVERY_METRICS } from '../functions/adapters/delivery-metrics.ts';
import {
  API_GATEWAY_PRICES,
  CLOUDWATCH_PRICES,
  DATA_TRANSFER_PRICES,
  DYNAMODB_BILLING,
  DYNAMODB_PRICES,
  EVENTBRIDGE_PRICES,
  HOURS_PER_MONTH,
  KMS_PRICES,
  LAMBDA_PRICES,
  POLLING,
  PRIVATELINK_PRICES,
  priceOf,
  type Rate,
  SECONDS_PER_MONTH,
  SQS_PRICES,
  VPC_PRICES,
  WEBSOCKET_LIMITS,
} from '../functions/aws-prices.ts';
import { HEARTBEAT_SECONDS } from '../functions/core/connection-protocol.ts';
import { type Deployment, type EgressSpec, functionOf } from './deployment.ts';
import type { Measured, MeasuredConnection, MeasuredStep } from './harness.ts';
import type { Invocation, Span, Units } from './meter.ts';
import type { Assumptions } from './scenarios.ts';

export const SERVICES = [
  'API Gateway',
  'Lambda',
  'DynamoDB',
  'DynamoDB Streams',
  'EventBridge Pipes',
  'EventBridge',
  'SQS',
  'KMS',
  'VPC',
  'CloudWatch',
] as const;
export type Service = (typeof SERVICES)[number];

/** One billed item: how much of it one callback (or one month) takes, and what that costs. */
export interface CostLine {
  readonly service: Service;
  readonly item: string;
  /** Billed units per callback (or per month, for fixed costs). */
  readonly quantity: number;
  readonly unit: string;
  /** Per million callbacks (or per month, for fixed costs). */
  readonly usd: number;
}

export interface ScenarioCost {
  readonly name: string;
  readonly description: string;
  readonly perMillionCallbacksUsd: number;
  /** Callbacks the run made, all answered at the first try. */
  readonly callbacks: number;
  /** Writes refused on their condition, and transactions cancelled: none on this path. */
  readonly failedConditions: number;
  readonly failedTransactions: number;
  readonly byService: Readonly<Record<Service, number>>;
  readonly lines: readonly CostLine[];
  /** DynamoDB write units per callback, by table and index. */
  readonly writeUnitsPerCallback: Readonly<Record<string, number>>;
  readonly readUnitsPerCallback: Readonly<Record<string, number>>;
  /** A callback's HTTP request and response, in bytes, as measured (no TLS or TCP/IP). */
  readonly callbackBytes: { readonly request: number; readonly response: number };
  /**
   * Pushed deliveries (a connection subscription): a delivery frame's bytes, and the HTTP
   * request of the PostToConnection that posts it (as the SDK builds it), per delivery.
   */
  readonly pushBytes?: { readonly frame: number; readonly request: number };
  /**
   * What the callbacks' bytes leaving AWS cost, per million: the request (a pushed delivery's
   * frame) and the outgoing half of the overhead (Assumptions.callbackOverheadBytes). Billed
   * with or without fixed egress addresses, and not in `perMillionCallbacksUsd` (docs/cost.md,
   * "What the figures leave out").
   */
  readonly dataTransferOutUsdPerMillion: number;
}

const GB = 1024 ** 3;
const MILLION = 1_000_000;

/**
 * How a measured amount becomes a line: `quantity` scales what is shown, `usd` what is
 * priced (per callback, priced per million; per run, both per month).
 */
interface Scale {
  readonly quantity: number;
  readonly usd: number;
}

const PER_CALLBACK: Scale = { quantity: 1, usd: MILLION };

function line(
  service: Service,
  item: string,
  unit: string,
  rate: Rate,
  amount: number,
  scale: Scale,
): CostLine {
  return { service, item, quantity: amount * scale.quantity, unit, usd: priceOf(rate, amount * scale.usd) };
}

/** `CDK logical id` → a readable name: `DeliveriesTable439E74BF/byEvent` → `Deliveries/byEvent`. */
export function readableName(logicalId: string): string {
  return logicalId
    .split('/')
    .map((part, i) => (i === 0 ? part.replace(/[0-9A-F]{8}$/, '').replace(/Table$/, '') : part))
    .join('/');
}

/**
 * The longest chain of requests an invocation waited for one after another (each started
 * after the one before was answered), weighted by how long each takes on AWS.
 */
export function chainMs(spans: readonly Span[], assumptions: Assumptions): number {
  const sorted = spans.toSorted((a, b) => a.end - b.end);
  const best: number[] = [];
  let longest = 0;
  sorted.forEach((span, i) => {
    const weight =
      (span.kind === 'aws' ? assumptions.awsRequestMs : assumptions.callbackMs) + (span.pausedMs ?? 0);
    let before = 0;
    for (let j = 0; j < i; j++) {
      const earlier = sorted[j];
      if (earlier !== undefined && earlier.end < span.start) before = Math.max(before, best[j] ?? 0);
    }
    best[i] = before + weight;
    longest = Math.max(longest, best[i] ?? 0);
  });
  return longest;
}

/**
 * How many reads of its answer the dispatcher makes for a pushed try, and how long after the
 * frame went the last of them is answered: it reads after each pause of `pollMs` (the last
 * repeating), each read taking `requestMs`, and a read sees the answer when it starts at least
 * `answerMs` after the frame went (the agent's answer written by then).
 */
export function answerReads(
  answerMs: number,
  pollMs: readonly number[],
  requestMs: number,
): { reads: number; ms: number } {
  let at = 0;
  for (let read = 0; read < 10_000; read++) {
    at += pollMs[Math.min(read, pollMs.length - 1)] ?? 0;
    const seen = at >= answerMs;
    at += requestMs;
    if (seen) return { reads: read + 1, ms: at };
  }
  throw new Error(`no read sees an answer after ${answerMs} ms`);
}

/** WebSocket messages a frame of `bytes` is billed as: one per 32 KB started. */
export function billedWebSocketMessages(bytes: number): number {
  return Math.max(1, Math.ceil(bytes / API_GATEWAY_PRICES.webSocketMeteringBytes));
}

/** Billed duration of an invocation on AWS, per the assumptions, in ms. */
export function billedMs(invocation: Invocation, assumptions: Assumptions): number {
  const ms =
    assumptions.invocationOverheadMs +
    Math.max(chainMs(invocation.spans, assumptions), invocation.waitedMs ?? 0);
  return Math.ceil(ms / LAMBDA_PRICES.billingGranularityMs) * LAMBDA_PRICES.billingGranularityMs;
}

function gbSecondRate(deployment: Deployment, service: string): Rate {
  return functionOf(deployment, service).architecture === 'arm64'
    ? LAMBDA_PRICES.arm64GbSecond
    : LAMBDA_PRICES.x86GbSecond;
}

/** Lambda lines (requests, duration) of these invocations, `per` callbacks (or months). */
function lambdaLines(
  invocations: readonly Invocation[],
  per: number,
  deployment: Deployment,
  assumptions: Assumptions,
  scale: Scale,
): CostLine[] {
  const services = [...new Set(invocations.map((i) => i.service))];
  return services.flatMap((service): CostLine[] => {
    const mine = invocations.filter((i) => i.service === service);
    const memoryGb = functionOf(deployment, service).memoryMb / 1024;
    const gbSeconds = mine.reduce((sum, i) => sum + (billedMs(i, assumptions) / 1000) * memoryGb, 0);
    const fn = functionOf(deployment, service);
    return [
      line('Lambda', `${service}: invocations`, 'requests', LAMBDA_PRICES.request, mine.length / per, scale),
      line(
        'Lambda',
        `${service}: duration (${fn.memoryMb} MB, ${fn.architecture})`,
        'GB-s',
        gbSecondRate(deployment, service),
        gbSeconds / per,
        scale,
      ),
    ];
  });
}

/** DynamoDB read and write lines, per `per` callbacks (or runs). */
function dynamoLines(dynamo: Readonly<Record<string, Units>>, per: number, scale: Scale): CostLine[] {
  const entries = Object.entries(dynamo).toSorted(([a], [b]) => a.localeCompare(b));
  return [
    ...entries.flatMap(([key, units]) =>
      units.writeUnits > 0
        ? [
            line(
              'DynamoDB',
              `${readableName(key)}: writes`,
              'WRU',
              DYNAMODB_PRICES.writeRequestUnit,
              units.writeUnits / per,
              scale,
            ),
          ]
        : [],
    ),
    ...entries.flatMap(([key, units]) =>
      units.readUnits > 0
        ? [
            line(
              'DynamoDB',
              `${readableName(key)}: reads`,
              'RRU',
              DYNAMODB_PRICES.readRequestUnit,
              units.readUnits / per,
              scale,
            ),
          ]
        : [],
    ),
  ];
}

function sqsLines(
  sqs: Readonly<Record<string, { requests: number }>>,
  per: number,
  scale: Scale,
  deployment: Deployment,
): CostLine[] {
  return Object.entries(sqs)
    .toSorted(([a], [b]) => a.localeCompare(b))
    .map(([key, { requests }]) => {
      const [queue = '', ...action] = key.split(' ');
      const name = deployment.queues.find((q) => q.logicalId === queue)?.name ?? queue;
      return line(
        'SQS',
        `${name} queue: ${action.join(' ')}`,
        'requests',
        SQS_PRICES.request,
        requests / per,
        scale,
      );
    });
}

/** What one callback of a measured scenario costs, line by line, and per million callbacks. */
export function priceScenario(
  measured: Measured,
  deployment: Deployment,
  assumptions: Assumptions,
): ScenarioCost {
  const per = measured.callbacks;
  const lines: CostLine[] = [];
  const httpRequests = measured.apiRequestBytes.reduce(
    (total, bytes) => total + Math.max(1, Math.ceil(bytes / API_GATEWAY_PRICES.httpMeteringBytes)),
    0,
  );
  lines.push(
    line(
      'API Gateway',
      'HTTP API requests (512 KB each)',
      'requests',
      API_GATEWAY_PRICES.httpRequest,
      httpRequests / per,
      PER_CALLBACK,
    ),
  );
  const webSocket = measured.webSocket;
  if (webSocket !== undefined && webSocket.billed > 0) {
    lines.push(
      line(
        'API Gateway',
        'WebSocket messages (32 KB each): delivery frames sent, answers received',
        'messages',
        API_GATEWAY_PRICES.webSocketMessage,
        webSocket.billed / per,
        PER_CALLBACK,
      ),
    );
  }
  lines.push(...lambdaLines(measured.invocations, per, deployment, assumptions, PER_CALLBACK));
  lines.push(...dynamoLines(measured.dynamo, per, PER_CALLBACK));

  // Storage: each byte for as long as its TTL keeps it; continuous backups bill table data only.
  const stored = Object.entries(measured.stored);
  const gbMonths = (byteSeconds: number) => byteSeconds / GB / SECONDS_PER_MONTH / per;
  const storage = sum(stored.map(([, s]) => gbMonths(s.byteSeconds)));
  lines.push(
    line(
      'DynamoDB',
      'storage, tables and indexes, until TTL',
      'GB-month',
      DYNAMODB_PRICES.storageGbMonth,
      storage,
      PER_CALLBACK,
    ),
  );
  const backedUp = new Set(deployment.tables.filter((t) => t.pointInTimeRecovery).map((t) => t.logicalId));
  const backup = sum(stored.filter(([key]) => backedUp.has(key)).map(([, s]) => gbMonths(s.byteSeconds)));
  lines.push(
    line(
      'DynamoDB',
      'point-in-time recovery, table data',
      'GB-month',
      DYNAMODB_PRICES.pointInTimeRecoveryGbMonth,
      backup,
      PER_CALLBACK,
    ),
  );
  lines.push(
    line(
      'DynamoDB Streams',
      'GetRecords by the pipe (at most 1000 records each)',
      'read requests',
      DYNAMODB_PRICES.streamReadRequest,
      measured.stream.records / DYNAMODB_BILLING.streamRecordsPerGetRecords / per,
      PER_CALLBACK,
    ),
  );
  lines.push(
    line(
      'EventBridge Pipes',
      'events past the filter (64 KB each)',
      'requests',
      EVENTBRIDGE_PRICES.pipeRequest,
      measured.stream.pipeRequests / per,
      PER_CALLBACK,
    ),
  );
  lines.push(...sqsLines(measured.sqs, per, PER_CALLBACK, deployment));
  lines.push(
    line(
      'KMS',
      'data keys: GenerateDataKey and Decrypt (once per function instance and key)',
      'requests',
      KMS_PRICES.request,
      sum(Object.values(measured.kms)) / per,
      PER_CALLBACK,
    ),
  );
  const callbackBytes = {
    request: measured.callbackBytes.requests / per,
    response: measured.callbackBytes.responses / per,
  };
  const posted = measured.invocations.filter((i) => i.service === 'dispatcher');
  const pushBytes =
    webSocket !== undefined && webSocket.sent > 0
      ? {
          frame: webSocket.sentBytes / per,
          request: sum(posted.map((i) => i.postBytes ?? 0)) / per,
        }
      : undefined;
  if (deployment.egress !== undefined) {
    lines.push(...egressLines(measured, deployment.egress, callbackBytes, assumptions));
  }
  const platformBytes = platformLogBytes(measured.invocations, deployment, assumptions);
  lines.push(
    line(
      'CloudWatch',
      'logs ingested',
      'GB',
      CLOUDWATCH_PRICES.logsIngestedGb,
      (measured.logBytes + platformBytes) / GB / per,
      PER_CALLBACK,
    ),
  );

  const byService = Object.fromEntries(
    SERVICES.map((service) => [service, sum(lines.filter((l) => l.service === service).map((l) => l.usd))]),
  ) as Record<Service, number>;
  const perTable = (kind: 'writeUnits' | 'readUnits') =>
    Object.fromEntries(
      Object.entries(measured.dynamo)
        .filter(([, units]) => units[kind] > 0)
        .map(([key, units]) => [readableName(key), units[kind] / per]),
    );
  return {
    name: measured.scenario.name,
    description: measured.scenario.description,
    perMillionCallbacksUsd: sum(lines.map((l) => l.usd)),
    callbacks: measured.callbacks,
    failedConditions: measured.failedConditions,
    failedTransactions: measured.failedTransactions,
    byService,
    lines,
    writeUnitsPerCallback: perTable('writeUnits'),
    readUnitsPerCallback: perTable('readUnits'),
    callbackBytes,
    ...(pushBytes === undefined ? {} : { pushBytes }),
    dataTransferOutUsdPerMillion: priceOf(
      DATA_TRANSFER_PRICES.outToInternetGb,
      (((pushBytes?.frame ?? callbackBytes.request) + assumptions.callbackOverheadBytes / 2) / GB) * MILLION,
    ),
  };
}

/**
 * With fixed egress addresses: the NAT gateways process every byte of the callbacks sent from
 * the VPC, both ways (the DynamoDB traffic of those functions takes the free gateway endpoint),
 * and of the frames posted to API Gateway's management API, a public endpoint too.
 */
function egressLines(
  measured: Measured,
  egress: EgressSpec,
  callbackBytes: ScenarioCost['callbackBytes'],
  assumptions: Assumptions,
): CostLine[] {
  const attached = measured.invocations.filter((i) => egress.attachedServices.includes(i.service));
  if (egress.natGateways === 0) return [];
  const lines: CostLine[] = [];
  const sent = sum(attached.map((i) => i.callbacks));
  if (sent > 0) {
    const share = sent / measured.callbacks;
    const bytes =
      (callbackBytes.request + callbackBytes.response + assumptions.callbackOverheadBytes) * share;
    lines.push(
      line(
        'VPC',
        'NAT gateways: the callbacks processed (requests, responses, TLS and TCP/IP)',
        'GB',
        VPC_PRICES.natGatewayProcessedGb,
        bytes / GB,
        PER_CALLBACK,
      ),
    );
  }
  const posts = sum(attached.map((i) => i.posts ?? 0));
  if (posts > 0) {
    const bytes =
      sum(attached.map((i) => i.postBytes ?? 0)) +
      posts * (assumptions.postOverheadBytes + assumptions.callbackOverheadBytes);
    lines.push(
      line(
        'VPC',
        'NAT gateways: the frames posted to the management API (requests, responses, TLS and TCP/IP)',
        'GB',
        VPC_PRICES.natGatewayProcessedGb,
        bytes / measured.callbacks / GB,
        PER_CALLBACK,
      ),
    );
  }
  return lines;
}

/** What one run of each scheduled function used (harness.ts measureSchedules). */
export type ScheduledRuns = Readonly<Record<string, Pick<Measured, 'invocations' | 'dynamo' | 'sqs'>>>;

/**
 * What the deployment pays each month apart from its callbacks: schedules, pollers, alarms, and
 * the dispatcher's custom metrics (billed for the hours they are written, so a month with
 * callbacks every hour bills each one once).
 */
export function priceIdleMonth(
  deployment: Deployment,
  runs: ScheduledRuns,
  assumptions: Assumptions,
): CostLine[] {
  const lines: CostLine[] = [];
  const once: Scale = { quantity: 1, usd: 1 };
  for (const { service, everySeconds } of deployment.schedules) {
    const run = runs[service];
    if (run === undefined) throw new Error(`no measured run of ${service}`);
    const monthly: Scale = {
      quantity: SECONDS_PER_MONTH / everySeconds,
      usd: SECONDS_PER_MONTH / everySeconds,
    };
    lines.push(
      line(
        'EventBridge',
        `${service}: scheduled invocations`,
        'invocations',
        EVENTBRIDGE_PRICES.scheduledInvocation,
        1,
        monthly,
      ),
    );
    lines.push(...lambdaLines(run.invocations, 1, deployment, assumptions, monthly));
    lines.push(...dynamoLines(run.dynamo, 1, monthly));
    lines.push(...sqsLines(run.sqs, 1, monthly, deployment));
  }
  const polled = deployment.queues.filter((q) => q.consumer !== undefined).length;
  const receives = (POLLING.sqsEventSourcePollers * SECONDS_PER_MONTH) / POLLING.sqsLongPollSeconds;
  lines.push(
    line(
      'SQS',
      `empty receives of ${polled} event sources (${POLLING.sqsEventSourcePollers} pollers each, ${POLLING.sqsLongPollSeconds} s waits)`,
      'requests',
      SQS_PRICES.request,
      receives * polled,
      once,
    ),
  );
  lines.push(
    line(
      'DynamoDB Streams',
      `the pipe's GetRecords (${assumptions.streamShards} shard, ${POLLING.streamPollsPerSecondPerShard} a second)`,
      'read requests',
      DYNAMODB_PRICES.streamReadRequest,
      assumptions.streamShards * POLLING.streamPollsPerSecondPerShard * SECONDS_PER_MONTH,
      once,
    ),
  );
  lines.push(
    line(
      'KMS',
      'the key sealing signing secrets (first year; each yearly rotation adds as much)',
      'keys',
      KMS_PRICES.keyMonth,
      deployment.keys.length,
      once,
    ),
  );
  lines.push(
    line(
      'CloudWatch',
      'alarms (per metric evaluated)',
      'alarm metrics',
      CLOUDWATCH_PRICES.alarmMetricMonth,
      deployment.alarmMetrics,
      once,
    ),
  );
  lines.push(
    line(
      'CloudWatch',
      'dashboards',
      'dashboards',
      CLOUDWATCH_PRICES.dashboardMonth,
      deployment.dashboards,
      once,
    ),
  );
  lines.push(
    line(
      'CloudWatch',
      "custom metrics: the dispatcher's outcomes and latency, in a month with callbacks",
      'metrics',
      CLOUDWATCH_PRICES.customMetricMonth,
      // Each name with the one `service` dimension, written whenever callbacks are made.
      Object.keys(DELIVERY_METRICS).length,
      once,
    ),
  );
  if (deployment.egress !== undefined) lines.push(...egressMonthLines(deployment.egress));
  return lines;
}

/** What a network of fixed egress addresses bills by the hour, for a month. */
function egressMonthLines(egress: EgressSpec): CostLine[] {
  const month: Scale = { quantity: HOURS_PER_MONTH, usd: HOURS_PER_MONTH };
  const lines = [
    line(
      'VPC',
      `NAT gateways (${egress.natGateways}, one per Availability Zone)`,
      'gateway-hours',
      VPC_PRICES.natGatewayHour,
      egress.natGateways,
      month,
    ),
    line(
      'VPC',
      "public IPv4 addresses: the NAT gateways' Elastic IPs",
      'address-hours',
      VPC_PRICES.publicIpv4Hour,
      egress.publicIpv4Addresses,
      month,
    ),
  ];
  if (egress.interfaceEndpointZones > 0) {
    lines.push(
      line(
        'VPC',
        'interface endpoints, per Availability Zone',
        'endpoint-hours',
        PRIVATELINK_PRICES.interfaceEndpointZoneHour,
        egress.interfaceEndpointZones,
        month,
      ),
    );
  }
  for (const service of egress.gatewayEndpoints) {
    lines.push({
      service: 'VPC',
      item: `gateway endpoint (${service}): free`,
      quantity: 1,
      unit: 'endpoints',
      usd: 0,
    });
  }
  return lines;
}

/** What one poll of a partner's events used: its request's invocations and reads. */
export type MeasuredPoll = Pick<Measured, 'invocations' | 'dynamo'>;

export interface PollingCost {
  /** The longest wait, in seconds, of the long poll measured. */
  readonly waitSeconds: number;
  /** One long poll that waited the whole time and answered empty. */
  readonly idleLongPoll: readonly CostLine[];
  readonly idleLongPollUsd: number;
  /** One poll answered at once (empty). */
  readonly shortPoll: readonly CostLine[];
  readonly shortPollUsd: number;
  /** A month of a partner long polling without pause, with no events to wait for. */
  readonly longPollingMonthUsd: number;
  /** A month of a partner polling once a second instead. */
  readonly pollingEverySecondMonthUsd: number;
}

function pollLines(poll: MeasuredPoll, deployment: Deployment, assumptions: Assumptions): CostLine[] {
  const once: Scale = { quantity: 1, usd: 1 };
  return [
    line('API Gateway', 'HTTP API request', 'requests', API_GATEWAY_PRICES.httpRequest, 1, once),
    ...lambdaLines(poll.invocations, 1, deployment, assumptions, once),
    ...dynamoLines(poll.dynamo, 1, once),
  ];
}

/**
 * What polling costs a partner: a long poll that waits `waitSeconds` for nothing, against a
 * poll answered at once; and a month of each, back to back (docs/cost.md, "Long polling").
 */
export function pricePolling(
  longPoll: MeasuredPoll,
  shortPoll: MeasuredPoll,
  waitSeconds: number,
  deployment: Deployment,
  assumptions: Assumptions,
): PollingCost {
  const idleLongPoll = pollLines(longPoll, deployment, assumptions);
  const short = pollLines(shortPoll, deployment, assumptions);
  const idleLongPollUsd = sum(idleLongPoll.map((l) => l.usd));
  const shortPollUsd = sum(short.map((l) => l.usd));
  return {
    waitSeconds,
    idleLongPoll,
    idleLongPollUsd,
    shortPoll: short,
    shortPollUsd,
    longPollingMonthUsd: (idleLongPollUsd * SECONDS_PER_MONTH) / waitSeconds,
    pollingEverySecondMonthUsd: shortPollUsd * SECONDS_PER_MONTH,
  };
}

function sum(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

/** One step of keeping an agent connected, as measured once, and how often a month it comes. */
export interface ConnectionStepCost {
  readonly step: ConnectionStep;
  readonly description: string;
  /** Times a month. */
  readonly perMonth: number;
  /** What it takes once: quantity and USD for one. */
  readonly once: readonly CostLine[];
  readonly onceUsd: number;
  readonly monthUsd: number;
}

export type ConnectionStep = 'connectInfo' | 'connect' | 'firstPing' | 'ping' | 'disconnect';

const STEP_DESCRIPTIONS: Readonly<Record<ConnectionStep, string>> = {
  connectInfo: 'GET /v1/connect-info before each connect (the authorizer runs: its cache is long cold)',
  connect: '$connect: the key checked, the connection recorded',
  firstPing: 'the first ping: hello, the connection made ready, parked tries looked for, pong',
  ping: 'every other ping: the connection heard from, pong',
  disconnect: '$disconnect at the 2-hour limit: the connection forgotten',
};

/** What keeping one agent connected costs a month, whatever it is sent (docs/cost.md). */
export interface ConnectionCost {
  readonly minutesPerMonth: number;
  /** Connections a month: API Gateway closes each after WEBSOCKET_LIMITS.connectionSeconds. */
  readonly connectionsPerMonth: number;
  /** Pings a month, one every HEARTBEAT_SECONDS; the first of each connection is `firstPing`. */
  readonly pingsPerMonth: number;
  readonly steps: readonly ConnectionStepCost[];
  /** The month, line by line: quantity and USD per month. */
  readonly month: readonly CostLine[];
  readonly monthUsd: number;
  readonly byService: Readonly<Record<Service, number>>;
}

/** The lines of one measured step, `scale` times. */
function stepLines(
  step: MeasuredStep,
  deployment: Deployment,
  assumptions: Assumptions,
  scale: Scale,
): CostLine[] {
  const lines: CostLine[] = [];
  if (step.httpApiRequests > 0) {
    lines.push(
      line(
        'API Gateway',
        'HTTP API requests',
        'requests',
        API_GATEWAY_PRICES.httpRequest,
        step.httpApiRequests,
        scale,
      ),
    );
  }
  if (step.webSocket.billed > 0) {
    lines.push(
      line(
        'API Gateway',
        `WebSocket messages (${step.webSocket.received} received, ${step.webSocket.sent} sent)`,
        'messages',
        API_GATEWAY_PRICES.webSocketMessage,
        step.webSocket.billed,
        scale,
      ),
    );
  }
  lines.push(...lambdaLines(step.invocations, 1, deployment, assumptions, scale));
  lines.push(...dynamoLines(step.dynamo, 1, scale));
  lines.push(...sqsLines(step.sqs, 1, scale, deployment));
  const platformBytes = platformLogBytes(step.invocations, deployment, assumptions);
  if (step.logBytes + platformBytes > 0) {
    lines.push(
      line(
        'CloudWatch',
        'logs ingested',
        'GB',
        CLOUDWATCH_PRICES.logsIngestedGb,
        (step.logBytes + platformBytes) / GB,
        scale,
      ),
    );
  }
  return lines;
}

/**
 * A month of one agent connected all the time, from the measured steps: API Gateway's
 * connection minutes; a connection every WEBSOCKET_LIMITS.connectionSeconds (2 hours), each
 * asked for, opened, made ready by its first ping and closed; a ping every HEARTBEAT_SECONDS
 * (30 s), each two messages and an invocation; and the connection's items stored all month.
 */
export function priceConnectionMonth(
  measured: MeasuredConnection,
  deployment: Deployment,
  assumptions: Assumptions,
): ConnectionCost {
  const minutesPerMonth = SECONDS_PER_MONTH / 60;
  const connectionsPerMonth = SECONDS_PER_MONTH / WEBSOCKET_LIMITS.connectionSeconds;
  const pingsPerMonth = SECONDS_PER_MONTH / HEARTBEAT_SECONDS;
  const times: Record<ConnectionStep, number> = {
    connectInfo: connectionsPerMonth,
    connect: connectionsPerMonth,
    firstPing: connectionsPerMonth,
    ping: pingsPerMonth - connectionsPerMonth,
    disconnect: connectionsPerMonth,
  };
  const once: Scale = { quantity: 1, usd: 1 };
  const steps = (Object.keys(times) as ConnectionStep[]).map((step): ConnectionStepCost => {
    const lines = stepLines(measured[step], deployment, assumptions, once);
    const onceUsd = sum(lines.map((l) => l.usd));
    return {
      step,
      description: STEP_DESCRIPTIONS[step],
      perMonth: times[step],
      once: lines,
      onceUsd,
      monthUsd: onceUsd * times[step],
    };
  });
  const month: CostLine[] = [
    line(
      'API Gateway',
      'WebSocket connection minutes (one connection, all month)',
      'minutes',
      API_GATEWAY_PRICES.webSocketConnectionMinute,
      minutesPerMonth,
      once,
    ),
    ...steps.flatMap(({ step, perMonth }) =>
      stepLines(measured[step], deployment, assumptions, { quantity: perMonth, usd: perMonth }).map((l) => ({
        ...l,
        item: `${step}: ${l.item}`,
      })),
    ),
  ];
  // The connection's items, stored while it is open: all month, one connection after another.
  const stored = Object.entries(measured.stored);
  const gbMonths = sum(stored.map(([, bytes]) => bytes)) / GB;
  const backedUp = new Set(deployment.tables.filter((t) => t.pointInTimeRecovery).map((t) => t.logicalId));
  month.push(
    line(
      'DynamoDB',
      "storage: the connection's items",
      'GB-month',
      DYNAMODB_PRICES.storageGbMonth,
      gbMonths,
      once,
    ),
    line(
      'DynamoDB',
      "point-in-time recovery: the connection's items",
      'GB-month',
      DYNAMODB_PRICES.pointInTimeRecoveryGbMonth,
      sum(stored.filter(([key]) => backedUp.has(key)).map(([, bytes]) => bytes)) / GB,
      once,
    ),
  );
  const byService = Object.fromEntries(
    SERVICES.map((service) => [service, sum(month.filter((l) => l.service === service).map((l) => l.usd))]),
  ) as Record<Service, number>;
  return {
    minutesPerMonth,
    connectionsPerMonth,
    pingsPerMonth,
    steps,
    month,
    monthUsd: sum(month.map((l) => l.usd)),
    byService,
  };
}

/**
 * Lambda's START/END/REPORT lines of the invocations, in bytes: written only by functions whose
 * system log level is INFO or DEBUG.
 */
function platformLogBytes(
  invocations: readonly { service: string }[],
  deployment: Deployment,
  assumptions: Assumptions,
): number {
  return sum(
    invocations.map((i) => {
      const level = functionOf(deployment, i.service).systemLogLevel;
      return level === 'INFO' || level === 'DEBUG' ? assumptions.platformLogBytesPerInvocation : 0;
    }),
  );
}
