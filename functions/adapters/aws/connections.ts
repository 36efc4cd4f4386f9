/**
 * Connection subscriptions on AWS: partners' connections to API Gateway's WebSocket API
 * (docs/connection-protocol.md), which keeps no state of its own between frames. The
 * connections table (tables.ts CONNECTIONS_TABLE) holds:
 * - `CONN#<connectionId>` / `CONN`: whose connection it is (the partner id), for the frames,
 *   which arrive with the connection id alone;
 * - `<partnerId>` / `CONN#<connectionId>`: the connection (its key, the subscriptions it
 *   serves, whether `hello` went, when it was last heard from), read by the dispatcher with one
 *   query of the partner's partition;
 * - `ACK#<connectionId>` / `<deliveryId>#<attempt>`: an agent's answer, written by the
 *   connections function and read by the dispatcher waiting on it. Keyed by the connection,
 *   so an answer from any other connection is never read.
 * Every item expires: a connection 3 hours after it opened (API Gateway closes it after 2),
 * an answer after an hour.
 *
 * Tries waiting for a connection are parked in the deliveries table, which outlives the
 * service stack: `PARK#<subscriptionId>` / `<deliveryId>#<attempt>`, with the message that
 * makes the try, until a connection of the subscription opens or the retention ends.
 */
