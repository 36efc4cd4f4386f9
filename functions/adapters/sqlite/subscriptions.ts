import { StaleWriteError, SubscriptionLimitError } from '../../core/errors.ts';
import { type Page, Subscription, SubscriptionStatus } from '../../core/model.ts';
import {
  type Allowance,
  type AllowanceResult,
  type HealthChange,
  type HealthUpdate,
  type ListQuery,
  pageOfLookahead,
  type RateLimitedAction,
  type SubscriptionStore,
} from '../../ports.ts';
import {
  prepared,
  type Row,
  readInteger,
  readOptionalInteger,
  readOptionalText,
  readText,
  type SqliteDatabase,
  withoutUndefined,
  write,
} from './database.ts';

const COLUMNS =
  'id, partner_id, url, event_types, description, status, disabled_reason, failing_since, secrets, created_at, updated_at';

/** Each rate-limited action's columns: the start of its window (epoch ms) and its uses in it. */
const ALLOWANCE_COLUMNS: Record<RateLimitedAction, { start: string; count: string }> = {
  replay: { start: 'replay_window_start', count: 'replay_count' },
  test: { start: 'test_window_start', count: 'test_count' },
};

/** The JSON columns, read back with the model's own schemas. */
const { eventTypes: EventTypes, secrets: Secrets } = Subscription.shape;

function toSubscription(row: Row): Subscription {
  return withoutUndefined({
    id: readText(row, 'id'),
    partnerId: readText(row, 'partner_id'),
    url: readText(row, 'url'),
    eventTypes: EventTypes.parse(JSON.parse(readText(row, 'event_types'))),
    description: readOptionalText(row, 'description'),
    status: SubscriptionStatus.parse(readText(row, 'status')),
    disabledReason: readOptionalText(row, 'disabled_reason'),
    failingSince: readOptionalText(row, 'failing_since'),
    secrets: Secrets.parse(JSON.parse(readText(row, 'secrets'))),
    createdAt: readText(row, 'created_at'),
    updatedAt: readText(row, 'updated_at'),
  });
}

export class SqliteSubscriptionStore implements SubscriptionStore {
  readonly #db: SqliteDatabase;

  constructor(db: SqliteDatabase) {
    this.#db = db;
  }

