/**
 * Deliveries and their attempts on DynamoDB (the deliveries table of tables.ts):
 * - `DLV#<id>` / `DELIVERY`: the delivery, carrying `gsiSubscriptionId` for the bySubscription
 *   index (attempt items do not, so the index holds deliveries only). A fan-out delivery's id
 *   is derived from its (event, subscription) pair (fanoutDeliveryId), so the put that creates
 *   it only if absent is all it takes to keep a retried fan-out from creating a second one;
 * - `DLV#<id>` / `ATTEMPT#<number, 6 digits>#<attemptId>`: its attempts, oldest first in key
 *   order; the attempt id keeps both when two copies of one message are tried at once.
 */
import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { fanoutDeliveryId } from '../../core/fanout.ts';
import { Attempt, Delivery, type Page, type SkippedReason } from '../../core/model.ts';
import { type Clock, type DeliveryStore, type ListQuery, pageOfLookahead, systemClock } from '../../ports.ts';
import {
  attributeNames,
  cancellationCodes,
  compact,
  conditionFailed,
  expiresAt,
  type Item,
  isConditionFailure,
  queryItems,
  queryUpTo,
} from './dynamo.ts';

export const BY_SUBSCRIPTION_INDEX = 'bySubscription';
export const BY_EVENT_INDEX = 'byEvent';

const DELIVERY_SK = 'DELIVERY';
const ATTEMPT_PREFIX = 'ATTEMPT#';
const ATTEMPT_DIGITS = 6;

const deliveryKey = (deliveryId: string) => ({ pk: `DLV#${deliveryId}`, sk: DELIVERY_SK });
const attemptKey = (deliveryId: string, number: number, attemptId: string) => ({
  pk: `DLV#${deliveryId}`,
  sk: `${ATTEMPT_PREFIX}${String(number).padStart(ATTEMPT_DIGITS, '0')}#${attemptId}`,
});

// Delivery's and Attempt's zod objects drop pk, sk, kind and gsiSubscriptionId.
const toDelivery = (item: Item): Delivery => Delivery.parse(item);
const toAttempt = (item: Item): Attempt => Attempt.parse(item);

