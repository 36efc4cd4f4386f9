/**
 * The local runtime: the whole pipeline of the AWS stack in one process on one SQLite file.
 *
 *   HTTP server ─▶ API handler ─▶ events (the table is the stream, read from a cursor)
 *   router: events after the cursor ─▶ fan-out, in process ─▶ delivery queue (an event whose fan-out failed,
 *           or that waits at its ordering key's gate, goes through the fan-out queue)
 *   delivery queue ─▶ dispatcher handler ─▶ signed POST; each retry a delayed message; DLQs
 *
 * Every hop is a table in the same file, so a restart (even after kill -9) loses nothing: the
 * runtime owns its data directory (a lock), so at start what the last run had in flight is
 * made visible again at once.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { systemClock } from '../functions/adapters/clock.ts';
import { systemResolver } from '../functions/adapters/dns.ts';
import { HttpCallbackSender } from '../functions/adapters/http/callback-sender.ts';
import { JsonataTransformer } from '../functions/adapters/jsonata/transformer.ts';
import { InMemoryRateLimiter } from '../functions/adapters/memory/rate-limiter.ts';
import { RememberingCipher } from '../functions/adapters/secrets/remembering-cipher.ts';
import { SqliteConsumerStore } from '../functions/adapters/sqlite/consumers.ts';
import {
  closeDatabase,
  DATABASE_FILE,
  openDatabase,
  type SqliteDatabase,
  vacuum,
} from '../functions/adapters/sqlite/database.ts';
import { SqliteDeliveryStore } from '../functions/adapters/sqlite/deliveries.ts';
import { SqliteEventLog } from '../functions/adapters/sqlite/events.ts';
import { SqliteOrderedLines } from '../functions/adapters/sqlite/ordered-lines.ts';
import { SqliteOutbox } from '../functions/adapters/sqlite/outbox.ts';
import { SqlitePartnerStore } from '../functions/adapters/sqlite/partners.ts';
import { SqliteQueue } from '../functions/adapters/sqlite/queues.ts';
import { SqliteSubscriptionStore, secretsAtRest } from '../functions/adapters/sqlite/subscriptions.ts';
import { createApiHandler } from '../functions/api/handler.ts';
import { createAuthorizerHandler } from '../functions/authorizer/handler.ts';
import type { LocalConfig } from '../functions/config.ts';
import { closingRevokedConnections } from '../functions/core/connection-protocol.ts';
import { DELIVERY_MAX_RECEIVES } from '../functions/core/delivery.ts';
import type { FanOutDeps } from '../functions/core/fanout.ts';
import type { DeliveryMessage, EventRef } from '../functions/core/model.ts';
import type {
  AddressResolver,
  CallbackSender,
  Clock,
  DeliveryQueue,
  QueueSender,
  SecretCipher,
} from '../functions/core/ports.ts';
import { MAX_RETRY_DELAY_SECONDS } from '../functions/core/retry.ts';
import { createDispatcherHandler } from '../functions/dispatcher/handler.ts';
import { createFanoutHandler } from '../functions/fanout/handler.ts';
import { startCheckpointer } from './checkpointer.ts';
import { CONNECT_PATH, ConnectionHub } from './connections.ts';
import { type DataLock, lockDataDir } from './data-lock.ts';
import { createHttpServer } from './http-server.ts';
import { createLocalMetrics, type LocalMetrics } from './metrics.ts';
import { LocalOpsQueues } from './ops-queues.ts';
import { QueuePoller } from './poller.ts';
import { startRetentionSweep } from './retention.ts';
import { OutboxRouter } from './router.ts';
import { loadSecretKeys, secretKeyPath } from './secret-keys.ts';
import { Wakeup } from './wakeup.ts';

export type Log = (message: string, error?: unknown) => void;

export interface LocalRuntimeOptions {
  log?: Log;
  clock?: Clock;
  random?: () => number;
  resolver?: AddressResolver;
  sender?: CallbackSender;
  /** Longest a poller or the router sleeps with nothing to do. @default 1000 */
  idleMs?: number;
}

