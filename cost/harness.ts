/**
 * Runs the dispatcher's own Lambda entries (functions/<name>/lambda.ts, with the environment
 * the templates give them) on DynamoDB Local and counts what a callback costs: the API takes
 * the publishes, the events table's real stream records go through the pipe's filter and
 * template as deployed onto the fan-out queue (ten to a SendMessageBatch), and each queue is
 * drained into its consumer in batches of its event source's size, until the receiver has
 * every callback. The queues are played here (meter.ts records every send); everything else
 * is the code that runs on AWS, against the tables the templates describe.
 *
 * Connection subscriptions run the same way, with an agent played here: the connections
 * function's own entry takes its `$connect` and its frames (events shaped as API Gateway's
 * WebSocket API passes them), and the management API is answered in place of API Gateway
 * (meter.ts recordConnections): each frame posted is counted as the messages it is billed as,
 * and a delivery is acked with an `ack` frame, through the route API Gateway selects for it, as
 * the agent does.
 *
 * The entries read their environment and create their clients once, at import, as Lambda
 * does: one process measures with one set of tables (`Harness.start` once per process).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  type AttributeValue,
  CreateTableCommand,
  DeleteTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  type GlobalSecondaryIndex,
  ScanCommand,
} from '@aws-sdk/client-dynamodb';
import {
  type _Record,
  DescribeStreamCommand,
  DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
} from '@aws-sdk/client-dynamodb-streams';
import type { KMSClient } from '@aws-sdk/client-kms';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { ANSWER_POLL_MS } from '../functions/adapters/aws/connections.ts';
import { KmsSecretCipher } from '../functions/adapters/aws/kms-cipher.ts';
import { DynamoPartnerStore } from '../functions/adapters/aws/partners.ts';
import { DynamoSubscriptionStore } from '../functions/adapters/aws/subscriptions.ts';
import { systemClock } from '../functions/adapters/clock.ts';
import { systemResolver } from '../functions/adapters/dns.ts';
import type { ApiRequest } from '../functions/api/handler.ts';
import {
  API_GATEWAY_PRICES,
  DYNAMODB_BILLING,
  EVENTBRIDGE_PRICES,
  SQS_PRICES,
} from '../functions/aws-prices.ts';
import { LAMBDA_ENV } from '../functions/config.ts';
import { type ApiKeyView, createPartner } from '../functions/core/partners.ts';
import { matchesPattern } from '../functions/core/patterns.ts';
import { createSubscription } from '../functions/core/subscriptions.ts';
import { PROJECT_ROOT } from '../lib/constructs/function.ts';
import { lambdaContext } from '../local/lambda-context.ts';
import { renderInputTemplate } from '../test/aws/pipe-transform.ts';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../test/dynamodb-local/server.ts';
import {
  type Deployment,
  type EnvValue,
  type FunctionSpec,
  functionOf,
  type TableSpec,
} from './deployment.ts';
import { itemBytes } from './item-size.ts';
import {
  asRequest,
  type Invocation,
  indexEntry,
  type MeterSink,
  meterDynamo,
  type PostedFrame,
  postToConnectionHeadBytes,
  type RequestHook,
  recordConnections,
  recordKms,
  recordSqs,
  type SentMessage,
  sqsRequests,
  type Units,
  Usage,
  Waves,
  type WebSocketUsage,
} from './meter.ts';

/** One way of publishing: how many events, how many a request, how big. */
export interface ScenarioSpec {
  readonly name: string;
  readonly description: string;
  /** Events published; with one subscription, also the callbacks. */
  readonly events: number;
  /** Events per API request: 1 is POST /v1/events, more is POST /v1/events/batch. */
  readonly eventsPerRequest: number;
  /** Bytes of each published event's JSON ({partnerId, type, payload}). */
  readonly eventBytes: number;
  /**
   * How the subscription is sent its deliveries: POSTed to a URL, or pushed down a connection
   * an agent keeps open (a connection subscription). @default 'url'
   */
  readonly transport?: 'url' | 'connection';
  /**
   * Events published with an ordering key, spread over this many keys, to a subscription with
   * `ordering: "key"`. @default none: no key, no ordering
   */
  readonly orderingKeys?: number;
}

/** Stored bytes of one table or index, and the same times the seconds each byte is kept. */
export interface Stored {
  bytes: number;
  byteSeconds: number;
  /** Bytes of items that never expire (a partner's counter): per partner, not per callback. */
  persistentBytes: number;
}

/** What a scenario used in all (divide by `callbacks` for one callback). */
export interface Measured {
  readonly scenario: ScenarioSpec;
  readonly callbacks: number;
  /** Size of each API request's body. */
  readonly apiRequestBytes: readonly number[];
  readonly invocations: readonly Invocation[];
  readonly dynamo: Readonly<Record<string, Units>>;
  readonly sqs: Readonly<Record<string, { requests: number; messages: number }>>;
  /** KMS requests, by command. */
  readonly kms: Readonly<Record<string, number>>;
  /** Stream records written, events the pipe passed, and its billed requests (64 KB each). */
  readonly stream: { records: number; pipeEvents: number; pipeRequests: number };
  /** Keyed `<table>` or `<table>/<index>`. */
  readonly stored: Readonly<Record<string, Stored>>;
  readonly logBytes: number;
  readonly failedConditions: number;
  readonly failedTransactions: number;
  /**
   * The callbacks' bytes on the wire, as the receiver counts them on its connections: the
   * requests (request line, headers, signed body) and the responses (status line and headers;
   * this receiver answers 204 with Node's default headers). Plain HTTP: TLS and TCP/IP add to it.
   */
  readonly callbackBytes: { readonly requests: number; readonly responses: number };
  /** Frames through the WebSocket API (pushed deliveries and their acks). @default - none */
  readonly webSocket?: WebSocketUsage;
}

/** What one step of an agent's connection used (a ping, a `$connect`…). */
export interface MeasuredStep {
  readonly invocations: readonly Invocation[];
  readonly dynamo: Readonly<Record<string, Units>>;
  readonly sqs: Readonly<Record<string, { requests: number; messages: number }>>;
  readonly webSocket: WebSocketUsage;
  /** HTTP API requests made (GET /v1/connect-info). */
  readonly httpApiRequests: number;
  readonly logBytes: number;
}

/** An agent's connection, step by step, and what it keeps stored while open. */
export interface MeasuredConnection {
  /** GET /v1/connect-info, as the agent asks before each connect: the authorizer and the API. */
  readonly connectInfo: MeasuredStep;
  readonly connect: MeasuredStep;
  /** The connection's first frame (a ping): hello, ready, the parked tries released, pong. */
  readonly firstPing: MeasuredStep;
  /** Any later ping. */
  readonly ping: MeasuredStep;
  readonly disconnect: MeasuredStep;
  /** Bytes of the connection's items while it is open, by table (logical id). */
  readonly stored: Readonly<Record<string, number>>;
}