import {
  type ApiGatewayManagementApiClient,
  DeleteConnectionCommand,
  GoneException,
  LimitExceededException,
  PayloadTooLargeException,
  PostToConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import {
  BatchGetCommand,
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import * as z from 'zod';
import {
  answerOf,
  deliveryFrames,
  HEARTBEAT_SECONDS,
  type KeyConnectionCloser,
  MAX_NACK_ERROR_CHARS,
} from '../../core/connection-protocol.ts';
import { MessagesNotSentError } from '../../core/errors.ts';
import { DeliveryMessage, type DeliveryMessage as Message } from '../../core/model.ts';
import type {
  CallbackResult,
  Clock,
  ConnectionAnswer,
  ConnectionPusher,
  ConnectionRegistry,
  ConnectionSender,
  ParkedTries,
  ParkedTry,
  PostResult,
  PushRequest,
  QueueSender,
  RegisteredConnection,
  Release,
} from '../../core/ports.ts';
import { systemClock } from '../clock.ts';
import { attributeNames, expiresAt, type Item, isConditionFailure, queryItems } from './dynamo.ts';

/** A connection's items outlive API Gateway's 2-hour limit on a connection by an hour. */
const CONNECTION_TTL_SECONDS = 3 * 3600;
/** An answer is kept an hour: read within the delivery timeout, or never. */
const ANSWER_TTL_SECONDS = 3600;
/** Writes of parked items made at once. */
const PARALLEL_WRITES = 25;
/** Reads of an answer per look at whether its connection is still there (each a second read). */
const CLOSED_CHECK_EVERY = 4;
/** How long a read of a subscription's connections serves the tries that follow it. */
const SERVING_REUSE_MS = 1000;
/** How long an answer is still looked for once its connection is found gone. */
const CLOSED_GRACE_MS = 2000;
/** A claim on a parked try that is this old was left by a function that died: taken again. */
const STALE_CLAIM_MS = 5 * 60_000;
/**
 * The waits between reads of an answer, in ms; the last repeats. An agent that answers at once
 * is read within a few tens of ms; a slow one costs a read every quarter second.
 */
export const ANSWER_POLL_MS: readonly number[] = [20, 30, 50, 100, 150, 250];

const byIdKey = (connectionId: string) => ({ pk: `CONN#${connectionId}`, sk: 'CONN' });
const partnerKey = (partnerId: string, connectionId: string) => ({
  pk: partnerId,
  sk: `CONN#${connectionId}`,
});
const answerKey = (connectionId: string, deliveryId: string, attempt: number) => ({
  pk: `ACK#${connectionId}`,
  sk: `${deliveryId}#${attempt}`,
});
const parkedKey = (subscriptionId: string, message: Message) => ({
  pk: `PARK#${subscriptionId}`,
  sk: `${message.deliveryId}#${message.attempt ?? 0}`,
});

const ConnectionItem = z.object({
  connectionId: z.string(),
  partnerId: z.string(),
  keyId: z.string(),
  keyHash: z.string(),
  subscriptionId: z.string().optional(),
  subscriptions: z.array(z.string()),
  ready: z.boolean(),
  releasing: z.boolean().default(false),
  lastSeen: z.number(),
});
type ConnectionItem = z.infer<typeof ConnectionItem>;

const AnswerItem = z.discriminatedUnion('type', [
  z.object({ type: z.literal('ack'), deliveryId: z.string(), attempt: z.number(), status: z.number() }),
  z.object({
    type: z.literal('nack'),
    deliveryId: z.string(),
    attempt: z.number(),
    status: z.number().optional(),
    error: z.string().optional(),
  }),
]);

const ParkedItem = z.object({
  pk: z.string(),
  sk: z.string(),
  message: DeliveryMessage,
  groupId: z.string(),
  claimedAt: z.number().optional(),
});

function registered(item: ConnectionItem): RegisteredConnection {
  return {
    connectionId: item.connectionId,
    partnerId: item.partnerId,
    keyId: item.keyId,
    keyHash: item.keyHash,
    ...(item.subscriptionId === undefined ? {} : { subscriptionId: item.subscriptionId }),
    subscriptions: item.subscriptions,
    ready: item.ready,
    releasing: item.releasing,
  };
}

const epochSeconds = (at: Date, plusSeconds: number) => Math.floor(at.getTime() / 1000) + plusSeconds;

/** Frames down connections through API Gateway's management API. */
export class ApiGatewayConnectionSender implements ConnectionSender {
  readonly #api: ApiGatewayManagementApiClient;

  constructor(api: ApiGatewayManagementApiClient) {
    this.#api = api;
  }

  async post(connectionId: string, frames: readonly string[]): Promise<PostResult> {
    try {
      // One after another: a try's parts arrive in order.
      for (const frame of frames) {
        await this.#api.send(
          new PostToConnectionCommand({ ConnectionId: connectionId, Data: new TextEncoder().encode(frame) }),
        );
      }
      return 'sent';
    } catch (error) {
      if (error instanceof GoneException) return 'gone';
      // The connection's own trouble (its client reads too slowly, a frame too large): the try
      // fails as a callback to a slow receiver would. Anything else is the dispatcher's.
      if (error instanceof LimitExceededException || error instanceof PayloadTooLargeException)
        return { refused: `${error.name}: ${error.message}` };
      throw error;
    }
  }

  async close(connectionId: string): Promise<void> {
    try {
      await this.#api.send(new DeleteConnectionCommand({ ConnectionId: connectionId }));
    } catch (error) {
      if (!(error instanceof GoneException)) throw error;
    }
  }
}

export interface DynamoConnectionsOptions {
  /** The connections table's name. */
  tableName: string;
  sender: ConnectionSender;
  /** @default systemClock */
  clock?: Clock;
  /** @default HEARTBEAT_SECONDS */
  heartbeatSeconds?: number;
}

/**
 * The connections table: the registry the connections function keeps, what the dispatcher
 * pushes through (ConnectionPusher), and the closer of a revoked key's connections.
 */
export class DynamoConnections implements ConnectionRegistry, KeyConnectionCloser {
  readonly tableName: string;
  readonly sender: ConnectionSender;
  readonly #client: DynamoDBDocumentClient;
  readonly #clock: Clock;
  readonly #silentMs: number;

  constructor(client: DynamoDBDocumentClient, options: DynamoConnectionsOptions) {
    this.#client = client;
    this.tableName = options.tableName;
    this.sender = options.sender;
    this.#clock = options.clock ?? systemClock;
    this.#silentMs = 3 * (options.heartbeatSeconds ?? HEARTBEAT_SECONDS) * 1000;
  }

  /** Those heard from within three heartbeats: one silent longer no longer counts, and is closed. */
  async count(partnerId: string): Promise<number> {
    return (await this.#live(partnerId)).length;
  }

  /** Its owner first: a frame that finds the connection can always find its partner. */
  async open(connection: RegisteredConnection, at: Date): Promise<void> {
    const expiresAt = epochSeconds(at, CONNECTION_TTL_SECONDS);
    await this.#client.send(
      new PutCommand({
        TableName: this.tableName,
        Item: { ...byIdKey(connection.connectionId), partnerId: connection.partnerId, expiresAt },
      }),
    );
    await this.#client.send(
      new PutCommand({
        TableName: this.tableName,
        Item: {
          ...partnerKey(connection.partnerId, connection.connectionId),
          ...connection,
          lastSeen: at.getTime(),
          connectedAt: at.toISOString(),
          expiresAt,
        },
      }),
    );
  }

  async heard(connectionId: string, at: Date): Promise<RegisteredConnection | undefined> {
    const partnerId = await this.#partnerOf(connectionId);
    if (partnerId === undefined) return undefined;
    try {
      const result = await this.#client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: partnerKey(partnerId, connectionId),
          UpdateExpression: 'SET lastSeen = :at',
          ConditionExpression: 'attribute_exists(pk)',
          ExpressionAttributeValues: { ':at': at.getTime() },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return registered(ConnectionItem.parse(result.Attributes));
    } catch (error) {
      if (isConditionFailure(error)) return undefined;
      throw error;
    }
  }

  async ready(connection: RegisteredConnection): Promise<void> {
    await this.#mark(connection, 'SET #ready = :yes, releasing = :yes', { ':yes': true }, ['ready']);
  }

  async released(connection: RegisteredConnection): Promise<void> {
    await this.#mark(connection, 'SET releasing = :no', { ':no': false });
  }

  /** Updates the connection's item, if it is still there (closed in between: nothing to mark). */
  async #mark(
    connection: RegisteredConnection,
    update: string,
    values: Record<string, unknown>,
    names: string[] = [],
  ): Promise<void> {
    try {
      await this.#client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: partnerKey(connection.partnerId, connection.connectionId),
          UpdateExpression: update,
          ConditionExpression: 'attribute_exists(pk)',
          ...(names.length === 0 ? {} : { ExpressionAttributeNames: attributeNames(...names) }),
          ExpressionAttributeValues: values,
        }),
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
    }
  }

  async close(connectionId: string): Promise<void> {
    const partnerId = await this.#partnerOf(connectionId);
    if (partnerId !== undefined) await this.#forget(partnerId, connectionId);
    else
      await this.#client.send(new DeleteCommand({ TableName: this.tableName, Key: byIdKey(connectionId) }));
  }

  async answer(connectionId: string, answer: ConnectionAnswer, at: Date): Promise<void> {
    await this.#client.send(
      new PutCommand({
        TableName: this.tableName,
        Item: {
          ...answerKey(connectionId, answer.deliveryId, answer.attempt),
          type: answer.type,
          deliveryId: answer.deliveryId,
          attempt: answer.attempt,
          ...(answer.status === undefined ? {} : { status: answer.status }),
          ...(answer.type === 'nack' && answer.error !== undefined
            ? { error: answer.error.slice(0, MAX_NACK_ERROR_CHARS) }
            : {}),
          expiresAt: epochSeconds(at, ANSWER_TTL_SECONDS),
        },
      }),
    );
  }

  /** Closes the connections opened with the key (a revoked key receives nothing more). */
  async closeKey(partnerId: string, keyId: string): Promise<void> {
    for (const connection of await this.#connectionsOf(partnerId)) {
      if (connection.keyId !== keyId) continue;
      await this.drop(partnerId, connection.connectionId);
    }
  }

  /**
   * The partner's connections that may be sent the subscription's tries now: ready, and heard
   * from within three heartbeats. Those silent longer are closed and forgotten as they are found.
   */
  async serving(partnerId: string, subscriptionId: string): Promise<RegisteredConnection[]> {
    return (await this.#live(partnerId))
      .filter(
        (item) => item.ready && (item.subscriptionId === undefined || item.subscriptionId === subscriptionId),
      )
      .map(registered);
  }

  /** Closes a connection (if API Gateway still has it) and forgets it. */
  async drop(partnerId: string, connectionId: string): Promise<void> {
    await this.sender.close(connectionId);
    await this.#forget(partnerId, connectionId);
  }

  /**
   * The connection's answer to the try, if it has come. With `orClosed`, whether the connection
   * is still there too (`closed` when it is gone), in one consistent read of both items.
   */
  async answerTo(
    connectionId: string,
    deliveryId: string,
    attempt: number,
    orClosed = true,
  ): Promise<ConnectionAnswer | 'closed' | undefined> {
    const answer = answerKey(connectionId, deliveryId, attempt);
    if (!orClosed) {
      const result = await this.#client.send(
        new GetCommand({ TableName: this.tableName, Key: answer, ConsistentRead: true }),
      );
      return result.Item === undefined ? undefined : AnswerItem.parse(result.Item);
    }
    const owner = byIdKey(connectionId);
    const result = await this.#client.send(
      new BatchGetCommand({
        RequestItems: { [this.tableName]: { Keys: [answer, owner], ConsistentRead: true } },
      }),
    );
    const items = result.Responses?.[this.tableName] ?? [];
    const found = items.find((item) => item.pk === answer.pk && item.sk === answer.sk);
    if (found !== undefined) return AnswerItem.parse(found);
    // A key left unprocessed is asked again at the next read.
    const unprocessed = (result.UnprocessedKeys?.[this.tableName]?.Keys ?? []).some(
      (key) => key.pk === owner.pk,
    );
    const ownerFound = items.some((item) => item.pk === owner.pk);
    return ownerFound || unprocessed ? undefined : 'closed';
  }

  async #partnerOf(connectionId: string): Promise<string | undefined> {
    const result = await this.#client.send(
      new GetCommand({ TableName: this.tableName, Key: byIdKey(connectionId), ConsistentRead: true }),
    );
    const partnerId = result.Item?.partnerId;
    return typeof partnerId === 'string' ? partnerId : undefined;
  }

  /** The partner's connections heard from within three heartbeats; the others are dropped as found. */
  async #live(partnerId: string): Promise<ConnectionItem[]> {
    const silentSince = this.#clock.now().getTime() - this.#silentMs;
    const live: ConnectionItem[] = [];
    for (const item of await this.#connectionsOf(partnerId)) {
      if (item.lastSeen >= silentSince) live.push(item);
      else await this.drop(partnerId, item.connectionId);
    }
    return live;
  }

  async #connectionsOf(partnerId: string): Promise<ConnectionItem[]> {
    const found: ConnectionItem[] = [];
    for await (const item of queryItems(this.#client, {
      TableName: this.tableName,
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :conn)',
      ExpressionAttributeValues: { ':pk': partnerId, ':conn': 'CONN#' },
      ConsistentRead: true,
    })) {
      const parsed = ConnectionItem.safeParse(item);
      if (parsed.success) found.push(parsed.data);
    }
    return found;
  }

  /** The partner's item first: once it is gone, no try is sent down the connection. */
  async #forget(partnerId: string, connectionId: string): Promise<void> {
    await this.#client.send(
      new DeleteCommand({ TableName: this.tableName, Key: partnerKey(partnerId, connectionId) }),
    );
    await this.#client.send(new DeleteCommand({ TableName: this.tableName, Key: byIdKey(connectionId) }));
  }
}

