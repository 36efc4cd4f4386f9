/**
 * Subscriptions on DynamoDB (the subscriptions table of tables.ts): one item per subscription
 * keyed by id, listed per partner through the byPartner index (partnerId, id).
 *
 * Each partner also has a counter item, `COUNT#<partnerId>`, holding how many subscriptions it
 * has. A create puts the subscription and raises the counter in one transaction whose
 * condition is the cap, and a delete lowers it in the delete's own transaction, so the cap
 * holds exactly however many Lambda instances create at once. The counter carries no
 * `partnerId`, so the byPartner index never lists it.
 *
 * Each subscription item also carries the allowances of rate-limited partner actions
 * (`<action>WindowStart`, `<action>Count`; see takeAllowance), which are not part of the
 * domain's Subscription: `put` therefore writes the subscription's own attributes in place
 * rather than replacing the whole item.
 *
 * Signing secrets are sealed by the cipher (KMS envelope encryption, kms-cipher.ts) before
 * they are written, so a table read, export or backup holds none in the clear.
 *
 * The index is eventually consistent (a global secondary index cannot be read consistently):
 * on AWS a subscription just put can be missing from `list` and `listActive` for a moment.
 */
import { randomUUID } from 'node:crypto';
import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  type QueryCommandInput,
  ScanCommand,
  TransactWriteCommand,
  type TransactWriteCommandInput,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import * as z from 'zod';
import { ServiceUnavailableError, StaleWriteError, SubscriptionLimitError } from '../../core/errors.ts';
import { type Page, Subscription, type SubscriptionRecord } from '../../core/model.ts';
import type {
  Allowance,
  AllowanceResult,
  HealthChange,
  HealthUpdate,
  ListQuery,
  RateLimitedAction,
  SecretCipher,
  SubscriptionHealth,
  SubscriptionStore,
} from '../../core/ports.ts';
import { pageOfLookahead } from '../paging.ts';
import { openSecrets, openSecretsForListing, sealSecrets } from '../secrets/signing-secrets.ts';
import {
  attributeNames,
  backoff,
  cancellationCodes,
  compact,
  conditionFailed,
  hasConflict,
  type Item,
  isConditionFailure,
  queryItems,
  queryUpTo,
} from './dynamo.ts';

export const BY_PARTNER_INDEX = 'byPartner';

/** Tries of a transaction on a partner's counter that collides with a concurrent one. */
const CONFLICT_TRIES = 12;
/** Tries of an allowance update that raced another caller's. */
const ALLOWANCE_TRIES = 5;

const counterKey = (partnerId: string) => ({ id: `COUNT#${partnerId}` });
const Counter = z.object({ subscriptionCount: z.number().int() });
/** The item's own attributes; its secrets are read apart, by the cipher. */
/**
 * An item's attributes as a subscription's. Its payload filter is kept as JSON text: a pattern
 * is the partner's, and may hold numbers the document client would refuse or round (past 2^53,
 * or with more digits than a double keeps); it is parsed back here.
 */
const SubscriptionWithoutSecrets = z.preprocess(
  (item) =>
    typeof item === 'object' && item !== null && 'filter' in item && typeof item.filter === 'string'
      ? { ...item, filter: JSON.parse(item.filter) }
      : item,
  Subscription.omit({ secrets: true }),
);

/** A subscription's attributes as the item keeps them: its filter as JSON text. */
function itemOf(subscription: Subscription): Item {
  return compact({
    ...subscription,
    filter: subscription.filter === undefined ? undefined : JSON.stringify(subscription.filter),
  });
}
/** Every attribute the domain's Subscription may have, the key (`id`) aside. */
const SUBSCRIPTION_FIELDS = Object.keys(Subscription.shape).filter((key) => key !== 'id');

/**
 * An item as a subscription, its secrets opened by the cipher (`forListing`: see
 * openSecretsForListing).
 */
