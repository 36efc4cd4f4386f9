/**
 * Consumers on DynamoDB, in the events table beside the log they read (tables.ts):
 * `<partnerId>#C` / `C#<name>` is a consumer, and `<partnerId>#C` / `COUNT` how many the
 * partner has. Creating or deleting one moves the count in the same transaction, with the cap
 * as the count's condition, so it holds under concurrent creates. The pipe passes only items
 * of kind `event`: these never reach fan-out.
 */
import { randomUUID } from 'node:crypto';
import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import * as z from 'zod';
import {
  type Consumer,
  ConsumerName,
  type ConsumerPosition,
  EventType,
  type Page,
  PartnerId,
  Timestamp,
} from '../../core/model.ts';
import type { ConsumerSaved, ConsumerStore, ListQuery } from '../../core/ports.ts';
import {
  attributeNames,
  cancellationCodes,
  conditionFailed,
  hasConflict,
  isConditionFailure,
  queryUpTo,
} from './dynamo.ts';

const partitionOf = (partnerId: string) => `${partnerId}#C`;
const NAME_PREFIX = 'C#';
const COUNT_SK = 'COUNT';
const consumerKey = (partnerId: string, name: string) => ({
  pk: partitionOf(partnerId),
  sk: `${NAME_PREFIX}${name}`,
});
const countKey = (partnerId: string) => ({ pk: partitionOf(partnerId), sk: COUNT_SK });