/** An agent connected to the WebSocket API, as the harness plays it. */
interface Agent {
  readonly connectionId: string;
  readonly apiKey: string;
  open: boolean;
  /** The types of the frames it was sent, in order. */
  readonly received: string[];
  /** Deliveries acked. */
  acked: number;
}

/** A pushed try the agent has yet to answer, and the dispatcher's reads of its answer so far. */
interface PendingAnswer {
  readonly agent: Agent;
  readonly deliveryId: string;
  readonly attempt: number;
  reads: number;
  /** The agent's ack, once sent: written when this settles. */
  answered?: Promise<unknown>;
}

/** A payload that makes the published event's JSON exactly `bytes` long. */
export function publishedEvent(partnerId: string, bytes: number, n: number) {
  const base = { partnerId, type: 'order.created', payload: { orderId: `o_${n}`, data: '' } };
  const pad = bytes - Buffer.byteLength(JSON.stringify(base));
  if (pad < 0) throw new Error(`an event cannot be as small as ${bytes} bytes`);
  return { ...base, payload: { ...base.payload, data: 'x'.repeat(pad) } };
}

type Handler = (event: unknown, context: ReturnType<typeof lambdaContext>) => Promise<unknown>;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const ACCOUNT = '000000000000';
/** How long the receiver holds each callback, so that those sent together answer together. */
const CALLBACK_WAVE_MS = 50;

export interface HarnessOptions {
  /** DynamoDB Local's endpoint. */
  readonly endpoint: string;
  readonly deployment: Deployment;
  /**
   * Which of the dispatcher's reads of a pushed try's answer sees it (model.ts answerReads):
   * the agent acks just after the read before it, so each push makes exactly that many, as on
   * AWS with an agent that answers in Assumptions.agentAnswerMs. @default 1
   */
  readonly agentAnswerRead?: number;
}

export class Harness {
  static #started = false;