export interface LocalQueues {
  fanout: SqliteQueue<EventRef>;
  fanoutDlq: SqliteQueue<EventRef>;
  delivery: SqliteQueue<DeliveryMessage>;
  deliveryDlq: SqliteQueue<DeliveryMessage>;
}

export interface LocalDispatcher {
  /** Base URL of the HTTP API. */
  url: string;
  adminToken: string;
  /** Whether the admin token was generated (and stored) by this data directory. */
  adminTokenGenerated: boolean;
  dataDir: string;
  db: SqliteDatabase;
  queues: LocalQueues;
  /** Partners' open connections (connection subscriptions). */
  connections: Pick<ConnectionHub, 'size'>;
  /** Stops taking requests, lets the batches in flight finish, and closes the database. */
  stop(): Promise<void>;
}

/**
 * The fan-out queue's visibility timeout and max receives. Max receives match the CDK stack;
 * the visibility is shorter than on AWS (six Lambda timeouts there), since in-process fan-out
 * has no cold start and a crashed one should be retried soon.
 */
const FANOUT_VISIBILITY_SECONDS = 30;
const FANOUT_MAX_RECEIVES = 5;
/**
 * Deliveries are dispatched one per invocation, so a hanging endpoint holds only its own
 * slots: at most DISPATCHER_IN_FLIGHT_PER_SUBSCRIPTION of them, out of DISPATCHER_IN_FLIGHT,
 * and fewer until its deliveries succeed (the poller starts a subscription with a few and
 * halves a failing one's share; see maxInFlightPerGroup). (On
 * AWS the same isolation comes from the delivery queue's message groups, a fair queue, and
 * from Lambda scaling out.)
 */
const DISPATCHER_IN_FLIGHT = 512;
const DISPATCHER_IN_FLIGHT_PER_SUBSCRIPTION = 16;

/**
 * A received delivery stays hidden for six delivery timeouts (AWS's advice for a queue's
 * visibility against its function's timeout), so it is retried only when its dispatcher died.
 */
export function deliveryVisibilitySeconds(deliveryTimeoutMs: number): number {
  return Math.max(5, Math.ceil((6 * deliveryTimeoutMs) / 1000));
}

/** The admin token: the configured one, or one generated once and kept in the data directory. */
function adminTokenFor(config: LocalConfig, dataDir: string): { token: string; generated: boolean } {
  if (config.adminToken) return { token: config.adminToken, generated: false };
  const file = join(dataDir, 'admin-token');
  if (existsSync(file)) return { token: readFileSync(file, 'utf8').trim(), generated: true };
  const token = `adm_${randomBytes(24).toString('base64url')}`;
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return { token, generated: true };
}

/**
 * The local queues, with the redrive policies of their SQS counterparts. The dispatcher puts
 * a delivery in the delivery DLQ itself after its last try; the delivery queue's max receive
 * count only catches a message its handler fails on over and over. The delivery queue also
 * holds the long waits (up to the longest a schedule may have): locally nothing has a quota
 * of messages in flight, so there is no need for AWS's due retries.
 */
export function openLocalQueues(
  db: SqliteDatabase,
  config: Pick<LocalConfig, 'deliveryTimeoutMs'>,
  clock: Clock = systemClock,
): LocalQueues {
  const fanoutDlq = new SqliteQueue<EventRef>(db, {
    name: 'fanout-dlq',
    visibilityTimeoutSeconds: 30,
    clock,
  });
  const deliveryDlq = new SqliteQueue<DeliveryMessage>(db, {
    name: 'delivery-dlq',
    visibilityTimeoutSeconds: 30,
    clock,
  });
  return {
    fanout: new SqliteQueue<EventRef>(db, {
      name: 'fanout',
      visibilityTimeoutSeconds: FANOUT_VISIBILITY_SECONDS,
      maxReceiveCount: FANOUT_MAX_RECEIVES,
      deadLetterQueue: fanoutDlq,
      clock,
    }),
    fanoutDlq,
    delivery: new SqliteQueue<DeliveryMessage>(db, {
      name: 'delivery',
      visibilityTimeoutSeconds: deliveryVisibilitySeconds(config.deliveryTimeoutMs),
      maxReceiveCount: DELIVERY_MAX_RECEIVES,
      deadLetterQueue: deliveryDlq,
      maxDelaySeconds: MAX_RETRY_DELAY_SECONDS,
      clock,
    }),
    deliveryDlq,
  };
}