  /** Counts and inserts in one write: the write lock makes the count exact across processes. */
  async create(s: Subscription, options: { maxPerPartner: number }): Promise<void> {
    const db = this.#db;
    await write(db, () => {
      const row = prepared(db, 'SELECT COUNT(*) AS n FROM subscriptions WHERE partner_id = ?').get(
        s.partnerId,
      );
      if (row !== undefined && readInteger(row, 'n') >= options.maxPerPartner) {
        throw new SubscriptionLimitError(options.maxPerPartner);
      }
      prepared(db, `INSERT INTO subscriptions (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(
        s.id,
        ...subscriptionValues(s),
      );
    });
  }

  async put(s: Subscription, options: { expectedUpdatedAt?: string } = {}): Promise<void> {
    const values = subscriptionValues(s);
    const db = this.#db;
    const expectedUpdatedAt = options.expectedUpdatedAt;
    if (expectedUpdatedAt !== undefined) {
      // Only the version read: a row changed or deleted since is not written.
      const result = await write(db, () =>
        prepared(
          db,
          `UPDATE subscriptions SET partner_id = ?, url = ?, event_types = ?, description = ?, status = ?,
             disabled_reason = ?, failing_since = ?, secrets = ?, created_at = ?, updated_at = ?
           WHERE id = ? AND updated_at = ?`,
        ).run(...values, s.id, expectedUpdatedAt),
      );
      if (Number(result.changes) === 0) throw new StaleWriteError(`subscription ${s.id} changed meanwhile`);
      return;
    }
    // An upsert, not INSERT OR REPLACE: replace deletes the row first, which would fire any
    // ON DELETE action a later migration adds.
    await write(db, () =>
      prepared(
        db,
        `INSERT INTO subscriptions (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET
           partner_id = excluded.partner_id, url = excluded.url, event_types = excluded.event_types,
           description = excluded.description, status = excluded.status,
           disabled_reason = excluded.disabled_reason, failing_since = excluded.failing_since,
           secrets = excluded.secrets, created_at = excluded.created_at, updated_at = excluded.updated_at`,
      ).run(s.id, ...values),
    );
  }

  async get(subscriptionId: string): Promise<Subscription | undefined> {
    const row = prepared(this.#db, `SELECT ${COLUMNS} FROM subscriptions WHERE id = ?`).get(subscriptionId);
    return row === undefined ? undefined : toSubscription(row);
  }

  /**
   * In id order, which is creation order (ULIDs). The cursor is only compared, never looked
   * up, so paging survives the deletion of the subscription it names. One extra row is read
   * to tell whether another page exists: `next` is null on the last page.
   */
  async list(partnerId: string, query: ListQuery): Promise<Page<Subscription>> {
    const rows = prepared(
      this.#db,
      `SELECT ${COLUMNS} FROM subscriptions WHERE partner_id = ? AND id > ? ORDER BY id LIMIT ?`,
    ).all(partnerId, query.after ?? '', query.limit + 1);
    return pageOfLookahead(rows, query, toSubscription);
  }

  async listActive(partnerId: string): Promise<Subscription[]> {
    return prepared(
      this.#db,
      `SELECT ${COLUMNS} FROM subscriptions WHERE partner_id = ? AND status = 'active' ORDER BY id`,
    )
      .all(partnerId)
      .map(toSubscription);
  }

  async delete(subscriptionId: string): Promise<boolean> {
    const db = this.#db;
    const result = await write(db, () =>
      prepared(db, 'DELETE FROM subscriptions WHERE id = ?').run(subscriptionId),
    );
    return Number(result.changes) > 0;
  }

  /** Read and written in one write, so concurrent callers are counted one after another. */
  async takeAllowance(
    subscriptionId: string,
    action: RateLimitedAction,
    allowance: Allowance,
    now: Date,
  ): Promise<AllowanceResult | undefined> {
    const db = this.#db;
    const { start, count } = ALLOWANCE_COLUMNS[action];
    const time = now.getTime();
    return write(db, (): AllowanceResult | undefined => {
      const row = prepared(db, `SELECT ${start}, ${count} FROM subscriptions WHERE id = ?`).get(
        subscriptionId,
      );
      if (row === undefined) return undefined;
      const windowStart = readOptionalInteger(row, start);
      if (windowStart === undefined || windowStart + allowance.windowMs <= time) {
        prepared(db, `UPDATE subscriptions SET ${start} = ?, ${count} = 1 WHERE id = ?`).run(
          time,
          subscriptionId,
        );
        return { allowed: true };
      }
      if (readInteger(row, count) < allowance.limit) {
        prepared(db, `UPDATE subscriptions SET ${count} = ${count} + 1 WHERE id = ?`).run(subscriptionId);
        return { allowed: true };
      }
      return { allowed: false, retryAfterMs: windowStart + allowance.windowMs - time };
    });
  }

  async updateHealth(subscriptionId: string, change: HealthChange): Promise<HealthUpdate | undefined> {
    const [sql, params] = healthUpdate(change);
    return write(this.#db, () => {
      const result = prepared(this.#db, `UPDATE subscriptions SET ${sql}`).run(...params, subscriptionId);
      const row = prepared(this.#db, `SELECT ${COLUMNS} FROM subscriptions WHERE id = ?`).get(subscriptionId);
      return row === undefined
        ? undefined
        : { subscription: toSubscription(row), changed: Number(result.changes) > 0 };
    });
  }
}

/** The column values of a subscription, in COLUMNS order after `id`. */
function subscriptionValues(s: Subscription): (string | null)[] {
  return [
    s.partnerId,
    s.url,
    JSON.stringify(s.eventTypes),
    s.description ?? null,
    s.status,
    s.disabledReason ?? null,
    s.failingSince ?? null,
    JSON.stringify(s.secrets),
    s.createdAt,
    s.updatedAt,
  ];
}

/** The SET and WHERE of a health change; the WHERE makes a change that is already in place a no-op. */
function healthUpdate(change: HealthChange): [string, (string | null)[]] {
  switch (change.kind) {
    case 'failing':
      return ['failing_since = ? WHERE failing_since IS NULL AND id = ?', [change.since]];
    case 'healthy':
      return ['failing_since = NULL WHERE failing_since IS NOT NULL AND id = ?', []];
    case 'disable':
      return [
        "status = 'disabled', disabled_reason = ?, updated_at = ? WHERE status = 'active' AND id = ?",
        [change.reason, change.at],
      ];
  }
}
