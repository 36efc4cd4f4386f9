/**
 * Tries waiting longer than SQS can delay a message, in the deliveries table until they come
 * due (tables.ts):
 * - `DUE#<shard, 2 digits>` / `<dueAt>#<deliveryId>#<attempt>`: the try's queue message.
 * A shard is chosen by the delivery id, so the retries of one endpoint's backlog spread over
 * every shard's partition instead of writing into one; within a shard the sort key orders them
 * by due time, so the sweeper reads the ones due first with a single Query per shard.
 */
import { BatchWriteCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import * as z from 'zod';
import { DeliveryMessage, Timestamp } from '../../core/model.ts';
import type { Clock, DueRetry, DueRetryStore } from '../../core/ports.ts';
import { systemClock } from '../clock.ts';
import { attributeNames, backoff, type Item, queryUpTo } from './dynamo.ts';

/** Partitions the due retries are spread over; the sweeper reads every one. */
export const DUE_SHARDS = 16;
/** DynamoDB's largest BatchWriteItem. */
const BATCH_WRITE_ITEMS = 25;
/** Tries of a batch write's unprocessed items before the write fails. */
const BATCH_WRITE_TRIES = 8;
/** Due retries are kept at most this long past their time, should the sweeper never come. */
const KEEP_PAST_DUE_SECONDS = 14 * 24 * 3600;

const DueItem = z.object({
  pk: z.string(),
  sk: z.string(),
  message: DeliveryMessage,
  groupId: z.string().optional(),
  dueAt: Timestamp,
});

function shardOf(deliveryId: string): number {
  let hash = 0;
  for (let i = 0; i < deliveryId.length; i++) hash = (hash * 31 + deliveryId.charCodeAt(i)) >>> 0;
  return hash % DUE_SHARDS;
}

function dueKey(retry: DueRetry): { pk: string; sk: string } {
  const { deliveryId, attempt } = retry.message;
  return {
    pk: `DUE#${String(shardOf(deliveryId)).padStart(2, '0')}`,
    sk: `${retry.dueAt}#${deliveryId}#${attempt ?? 0}`,
  };
}

export interface DynamoDueRetryStoreOptions {
  /** @default systemClock */
  clock?: Clock;
}

export class DynamoDueRetryStore implements DueRetryStore {
  readonly tableName: string;
  readonly #client: DynamoDBDocumentClient;
  readonly #clock: Clock;

  constructor(client: DynamoDBDocumentClient, tableName: string, options: DynamoDueRetryStoreOptions = {}) {
    this.#client = client;
    this.tableName = tableName;
    this.#clock = options.clock ?? systemClock;
  }

  async put(retries: readonly DueRetry[]): Promise<void> {
    const now = Math.floor(this.#clock.now().getTime() / 1000);
    await this.#batchWrite(
      retries.map((retry) => ({
        PutRequest: {
          Item: {
            ...dueKey(retry),
            kind: 'due',
            message: retry.message,
            ...(retry.groupId === undefined ? {} : { groupId: retry.groupId }),
            dueAt: retry.dueAt,
            expiresAt: Math.max(now, Math.floor(Date.parse(retry.dueAt) / 1000)) + KEEP_PAST_DUE_SECONDS,
          },
        },
      })),
    );
  }

  /** One Query per shard, side by side, each reading its soonest `limit`; merged by due time. */
  async due(horizon: Date, limit: number): Promise<DueRetry[]> {
    // Sort keys start with the due time: every key below the horizon's is due before it.
    const below = horizon.toISOString();
    const shards = await Promise.all(
      Array.from({ length: DUE_SHARDS }, (_, shard) =>
        queryUpTo(
          this.#client,
          {
            TableName: this.tableName,
            KeyConditionExpression: '#pk = :pk AND #sk < :below',
            ExpressionAttributeNames: attributeNames('pk', 'sk'),
            ExpressionAttributeValues: { ':pk': `DUE#${String(shard).padStart(2, '0')}`, ':below': below },
            ConsistentRead: true,
          },
          limit,
        ),
      ),
    );
    return shards
      .flat()
      .map((item): DueRetry => {
        const due = DueItem.parse(item);
        return {
          message: due.message,
          dueAt: due.dueAt,
          ...(due.groupId === undefined ? {} : { groupId: due.groupId }),
        };
      })
      .sort((a, b) => Date.parse(a.dueAt) - Date.parse(b.dueAt))
      .slice(0, limit);
  }

  async remove(retries: readonly DueRetry[]): Promise<void> {
    await this.#batchWrite(retries.map((retry) => ({ DeleteRequest: { Key: dueKey(retry) } })));
  }

  /** BatchWriteItem in 25s, side by side; unprocessed items are written again with backoff. */
  async #batchWrite(requests: Item[]): Promise<void> {
    const batches: Item[][] = [];
    for (let i = 0; i < requests.length; i += BATCH_WRITE_ITEMS) {
      batches.push(requests.slice(i, i + BATCH_WRITE_ITEMS));
    }
    await Promise.all(
      batches.map(async (batch) => {
        let pending = batch;
        for (let attempt = 1; pending.length > 0; attempt++) {
          if (attempt > BATCH_WRITE_TRIES) {
            throw new Error(`${pending.length} due retries could not be written to ${this.tableName}`);
          }
          if (attempt > 1) await backoff(attempt - 1, 50, 2_000);
          const result = await this.#client.send(
            new BatchWriteCommand({ RequestItems: { [this.tableName]: pending } }),
          );
          pending = (result.UnprocessedItems?.[this.tableName] ?? []) as Item[];
        }
      }),
    );
  }
}
