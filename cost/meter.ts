/**
 * Meters what the functions ask of AWS, from inside their own SDK clients: a middleware on the
 * DynamoDB document client asks every command for its consumed capacity (per table and per
 * index) and adds it up; one on the SQS client records every message sent, without sending it,
 * and hands it to the harness, which plays the queue; API Gateway's management API
 * (PostToConnection, DeleteConnection), which has no local stand-in, is answered in place of
 * API Gateway, each frame counted as the WebSocket messages it is billed as.
 *
 * DynamoDB Local reports the capacity of single-item writes, batches and reads as DynamoDB
 * does, but not that of transactions (it bills a whole table's share of a transaction at four
 * units per KB of all its items together). A transaction is therefore priced here from the
 * documented rules instead: two write units per KB of each item (the larger of its old and new
 * image, both read around the transaction), and the index entries it changes at the standard
 * rate. A write whose condition fails is charged as DynamoDB charges it (one unit per KB of the
 * item), which DynamoDB Local does not report either. Nor does it report reads that find nothing
 * in a batch get or a query, which DynamoDB bills as reads of one item (a key a BatchGetItem asks
 * for in vain, as the GetItem it stands for; a query or scan that finds nothing, the least a read
 * of its partition costs): the meter adds them.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  ApiGatewayManagementApiClient,
  DeleteConnectionCommand,
  GoneException,
  PostToConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import { type AttributeValue, DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import type { KMSClient } from '@aws-sdk/client-kms';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { HttpRequest } from '@smithy/types';
import { mockClient } from 'aws-sdk-client-mock';
import { DYNAMODB_BILLING } from '../functions/aws-prices.ts';
import type { IndexSpec, TableSpec } from './deployment.ts';
import { itemBytes, unitsOf } from './item-size.ts';

/** Capacity consumed on one table or index. */
export interface Units {
  readUnits: number;
  writeUnits: number;
  /** Requests that touched it. */
  requests: number;
}

/**
 * A request an invocation made and waited for. `start` and `end` are ticks of the invocation's
 * waves, not times: a request that starts after another's end waited for it.
 */
export interface Span {
  readonly kind: 'aws' | 'callback';
  readonly start: number;
  end: number;
  /**
   * How long the invocation slept, by design, before making this request (the dispatcher's
   * pauses between reads of an agent's answer): waited for as the request is.
   */
  readonly pausedMs?: number;
}

/** What one invocation of a function did. */
export interface Invocation {
  readonly service: string;
  readonly records: number;
  /** AWS requests the function made (DynamoDB and SQS). */
  awsCalls: number;
  /** Callbacks it POSTed. */
  callbacks: number;
  /** Frames it posted down connections (PostToConnection), and their HTTP requests' bytes. */
  posts?: number;
  postBytes?: number;
  /** Its AWS requests and callbacks, for the length of its longest chain of waits. */
  readonly spans: Span[];
  /**
   * How long it ran, measured, when that is by design longer than its requests (a long poll
   * waiting for an event): billed instead of its chain of requests when longer.
   */
  waitedMs?: number;
}

/**
 * Holds every answer until all the requests in flight have theirs, then hands them out
 * together: the invocation moves in waves, as it would if every request took the same time.
 * DynamoDB Local answers concurrent requests one after another, and left to that, requests
 * made side by side would look as if made in turn; in waves, which request waited for which
 * is what the code says, however fast the machine.
 */
export class Waves {
  #tick = 0;
  #inFlight = 0;
  #held: { span: Span; release: () => void }[] = [];

  /** Runs `work` as the span's request and returns its answer once its wave ends. */
  async wait<T>(span: Span, work: () => Promise<T>): Promise<T> {
    this.#inFlight += 1;
    const outcome = await work().then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({ ok: false as const, error }),
    );
    this.#inFlight -= 1;
    if (this.#inFlight === 0) {
      const end = this.next();
      span.end = end;
      for (const held of this.#held.splice(0)) {
        held.span.end = end;
        held.release();
      }
    } else {
      await new Promise<void>((release) => this.#held.push({ span, release }));
    }
    if (!outcome.ok) throw outcome.error;
    return outcome.value;
  }

