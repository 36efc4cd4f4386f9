import { StaleWriteError, SubscriptionLimitError } from '../../core/errors.ts';
import { type Page, Subscription, type SubscriptionRecord, SubscriptionStatus } from '../../core/model.ts';
import type {
  Allowance,
  AllowanceResult,
  HealthChange,
  HealthUpdate,
  ListQuery,
  RateLimitedAction,
  SecretCipher,
  SubscriptionHealth,
  SubscriptionStore,
} from '../../core/ports.ts';
import { setBounded } from '../bounded-map.ts';
import { deepFrozen } from '../deep-frozen.ts';
import { pageOfLookahead } from '../paging.ts';
import { isSealed, parseSealed } from '../secrets/sealed.ts';
import {
  openSecrets,
  openSecretsForListing,
  type StoredSecrets,
  sealSecrets,
} from '../secrets/signing-secrets.ts';
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
  'id, partner_id, url, event_types, description, status, disabled_reason, failing_since, secrets, created_at, updated_at, transport, filter, signature, ordering, transformation';

/** Each rate-limited action's columns: the start of its window (epoch ms) and its uses in it. */
const ALLOWANCE_COLUMNS: Record<RateLimitedAction, { start: string; count: string }> = {
  replay: { start: 'replay_window_start', count: 'replay_count' },
  test: { start: 'test_window_start', count: 'test_count' },
};

/** The JSON columns of event types and of the filter, read back with the model's own schemas. */
const { eventTypes: EventTypes, filter: Filter } = Subscription.shape;

/** The transformation column holds the expression alone. */
function optionalTransformation(expression: string | undefined) {
  return expression === undefined ? undefined : { jsonata: expression };
}

function optionalFilter(text: string | undefined) {
  return text === undefined ? undefined : Filter.parse(JSON.parse(text));
}

/**
 * A row as a subscription, its secrets opened by the cipher (`forListing`: see
 * openSecretsForListing).
 */
async function toSubscription(row: Row, cipher: SecretCipher, forListing = false): Promise<Subscription> {
  const open = forListing ? openSecretsForListing : openSecrets;
  const record = toRecord(row);
  return { ...record, secrets: await open(cipher, record.id, JSON.parse(readText(row, 'secrets'))) };
}

/** A row as a subscription without its secrets, which are not opened. */
function toRecord(row: Row): SubscriptionRecord {
  return withoutUndefined({
    id: readText(row, 'id'),
    partnerId: readText(row, 'partner_id'),
    transport: readText(row, 'transport') === 'connection' ? ('connection' as const) : undefined,
    // A connection subscription has none: '' in the column.
    url: readText(row, 'url') || undefined,
    eventTypes: EventTypes.parse(JSON.parse(readText(row, 'event_types'))),
    filter: optionalFilter(readOptionalText(row, 'filter')),
    signature: readText(row, 'signature') === 'ed25519' ? ('ed25519' as const) : undefined,
    ordering: readOptionalText(row, 'ordering') === 'key' ? ('key' as const) : undefined,
    transformation: optionalTransformation(readOptionalText(row, 'transformation')),
    description: readOptionalText(row, 'description'),
    status: SubscriptionStatus.parse(readText(row, 'status')),
    disabledReason: readOptionalText(row, 'disabled_reason'),
    failingSince: readOptionalText(row, 'failing_since'),
    createdAt: readText(row, 'created_at'),
    updatedAt: readText(row, 'updated_at'),
  });
}

/** Subscriptions, and partners' lists of active ones, a remembering store keeps at most. */
const REMEMBERED = 10_000;

export interface SubscriptionStoreOptions {
  /**
   * Remember what `get` and `listActive` read, until this store next writes a subscription:
   * fan-out and the dispatcher read them for every event and every try, and a row read
   * again is parsed and its secrets opened again. Only for a store that makes every write to
   * its database's subscriptions (the local runtime's, which owns its data directory): a
   * write by anything else would not be seen.
   * @default false
   */
  remember?: boolean;
}

/**
 * Subscriptions in the `subscriptions` table, their signing secrets sealed by the cipher (the
 * database alone never holds a secret in the clear).
 */
export class SqliteSubscriptionStore implements SubscriptionStore {
  readonly #db: SqliteDatabase;
  readonly #cipher: SecretCipher;
  readonly #remember: boolean;
  /** Bumped as a write starts and as it ends: a read that spans one is not remembered. */
  #version = 0;
  readonly #byId = new Map<string, Subscription>();
  readonly #activeByPartner = new Map<string, Subscription[]>();

  constructor(db: SqliteDatabase, cipher: SecretCipher, options: SubscriptionStoreOptions = {}) {
    this.#db = db;
    this.#cipher = cipher;
    this.#remember = options.remember ?? false;
  }