  readonly #deployment: Deployment;
  readonly #endpoint: string;
  readonly #raw: DynamoDBClient;
  readonly #streams: DynamoDBStreamsClient;
  /** The invocation whose code is running (invocations may run side by side: a push and its ack). */
  readonly #current = new AsyncLocalStorage<Invocation>();
  /** Invocations under way, the first started first: the receiver's callbacks go to the first. */
  readonly #running: Invocation[] = [];
  readonly #sink: MeterSink = ((harness: Harness) => ({
    usage: undefined,
    get invocation() {
      return harness.#current.getStore() ?? harness.#running[0];
    },
    waves: new Waves(),
  }))(this);
  readonly #agentAnswerRead: number;
  readonly #agents = new Map<string, Agent>();
  readonly #pending = new Map<string, PendingAnswer>();
  /** Acks under way (the agent's `ack` frames, their invocations running), and what failed of them. */
  readonly #answering = new Set<Promise<unknown>>();
  readonly #answerFailures: unknown[] = [];
  #connectionsMock: { restore(): void } | undefined;
  /** Invocations capturing stdout and stderr, and the writers they replaced. */
  #capturing = 0;
  #writes: { stdout: typeof process.stdout.write; stderr: typeof process.stderr.write } | undefined;
  /** Logical table id → physical name, and back. */
  readonly #tableNames = new Map<string, string>();
  readonly #tables = new Map<string, TableSpec>();
  readonly #queues = new Map<string, string[]>();
  readonly #handlers = new Map<string, Handler>();
  #kmsClient: KMSClient | undefined;
  #receiver: Server | undefined;
  /** The meter's own client, for its reads around transactions. */
  #meterClient: DynamoDBClient | undefined;
  #receiverUrl = '';
  /** Every connection the receiver accepted: their byte counts outlive them. */
  readonly #receiverSockets = new Set<Socket>();
  #callbacks = 0;
  #logged: string[] = [];

  private constructor(options: HarnessOptions) {
    this.#deployment = options.deployment;
    this.#endpoint = options.endpoint;
    this.#agentAnswerRead = options.agentAnswerRead ?? 1;
    if (!Number.isInteger(this.#agentAnswerRead) || this.#agentAnswerRead < 1)
      throw new Error('agentAnswerRead must be a whole number from 1');
    const config = { endpoint: options.endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS };
    this.#raw = new DynamoDBClient(config);
    this.#streams = new DynamoDBStreamsClient(config);
  }

  /**
   * Creates the tables, points the SDK at DynamoDB Local, meters the functions' clients and
   * imports their entries. Once per process: the entries keep what they read at import.
   */
  static async start(options: HarnessOptions): Promise<Harness> {
    if (Harness.#started) throw new Error('the cost harness starts once per process');
    Harness.#started = true;
    const harness = new Harness(options);
    await harness.#createTables();
    await harness.#startReceiver();
    await harness.#importFunctions();
    return harness;
  }

  async stop(): Promise<void> {
    this.#connectionsMock?.restore();
    this.#receiver?.close();
    this.#receiver?.closeAllConnections();
    await Promise.all(
      [...this.#tableNames.values()].map((name) =>
        this.#raw.send(new DeleteTableCommand({ TableName: name })),
      ),
    );
    this.#raw.destroy();
    this.#streams.destroy();
    this.#meterClient?.destroy();
  }

  async #createTables(): Promise<void> {
    const prefix = `cost-${randomBytes(4).toString('hex')}`;
    await Promise.all(
      this.#deployment.tables.map(async (table) => {
        const name = `${prefix}-${table.logicalId}`;
        const indexes: GlobalSecondaryIndex[] = table.indexes.map((index) => ({
          IndexName: index.name,
          KeySchema: index.keys.map((k) => ({ AttributeName: k.name, KeyType: k.type })),
          Projection: {
            ProjectionType: index.projection,
            ...(index.projection === 'INCLUDE' ? { NonKeyAttributes: [...index.nonKeyAttributes] } : {}),
          },
        }));
        await this.#raw.send(
          new CreateTableCommand({
            TableName: name,
            BillingMode: 'PAY_PER_REQUEST',
            AttributeDefinitions: Object.entries(table.attributeTypes).map(
              ([AttributeName, AttributeType]) => ({
                AttributeName,
                AttributeType,
              }),
            ),
            KeySchema: table.keys.map((k) => ({ AttributeName: k.name, KeyType: k.type })),
            ...(indexes.length > 0 ? { GlobalSecondaryIndexes: indexes } : {}),
            ...(table.streamViewType === undefined
              ? {}
              : {
                  StreamSpecification: {
                    StreamEnabled: true,
                    StreamViewType: table.streamViewType as 'NEW_IMAGE',
                  },
                }),
          }),
        );
        this.#tableNames.set(table.logicalId, name);
        this.#tables.set(name, table);
      }),
    );
  }

  async #startReceiver(): Promise<void> {
    // The partner's endpoint: it answers every callback 204, as a first try that succeeds.
    const server = createServer((request, response) => {
      if (this.#sink.invocation !== undefined) this.#sink.invocation.callbacks += 1;
      this.#callbacks += 1;
      void asRequest(this.#sink, 'callback', async () => {
        request.resume();
        await once(request, 'end');
        // Callbacks sent side by side reach the server a moment apart: wait for them to be one wave.
        await new Promise((resolve) => setTimeout(resolve, CALLBACK_WAVE_MS));
      }).then(() => response.writeHead(204).end());
    });
    server.on('connection', (socket) => this.#receiverSockets.add(socket));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    this.#receiver = server;
    this.#receiverUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks`;
  }

  /** Bytes the receiver has read (callback requests) and written (responses), all told. */
  #receiverBytes(): { requests: number; responses: number } {
    let requests = 0;
    let responses = 0;
    for (const socket of this.#receiverSockets) {
      requests += socket.bytesRead;
      responses += socket.bytesWritten;
    }
    return { requests, responses };
  }

  #keyArn(logicalId: string): string {
    return `arn:aws:kms:${LOCAL_REGION}:${ACCOUNT}:key/${logicalId}`;
  }

  #queueUrl(logicalId: string): string {
    return `https://sqs.${LOCAL_REGION}.amazonaws.com/${ACCOUNT}/${logicalId}`;
  }

  #queueOfUrl = (url: string): string => {
    const logicalId = url.slice(url.lastIndexOf('/') + 1);
    if (!this.#deployment.queues.some((q) => q.logicalId === logicalId))
      throw new Error(`no queue at ${url}`);
    return logicalId;
  };

  /** A function's variables, as the template sets them, with this run's tables and queues. */
  #environment(fn: FunctionSpec): Record<string, string> {
    const resolve = (value: EnvValue): string => {
      if (value.kind === 'literal') return value.value;
      if (value.kind === 'queue') return this.#queueUrl(value.queue);
      if (value.kind === 'key') return this.#keyArn(value.key);
      if (value.kind === 'url')
        return value.parts.map((part) => (typeof part === 'string' ? part : refValue(part.ref))).join('');
      // Elastic IPs exist once deployed: documentation addresses (TEST-NET-1) stand in for them.
      if (value.kind === 'publicIps') {
        return Array.from({ length: value.addresses.length }, (_, i) => `192.0.2.${i + 1}`).join(',');
      }
      const name = this.#tableNames.get(value.table);
      if (name === undefined) throw new Error(`${fn.logicalId}: no table ${value.table}`);
      return name;
    };
    return {
      ...Object.fromEntries(Object.entries(fn.environment).map(([key, value]) => [key, resolve(value)])),
      // The receiver is on loopback, which production refuses; the check itself costs no request.
      [LAMBDA_ENV.allowPrivateTargets]: 'true',
    };
  }

  async #importFunctions(): Promise<void> {
    Object.assign(process.env, {
      AWS_REGION: LOCAL_REGION,
      AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
      AWS_ENDPOINT_URL_DYNAMODB: this.#endpoint,
    });
    const module = (path: string) => import(pathToFileURL(join(PROJECT_ROOT, path)).href);
    const { dynamoClient } = (await module('functions/adapters/aws/clients.ts')) as {
      dynamoClient: DynamoDBDocumentClient;
    };
    const { sqsClient } = (await module('functions/adapters/aws/sqs-client.ts')) as { sqsClient: SQSClient };
    const { kmsClient } = (await module('functions/adapters/aws/kms-client.ts')) as { kmsClient: KMSClient };
    recordKms(kmsClient, this.#sink);
    this.#kmsClient = kmsClient;
    this.#meterClient = meterDynamo(dynamoClient, this.#sink, {
      endpoint: this.#endpoint,
      region: LOCAL_REGION,
      credentials: LOCAL_CREDENTIALS,
      tables: this.#tables,
      observe: (command, input) => this.#observe(command, input),
    });
    // The request a PostToConnection makes, as the SDK builds it for us-east-1 (measured before
    // the management API is answered here, which it is for every client of it).
    const postHeadBytes = await postToConnectionHeadBytes({
      endpoint: `https://${apiIdOf('WebSocketApi')}.execute-api.us-east-1.amazonaws.com/v1`,
      region: 'us-east-1',
      credentials: LOCAL_CREDENTIALS,
    });
    this.#connectionsMock = recordConnections(this.#sink, {
      meteringBytes: API_GATEWAY_PRICES.webSocketMeteringBytes,
      isOpen: (connectionId) => this.#agents.get(connectionId)?.open === true,
      requestBytes: (frameBytes) => postHeadBytes + frameBytes,
      onPost: (frame) => this.#agentReceives(frame),
      onClose: (connectionId) => {
        const agent = this.#agents.get(connectionId);
        if (agent !== undefined) agent.open = false;
      },
    });
    recordSqs(sqsClient, this.#sink, {
      queueOfUrl: this.#queueOfUrl,
      chunkBytes: SQS_PRICES.chunkBytes,
      onSend: (messages) => this.#enqueue(messages),
    });
    const services = new Set([
      'api',
      'poll',
      'authorizer',
      ...Object.values(this.#deployment.webSocket?.routes ?? {}),
      ...this.#deployment.queues.flatMap((q) => (q.consumer === undefined ? [] : [q.consumer.service])),
      ...this.#deployment.schedules.map((s) => s.service),
    ]);
    for (const service of services) {
      const fn = functionOf(this.#deployment, service);
      const environment = this.#environment(fn);
      const previous = { ...process.env };
      Object.assign(process.env, environment);
      try {
        const entry: unknown = await module(fn.entry);
        const handler = isRecord(entry) ? entry.handler : undefined;
        if (typeof handler !== 'function') throw new Error(`${fn.entry} exports no handler`);
        this.#handlers.set(service, handler as Handler);
      } finally {
        for (const key of Object.keys(environment)) {
          if (previous[key] === undefined) delete process.env[key];
          else process.env[key] = previous[key];
        }
      }
    }
  }

  #enqueue(messages: readonly SentMessage[]): void {
    for (const message of messages) {
      if ((message.delaySeconds ?? 0) > 0) {
        throw new Error(`a message was sent with a delay of ${message.delaySeconds} s: a try failed`);
      }
      const queue = this.#queueOfUrl(message.queueUrl);
      const pending = this.#queues.get(queue) ?? [];
      pending.push(message.body);
      this.#queues.set(queue, pending);
    }
  }

  /** Invokes a function's handler as Lambda would, metered, its log lines counted and kept aside. */
  async #invoke(service: string, event: unknown, records: number): Promise<unknown> {
    const handler = this.#handlers.get(service);
    const usage = this.#sink.usage;
    if (handler === undefined || usage === undefined) throw new Error(`cannot invoke ${service}`);
    const invocation: Invocation = { service, records, awsCalls: 0, callbacks: 0, spans: [] };
    usage.invocations.push(invocation);
    this.#running.push(invocation);
    const capture = (chunk: unknown) => {
      const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8');
      usage.logBytes += Buffer.byteLength(text);
      this.#logged.push(text);
      return true;
    };
    // One capture for invocations running side by side: each line is counted once.
    if (this.#capturing === 0) {
      this.#writes = { stdout: process.stdout.write, stderr: process.stderr.write };
      process.stdout.write = capture as typeof process.stdout.write;
      process.stderr.write = capture as typeof process.stderr.write;
    }
    this.#capturing += 1;
    try {
      return await this.#current.run(invocation, () =>
        handler(event, lambdaContext(functionOf(this.#deployment, service).logicalId)),
      );
    } finally {
      this.#capturing -= 1;
      if (this.#capturing === 0 && this.#writes !== undefined) {
        process.stdout.write = this.#writes.stdout;
        process.stderr.write = this.#writes.stderr;
        this.#writes = undefined;
      }
      this.#running.splice(this.#running.indexOf(invocation), 1);
    }
  }

  #failure(message: string): Error {
    return new Error(
      `${message}${this.#logged.length > 0 ? `\nfunction logs:\n${this.#logged.join('')}` : ''}`,
    );
  }

  /** Publishes, fans out and delivers one scenario's events, and returns what it used. */
  async measure(scenario: ScenarioSpec): Promise<Measured> {
    const pushed = scenario.transport === 'connection';
    const { partnerId, agent } = pushed
      ? await this.#setUpConnection(scenario.name)
      : {
          partnerId: await this.#setUp(scenario.name, scenario.orderingKeys !== undefined),
          agent: undefined,
        };
    const reference = Date.now();
    const storedBefore = await this.#stored(reference);
    const seen = new Set((await this.#streamRecords()).map((r) => r.eventID));
    const usage = new Usage();
    this.#sink.usage = usage;
    this.#logged = [];
    const callbacksBefore = this.#callbacks;
    const bytesBefore = this.#receiverBytes();
    const apiRequestBytes: number[] = [];
    const streamStats = { records: 0, pipeEvents: 0, pipeRequests: 0 };
    try {
      for (let first = 0; first < scenario.events; first += scenario.eventsPerRequest) {
        const count = Math.min(scenario.eventsPerRequest, scenario.events - first);
        const keys = scenario.orderingKeys;
        const events = Array.from({ length: count }, (_, i) => {
          const event = publishedEvent(partnerId, scenario.eventBytes, first + i);
          return keys === undefined ? event : { ...event, orderingKey: `order:${(first + i) % keys}` };
        });
        const body = JSON.stringify(scenario.eventsPerRequest === 1 ? events[0] : { events });
        apiRequestBytes.push(Buffer.byteLength(body));
        await this.#publish(scenario.eventsPerRequest === 1 ? '/v1/events' : '/v1/events/batch', body, count);
      }
      const records = await this.#newStreamRecords(seen, scenario.events);
      streamStats.records = records.length;
      this.#pipe(records, streamStats);
      await this.#drain();
      await this.#settleAnswers(scenario.name);
      const posted = this.#callbacks - callbacksBefore;
      const callbacks = agent === undefined ? posted : agent.acked;
      if (callbacks !== scenario.events || (agent !== undefined && posted > 0)) {
        throw this.#failure(
          `${scenario.name}: ${callbacks} ${agent === undefined ? 'callbacks' : 'pushes acked'} (${posted} callbacks) for ${scenario.events} events`,
        );
      }
      const storedAfter = await this.#stored(reference);
      const bytesAfter = this.#receiverBytes();
      return {
        scenario,
        callbacks,
        apiRequestBytes,
        invocations: usage.invocations,
        dynamo: Object.fromEntries(usage.dynamo),
        sqs: Object.fromEntries(usage.sqs),
        kms: Object.fromEntries(usage.kms),
        stream: streamStats,
        stored: difference(storedAfter, storedBefore),
        logBytes: usage.logBytes,
        failedConditions: usage.failedConditions,
        failedTransactions: usage.failedTransactions,
        callbackBytes: {
          requests: bytesAfter.requests - bytesBefore.requests,
          responses: bytesAfter.responses - bytesBefore.responses,
        },
        webSocket: { ...usage.webSocket },
      };
    } finally {
      this.#sink.usage = undefined;
    }
  }

  /** One run of each scheduled function with nothing due: what an idle deployment pays for. */
  async measureSchedules(): Promise<Record<string, Pick<Measured, 'invocations' | 'dynamo' | 'sqs'>>> {
    const result: Record<string, Pick<Measured, 'invocations' | 'dynamo' | 'sqs'>> = {};
    for (const { service } of this.#deployment.schedules) {
      const usage = new Usage();
      this.#sink.usage = usage;
      try {
        await this.#invoke(
          service,
          { source: 'aws.events', 'detail-type': 'Scheduled Event', detail: {} },
          0,
        );
      } finally {
        this.#sink.usage = undefined;
      }
      result[service] = {
        invocations: usage.invocations,
        dynamo: Object.fromEntries(usage.dynamo),
        sqs: Object.fromEntries(usage.sqs),
      };
    }
    return result;
  }

  /**
   * One poll of a new partner's empty log through the polling function: answered at once
   * (`waitSeconds` 0), or a long poll that waits the whole time for nothing. Its invocation
   * is billed for the time it measurably ran.
   */
  async measurePoll(waitSeconds: number): Promise<Pick<Measured, 'invocations' | 'dynamo'>> {
    const partnerId = await this.#setUp(`poll ${waitSeconds}`);
    const usage = new Usage();
    this.#sink.usage = usage;
    const started = performance.now();
    let response: unknown;
    try {
      response = await this.#invoke(
        'poll',
        this.#apiRequest('GET', '/v1/events', `wait=${waitSeconds}`, { lambda: { partnerId } }),
        0,
      );
    } finally {
      this.#sink.usage = undefined;
    }
    const status = isRecord(response) ? response.statusCode : undefined;
    if (status !== 200) throw this.#failure(`GET /v1/events?wait=${waitSeconds} answered ${String(status)}`);
    const [invocation] = usage.invocations;
    if (invocation !== undefined && waitSeconds > 0) invocation.waitedMs = performance.now() - started;
    return { invocations: usage.invocations, dynamo: Object.fromEntries(usage.dynamo) };
  }

  /** A partner and one subscription to the receiver, through the use cases, unmetered. */
  async #setUp(name: string, ordered = false): Promise<string> {
    const { partnerId, subscriptions } = await this.#partner(name);
    await createSubscription(
      { subscriptions, clock: systemClock, resolver: systemResolver, allowPrivateTargets: true },
      partnerId,
      { url: this.#receiverUrl, ...(ordered ? { ordering: 'key' as const } : {}) },
    );
    return partnerId;
  }

  /** A partner with its first API key, through the use case, unmetered. */
  async #partner(name: string): Promise<{
    partnerId: string;
    apiKey: string;
    key: ApiKeyView;
    subscriptions: DynamoSubscriptionStore;
  }> {
    const client = DynamoDBDocumentClient.from(this.#raw);
    const table = (service: string, variable: string) => {
      const value = functionOf(this.#deployment, service).environment[variable];
      if (value?.kind !== 'table') throw new Error(`${service} has no table in ${variable}`);
      const physical = this.#tableNames.get(value.table);
      if (physical === undefined) throw new Error(`no table ${value.table}`);
      return physical;
    };
    const partners = new DynamoPartnerStore(client, table('api', LAMBDA_ENV.partnersTable));
    const key = functionOf(this.#deployment, 'api').environment[LAMBDA_ENV.secretsKeyArn];
    if (key?.kind !== 'key' || this.#kmsClient === undefined) throw new Error('api has no secrets key');
    // The functions' own KMS client: what this seals, theirs opens.
    const cipher = new KmsSecretCipher(this.#kmsClient, this.#keyArn(key.key));
    const subscriptions = new DynamoSubscriptionStore(
      client,
      table('api', LAMBDA_ENV.subscriptionsTable),
      cipher,
    );
    const {
      partner,
      apiKey,
      key: view,
    } = await createPartner({ partners, clock: systemClock }, { name: `cost ${name}` });
    return { partnerId: partner.id, apiKey, key: view, subscriptions };
  }

  /**
   * A partner, a connection subscription created through the API (`POST /v1/subscriptions`,
   * as the partner would, with the authorizer's context), and its agent connected and ready
   * (`$connect`, then the first ping), unmetered.
   */
  async #setUpConnection(name: string): Promise<{ partnerId: string; agent: Agent }> {
    const { partnerId, apiKey, key } = await this.#partner(name);
    return this.#unmetered(async () => {
      await this.#createConnectionSubscription(partnerId, key.id);
      const agent = await this.#connectAgent(apiKey);
      await this.#ping(agent, 1);
      if (!agent.received.includes('hello')) throw this.#failure('the connection was never sent hello');
      return { partnerId, agent };
    });
  }

  async #createConnectionSubscription(partnerId: string, keyId: string): Promise<void> {
    const response = await this.#invoke(
      'api',
      this.#apiRequest(
        'POST',
        '/v1/subscriptions',
        '',
        { lambda: { partnerId, keyId } },
        JSON.stringify({ transport: 'connection' }),
      ),
      0,
    );
    const status = isRecord(response) ? response.statusCode : undefined;
    if (status !== 201) {
      const text = isRecord(response) && typeof response.body === 'string' ? response.body : '';
      throw this.#failure(`POST /v1/subscriptions answered ${String(status)}: ${text.slice(0, 500)}`);
    }
  }

  /** Runs `work` metered into a usage of its own, thrown away: set-up, not what is measured. */
  async #unmetered<T>(work: () => Promise<T>): Promise<T> {
    const before = this.#sink.usage;
    this.#sink.usage = new Usage();
    try {
      return await work();
    } finally {
      this.#sink.usage = before;
    }
  }

  /** The service of the function a WebSocket route invokes. */
  #route(routeKey: string): string {
    const service = this.#deployment.webSocket?.routes[routeKey];
    if (service === undefined) throw new Error(`the deployment has no WebSocket route ${routeKey}`);
    return service;
  }

  /** An event of the WebSocket API as API Gateway passes it to a route's Lambda function (proxy). */
  #webSocketEvent(
    routeKey: string,
    connectionId: string,
    options: { headers?: Record<string, string>; body?: string } = {},
  ): unknown {
    const now = Date.now();
    const eventType =
      routeKey === '$connect' ? 'CONNECT' : routeKey === '$disconnect' ? 'DISCONNECT' : 'MESSAGE';
    return {
      requestContext: {
        routeKey,
        eventType,
        ...(eventType === 'MESSAGE' ? { messageId: randomBytes(12).toString('base64') } : {}),
        extendedRequestId: randomBytes(12).toString('base64'),
        requestTime: new Date(now).toUTCString(),
        messageDirection: 'IN',
        stage: this.#deployment.webSocket?.stage ?? 'v1',
        connectedAt: now,
        requestTimeEpoch: now,
        identity: { sourceIp: '127.0.0.1' },
        requestId: randomBytes(12).toString('base64'),
        domainName: `${apiIdOf('WebSocketApi')}.execute-api.us-east-1.amazonaws.com`,
        connectionId,
        apiId: apiIdOf('WebSocketApi'),
      },
      ...(options.headers === undefined
        ? {}
        : {
            headers: options.headers,
            multiValueHeaders: Object.fromEntries(
              Object.entries(options.headers).map(([name, value]) => [name, [value]]),
            ),
          }),
      ...(options.body === undefined ? {} : { body: options.body }),
      isBase64Encoded: false,
    };
  }

  /** The agent opens a connection with its API key: `$connect`, which must admit it. */
  async #connectAgent(apiKey: string): Promise<Agent> {
    // Connection ids as API Gateway makes them: 16 characters.
    const connectionId = randomBytes(12).toString('base64').replace(/[+/]/g, 'A').slice(0, 15).concat('=');
    const agent: Agent = { connectionId, apiKey, open: false, received: [], acked: 0 };
    this.#agents.set(connectionId, agent);
    const response = await this.#invoke(
      this.#route('$connect'),
      this.#webSocketEvent('$connect', connectionId, {
        headers: {
          Authorization: `Bearer ${apiKey}`,
          Host: `${apiIdOf('WebSocketApi')}.execute-api.us-east-1.amazonaws.com`,
          'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
          'Sec-WebSocket-Version': '13',
        },
      }),
      0,
    );
    const status = isRecord(response) ? response.statusCode : undefined;
    if (status !== 200) throw this.#failure(`$connect answered ${String(status)}`);
    // API Gateway opens the connection once $connect admits it.
    agent.open = true;
    return agent;
  }

  /**
   * A frame from the agent: a WebSocket message received, and the invocation of the route API
   * Gateway selects for it (the route of its `type`, else `$default`).
   */
  async #frame(agent: Agent, body: string): Promise<void> {
    this.#sink.usage?.addWebSocket(
      'received',
      Buffer.byteLength(body),
      API_GATEWAY_PRICES.webSocketMeteringBytes,
    );
    const routeKey = this.#selectRoute(body);
    const response = await this.#invoke(
      this.#route(routeKey),
      this.#webSocketEvent(routeKey, agent.connectionId, { body }),
      1,
    );
    const status = isRecord(response) ? response.statusCode : undefined;
    if (status !== 200) throw this.#failure(`${routeKey} answered ${String(status)} to ${body}`);
  }

  /** The route a frame goes to: its value where the route selection expression says, if that is a route. */
  #selectRoute(body: string): string {
    const webSocket = this.#deployment.webSocket;
    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch {
      return '$default';
    }
    for (const name of webSocket?.routeSelection ?? []) value = isRecord(value) ? value[name] : undefined;
    return typeof value === 'string' && !value.startsWith('$') && webSocket?.routes[value] !== undefined
      ? value
      : '$default';
  }

  /** The agent pings, and is answered pong. */
  async #ping(agent: Agent, id: number): Promise<void> {
    const before = agent.received.length;
    await this.#frame(agent, JSON.stringify({ type: 'ping', id }));
    if (!agent.received.slice(before).includes('pong')) throw this.#failure('a ping was not answered pong');
  }

  /** A frame API Gateway was asked to post: what the agent receives. A delivery is answered. */
  #agentReceives(frame: PostedFrame): void {
    const agent = this.#agents.get(frame.connectionId);
    if (agent === undefined) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(frame.text);
    } catch {
      parsed = undefined;
    }
    const type = isRecord(parsed) && typeof parsed.type === 'string' ? parsed.type : 'not JSON';
    agent.received.push(type);
    if (type !== 'delivery' || !isRecord(parsed)) return;
    const pending: PendingAnswer = {
      agent,
      deliveryId: String(parsed.deliveryId),
      attempt: Number(parsed.attempt),
      reads: 0,
    };
    this.#pending.set(`${pending.deliveryId}#${pending.attempt}`, pending);
    if (this.#agentAnswerRead === 1) this.#answer(pending);
  }

  /**
   * Sees the dispatcher's reads of a pushed try's answer: each comes after its pause
   * (ANSWER_POLL_MS); just after the one before `agentAnswerRead` the agent acks, and that read
   * waits for the ack to be written, so it sees it.
   */
  #observe(command: string, input: Readonly<Record<string, unknown>>): RequestHook | undefined {
    if (this.#pending.size === 0) return undefined;
    // A read of an answer: a get of its item, or now and then a batch get with its connection's.
    const asked =
      command === 'GetItemCommand'
        ? JSON.stringify(input.Key ?? {})
        : command === 'BatchGetItemCommand'
          ? JSON.stringify(input.RequestItems ?? {})
          : '';
    if (!asked.includes('ACK#')) return undefined;
    const pending = [...this.#pending.values()].find((p) => asked.includes(p.deliveryId));
    if (pending === undefined) return undefined;
    const read = pending.reads;
    pending.reads += 1;
    const pausedMs = ANSWER_POLL_MS[Math.min(read, ANSWER_POLL_MS.length - 1)];
    // The read that sees the ack is made once it is written, as on AWS it would be by then.
    const after = read + 1 === this.#agentAnswerRead ? pending.answered : undefined;
    return {
      ...(pausedMs === undefined ? {} : { pausedMs }),
      ...(after === undefined ? {} : { after }),
      answered: () => {
        if (pending.reads === this.#agentAnswerRead - 1) this.#answer(pending);
      },
    };
  }

  /** The agent acks a delivery (its receiver answered 204): an `ack` frame. */
  #answer(pending: PendingAnswer): void {
    const body = JSON.stringify({
      type: 'ack',
      deliveryId: pending.deliveryId,
      attempt: pending.attempt,
      status: 204,
    });
    // Not awaited: the dispatcher is waiting on it, reading for the answer meanwhile.
    const answered = this.#frame(pending.agent, body).then(
      () => {
        pending.agent.acked += 1;
      },
      (error: unknown) => {
        this.#answerFailures.push(error);
      },
    );
    pending.answered = answered;
    this.#answering.add(answered);
    void answered.finally(() => this.#answering.delete(answered));
  }

  /** Waits for the agent's acks under way, and fails if any failed or a push took other reads than planned. */
  async #settleAnswers(name: string): Promise<void> {
    while (this.#answering.size > 0) await Promise.all([...this.#answering]);
    const failures = this.#answerFailures.splice(0);
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    if (failures.length > 0) throw failures[0];
    const off = pending.filter((p) => p.reads !== this.#agentAnswerRead);
    if (off.length > 0) {
      throw this.#failure(
        `${name}: ${off.length} of ${pending.length} pushes read their answer ${off.map((p) => p.reads).join(', ')} times, not ${this.#agentAnswerRead}: an ack came late (the machine is too busy?)`,
      );
    }
  }

  /** Runs `work` as one step of a connection, metered on its own. */
  async #step(work: () => Promise<void>, httpApiRequests = 0): Promise<MeasuredStep> {
    const usage = new Usage();
    this.#sink.usage = usage;
    try {
      await work();
    } finally {
      this.#sink.usage = undefined;
    }
    return {
      invocations: usage.invocations,
      dynamo: Object.fromEntries(usage.dynamo),
      sqs: Object.fromEntries(usage.sqs),
      webSocket: { ...usage.webSocket },
      httpApiRequests,
      logBytes: usage.logBytes,
    };
  }

  /**
   * What keeping one agent connected takes, step by step, through the functions' own entries:
   * GET /v1/connect-info (the authorizer, then the API), `$connect`, the first ping (hello,
   * ready, the parked tries looked for, pong), a later ping, and `$disconnect`; and what the
   * connection keeps stored while open. A partner with one connection subscription, nothing
   * parked.
   */
  async measureConnection(): Promise<MeasuredConnection> {
    const { partnerId, apiKey, key } = await this.#partner('connection');
    await this.#unmetered(() => this.#createConnectionSubscription(partnerId, key.id));
    const reference = Date.now();
    const storedBefore = await this.#stored(reference);
    this.#logged = [];
    const connectInfo = await this.#step(async () => {
      const authorized = await this.#invoke(
        'authorizer',
        {
          version: '2.0',
          type: 'REQUEST',
          routeArn: `arn:aws:execute-api:us-east-1:${ACCOUNT}:cost/$default/GET/v1/connect-info`,
          identitySource: [`Bearer ${apiKey}`],
          routeKey: 'GET /v1/connect-info',
          rawPath: '/v1/connect-info',
          rawQueryString: '',
          headers: { authorization: `Bearer ${apiKey}` },
          requestContext: {
            accountId: ACCOUNT,
            apiId: 'cost',
            domainName: 'cost.local',
            domainPrefix: 'cost',
            http: {
              method: 'GET',
              path: '/v1/connect-info',
              protocol: 'HTTP/1.1',
              sourceIp: '127.0.0.1',
              userAgent: 'cost',
            },
            requestId: randomUUID(),
            routeKey: 'GET /v1/connect-info',
            stage: '$default',
            time: new Date().toUTCString(),
            timeEpoch: Date.now(),
          },
        },
        0,
      );
      const context =
        isRecord(authorized) && authorized.isAuthorized === true ? authorized.context : undefined;
      if (!isRecord(context) || context.partnerId !== partnerId)
        throw this.#failure('the authorizer refused the key');
      const response = await this.#invoke(
        'api',
        this.#apiRequest('GET', '/v1/connect-info', '', {
          lambda: { partnerId, keyId: String(context.keyId) },
        }),
        0,
      );
      const status = isRecord(response) ? response.statusCode : undefined;
      if (status !== 200) throw this.#failure(`GET /v1/connect-info answered ${String(status)}`);
    }, 1);
    let agent: Agent | undefined;
    const connect = await this.#step(async () => {
      agent = await this.#connectAgent(apiKey);
    });
    if (agent === undefined) throw new Error('no agent');
    const connected = agent;
    const firstPing = await this.#step(() => this.#ping(connected, 1));
    if (connected.received[0] !== 'hello') throw this.#failure('the first ping was not answered hello first');
    const ping = await this.#step(() => this.#ping(connected, 2));
    const open = difference(await this.#stored(reference), storedBefore);
    const disconnect = await this.#step(async () => {
      await this.#invoke(
        this.#route('$disconnect'),
        this.#webSocketEvent('$disconnect', connected.connectionId),
        0,
      );
      connected.open = false;
    });
    const table = functionOf(this.#deployment, this.#route('$connect')).environment[
      LAMBDA_ENV.connectionsTable
    ];
    if (table?.kind !== 'table') throw new Error('the connections function has no connections table');
    const stored = Object.fromEntries(
      Object.entries(open)
        .filter(([key]) => key === table.table || key.startsWith(`${table.table}/`))
        .map(([key, { bytes }]) => [key, bytes]),
    );
    return { connectInfo, connect, firstPing, ping, disconnect, stored };
  }

  /** An HTTP API request (payload 2.0) as API Gateway passes it, with its authorizer's context. */
  #apiRequest(
    method: string,
    path: string,
    rawQueryString: string,
    authorizer: NonNullable<ApiRequest['requestContext']['authorizer']>,
    body?: string,
  ): ApiRequest {
    const now = new Date();
    return {
      version: '2.0',
      routeKey: '$default',
      rawPath: path,
      rawQueryString,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      ...(rawQueryString === ''
        ? {}
        : { queryStringParameters: Object.fromEntries(new URLSearchParams(rawQueryString)) }),
      requestContext: {
        accountId: ACCOUNT,
        apiId: 'cost',
        domainName: 'cost.local',
        domainPrefix: 'cost',
        http: { method, path, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'cost' },
        requestId: randomUUID(),
        routeKey: '$default',
        stage: '$default',
        time: now.toUTCString(),
        timeEpoch: now.getTime(),
        authorizer,
      },
      ...(body === undefined ? {} : { body }),
      isBase64Encoded: false,
    };
  }

  async #publish(path: string, body: string, count: number): Promise<void> {
    const request = this.#apiRequest(
      'POST',
      path,
      '',
      { iam: { userArn: `arn:aws:sts::${ACCOUNT}:assumed-role/Producer/cost` } },
      body,
    );
    const response = await this.#invoke('api', request, count);
    const status = isRecord(response) ? response.statusCode : undefined;
    const text = isRecord(response) && typeof response.body === 'string' ? response.body : '';
    const created = (text.match(/"created":true/g) ?? []).length;
    if ((status !== 200 && status !== 202) || created !== count) {
      throw this.#failure(
        `POST ${path} answered ${String(status)} with ${created} of ${count} created: ${text.slice(0, 500)}`,
      );
    }
  }

  async #streamArn(): Promise<string> {
    const physical = this.#tableNames.get(this.#deployment.pipe.sourceTable);
    const described = await this.#raw.send(new DescribeTableCommand({ TableName: physical }));
    const arn = described.Table?.LatestStreamArn;
    if (arn === undefined)
      throw new Error(`the pipe's table ${this.#deployment.pipe.sourceTable} has no stream`);
    return arn;
  }

  /** Every record of the pipe's source stream so far. */
  async #streamRecords(): Promise<_Record[]> {
    const streamArn = await this.#streamArn();
    const records: _Record[] = [];
    const stream = await this.#streams.send(new DescribeStreamCommand({ StreamArn: streamArn }));
    for (const shard of stream.StreamDescription?.Shards ?? []) {
      const start = await this.#streams.send(
        new GetShardIteratorCommand({
          StreamArn: streamArn,
          ShardId: shard.ShardId,
          ShardIteratorType: 'TRIM_HORIZON',
        }),
      );
      let iterator = start.ShardIterator;
      while (iterator !== undefined) {
        const page = await this.#streams.send(new GetRecordsCommand({ ShardIterator: iterator }));
        const batch = page.Records ?? [];
        records.push(...batch);
        iterator = batch.length > 0 ? page.NextShardIterator : undefined;
      }
    }
    return records;
  }

  /** The records written since `seen`, once they stop coming (records reach the stream a moment after the write). */
  async #newStreamRecords(seen: ReadonlySet<string | undefined>, atLeast: number): Promise<_Record[]> {
    let last = -1;
    for (let round = 0; round < 100; round++) {
      const fresh = (await this.#streamRecords()).filter((r) => !seen.has(r.eventID));
      if (fresh.length >= atLeast && fresh.length === last) return fresh;
      last = fresh.length;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`the stream did not settle: ${last} records`);
  }

  /**
   * The pipe (its deployed filter and template) over the stream records, in stream order: the
   * records it passes go to its target queue in batches of its batch size, one
   * SendMessageBatch each (an SQS target takes ten at most).
   */
  #pipe(records: readonly _Record[], stats: { pipeEvents: number; pipeRequests: number }): void {
    const pipe = this.#deployment.pipe;
    const chunk = EVENTBRIDGE_PRICES.chunkBytes;
    const bodies: string[] = [];
    for (const record of records) {
      const source = pipeRecord(record);
      if (!pipe.filters.some((filter) => matchesPattern(filter, source))) continue;
      stats.pipeEvents += 1;
      stats.pipeRequests += Math.max(1, Math.ceil(Buffer.byteLength(JSON.stringify(source)) / chunk));
      bodies.push(renderInputTemplate(pipe.inputTemplate, source));
    }
    for (let first = 0; first < bodies.length; first += pipe.batchSize) {
      const batch = bodies.slice(first, first + pipe.batchSize);
      this.#sink.usage?.addSqs(
        pipe.targetQueue,
        'SendMessageBatch (pipe target)',
        sqsRequests(batch, SQS_PRICES.chunkBytes),
        batch.length,
      );
      this.#enqueue(batch.map((body) => ({ queueUrl: this.#queueUrl(pipe.targetQueue), body })));
    }
  }

  /** Feeds every queue to its consumer, batch by batch, as an event source mapping does, until all are empty. */
  async #drain(): Promise<void> {
    for (let round = 0; round < 10_000; round++) {
      const queue = this.#deployment.queues.find(
        (q) => q.consumer !== undefined && (this.#queues.get(q.logicalId)?.length ?? 0) > 0,
      );
      if (queue?.consumer === undefined) {
        const stranded = [...this.#queues]
          .filter(([, bodies]) => bodies.length > 0)
          .map(([q, b]) => `${q}: ${b.length}`);
        if (stranded.length > 0)
          throw this.#failure(`messages left in queues without a consumer: ${stranded.join(', ')}`);
        return;
      }
      const pending = this.#queues.get(queue.logicalId) ?? [];
      const bodies = pending.splice(0, queue.consumer.batchSize);
      this.#sink.usage?.addSqs(
        queue.logicalId,
        'ReceiveMessage (event source)',
        sqsRequests(bodies, SQS_PRICES.chunkBytes),
        bodies.length,
      );
      const event: SQSEvent = { Records: bodies.map((body) => sqsRecord(body, queue.logicalId)) };
      const response = (await this.#invoke(queue.consumer.service, event, bodies.length)) as SQSBatchResponse;
      const failures = response?.batchItemFailures ?? [];
      if (failures.length > 0)
        throw this.#failure(
          `${queue.consumer.service} failed ${failures.length} of ${bodies.length} records`,
        );
      // The event source deletes the batch's messages in one DeleteMessageBatch.
      this.#sink.usage?.addSqs(queue.logicalId, 'DeleteMessageBatch (event source)', 1, bodies.length);
    }
    throw new Error('the queues did not drain');
  }

  /** Bytes stored per table and index now, with TTL lifetimes counted from `reference`. */
  async #stored(reference: number): Promise<Map<string, Stored>> {
    const stored = new Map<string, Stored>();
    const add = (key: string, bytes: number, expiresAt: number | undefined) => {
      const entry = stored.get(key) ?? { bytes: 0, byteSeconds: 0, persistentBytes: 0 };
      entry.bytes += bytes;
      if (expiresAt === undefined) entry.persistentBytes += bytes;
      else entry.byteSeconds += bytes * Math.max(0, expiresAt - reference / 1000);
      stored.set(key, entry);
    };
    for (const [physical, table] of this.#tables) {
      let startKey: Record<string, AttributeValue> | undefined;
      do {
        const page = await this.#raw.send(
          new ScanCommand({
            TableName: physical,
            ConsistentRead: true,
            ...(startKey ? { ExclusiveStartKey: startKey } : {}),
          }),
        );
        for (const item of page.Items ?? []) {
          const ttl = table.ttlAttribute === undefined ? undefined : item[table.ttlAttribute]?.N;
          const expiresAt = ttl === undefined ? undefined : Number(ttl);
          add(table.logicalId, itemBytes(item) + DYNAMODB_BILLING.storageOverheadBytes, expiresAt);
          for (const index of table.indexes) {
            const entry = indexEntry(
              item,
              index,
              table.keys.map((k) => k.name),
            );
            if (entry !== undefined) {
              add(
                `${table.logicalId}/${index.name}`,
                itemBytes(entry) + DYNAMODB_BILLING.storageOverheadBytes,
                expiresAt,
              );
            }
          }
        }
        startKey = page.LastEvaluatedKey;
      } while (startKey !== undefined);
    }
    return stored;
  }
}

