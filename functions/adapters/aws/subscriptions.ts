/**
 * Subscriptions on DynamoDB (the subscriptions table of tables.ts): one item per subscription
 * keyed by id, listed per partner through the byPartner index (partnerId, id).
 *
 * The index is eventually consistent (a global secondary index cannot be read consistently):
 * on AWS a subscription just put can be missing from `list` and `listActive` for a moment.
 */
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { StaleWriteError } from '../../core/errors.ts';
import { type Page, Subscription } from '../../core/model.ts';
import type { HealthChange, HealthUpdate, ListQuery, SubscriptionStore } from '../../ports.ts';
import { attributeNames, compact, type Item, queryItems, queryUpTo } from './dynamo.ts';

export const BY_PARTNER_INDEX = 'byPartner';

function toSubscription(item: Item): Subscription {
  // Subscription's zod object drops kind.
  return Subscription.parse(item);
}

export class DynamoSubscriptionStore implements SubscriptionStore {
  readonly tableName: string;
  readonly #client: DynamoDBDocumentClient;

  constructor(client: DynamoDBDocumentClient, tableName: string) {
    this.#client = client;
    this.tableName = tableName;
  }

  /** A whole-item put, so fields absent from the new version are gone from the stored one. */
  async put(subscription: Subscription, options: { expectedUpdatedAt?: string } = {}): Promise<void> {
    const expected = options.expectedUpdatedAt;
    try {
      await this.#client.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...compact(subscription), kind: 'subscription' },
          // Only the version read: an item changed or deleted since is not written.
          ...(expected === undefined
            ? {}
            : {
                ConditionExpression: '#updatedAt = :expected',
                ExpressionAttributeNames: attributeNames('updatedAt'),
                ExpressionAttributeValues: { ':expected': expected },
              }),
        }),
      );
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) {
        throw new StaleWriteError(`subscription ${subscription.id} changed meanwhile`);
      }
      throw error;
    }
  }

  async get(subscriptionId: string): Promise<Subscription | undefined> {
    const result = await this.#client.send(
      new GetCommand({ TableName: this.tableName, Key: { id: subscriptionId }, ConsistentRead: true }),
    );
    return result.Item === undefined ? undefined : toSubscription(result.Item);
  }

  /**
   * In id order (creation order: ULIDs). The cursor is only compared, in the key condition,
   * never looked up, so paging survives the deletion of the subscription it names. One extra
   * item is read to tell whether another page exists: `next` is null on the last page.
   */
  async list(partnerId: string, query: ListQuery): Promise<Page<Subscription>> {
    const items = await queryUpTo(
      this.#client,
      {
        TableName: this.tableName,
        IndexName: BY_PARTNER_INDEX,
        KeyConditionExpression:
          query.after === undefined ? '#partnerId = :partnerId' : '#partnerId = :partnerId AND #id > :after',
        ExpressionAttributeNames: attributeNames('partnerId', ...(query.after === undefined ? [] : ['id'])),
        ExpressionAttributeValues: {
          ':partnerId': partnerId,
          ...(query.after === undefined ? {} : { ':after': query.after }),
        },
      },
      query.limit + 1,
    );
    const page = items.slice(0, query.limit).map(toSubscription);
    return { items: page, next: items.length > query.limit ? (page.at(-1)?.id ?? null) : null };
  }

  async listActive(partnerId: string): Promise<Subscription[]> {
    const active: Subscription[] = [];
    for await (const item of queryItems(this.#client, {
      TableName: this.tableName,
      IndexName: BY_PARTNER_INDEX,
      KeyConditionExpression: '#partnerId = :partnerId',
      FilterExpression: '#status = :active',
      ExpressionAttributeNames: attributeNames('partnerId', 'status'),
      ExpressionAttributeValues: { ':partnerId': partnerId, ':active': 'active' },
    })) {
      active.push(toSubscription(item));
    }
    return active;
  }

  async delete(subscriptionId: string): Promise<boolean> {
    const result = await this.#client.send(
      new DeleteCommand({ TableName: this.tableName, Key: { id: subscriptionId }, ReturnValues: 'ALL_OLD' }),
    );
    return result.Attributes !== undefined;
  }

  async updateHealth(subscriptionId: string, change: HealthChange): Promise<HealthUpdate | undefined> {
    try {
      const result = await this.#client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { id: subscriptionId },
          ...healthUpdate(change),
          ReturnValues: 'ALL_NEW',
        }),
      );
      return result.Attributes === undefined
        ? undefined
        : { subscription: toSubscription(result.Attributes), changed: true };
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      // Gone, or the change was already in place: tell them apart with a consistent read.
      const current = await this.get(subscriptionId);
      return current === undefined ? undefined : { subscription: current, changed: false };
    }
  }
}

/** The update of a health change; its condition makes a change already in place fail as a no-op. */
function healthUpdate(change: HealthChange) {
  switch (change.kind) {
    case 'failing':
      return {
        UpdateExpression: 'SET #failingSince = :since',
        ConditionExpression: 'attribute_exists(#id) AND attribute_not_exists(#failingSince)',
        ExpressionAttributeNames: attributeNames('id', 'failingSince'),
        ExpressionAttributeValues: { ':since': change.since },
      };
    case 'healthy':
      return {
        UpdateExpression: 'REMOVE #failingSince',
        ConditionExpression: 'attribute_exists(#id) AND attribute_exists(#failingSince)',
        ExpressionAttributeNames: attributeNames('id', 'failingSince'),
      };
    case 'disable':
      return {
        UpdateExpression: 'SET #status = :disabled, #disabledReason = :reason, #updatedAt = :at',
        ConditionExpression: 'attribute_exists(#id) AND #status = :active',
        ExpressionAttributeNames: attributeNames('id', 'status', 'disabledReason', 'updatedAt'),
        ExpressionAttributeValues: {
          ':disabled': 'disabled',
          ':active': 'active',
          ':reason': change.reason,
          ':at': change.at,
        },
      };
  }
}