export interface DynamoParkedTriesOptions {
  /** The deliveries table's name. */
  tableName: string;
  /** Days a parked try is kept: the deployment's retention, as its delivery's. */
  retentionDays: number;
  /** @default systemClock */
  clock?: Clock;
}

/**
 * Tries parked until a connection opens, in the deliveries table. Whoever takes a parked try
 * (a release as a connection opens, or the dispatcher that parked it finding a connection
 * open) first claims it with a conditional write, so exactly one of them sends it on.
 */
export class DynamoParkedTries {
  readonly tableName: string;
  readonly #client: DynamoDBDocumentClient;
  readonly #clock: Clock;
  readonly #retentionDays: number;

  constructor(client: DynamoDBDocumentClient, options: DynamoParkedTriesOptions) {
    this.#client = client;
    this.tableName = options.tableName;
    this.#retentionDays = options.retentionDays;
    this.#clock = options.clock ?? systemClock;
  }

  async park(parked: ParkedTry): Promise<void> {
    const now = this.#clock.now();
    await this.#client.send(
      new PutCommand({
        TableName: this.tableName,
        Item: {
          ...parkedKey(parked.subscriptionId, parked.message),
          message: parked.message,
          groupId: parked.groupId,
          parkedAt: now.toISOString(),
          expiresAt: expiresAt(this.#clock, this.#retentionDays),
        },
      }),
    );
  }