/** An id as API Gateway makes them (10 lowercase letters and digits), for a logical id. */
function apiIdOf(logicalId: string): string {
  return createHash('sha256').update(logicalId).digest('hex').slice(0, 10);
}

/** What a `Ref` in a URL the template joins stands for here: pseudo parameters, or an API's id. */
function refValue(ref: string): string {
  switch (ref) {
    case 'AWS::Region':
      return LOCAL_REGION;
    case 'AWS::URLSuffix':
      return 'amazonaws.com';
    case 'AWS::Partition':
      return 'aws';
    case 'AWS::AccountId':
      return ACCOUNT;
    default:
      return apiIdOf(ref);
  }
}

function difference(
  after: ReadonlyMap<string, Stored>,
  before: ReadonlyMap<string, Stored>,
): Record<string, Stored> {
  const result: Record<string, Stored> = {};
  for (const [key, now] of after) {
    const then = before.get(key) ?? { bytes: 0, byteSeconds: 0, persistentBytes: 0 };
    const delta = {
      bytes: now.bytes - then.bytes,
      byteSeconds: now.byteSeconds - then.byteSeconds,
      persistentBytes: now.persistentBytes - then.persistentBytes,
    };
    if (delta.bytes !== 0 || delta.byteSeconds !== 0) result[key] = delta;
  }
  return result;
}