  next(): number {
    this.#tick += 1;
    return this.#tick;
  }
}

/**
 * Runs `work` as a request of the running invocation, in its waves, recorded as a span; with
 * no invocation running, just runs it.
 */
export function asRequest<T>(
  sink: MeterSink,
  kind: Span['kind'],
  work: () => Promise<T>,
  pausedMs?: number,
): Promise<T> {
  const invocation = sink.invocation;
  if (invocation === undefined) return work();
  const span: Span = {
    kind,
    start: sink.waves.next(),
    end: Number.NaN,
    ...(pausedMs === undefined ? {} : { pausedMs }),
  };
  invocation.spans.push(span);
  return sink.waves.wait(span, work);
}

/** One message a function sent, as the queue would hold it. */
export interface SentMessage {
  readonly queueUrl: string;
  readonly body: string;
  readonly delaySeconds?: number;
}

/** What a scenario used, added up as it runs. */
export class Usage {
  /** Keyed `<table>` or `<table>/<index>` (logical ids). */
  readonly dynamo = new Map<string, Units>();
  /** SQS requests, billed (64 KB chunks), keyed `<queue> <action>`. */
  readonly sqs = new Map<string, { requests: number; messages: number }>();
  /** KMS requests (GenerateDataKey, Decrypt), by command. */
  readonly kms = new Map<string, number>();
  readonly invocations: Invocation[] = [];
  /** WebSocket messages: frames sent down connections and received from them, and as billed. */
  readonly webSocket: WebSocketUsage = { sent: 0, received: 0, billed: 0, sentBytes: 0, receivedBytes: 0 };
  failedConditions = 0;
  failedTransactions = 0;
  logBytes = 0;

  addUnits(key: string, kind: 'readUnits' | 'writeUnits', units: number, request = true): void {
    const entry = this.dynamo.get(key) ?? { readUnits: 0, writeUnits: 0, requests: 0 };
    entry[kind] += units;
    if (request) entry.requests += 1;
    this.dynamo.set(key, entry);
  }

  addKms(command: string): void {
    this.kms.set(command, (this.kms.get(command) ?? 0) + 1);
  }

  /** One frame through the WebSocket API, billed by its size (`webSocketMessages`). */
  addWebSocket(direction: 'sent' | 'received', bytes: number, meteringBytes: number): void {
    this.webSocket[direction] += 1;
    this.webSocket[direction === 'sent' ? 'sentBytes' : 'receivedBytes'] += bytes;
    this.webSocket.billed += webSocketMessages(bytes, meteringBytes);
  }

  addSqs(queue: string, action: string, requests: number, messages: number): void {
    const key = `${queue} ${action}`;
    const entry = this.sqs.get(key) ?? { requests: 0, messages: 0 };
    entry.requests += requests;
    entry.messages += messages;
    this.sqs.set(key, entry);
  }
}

/** Frames through a WebSocket API: how many each way, their bytes, and the messages billed. */
export interface WebSocketUsage {
  sent: number;
  received: number;
  billed: number;
  sentBytes: number;
  receivedBytes: number;
}

/** Billed WebSocket messages of a frame of `bytes`: one per `meteringBytes` (32 KB), at least one. */
export function webSocketMessages(bytes: number, meteringBytes: number): number {
  return Math.max(1, Math.ceil(bytes / meteringBytes));
}

/**
 * Where the meters write: the running invocation, if any (the one whose code made the request:
 * invocations may run side by side), and the scenario's usage.
 */
export interface MeterSink {
  usage: Usage | undefined;
  readonly invocation: Invocation | undefined;
  readonly waves: Waves;
}

const READS = new Set([
  'GetItemCommand',
  'QueryCommand',
  'ScanCommand',
  'BatchGetItemCommand',
  'TransactGetItemsCommand',
]);
const SINGLE_WRITES = new Set(['PutItemCommand', 'UpdateItemCommand', 'DeleteItemCommand']);

type Json = Record<string, unknown>;

