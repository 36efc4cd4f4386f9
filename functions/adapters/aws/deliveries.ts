/**
 * Deliveries and their attempts on DynamoDB (the deliveries table of tables.ts):
 * - `DLV#<id>` / `DELIVERY`: the delivery, carrying `gsiSubscriptionId` for the bySubscription
 *   index (attempt items do not, so the index holds deliveries only);
 * - `DLV#<id>` / `ATTEMPT#<number, 6 digits>#<attemptId>`: its attempts, oldest first in key
 *   order; the attempt id keeps both when two copies of one message are tried at once;
 * - `FANOUT#<eventId>#<subscriptionId>` / `FANOUT`: the (event, subscription) pair's delivery
 *   id. DynamoDB has no unique index on two attributes; this item, written only if absent in the
 *   delivery's own transaction, is what keeps a retried fan-out from creating a second delivery.
 */
import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  TransactWriteCommand,
  type TransactWriteCommandInput,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import * as z from 'zod';
import { Attempt, Delivery, DeliveryId, type Page, type SkippedReason } from '../../core/model.ts';
import { type Clock, type DeliveryStore, type ListQuery, pageOfLookahead, systemClock } from '../../ports.ts';
import {
  attributeNames,
  backoff,
  cancellationCodes,
  compact,
  conditionFailed,
  expiresAt,
  hasConflict,
  type Item,
  isConditionFailure,
  queryItems,
  queryUpTo,
} from './dynamo.ts';

export const BY_SUBSCRIPTION_INDEX = 'bySubscription';
export const BY_EVENT_INDEX = 'byEvent';

const DELIVERY_SK = 'DELIVERY';
const FANOUT_SK = 'FANOUT';
const ATTEMPT_PREFIX = 'ATTEMPT#';
const ATTEMPT_DIGITS = 6;
/** Tries of a fan-out transaction that collides with a concurrent one on the same pair. */
const CONFLICT_TRIES = 5;

const deliveryKey = (deliveryId: string) => ({ pk: `DLV#${deliveryId}`, sk: DELIVERY_SK });
const fanoutKey = (eventId: string, subscriptionId: string) => ({
  pk: `FANOUT#${eventId}#${subscriptionId}`,
  sk: FANOUT_SK,
});
const attemptKey = (deliveryId: string, number: number, attemptId: string) => ({
  pk: `DLV#${deliveryId}`,
  sk: `${ATTEMPT_PREFIX}${String(number).padStart(ATTEMPT_DIGITS, '0')}#${attemptId}`,
});

