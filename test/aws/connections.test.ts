/**
 * Connection subscriptions on AWS: the connections function's routes and the dispatcher's
 * pusher on DynamoDB Local (the connections, partners, subscriptions, deliveries and events
 * tables as deployed), with API Gateway's management API played by aws-sdk-client-mock: each
 * PostToConnection is a frame to the simulated agent, which answers through the `$default`
 * route as API Gateway would invoke it.
 */
import {
  ApiGatewayManagementApiClient,
  DeleteConnectionCommand,
  GoneException,
  LimitExceededException,
  PostToConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import { QueryCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  ApiGatewayConnectionPusher,
  ApiGatewayConnectionSender,
  DynamoConnections,
  DynamoParkedTries,
  releasingTo,
} from '../../functions/adapters/aws/connections.ts';
import { DynamoDeliveryStore } from '../../functions/adapters/aws/deliveries.ts';
import { DynamoEventLog } from '../../functions/adapters/aws/events.ts';
import { DynamoOrderedLines } from '../../functions/adapters/aws/ordered-lines.ts';
import { DynamoPartnerStore } from '../../functions/adapters/aws/partners.ts';
import { DynamoSubscriptionStore } from '../../functions/adapters/aws/subscriptions.ts';
import {
  CONNECTIONS_TABLE,
  DELIVERIES_TABLE,
  EVENTS_TABLE,
  PARTNERS_TABLE,
  SUBSCRIPTIONS_TABLE,
} from '../../functions/adapters/aws/tables.ts';
import { createConnectionsHandler } from '../../functions/connections/handler.ts';
import {
  MAX_CONNECTIONS_PER_PARTNER,
  MAX_SERVER_FRAME_BYTES,
} from '../../functions/core/connection-protocol.ts';
import { type DeliverDeps, deliver } from '../../functions/core/delivery.ts';
import { fanoutDeliveryId } from '../../functions/core/fanout.ts';
import type { Delivery, DeliveryMessage, JsonValue } from '../../functions/core/model.ts';
import { createPartner } from '../../functions/core/partners.ts';
import type { OutgoingMessage } from '../../functions/core/ports.ts';
import { verifySignature } from '../../functions/core/signing.ts';
import { createSubscription } from '../../functions/core/subscriptions.ts';
import { lambdaContext } from '../../local/lambda-context.ts';
import { tablesPerTest } from '../dynamodb-local/tables.ts';
import { testCipher } from '../support/cipher.ts';
import { RecordingQueue } from '../support/recording-queue.ts';

const local = tablesPerTest('connections');
const client = local.client;
const api = mockClient(ApiGatewayManagementApiClient);
const clock = { now: () => new Date() };

type Frame = Record<string, unknown> & { type: string };

/** Counts the queries of a partner's connections made from now on (the document client's sends). */
function spyOnQueries(partnerId: string): () => number {
  let count = 0;
  const send = client.send.bind(client);
  vi.spyOn(client, 'send').mockImplementation(((command: {
    input?: { ExpressionAttributeValues?: Record<string, unknown> };
  }) => {
    if (command instanceof QueryCommand && command.input.ExpressionAttributeValues?.[':pk'] === partnerId)
      count++;
    return send(command as never);
  }) as never);
  return () => count;
}

/** An agent that acks every delivery with `status`. */
const acking =
  (status = 200) =>
  (frame: Frame): Frame => ({ type: 'ack', deliveryId: frame.deliveryId, attempt: frame.attempt, status });

/** Everything of one test: the tables, the stores, the handler, the pusher, and the agents' inboxes. */
async function setUp(
  options: {
    random?: () => number;
    closedGraceMs?: number;
    servingReuseMs?: number;
    releasePerPing?: number;
    queue?: RecordingQueue;
  } = {},
) {
  const [connectionsTable, partnersTable, subscriptionsTable, deliveriesTable, eventsTable] =
    await Promise.all([
      local.table(CONNECTIONS_TABLE),
      local.table(PARTNERS_TABLE),
      local.table(SUBSCRIPTIONS_TABLE),
      local.table(DELIVERIES_TABLE),
      local.table(EVENTS_TABLE),
    ]);
  const sender = new ApiGatewayConnectionSender(new ApiGatewayManagementApiClient({ region: 'local' }));
  const connections = new DynamoConnections(client, { tableName: connectionsTable, sender });
  const parked = new DynamoParkedTries(client, { tableName: deliveriesTable, retentionDays: 30 });
  const partners = new DynamoPartnerStore(client, partnersTable);
  const subscriptions = new DynamoSubscriptionStore(client, subscriptionsTable, testCipher());
  const deliveries = new DynamoDeliveryStore(client, deliveriesTable);
  const lines = new DynamoOrderedLines(client, deliveriesTable);
  const events = new DynamoEventLog(client, eventsTable);
  const released = options.queue ?? new RecordingQueue();
  const logged: string[] = [];
  const handler = createConnectionsHandler({
    partners,
    subscriptions,
    clock,
    registry: connections,
    sender,
    parked: releasingTo(parked, released),
    ackTimeoutSeconds: 1,
    ...(options.releasePerPing === undefined ? {} : { releasePerPing: options.releasePerPing }),
    log: (message) => logged.push(message),
  });
  const pusher = new ApiGatewayConnectionPusher(connections, parked, {
    ...(options.random === undefined ? {} : { random: options.random }),
    closedGraceMs: options.closedGraceMs ?? 300,
    // Each look at the connections fresh, unless a test asks otherwise.
    servingReuseMs: options.servingReuseMs ?? 0,
  });

  /** Frames each connection was sent, parsed. */
  const inbox = new Map<string, Frame[]>();
  /** How each connection's agent answers a delivery; none: it stays silent. */
  const agents = new Map<string, (frame: Frame) => Frame | undefined>();
  api.on(PostToConnectionCommand).callsFake(async (input: { ConnectionId: string; Data: Uint8Array }) => {
    if (!inbox.has(input.ConnectionId)) throw new GoneException({ message: 'gone', $metadata: {} });
    const frame = JSON.parse(new TextDecoder().decode(input.Data)) as Frame;
    inbox.get(input.ConnectionId)?.push(frame);
    const answer = frame.type === 'delivery' ? agents.get(input.ConnectionId)?.(frame) : undefined;
    // The agent answers a moment later, through the $default route.
    if (answer !== undefined) setTimeout(() => void send(input.ConnectionId, answer), 30);
    return {};
  });
  api.on(DeleteConnectionCommand).callsFake(async (input: { ConnectionId: string }) => {
    inbox.delete(input.ConnectionId);
    return {};
  });

  const invoke = (event: unknown) => handler(event, lambdaContext('connections'));
  /** The upgrade, as API Gateway passes it to $connect. */
  async function connect(connectionId: string, apiKey: string | undefined, subscription?: string) {
    const result = await invoke({
      requestContext: { routeKey: '$connect', connectionId },
      headers: apiKey === undefined ? {} : { Authorization: `Bearer ${apiKey}` },
      queryStringParameters: subscription === undefined ? null : { subscription },
    });
    if (result.statusCode === 200) inbox.set(connectionId, []);
    return result;
  }
  async function send(connectionId: string, frame: Frame) {
    return invoke({ requestContext: { routeKey: '$default', connectionId }, body: JSON.stringify(frame) });
  }
  /** A connection opened and heard from: ready for tries. */
  async function open(connectionId: string) {
    expect((await connect(connectionId, apiKey)).statusCode).toBe(200);
    await send(connectionId, { type: 'ping' });
  }
  async function disconnect(connectionId: string) {
    inbox.delete(connectionId);
    return invoke({ requestContext: { routeKey: '$disconnect', connectionId } });
  }

  const { partner, apiKey } = await createPartner({ partners, clock }, { name: 'behind a firewall' });
  const create = async () =>
    (
      await createSubscription(
        {
          subscriptions,
          clock,
          connectionsEnabled: true,
          resolver: { resolve: async () => [] },
          allowPrivateTargets: false,
        },
        partner.id,
        { transport: 'connection', eventTypes: [] },
      )
    ).subscription;
  const subscription = await create();

  /** A stored delivery of a new event to the subscription, and its first try's message. */
  async function newDelivery(payload: JsonValue = { orderId: 'o_1' }) {
    const { event } = await events.append({
      partnerId: partner.id,
      type: 'order.created',
      payload,
      createdAt: new Date().toISOString(),
    });
    const at = new Date().toISOString();
    const delivery: Delivery = {
      id: fanoutDeliveryId(event.id, subscription.id),
      eventId: event.id,
      subscriptionId: subscription.id,
      partnerId: partner.id,
      eventType: event.type,
      origin: 'fanout',
      status: 'pending',
      attempts: 0,
      createdAt: at,
      updatedAt: at,
    };
    await deliveries.createForEvent([delivery]);
    const message: DeliveryMessage = {
      deliveryId: delivery.id,
      eventId: event.id,
      subscriptionId: subscription.id,
      partnerId: partner.id,
    };
    return { delivery, message };
  }

  const queue = {
    hasSlowLane: false,
    sent: [] as OutgoingMessage<DeliveryMessage>[],
    dead: [] as DeliveryMessage[],
  };
  const deliverDeps: DeliverDeps = {
    events,
    subscriptions,
    deliveries,
    sender: {
      send: async () => {
        throw new Error('a connection subscription is never sent over HTTP');
      },
    },
    connections: pusher,
    queue: {
      hasSlowLane: false,
      send: async (messages) => {
        queue.sent.push(...messages);
      },
      deadLetter: async (message) => {
        queue.dead.push(message);
      },
    },
    clock,
    retrySchedule: [0, 5, 300],
    deliveryTimeoutMs: 1500,
    disableAfterMs: 86_400_000,
    lines,
  };

  return {
    tables: { connectionsTable, deliveriesTable },
    partners,
    logged,
    connections,
    parked,
    pusher,
    partner,
    apiKey,
    subscription,
    create,
    deliveries,
    inbox,
    agents,
    released,
    connect,
    send,
    open,
    disconnect,
    newDelivery,
    deliverDeps,
    queue,
  };
}

beforeEach(() => {
  api.reset();
});
afterEach(() => {
  api.reset();
  vi.restoreAllMocks();
});

describe('$connect', () => {
  it('closes a connection at its next ping once its key is revoked, though the revocation missed it', async () => {
    const t = await setUp();
    await t.open('c1');
    const [key] = await t.partners.listApiKeys(t.partner.id);
    // Revoked without closing (as if the revocation's close had failed, or raced the connect).
    await t.partners.removeApiKey(t.partner.id, key?.id ?? '', { keepLast: false });
    api.resetHistory();
    await t.send('c1', { type: 'ping' });
    expect(api.commandCalls(DeleteConnectionCommand).map((c) => c.args[0].input.ConnectionId)).toEqual([
      'c1',
    ]);
    expect(api.commandCalls(PostToConnectionCommand)).toHaveLength(0);
    expect(await t.connections.count(t.partner.id)).toBe(0);
    // The key is refused from then on.
    expect((await t.connect('c2', t.apiKey)).statusCode).toBe(401);
  });

  it('refuses a missing or wrong key (401), a subscription not the partner’s (404), one connection too many (429)', async () => {
    const t = await setUp();
    const noKey = await t.connect('c-nokey', undefined);
    expect(noKey.statusCode).toBe(401);
    expect(JSON.parse(String(noKey.body))).toMatchObject({ status: 401, title: 'Unauthorized' });
    expect((await t.connect('c-wrong', 'dk_live_not-a-key')).statusCode).toBe(401);
    const unknown = await t.connect('c-404', t.apiKey, 'sub_01JDZ8Q7N3V4WB9X2KQ5M6T8YR');
    expect(unknown.statusCode).toBe(404);
    expect(JSON.parse(String(unknown.body)).detail).toContain('sub_01JDZ8Q7N3V4WB9X2KQ5M6T8YR');
    expect((await t.connect('c-bad', t.apiKey, 'not an id')).statusCode).toBe(404);
    for (let i = 0; i < MAX_CONNECTIONS_PER_PARTNER; i++) {
      expect((await t.connect(`c-${i}`, t.apiKey)).statusCode).toBe(200);
    }
    expect((await t.connect('c-one-more', t.apiKey)).statusCode).toBe(429);
    // Closing one makes room again.
    await t.disconnect('c-0');
    expect((await t.connect('c-again', t.apiKey, t.subscription.id)).statusCode).toBe(200);
  });

  it('sends hello in answer to the first frame, then pong; only then is the connection sent tries', async () => {
    const t = await setUp();
    expect((await t.connect('c1', t.apiKey)).statusCode).toBe(200);
    // Registered, not ready: no try goes down it yet.
    expect(await t.pusher.isOpen(t.partner.id, t.subscription.id)).toBe(false);
    await t.send('c1', { type: 'ping', id: 7 });
    expect(t.inbox.get('c1')).toEqual([
      {
        type: 'hello',
        connectionId: 'c1',
        subscriptions: [t.subscription.id],
        heartbeatSeconds: 30,
        ackTimeoutSeconds: 1,
      },
      { type: 'pong', id: 7 },
    ]);
    expect(await t.pusher.isOpen(t.partner.id, t.subscription.id)).toBe(true);
    await t.send('c1', { type: 'ping' });
    expect(t.inbox.get('c1')?.at(-1)).toEqual({ type: 'pong' });
    expect(t.inbox.get('c1')?.filter((f) => f.type === 'hello')).toHaveLength(1);
    // Not the protocol's: ignored, nothing sent.
    await t.send('c1', { type: 'subscribe', to: 'everything' });
    await t.send('c1', { type: 'ping', id: 'x'.repeat(5000) });
    expect(t.inbox.get('c1')).toHaveLength(3);
    await t.disconnect('c1');
    expect(await t.pusher.isOpen(t.partner.id, t.subscription.id)).toBe(false);
    const left = await client.send(new ScanCommand({ TableName: t.tables.connectionsTable }));
    expect(left.Items).toEqual([]);
  });

  it('closes a connection it no longer knows when it speaks (forgotten, or its key revoked)', async () => {
    const t = await setUp();
    await t.connect('c1', t.apiKey);
    await t.send('c1', { type: 'ping' });
    await t.connect('c2', t.apiKey);
    await t.connections.closeKey(t.partner.id, 'key_of_someone_else');
    expect(t.inbox.has('c1')).toBe(true);
    // Revoking the key it was opened with closes it, and forgets it.
    const [registered] = await t.connections.serving(t.partner.id, t.subscription.id);
    expect(registered?.connectionId).toBe('c1');
    await t.connections.closeKey(t.partner.id, registered?.keyId ?? '');
    expect(t.inbox.has('c1')).toBe(false);
    expect(api.commandCalls(DeleteConnectionCommand).map((c) => c.args[0].input.ConnectionId)).toContain(
      'c1',
    );
    expect(await t.pusher.isOpen(t.partner.id, t.subscription.id)).toBe(false);
    // c2, opened with the same key, is closed too.
    expect(t.inbox.has('c2')).toBe(false);
    // A frame from a connection API Gateway still holds, unknown here, is answered by closing it.
    api.resetHistory();
    await t.send('c9', { type: 'ping' });
    expect(api.commandCalls(DeleteConnectionCommand).map((c) => c.args[0].input.ConnectionId)).toEqual([
      'c9',
    ]);
  });
});

describe('the dispatcher pushing through API Gateway', () => {
  it('delivers a try down the connection, signed as a callback, and records the ack', async () => {
    const t = await setUp();
    await t.open('c1');
    t.agents.set('c1', acking(204));
    const { message, delivery } = await t.newDelivery();
    expect(await deliver(t.deliverDeps, message)).toEqual({ kind: 'done', reason: 'succeeded' });
    const frame = t.inbox.get('c1')?.find((f) => f.type === 'delivery');
    expect(frame).toMatchObject({ deliveryId: delivery.id, attempt: 1, subscriptionId: t.subscription.id });
    const headers = frame?.headers as Record<string, string>;
    expect(headers['webhook-id']).toBe(delivery.id);
    const secret = t.subscription.secrets[0]?.secret ?? '';
    expect(verifySignature({ secret, headers, body: String(frame?.body) })).toBe(true);
    expect(await t.deliveries.get(delivery.id)).toMatchObject({ status: 'succeeded', attempts: 1 });
    const [attempt] = await t.deliveries.listAttempts(delivery.id);
    expect(attempt).toMatchObject({ number: 1, statusCode: 204 });
  });

  it('records a nack as a failed try with its status, retried on the schedule', async () => {
    const t = await setUp();
    await t.open('c1');
    t.agents.set('c1', (frame) => ({
      type: 'nack',
      deliveryId: frame.deliveryId,
      attempt: frame.attempt,
      status: 503,
      error: 'the ERP is down',
    }));
    const { message, delivery } = await t.newDelivery();
    expect(await deliver(t.deliverDeps, message)).toMatchObject({ kind: 'retry' });
    const [attempt] = await t.deliveries.listAttempts(delivery.id);
    expect(attempt).toMatchObject({ statusCode: 503, responseExcerpt: 'the ERP is down' });
    expect(t.queue.sent[0]?.body).toMatchObject({ deliveryId: delivery.id, attempt: 2 });
  });

  it('times out a try nobody answers, and ignores an answer from another connection', async () => {
    const t = await setUp();
    await t.open('c1');
    await t.connect('intruder', t.apiKey);
    const { message, delivery } = await t.newDelivery();
    // Another connection acks the try it was never sent: not read.
    t.agents.set('c1', (frame) => {
      void t.send('intruder', {
        type: 'ack',
        deliveryId: frame.deliveryId,
        attempt: frame.attempt,
        status: 200,
      });
      return undefined;
    });
    expect(await deliver(t.deliverDeps, message)).toMatchObject({ kind: 'retry' });
    const [attempt] = await t.deliveries.listAttempts(delivery.id);
    expect(attempt).toMatchObject({ error: 'timeout' });
    expect(attempt?.durationMs).toBeGreaterThanOrEqual(1500);
  });

  it('fails the try as a connection error when the connection closes before answering', async () => {
    const t = await setUp();
    await t.open('c1');
    t.agents.set('c1', () => {
      setTimeout(() => void t.disconnect('c1'), 20);
      return undefined;
    });
    const { message, delivery } = await t.newDelivery();
    expect(await deliver(t.deliverDeps, message)).toMatchObject({ kind: 'retry' });
    const [attempt] = await t.deliveries.listAttempts(delivery.id);
    expect(attempt).toMatchObject({
      error: 'connection',
      errorMessage: 'the connection closed before an answer',
    });
  });

  it('takes an answer written just after the connection was forgotten ($disconnect ran first)', async () => {
    const t = await setUp({ closedGraceMs: 1000 });
    await t.open('c1');
    t.agents.set('c1', (frame) => {
      // The agent acks and closes; API Gateway runs $disconnect before the ack's route.
      void t.disconnect('c1');
      setTimeout(() => void t.send('c1', acking(200)(frame)), 150);
      return undefined;
    });
    const { message } = await t.newDelivery();
    expect(await deliver(t.deliverDeps, message)).toEqual({ kind: 'done', reason: 'succeeded' });
  });

  it('fails the try, recorded, when the gateway refuses the frame (the agent reads too slowly)', async () => {
    const t = await setUp();
    await t.open('c1');
    api
      .on(PostToConnectionCommand)
      .rejects(new LimitExceededException({ message: 'Client side buffer is full', $metadata: {} }));
    const { message, delivery } = await t.newDelivery();
    expect(await deliver(t.deliverDeps, message)).toMatchObject({ kind: 'retry' });
    const [attempt] = await t.deliveries.listAttempts(delivery.id);
    expect(attempt).toMatchObject({ error: 'connection' });
    expect(attempt?.errorMessage).toContain('LimitExceededException');
  });

  it("shares one read of the partner's connections among a batch's tries, and parks on a fresh one", async () => {
    const t = await setUp({ servingReuseMs: 60_000 });
    await t.open('c1');
    t.agents.set('c1', acking(200));
    const tries = await Promise.all(Array.from({ length: 5 }, (_, i) => t.newDelivery({ n: i })));
    const reads = spyOnQueries(t.partner.id);
    const outcomes = await Promise.all(tries.map(({ message }) => deliver(t.deliverDeps, message)));
    expect(outcomes.every((o) => o.kind === 'done')).toBe(true);
    expect(reads()).toBe(1);
    // Closed, though the shared read still has it: the push finds it gone, and the try parks
    // after a fresh look finds no connection.
    await t.disconnect('c1');
    const { message } = await t.newDelivery({ n: 'late' });
    expect(await deliver(t.deliverDeps, message)).toEqual({ kind: 'waiting' });
    expect(t.queue.sent).toEqual([]);
    expect(reads()).toBe(2);
  });

  it('forgets a connection API Gateway lost and pushes down the next one', async () => {
    // Candidates in the table's order: the lost one first.
    const t = await setUp({ random: () => 0.999 });
    for (const id of ['c1', 'c2']) {
      await t.open(id);
      t.agents.set(id, acking(200));
    }
    t.inbox.delete('c1'); // gone from API Gateway, $disconnect never came
    const { message } = await t.newDelivery();
    expect(await deliver(t.deliverDeps, message)).toEqual({ kind: 'done', reason: 'succeeded' });
    expect(t.inbox.get('c2')?.some((f) => f.type === 'delivery')).toBe(true);
    const serving = await t.connections.serving(t.partner.id, t.subscription.id);
    expect(serving.map((c) => c.connectionId)).toEqual(['c2']);
  });

  it('sends a large body in parts each under the frame cap', async () => {
    const t = await setUp();
    await t.open('c1');
    t.agents.set('c1', acking(200));
    const { message } = await t.newDelivery({ text: '"é😀\\'.repeat(40_000) });
    expect(await deliver(t.deliverDeps, message)).toEqual({ kind: 'done', reason: 'succeeded' });
    const posts = api.commandCalls(PostToConnectionCommand).map((c) => c.args[0].input.Data as Uint8Array);
    expect(Math.max(...posts.map((data) => data.length))).toBeLessThanOrEqual(MAX_SERVER_FRAME_BYTES);
    const frames = t.inbox.get('c1') ?? [];
    const head = frames.find((f) => f.type === 'delivery');
    const parts = frames.filter((f) => f.type === 'delivery-part');
    expect(head?.bodyParts).toBe(parts.length);
    expect(parts.length).toBeGreaterThan(1);
    const body = parts.map((p) => String(p.data)).join('');
    expect(JSON.parse(body).payload).toEqual({ text: '"é😀\\'.repeat(40_000) });
  });
});

describe('tries waiting for a connection', () => {
  it('releases a backlog a batch a ping, and goes on after a release that failed part way', async () => {
    const queue = new RecordingQueue();
    const t = await setUp({ releasePerPing: 2, queue });
    const messages: DeliveryMessage[] = [];
    for (let i = 0; i < 5; i++) {
      const { message } = await t.newDelivery({ n: i });
      expect(await deliver(t.deliverDeps, message)).toEqual({ kind: 'waiting' });
      messages.push(message);
    }
    await t.connect('c1', t.apiKey);
    queue.refuse = [1];
    await t.send('c1', { type: 'ping' });
    expect(queue.sent).toHaveLength(1);
    await t.send('c1', { type: 'ping' });
    expect(queue.sent).toHaveLength(3);
    await t.send('c1', { type: 'ping' });
    expect(queue.sent).toHaveLength(4);
    // The refused one's claim goes stale after five minutes; until then it waits, claimed.
    await t.send('c1', { type: 'ping' });
    expect(queue.sent).toHaveLength(4);
    const left = await client.send(new ScanCommand({ TableName: t.tables.deliveriesTable }));
    expect(left.Items?.filter((item) => String(item.pk).startsWith('PARK#'))).toHaveLength(1);
    expect(new Set(queue.sent.map((m) => m.body.deliveryId)).size).toBe(4);
  });

  it('parks a try while no connection is open, and the first frame of a new connection queues it', async () => {
    const t = await setUp();
    const { message, delivery } = await t.newDelivery();
    expect(await deliver(t.deliverDeps, message)).toEqual({ kind: 'waiting' });
    expect(t.queue.sent).toEqual([]);
    expect(await t.deliveries.get(delivery.id)).toMatchObject({ status: 'pending', attempts: 0 });
    await t.connect('c1', t.apiKey);
    // Not released at $connect: the connection cannot be sent anything until it is ready.
    expect(t.released.sent).toEqual([]);
    await t.send('c1', { type: 'ping' });
    expect(t.released.sent).toEqual([
      { body: { ...message, attempt: 1, step: 0, waiting: true }, groupId: t.subscription.id },
    ]);
    const left = await client.send(new ScanCommand({ TableName: t.tables.deliveriesTable }));
    expect(left.Items?.filter((item) => String(item.pk).startsWith('PARK#'))).toEqual([]);
    // A second connection releases nothing more.
    await t.open('c2');
    expect(t.released.sent).toHaveLength(1);
  });

  it('takes a parked try back when a connection became ready as it parked: exactly one of them sends it', async () => {
    const t = await setUp();
    const { message } = await t.newDelivery();
    const parkedTry = {
      partnerId: t.partner.id,
      subscriptionId: t.subscription.id,
      message,
      groupId: t.subscription.id,
    };
    // A connection ready, unknown to the park's first look.
    expect(await t.pusher.park(parkedTry)).toBe('parked');
    await t.open('c1');
    expect(t.released.sent).toHaveLength(1);
    // Parked while it is ready: taken back, for the dispatcher to push now; none left to release.
    expect(await t.pusher.park(parkedTry)).toBe('open');
    await t.open('c2');
    expect(t.released.sent).toHaveLength(1);
    // Taken twice at once: one wins.
    await t.parked.park(parkedTry);
    const taken = await Promise.all([t.parked.takeBack(parkedTry), t.parked.takeBack(parkedTry)]);
    expect(taken.filter(Boolean)).toHaveLength(1);
  });

  it('keeps no failed read of the connections from a park: the next look reads again', async () => {
    const sender = { post: async () => 'sent' as const, close: async () => {} };
    const table = await local.table(CONNECTIONS_TABLE);
    let failures = 1;
    let reads = 0;
    // The table throttled once, as the park looked.
    class Throttled extends DynamoConnections {
      override async serving(partnerId: string, subscriptionId: string) {
        reads++;
        if (failures-- > 0) throw new Error('throttled');
        return super.serving(partnerId, subscriptionId);
      }
    }
    const pusher = new ApiGatewayConnectionPusher(
      new Throttled(client, { tableName: table, sender }),
      new DynamoParkedTries(client, { tableName: await local.table(DELIVERIES_TABLE), retentionDays: 30 }),
      { servingReuseMs: 60_000 },
    );
    const message = {
      deliveryId: 'dlv_1',
      eventId: 'evt_1',
      subscriptionId: 'sub_1',
      partnerId: 'ptr_1',
      attempt: 1,
    };
    await expect(
      pusher.park({ partnerId: 'ptr_1', subscriptionId: 'sub_1', message, groupId: 'sub_1' }),
    ).rejects.toThrow('throttled');
    expect(await pusher.isOpen('ptr_1', 'sub_1')).toBe(false);
    expect(reads).toBe(2);
  });
});

describe('the connections table', () => {
  it('stops sending to a connection silent for three heartbeats, and closes and forgets it', async () => {
    const table = await local.table(CONNECTIONS_TABLE);
    // Now, not a fixed date: the items expire (TTL) hours after it, and DynamoDB Local's TTL
    // sweep deletes those already past.
    let now = new Date(Math.floor(Date.now() / 1000) * 1000);
    const closed: string[] = [];
    const connections = new DynamoConnections(client, {
      tableName: table,
      clock: { now: () => now },
      heartbeatSeconds: 30,
      sender: {
        post: async () => 'sent',
        close: async (connectionId) => {
          closed.push(connectionId);
        },
      },
    });
    const open = (connectionId: string, subscriptionId?: string) =>
      connections.open(
        {
          connectionId,
          partnerId: 'ptr_1',
          keyId: 'key_1',
          keyHash: 'hash_1',
          subscriptions: ['sub_a', 'sub_b'],
          ready: false,
          releasing: false,
          ...(subscriptionId === undefined ? {} : { subscriptionId }),
        },
        now,
      );
    await open('all');
    await open('only-b', 'sub_b');
    for (const id of ['all', 'only-b']) {
      const heard = await connections.heard(id, now);
      if (heard !== undefined) await connections.ready(heard);
    }
    expect((await connections.serving('ptr_1', 'sub_a')).map((c) => c.connectionId)).toEqual(['all']);
    expect((await connections.serving('ptr_1', 'sub_b')).map((c) => c.connectionId)).toEqual([
      'all',
      'only-b',
    ]);
    expect(await connections.count('ptr_1')).toBe(2);
    // 'only-b' pings on; 'all' goes silent.
    now = new Date(now.getTime() + 80_000);
    await connections.heard('only-b', now);
    now = new Date(now.getTime() + 20_000);
    expect((await connections.serving('ptr_1', 'sub_b')).map((c) => c.connectionId)).toEqual(['only-b']);
    expect(closed).toEqual(['all']);
    expect(await connections.count('ptr_1')).toBe(1);
    expect(await connections.heard('all', now)).toBeUndefined();
  });
});