function isJson(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A native key value (the document client's input) as an attribute value. */
function marshalKey(key: Json): Record<string, AttributeValue> {
  const out: Record<string, AttributeValue> = {};
  for (const [name, value] of Object.entries(key)) {
    if (typeof value === 'string') out[name] = { S: value };
    else if (typeof value === 'number' || typeof value === 'bigint') out[name] = { N: String(value) };
    else throw new Error(`key attribute ${name} is neither a string nor a number`);
  }
  return out;
}

/** An item's entry in an index (its keys, the index's keys and projected attributes), or undefined when it is not in it. */
export function indexEntry(
  item: Record<string, AttributeValue> | undefined,
  index: IndexSpec,
  tableKeys: readonly string[],
): Record<string, AttributeValue> | undefined {
  if (item === undefined || index.keys.some((key) => item[key.name] === undefined)) return undefined;
  if (index.projection === 'ALL') return item;
  const names = new Set([...tableKeys, ...index.keys.map((k) => k.name)]);
  if (index.projection === 'INCLUDE') for (const name of index.nonKeyAttributes) names.add(name);
  return Object.fromEntries(Object.entries(item).filter(([name]) => names.has(name)));
}

/** Write units an index is charged for a write that turns `before` into `after` (GSI write rules). */
export function indexWriteUnits(
  before: Record<string, AttributeValue> | undefined,
  after: Record<string, AttributeValue> | undefined,
  index: IndexSpec,
  tableKeys: readonly string[],
): number {
  const unit = DYNAMODB_BILLING.writeUnitBytes;
  const old = indexEntry(before, index, tableKeys);
  const next = indexEntry(after, index, tableKeys);
  if (old === undefined && next === undefined) return 0;
  if (old === undefined && next !== undefined) return unitsOf(itemBytes(next), unit);
  if (next === undefined && old !== undefined) return unitsOf(itemBytes(old), unit);
  if (old === undefined || next === undefined) return 0;
  const keyChanged = index.keys.some(
    (key) => JSON.stringify(old[key.name]) !== JSON.stringify(next[key.name]),
  );
  if (keyChanged) return unitsOf(itemBytes(old), unit) + unitsOf(itemBytes(next), unit);
  const same =
    Object.keys(old).length === Object.keys(next).length &&
    Object.entries(old).every(([name, value]) => JSON.stringify(value) === JSON.stringify(next[name]));
  return same ? 0 : unitsOf(itemBytes(next), unit);
}

/** What the harness does around one metered request (RequestObserver). */
export interface RequestHook {
  /** The invocation slept this long before the request, by design (Span.pausedMs). */
  readonly pausedMs?: number;
  /** Called once DynamoDB has answered, before the answer is handed back. */
  readonly answered?: () => void;
  /**
   * The request is sent only once this settles: what it must see has been written (an agent's
   * ack, which on AWS is there by the time of this read), however busy the machine.
   */
  readonly after?: Promise<unknown>;
}

/** Sees each metered DynamoDB request before it is sent (its command and input). */
export type RequestObserver = (
  command: string,
  input: Readonly<Record<string, unknown>>,
) => RequestHook | undefined;

export interface DynamoMeterOptions {
  endpoint: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** Physical table name → its spec. */
  tables: ReadonlyMap<string, TableSpec>;
  /** @default - none */
  observe?: RequestObserver;
}

/**
 * Adds the DynamoDB meter to `client` (the functions' own module-scope client). Reads around
 * transactions and failed writes go through a client of its own, which is not metered.
 */
export function meterDynamo(
  client: DynamoDBDocumentClient,
  sink: MeterSink,
  options: DynamoMeterOptions,
): DynamoDBClient {
  const raw = new DynamoDBClient({
    endpoint: options.endpoint,
    region: options.region,
    credentials: options.credentials,
  });
  const spec = (tableName: string): TableSpec => {
    const table = options.tables.get(tableName);
    if (table === undefined) throw new Error(`unmetered table ${tableName}`);
    return table;
  };
  const read = async (tableName: string, key: Record<string, AttributeValue>) =>
    (await raw.send(new GetItemCommand({ TableName: tableName, Key: key, ConsistentRead: true }))).Item;

  client.middlewareStack.add(
    (next, context) => async (args) => {
      const command = context.commandName ?? '';
      const input: unknown = args.input;
      if (!isJson(input)) return next(args);
      if (sink.invocation !== undefined) sink.invocation.awsCalls += 1;
      const usage = sink.usage;
      if (usage === undefined) return next(args);
      const hook = options.observe?.(command, input);
      if (hook?.after !== undefined) await hook.after;
      return asRequest(
        sink,
        'aws',
        async () => {
          const output = await metered(() => next(args), command, input, usage);
          hook?.answered?.();
          return output;
        },
        hook?.pausedMs,
      );
    },
    { step: 'initialize', name: 'costMeter' },
  );

  async function metered<T>(send: () => Promise<T>, command: string, input: Json, usage: Usage): Promise<T> {
    if (command === 'TransactWriteItemsCommand') {
      const items = transactionItems(input);
      const before = await Promise.all(items.map((item) => read(item.tableName, item.key)));
      let after = before;
      try {
        const result = await send();
        after = await Promise.all(items.map((item) => read(item.tableName, item.key)));
        return result;
      } catch (error) {
        usage.failedTransactions += 1;
        throw error;
      } finally {
        addTransaction(usage, items, before, after);
      }
    }
    input.ReturnConsumedCapacity = 'INDEXES';
    try {
      const result = await send();
      const output = field(result, 'output');
      addReported(usage, command, field(output, 'ConsumedCapacity'), input.ConsistentRead === true);
      if (command === 'BatchGetItemCommand') addBatchMisses(usage, input, output);
      return result;
    } catch (error) {
      if (
        SINGLE_WRITES.has(command) &&
        error instanceof Error &&
        error.name === 'ConditionalCheckFailedException'
      ) {
        const tableName = String(input.TableName);
        const table = spec(tableName);
        const key = isJson(input.Key) ? input.Key : pickKey(input.Item, table);
        const existing = await read(tableName, marshalKey(key));
        usage.addUnits(
          table.logicalId,
          'writeUnits',
          unitsOf(existing ? itemBytes(existing) : 0, DYNAMODB_BILLING.writeUnitBytes),
        );
        usage.failedConditions += 1;
      }
      throw error;
    }
  }

  function pickKey(item: unknown, table: TableSpec): Json {
    if (!isJson(item)) throw new Error(`${table.logicalId}: a put without an item`);
    return Object.fromEntries(table.keys.map((key) => [key.name, item[key.name]]));
  }

  function transactionItems(input: Json): TransactionItem[] {
    return (Array.isArray(input.TransactItems) ? input.TransactItems : []).map((entry: unknown) => {
      const [kind = '', operation] = Object.entries(isJson(entry) ? entry : {})[0] ?? [];
      if (!isJson(operation)) throw new Error('a transaction item without an operation');
      const tableName = String(operation.TableName);
      const table = spec(tableName);
      const key = marshalKey(
        kind === 'Put' ? pickKey(operation.Item, table) : isJson(operation.Key) ? operation.Key : {},
      );
      return { kind, tableName, table, key };
    });
  }

  function addReported(usage: Usage, command: string, reported: unknown, consistent: boolean): void {
    const kind = READS.has(command) ? 'readUnits' : 'writeUnits';
    // A query or scan that finds nothing still reads its partition: billed at least as one
    // item's read (an index's always eventually consistent). DynamoDB Local reports 0.
    const searches = command === 'QueryCommand' || command === 'ScanCommand';
    const least = (onIndex: boolean) =>
      searches ? DYNAMODB_BILLING.eventuallyConsistentReadFactor * (consistent && !onIndex ? 2 : 1) : 0;
    for (const capacity of Array.isArray(reported) ? reported : [reported]) {
      if (!isJson(capacity)) continue;
      const table = spec(String(capacity.TableName)).logicalId;
      const onTable = field(capacity.Table, 'CapacityUnits');
      const indexes = isJson(capacity.GlobalSecondaryIndexes) ? capacity.GlobalSecondaryIndexes : {};
      // A query of an index reports 0 on the table: only what was read counts as a request.
      if (typeof onTable === 'number' && (onTable > 0 || Object.keys(indexes).length === 0)) {
        usage.addUnits(table, kind, Math.max(onTable, least(false)));
      }
      for (const [name, detail] of Object.entries(indexes)) {
        const units = field(detail, 'CapacityUnits');
        if (typeof units === 'number') usage.addUnits(`${table}/${name}`, kind, Math.max(units, least(true)));
      }
    }
  }

  /**
   * The keys a BatchGetItem asked for and found nothing at (neither returned nor left
   * unprocessed): each a GetItem that finds nothing, one unit if consistent, half if not.
   */
  function addBatchMisses(usage: Usage, input: Json, output: unknown): void {
    const requested = isJson(input.RequestItems) ? input.RequestItems : {};
    const responses = field(output, 'Responses');
    const unprocessed = field(output, 'UnprocessedKeys');
    for (const [tableName, request] of Object.entries(requested)) {
      const asked = list(field(request, 'Keys')).length;
      const found = list(field(responses, tableName)).length;
      const left = list(field(field(unprocessed, tableName), 'Keys')).length;
      const misses = asked - found - left;
      if (misses <= 0) continue;
      const unit =
        field(request, 'ConsistentRead') === true ? 1 : DYNAMODB_BILLING.eventuallyConsistentReadFactor;
      usage.addUnits(spec(tableName).logicalId, 'readUnits', misses * unit, false);
    }
  }

  return raw;
}

function field(object: unknown, key: string): unknown {
  return isJson(object) ? object[key] : undefined;
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

interface TransactionItem {
  kind: string;
  tableName: string;
  table: TableSpec;
  key: Record<string, AttributeValue>;
}

type Image = Record<string, AttributeValue> | undefined;

/**
 * A transaction's writes by the documented rules: two units per KB of each item (the larger of
 * its images), and each index entry it changes at the standard rate (index updates follow the
 * commit, as any write's do).
 */
function addTransaction(
  usage: Usage,
  items: readonly TransactionItem[],
  before: readonly Image[],
  after: readonly Image[],
): void {
  items.forEach((item, i) => {
    const old = before[i];
    const next = after[i];
    const bytes = Math.max(old ? itemBytes(old) : 0, next ? itemBytes(next) : 0);
    usage.addUnits(
      item.table.logicalId,
      'writeUnits',
      DYNAMODB_BILLING.transactionalWriteFactor * unitsOf(bytes, DYNAMODB_BILLING.writeUnitBytes),
    );
    if (item.kind === 'ConditionCheck') return;
    const tableKeys = item.table.keys.map((k) => k.name);
    for (const index of item.table.indexes) {
      const units = indexWriteUnits(old, next, index, tableKeys);
      if (units > 0) usage.addUnits(`${item.table.logicalId}/${index.name}`, 'writeUnits', units);
    }
  });
}

/** Billed SQS requests of one action carrying these bodies: one per 64 KB of payload. */
export function sqsRequests(bodies: readonly string[], chunkBytes: number): number {
  const bytes = bodies.reduce((sum, body) => sum + Buffer.byteLength(body), 0);
  return Math.max(1, Math.ceil(bytes / chunkBytes));
}

/**
 * Adds the SQS recorder to `client`: every send is recorded and answered as SQS would answer
 * a success, and nothing is sent. Any other action fails: the path measured does not use it.
 */
export function recordSqs(
  client: SQSClient,
  sink: MeterSink,
  options: {
    queueOfUrl: (url: string) => string;
    chunkBytes: number;
    onSend: (messages: SentMessage[]) => void;
  },
): void {
  client.middlewareStack.add(
    () => async (args) => {
      const input: unknown = args.input;
      if (!isJson(input)) throw new Error('an SQS request without input');
      if (sink.invocation !== undefined) sink.invocation.awsCalls += 1;
      const queueUrl = String(input.QueueUrl);
      const entries = Array.isArray(input.Entries)
        ? input.Entries.filter(isJson)
        : [isJson(input) ? input : {}];
      const messages: SentMessage[] = entries.map((entry) => ({
        queueUrl,
        body: String(entry.MessageBody),
        ...(typeof entry.DelaySeconds === 'number' ? { delaySeconds: entry.DelaySeconds } : {}),
      }));
      const batch = Array.isArray(input.Entries);
      if (!batch && input.MessageBody === undefined)
        throw new Error('only SendMessage and SendMessageBatch are recorded');
      sink.usage?.addSqs(
        options.queueOfUrl(queueUrl),
        batch ? 'SendMessageBatch' : 'SendMessage',
        sqsRequests(
          messages.map((m) => m.body),
          options.chunkBytes,
        ),
        messages.length,
      );
      options.onSend(messages);
      // Nothing is sent, but the request takes its place among the others.
      await asRequest(sink, 'aws', async () => undefined);
      const output = batch
        ? {
            Successful: entries.map((entry, i) => ({
              Id: String(entry.Id),
              MessageId: `m-${i}`,
              MD5OfMessageBody: '',
            })),
            Failed: [],
          }
        : { MessageId: 'm-0', MD5OfMessageBody: '' };
      return { output: { ...output, $metadata: {} }, response: {} } as never;
    },
    { step: 'initialize', name: 'costRecorder' },
  );
}

/**
 * The size of the encrypted data key KMS returns for a 256-bit data key, as in AWS's own
 * GenerateDataKey example (167 bytes base64-decoded):
 * https://docs.aws.amazon.com/kms/latest/developerguide/example_kms_GenerateDataKey_section.html
 */
export const KMS_DATA_KEY_BLOB_BYTES = 167;

/**
 * Answers the KMS client's GenerateDataKey and Decrypt in place of KMS, which has no local
 * stand-in, and counts each request: a data key is random, its "encrypted" copy a random blob
 * of the size KMS returns, which Decrypt maps back. Nothing is sent.
 */
export function recordKms(client: KMSClient, sink: MeterSink): void {
  const issued = new Map<string, Uint8Array>();
  client.middlewareStack.add(
    () => async (args) => {
      const input: unknown = args.input;
      if (!isJson(input)) throw new Error('a KMS request without input');
      if (sink.invocation !== undefined) sink.invocation.awsCalls += 1;
      let output: Json;
      if (input.CiphertextBlob instanceof Uint8Array) {
        const plaintext = issued.get(Buffer.from(input.CiphertextBlob).toString('base64'));
        if (plaintext === undefined) throw new Error('Decrypt of a data key that was never issued');
        sink.usage?.addKms('Decrypt');
        output = { Plaintext: plaintext, KeyId: input.KeyId };
      } else if (input.KeySpec === 'AES_256') {
        const plaintext = new Uint8Array(randomBytes(32));
        const blob = randomBytes(KMS_DATA_KEY_BLOB_BYTES);
        issued.set(blob.toString('base64'), plaintext);
        sink.usage?.addKms('GenerateDataKey');
        output = { Plaintext: plaintext, CiphertextBlob: new Uint8Array(blob), KeyId: input.KeyId };
      } else {
        throw new Error('only GenerateDataKey (AES_256) and Decrypt are answered');
      }
      await asRequest(sink, 'aws', async () => undefined);
      return { output: { ...output, $metadata: {} }, response: {} } as never;
    },
    { step: 'initialize', name: 'costRecorder' },
  );
}

/** A frame the management API was asked to post down a connection. */
export interface PostedFrame {
  readonly connectionId: string;
  readonly text: string;
}

export interface ConnectionsRecorderOptions {
  /** WebSocket messages are billed per this many bytes of a frame (32 KB). */
  meteringBytes: number;
  /** Whether API Gateway has the connection: a post to any other fails as API Gateway's does (410 Gone). */
  isOpen: (connectionId: string) => boolean;
  /** Bytes of the HTTP request a PostToConnection of a frame of `frameBytes` makes (SigV4 headers and all). */
  requestBytes: (frameBytes: number) => number;
  /** Each frame posted, once counted: what the agent at the other end receives. */
  onPost: (frame: PostedFrame) => void;
  onClose: (connectionId: string) => void;
}

/**
 * Answers API Gateway's management API in place of API Gateway (every client of it, as
 * aws-sdk-client-mock does: the functions create theirs at import): each PostToConnection is a
 * frame sent down the connection, billed as WebSocket messages (32 KB increments), and handed
 * to `onPost`, as the agent would receive it; DeleteConnection closes the connection. A post to
 * a connection API Gateway does not have fails with GoneException, as it does on AWS. Returns
 * what undoes it.
 */
export function recordConnections(sink: MeterSink, options: ConnectionsRecorderOptions): { restore(): void } {
  const mock = mockClient(ApiGatewayManagementApiClient);
  const gone = (connectionId: string) =>
    new GoneException({ message: `no connection ${connectionId}`, $metadata: { httpStatusCode: 410 } });
  mock.on(PostToConnectionCommand).callsFake(async (input: { ConnectionId?: string; Data?: unknown }) => {
    const connectionId = String(input.ConnectionId);
    const data = input.Data;
    const text =
      typeof data === 'string' ? data : data instanceof Uint8Array ? Buffer.from(data).toString('utf8') : '';
    const bytes = Buffer.byteLength(text);
    const invocation = sink.invocation;
    if (invocation !== undefined) {
      invocation.awsCalls += 1;
      invocation.posts = (invocation.posts ?? 0) + 1;
      invocation.postBytes = (invocation.postBytes ?? 0) + options.requestBytes(bytes);
    }
    // Nothing is sent, but the request takes its place among the others.
    await asRequest(sink, 'aws', async () => undefined);
    if (!options.isOpen(connectionId)) throw gone(connectionId);
    sink.usage?.addWebSocket('sent', bytes, options.meteringBytes);
    options.onPost({ connectionId, text });
    return { $metadata: {} };
  });
  mock.on(DeleteConnectionCommand).callsFake(async (input: { ConnectionId?: string }) => {
    const connectionId = String(input.ConnectionId);
    if (sink.invocation !== undefined) sink.invocation.awsCalls += 1;
    await asRequest(sink, 'aws', async () => undefined);
    if (!options.isOpen(connectionId)) throw gone(connectionId);
    options.onClose(connectionId);
    return { $metadata: {} };
  });
  return { restore: () => mock.restore() };
}

/**
 * Bytes of the HTTP request line and headers (SigV4 signature and all) of a PostToConnection,
 * as the functions' SDK builds it: captured once by a client of its own whose request handler
 * keeps the request and answers 200, sending nothing. Call before `recordConnections`, which
 * answers every client of the management API. A post's request is this and its frame.
 */
export async function postToConnectionHeadBytes(options: {
  endpoint: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
}): Promise<number> {
  let head: string | undefined;
  const client = new ApiGatewayManagementApiClient({
    ...options,
    requestHandler: {
      handle: async (request: HttpRequest) => {
        const query = new URLSearchParams(
          Object.entries(request.query ?? {}).flatMap(([k, v]) =>
            v === null ? [] : (Array.isArray(v) ? v : [v]).map((one): [string, string] => [k, one]),
          ),
        ).toString();
        head =
          `${request.method} ${request.path}${query === '' ? '' : `?${query}`} HTTP/1.1\r\n` +
          Object.entries(request.headers)
            .map(([name, value]) => `${name}: ${value}\r\n`)
            .join('') +
          '\r\n';
        return { response: { statusCode: 200, headers: {}, body: Readable.from([]) } };
      },
    },
  });
  try {
    // A connection id as API Gateway makes them: 16 characters.
    await client.send(
      new PostToConnectionCommand({ ConnectionId: 'AbCdEfGhIjKlMnA=', Data: new TextEncoder().encode('{}') }),
    );
  } finally {
    client.destroy();
  }
  if (head === undefined) throw new Error('the SDK sent no PostToConnection request');
  return Buffer.byteLength(head);
}