const FanoutPointer = z.object({ deliveryId: DeliveryId });

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
   * Days after their writing when TTL deletes deliveries, attempts and fan-out pointers: the
   * events they are about are gone by then too. @default 30
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
   * One transaction per delivery (the FANOUT# item and the delivery, both only if absent), run
   * side by side. When the pair's FANOUT# item exists, the delivery it names is returned as it
   * is now. Not one transaction for the whole batch: a single existing pair would cancel it all.
   */
  async createForEvent(deliveries: Delivery[]): Promise<Delivery[]> {
    return Promise.all(deliveries.map((delivery) => this.#createOne(delivery)));
  }

  /** Plain puts, each only if its id is new: no FANOUT# item, so any number per pair. */
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
   * The attempt and the delivery's mutable fields (its identity never changes) in one
   * transaction, on the condition that the delivery exists: for an unknown delivery nothing
   * is stored. An attempt stored again with the same number replaces the earlier one.
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
    const stateUpdate = (keepSuccess: boolean) => {
      // attempts is incremented in place; a success already stored is kept (then only the
      // count and the time of the last try change).
      const set = ['#updatedAt = :updatedAt'];
      const remove: string[] = [];
      const values: Item = { ':updatedAt': delivery.updatedAt, ':one': 1 };
      const fields = keepSuccess
        ? (['lastAttemptAt'] as const)
        : (['lastAttemptAt', 'nextAttemptAt'] as const);
      if (!keepSuccess) {
        set.push('#status = :status');
        values[':status'] = delivery.status;
        // A skipped delivery tried after all (a copy of its message) is skipped no more.
        remove.push('#skippedReason');
      }
      for (const field of fields) {
        const value = delivery[field];
        if (value === undefined) {
          remove.push(`#${field}`);
        } else {
          set.push(`#${field} = :${field}`);
          values[`:${field}`] = value;
        }
      }
      if (!keepSuccess) values[':succeeded'] = 'succeeded';
      return {
        Update: {
          TableName: this.tableName,
          Key: deliveryKey(delivery.id),
          UpdateExpression: `SET ${set.join(', ')} ADD #attempts :one${remove.length > 0 ? ` REMOVE ${remove.join(', ')}` : ''}`,
          ConditionExpression: keepSuccess
            ? 'attribute_exists(pk)'
            : 'attribute_exists(pk) AND #status <> :succeeded',
          // DynamoDB refuses a name that the expressions do not use: name only these.
          ExpressionAttributeNames: attributeNames(
            'attempts',
            'updatedAt',
            ...fields,
            ...(keepSuccess ? [] : ['status', 'skippedReason']),
          ),
          ExpressionAttributeValues: values,
        },
      };
    };
    for (const keepSuccess of [false, true]) {
      try {
        await this.#client.send(
          new TransactWriteCommand({ TransactItems: [attemptPut, stateUpdate(keepSuccess)] }),
        );
        return;
      } catch (error) {
        const codes = cancellationCodes(error);
        if (codes === undefined || !conditionFailed(codes, 1)) throw error;
        // Missing, or already succeeded: tell them apart, and for a success keep it.
        const current = await this.get(delivery.id);
        if (current === undefined) throw new Error(`delivery ${delivery.id} not found`, { cause: error });
      }
    }
    throw new Error(`delivery ${delivery.id}: the attempt could not be recorded`);
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
    const input: TransactWriteCommandInput = {
      TransactItems: [
        {
          Put: {
            TableName: this.tableName,
            Item: {
              ...fanoutKey(delivery.eventId, delivery.subscriptionId),
              kind: 'fanout',
              deliveryId: delivery.id,
              expiresAt: this.#expiresAt(),
            },
            ConditionExpression: 'attribute_not_exists(pk)',
          },
        },
        {
          Put: {
            TableName: this.tableName,
            Item: deliveryItem(delivery, this.#expiresAt()),
            ConditionExpression: 'attribute_not_exists(pk)',
          },
        },
      ],
    };
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#client.send(new TransactWriteCommand(input));
        return delivery;
      } catch (error) {
        const codes = cancellationCodes(error);
        if (codes === undefined) throw error;
        if (conditionFailed(codes, 0)) return this.#existing(delivery);
        if (conditionFailed(codes, 1)) {
          throw new Error(`delivery ${delivery.id} already exists for another pair`, { cause: error });
        }
        // A concurrent fan-out of the same event is writing the pair: once it commits, the
        // next try finds its FANOUT# item.
        if (!hasConflict(codes) || attempt >= CONFLICT_TRIES) throw error;
        await backoff(attempt, 10, 200);
      }
    }
  }

  async #existing(wanted: Delivery): Promise<Delivery> {
    const pointer = await this.#client.send(
      new GetCommand({
        TableName: this.tableName,
        Key: fanoutKey(wanted.eventId, wanted.subscriptionId),
        ConsistentRead: true,
      }),
    );
    if (pointer.Item === undefined) {
      throw new Error(`fan-out of event ${wanted.eventId} to ${wanted.subscriptionId} vanished`);
    }
    const deliveryId = FanoutPointer.parse(pointer.Item).deliveryId;
    const existing = await this.get(deliveryId);
    if (existing === undefined) {
      throw new Error(
        `delivery ${deliveryId} of event ${wanted.eventId} to ${wanted.subscriptionId} is missing`,
      );
    }
    return existing;
  }
}
