/**
 * The AWS SDK clients, created once per cold start at module scope and passed to the adapters
 * (never created inside a handler). Region and credentials come from the Lambda environment.
 * The SQS client is in sqs-client.ts, imported only by the functions that use it.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

export const dynamoClient = DynamoDBDocumentClient.from(new DynamoDBClient({}), {
  marshallOptions: { removeUndefinedValues: true },
});
