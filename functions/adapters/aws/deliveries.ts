/**
 * Deliveries and their attempts on DynamoDB (the deliveries table of tables.ts). A delivery id
 * ends with its event's tag (eventTag), and an event's deliveries are kept together under it:
 * - `EVD#<tag>` / `<id>`: the delivery, carrying `gsiSubscriptionId` for the bySubscription
 *   index (attempt items do not, so the index holds deliveries only). A fan-out delivery's id
 *   is derived from its (event, subscription) pair (fanoutDeliveryId), so the put that creates
 *   it only if absent is all it takes to keep a retried fan-out from creating a second one.
 *   The delivery's first recorded try is kept on it, as `firstAttempt`;
 * - `EVD#<tag>` / `<id>#A#<number, 6 digits>#<attemptId>`: its other attempts (a later try, or
 *   a second copy of one message tried at the same time), oldest first in key order.
 * Listing an event's deliveries is a query of its tag's partition (another event with the same
 * tag, one in a billion, is filtered out); reading one by id is a get, the key being in the id.
 *
 * Deliveries stored before ids had a tag keep their layout, `DLV#<id>` / `DELIVERY` and
 * `DLV#<id>` / `ATTEMPT#…`, and their `gsiEventId` entry in the byEvent index, which lists
 * them by event; nothing writes that index any more, and it empties as they expire.
 *
 * What a callback costs in writes is the point of this layout: its delivery is one put (at its
 * first try, with the try on it) and one entry in the bySubscription index, which holds only
 * keys. A later try writes its attempt item and the delivery's new state in one transaction;
 * neither changes a key or a projected attribute, so no index entry is written. Listing by subscription reads the page's keys from
 * the index and the deliveries themselves by key, so it works whatever the index projects.
 */
import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { eventTag, eventTagOf, fanoutDeliveryId } from '../../core/fanout.ts';
import { TAG_CHARS } from '../../core/ids.ts';
import { Attempt, Delivery, type Page, type SkippedReason } from '../../core/model.ts';
import type { Clock, DeliveryStore, ListQuery } from '../../core/ports.ts';
import { systemClock } from '../clock.ts';
import { pageOfLookahead } from '../paging.ts';
import {
  attributeNames,
  batchGetItems,
  cancellationCodes,
  compact,
  conditionFailed,
  expiresAt,
  type Item,
  isConditionFailure,
  putIfAbsent,
  queryUpTo,
} from './dynamo.ts';
import { seqInId } from './events.ts';

export const BY_SUBSCRIPTION_INDEX = 'bySubscription';
export const BY_EVENT_INDEX = 'byEvent';

/** The sort key of a delivery stored before ids had a tag, and the prefix of its attempts'. */
const LEGACY_DELIVERY_SK = 'DELIVERY';
const LEGACY_ATTEMPT_PREFIX = 'ATTEMPT#';
/** Between a delivery's id and its attempt's number, in the sort key of its attempt items. */
const ATTEMPT_INFIX = '#A#';
const ATTEMPT_DIGITS = 6;
/** The delivery item's attribute holding its first recorded try. */
const FIRST_ATTEMPT = 'firstAttempt';
/** Items a filtered query of an event's partition reads at a time, at least. */
const FILTERED_PAGE_SIZE = 100;

/** A delivery's id and key, and the item when the listing has read it already. */
interface StoredKey {
  id: string;
  pk: string;
  sk: string;
  item?: Item;
}

const storedKey = ({ pk, sk }: { pk: string; sk: string }) => `${pk}\n${sk}`;

/** The id a fan-out delivery had before ids ended with their event's tag. */
const untagged = (deliveryId: string) => deliveryId.slice(0, deliveryId.length - TAG_CHARS);

/** The partition of an event's deliveries. */
const tagPk = (tag: string) => `EVD#${tag}`;

function deliveryKey(deliveryId: string): { pk: string; sk: string } {
  const tag = eventTagOf(deliveryId);
  return tag === undefined
    ? { pk: `DLV#${deliveryId}`, sk: LEGACY_DELIVERY_SK }
    : { pk: tagPk(tag), sk: deliveryId };
}

function attemptKey(deliveryId: string, number: number, attemptId: string): { pk: string; sk: string } {
  const place = `${String(number).padStart(ATTEMPT_DIGITS, '0')}#${attemptId}`;
  const tag = eventTagOf(deliveryId);
  return tag === undefined
    ? { pk: `DLV#${deliveryId}`, sk: `${LEGACY_ATTEMPT_PREFIX}${place}` }
    : { pk: tagPk(tag), sk: `${deliveryId}${ATTEMPT_INFIX}${place}` };
}

