/**
 * Request counts on DynamoDB, in the partners table: `RATE#<key>#<window start>#<part>` holds
 * the count of one part of a caller's window, added to in place on the condition that it is
 * below that part's share of the limit, so concurrent API instances share exact counts. A
 * limit above what one item takes in a second (PER_ITEM) is spread over several parts, each
 * request counted in one at random: one item is written at most PER_ITEM times a second,
 * well under a partition's 1,000 writes. A refused request writes nothing (a failed
 * condition) and items expire with the TTL soon after their window.
 */
import { type DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { windowOf } from '../../core/limits.ts';
import type { Allowance, AllowanceResult, RateLimiter } from '../../core/ports.ts';
import { attributeNames, isConditionFailure } from './dynamo.ts';

/** Requests one count item takes per window at most; a larger limit is split over more items. */
export const PER_ITEM = 250;
/** How long after its window a count item is kept (TTL deletes it within days anyway). */
const KEEP_SECONDS = 3600;

/** DynamoDB's answers to a partition over its throughput: only a caller far over its limit gets there. */
const THROTTLED = new Set([
  'ProvisionedThroughputExceededException',
  'ThrottlingException',
  'RequestLimitExceeded',
]);

export class DynamoRateLimiter implements RateLimiter {
  readonly tableName: string;
  readonly #client: DynamoDBDocumentClient;

  constructor(client: DynamoDBDocumentClient, tableName: string) {
    this.#client = client;
    this.tableName = tableName;
  }

  async take(key: string, allowance: Allowance, now: Date): Promise<AllowanceResult> {
    const { start, remainingMs } = windowOf(allowance, now);
    const parts = Math.ceil(allowance.limit / PER_ITEM);
    const part = Math.floor(Math.random() * parts);
    // The parts' shares add up to the limit: the first ones take the remainder.
    const share = Math.floor(allowance.limit / parts) + (part < allowance.limit % parts ? 1 : 0);
    try {
      await this.#client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: parts === 1 ? `RATE#${key}#${start}` : `RATE#${key}#${start}#${part}` },
          UpdateExpression: 'ADD #count :one SET #expiresAt = if_not_exists(#expiresAt, :expiresAt)',
          ConditionExpression: 'attribute_not_exists(#count) OR #count < :limit',
          ExpressionAttributeNames: attributeNames('count', 'expiresAt'),
          ExpressionAttributeValues: {
            ':one': 1,
            ':limit': share,
            ':expiresAt': Math.ceil((start + allowance.windowMs) / 1000) + KEEP_SECONDS,
          },
        }),
      );
      return { allowed: true };
    } catch (error) {
      if (isConditionFailure(error)) return { allowed: false, retryAfterMs: remainingMs };
      // The count's partition is over its throughput: so many requests of one caller that it
      // is over its limit; its other requests are refused by the instance (rememberingRefusals).
      if (error instanceof Error && THROTTLED.has(error.name)) {
        return { allowed: false, retryAfterMs: remainingMs };
      }
      throw error;
    }
  }
}