/**
 * The latest events kept in memory for fan-out and the first tries: how much, in characters of
 * payload, and how long after their append.
 */
const REMEMBERED_EVENTS = { limit: 8 * 1024 * 1024, forMs: 10_000 };

/** The deliveries fan-out stored last, kept in memory for their first tries: how many, how long. */
export const REMEMBERED_DELIVERIES = { limit: 10_000, forMs: 10_000 };

/** Where the local runtime keeps its database. */
export function databasePath(dataDir: string): string {
  return join(resolve(dataDir), DATABASE_FILE);
}

export async function startLocalDispatcher(
  config: LocalConfig,
  options: LocalRuntimeOptions = {},
): Promise<LocalDispatcher> {
  const dataDir = resolve(config.dataDir);
  // Created for its owner alone; a directory that already exists (one the user chose) is left as it is.
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  // One runtime per directory: what another one had in flight is then this one's to release.
  const lock = lockDataDir(dataDir);
  try {
    return await startInDirectory(config, options, dataDir, lock);
  } catch (error) {
    lock.release();
    throw error;
  }
}

/** The stores of one data directory, its queues and its checkpointer: step one of a start. */
interface OpenStores {
  db: SqliteDatabase;
  checkpointer: { stop(): Promise<void> };
  eventLog: SqliteEventLog;
  partners: SqlitePartnerStore;
  consumers: SqliteConsumerStore;
  subscriptions: SqliteSubscriptionStore;
  deliveries: SqliteDeliveryStore;
  lines: SqliteOrderedLines;
  outbox: SqliteOutbox;
  queues: LocalQueues;
  /** Stops the checkpointer and closes the database. */
  close(): Promise<void>;
}

/**
 * Opens the database and its stores: the signing secrets' keys (refusing to start without
 * the keys the stored secrets need), secrets still in the clear sealed once, the WAL
 * checkpointer, and the queues, releasing what a runtime that is gone had in flight.
 */
async function openStores(config: LocalConfig, dataDir: string, clock: Clock, log: Log): Promise<OpenStores> {
  const db = openDatabase(databasePath(dataDir));
  // One read of how the stored secrets are kept: which keys they need, and any in the clear.
  const atRest = secretsAtRest(db);
  let cipher: SecretCipher;
  try {
    // Opened secrets are remembered: each delivery reads its subscription again.
    cipher = new RememberingCipher(loadSecretKeys(secretKeyPath(config, dataDir), atRest, log));
  } catch (error) {
    closeDatabase(db);
    throw error;
  }
  // This runtime makes every write to its subscriptions (it owns the data directory).
  const subscriptions = new SqliteSubscriptionStore(db, cipher, { remember: true });
  // Secrets a store written before sealing holds in the clear are sealed now, once.
  if (atRest.clear > 0) {
    log(`sealed the signing secrets of ${await subscriptions.resealAll()} subscription(s)`);
    // The old rows' bytes stay in free pages and the WAL until rewritten: rebuild the file and
    // empty the WAL, so no copy of the database holds them.
    vacuum(db);
    db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
  }
  const checkpointer = startCheckpointer(db, databasePath(dataDir), { log });
  const queues = openLocalQueues(db, config, clock);
  // Received by a runtime that is gone (this directory's lock was free): go again now rather
  // than after the visibility timeout.
  const released = queues.fanout.releaseInFlight() + queues.delivery.releaseInFlight();
  if (released > 0) log(`released ${released} message(s) the last run had in flight`);
  // Fan-out and the dispatcher read each event soon after it is published.
  const eventLog = new SqliteEventLog(db, { remember: { ...REMEMBERED_EVENTS, clock } });
  return {
    db,
    checkpointer,
    eventLog,
    partners: new SqlitePartnerStore(db),
    consumers: new SqliteConsumerStore(db),
    subscriptions,
    deliveries: new SqliteDeliveryStore(db, { remember: { ...REMEMBERED_DELIVERIES, clock } }),
    lines: new SqliteOrderedLines(db),
    // The stream keeps the events the runtime appends until the router takes them.
    outbox: new SqliteOutbox(db, { follow: eventLog }),
    queues,
    async close() {
      await checkpointer.stop();
      closeDatabase(db);
    },
  };
}