function deliveryItem(delivery: Delivery, expiresAt: number): Item {
  return {
    ...compact(delivery),
    ...deliveryKey(delivery.id),
    kind: 'delivery',
    gsiSubscriptionId: delivery.subscriptionId,
    gsiEventId: delivery.eventId,
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
   * The attempt, and in the same transaction the delivery's mutable fields (its identity
   * never changes), on the condition that the delivery exists, has not succeeded and has not
   * recorded this try or a later one. When that condition fails, a success still wins over a
   * failure recorded for the same try by another copy of its message; otherwise only the
   * attempt is stored, for the log. For an unknown delivery nothing is stored.
   */
  async recordAttempt(attempt: Attempt, delivery: Delivery): Promise<void> {
    if (attempt.deliveryId !== delivery.id) {
      throw new Error(`attempt ${attempt.id} belongs to delivery ${attempt.deliveryId}, not ${delivery.id}`);
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
    try {
      await this.#client.send(
        new TransactWriteCommand({
          TransactItems: [attemptPut, this.#stateUpdate(delivery, attempt.number)],
        }),
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
        await this.#client.send(
          new TransactWriteCommand({ TransactItems: [attemptPut, this.#stateUpdate(delivery)] }),
        );
        return;
      } catch (error) {
        const codes = cancellationCodes(error);
        if (codes === undefined || !conditionFailed(codes, 1)) throw error;
      }
    }
    await this.#client.send(new PutCommand({ TableName: this.tableName, Item: attemptPut.Put.Item }));
  }

  /**
   * The update of recordAttempt: status, next and last try, `attempts` = the try's number,
   * and no skippedReason (a skipped delivery tried after all is skipped no more). With
   * `number`, only while the delivery has recorded no try that late; without it (a success
   * over a copy's failure of the same try), whatever the count.
   */
  #stateUpdate(delivery: Delivery, number?: number) {
    const set = ['#status = :status', '#updatedAt = :updatedAt'];
    const remove = ['#skippedReason'];
    const values: Item = {
      ':status': delivery.status,
      ':updatedAt': delivery.updatedAt,
      ':succeeded': 'succeeded',
    };
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
    if (number !== undefined) {
      set.push('#attempts = :number');
      values[':number'] = number;
      condition += ' AND (attribute_not_exists(#attempts) OR #attempts < :number)';
    }
    return {
      Update: {
        TableName: this.tableName,
        Key: deliveryKey(delivery.id),
        UpdateExpression: `SET ${set.join(', ')} REMOVE ${remove.join(', ')}`,
        ConditionExpression: condition,
        // DynamoDB refuses a name that the expressions do not use: name only these.
        ExpressionAttributeNames: attributeNames(
          'status',
          'updatedAt',
          'skippedReason',
          ...fields,
          ...(number === undefined ? [] : ['attempts']),
        ),
        ExpressionAttributeValues: values,
      },
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
   * Newest first, by id (ULIDs sort by creation time), through the bySubscription index, which
   * like every global index is eventually consistent. One extra item is read to tell whether
   * another page exists: `next` is null on the last page.
   */
  listBySubscription(subscriptionId: string, query: ListQuery): Promise<Page<Delivery>> {
    return this.#newestFirst(BY_SUBSCRIPTION_INDEX, 'gsiSubscriptionId', subscriptionId, query);
  }

  /** Newest first, through the byEvent index, paged as listBySubscription. */
  listByEvent(eventId: string, query: ListQuery): Promise<Page<Delivery>> {
    return this.#newestFirst(BY_EVENT_INDEX, 'gsiEventId', eventId, query);
  }

  async #newestFirst(
    indexName: string,
    keyName: string,
    value: string,
    query: ListQuery,
  ): Promise<Page<Delivery>> {
    const items = await queryUpTo(
      this.#client,
      {
        TableName: this.tableName,
        IndexName: indexName,
        KeyConditionExpression:
          query.after === undefined ? `#${keyName} = :value` : `#${keyName} = :value AND #id < :after`,
        ExpressionAttributeNames: attributeNames(keyName, ...(query.after === undefined ? [] : ['id'])),
        ExpressionAttributeValues: {
          ':value': value,
          ...(query.after === undefined ? {} : { ':after': query.after }),
        },
        ScanIndexForward: false,
      },
      query.limit + 1,
    );
    return pageOfLookahead(items, query, toDelivery);
  }

  /** Oldest first: the sort key orders attempts by number. */
  async listAttempts(deliveryId: string): Promise<Attempt[]> {
    const attempts: Attempt[] = [];
    for await (const item of queryItems(this.#client, {
      TableName: this.tableName,
      KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :prefix)',
      ExpressionAttributeNames: attributeNames('pk', 'sk'),
      ExpressionAttributeValues: { ':pk': deliveryKey(deliveryId).pk, ':prefix': ATTEMPT_PREFIX },
      ConsistentRead: true,
    })) {
      attempts.push(toAttempt(item));
    }
    return attempts;
  }

  async #createOne(delivery: Delivery): Promise<Delivery> {
    if (delivery.id !== fanoutDeliveryId(delivery.eventId, delivery.subscriptionId)) {
      throw new Error(
        `fan-out delivery ${delivery.id} does not have the id of its pair (${delivery.eventId}, ${delivery.subscriptionId})`,
      );
    }
    try {
      await this.#client.send(
        new PutCommand({
          TableName: this.tableName,
          Item: deliveryItem(delivery, this.#expiresAt()),
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      return delivery;
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
    }
    const existing = await this.get(delivery.id);
    if (existing === undefined) throw new Error(`delivery ${delivery.id} exists but could not be read`);
    return existing;
  }
}