  /** Runs a write of subscriptions, forgetting what was remembered as it starts and as it ends. */
  async #writing<T>(change: () => Promise<T>): Promise<T> {
    this.#forget();
    try {
      return await change();
    } finally {
      this.#forget();
    }
  }

  #forget(): void {
    this.#version++;
    this.#byId.clear();
    this.#activeByPartner.clear();
  }

  /** Reads with `read`, remembering its result under `key` unless a write came in between. */
  async #remembered<T>(
    cache: Map<string, T>,
    key: string,
    read: () => Promise<T | undefined>,
  ): Promise<T | undefined> {
    if (!this.#remember) return read();
    const known = cache.get(key);
    if (known !== undefined) return known;
    const version = this.#version;
    const value = await read();
    if (value !== undefined && version === this.#version)
      setBounded(cache, key, deepFrozen(value), REMEMBERED);
    return value;
  }

  /** Counts and inserts in one write: the write lock makes the count exact across processes. */
  create(s: Subscription, options: { maxPerPartner: number }): Promise<void> {
    return this.#writing(() => this.#create(s, options));
  }

  async #create(s: Subscription, options: { maxPerPartner: number }): Promise<void> {
    const values = await this.#values(s);
    const db = this.#db;
    await write(db, () => {
      const row = prepared(db, 'SELECT COUNT(*) AS n FROM subscriptions WHERE partner_id = ?').get(
        s.partnerId,
      );
      if (row !== undefined && readInteger(row, 'n') >= options.maxPerPartner) {
        throw new SubscriptionLimitError(options.maxPerPartner);
      }
      prepared(
        db,
        `INSERT INTO subscriptions (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(s.id, ...values);
    });
  }

  put(s: Subscription, options: { expectedUpdatedAt?: string } = {}): Promise<void> {
    return this.#writing(() => this.#put(s, options));
  }

  async #put(s: Subscription, options: { expectedUpdatedAt?: string }): Promise<void> {
    const values = await this.#values(s);
    const db = this.#db;
    const expectedUpdatedAt = options.expectedUpdatedAt;
    if (expectedUpdatedAt !== undefined) {
      // Only the version read: a row changed or deleted since is not written.
      const result = await write(db, () =>
        prepared(
          db,
          `UPDATE subscriptions SET partner_id = ?, url = ?, event_types = ?, description = ?, status = ?,
             disabled_reason = ?, failing_since = ?, secrets = ?, created_at = ?, updated_at = ?, transport = ?,
             filter = ?, signature = ?, ordering = ?, transformation = ?
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
        `INSERT INTO subscriptions (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET
           partner_id = excluded.partner_id, url = excluded.url, event_types = excluded.event_types,
           description = excluded.description, status = excluded.status,
           disabled_reason = excluded.disabled_reason, failing_since = excluded.failing_since,
           secrets = excluded.secrets, created_at = excluded.created_at, updated_at = excluded.updated_at,
           transport = excluded.transport, filter = excluded.filter, signature = excluded.signature,
           ordering = excluded.ordering, transformation = excluded.transformation`,
      ).run(s.id, ...values),
    );
  }

  get(subscriptionId: string): Promise<Subscription | undefined> {
    return this.#remembered(this.#byId, subscriptionId, async () => {
      const row = prepared(this.#db, `SELECT ${COLUMNS} FROM subscriptions WHERE id = ?`).get(subscriptionId);
      return row === undefined ? undefined : toSubscription(row, this.#cipher);
    });
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
    const subscriptions = await Promise.all(rows.map((row) => toSubscription(row, this.#cipher)));
    return pageOfLookahead(subscriptions, query, (s) => s);
  }

  async describe(subscriptionId: string): Promise<SubscriptionRecord | undefined> {
    const row = prepared(this.#db, `SELECT ${COLUMNS} FROM subscriptions WHERE id = ?`).get(subscriptionId);
    return row === undefined ? undefined : toRecord(row);
  }

  async listConnections(partnerId: string): Promise<SubscriptionRecord[]> {
    const rows = prepared(
      this.#db,
      `SELECT ${COLUMNS} FROM subscriptions WHERE partner_id = ? AND transport = 'connection' ORDER BY id`,
    ).all(partnerId);
    return rows.map(toRecord);
  }

  async listByHealth(health: SubscriptionHealth, query: ListQuery): Promise<Page<SubscriptionRecord>> {
    const rows = prepared(
      this.#db,
      `SELECT ${COLUMNS} FROM subscriptions
        WHERE ${health === 'disabled' ? "status = 'disabled'" : "status = 'active' AND failing_since IS NOT NULL"}
          AND id > ? ORDER BY id LIMIT ?`,
    ).all(query.after ?? '', query.limit + 1);
    return pageOfLookahead(rows, query, toRecord);
  }

  async listActive(partnerId: string): Promise<Subscription[]> {
    const active = await this.#remembered(this.#activeByPartner, partnerId, () => {
      const rows = prepared(
        this.#db,
        `SELECT ${COLUMNS} FROM subscriptions WHERE partner_id = ? AND status = 'active' ORDER BY id`,
      ).all(partnerId);
      return Promise.all(rows.map((row) => toSubscription(row, this.#cipher, true)));
    });
    return active ?? [];
  }

  delete(subscriptionId: string): Promise<boolean> {
    const db = this.#db;
    return this.#writing(async () => {
      const result = await write(db, () =>
        prepared(db, 'DELETE FROM subscriptions WHERE id = ?').run(subscriptionId),
      );
      return Number(result.changes) > 0;
    });
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

  updateHealth(subscriptionId: string, change: HealthChange): Promise<HealthUpdate | undefined> {
    return this.#writing(() => this.#updateHealth(subscriptionId, change));
  }

  async #updateHealth(subscriptionId: string, change: HealthChange): Promise<HealthUpdate | undefined> {
    const [sql, params] = healthUpdate(change);
    const { row, changed } = await write(this.#db, () => {
      const result = prepared(this.#db, `UPDATE subscriptions SET ${sql}`).run(...params, subscriptionId);
      const row = prepared(this.#db, `SELECT ${COLUMNS} FROM subscriptions WHERE id = ?`).get(subscriptionId);
      return { row, changed: Number(result.changes) > 0 };
    });
    return row === undefined ? undefined : { subscription: await toSubscription(row, this.#cipher), changed };
  }

  /**
   * Seals every subscription's secrets again under the cipher's current key, secrets still in
   * the clear included, in one write: after a key rotation (the old key can then go) or to
   * seal what a store written before sealing holds. A row changed meanwhile is left as it
   * is, already sealed by the write that changed it.
   * @returns how many subscriptions were sealed again
   */
  resealAll(): Promise<number> {
    return this.#writing(() => this.#resealAll());
  }

  async #resealAll(): Promise<number> {
    const rows = prepared(this.#db, `SELECT ${COLUMNS} FROM subscriptions ORDER BY id`).all();
    const sealed = await Promise.all(
      rows.map(async (row) => {
        const subscription = await toSubscription(row, this.#cipher);
        const secrets = await sealSecrets(this.#cipher, subscription.id, subscription.secrets);
        return [JSON.stringify(secrets), subscription.id, readText(row, 'secrets')] as const;
      }),
    );
    const db = this.#db;
    return write(db, () => {
      const update = prepared(db, 'UPDATE subscriptions SET secrets = ? WHERE id = ? AND secrets = ?');
      return sealed.reduce((count, values) => count + Number(update.run(...values).changes), 0);
    });
  }

  /** The column values of a subscription, in COLUMNS order after `id`, its secrets sealed. */
  async #values(s: Subscription): Promise<(string | null)[]> {
    return subscriptionValues(s, await sealSecrets(this.#cipher, s.id, s.secrets));
  }
}

/**
 * How the signing secrets in the database are kept: how many are in the clear, and which keys
 * seal the others (`<scheme>.<key id>`, as sealed.ts writes them). Needs no key.
 */
export interface SecretsAtRest {
  clear: number;
  sealedWith: string[];
}

export function secretsAtRest(db: SqliteDatabase): SecretsAtRest {
  const rows = prepared(
    db,
    "SELECT json_extract(s.value, '$.secret') AS secret FROM subscriptions, json_each(subscriptions.secrets) AS s",
  ).all();
  let clear = 0;
  const keys = new Set<string>();
  for (const row of rows) {
    const secret = readText(row, 'secret');
    if (isSealed(secret)) {
      const { scheme, key } = parseSealed(secret);
      keys.add(`${scheme}.${key}`);
    } else {
      clear += 1;
    }
  }
  return { clear, sealedWith: [...keys].sort() };
}

/** The column values of a subscription, in COLUMNS order after `id`. */
function subscriptionValues(s: Subscription, sealedSecrets: StoredSecrets): (string | null)[] {
  return [
    s.partnerId,
    s.url ?? '',
    JSON.stringify(s.eventTypes),
    s.description ?? null,
    s.status,
    s.disabledReason ?? null,
    s.failingSince ?? null,
    JSON.stringify(sealedSecrets),
    s.createdAt,
    s.updatedAt,
    s.transport ?? 'url',
    s.filter === undefined ? null : JSON.stringify(s.filter),
    s.signature ?? 'hmac',
    s.ordering ?? null,
    s.transformation?.jsonata ?? null,
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
