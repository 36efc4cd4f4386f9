/**
 * For tests that drive the API's handlers in-process: their ports on one SQLite database, and
 * requests as API Gateway passes them.
 */
import { randomUUID } from 'node:crypto';
import { systemClock } from '../../functions/adapters/clock.ts';
import { InMemoryRateLimiter } from '../../functions/adapters/memory/rate-limiter.ts';
import { SqliteConsumerStore } from '../../functions/adapters/sqlite/consumers.ts';
import type { SqliteDatabase } from '../../functions/adapters/sqlite/database.ts';
import { SqliteDeliveryStore } from '../../functions/adapters/sqlite/deliveries.ts';
import { SqliteEventLog } from '../../functions/adapters/sqlite/events.ts';
import { SqlitePartnerStore } from '../../functions/adapters/sqlite/partners.ts';
import { SqliteQueue } from '../../functions/adapters/sqlite/queues.ts';
import { SqliteSubscriptionStore } from '../../functions/adapters/sqlite/subscriptions.ts';
import type { ApiDeps, ApiRequest } from '../../functions/api/handler.ts';
import type { DeliveryMessage } from '../../functions/core/model.ts';
import { createLocalMetrics } from '../../local/metrics.ts';
import { LocalOpsQueues } from '../../local/ops-queues.ts';
import { testCipher } from './cipher.ts';

/**
 * Every port on `db`; no lookup leaves the machine (every host resolves to loopback), and the
 * limits are `perSecond` for partners and producers alike.
 */
export function sqliteApiDeps(db: SqliteDatabase, perSecond = 10_000): ApiDeps {
  const subscriptions = new SqliteSubscriptionStore(db, testCipher());
  const deliveries = new SqliteDeliveryStore(db);
  const deliveryDlq = new SqliteQueue<DeliveryMessage>(db, {
    name: 'delivery-dlq',
    visibilityTimeoutSeconds: 30,
  });
  const deliveryQueue = new SqliteQueue<DeliveryMessage>(db, {
    name: 'delivery',
    visibilityTimeoutSeconds: 30,
    maxReceiveCount: 10,
    deadLetterQueue: deliveryDlq,
  });
  return {
    events: new SqliteEventLog(db),
    partners: new SqlitePartnerStore(db),
    consumers: new SqliteConsumerStore(db),
    subscriptions,
    deliveries,
    deliveryQueue,
    ops: {
      queues: new LocalOpsQueues([{ work: deliveryQueue, deadLetters: deliveryDlq }], systemClock),
      deliveries,
      subscriptions,
      rates: createLocalMetrics([deliveryQueue, deliveryDlq]).rates,
    },
    clock: systemClock,
    resolver: { resolve: async () => ['127.0.0.1'] },
    allowPrivateTargets: true,
    egressIps: [],
    limiter: new InMemoryRateLimiter(),
    limits: { partnerPerSecond: perSecond, producerPerSecond: perSecond },
    retentionDays: 30,
  };
}

/** An HTTP API request (payload 2.0) as API Gateway passes it, with what the authorizer left. */
export function apiRequest(options: {
  method?: string;
  path: string;
  query?: string;
  headers?: Record<string, string>;
  body?: string | undefined;
  authorizer?: ApiRequest['requestContext']['authorizer'];
}): ApiRequest {
  const { method = 'GET', path, query = '', headers = {}, body, authorizer } = options;
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: path,
    rawQueryString: query,
    ...(query === '' ? {} : { queryStringParameters: Object.fromEntries(new URLSearchParams(query)) }),
    headers,
    ...(body === undefined ? {} : { body }),
    isBase64Encoded: false,
    requestContext: {
      accountId: '123456789012',
      apiId: 'api',
      domainName: 'api.example.com',
      domainPrefix: 'api',
      http: { method, path, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'test' },
      requestId: randomUUID(),
      routeKey: '$default',
      stage: '$default',
      time: new Date().toUTCString(),
      timeEpoch: Date.now(),
      ...(authorizer === undefined ? {} : { authorizer }),
    },
  };
}
