/**
 * SQS-like queues in the local database, so the local runtime's pollers can hand the fan-out
 * and dispatcher handlers the same batches, with the same retry behaviour, as Lambda's SQS
 * event source does on AWS.
 */

import { createHash, randomUUID } from 'node:crypto';
import type { SQSRecord } from 'aws-lambda';
import { SQS } from '../../aws-quotas.ts';
import type { Clock, OutgoingMessage, QueueSender } from '../../core/ports.ts';
import { systemClock } from '../clock.ts';
import {
  prepared,
  type Row,
  readInteger,
  readOptionalText,
  readText,
  type SqliteDatabase,
  transaction,
  write,
} from './database.ts';

/** SQS's limits (functions/aws-quotas.ts), enforced here too so the local runtime rejects what AWS would. */
const MAX_DELAY_SECONDS = SQS.maxDelaySeconds;
const MAX_VISIBILITY_TIMEOUT_SECONDS = SQS.maxVisibilityTimeoutSeconds;
const MAX_RECEIVE_COUNT = SQS.maxReceiveCount;
/** Rows of one group read per query of a receive. */
const RECEIVE_PAGE = 32;

/** As SQS's ReceiptHandleIsInvalid: the handle is unknown, or a later receive replaced it. */
export class ReceiptHandleIsInvalidError extends Error {
  constructor(receiptHandle: string) {
    super(`receipt handle is invalid or no longer current: ${receiptHandle}`);
    this.name = 'ReceiptHandleIsInvalidError';
  }
}

export interface SqliteQueueOptions<T> {
  name: string;
  visibilityTimeoutSeconds: number;
  /** Receives after which the next receive moves the message to `deadLetterQueue`; set both or neither. */
  maxReceiveCount?: number;
  deadLetterQueue?: SqliteQueue<T>;
  /**
   * Longest delaySeconds a send takes. SQS's 900 unless a queue stands for more than an SQS
   * queue: the local delivery queue also holds the long waits that AWS keeps as due retries.
   * @default 900
   */
  maxDelaySeconds?: number;
  /** @default systemClock */
  clock?: Clock;
}

export interface QueueStats {
  /** Receivable now. */
  visible: number;
  /** Received and hidden until their visibility timeout ends. */
  inFlight: number;
  /** Never received yet, hidden by their delay. */
  delayed: number;
}

export interface QueuedMessage<T> {
  messageId: string;
  body: T;
  receiveCount: number;
  sentAt: Date;
  visibleAt: Date;
}

/**
 * A receipt handle names its message's seq, so that a delete finds the row by its key, and
 * the receive's token (a random UUID, new at every receive, the row's receipt_handle), so
 * that only the latest receive's handle matches.
 */
function receiptHandleOf(seq: number | bigint, token: string): string {
  return `${seq}.${token}`;
}

/** The seq and token a receipt handle names; undefined for one this queue never gave out. */
function parseReceiptHandle(receiptHandle: string): { seq: number; token: string } | undefined {
  const dot = receiptHandle.indexOf('.');
  if (dot <= 0) return undefined;
  const seq = Number(receiptHandle.slice(0, dot));
  return Number.isSafeInteger(seq) && seq > 0 ? { seq, token: receiptHandle.slice(dot + 1) } : undefined;
}

