/**
 * Partners on DynamoDB (the partners table of tables.ts): `PARTNER#<id>` holds the partner,
 * `KEY#<hash>` points from an API key hash to its partner. Both are written in one transaction,
 * each only if absent, which is what makes the hash unique (DynamoDB has no unique index).
 */
import { randomUUID } from 'node:crypto';
import { type DynamoDBDocumentClient, GetCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import * as z from 'zod';
import { Partner, PartnerId } from '../../core/model.ts';
import type { PartnerStore } from '../../core/ports.ts';
import { cancellationCodes, conditionFailed } from './dynamo.ts';

const partnerKey = (partnerId: string) => `PARTNER#${partnerId}`;
const apiKeyKey = (apiKeyHash: string) => `KEY#${apiKeyHash}`;

const KeyPointer = z.object({ partnerId: PartnerId });

export class DynamoPartnerStore implements PartnerStore {
  readonly tableName: string;
  readonly #client: DynamoDBDocumentClient;

  constructor(client: DynamoDBDocumentClient, tableName: string) {
    this.#client = client;
    this.tableName = tableName;
  }

  /** Throws on a duplicate id or API key hash, storing nothing, as the SQLite store does. */
  async create(partner: Partner, apiKeyHash: string): Promise<void> {
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
                  // Kept so the key item can be found again when the key is rotated or revoked.
                  apiKeyHash,
                },
                ConditionExpression: 'attribute_not_exists(pk)',
              },
            },
            {
              Put: {
                TableName: this.tableName,
                Item: { pk: apiKeyKey(apiKeyHash), kind: 'apiKey', partnerId: partner.id },
                ConditionExpression: 'attribute_not_exists(pk)',
              },
            },
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
    const result = await this.#client.send(
      new GetCommand({ TableName: this.tableName, Key: { pk: partnerKey(partnerId) }, ConsistentRead: true }),
    );
    // Partner's zod object drops pk, kind and apiKeyHash.
    return result.Item === undefined ? undefined : Partner.parse(result.Item);
  }

  async findByApiKeyHash(apiKeyHash: string): Promise<Partner | undefined> {
    const result = await this.#client.send(
      new GetCommand({ TableName: this.tableName, Key: { pk: apiKeyKey(apiKeyHash) }, ConsistentRead: true }),
    );
    if (result.Item === undefined) return undefined;
    return this.get(KeyPointer.parse(result.Item).partnerId);
  }
}