  /** Claims the parked try, then forgets it; false when another took it first. */
  async takeBack(parked: ParkedTry): Promise<boolean> {
    const key = parkedKey(parked.subscriptionId, parked.message);
    if (!(await this.#claim(key))) return false;
    await this.#client.send(new DeleteCommand({ TableName: this.tableName, Key: key }));
    return true;
  }

  /**
   * Sends at most `limit` of the subscription's parked tries to `queue`, oldest parked
   * deliveries first by id: each claimed first and forgotten once sent. A function that dies
   * in between, or a send that fails, leaves claims that go stale and are taken again by a
   * later release (`more` says one is due).
   */
  async release(subscriptionId: string, queue: QueueSender<Message>, limit: number): Promise<Release> {
    // The first `limit` not claimed by another release (one beyond says there are more).
    let more = false;
    let unreadable = 0;
    const readable: z.infer<typeof ParkedItem>[] = [];
    const staleBefore = this.#clock.now().getTime() - STALE_CLAIM_MS;
    for await (const item of queryItems(this.#client, {
      TableName: this.tableName,
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': `PARK#${subscriptionId}` },
      ConsistentRead: true,
      Limit: limit + 1,
    })) {
      const parked = ParkedItem.safeParse(item);
      if (!parked.success) unreadable++;
      else if (parked.data.claimedAt !== undefined && parked.data.claimedAt >= staleBefore) more = true;
      else if (readable.length === limit) {
        more = true;
        break;
      } else readable.push(parked.data);
    }
    const claimed: z.infer<typeof ParkedItem>[] = [];
    for (let start = 0; start < readable.length; start += PARALLEL_WRITES) {
      const batch = readable.slice(start, start + PARALLEL_WRITES);
      const taken = await Promise.all(batch.map((item) => this.#claim({ pk: item.pk, sk: item.sk })));
      claimed.push(...batch.filter((_, index) => taken[index]));
    }
    // Some another release holds: it may fail, so look again later.
    if (claimed.length < readable.length) more = true;
    let sent = claimed;
    try {
      // Marked as tries that waited, as the local queue's are: their latency says nothing of callbacks.
      await queue.send(
        claimed.map((item) => ({ body: { ...item.message, waiting: true }, groupId: item.groupId })),
      );
    } catch (error) {
      if (!(error instanceof MessagesNotSentError)) throw error;
      const unsent = new Set(error.unsent);
      sent = claimed.filter((_, index) => !unsent.has(index));
      more = true;
    }
    for (let start = 0; start < sent.length; start += PARALLEL_WRITES) {
      await Promise.all(
        sent
          .slice(start, start + PARALLEL_WRITES)
          .map((item) =>
            this.#client.send(
              new DeleteCommand({ TableName: this.tableName, Key: { pk: item.pk, sk: item.sk } }),
            ),
          ),
      );
    }
    return { released: sent.length, unreadable, more };
  }

  async #claim(key: Item): Promise<boolean> {
    const now = this.#clock.now().getTime();
    try {
      await this.#client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: key,
          UpdateExpression: 'SET claimedAt = :now',
          ConditionExpression:
            'attribute_exists(pk) AND (attribute_not_exists(claimedAt) OR claimedAt < :stale)',
          ExpressionAttributeValues: { ':now': now, ':stale': now - STALE_CLAIM_MS },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }
}

/** The parked tries a connections function releases, to the delivery queue. */
export function releasingTo(parked: DynamoParkedTries, queue: QueueSender<Message>): ParkedTries {
  return { release: (subscriptionId, limit) => parked.release(subscriptionId, queue, limit) };
}

export interface ApiGatewayConnectionPusherOptions {
  /** @default systemClock */
  clock?: Clock;
  /** @default ANSWER_POLL_MS */
  pollMs?: readonly number[];
  /** @default Math.random */
  random?: () => number;
  /** How long an answer is still looked for once its connection is found gone. @default CLOSED_GRACE_MS */
  closedGraceMs?: number;
  /** How long a read of a subscription's connections serves the tries that follow. @default SERVING_REUSE_MS */
  servingReuseMs?: number;
}

/**
 * The dispatcher's ConnectionPusher on AWS. A try goes down one live connection of its
 * subscription, picked at random (connections of a subscription share its tries); one API
 * Gateway has lost is forgotten and the next tried. Then the dispatcher waits for the answer as
 * it waits for an HTTP response, reading the connection's answer item until it comes, the
 * connection closes, or the delivery timeout passes.
 */
export class ApiGatewayConnectionPusher implements ConnectionPusher {
  readonly #connections: DynamoConnections;
  readonly #parked: DynamoParkedTries;
  readonly #clock: Clock;
  readonly #pollMs: readonly number[];
  readonly #random: () => number;
  readonly #closedGraceMs: number;
  readonly #servingReuseMs: number;
  /**
   * The connections found per subscription, for SERVING_REUSE_MS: one dispatcher environment
   * runs a batch's tries side by side, and a batch mostly holds one subscription's, so they
   * share one read of its partner's connections. A connection gone since is found gone at the
   * post, and the next one tried.
   */
  readonly #recent = new Map<string, { at: number; serving: Promise<RegisteredConnection[]> }>();

  constructor(
    connections: DynamoConnections,
    parked: DynamoParkedTries,
    options: ApiGatewayConnectionPusherOptions = {},
  ) {
    this.#connections = connections;
    this.#parked = parked;
    this.#clock = options.clock ?? systemClock;
    this.#pollMs = options.pollMs ?? ANSWER_POLL_MS;
    this.#random = options.random ?? Math.random;
    this.#closedGraceMs = options.closedGraceMs ?? CLOSED_GRACE_MS;
    this.#servingReuseMs = options.servingReuseMs ?? SERVING_REUSE_MS;
  }

  async isOpen(partnerId: string, subscriptionId: string): Promise<boolean> {
    return (await this.#serving(partnerId, subscriptionId)).length > 0;
  }

  /** The subscription's live connections, as read within SERVING_REUSE_MS, else read now. */
  #serving(partnerId: string, subscriptionId: string): Promise<RegisteredConnection[]> {
    const now = this.#clock.now().getTime();
    for (const [key, entry] of this.#recent)
      if (now - entry.at >= this.#servingReuseMs) this.#recent.delete(key);
    return (
      this.#recent.get(`${partnerId}#${subscriptionId}`)?.serving ?? this.#read(partnerId, subscriptionId)
    );
  }

  /** Reads the subscription's live connections now; the read serves for SERVING_REUSE_MS, unless it fails. */
  #read(partnerId: string, subscriptionId: string): Promise<RegisteredConnection[]> {
    const key = `${partnerId}#${subscriptionId}`;
    const serving = this.#connections.serving(partnerId, subscriptionId);
    const entry = { at: this.#clock.now().getTime(), serving };
    this.#recent.set(key, entry);
    // A failed read is not kept (nor one a later read has replaced).
    serving.catch(() => {
      if (this.#recent.get(key) === entry) this.#recent.delete(key);
    });
    return serving;
  }

  async push(request: PushRequest): Promise<CallbackResult | undefined> {
    const candidates = shuffled(await this.#serving(request.partnerId, request.subscriptionId), this.#random);
    const frames = deliveryFrames(request);
    for (const connection of candidates) {
      const started = this.#clock.now().getTime();
      const posted = await this.#connections.sender.post(connection.connectionId, frames);
      if (posted === 'gone') {
        await this.#connections.drop(request.partnerId, connection.connectionId);
        continue;
      }
      if (posted !== 'sent') {
        return {
          error: 'connection',
          errorMessage: `the gateway refused the frame (${posted.refused})`,
          durationMs: this.#clock.now().getTime() - started,
        };
      }
      return this.#answer(connection.connectionId, request, started);
    }
    return undefined;
  }

  /**
   * Parks the try, then looks for a connection once more: one that became ready as it parked
   * may have released the subscription's tries before this one was there to release.
   */
  async park(parked: ParkedTry): Promise<'parked' | 'open'> {
    await this.#parked.park(parked);
    // Read now, never the recent read: a connection that became ready since has released the
    // tries parked before this one. What it finds serves the push that may follow.
    if ((await this.#read(parked.partnerId, parked.subscriptionId)).length === 0) return 'parked';
    return (await this.#parked.takeBack(parked)) ? 'open' : 'parked';
  }

  /**
   * Reads the answer until it comes or the timeout passes. A connection found gone is given
   * CLOSED_GRACE_MS more: API Gateway runs an ack's route and `$disconnect` independently, so
   * an agent that answers and then closes may be forgotten before its answer is written.
   */
  async #answer(connectionId: string, request: PushRequest, started: number): Promise<CallbackResult> {
    const deadline = started + request.timeoutMs;
    let closedAt: number | undefined;
    for (let read = 0; ; read++) {
      const wait = this.#pollMs[Math.min(read, this.#pollMs.length - 1)] ?? 250;
      const now = this.#clock.now().getTime();
      if (now >= deadline) break;
      await sleep(Math.min(wait, deadline - now));
      // Whether the connection is still there is asked every CLOSED_CHECK_EVERY reads.
      const orClosed = closedAt !== undefined || read % CLOSED_CHECK_EVERY === CLOSED_CHECK_EVERY - 1;
      const answer = await this.#connections.answerTo(
        connectionId,
        request.deliveryId,
        request.attempt,
        orClosed,
      );
      const at = this.#clock.now().getTime();
      if (answer !== undefined && answer !== 'closed') return answerOf(answer, at - started);
      if (answer === 'closed') {
        closedAt ??= at;
        if (at - closedAt >= this.#closedGraceMs)
          return {
            error: 'connection',
            errorMessage: 'the connection closed before an answer',
            durationMs: at - started,
          };
      }
    }
    return {
      error: 'timeout',
      errorMessage: `no ack or nack within ${request.timeoutMs} ms`,
      durationMs: this.#clock.now().getTime() - started,
    };
  }
}

function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j] as T, copy[i] as T];
  }
  return copy;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