/**
 * A stream record as Pipes receive it: the SDK gives `ApproximateCreationDateTime` as a Date
 * where the event source has epoch seconds; the images stay in attribute-value JSON.
 */
function pipeRecord(record: _Record): unknown {
  const plain: unknown = JSON.parse(JSON.stringify(record));
  const dynamodb = isRecord(plain) && isRecord(plain.dynamodb) ? plain.dynamodb : {};
  const created = record.dynamodb?.ApproximateCreationDateTime;
  return {
    ...(isRecord(plain) ? plain : {}),
    eventSourceARN: 'arn:aws:dynamodb:local:000000000000:table/events/stream/cost',
    dynamodb: {
      ...dynamodb,
      ...(created === undefined ? {} : { ApproximateCreationDateTime: Math.floor(created.getTime() / 1000) }),
    },
  };
}

function sqsRecord(body: string, queue: string): SQSEvent['Records'][number] {
  const id = randomUUID();
  return {
    messageId: id,
    receiptHandle: `handle-${id}`,
    body,
    attributes: {
      ApproximateReceiveCount: '1',
      SentTimestamp: String(Date.now()),
      SenderId: ACCOUNT,
      ApproximateFirstReceiveTimestamp: String(Date.now()),
    },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: `arn:aws:sqs:${LOCAL_REGION}:${ACCOUNT}:${queue}`,
    awsRegion: LOCAL_REGION,
  };
}
