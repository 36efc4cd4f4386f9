/**
 * Clients for the run's DynamoDB Local and the tables of functions/adapters/aws/tables.ts,
 * created under names unique to a suite (or a test) so suites never share state.
 */
import { randomBytes } from 'node:crypto';
import {
  type AttributeDefinition,
  CreateTableCommand,
  DeleteTableCommand,
  DynamoDBClient,
  type GlobalSecondaryIndex,
  type KeySchemaElement,
  ResourceNotFoundException,
  UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, afterEach, inject } from 'vitest';
import {
  DELIVERIES_TABLE,
  EVENTS_TABLE,
  type KeyAttribute,
  PARTNERS_TABLE,
  SUBSCRIPTIONS_TABLE,
  type TableDefinition,
} from '../../functions/adapters/aws/tables.ts';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from './server.ts';

export function localEndpoint(): string {
  return inject('dynamodbLocalEndpoint');
}

/** A low-level client on the run's DynamoDB Local (region 'local', dummy credentials). */
export function localClient(endpoint: string = localEndpoint()): DynamoDBClient {
  return new DynamoDBClient({ endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
}

/** A document client on the run's DynamoDB Local; `destroy()` it when done. */
export function localDocumentClient(endpoint: string = localEndpoint()): DynamoDBDocumentClient {
  return DynamoDBDocumentClient.from(localClient(endpoint));
}

/** A table name prefix unique to this call: `<label>-<random>`. */
export function uniquePrefix(label: string): string {
  const safe = label.replace(/[^a-zA-Z0-9_.-]/g, '-').slice(0, 100);
  return `${safe}-${randomBytes(6).toString('hex')}`;
}

export interface TableNames {
  events: string;
  partners: string;
  subscriptions: string;
  deliveries: string;
}

function keySchema(partitionKey: KeyAttribute, sortKey: KeyAttribute | undefined): KeySchemaElement[] {
  return [
    { AttributeName: partitionKey.name, KeyType: 'HASH' },
    ...(sortKey === undefined ? [] : [{ AttributeName: sortKey.name, KeyType: 'RANGE' as const }]),
  ];
}

/** Creates one table as the stack does (on-demand, stream of new images, TTL) and returns its name. */
export async function createTable(
  client: DynamoDBDocumentClient,
  definition: TableDefinition,
  prefix: string,
): Promise<string> {
  const name = `${prefix}-${definition.name}`;
  const keys = [
    definition.partitionKey,
    definition.sortKey,
    ...definition.globalIndexes.flatMap((index) => [index.partitionKey, index.sortKey]),
  ].filter((key) => key !== undefined);
  const attributes = new Map<string, AttributeDefinition>();
  for (const key of keys) attributes.set(key.name, { AttributeName: key.name, AttributeType: key.type });
  const indexes: GlobalSecondaryIndex[] = definition.globalIndexes.map((index) => ({
    IndexName: index.indexName,
    KeySchema: keySchema(index.partitionKey, index.sortKey),
    Projection: { ProjectionType: index.projection ?? 'ALL' },
  }));
  await client.send(
    new CreateTableCommand({
      TableName: name,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [...attributes.values()],
      KeySchema: keySchema(definition.partitionKey, definition.sortKey),
      ...(indexes.length > 0 ? { GlobalSecondaryIndexes: indexes } : {}),
      ...(definition.stream
        ? { StreamSpecification: { StreamEnabled: true, StreamViewType: 'NEW_IMAGE' } }
        : {}),
    }),
  );
  // DynamoDB Local accepts the TTL setting (so the table matches the stack's); whether it ever
  // deletes expired items does not matter here: no test waits for an expiry.
  await client.send(
    new UpdateTimeToLiveCommand({
      TableName: name,
      TimeToLiveSpecification: { AttributeName: definition.ttlAttribute, Enabled: true },
    }),
  );
  return name;
}

/** Creates the four tables of tables.ts under `<prefix>-<logical name>`. */
export async function createTables(client: DynamoDBDocumentClient, prefix: string): Promise<TableNames> {
  const [events, partners, subscriptions, deliveries] = await Promise.all(
    [EVENTS_TABLE, PARTNERS_TABLE, SUBSCRIPTIONS_TABLE, DELIVERIES_TABLE].map((definition) =>
      createTable(client, definition, prefix),
    ),
  );
  if (
    events === undefined ||
    partners === undefined ||
    subscriptions === undefined ||
    deliveries === undefined
  ) {
    throw new Error('expected four table names');
  }
  return { events, partners, subscriptions, deliveries };
}

/** Deletes the tables (keeping the in-memory emulator small); already gone is fine. */
export async function deleteTables(client: DynamoDBDocumentClient, names: readonly string[]): Promise<void> {
  await Promise.all(
    names.map(async (name) => {
      try {
        await client.send(new DeleteTableCommand({ TableName: name }));
      } catch (error) {
        if (!(error instanceof ResourceNotFoundException)) throw error;
      }
    }),
  );
}

/**
 * For a test file: one document client for the whole file, and tables made by `table` for one
 * test and deleted after it. Call at the top level of the file (it registers the hooks).
 */
export function tablesPerTest(label: string): {
  client: DynamoDBDocumentClient;
  table(definition: TableDefinition): Promise<string>;
} {
  const client = localDocumentClient();
  const created: string[] = [];
  afterEach(async () => {
    await deleteTables(client, created.splice(0));
  });
  afterAll(() => {
    client.destroy();
  });
  return {
    client,
    async table(definition) {
      const name = await createTable(client, definition, uniquePrefix(label));
      created.push(name);
      return name;
    },
  };
}