/** The workers over the stores: step two of a start. */
interface Workers {
  /** Where the API and fan-out queue deliveries: each send wakes the dispatcher's poller. */
  deliveryQueue: DeliveryQueue;
  /** Starts the pollers (the router runs from the start). */
  start(): void;
  /** Tells the poller of a queue that messages came into it (a redrive). */
  wake(queue: string): void;
  /** Lets the batches in flight finish and stops every worker. */
  stop(): Promise<void>;
}

/**
 * The router (running from here on), and the fan-out and dispatcher pollers (started
 * by `start`, once the HTTP server listens), with the handlers the Lambda functions run.
 */
function startWorkers(
  stores: OpenStores,
  config: LocalConfig,
  options: LocalRuntimeOptions,
  context: {
    clock: Clock;
    log: Log;
    idleMs: number;
    metrics: LocalMetrics;
    connections: ConnectionHub;
    transformer: JsonataTransformer;
  },
): Workers {
  const { clock, log, idleMs } = context;
  const { subscriptions, deliveries, eventLog, lines } = stores;
  const { fanout, delivery, deliveryDlq } = stores.queues;
  const routerWakeup = new Wakeup();
  // Publishing wakes the router at once, rather than at its next idle check.
  const stopWaking = eventLog.onAppend(() => routerWakeup.wake());
  const ownSender = options.sender
    ? undefined
    : new HttpCallbackSender({
        allowPrivateTargets: config.allowPrivateTargets,
        // A socket for every delivery in flight, even when they all go to one host: a
        // callback's timeout should not run while it waits for a socket.
        connectionsPerOrigin: DISPATCHER_IN_FLIGHT,
      });
  const sender = options.sender ?? ownSender;
  if (!sender) throw new Error('no callback sender');

  // One queue, no lanes: the poller's share per subscription keeps failing endpoints apart.
  const deliveryQueue: DeliveryQueue = {
    hasSlowLane: false,
    // Taken by the dispatcher's poller in the same write when it has room (QueuePoller.send).
    send: (messages) => deliveryPoller.send(messages),
    deadLetter: (message) => deliveryDlq.send([{ body: message }]),
  };
  const deliveryPoller: QueuePoller<DeliveryMessage> = new QueuePoller({
    name: 'dispatcher',
    queue: delivery,
    // Batches of ten, as the deployed event source sends them; each record's slot is freed
    // as soon as its try ends (QueuePoller.finished), not when its whole batch does.
    batchSize: 10,
    maxInFlight: DISPATCHER_IN_FLIGHT,
    maxInFlightPerGroup: DISPATCHER_IN_FLIGHT_PER_SUBSCRIPTION,
    idleMs,
    log,
    handler: createDispatcherHandler(
      {
        events: eventLog,
        subscriptions,
        deliveries,
        sender,
        connections: context.connections,
        clock,
        retrySchedule: config.retrySchedule,
        deliveryTimeoutMs: config.deliveryTimeoutMs,
        disableAfterMs: config.disableAfterMs,
        queue: deliveryQueue,
        lines,
        transformer: context.transformer,
        ...(options.random ? { random: options.random } : {}),
      },
      log,
      // The try is over: its slot goes back at once. A failed try ends its message too (its
      // next try is a message of its own), and the poller halves the subscription's share.
      (record, outcome, message) => {
        context.metrics.observe(record, outcome, message);
        deliveryPoller.finished(record, outcome.kind === 'retry' || outcome.kind === 'dead');
      },
    ),
  });
  // An event parked at its key's gate comes back to fan-out once its predecessor is through.
  const fanoutAgain: QueueSender<EventRef> = {
    send: async (messages) => {
      await fanout.send(messages);
      fanoutPoller.wake();
    },
  };
  const fanOutDeps: FanOutDeps = {
    subscriptions,
    events: eventLog,
    deliveries,
    deliveryQueue,
    clock,
    lines,
    fanoutQueue: fanoutAgain,
  };
  const fanoutPoller = new QueuePoller({
    name: 'fanout',
    queue: fanout,
    batchSize: 10,
    maxInFlight: 20,
    idleMs,
    log,
    handler: createFanoutHandler(fanOutDeps, log),
  });

  // Events are fanned out straight from the events table; the fan-out queue holds the ones
  // that failed there, events parked at their key's gate, and redrives.
  const router = new OutboxRouter(stores.db, stores.outbox, fanout, fanOutDeps, {
    retryDelaySeconds: FANOUT_VISIBILITY_SECONDS,
    log,
  });
  let running = true;
  const routerLoop = (async () => {
    while (running) {
      let routed = 0;
      try {
        routed = await router.routeBatch();
      } catch (error) {
        log('router: batch failed', error);
      }
      if (routed === 0) await routerWakeup.sleep(idleMs);
    }
  })();

  return {
    deliveryQueue,
    start() {
      fanoutPoller.start();
      deliveryPoller.start();
    },
    wake(queue) {
      if (queue === fanout.name) fanoutPoller.wake();
      if (queue === delivery.name) deliveryPoller.wake();
    },
    async stop() {
      running = false;
      stopWaking();
      routerWakeup.wake();
      await Promise.all([routerLoop, fanoutPoller.stop(), deliveryPoller.stop()]);
      await ownSender?.close();
    },
  };
}

