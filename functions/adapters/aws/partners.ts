/**
 * Partners on DynamoDB (the partners table of tables.ts):
 * - `PARTNER#<id>` holds the partner, and `keys`, a map from each of its API keys' ids to the
 *   key's hash: the one item that knows which keys a partner has, so a count of them is a
 *   condition on one item;
 * - `KEY#<sha256 of the key>` holds the key's record (partner, name, prefix, created, last
 *   used): the authorizer reads this item alone.
 * A key is added and removed in one transaction over both items, each write conditioned on
 * what was read, which is what makes the hash unique and the cap exact (DynamoDB has no unique
 * index). A partner stored before it had several keys has no `keys` map but `apiKeyHash`, the
 * hash of its one key, whose item holds only `partnerId`: both are read as its first key, and
 * the first change of its keys writes the map.
 */
import { randomUUID } from 'node:crypto';
import {
  type DynamoDBDocumentClient,
  GetCommand,
  TransactWriteCommand,
  type TransactWriteCommandInput,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import * as z from 'zod';
import { type ApiKeyRecord, Partner, PartnerId } from '../../core/model.ts';
import { apiKeyIdOf } from '../../core/partners.ts';
import type { ApiKeyChange, PartnerStore } from '../../core/ports.ts';
import {
  attributeNames,
  batchGetItems,
  cancellationCodes,
  conditionFailed,
  hasConflict,
  isConditionFailure,
} from './dynamo.ts';

type TransactItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];

const partnerKey = (partnerId: string) => `PARTNER#${partnerId}`;
const apiKeyKey = (apiKeyHash: string) => `KEY#${apiKeyHash}`;

/** What a key's item holds; one written before keys had names holds only `partnerId`. */
const KeyItem = z.object({
  partnerId: PartnerId,
  keyId: z.string().optional(),
  name: z.string().optional(),
  prefix: z.string().optional(),
  createdAt: z.string().optional(),
  lastUsedAt: z.string().optional(),
});

const PartnerItem = Partner.extend({
  keys: z.record(z.string(), z.string()).optional(),
  /** Moved by every change of `keys`: each change is conditioned on the version it read. */
  keysVersion: z.number().int().optional(),
  apiKeyHash: z.string().optional(),
});
type PartnerItem = z.infer<typeof PartnerItem>;

/** A change of a partner's keys lost a race with another: read again and retry, this often. */
const KEY_CHANGE_TRIES = 5;

/** The partner's keys as its item lists them: key id → hash. */
function keysOf(partner: PartnerItem): Record<string, string> {
  if (partner.keys !== undefined) return partner.keys;
  return partner.apiKeyHash === undefined ? {} : { [apiKeyIdOf(partner.apiKeyHash)]: partner.apiKeyHash };
}

/** The record a key's item stands for; a key from before names has its partner's time. */
function toApiKey(hash: string, item: z.infer<typeof KeyItem>, partnerCreatedAt: string): ApiKeyRecord {
  return {
    id: item.keyId ?? apiKeyIdOf(hash),
    partnerId: item.partnerId,
    hash,
    name: item.name ?? 'first key',
    prefix: item.prefix ?? 'dk_',
    createdAt: item.createdAt ?? partnerCreatedAt,
    ...(item.lastUsedAt === undefined ? {} : { lastUsedAt: item.lastUsedAt }),
  };
}

export class DynamoPartnerStore implements PartnerStore {
  readonly tableName: string;
  readonly #client: DynamoDBDocumentClient;

  constructor(client: DynamoDBDocumentClient, tableName: string) {
    this.#client = client;
    this.tableName = tableName;
  }