function checkSeconds(what: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${what} must be an integer from 0 to ${max}, got ${value}`);
  }
}

export function queueArn(name: string): string {
  return `arn:aws:sqs:local:000000000000:${name}`;
}

/**
 * A named queue with SQS standard-queue semantics, stored in the shared database so that a
 * restart loses nothing: a message received but not deleted when the process stopped simply
 * becomes visible again when its visibility timeout ends, as on SQS.
 */
export class SqliteQueue<T> implements QueueSender<T> {
  readonly name: string;
  readonly arn: string;
  readonly visibilityTimeoutSeconds: number;
  readonly maxReceiveCount: number | undefined;
  readonly deadLetterQueue: SqliteQueue<T> | undefined;
  readonly maxDelaySeconds: number;
  readonly #db: SqliteDatabase;
  readonly #clock: Clock;

  constructor(db: SqliteDatabase, options: SqliteQueueOptions<T>) {
    checkSeconds(
      'visibilityTimeoutSeconds',
      options.visibilityTimeoutSeconds,
      MAX_VISIBILITY_TIMEOUT_SECONDS,
    );
    if ((options.maxReceiveCount === undefined) !== (options.deadLetterQueue === undefined)) {
      throw new Error(
        `queue ${options.name}: maxReceiveCount and deadLetterQueue go together (a redrive policy)`,
      );
    }
    if (options.maxReceiveCount !== undefined) {
      const max = options.maxReceiveCount;
      if (!Number.isInteger(max) || max < 1 || max > MAX_RECEIVE_COUNT) {
        throw new RangeError(`maxReceiveCount must be an integer from 1 to ${MAX_RECEIVE_COUNT}, got ${max}`);
      }
    }
    if (options.deadLetterQueue !== undefined) {
      if (options.deadLetterQueue.#db !== db) {
        throw new Error(`queue ${options.name}: the dead-letter queue must be in the same database`);
      }
      if (options.deadLetterQueue.name === options.name) {
        throw new Error(`queue ${options.name} cannot be its own dead-letter queue`);
      }
    }
    this.name = options.name;
    this.arn = queueArn(options.name);
    this.visibilityTimeoutSeconds = options.visibilityTimeoutSeconds;
    this.maxReceiveCount = options.maxReceiveCount;
    this.deadLetterQueue = options.deadLetterQueue;
    this.maxDelaySeconds = options.maxDelaySeconds ?? MAX_DELAY_SECONDS;
    this.#db = db;
    this.#clock = options.clock ?? systemClock;
  }

  /** Sends every message, atomically; synchronous so it can join a caller's transaction(). */
  sendNow(messages: OutgoingMessage<T>[]): void {
    for (const m of messages) checkSeconds('delaySeconds', m.delaySeconds ?? 0, this.maxDelaySeconds);
    if (messages.length === 0) return;
    const now = this.#now();
    const db = this.#db;
    transaction(db, () => {
      const insert = prepared(
        db,
        `INSERT INTO queue_messages (queue, message_id, body, sent_at, visible_at, group_id)
         VALUES (?, ?, ?, ?, ?, ?)`,
      );
      for (const m of messages) {
        const visibleAt = now + (m.delaySeconds ?? 0) * 1000;
        insert.run(this.name, randomUUID(), JSON.stringify(m.body), now, visibleAt, m.groupId ?? null);
      }
    });
  }

  /** Sends every message, atomically, committed with the other writes of this turn. */
  send(messages: OutgoingMessage<T>[]): Promise<void> {
    return write(this.#db, () => this.sendNow(messages));
  }

  /**
   * Sends every message, atomically, and receives at once those a consumer takes (`take`, asked
   * about each message's group in send order): what a receive right after the send would
   * return, without its reads. Only a message with no delay is offered, and only when no
   * visible message of its group waits before it, so that a group's messages are still
   * received oldest first. Returns the records of the messages taken, committed with the other
   * writes of this turn. `mayTake`, when given, is asked first and has no effect: a message of
   * a group it turns down (the consumer is full) is stored without the look at its group.
   */
  sendReceiving(
    messages: OutgoingMessage<T>[],
    take: (groupId: string | undefined) => boolean,
    mayTake: (groupId: string | undefined) => boolean = () => true,
  ): Promise<SQSRecord[]> {
    const db = this.#db;
    return write(db, () => {
      for (const m of messages) checkSeconds('delaySeconds', m.delaySeconds ?? 0, this.maxDelaySeconds);
      const now = this.#now();
      const waiting = prepared(
        db,
        `SELECT 1 FROM queue_messages INDEXED BY queue_messages_by_group
          WHERE queue = ? AND group_id IS ? AND visible_at <= ? LIMIT 1`,
      );
      const insert = prepared(
        db,
        `INSERT INTO queue_messages
           (queue, message_id, body, sent_at, visible_at, group_id, receive_count, receipt_handle, first_received_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      );
      const records: SQSRecord[] = [];
      for (const m of messages) {
        const groupId = m.groupId ?? null;
        const body = JSON.stringify(m.body);
        const messageId = randomUUID();
        const delay = m.delaySeconds ?? 0;
        const taken =
          delay === 0 &&
          mayTake(groupId ?? undefined) &&
          waiting.get(this.name, groupId, now) === undefined &&
          take(groupId ?? undefined);
        if (!taken) {
          insert.run(this.name, messageId, body, now, now + delay * 1000, groupId, 0, null, null);
          continue;
        }
        const hiddenUntil = now + this.visibilityTimeoutSeconds * 1000;
        const token = randomUUID();
        const { lastInsertRowid } = insert.run(
          this.name,
          messageId,
          body,
          now,
          hiddenUntil,
          groupId,
          1,
          token,
          now,
        );
        const receiptHandle = receiptHandleOf(lastInsertRowid, token);
        const row: Row = {
          message_id: messageId,
          body,
          sent_at: now,
          first_received_at: now,
          dead_letter_source: null,
          group_id: groupId,
        };
        records.push(this.#toRecord(row, 1, receiptHandle, now));
      }
      return records;
    });
  }

  /**
   * Up to `max` visible messages. Each one returned gets its receive count incremented, is
   * hidden for the visibility timeout and carries a new receipt handle (the previous one stops
   * working). As on SQS, a message that has already been received maxReceiveCount times goes
   * to the dead-letter queue at this receive instead of being returned.
   *
   * Messages are read group by group (a message without a group is in the group of those
   * without one), as SQS fair queues serve tenants: the group whose oldest visible message has
   * waited longest first, and within a group the messages visible longest first (for messages
   * never received, that is send order). `admit`, when given, is asked about each candidate's
   * group in turn and may turn it down (its messages stay visible, their receive counts
   * untouched, and the receive moves on to the next group): a consumer uses it to cap how
   * many of one group's messages it has in flight. Groups in `exclude` (already at their cap)
   * are not read at all, so a long backlog of one slow group costs nothing per receive.
   */
  receive(
    max: number,
    admit?: (groupId: string | undefined) => boolean,
    exclude: readonly string[] = [],
  ): SQSRecord[] {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`max must be a positive integer, got ${max}`);
    const now = this.#now();
    const db = this.#db;
    // One write transaction: two pollers (or processes) never receive the same message.
    return transaction(db, () => {
      const excluded = new Set(exclude);
      const records: SQSRecord[] = [];
      for (const group of this.#visibleGroups(now)) {
        if (records.length >= max) break;
        if (group !== null && excluded.has(group)) continue;
        this.#receiveFromGroup(group, now, max, admit, records);
      }
      return records;
    });
  }

  /**
   * The groups with a visible message (null for messages without a group), oldest visible
   * message first. One index seek per group that has any message, visible or not: the
   * backlog inside a group is never scanned.
   */
  #visibleGroups(now: number): (string | null)[] {
    const heads = prepared(
      this.#db,
      // Distinct groups by a skip scan of the index (one seek each), then each group's head.
      `WITH RECURSIVE grouped(group_id) AS (
         SELECT (SELECT min(group_id) FROM queue_messages WHERE queue = :queue)
         UNION ALL
         SELECT (SELECT min(group_id) FROM queue_messages WHERE queue = :queue AND group_id > grouped.group_id)
         FROM grouped WHERE grouped.group_id IS NOT NULL
       ),
       heads(group_id, seq) AS (
         SELECT group_id,
                (SELECT seq FROM queue_messages WHERE queue = :queue AND group_id = grouped.group_id
                  ORDER BY visible_at, seq LIMIT 1)
           FROM grouped WHERE group_id IS NOT NULL
         UNION ALL
         SELECT NULL,
                (SELECT seq FROM queue_messages WHERE queue = :queue AND group_id IS NULL
                  ORDER BY visible_at, seq LIMIT 1)
       )
       SELECT heads.group_id FROM heads JOIN queue_messages AS head ON head.seq = heads.seq
        WHERE head.visible_at <= :now
        ORDER BY head.visible_at, head.seq`,
    ).all({ queue: this.name, now });
    return heads.map((row) => readOptionalText(row, 'group_id') ?? null);
  }

  /** Receives the group's visible messages into `records`, until `max`, or until admit turns the group down. */
  #receiveFromGroup(
    group: string | null,
    now: number,
    max: number,
    admit: ((groupId: string | undefined) => boolean) | undefined,
    records: SQSRecord[],
  ): void {
    const db = this.#db;
    // In the index's order (queue, group_id, visible_at, seq): no sort, nothing but the rows
    // read. The index is named because the planner, left alone, takes the (queue, visible_at)
    // one for this query and scans every visible message of every group.
    const select = prepared(
      db,
      `SELECT seq, message_id, body, sent_at, visible_at, receive_count, first_received_at,
              dead_letter_source, group_id
         FROM queue_messages INDEXED BY queue_messages_by_group
        WHERE queue = ? AND group_id IS ? AND visible_at <= ? AND (visible_at, seq) > (?, ?)
        ORDER BY visible_at, seq LIMIT ?`,
    );
    const markReceived = prepared(
      db,
      `UPDATE queue_messages
         SET receive_count = receive_count + 1, visible_at = ?, receipt_handle = ?,
             first_received_at = coalesce(first_received_at, ?)
         WHERE seq = ?`,
    );
    // Paging from the last row read rather than re-running the same query. With a zero
    // visibility timeout a received message stays visible, now at `now`, so a later page can
    // meet it again: it is passed over, never returned twice.
    const received = new Set<number>();
    let after = [Number.MIN_SAFE_INTEGER, 0];
    while (records.length < max) {
      const page = Math.min(max - records.length, RECEIVE_PAGE);
      const rows = select.all(this.name, group, now, ...after, page);
      for (const row of rows) {
        const seq = readInteger(row, 'seq');
        after = [readInteger(row, 'visible_at'), seq];
        if (received.has(seq)) continue;
        const receiveCount = readInteger(row, 'receive_count');
        if (this.deadLetterQueue !== undefined && receiveCount >= (this.maxReceiveCount ?? Infinity)) {
          this.#moveToDeadLetterQueue(seq, this.deadLetterQueue, now);
          continue;
        }
        if (admit !== undefined && !admit(group ?? undefined)) return;
        const token = randomUUID();
        markReceived.run(now + this.visibilityTimeoutSeconds * 1000, token, now, seq);
        const receiptHandle = receiptHandleOf(seq, token);
        received.add(seq);
        records.push(this.#toRecord(row, receiveCount + 1, receiptHandle, now));
      }
      if (rows.length < page) return;
    }
  }

  /**
   * `receive`, of these groups' messages alone, group after group in the order given: for a
   * consumer that knows which groups it has room for again (their messages it received are
   * done), without the look at every group that `receive` takes first. Committed with the
   * other writes of this turn.
   */
  receiveGroups(
    groups: readonly (string | undefined)[],
    max: number,
    admit?: (groupId: string | undefined) => boolean,
  ): Promise<SQSRecord[]> {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`max must be a positive integer, got ${max}`);
    return write(this.#db, () => {
      const now = this.#now();
      const records: SQSRecord[] = [];
      for (const group of groups) {
        if (records.length >= max) break;
        this.#receiveFromGroup(group ?? null, now, max, admit, records);
      }
      return records;
    });
  }

  /** `receive`, committed with the other writes of this turn. */
  receiveBatch(
    max: number,
    admit?: (groupId: string | undefined) => boolean,
    exclude: readonly string[] = [],
  ): Promise<SQSRecord[]> {
    return write(this.#db, () => this.receive(max, admit, exclude));
  }

  /** Deletes the message; false when the handle is unknown or a later receive replaced it. */
  delete(receiptHandle: string): boolean {
    const handle = parseReceiptHandle(receiptHandle);
    if (handle === undefined) return false;
    const result = prepared(
      this.#db,
      'DELETE FROM queue_messages WHERE seq = ? AND queue = ? AND receipt_handle = ?',
    ).run(handle.seq, this.name, handle.token);
    return Number(result.changes) > 0;
  }

  /**
   * Deletes the messages, committed with the other writes of this turn (as SQS's
   * DeleteMessageBatch); resolves with how many were deleted (a handle that is unknown or no
   * longer current deletes nothing).
   */
  deleteBatch(receiptHandles: readonly string[]): Promise<number> {
    return write(this.#db, () =>
      receiptHandles.reduce((deleted, handle) => deleted + (this.delete(handle) ? 1 : 0), 0),
    );
  }

  /**
   * Hides the message for `timeoutSeconds` from now (0 makes it visible at once).
   * @throws ReceiptHandleIsInvalidError when the handle is unknown or no longer current.
   */
  async changeVisibility(receiptHandle: string, timeoutSeconds: number): Promise<void> {
    checkSeconds('timeoutSeconds', timeoutSeconds, MAX_VISIBILITY_TIMEOUT_SECONDS);
    const db = this.#db;
    const visibleAt = this.#now() + timeoutSeconds * 1000;
    const handle = parseReceiptHandle(receiptHandle);
    if (handle === undefined) throw new ReceiptHandleIsInvalidError(receiptHandle);
    await write(db, () => {
      const result = prepared(
        db,
        'UPDATE queue_messages SET visible_at = ? WHERE seq = ? AND queue = ? AND receipt_handle = ?',
      ).run(visibleAt, handle.seq, this.name, handle.token);
      if (Number(result.changes) === 0) throw new ReceiptHandleIsInvalidError(receiptHandle);
    });
  }

  /**
   * Moves up to `max` (default all) visible messages of this queue, oldest first, to `target`
   * with their receive count reset, as the SQS console's "start DLQ redrive" does; messages
   * in flight here stay. Returns how many moved.
   */
  redriveTo(target: SqliteQueue<T>, max?: number): number {
    if (target.#db !== this.#db) throw new Error('redrive target must be in the same database');
    if (target.name === this.name) throw new Error(`cannot redrive queue ${this.name} into itself`);
    const now = this.#now();
    const result = prepared(
      this.#db,
      `UPDATE queue_messages
         SET queue = ?, visible_at = ?, receive_count = 0, first_received_at = NULL,
             receipt_handle = NULL, dead_letter_source = NULL
         WHERE seq IN (
           SELECT seq FROM queue_messages WHERE queue = ? AND visible_at <= ? ORDER BY seq LIMIT ?
         )`,
    ).run(target.name, now, this.name, now, max ?? -1);
    return Number(result.changes);
  }

  stats(): QueueStats {
    const row = prepared(
      this.#db,
      `SELECT
           count(*) FILTER (WHERE visible_at <= :now) AS visible,
           count(*) FILTER (WHERE visible_at > :now AND receive_count > 0) AS in_flight,
           count(*) FILTER (WHERE visible_at > :now AND receive_count = 0) AS delayed
         FROM queue_messages WHERE queue = :queue`,
    ).get({ now: this.#now(), queue: this.name });
    if (row === undefined) return { visible: 0, inFlight: 0, delayed: 0 };
    return {
      visible: readInteger(row, 'visible'),
      inFlight: readInteger(row, 'in_flight'),
      delayed: readInteger(row, 'delayed'),
    };
  }

  /**
   * Makes every message received and not yet deleted visible now, and its receipt handle
   * invalid: for a consumer that knows the receiver of those messages is gone (a runtime
   * starting on the directory a killed one owned), so they need not wait out their visibility
   * timeout. Delayed messages, never received, keep their delay. Returns how many.
   */
  releaseInFlight(): number {
    const now = this.#now();
    const result = prepared(
      this.#db,
      `UPDATE queue_messages SET visible_at = :now, receipt_handle = NULL
        WHERE queue = :queue AND visible_at > :now AND receive_count > 0`,
    ).run({ now, queue: this.name });
    return Number(result.changes);
  }

  /**
   * Makes the group's messages that wait for a connection (`waiting` in their body, never
   * received) visible now, committed with the other writes of this turn; resolves with how
   * many. The group's other delayed messages (retries after their wait) keep their delay.
   */
  releaseWaiting(groupId: string): Promise<number> {
    const db = this.#db;
    return write(db, () => {
      const now = this.#now();
      const result = prepared(
        db,
        `UPDATE queue_messages INDEXED BY queue_messages_by_group SET visible_at = :now
          WHERE queue = :queue AND group_id = :group AND visible_at > :now AND receive_count = 0
            AND json_extract(body, '$.waiting') = 1`,
      ).run({ now, queue: this.name, group: groupId });
      return Number(result.changes);
    });
  }

  /** When the earliest message becomes (or became) visible; null when the queue is empty. */
  nextVisibleAt(): Date | null {
    const row = prepared(this.#db, 'SELECT min(visible_at) AS at FROM queue_messages WHERE queue = ?').get(
      this.name,
    );
    const at = row?.at;
    return typeof at === 'number' ? new Date(at) : null;
  }

  /**
   * Up to `limit` messages in send order, whatever their visibility, their bodies as stored,
   * left as they are: for ops looking into a dead-letter queue. `visibleAt` of a message never
   * received here is when it came: its send, or its move from the queue it died in.
   */
  peek(limit: number): (Omit<QueuedMessage<T>, 'body'> & { body: string })[] {
    return prepared(
      this.#db,
      `SELECT message_id, body, receive_count, sent_at, visible_at
         FROM queue_messages WHERE queue = ? ORDER BY seq LIMIT ?`,
    )
      .all(this.name, limit)
      .map((row) => ({
        messageId: readText(row, 'message_id'),
        body: readText(row, 'body'),
        receiveCount: readInteger(row, 'receive_count'),
        sentAt: new Date(readInteger(row, 'sent_at')),
        visibleAt: new Date(readInteger(row, 'visible_at')),
      }));
  }

  /** Deletes every message, in flight or not, committed with the other writes of this turn; resolves with how many. */
  purge(): Promise<number> {
    const db = this.#db;
    return write(db, () =>
      Number(prepared(db, 'DELETE FROM queue_messages WHERE queue = ?').run(this.name).changes),
    );
  }

  /** When the oldest message was sent; null when the queue is empty. */
  oldestSentAt(): Date | null {
    const row = prepared(this.#db, 'SELECT min(sent_at) AS at FROM queue_messages WHERE queue = ?').get(
      this.name,
    );
    const at = row?.at;
    return typeof at === 'number' ? new Date(at) : null;
  }

  /** `redriveTo`, committed with the other writes of this turn. */
  redrive(target: SqliteQueue<T>, max?: number): Promise<number> {
    return write(this.#db, () => this.redriveTo(target, max));
  }

  /** `peek`, the bodies parsed. */
  list(limit: number): QueuedMessage<T>[] {
    // The queue only ever stores JSON.stringify of a T; consumers validate at their own edge.
    return this.peek(limit).map((message) => ({ ...message, body: JSON.parse(message.body) as T }));
  }

  #now(): number {
    return this.#clock.now().getTime();
  }

  /**
   * As on SQS, the message keeps its id, sent time and receive count in the dead-letter queue,
   * and remembers its source (the DeadLetterQueueSourceArn attribute).
   */
  #moveToDeadLetterQueue(seq: number, dlq: SqliteQueue<T>, now: number): void {
    prepared(
      this.#db,
      `UPDATE queue_messages
         SET queue = ?, visible_at = ?, receipt_handle = NULL, dead_letter_source = ?
         WHERE seq = ?`,
    ).run(dlq.name, now, this.name, seq);
  }

  #toRecord(row: Row, receiveCount: number, receiptHandle: string, now: number): SQSRecord {
    const body = readText(row, 'body');
    const firstReceivedAt = row.first_received_at === null ? now : readInteger(row, 'first_received_at');
    const deadLetterSource = readOptionalText(row, 'dead_letter_source');
    const groupId = readOptionalText(row, 'group_id');
    return {
      messageId: readText(row, 'message_id'),
      receiptHandle,
      body,
      attributes: {
        ApproximateReceiveCount: String(receiveCount),
        SentTimestamp: String(readInteger(row, 'sent_at')),
        SenderId: 'local',
        ApproximateFirstReceiveTimestamp: String(firstReceivedAt),
        ...(deadLetterSource === undefined ? {} : { DeadLetterQueueSourceArn: queueArn(deadLetterSource) }),
        ...(groupId === undefined ? {} : { MessageGroupId: groupId }),
      },
      messageAttributes: {},
      // Worked out when read: nothing in the pipeline reads it, and a hash per record adds up.
      get md5OfBody() {
        return createHash('md5').update(body).digest('hex');
      },
      eventSource: 'aws:sqs',
      eventSourceARN: this.arn,
      awsRegion: 'local',
    };
  }
}