async function toSubscription(item: Item, cipher: SecretCipher, forListing = false): Promise<Subscription> {
  const id = typeof item.id === 'string' ? item.id : '';
  const secrets = await (forListing ? openSecretsForListing : openSecrets)(cipher, id, item.secrets);
  // Subscription's zod object drops kind and the allowances; a listing's may have no secret.
  return { ...SubscriptionWithoutSecrets.parse(item), secrets };
}

/** Thrown when a partner's counter stayed contended through every try: the caller retries. */
export class SubscriptionCounterContentionError extends ServiceUnavailableError {
  constructor(partnerId: string) {
    super(`partner ${partnerId}'s subscriptions are being changed by many requests at once`);
  }
}

/** The allowance attributes of one action. */
function allowanceAttributes(action: RateLimitedAction) {
  return { start: `${action}WindowStart`, count: `${action}Count` };
}

export class DynamoSubscriptionStore implements SubscriptionStore {
  readonly tableName: string;
  readonly #client: DynamoDBDocumentClient;
  readonly #cipher: SecretCipher;

  constructor(client: DynamoDBDocumentClient, tableName: string, cipher: SecretCipher) {
    this.#client = client;
    this.tableName = tableName;
    this.#cipher = cipher;
  }

  async create(subscription: Subscription, options: { maxPerPartner: number }): Promise<void> {
    const created = await this.#createCounted(await this.#sealed(subscription), options.maxPerPartner);
    if (!created) throw new Error(`subscription ${subscription.id} already exists`);
  }