  /** Throws on a duplicate id or API key hash, storing nothing, as the SQLite store does. */
  async create(partner: Partner, firstKey: ApiKeyRecord): Promise<void> {
    try {
      await this.#client.send(
        new TransactWriteCommand({
          // An SDK retry of a create that committed succeeds instead of finding the partner.
          ClientRequestToken: randomUUID(),
          TransactItems: [
            {
              Put: {
                TableName: this.tableName,
                Item: {
                  pk: partnerKey(partner.id),
                  kind: 'partner',
                  id: partner.id,
                  name: partner.name,
                  createdAt: partner.createdAt,
                  keys: { [firstKey.id]: firstKey.hash },
                  keysVersion: 1,
                },
                ConditionExpression: 'attribute_not_exists(pk)',
              },
            },
            this.#putKey(firstKey),
          ],
        }),
      );
    } catch (error) {
      const codes = cancellationCodes(error);
      if (codes !== undefined && conditionFailed(codes, 0)) {
        throw new Error(`partner ${partner.id} already exists`, { cause: error });
      }
      if (codes !== undefined && conditionFailed(codes, 1)) {
        throw new Error('another partner already has this API key hash', { cause: error });
      }
      throw error;
    }
  }

  async get(partnerId: string): Promise<Partner | undefined> {
    const item = await this.#partnerItem(partnerId);
    // Partner's zod object drops pk, kind and the keys.
    return item === undefined ? undefined : Partner.parse(item);
  }

  async findApiKey(apiKeyHash: string): Promise<ApiKeyRecord | undefined> {
    const result = await this.#client.send(
      new GetCommand({ TableName: this.tableName, Key: { pk: apiKeyKey(apiKeyHash) }, ConsistentRead: true }),
    );
    if (result.Item === undefined) return undefined;
    const item = KeyItem.parse(result.Item);
    // Only a key from before keys had records needs its partner's time (a second read).
    const partnerCreatedAt =
      item.createdAt === undefined
        ? ((await this.get(item.partnerId))?.createdAt ?? new Date(0).toISOString())
        : '';
    return toApiKey(apiKeyHash, item, partnerCreatedAt);
  }

  async addApiKey(key: ApiKeyRecord, options: { maxPerPartner: number }): Promise<ApiKeyChange> {
    return this.#changeKeys(key.partnerId, (keys) => {
      if (Object.keys(keys).length >= options.maxPerPartner) return 'limit';
      return { keys: { ...keys, [key.id]: key.hash }, keyWrite: this.#putKey(key) };
    });
  }

  async listApiKeys(partnerId: string): Promise<ApiKeyRecord[]> {
    const partner = await this.#partnerItem(partnerId);
    if (partner === undefined) return [];
    const hashes = Object.values(keysOf(partner));
    const items = await batchGetItems(
      this.#client,
      this.tableName,
      hashes.map((hash) => ({ pk: apiKeyKey(hash) })),
    );
    return items
      .map((item) => toApiKey(String(item.pk).slice('KEY#'.length), KeyItem.parse(item), partner.createdAt))
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  }

  async removeApiKey(
    partnerId: string,
    keyId: string,
    options: { keepLast: boolean },
  ): Promise<ApiKeyChange> {
    return this.#changeKeys(partnerId, (keys) => {
      const hash = keys[keyId];
      if (hash === undefined) return 'not-found';
      if (options.keepLast && Object.keys(keys).length <= 1) return 'last';
      return {
        keys: Object.fromEntries(Object.entries(keys).filter(([id]) => id !== keyId)),
        keyWrite: { Delete: { TableName: this.tableName, Key: { pk: apiKeyKey(hash) } } },
      };
    });
  }

  async touchApiKey(key: ApiKeyRecord, at: string, staleBefore: string): Promise<void> {
    try {
      await this.#client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: apiKeyKey(key.hash) },
          UpdateExpression: 'SET lastUsedAt = :at',
          // Not for a key revoked meanwhile, and once per precision however many write at once.
          ConditionExpression:
            'attribute_exists(pk) AND (attribute_not_exists(lastUsedAt) OR lastUsedAt < :stale)',
          ExpressionAttributeValues: { ':at': at, ':stale': staleBefore },
        }),
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
    }
  }

  async #partnerItem(partnerId: string): Promise<PartnerItem | undefined> {
    const result = await this.#client.send(
      new GetCommand({ TableName: this.tableName, Key: { pk: partnerKey(partnerId) }, ConsistentRead: true }),
    );
    return result.Item === undefined ? undefined : PartnerItem.parse(result.Item);
  }

  /** The key's item, written only if no key has its hash. */
  #putKey(key: ApiKeyRecord): TransactItem {
    return {
      Put: {
        TableName: this.tableName,
        Item: {
          pk: apiKeyKey(key.hash),
          kind: 'apiKey',
          partnerId: key.partnerId,
          keyId: key.id,
          name: key.name,
          prefix: key.prefix,
          createdAt: key.createdAt,
        },
        ConditionExpression: 'attribute_not_exists(pk)',
      },
    };
  }

  /**
   * Reads the partner and writes the change `plan` makes of its keys in one transaction: the
   * whole map (with the version after the one read, on the condition that it is still the one
   * read: that is what makes the count exact) and the one key's item. A change that loses a
   * race with another reads again.
   */
  async #changeKeys(
    partnerId: string,
    plan: (
      keys: Record<string, string>,
    ) => ApiKeyChange | { keys: Record<string, string>; keyWrite: TransactItem },
  ): Promise<ApiKeyChange> {
    for (let attempt = 1; ; attempt++) {
      const partner = await this.#partnerItem(partnerId);
      if (partner === undefined) return 'no-partner';
      const change = plan(keysOf(partner));
      if (typeof change === 'string') return change;
      const read = partner.keysVersion;
      try {
        await this.#client.send(
          new TransactWriteCommand({
            ClientRequestToken: randomUUID(),
            TransactItems: [
              {
                Update: {
                  TableName: this.tableName,
                  Key: { pk: partnerKey(partnerId) },
                  // A partner from before has its one key in apiKeyHash: the map takes over.
                  UpdateExpression: 'SET #keys = :keys, keysVersion = :next REMOVE apiKeyHash',
                  ConditionExpression:
                    read === undefined
                      ? 'attribute_exists(pk) AND attribute_not_exists(keysVersion)'
                      : 'keysVersion = :read',
                  ExpressionAttributeNames: attributeNames('keys'),
                  ExpressionAttributeValues: {
                    ':keys': change.keys,
                    ':next': (read ?? 0) + 1,
                    ...(read === undefined ? {} : { ':read': read }),
                  },
                },
              },
              change.keyWrite,
            ],
          }),
        );
        return 'done';
      } catch (error) {
        const codes = cancellationCodes(error);
        if (codes !== undefined && conditionFailed(codes, 1)) {
          throw new Error('another partner already has this API key hash', { cause: error });
        }
        const lostRace = codes !== undefined && (conditionFailed(codes, 0) || hasConflict(codes));
        if (!lostRace || attempt >= KEY_CHANGE_TRIES) throw error;
      }
    }
  }
}
