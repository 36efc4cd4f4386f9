/**
 * The event log on DynamoDB (the events table of tables.ts). One partition per partner holds
 * its events under `E#<seq>`, the `SEQ` counter, and the `ID#` and `IDEM#` pointers.
 *
 * Polling follows seq, not the event id: ids are minted by many writers before they write, so
 * a later commit can carry a smaller id. Every append writes the counter with a condition on
 * the value it read, in the same transaction as the event, so two appends can never commit the
 * same seq and seq order is commit order: a poller that has seen seq n never finds a new event
 * below n later.
 */
import { randomUUID } from 'node:crypto';
import {
  type DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  type QueryCommandInput,
  TransactWriteCommand,
  type TransactWriteCommandInput,
} from '@aws-sdk/lib-dynamodb';
import * as z from 'zod';
import { CursorNotFoundError, ServiceUnavailableError } from '../../core/errors.ts';
import { Event, EventId, type Page } from '../../core/model.ts';
import {
  type AppendResult,
  type Clock,
  type EventListQuery,
  type EventLog,
  systemClock,
} from '../../ports.ts';
import {
  attributeNames,
  backoff,
  cancellationCodes,
  compact,
  conditionFailed,
  expiresAt,
  hasConflict,
  type Item,
} from './dynamo.ts';

const SEQ_DIGITS = 15;
const COUNTER_SK = 'SEQ';
const EVENT_PREFIX = 'E#';
/** Sorts after every `E#<digits>` key and before `ID#…`, `IDEM#…` and `SEQ`. */
const EVENT_KEY_END = 'E#~';
/** DynamoDB allows at most 100 operands in one IN; the API takes far fewer types. */
const MAX_IN_OPERANDS = 100;
/** With a types filter, read at least this many items per request (see queryUpTo). */
const FILTERED_PAGE_SIZE = 100;

function eventKey(seq: number): string {
  return `${EVENT_PREFIX}${String(seq).padStart(SEQ_DIGITS, '0')}`;
}

const idKey = (eventId: string) => `ID#${eventId}`;
const idempotencyKeyKey = (key: string) => `IDEM#${key}`;

const Seq = z.number().int().positive();
const Counter = z.object({ seq: Seq });
const IdPointer = z.object({ seq: Seq });
const IdempotencyPointer = z.object({ eventId: EventId });
const StoredPayload = z.string();

/** Back from an item to the domain event: the payload was stored as JSON text. */
function toEvent(item: Item): Event {
  // Event's zod object drops what only the table needs (pk, sk, kind, seq, expiresAt).
  return Event.parse({ ...item, payload: JSON.parse(StoredPayload.parse(item.payload)) });
}

/**
 * Thrown when an append lost the race for the next seq more times than it may retry: a burst
 * of events for one partner; the publisher is told to try again (503).
 */
export class SequenceContentionError extends ServiceUnavailableError {
  constructor(partnerId: string, attempts: number) {
    super(
      `could not append to partner ${partnerId}'s log: the next seq was taken ${attempts} times in a row`,
    );
  }
}

export interface DynamoEventLogOptions {
  /**
   * Days after the append when TTL deletes the event and its pointers. Counted from the
   * clock, not from createdAt: a backfilled event with an old createdAt would otherwise be
   * deleted as soon as it is written. @default 30
   */
  retentionDays?: number;
  /** @default systemClock */
  clock?: Clock;
  /** Tries of one append, counting the first, while concurrent appends take its seq. @default 40 */
  maxAttempts?: number;
  /** Events one filtered page reads at most (see list). @default 1000 */
  maxExamined?: number;
  /** Base and cap of the jittered backoff between those tries, in ms. @default 5 and 200 */
  backoffBaseMs?: number;
  backoffCapMs?: number;
}

export class DynamoEventLog implements EventLog {
  readonly tableName: string;
  readonly retentionDays: number;
  readonly #client: DynamoDBDocumentClient;
  readonly #clock: Clock;
  readonly #maxAttempts: number;
  readonly #backoffBaseMs: number;
  readonly #backoffCapMs: number;
  readonly #maxExamined: number;

