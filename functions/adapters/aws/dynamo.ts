/**
 * What the DynamoDB adapters share: item hygiene, transaction-cancellation reasons, paging,
 * and the backoff between optimistic retries. The adapters take a DynamoDBDocumentClient
 * created elsewhere (clients.ts in Lambda, the tests' own for DynamoDB Local); they assume it
 * unmarshalls numbers as plain numbers (the default, no `wrapNumbers`).
 */

import { ConditionalCheckFailedException, TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  type DynamoDBDocumentClient,
  PutCommand,
  QueryCommand,
  type QueryCommandInput,
} from '@aws-sdk/lib-dynamodb';
import type { Clock } from '../../core/ports.ts';

/** A stored item as read back: attribute name to unmarshalled value. */
export type Item = Record<string, unknown>;

/**
 * A copy without `undefined`-valued properties, at any depth. The marshaller rejects them
 * unless the client was built with `removeUndefinedValues`, and the adapters do not rely on
 * how their injected client was configured.
 */
export function compact<T>(value: T): T {
  if (Array.isArray(value)) return value.map(compact) as T;
  if (typeof value !== 'object' || value === null) return value;
  // Only plain objects are walked: Sets, Uint8Arrays and the like marshal as themselves.
  if (Object.getPrototypeOf(value) !== Object.prototype) return value;
  const result: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) {
    if (field !== undefined) result[key] = compact(field);
  }
  return result as T;
}

/**
 * The per-item codes of a cancelled transaction, in TransactItems order ('None',
 * 'ConditionalCheckFailed', 'TransactionConflict', …); undefined for any other error.
 * Matched by name as well as class, so a second copy of client-dynamodb in node_modules still counts.
 */
export function cancellationCodes(error: unknown): string[] | undefined {
  if (
    !(error instanceof TransactionCanceledException) &&
    !(error instanceof Error && error.name === 'TransactionCanceledException')
  ) {
    return undefined;
  }
  const reasons: unknown = Reflect.get(error, 'CancellationReasons');
  if (!Array.isArray(reasons)) return [];
  return reasons.map((reason: unknown) => {
    const code: unknown =
      typeof reason === 'object' && reason !== null ? Reflect.get(reason, 'Code') : undefined;
    return typeof code === 'string' ? code : 'None';
  });
}

/**
 * True when a single-item write failed on its condition. Matched by name as well as class, as
 * cancellationCodes is.
 */
export function isConditionFailure(error: unknown): boolean {
  return (
    error instanceof ConditionalCheckFailedException ||
    (error instanceof Error && error.name === 'ConditionalCheckFailedException')
  );
}

/**
 * Puts the item only if its key holds none (every table's partition key is `pk`, or the
 * partners' only key): true if it was put, false if an item was there.
 */
export async function putIfAbsent(
  client: DynamoDBDocumentClient,
  tableName: string,
  item: Item,
): Promise<boolean> {
  try {
    await client.send(
      new PutCommand({ TableName: tableName, Item: item, ConditionExpression: 'attribute_not_exists(pk)' }),
    );
    return true;
  } catch (error) {
    if (isConditionFailure(error)) return false;
    throw error;
  }
}

export const CONDITION_FAILED = 'ConditionalCheckFailed';
/** Another transaction was writing one of the items at the same moment: safe to retry. */
export const TRANSACTION_CONFLICT = 'TransactionConflict';

/** True when a cancelled transaction failed on item `index`'s condition. */
export function conditionFailed(codes: readonly string[], index: number): boolean {
  return codes[index] === CONDITION_FAILED;
}

export function hasConflict(codes: readonly string[]): boolean {
  return codes.includes(TRANSACTION_CONFLICT);
}

/**
 * Every item a query returns, page after page. A filtered query can return an empty page with a
 * LastEvaluatedKey (the filter runs after Limit and the 1 MB cap), so only the missing key ends it.
 */
export async function* queryItems(
  client: DynamoDBDocumentClient,
  input: QueryCommandInput,
): AsyncGenerator<Item> {
  let startKey: QueryCommandInput['ExclusiveStartKey'];
  do {
    const page = await client.send(
      new QueryCommand(startKey === undefined ? input : { ...input, ExclusiveStartKey: startKey }),
    );
    for (const item of page.Items ?? []) yield item;
    startKey = page.LastEvaluatedKey;
  } while (startKey !== undefined);
}

/**
 * Up to `count` items of a query, reading further pages only as needed. A filtered query passes
 * `minPageSize`: Limit caps the items read before the filter, so asking for just the missing
 * few would take a round trip per few items; the surplus read is dropped.
 */
export async function queryUpTo(
  client: DynamoDBDocumentClient,
  input: Omit<QueryCommandInput, 'Limit'>,
  count: number,
  minPageSize = 1,
): Promise<Item[]> {
  const items: Item[] = [];
  if (count < 1) return items;
  let startKey: QueryCommandInput['ExclusiveStartKey'];
  do {
    const page = await client.send(
      new QueryCommand({
        ...input,
        Limit: Math.max(count - items.length, minPageSize),
        ...(startKey === undefined ? {} : { ExclusiveStartKey: startKey }),
      }),
    );
    items.push(...(page.Items ?? []));
    startKey = page.LastEvaluatedKey;
  } while (startKey !== undefined && items.length < count);
  return items.slice(0, count);
}

/** BatchGetItem's most keys per request. */
const BATCH_GET_KEYS = 100;
/** Rounds of asking again for unprocessed keys (with backoff) before giving up. */
const BATCH_GET_TRIES = 8;

/**
 * The items at `keys`, read consistently in batches; keys the service leaves unprocessed are
 * asked again with backoff. Items that do not exist are simply not among those returned.
 */
export async function batchGetItems(
  client: DynamoDBDocumentClient,
  tableName: string,
  keys: readonly Record<string, unknown>[],
): Promise<Item[]> {
  const found: Item[] = [];
  for (let start = 0; start < keys.length; start += BATCH_GET_KEYS) {
    let batch = keys.slice(start, start + BATCH_GET_KEYS);
    for (let attempt = 1; batch.length > 0; attempt++) {
      if (attempt > BATCH_GET_TRIES)
        throw new Error(`${batch.length} items of ${tableName} could not be read`);
      if (attempt > 1) await backoff(attempt - 1, 50, 2_000);
      const result = await client.send(
        new BatchGetCommand({ RequestItems: { [tableName]: { Keys: [...batch], ConsistentRead: true } } }),
      );
      found.push(...(result.Responses?.[tableName] ?? []));
      batch = result.UnprocessedKeys?.[tableName]?.Keys ?? [];
    }
  }
  return found;
}

/** "Full jitter" backoff before retry number `attempt` (1 for the first retry). */
export function backoff(attempt: number, baseMs: number, capMs: number): Promise<void> {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt - 1, 20));
  return new Promise((resolve) => setTimeout(resolve, Math.random() * ceiling));
}

/**
 * `names` of ExpressionAttributeNames for attributes that are DynamoDB reserved words
 * (`type`, `status`, `name`, `number`, …): always going through `#name` avoids ever guessing.
 */
export function attributeNames(...names: string[]): Record<string, string> {
  return Object.fromEntries(names.map((name) => [`#${name}`, name]));
}

/** The TTL attribute's value for an item written now and kept `retentionDays`. */
export function expiresAt(clock: Clock, retentionDays: number): number {
  return Math.floor(clock.now().getTime() / 1000) + Math.round(retentionDays * 86_400);
}
