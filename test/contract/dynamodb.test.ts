/**
 * The contract suites on the DynamoDB adapters, against the run's DynamoDB Local (see
 * test/dynamodb-local/global-setup.ts). Every test gets a table of its own, so no test sees
 * another's items.
 */
import { type DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll } from 'vitest';
import { DynamoConsumerStore } from '../../functions/adapters/aws/consumers.ts';
import { DynamoDeliveryStore } from '../../functions/adapters/aws/deliveries.ts';
import { DynamoEventLog } from '../../functions/adapters/aws/events.ts';
import { DynamoOrderedLines } from '../../functions/adapters/aws/ordered-lines.ts';
import { DynamoPartnerStore } from '../../functions/adapters/aws/partners.ts';
import { DynamoSubscriptionStore } from '../../functions/adapters/aws/subscriptions.ts';
import {
  DELIVERIES_TABLE,
  EVENTS_TABLE,
  PARTNERS_TABLE,
  SUBSCRIPTIONS_TABLE,
  type TableDefinition,
} from '../../functions/adapters/aws/tables.ts';
import { createTable, deleteTables, localDocumentClient, uniquePrefix } from '../dynamodb-local/tables.ts';
import { testCipher } from '../support/cipher.ts';
import { consumerStoreContract } from './consumer-store.contract.ts';
import { deliveryStoreContract } from './delivery-store.contract.ts';
import { eventLogContract } from './event-log.contract.ts';
import { orderedLinesContract } from './ordered-lines.contract.ts';
import { partnerStoreContract } from './partner-store.contract.ts';
import { subscriptionStoreContract } from './subscription-store.contract.ts';

const NAME = 'DynamoDB Local';

let client: DynamoDBDocumentClient;

beforeAll(() => {
  client = localDocumentClient();
});

afterAll(() => {
  client.destroy();
});

/** A fresh table for one test, and how to drop it. */
async function freshTable(definition: TableDefinition): Promise<{ name: string; close(): Promise<void> }> {
  const name = await createTable(client, definition, uniquePrefix('contract'));
  return { name, close: () => deleteTables(client, [name]) };
}

eventLogContract(NAME, async () => {
  const table = await freshTable(EVENTS_TABLE);
  return { log: new DynamoEventLog(client, table.name), close: table.close };
});

consumerStoreContract(NAME, async () => {
  const table = await freshTable(EVENTS_TABLE);
  return { consumers: new DynamoConsumerStore(client, table.name), close: table.close };
});

partnerStoreContract(NAME, async () => {
  const table = await freshTable(PARTNERS_TABLE);
  return { partners: new DynamoPartnerStore(client, table.name), close: table.close };
});

subscriptionStoreContract(NAME, async () => {
  const table = await freshTable(SUBSCRIPTIONS_TABLE);
  return {
    subscriptions: new DynamoSubscriptionStore(client, table.name, testCipher()),
    storedSecrets: async (id) =>
      (await client.send(new GetCommand({ TableName: table.name, Key: { id }, ConsistentRead: true }))).Item
        ?.secrets,
    storeClearSecrets: async (id, secrets) => {
      await client.send(
        new UpdateCommand({
          TableName: table.name,
          Key: { id },
          UpdateExpression: 'SET secrets = :secrets',
          ExpressionAttributeValues: { ':secrets': secrets },
        }),
      );
    },
    close: table.close,
  };
});

deliveryStoreContract(NAME, async () => {
  const table = await freshTable(DELIVERIES_TABLE);
  return { deliveries: new DynamoDeliveryStore(client, table.name), close: table.close };
});

orderedLinesContract(NAME, async () => {
  const table = await freshTable(DELIVERIES_TABLE);
  return { lines: new DynamoOrderedLines(client, table.name), close: table.close };
});