const ConsumerItem = z.object({
  partnerId: PartnerId,
  name: ConsumerName,
  types: z.array(EventType),
  positionId: z.string().optional(),
  positionAt: Timestamp.optional(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});

function toConsumer(item: unknown): Consumer {
  const { positionId, positionAt, ...rest } = ConsumerItem.parse(item);
  return {
    ...rest,
    ...(positionId === undefined || positionAt === undefined
      ? {}
      : { position: { eventId: positionId, createdAt: positionAt } }),
  };
}

function itemOf(consumer: Consumer): Record<string, unknown> {
  return {
    ...consumerKey(consumer.partnerId, consumer.name),
    kind: 'consumer',
    partnerId: consumer.partnerId,
    name: consumer.name,
    types: consumer.types,
    ...(consumer.position === undefined
      ? {}
      : { positionId: consumer.position.eventId, positionAt: consumer.position.createdAt }),
    createdAt: consumer.createdAt,
    updatedAt: consumer.updatedAt,
  };
}

/** A save that lost a race with another (a create and a replace crossing): read again, this often. */
const SAVE_TRIES = 5;

export class DynamoConsumerStore implements ConsumerStore {
  readonly tableName: string;
  readonly #client: DynamoDBDocumentClient;

  constructor(client: DynamoDBDocumentClient, tableName: string) {
    this.#client = client;
    this.tableName = tableName;
  }

  /**
   * A replace is one put (or, keeping the position, one update of the types), only if the
   * consumer exists; a create also moves the partner's count.
   */
  async save(
    consumer: Consumer,
    options: { maxPerPartner: number; keepPosition?: boolean },
  ): Promise<ConsumerSaved> {
    for (let attempt = 1; ; attempt++) {
      try {
        if (options.keepPosition === true) {
          await this.#client.send(
            new UpdateCommand({
              TableName: this.tableName,
              Key: consumerKey(consumer.partnerId, consumer.name),
              UpdateExpression: 'SET #types = :types, updatedAt = :at',
              ConditionExpression: 'attribute_exists(pk)',
              ExpressionAttributeNames: attributeNames('types'),
              ExpressionAttributeValues: { ':types': consumer.types, ':at': consumer.updatedAt },
            }),
          );
        } else {
          await this.#client.send(
            new PutCommand({
              TableName: this.tableName,
              Item: itemOf(consumer),
              ConditionExpression: 'attribute_exists(pk)',
            }),
          );
        }
        return 'replaced';
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
      }
      try {
        await this.#client.send(
          new TransactWriteCommand({
            ClientRequestToken: randomUUID(),
            TransactItems: [
              {
                Put: {
                  TableName: this.tableName,
                  Item: itemOf(consumer),
                  ConditionExpression: 'attribute_not_exists(pk)',
                },
              },
              {
                Update: {
                  TableName: this.tableName,
                  Key: countKey(consumer.partnerId),
                  UpdateExpression: 'SET #count = if_not_exists(#count, :zero) + :one',
                  ConditionExpression: 'attribute_not_exists(#count) OR #count < :max',
                  ExpressionAttributeNames: attributeNames('count'),
                  ExpressionAttributeValues: { ':zero': 0, ':one': 1, ':max': options.maxPerPartner },
                },
              },
            ],
          }),
        );
        return 'created';
      } catch (error) {
        const codes = cancellationCodes(error);
        if (codes !== undefined && conditionFailed(codes, 1) && !conditionFailed(codes, 0)) return 'limit';
        // Created by another save meanwhile: replace it, as this save would have.
        const raced = codes !== undefined && (conditionFailed(codes, 0) || hasConflict(codes));
        if (!raced || attempt >= SAVE_TRIES) throw error;
      }
    }
  }

  async get(partnerId: string, name: string): Promise<Consumer | undefined> {
    const result = await this.#client.send(
      new GetCommand({ TableName: this.tableName, Key: consumerKey(partnerId, name), ConsistentRead: true }),
    );
    return result.Item === undefined ? undefined : toConsumer(result.Item);
  }

  async list(partnerId: string, query: ListQuery): Promise<Page<Consumer>> {
    const items = await queryUpTo(
      this.#client,
      {
        TableName: this.tableName,
        KeyConditionExpression:
          query.after === undefined
            ? '#pk = :pk AND begins_with(#sk, :prefix)'
            : '#pk = :pk AND #sk > :after',
        ExpressionAttributeNames: attributeNames('pk', 'sk'),
        ExpressionAttributeValues: {
          ':pk': partitionOf(partnerId),
          ...(query.after === undefined
            ? { ':prefix': NAME_PREFIX }
            : { ':after': `${NAME_PREFIX}${query.after}` }),
        },
        ConsistentRead: true,
      },
      query.limit + 1,
    );
    // The count's key (`COUNT`) sorts after every name (`C#…`): it can only end the query.
    const consumers = items.filter((item) => String(item.sk).startsWith(NAME_PREFIX)).map(toConsumer);
    const page = consumers.slice(0, query.limit);
    return { items: page, next: consumers.length > query.limit ? (page.at(-1)?.name ?? null) : null };
  }

  async commit(partnerId: string, name: string, position: ConsumerPosition, at: string): Promise<boolean> {
    try {
      await this.#client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: consumerKey(partnerId, name),
          UpdateExpression: 'SET positionId = :id, positionAt = :at, updatedAt = :now',
          ConditionExpression: 'attribute_exists(pk)',
          ExpressionAttributeValues: { ':id': position.eventId, ':at': position.createdAt, ':now': at },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  async delete(partnerId: string, name: string): Promise<boolean> {
    try {
      await this.#client.send(
        new TransactWriteCommand({
          ClientRequestToken: randomUUID(),
          TransactItems: [
            {
              Delete: {
                TableName: this.tableName,
                Key: consumerKey(partnerId, name),
                ConditionExpression: 'attribute_exists(pk)',
              },
            },
            {
              Update: {
                TableName: this.tableName,
                Key: countKey(partnerId),
                UpdateExpression: 'ADD #count :minus',
                ExpressionAttributeNames: attributeNames('count'),
                ExpressionAttributeValues: { ':minus': -1 },
              },
            },
          ],
        }),
      );
      return true;
    } catch (error) {
      const codes = cancellationCodes(error);
      if (codes !== undefined && conditionFailed(codes, 0)) return false;
      throw error;
    }
  }
}
