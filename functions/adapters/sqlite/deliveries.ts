import {
  type Attempt,
  AttemptErrorKind,
  type Delivery,
  DeliveryOrigin,
  DeliveryStatus,
  type Page,
  SkippedReason,
} from '../../core/model.ts';
import type { DeliveryStore, ListQuery } from '../../core/ports.ts';
import { pageOfLookahead } from '../paging.ts';
import { RecentlyWritten, type RecentlyWrittenOptions } from '../recently-written.ts';
import {
  prepared,
  type Row,
  readInteger,
  readNumber,
  readOptionalInteger,
  readOptionalText,
  readText,
  type SqliteDatabase,
  withoutUndefined,
  write,
} from './database.ts';

const DELIVERY_COLUMNS =
  'id, event_id, subscription_id, partner_id, event_type, origin, status, attempts, created_at, updated_at, last_attempt_at, next_attempt_at, skipped_reason';
const INSERT_DELIVERY = `INSERT INTO deliveries (${DELIVERY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;
/** A fan-out delivery's insert; one change when it went in, none when the pair has one already. */
const INSERT_FANOUT_DELIVERY = `${INSERT_DELIVERY}
  ON CONFLICT (event_id, subscription_id) WHERE origin = 'fanout' DO NOTHING`;

function deliveryValues(d: Delivery) {
  return [
    d.id,
    d.eventId,
    d.subscriptionId,
    d.partnerId,
    d.eventType,
    d.origin,
    d.status,
    d.attempts,
    d.createdAt,
    d.updatedAt,
    d.lastAttemptAt ?? null,
    d.nextAttemptAt ?? null,
    d.skippedReason ?? null,
  ];
}
const ATTEMPT_COLUMNS =
  'id, delivery_id, subscription_id, partner_id, number, started_at, duration_ms, status_code, error, error_message, response_excerpt';

function toDelivery(row: Row): Delivery {
  const skippedReason = readOptionalText(row, 'skipped_reason');
  return withoutUndefined({
    id: readText(row, 'id'),
    eventId: readText(row, 'event_id'),
    subscriptionId: readText(row, 'subscription_id'),
    partnerId: readText(row, 'partner_id'),
    eventType: readText(row, 'event_type'),
    origin: DeliveryOrigin.parse(readText(row, 'origin')),
    status: DeliveryStatus.parse(readText(row, 'status')),
    attempts: readInteger(row, 'attempts'),
    createdAt: readText(row, 'created_at'),
    updatedAt: readText(row, 'updated_at'),
    lastAttemptAt: readOptionalText(row, 'last_attempt_at'),
    nextAttemptAt: readOptionalText(row, 'next_attempt_at'),
    skippedReason: skippedReason === undefined ? undefined : SkippedReason.parse(skippedReason),
  });
}

function toAttempt(row: Row): Attempt {
  const error = readOptionalText(row, 'error');
  return withoutUndefined({
    id: readText(row, 'id'),
    deliveryId: readText(row, 'delivery_id'),
    subscriptionId: readText(row, 'subscription_id'),
    partnerId: readText(row, 'partner_id'),
    number: readInteger(row, 'number'),
    startedAt: readText(row, 'started_at'),
    durationMs: readNumber(row, 'duration_ms'),
    statusCode: readOptionalInteger(row, 'status_code'),
    error: error === undefined ? undefined : AttemptErrorKind.parse(error),
    errorMessage: readOptionalText(row, 'error_message'),
    responseExcerpt: readOptionalText(row, 'response_excerpt'),
  });
}

export interface DeliveryStoreOptions {
  /**
   * Keep the deliveries fan-out stores in memory for `get`, for a short while: the first try
   * reads its delivery back soon after. Every write of this store to a delivery forgets it, so
   * only a store that makes every write to its database's deliveries may remember (the local
   * runtime's); the retention sweep deletes with a store of its own, but only deliveries a day
   * old at least, never this soon after their fan-out. Its `limit` counts deliveries.
   */
  remember?: RecentlyWrittenOptions;
}

export class SqliteDeliveryStore implements DeliveryStore {
  readonly #db: SqliteDatabase;
  /**
   * Deliveries fan-out stored last, as stored, by id (see DeliveryStoreOptions.remember). Kept
   * and forgotten inside the writes that change them, so in the order of those writes.
   */
  readonly #recent: RecentlyWritten<Delivery> | undefined;

  constructor(db: SqliteDatabase, options: DeliveryStoreOptions = {}) {
    this.#db = db;
    this.#recent = options.remember && new RecentlyWritten(options.remember);
  }

  async createForEvent(deliveries: Delivery[]): Promise<Delivery[]> {
    const stored = this.#createForEvent(deliveries);
    const recent = this.#recent;
    if (recent === undefined) return stored;
    // A write whose commit failed stored nothing: what it kept goes.
    return stored.catch((error: unknown) => {
      for (const d of deliveries) recent.forget(d.id);
      throw error;
    });
  }

  #createForEvent(deliveries: Delivery[]): Promise<Delivery[]> {
    const db = this.#db;
    return write(db, () => {
      const insert = prepared(db, INSERT_FANOUT_DELIVERY);
      const select = prepared(
        db,
        `SELECT ${DELIVERY_COLUMNS} FROM deliveries
         WHERE event_id = ? AND subscription_id = ? AND origin = 'fanout'`,
      );
      return deliveries.map((d) => {
        if (d.origin !== 'fanout')
          throw new Error(`createForEvent takes fan-out deliveries, not ${d.origin}`);
        if (Number(insert.run(...deliveryValues(d)).changes) === 1) {
          // Kept inside the write that stored it, in order with the other writes' forgetting.
          this.#recent?.keep(d.id, withoutUndefined({ ...d }));
          return d;
        }
        // Fanned out before: the delivery stored then is the one to keep.
        const stored = select.get(d.eventId, d.subscriptionId);
        if (stored === undefined) throw new Error(`delivery ${d.id} neither inserted nor found`);
        return toDelivery(stored);
      });
    });
  }

  async create(deliveries: Delivery[]): Promise<void> {
    const db = this.#db;
    await write(db, () => {
      const insert = prepared(db, INSERT_DELIVERY);
      for (const d of deliveries) {
        if (d.origin === 'fanout') throw new Error('fan-out deliveries are created by createForEvent');
        insert.run(...deliveryValues(d));
      }
    });
  }

  async get(deliveryId: string): Promise<Delivery | undefined> {
    const recent = this.#recent?.get(deliveryId);
    if (recent !== undefined) return recent;
    const row = prepared(this.#db, `SELECT ${DELIVERY_COLUMNS} FROM deliveries WHERE id = ?`).get(deliveryId);
    return row === undefined ? undefined : toDelivery(row);
  }

  /** Updates the delivery's mutable fields; its identity (event, subscription) never changes. */
  async recordAttempt(attempt: Attempt, delivery: Delivery): Promise<void> {
    await write(this.#db, () => this.#recordAttempt(attempt, delivery));
  }

  /** Inserts the delivery as it is after its first try, with the try, unless it is stored. */
  async createWithAttempt(attempt: Attempt, delivery: Delivery): Promise<void> {
    if (delivery.origin !== 'fanout')
      throw new Error(`createWithAttempt takes fan-out deliveries, not ${delivery.origin}`);
    const db = this.#db;
    await write(db, () => {
      this.#recent?.forget(delivery.id);
      const inserted = prepared(db, INSERT_FANOUT_DELIVERY).run(...deliveryValues(delivery));
      if (Number(inserted.changes) === 0) this.#recordAttempt(attempt, delivery);
      else this.#insertAttempt(attempt);
    });
  }

  #recordAttempt(attempt: Attempt, delivery: Delivery): void {
    const db = this.#db;
    this.#recent?.forget(delivery.id);
    // SET expressions read the row as it was. The new state is taken unless the delivery
    // succeeded already, or (for a failure) already recorded this try or a later one: a
    // copy of a message tried twice counts once, and never undoes a success. A skipped
    // delivery tried after all (a copy of its message) is skipped no more, unless its try
    // skipped it (a 410), which says why.
    const updated = prepared(
      db,
      `UPDATE deliveries SET
           status = CASE WHEN status = 'succeeded' THEN status
                         WHEN :status = 'succeeded' OR attempts < :number THEN :status ELSE status END,
           next_attempt_at = CASE WHEN status = 'succeeded' THEN NULL
                         WHEN :status = 'succeeded' OR attempts < :number THEN :next ELSE next_attempt_at END,
           last_attempt_at = CASE WHEN status = 'succeeded' THEN last_attempt_at
                         WHEN :status = 'succeeded' OR attempts < :number THEN :last ELSE last_attempt_at END,
           skipped_reason = CASE WHEN status = 'succeeded' THEN NULL
                         WHEN :status = 'succeeded' OR attempts < :number THEN :skipped ELSE skipped_reason END,
           updated_at = CASE WHEN status = 'succeeded' THEN updated_at
                         WHEN :status = 'succeeded' OR attempts < :number THEN :updated ELSE updated_at END,
           attempts = max(attempts, :number)
         WHERE id = :id`,
    ).run({
      status: delivery.status,
      skipped: delivery.skippedReason ?? null,
      number: attempt.number,
      next: delivery.nextAttemptAt ?? null,
      last: delivery.lastAttemptAt ?? null,
      updated: delivery.updatedAt,
      id: delivery.id,
    });
    if (Number(updated.changes) === 0) throw new Error(`delivery ${delivery.id} not found`);
    this.#insertAttempt(attempt);
  }

  #insertAttempt(attempt: Attempt): void {
    prepared(
      this.#db,
      `INSERT INTO attempts (${ATTEMPT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      attempt.id,
      attempt.deliveryId,
      attempt.subscriptionId,
      attempt.partnerId,
      attempt.number,
      attempt.startedAt,
      attempt.durationMs,
      attempt.statusCode ?? null,
      attempt.error ?? null,
      attempt.errorMessage ?? null,
      attempt.responseExcerpt ?? null,
    );
  }

  async skip(deliveryId: string, reason: SkippedReason, at: string): Promise<boolean> {
    const db = this.#db;
    const result = await write(db, () => {
      this.#recent?.forget(deliveryId);
      return prepared(
        db,
        `UPDATE deliveries SET status = 'skipped', skipped_reason = ?, next_attempt_at = NULL, updated_at = ?
         WHERE id = ? AND status <> 'succeeded'`,
      ).run(reason, at, deliveryId);
    });
    return Number(result.changes) > 0;
  }

  /**
   * Newest first, by id (ULIDs sort by creation time). Reads one extra row to tell whether
   * another page exists: `next` is null on the last page.
   */
  listBySubscription(subscriptionId: string, query: ListQuery): Promise<Page<Delivery>> {
    return this.#newestFirst('subscription_id', subscriptionId, query);
  }

  /** Newest first, paged as listBySubscription; only the partner's. */
  listByEvent(partnerId: string, eventId: string, query: ListQuery): Promise<Page<Delivery>> {
    return this.#newestFirst('event_id', eventId, query, partnerId);
  }

  async #newestFirst(
    column: 'subscription_id' | 'event_id',
    value: string,
    query: ListQuery,
    partnerId?: string,
  ): Promise<Page<Delivery>> {
    const rows = prepared(
      this.#db,
      `SELECT ${DELIVERY_COLUMNS} FROM deliveries
       WHERE ${column} = ? AND (? IS NULL OR partner_id = ?) AND id < ? ORDER BY id DESC LIMIT ?`,
    )
      // Every id sorts below '~': no cursor means from the newest.
      .all(value, partnerId ?? null, partnerId ?? null, query.after ?? '~', query.limit + 1);
    return pageOfLookahead(rows, query, toDelivery);
  }

  /**
   * Deletes up to `limit` of the deliveries created before `before`, oldest first, with their
   * attempts; returns how many deliveries went. For the retention sweep: synchronous, so it
   * can run inside the sweep's write.
   */
  deleteCreatedBefore(before: string, limit: number): number {
    this.#recent?.clear();
    const result = prepared(
      this.#db,
      `DELETE FROM deliveries WHERE id IN (
         SELECT id FROM deliveries WHERE created_at < ? ORDER BY created_at LIMIT ?)`,
    ).run(before, limit);
    return Number(result.changes);
  }

  /**
   * Deletes up to `limit` of the deliveries of these events, with their attempts; returns how
   * many deliveries went (fewer than `limit`: none are left). Synchronous, as above.
   */
  deleteForEvents(eventIds: readonly string[], limit: number): number {
    if (eventIds.length === 0 || limit < 1) return 0;
    this.#recent?.clear();
    const result = prepared(
      this.#db,
      `DELETE FROM deliveries WHERE id IN (
         SELECT id FROM deliveries WHERE event_id IN (SELECT value FROM json_each(?)) LIMIT ?)`,
    ).run(JSON.stringify(eventIds), limit);
    return Number(result.changes);
  }

  async listAttempts(deliveryId: string): Promise<Attempt[]> {
    return prepared(
      this.#db,
      `SELECT ${ATTEMPT_COLUMNS} FROM attempts WHERE delivery_id = ? ORDER BY number, started_at, id`,
    )
      .all(deliveryId)
      .map(toAttempt);
  }
}