  /**
   * A new subscription is created as `create` does (counted), without a cap; an existing one
   * has its own attributes written in place (absent optional ones removed), keeping its
   * allowances. With `expectedUpdatedAt`, only the version read is replaced.
   */
  async put(given: Subscription, options: { expectedUpdatedAt?: string } = {}): Promise<void> {
    const subscription = await this.#sealed(given);
    const expected = options.expectedUpdatedAt;
    if (expected !== undefined) {
      if (!(await this.#replace(subscription, expected))) {
        throw new StaleWriteError(`subscription ${subscription.id} changed meanwhile`);
      }
      return;
    }
    // Create, or else replace; a delete or create racing in between sends it round again.
    for (let attempt = 1; attempt <= CONFLICT_TRIES; attempt++) {
      if (await this.#createCounted(subscription, undefined)) return;
      if (await this.#replace(subscription, undefined)) return;
    }
    throw new SubscriptionCounterContentionError(subscription.partnerId);
  }

  async get(subscriptionId: string): Promise<Subscription | undefined> {
    const result = await this.#client.send(
      new GetCommand({ TableName: this.tableName, Key: { id: subscriptionId }, ConsistentRead: true }),
    );
    return result.Item === undefined ? undefined : toSubscription(result.Item, this.#cipher);
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
    const subscriptions = await Promise.all(items.map((item) => toSubscription(item, this.#cipher)));
    return pageOfLookahead(subscriptions, query, (s) => s);
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
      active.push(await toSubscription(item, this.#cipher, true));
    }
    return active;
  }

  /**
   * A scan of the whole table, filtered, in the table's own order (not by id): ops list
   * rarely, and a scan needs no index kept for it. The cursor is the last item's id, where the
   * next page's scan starts (ExclusiveStartKey), so paging holds while items come and go.
   */
  async describe(subscriptionId: string): Promise<SubscriptionRecord | undefined> {
    const result = await this.#client.send(
      new GetCommand({ TableName: this.tableName, Key: { id: subscriptionId }, ConsistentRead: true }),
    );
    return result.Item === undefined ? undefined : SubscriptionWithoutSecrets.parse(result.Item);
  }

  /** A query of the partner's index entries, filtered: their secrets are never opened. */
  async listConnections(partnerId: string): Promise<SubscriptionRecord[]> {
    const found: SubscriptionRecord[] = [];
    for await (const item of queryItems(this.#client, {
      TableName: this.tableName,
      IndexName: BY_PARTNER_INDEX,
      KeyConditionExpression: '#partnerId = :partnerId',
      FilterExpression: '#transport = :connection',
      ExpressionAttributeNames: attributeNames('partnerId', 'transport'),
      ExpressionAttributeValues: { ':partnerId': partnerId, ':connection': 'connection' },
    })) {
      found.push(SubscriptionWithoutSecrets.parse(item));
    }
    return found;
  }

  async listByHealth(health: SubscriptionHealth, query: ListQuery): Promise<Page<SubscriptionRecord>> {
    const items: Item[] = [];
    let startKey: Record<string, unknown> | undefined =
      query.after === undefined ? undefined : { id: query.after };
    do {
      const page = await this.#client.send(
        new ScanCommand({
          TableName: this.tableName,
          FilterExpression:
            health === 'disabled'
              ? '#status = :disabled'
              : '#status = :active AND attribute_exists(#failingSince)',
          ExpressionAttributeNames: attributeNames(
            'status',
            ...(health === 'failing' ? ['failingSince'] : []),
          ),
          ExpressionAttributeValues:
            health === 'disabled' ? { ':disabled': 'disabled' } : { ':active': 'active' },
          ...(startKey === undefined ? {} : { ExclusiveStartKey: startKey }),
        }),
      );
      items.push(...(page.Items ?? []));
      startKey = page.LastEvaluatedKey;
    } while (startKey !== undefined && items.length <= query.limit);
    return pageOfLookahead(items.slice(0, query.limit + 1), query, (item) =>
      SubscriptionWithoutSecrets.parse(item),
    );
  }

  /** Deletes the item and lowers its partner's counter in one transaction. */
  async delete(subscriptionId: string): Promise<boolean> {
    const current = await this.get(subscriptionId);
    if (current === undefined) return false;
    const outcome = await this.#writeCounted(current.partnerId, [
      {
        Delete: {
          TableName: this.tableName,
          Key: { id: subscriptionId },
          ConditionExpression: 'attribute_exists(#id)',
          ExpressionAttributeNames: attributeNames('id'),
        },
      },
      {
        Update: {
          TableName: this.tableName,
          Key: counterKey(current.partnerId),
          UpdateExpression: 'ADD #subscriptionCount :minusOne',
          ConditionExpression: '#subscriptionCount > :zero',
          ExpressionAttributeNames: attributeNames('subscriptionCount'),
          ExpressionAttributeValues: { ':minusOne': -1, ':zero': 0 },
        },
      },
    ]);
    // Deleted meanwhile by another caller, who lowered the counter.
    if (outcome === 'item') return false;
    if (outcome === 'counter') {
      // At zero: the counter already leaves this subscription out, so it goes without
      // lowering anything.
      const result = await this.#client.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: { id: subscriptionId },
          ReturnValues: 'ALL_OLD',
        }),
      );
      return result.Attributes !== undefined;
    }
    return true;
  }

  /**
   * Conditional updates only, no read-then-write: open a new window if the last one has
   * closed, or else count one more use if the open window has room; when neither condition
   * holds, a consistent read tells a used-up allowance (or a gone subscription) from a race
   * with another caller, which is tried again.
   */
  async takeAllowance(
    subscriptionId: string,
    action: RateLimitedAction,
    allowance: Allowance,
    now: Date,
  ): Promise<AllowanceResult | undefined> {
    const { start, count } = allowanceAttributes(action);
    const time = now.getTime();
    // A window that opened at or before this has closed by `now`.
    const closedBy = time - allowance.windowMs;
    for (let attempt = 1; attempt <= ALLOWANCE_TRIES; attempt++) {
      const opened = await this.#conditionalUpdate({
        TableName: this.tableName,
        Key: { id: subscriptionId },
        UpdateExpression: 'SET #start = :now, #count = :one',
        ConditionExpression:
          'attribute_exists(#id) AND (attribute_not_exists(#start) OR #start <= :closedBy)',
        ExpressionAttributeNames: { '#id': 'id', '#start': start, '#count': count },
        ExpressionAttributeValues: { ':now': time, ':one': 1, ':closedBy': closedBy },
      });
      if (opened) return { allowed: true };
      const counted = await this.#conditionalUpdate({
        TableName: this.tableName,
        Key: { id: subscriptionId },
        UpdateExpression: 'SET #count = #count + :one',
        ConditionExpression: 'attribute_exists(#id) AND #start > :closedBy AND #count < :limit',
        ExpressionAttributeNames: { '#id': 'id', '#start': start, '#count': count },
        ExpressionAttributeValues: { ':one': 1, ':closedBy': closedBy, ':limit': allowance.limit },
      });
      if (counted) return { allowed: true };
      const result = await this.#client.send(
        new GetCommand({ TableName: this.tableName, Key: { id: subscriptionId }, ConsistentRead: true }),
      );
      if (result.Item === undefined) return undefined;
      const windowStart: unknown = result.Item[start];
      const uses: unknown = result.Item[count];
      if (
        typeof windowStart === 'number' &&
        typeof uses === 'number' &&
        windowStart > closedBy &&
        uses >= allowance.limit
      ) {
        return { allowed: false, retryAfterMs: windowStart + allowance.windowMs - time };
      }
      // Another caller changed the window between the two updates: go round again.
      await backoff(attempt, 5, 50);
    }
    throw new ServiceUnavailableError(`subscription ${subscriptionId}: too many concurrent requests`);
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
        : { subscription: await toSubscription(result.Attributes, this.#cipher), changed: true };
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      // Gone, or the change was already in place: tell them apart with a consistent read.
      const current = await this.get(subscriptionId);
      return current === undefined ? undefined : { subscription: current, changed: false };
    }
  }

  /** The subscription as it is written: its secrets sealed. */
  async #sealed(subscription: Subscription): Promise<Subscription> {
    const secrets = await sealSecrets(this.#cipher, subscription.id, subscription.secrets);
    return { ...subscription, secrets };
  }

  /** True if the update was written, false if its condition failed. */
  async #conditionalUpdate(input: ConstructorParameters<typeof UpdateCommand>[0]): Promise<boolean> {
    try {
      await this.#client.send(new UpdateCommand(input));
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  /**
   * Puts a new subscription and raises its partner's counter in one transaction, on the
   * condition that the id is new and, with `max`, that the counter is below it.
   * @returns false when the id exists
   * @throws SubscriptionLimitError at the cap
   */
  async #createCounted(subscription: Subscription, max: number | undefined): Promise<boolean> {
    const outcome = await this.#writeCounted(subscription.partnerId, [
      {
        Put: {
          TableName: this.tableName,
          Item: { ...itemOf(subscription), kind: 'subscription' },
          ConditionExpression: 'attribute_not_exists(#id)',
          ExpressionAttributeNames: attributeNames('id'),
        },
      },
      {
        Update: {
          TableName: this.tableName,
          Key: counterKey(subscription.partnerId),
          UpdateExpression: 'ADD #subscriptionCount :one',
          ExpressionAttributeNames: attributeNames('subscriptionCount'),
          // Both fail on a partner without a counter yet, which is then started and tried again.
          ...(max === undefined
            ? {
                ConditionExpression: 'attribute_exists(#subscriptionCount)',
                ExpressionAttributeValues: { ':one': 1 },
              }
            : {
                ConditionExpression: '#subscriptionCount < :max',
                ExpressionAttributeValues: { ':one': 1, ':max': max },
              }),
        },
      },
    ]);
    if (outcome === 'counter') {
      if (max === undefined) throw new Error(`the counter of partner ${subscription.partnerId} is missing`);
      throw new SubscriptionLimitError(max);
    }
    return outcome === 'written';
  }

  /**
   * Runs a transaction of a subscription item (first) and its partner's counter (second),
   * trying again over concurrent writes of the counter (every create and delete of the
   * partner's subscriptions writes it). The first time the counter's condition fails, the
   * counter may be missing: it is started (see #ensureCounter) and the transaction tried again.
   * Each try has a token of its own: an SDK retry of a try that committed then succeeds
   * instead of finding its own write.
   * @returns 'written', or whose condition failed: the item's or (again) the counter's
   */
  async #writeCounted(
    partnerId: string,
    items: NonNullable<TransactWriteCommandInput['TransactItems']>,
  ): Promise<'written' | 'item' | 'counter'> {
    let counterStarted = false;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#client.send(
          new TransactWriteCommand({ ClientRequestToken: randomUUID(), TransactItems: items }),
        );
        return 'written';
      } catch (error) {
        const codes = cancellationCodes(error);
        if (codes === undefined) throw error;
        if (conditionFailed(codes, 0)) return 'item';
        if (conditionFailed(codes, 1)) {
          if (counterStarted) return 'counter';
          counterStarted = true;
          await this.#ensureCounter(partnerId);
          continue;
        }
        if (!hasConflict(codes)) throw error;
        if (attempt >= CONFLICT_TRIES) throw new SubscriptionCounterContentionError(partnerId);
        await backoff(attempt, 10, 500);
      }
    }
  }

  /**
   * Writes the subscription's own attributes onto the existing item (removing optional ones it
   * lacks), with `expected` only onto the version read.
   * @returns false when the item is gone, or (with `expected`) changed since
   */
  async #replace(subscription: Subscription, expected: string | undefined): Promise<boolean> {
    const item: Item = itemOf(subscription);
    const set: string[] = [];
    const remove: string[] = [];
    const values: Item = {};
    for (const field of SUBSCRIPTION_FIELDS) {
      if (item[field] === undefined) {
        remove.push(`#${field}`);
      } else {
        set.push(`#${field} = :${field}`);
        values[`:${field}`] = item[field];
      }
    }
    if (expected !== undefined) values[':expected'] = expected;
    return this.#conditionalUpdate({
      TableName: this.tableName,
      Key: { id: subscription.id },
      UpdateExpression: `SET ${set.join(', ')}${remove.length > 0 ? ` REMOVE ${remove.join(', ')}` : ''}`,
      ConditionExpression:
        expected === undefined ? 'attribute_exists(#id)' : 'attribute_exists(#id) AND #updatedAt = :expected',
      ExpressionAttributeNames: attributeNames('id', ...SUBSCRIPTION_FIELDS),
      ExpressionAttributeValues: values,
    });
  }

  /**
   * Makes sure the partner's counter exists, when a create or delete found none. It starts
   * from the partner's subscriptions as the index lists them: none for a new partner; for
   * subscriptions written before partners were counted, their number, so the cap counts them.
   */
  async #ensureCounter(partnerId: string): Promise<void> {
    const existing = await this.#client.send(
      new GetCommand({ TableName: this.tableName, Key: counterKey(partnerId), ConsistentRead: true }),
    );
    if (existing.Item !== undefined) {
      Counter.parse(existing.Item);
      return;
    }
    let count = 0;
    const query: QueryCommandInput = {
      TableName: this.tableName,
      IndexName: BY_PARTNER_INDEX,
      KeyConditionExpression: '#partnerId = :partnerId',
      ExpressionAttributeNames: attributeNames('partnerId'),
      ExpressionAttributeValues: { ':partnerId': partnerId },
      Select: 'COUNT',
    };
    let startKey: QueryCommandInput['ExclusiveStartKey'];
    do {
      const page = await this.#client.send(
        new QueryCommand(startKey === undefined ? query : { ...query, ExclusiveStartKey: startKey }),
      );
      count += page.Count ?? 0;
      startKey = page.LastEvaluatedKey;
    } while (startKey !== undefined);
    // Only if still absent: a concurrent first create may have made it already.
    await this.#conditionalUpdate({
      TableName: this.tableName,
      Key: counterKey(partnerId),
      UpdateExpression: 'SET #kind = :kind, #subscriptionCount = :count',
      ConditionExpression: 'attribute_not_exists(#id)',
      ExpressionAttributeNames: attributeNames('id', 'kind', 'subscriptionCount'),
      ExpressionAttributeValues: { ':kind': 'subscriptionCount', ':count': count },
    });
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
