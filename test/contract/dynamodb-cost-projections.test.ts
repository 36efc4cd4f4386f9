/**
 * The DeliveryStore contract on a deliveries table whose indexes hold keys only, as its
 * definition asks (functions/adapters/aws/tables.ts) to keep tries from writing index entries:
 * the adapter lists through such indexes as well as through ones that project everything.
 */
import { CreateTableCommand, type KeySchemaElement } from '@aws-sdk/client-dynamodb';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll } from 'vitest';
import { DynamoDeliveryStore } from '../../functions/adapters/aws/deliveries.ts';
import { DELIVERIES_TABLE, type KeyAttribute } from '../../functions/adapters/aws/tables.ts';
import { deleteTables, localDocumentClient, uniquePrefix } from '../dynamodb-local/tables.ts';
import { deliveryStoreContract } from './delivery-store.contract.ts';

let client: DynamoDBDocumentClient;

beforeAll(() => {
  client = localDocumentClient();
});

afterAll(() => {
  client.destroy();
});

function keySchema(partition: KeyAttribute, sort: KeyAttribute | undefined): KeySchemaElement[] {
  return [
    { AttributeName: partition.name, KeyType: 'HASH' },
    ...(sort === undefined ? [] : [{ AttributeName: sort.name, KeyType: 'RANGE' as const }]),
  ];
}

/** The deliveries table with each index projected as its definition says. */
async function deliveriesTable(): Promise<string> {
  const name = `${uniquePrefix('projections')}-${DELIVERIES_TABLE.name}`;
  const definition = DELIVERIES_TABLE;
  const keys = [
    definition.partitionKey,
    definition.sortKey,
    ...definition.globalIndexes.flatMap((index) => [index.partitionKey, index.sortKey]),
  ].filter((key) => key !== undefined);
  await client.send(
    new CreateTableCommand({
      TableName: name,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [...new Map(keys.map((k) => [k.name, k])).values()].map((k) => ({
        AttributeName: k.name,
        AttributeType: k.type,
      })),
      KeySchema: keySchema(definition.partitionKey, definition.sortKey),
      GlobalSecondaryIndexes: definition.globalIndexes.map((index) => ({
        IndexName: index.indexName,
        KeySchema: keySchema(index.partitionKey, index.sortKey),
        Projection: { ProjectionType: index.projection ?? 'ALL' },
      })),
    }),
  );
  return name;
}

deliveryStoreContract('DynamoDB Local, indexes projected as defined', async () => {
  const name = await deliveriesTable();
  return { deliveries: new DynamoDeliveryStore(client, name), close: () => deleteTables(client, [name]) };
});