  constructor(client: DynamoDBDocumentClient, tableName: string, options: DynamoEventLogOptions = {}) {
    const retentionDays = options.retentionDays ?? 30;
    if (!(retentionDays > 0)) throw new RangeError(`retentionDays must be positive, got ${retentionDays}`);
    const maxAttempts = options.maxAttempts ?? 40;
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
      throw new RangeError(`maxAttempts must be a positive integer, got ${maxAttempts}`);
    }
    this.#client = client;
    this.tableName = tableName;
    this.retentionDays = retentionDays;
    this.#clock = options.clock ?? systemClock;
    this.#maxAttempts = maxAttempts;
    this.#backoffBaseMs = options.backoffBaseMs ?? 5;
    this.#backoffCapMs = options.backoffCapMs ?? 200;
    this.#maxExamined = options.maxExamined ?? 1000;
  }

  /**
   * 1. Read the partner's counter (consistent read: a stale value would only lose the race).
   * 2. In one transaction: move the counter from that value to the next, put the event under
   *    the next seq, its `ID#` pointer and, with a key, its `IDEM#` item.
   * 3. Cancelled on the `IDEM#` condition: the key was used, return the first event. Cancelled
   *    on the counter (or a conflict with a concurrent transaction): another append took the
   *    seq; read the counter again and retry after a jittered pause.
   * A cancelled transaction writes nothing, so seqs have no gaps.
   */
  async append(event: Event): Promise<AppendResult> {
    const ttl = expiresAt(this.#clock, this.retentionDays);
    const eventItem = compact({
      pk: event.partnerId,
      kind: 'event',
      id: event.id,
      partnerId: event.partnerId,
      type: event.type,
      payload: JSON.stringify(event.payload),
      createdAt: event.createdAt,
      idempotencyKey: event.idempotencyKey,
      expiresAt: ttl,
    });
    for (let attempt = 1; ; attempt++) {
      const previous = await this.#counter(event.partnerId);
      const seq = previous + 1;
      const input = this.#appendTransaction(event, { ...eventItem, sk: eventKey(seq), seq }, previous, ttl);
      try {
        await this.#client.send(new TransactWriteCommand(input));
        return { event: toEvent({ ...eventItem, seq }), created: true };
      } catch (error) {
        const codes = cancellationCodes(error);
        if (codes === undefined) throw error;
        if (event.idempotencyKey !== undefined && conditionFailed(codes, 3)) {
          const first = await this.#byIdempotencyKey(event.partnerId, event.idempotencyKey);
          // Undefined only if TTL removed the first event since: then this one is new after all.
          if (first !== undefined) return { event: first, created: false };
        } else if (conditionFailed(codes, 2)) {
          throw new Error(`event ${event.id} already exists in partner ${event.partnerId}'s log`, {
            cause: error,
          });
        } else if (!conditionFailed(codes, 0) && !hasConflict(codes)) {
          throw error;
        }
        if (attempt >= this.#maxAttempts) throw new SequenceContentionError(event.partnerId, attempt);
        await backoff(attempt, this.#backoffBaseMs, this.#backoffCapMs);
      }
    }
  }

  async get(partnerId: string, eventId: string): Promise<Event | undefined> {
    const seq = await this.#seqOf(partnerId, eventId);
    if (seq === undefined) return undefined;
    const result = await this.#client.send(
      new GetCommand({
        TableName: this.tableName,
        Key: { pk: partnerId, sk: eventKey(seq) },
        ConsistentRead: true,
      }),
    );
    return result.Item === undefined ? undefined : toEvent(result.Item);
  }

  /**
   * `next` as in the SQLite log: the id of the last event returned, or, on an empty page, the
   * `after` given (null when there was none): an empty page means "nothing new yet".
   *
   * Reads are consistent: an eventually consistent read may come from a replica behind the one
   * that served the previous page, and would then not know the cursor it handed out.
   */
  async list(partnerId: string, query: EventListQuery): Promise<Page<Event>> {
    let afterSeq = 0;
    if (query.after !== undefined) {
      const seq = await this.#seqOf(partnerId, query.after);
      if (seq === undefined) throw new CursorNotFoundError(query.after);
      afterSeq = seq;
    }
    const types = [...new Set(query.types ?? [])];
    const typeFilter = typeCondition(types);
    const conditions = [
      ...(typeFilter === undefined ? [] : [`(${typeFilter.expression})`]),
      ...(query.since === undefined ? [] : ['#createdAt >= :since']),
    ];
    const input: QueryCommandInput = {
      TableName: this.tableName,
      KeyConditionExpression: '#pk = :pk AND #sk BETWEEN :from AND :to',
      ...(conditions.length === 0 ? {} : { FilterExpression: conditions.join(' AND ') }),
      ExpressionAttributeNames: {
        ...attributeNames('pk', 'sk'),
        ...(typeFilter === undefined ? {} : attributeNames('type')),
        ...(query.since === undefined ? {} : attributeNames('createdAt')),
      },
      ExpressionAttributeValues: {
        ':pk': partnerId,
        ':from': eventKey(afterSeq + 1),
        ':to': EVENT_KEY_END,
        ...typeFilter?.values,
        ...(query.since === undefined ? {} : { ':since': query.since }),
      },
      ConsistentRead: true,
    };
    // A filter is applied after DynamoDB reads: a rare type could read the whole partition.
    // One page examines about maxExamined events at most; when that ends it early, `next` is the
    // last event examined, so the next poll goes on from there instead of reading it again.
    const items: Item[] = [];
    let examined = 0;
    let startKey: QueryCommandInput['ExclusiveStartKey'];
    do {
      const page = await this.#client.send(
        new QueryCommand({
          ...input,
          Limit:
            conditions.length === 0
              ? query.limit - items.length
              : Math.min(FILTERED_PAGE_SIZE, this.#maxExamined - examined),
          ...(startKey === undefined ? {} : { ExclusiveStartKey: startKey }),
        }),
      );
      items.push(...(page.Items ?? []));
      examined += page.ScannedCount ?? 0;
      startKey = page.LastEvaluatedKey;
    } while (startKey !== undefined && items.length < query.limit && examined < this.#maxExamined);
    const events = items.slice(0, query.limit).map(toEvent);
    if (events.length < query.limit && startKey !== undefined) {
      const last = await this.#client.send(
        new GetCommand({
          TableName: this.tableName,
          Key: { pk: partnerId, sk: startKey.sk },
          ConsistentRead: true,
        }),
      );
      const id = last.Item === undefined ? undefined : EventId.safeParse(last.Item.id).data;
      if (id !== undefined) return { items: events, next: id };
    }
    return { items: events, next: events.at(-1)?.id ?? query.after ?? null };
  }

  #appendTransaction(
    event: Event,
    eventItem: Item,
    previous: number,
    expiresAt: number,
  ): TransactWriteCommandInput {
    const table = this.tableName;
    const seq = previous + 1;
    // Index order matters: append() reads the cancellation reasons by position.
    return {
      // The SDK retries a request whose response was lost; without a token, a retry of a
      // transaction that did commit would fail on the counter it moved itself, and the loop
      // in append() would store the event a second time under the next seq.
      ClientRequestToken: randomUUID(),
      TransactItems: [
        previous === 0
          ? {
              Put: {
                TableName: table,
                Item: { pk: event.partnerId, sk: COUNTER_SK, kind: 'counter', seq },
                ConditionExpression: 'attribute_not_exists(pk)',
              },
            }
          : {
              Update: {
                TableName: table,
                Key: { pk: event.partnerId, sk: COUNTER_SK },
                UpdateExpression: 'SET #seq = :next',
                ConditionExpression: '#seq = :previous',
                ExpressionAttributeNames: attributeNames('seq'),
                ExpressionAttributeValues: { ':next': seq, ':previous': previous },
              },
            },
        {
          Put: { TableName: table, Item: eventItem, ConditionExpression: 'attribute_not_exists(pk)' },
        },
        {
          Put: {
            TableName: table,
            Item: { pk: event.partnerId, sk: idKey(event.id), kind: 'eventId', seq, expiresAt },
            ConditionExpression: 'attribute_not_exists(pk)',
          },
        },
        ...(event.idempotencyKey === undefined
          ? []
          : [
              {
                Put: {
                  TableName: table,
                  Item: {
                    pk: event.partnerId,
                    sk: idempotencyKeyKey(event.idempotencyKey),
                    kind: 'idempotencyKey',
                    eventId: event.id,
                    expiresAt,
                  },
                  ConditionExpression: 'attribute_not_exists(pk)',
                },
              },
            ]),
      ],
    };
  }

  /** The partner's last seq, 0 before its first event. */
  async #counter(partnerId: string): Promise<number> {
    const result = await this.#client.send(
      new GetCommand({
        TableName: this.tableName,
        Key: { pk: partnerId, sk: COUNTER_SK },
        ConsistentRead: true,
      }),
    );
    return result.Item === undefined ? 0 : Counter.parse(result.Item).seq;
  }

  /** The event's seq, or undefined when it is not one of this partner's events. */
  async #seqOf(partnerId: string, eventId: string): Promise<number | undefined> {
    const result = await this.#client.send(
      new GetCommand({
        TableName: this.tableName,
        Key: { pk: partnerId, sk: idKey(eventId) },
        ConsistentRead: true,
      }),
    );
    return result.Item === undefined ? undefined : IdPointer.parse(result.Item).seq;
  }

  async #byIdempotencyKey(partnerId: string, key: string): Promise<Event | undefined> {
    const result = await this.#client.send(
      new GetCommand({
        TableName: this.tableName,
        Key: { pk: partnerId, sk: idempotencyKeyKey(key) },
        ConsistentRead: true,
      }),
    );
    if (result.Item === undefined) return undefined;
    return this.get(partnerId, IdempotencyPointer.parse(result.Item).eventId);
  }
}

/** `#type IN (…)` in chunks of at most 100 operands, or undefined for every type. */
function typeCondition(types: readonly string[]): { expression: string; values: Item } | undefined {
  if (types.length === 0) return undefined;
  const values: Item = {};
  const chunks: string[] = [];
  for (let start = 0; start < types.length; start += MAX_IN_OPERANDS) {
    const names = types.slice(start, start + MAX_IN_OPERANDS).map((type, i) => {
      const name = `:t${start + i}`;
      values[name] = type;
      return name;
    });
    chunks.push(`#type IN (${names.join(', ')})`);
  }
  return { expression: chunks.join(' OR '), values };
}
