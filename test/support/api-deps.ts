/** The API handler's ports on one SQLite database, for tests that drive the handler in-process. */
import { systemClock } from '../../functions/adapters/clock.ts';
import { InMemoryRateLimiter } from '../../functions/adapters/memory/rate-limiter.ts';
import type { SqliteDatabase } from '../../functions/adapters/sqlite/database.ts';
import { SqliteDeliveryStore } from '../../functions/adapters/sqlite/deliveries.ts';
import { SqliteEventLog } from '../../functions/adapters/sqlite/events.ts';
import { SqlitePartnerStore } from '../../functions/adapters/sqlite/partners.ts';
import { SqliteQueue } from '../../functions/adapters/sqlite/queues.ts';
import { SqliteSubscriptionStore } from '../../functions/adapters/sqlite/subscriptions.ts';
import type { ApiDeps } from '../../functions/api/handler.ts';
import type { DeliveryMessage } from '../../functions/core/model.ts';
import { testCipher } from './cipher.ts';

/**
 * Every port on `db`; no lookup leaves the machine (every host resolves to loopback), and the
 * limits are `perSecond` for partners and producers alike.
 */
export function sqliteApiDeps(db: SqliteDatabase, perSecond = 10_000): ApiDeps {
  return {
    events: new SqliteEventLog(db),
    partners: new SqlitePartnerStore(db),
    subscriptions: new SqliteSubscriptionStore(db, testCipher()),
    deliveries: new SqliteDeliveryStore(db),
    deliveryQueue: new SqliteQueue<DeliveryMessage>(db, { name: 'delivery', visibilityTimeoutSeconds: 30 }),
    clock: systemClock,
    resolver: { resolve: async () => ['127.0.0.1'] },
    allowPrivateTargets: true,
    limiter: new InMemoryRateLimiter(),
    limits: { partnerPerSecond: perSecond, producerPerSecond: perSecond },
  };
}