/** The HTTP server (API and admin routes) listening on the configured address: step three. */
async function serveHttp(
  stores: OpenStores,
  workers: Workers,
  config: LocalConfig,
  options: LocalRuntimeOptions,
  context: {
    clock: Clock;
    log: Log;
    adminToken: string;
    metrics: LocalMetrics;
    ops: LocalOpsQueues;
    connections: ConnectionHub;
    transformer: JsonataTransformer;
  },
): Promise<Server> {
  const { consumers, subscriptions, deliveries } = stores;
  const partners = closingRevokedConnections(stores.partners, context.connections);
  const server: Server = createHttpServer({
    api: createApiHandler(
      {
        events: stores.eventLog,
        partners,
        consumers,
        subscriptions,
        deliveries,
        deliveryQueue: workers.deliveryQueue,
        retentionDays: config.retentionDays,
        clock: context.clock,
        resolver: options.resolver ?? systemResolver,
        allowPrivateTargets: config.allowPrivateTargets,
        egressIps: config.egressIps,
        transformer: context.transformer,
        // One process serves the whole API: its own counts are exact.
        limiter: new InMemoryRateLimiter(),
        limits: {
          partnerPerSecond: config.partnerRequestsPerSecond,
          producerPerSecond: config.producerRequestsPerSecond,
        },
        ops: { queues: context.ops, deliveries, subscriptions, rates: context.metrics.rates },
        connect: {
          // Behind a TLS proxy (x-forwarded-proto: https) the socket is wss: the key never travels in the clear.
          url: (request) =>
            `${request.headers['x-forwarded-proto'] === 'https' ? 'wss' : 'ws'}://${request.headers.host ?? `${config.host}:${config.port}`}${CONNECT_PATH}`,
          heartbeatSeconds: context.connections.heartbeatSeconds,
          ackTimeoutSeconds: context.connections.ackTimeoutSeconds,
        },
      },
      context.log,
    ),
    authorizer: createAuthorizerHandler({ partners, clock: context.clock }),
    adminToken: context.adminToken,
    metrics: context.metrics,
    log: context.log,
  });
  context.connections.attach(server);
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolveListen();
    });
  });
  return server;
}