// Delivery's and Attempt's zod objects drop pk, sk, kind, the index keys and firstAttempt.
const toDelivery = (item: Item): Delivery => Delivery.parse(item);
const toAttempt = (item: Item): Attempt => Attempt.parse(item);

/**
 * The attempt as kept on its delivery: without the ids the delivery item has already (only
 * one that differs from the delivery's is kept).
 */
function firstAttemptOf(attempt: Attempt, delivery: Delivery): Item {
  const { deliveryId: _delivery, subscriptionId, partnerId, ...rest } = attempt;
  return compact({
    ...rest,
    ...(subscriptionId === delivery.subscriptionId ? {} : { subscriptionId }),
    ...(partnerId === delivery.partnerId ? {} : { partnerId }),
  });
}

/** The first attempt kept on a delivery item, if it has one. */
function firstAttemptIn(item: Item): Attempt | undefined {
  const kept = item[FIRST_ATTEMPT];
  if (typeof kept !== 'object' || kept === null) return undefined;
  return toAttempt({
    subscriptionId: item.subscriptionId,
    partnerId: item.partnerId,
    ...kept,
    deliveryId: item.id,
  });
}

/** Oldest first: by number, then by id (ULIDs, so by time), as the attempt items' keys sort. */
function byNumberThenId(a: Attempt, b: Attempt): number {
  return a.number - b.number || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** A fan-out delivery, with the id of its (event, subscription) pair: what makes its put idempotent. */
function assertFanoutId(delivery: Delivery): void {
  if (
    delivery.origin !== 'fanout' ||
    delivery.id !== fanoutDeliveryId(delivery.eventId, delivery.subscriptionId)
  ) {
    throw new Error(
      `fan-out delivery ${delivery.id} does not have the id of its pair (${delivery.eventId}, ${delivery.subscriptionId})`,
    );
  }
}

function deliveryItem(delivery: Delivery, expiresAt: number): Item {
  return {
    ...compact(delivery),
    ...deliveryKey(delivery.id),
    kind: 'delivery',
    gsiSubscriptionId: delivery.subscriptionId,
    // Only the layout from before tags is listed by event through the index.
    ...(eventTagOf(delivery.id) === undefined ? { gsiEventId: delivery.eventId } : {}),
    expiresAt,
  };
}

export interface DynamoDeliveryStoreOptions {
  /**
   * Days after their writing when TTL deletes deliveries and attempts: the events they are
   * about are gone by then too. @default 30
   */
  retentionDays?: number;
  /** @default systemClock */
  clock?: Clock;
}

export class DynamoDeliveryStore implements DeliveryStore {
  readonly tableName: string;
  readonly #client: DynamoDBDocumentClient;

  readonly #retentionDays: number;
  readonly #clock: Clock;

  constructor(client: DynamoDBDocumentClient, tableName: string, options: DynamoDeliveryStoreOptions = {}) {
    this.#client = client;
    this.tableName = tableName;
    this.#retentionDays = options.retentionDays ?? 30;
    this.#clock = options.clock ?? systemClock;
  }

  /** The TTL of an item written now. */
  #expiresAt(): number {
    return expiresAt(this.#clock, this.#retentionDays);
  }

  /**
   * One put per delivery, only if its id is new, side by side. Fan-out ids are derived from
   * the pair, so an existing id is the pair's delivery, returned as it is now.
   */
  async createForEvent(deliveries: Delivery[]): Promise<Delivery[]> {
    return Promise.all(deliveries.map((delivery) => this.#createOne(delivery)));
  }

  /** Plain puts, each only if its id is new (a new id per request): any number per pair. */
  async create(deliveries: Delivery[]): Promise<void> {
    await Promise.all(
      deliveries.map((delivery) => {
        if (delivery.origin === 'fanout') throw new Error('fan-out deliveries are created by createForEvent');
        return this.#client.send(
          new PutCommand({
            TableName: this.tableName,
            Item: deliveryItem(delivery, this.#expiresAt()),
            ConditionExpression: 'attribute_not_exists(pk)',
          }),
        );
      }),
    );
  }

  async get(deliveryId: string): Promise<Delivery | undefined> {
    const result = await this.#client.send(
      new GetCommand({ TableName: this.tableName, Key: deliveryKey(deliveryId), ConsistentRead: true }),
    );
    return result.Item === undefined ? undefined : toDelivery(result.Item);
  }

  /**
   * The delivery's first try (number 1): one update of the delivery item, which records its
   * new state and keeps the attempt on it, on the condition that the delivery exists, has not
   * succeeded and has recorded no try yet. Any other try (or when that condition fails): the attempt as an
   * item of its own, and in the same transaction the delivery's mutable fields (its identity
   * never changes), on the condition that the delivery exists, has not succeeded and has not
   * recorded this try or a later one. When that condition fails, a success still wins over a
   * failure recorded for the same try by another copy of its message; otherwise only the
   * attempt is stored, for the log. For an unknown delivery nothing is stored.
   */
  async recordAttempt(attempt: Attempt, delivery: Delivery): Promise<void> {
    if (attempt.deliveryId !== delivery.id) {
      throw new Error(`attempt ${attempt.id} belongs to delivery ${attempt.deliveryId}, not ${delivery.id}`);
    }
    // A later try cannot be kept as the first: no update that would only be refused (and billed).
    if (attempt.number === 1) {
      try {
        await this.#client.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: deliveryKey(delivery.id),
            ...this.#stateUpdate(delivery, {
              number: attempt.number,
              first: firstAttemptOf(attempt, delivery),
            }),
          }),
        );
        return;
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
      }
    }
    const attemptPut = {
      Put: {
        TableName: this.tableName,
        Item: {
          ...compact(attempt),
          ...attemptKey(attempt.deliveryId, attempt.number, attempt.id),
          kind: 'attempt',
          expiresAt: this.#expiresAt(),
        },
      },
    };
    const stateUpdate = (condition?: { number: number }) => ({
      Update: {
        TableName: this.tableName,
        Key: deliveryKey(delivery.id),
        ...this.#stateUpdate(delivery, condition),
      },
    });
    try {
      await this.#client.send(
        new TransactWriteCommand({ TransactItems: [attemptPut, stateUpdate({ number: attempt.number })] }),
      );
      return;
    } catch (error) {
      const codes = cancellationCodes(error);
      if (codes === undefined || !conditionFailed(codes, 1)) throw error;
    }
    const current = await this.get(delivery.id);
    if (current === undefined) throw new Error(`delivery ${delivery.id} not found`);
    if (delivery.status === 'succeeded' && current.status !== 'succeeded') {
      try {
        await this.#client.send(new TransactWriteCommand({ TransactItems: [attemptPut, stateUpdate()] }));
        return;
      } catch (error) {
        const codes = cancellationCodes(error);
        if (codes === undefined || !conditionFailed(codes, 1)) throw error;
      }
    }
    await this.#client.send(new PutCommand({ TableName: this.tableName, Item: attemptPut.Put.Item }));
  }

  /**
   * One put of the delivery as its first try left it, keeping the try on it (as recordAttempt
   * keeps a first try), only if the id is new; otherwise recordAttempt. With indexes that hold
   * only keys, this is the delivery's one write and its one entry in each index.
   */
  async createWithAttempt(attempt: Attempt, delivery: Delivery): Promise<void> {
    if (attempt.deliveryId !== delivery.id) {
      throw new Error(`attempt ${attempt.id} belongs to delivery ${attempt.deliveryId}, not ${delivery.id}`);
    }
    assertFanoutId(delivery);
    const item = {
      ...deliveryItem(delivery, this.#expiresAt()),
      [FIRST_ATTEMPT]: firstAttemptOf(attempt, delivery),
    };
    if (!(await putIfAbsent(this.#client, this.tableName, item))) await this.recordAttempt(attempt, delivery);
  }

  /**
   * The update of recordAttempt: status, next and last try, and no skippedReason (a skipped
   * delivery tried after all is skipped no more), on a delivery that exists and has not
   * succeeded. With `number`, `attempts` becomes the try's number, only while the delivery has
   * recorded no try that late; with `first` as well, only while it has recorded none at all,
   * and `first` is kept on it as its first attempt. Without either (a success over a copy's
   * failure of the same try), whatever the count.
   */
  #stateUpdate(delivery: Delivery, record?: { number: number; first?: Item }) {
    const set = ['#status = :status', '#updatedAt = :updatedAt'];
    const remove: string[] = [];
    const values: Item = {
      ':status': delivery.status,
      ':updatedAt': delivery.updatedAt,
      ':succeeded': 'succeeded',
    };
    // A skipped delivery tried after all is skipped no more; one skipped by its try (a 410)
    // says why.
    if (delivery.skippedReason === undefined) {
      remove.push('#skippedReason');
    } else {
      set.push('#skippedReason = :skippedReason');
      values[':skippedReason'] = delivery.skippedReason;
    }
    const fields = ['lastAttemptAt', 'nextAttemptAt'] as const;
    for (const field of fields) {
      const value = delivery[field];
      if (value === undefined) {
        remove.push(`#${field}`);
      } else {
        set.push(`#${field} = :${field}`);
        values[`:${field}`] = value;
      }
    }
    let condition = 'attribute_exists(pk) AND #status <> :succeeded';
    if (record !== undefined) {
      set.push('#attempts = :number');
      values[':number'] = record.number;
      if (record.first === undefined) {
        condition += ' AND (attribute_not_exists(#attempts) OR #attempts < :number)';
      } else {
        set.push(`#${FIRST_ATTEMPT} = :first`);
        values[':first'] = record.first;
        values[':none'] = 0;
        condition += ' AND #attempts = :none';
      }
    }
    return {
      UpdateExpression: `SET ${set.join(', ')}${remove.length > 0 ? ` REMOVE ${remove.join(', ')}` : ''}`,
      ConditionExpression: condition,
      // DynamoDB refuses a name that the expressions do not use: name only these.
      ExpressionAttributeNames: attributeNames(
        'status',
        'updatedAt',
        'skippedReason',
        ...fields,
        ...(record === undefined ? [] : ['attempts']),
        ...(record?.first === undefined ? [] : [FIRST_ATTEMPT]),
      ),
      ExpressionAttributeValues: values,
    };
  }

  async skip(deliveryId: string, reason: SkippedReason, at: string): Promise<boolean> {
    try {
      await this.#client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: deliveryKey(deliveryId),
          UpdateExpression:
            'SET #status = :skipped, #skippedReason = :reason, #updatedAt = :at REMOVE #nextAttemptAt',
          ConditionExpression: 'attribute_exists(pk) AND #status <> :succeeded',
          ExpressionAttributeNames: attributeNames('status', 'skippedReason', 'updatedAt', 'nextAttemptAt'),
          ExpressionAttributeValues: {
            ':skipped': 'skipped',
            ':reason': reason,
            ':at': at,
            ':succeeded': 'succeeded',
          },
        }),
      );
      return true;
    } catch (error) {
      // Unknown, or it succeeded: either way there is nothing to skip.
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  /**
   * Newest first, by id (ULIDs sort by creation time): the page's keys from the bySubscription
   * index, which like every global index is eventually consistent, then the deliveries
   * themselves, read consistently. One extra key is read to tell whether another page exists:
   * `next` is null on the last page.
   */
  async listBySubscription(subscriptionId: string, query: ListQuery): Promise<Page<Delivery>> {
    const keys = await this.#indexKeys(BY_SUBSCRIPTION_INDEX, 'gsiSubscriptionId', subscriptionId, query);
    return this.#pageOf(keys, query);
  }

  /**
   * Newest first, paged as listBySubscription: the deliveries under the event's tag, one
   * consistent query of its partition (its attempts, and another event's deliveries under the
   * same tag, filtered out), and those stored before ids had a tag, through the byEvent index.
   * Only the partner's: event ids are unique within a partner's log.
   */
  async listByEvent(partnerId: string, eventId: string, query: ListQuery): Promise<Page<Delivery>> {
    const after = query.after;
    const [tagged, legacy] = await Promise.all([
      queryUpTo(
        this.#client,
        {
          TableName: this.tableName,
          KeyConditionExpression: after === undefined ? '#pk = :pk' : '#pk = :pk AND #sk < :after',
          FilterExpression: '#kind = :delivery AND #eventId = :eventId AND #partnerId = :partnerId',
          ExpressionAttributeNames: attributeNames(
            'pk',
            ...(after === undefined ? [] : ['sk']),
            'kind',
            'eventId',
            'partnerId',
          ),
          ExpressionAttributeValues: {
            ':pk': tagPk(eventTag(eventId)),
            ':delivery': 'delivery',
            ':eventId': eventId,
            ':partnerId': partnerId,
            ...(after === undefined ? {} : { ':after': after }),
          },
          ScanIndexForward: false,
          ConsistentRead: true,
        },
        query.limit + 1,
        // Attempt items share the partition: read enough at a time that they cost no round trips.
        FILTERED_PAGE_SIZE,
      ),
      this.#indexKeys(BY_EVENT_INDEX, 'gsiEventId', eventId, query),
    ]);
    const rows: StoredKey[] = [
      ...tagged.map((item) => ({ id: String(item.id), pk: String(item.pk), sk: String(item.sk), item })),
      ...legacy,
    ].sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
    const page = await this.#pageOf(rows.slice(0, query.limit + 1), query);
    return { ...page, items: page.items.filter((delivery) => delivery.partnerId === partnerId) };
  }

  /** Up to a page and one of an index's keys for `value`, newest first, before `after`. */
  async #indexKeys(
    indexName: string,
    keyName: string,
    value: string,
    query: ListQuery,
  ): Promise<StoredKey[]> {
    const keys = await queryUpTo(
      this.#client,
      {
        TableName: this.tableName,
        IndexName: indexName,
        KeyConditionExpression:
          query.after === undefined ? `#${keyName} = :value` : `#${keyName} = :value AND #id < :after`,
        // Only the keys: the index holds no more, and the deliveries are read by key.
        ProjectionExpression: '#pk, #sk, #id',
        ExpressionAttributeNames: attributeNames(keyName, 'pk', 'sk', 'id'),
        ExpressionAttributeValues: {
          ':value': value,
          ...(query.after === undefined ? {} : { ':after': query.after }),
        },
        ScanIndexForward: false,
      },
      query.limit + 1,
    );
    return keys.map((key) => ({ id: String(key.id), pk: String(key.pk), sk: String(key.sk) }));
  }

  /** The page of these rows (a page and one, newest first), each read by key unless it was read. */
  async #pageOf(rows: readonly StoredKey[], query: ListQuery): Promise<Page<Delivery>> {
    const page = pageOfLookahead(rows, query, (row) => row);
    const found = await this.#deliveriesByKey(page.items.filter((row) => row.item === undefined));
    // A delivery that expired between the two reads is left out; the cursor still holds.
    return {
      items: page.items.flatMap((row) => {
        const item = row.item ?? found.get(storedKey(row));
        return item === undefined ? [] : [toDelivery(item)];
      }),
      next: page.next,
    };
  }

  /** Delivery items by key, consistently, in batches; unprocessed keys are asked again. */
  async #deliveriesByKey(rows: readonly StoredKey[]): Promise<Map<string, Item>> {
    const items = await batchGetItems(
      this.#client,
      this.tableName,
      rows.map(({ pk, sk }) => ({ pk, sk })),
    );
    return new Map(items.map((item) => [storedKey({ pk: String(item.pk), sk: String(item.sk) }), item]));
  }

  /**
   * Oldest first: the delivery's own first attempt and its attempt items, read together (they
   * share the delivery's partition, and under a tag their sort keys start with its id).
   */
  async listAttempts(deliveryId: string): Promise<Attempt[]> {
    const key = deliveryKey(deliveryId);
    const tagged = eventTagOf(deliveryId) !== undefined;
    const attempts: Attempt[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.#client.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: tagged ? '#pk = :pk AND begins_with(#sk, :id)' : '#pk = :pk',
          ExpressionAttributeNames: attributeNames('pk', ...(tagged ? ['sk'] : [])),
          ExpressionAttributeValues: { ':pk': key.pk, ...(tagged ? { ':id': deliveryId } : {}) },
          ConsistentRead: true,
          ...(startKey === undefined ? {} : { ExclusiveStartKey: startKey }),
        }),
      );
      for (const item of page.Items ?? []) {
        if (item.sk === key.sk) {
          const first = firstAttemptIn(item);
          if (first !== undefined) attempts.push(first);
        } else if (item.kind === 'attempt') {
          attempts.push(toAttempt(item));
        }
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey !== undefined);
    return attempts.sort(byNumberThenId);
  }

  async #createOne(delivery: Delivery): Promise<Delivery> {
    assertFanoutId(delivery);
    // An event from before ids said their place may have its delivery under the id it had
    // then: the same id without the tag, in the layout from before tags.
    if (seqInId(delivery.partnerId, delivery.eventId) === undefined) {
      const earlier = await this.get(untagged(delivery.id));
      if (earlier !== undefined) return earlier;
    }
    if (await putIfAbsent(this.#client, this.tableName, deliveryItem(delivery, this.#expiresAt())))
      return delivery;
    const existing = await this.get(delivery.id);
    if (existing === undefined) throw new Error(`delivery ${delivery.id} exists but could not be read`);
    return existing;
  }
}