/** Opens the stores, starts the workers, serves HTTP; a step that fails undoes the ones before. */
async function startInDirectory(
  config: LocalConfig,
  options: LocalRuntimeOptions,
  dataDir: string,
  lock: DataLock,
): Promise<LocalDispatcher> {
  const log: Log =
    options.log ?? ((message, error) => (error ? console.error(message, error) : console.log(message)));
  const clock = options.clock ?? systemClock;
  const idleMs = options.idleMs ?? 1_000;
  const admin = adminTokenFor(config, dataDir);

  const stores = await openStores(config, dataDir, clock, log);
  const { fanout, fanoutDlq, delivery, deliveryDlq } = stores.queues;
  const metrics = createLocalMetrics([fanout, fanoutDlq, delivery, deliveryDlq], () => clock.now().getTime());
  let workers: Workers | undefined;
  let server: Server;
  const ops = new LocalOpsQueues(
    [
      { work: fanout, deadLetters: fanoutDlq },
      { work: delivery, deadLetters: deliveryDlq },
    ],
    clock,
    (queue) => workers?.wake(queue),
  );
  const connections = new ConnectionHub({
    partners: stores.partners,
    subscriptions: stores.subscriptions,
    clock,
    // Rounded down: an agent that answers within it is never too late.
    ackTimeoutSeconds: Math.max(1, Math.floor(config.deliveryTimeoutMs / 1000)),
    release: async (subscriptionId) => {
      if ((await delivery.releaseWaiting(subscriptionId)) > 0) workers?.wake(delivery.name);
    },
    log,
  });
  // Subscriptions' transformations, evaluated on a worker thread of their own; previews and
  // checks at the API on another, so a partner's previews never hold up callbacks.
  const transformer = new JsonataTransformer();
  const previews = new JsonataTransformer();
  try {
    workers = startWorkers(stores, config, options, {
      clock,
      log,
      idleMs,
      metrics,
      connections,
      transformer,
    });
    server = await serveHttp(stores, workers, config, options, {
      clock,
      log,
      adminToken: admin.token,
      metrics,
      ops,
      connections,
      transformer: previews,
    });
  } catch (error) {
    // Not started (the port is taken, say): leave nothing running and the file closed.
    await Promise.all([transformer.close(), previews.close()]);
    connections.close();
    await workers?.stop();
    await stores.close();
    throw error;
  }
  workers.start();
  const retention = startRetentionSweep(stores.db, { retentionDays: config.retentionDays, clock, log });

  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let stopping: Promise<void> | undefined;
  return {
    url: `http://${host}:${address.port}`,
    adminToken: admin.token,
    adminTokenGenerated: admin.generated,
    dataDir,
    db: stores.db,
    queues: stores.queues,
    connections,
    stop() {
      stopping ??= (async () => {
        const closed = new Promise<void>((done) => server.close(() => done()));
        server.closeIdleConnections();
        ops.stop();
        // Tries in flight on a connection finish (or time out) before it closes.
        await Promise.all([workers?.stop(), retention.stop()]);
        connections.close();
        await Promise.all([transformer.close(), previews.close()]);
        // Long polls still waiting answer now, while the database is open.
        stores.eventLog.releaseWaiters();
        server.closeAllConnections();
        await closed;
        await stores.close();
        lock.release();
      })();
      return stopping;
    },
  };
}
