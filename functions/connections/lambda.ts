/**
 * Lambda entry of the connections function: the WebSocket API's `$connect`, `$disconnect` and
 * `$default` routes over the connections table, the partners' keys, their subscriptions (never
 * their secrets) and the tries parked until a connection opens.
 */

import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';
import { dynamoClient } from '../adapters/aws/clients.ts';
import {
  ApiGatewayConnectionSender,
  DynamoConnections,
  DynamoParkedTries,
  releasingTo,
} from '../adapters/aws/connections.ts';
import { logError, logger } from '../adapters/aws/logger.ts';
import { DynamoPartnerStore } from '../adapters/aws/partners.ts';
import { sqsClient } from '../adapters/aws/sqs-client.ts';
import { SqsQueue } from '../adapters/aws/sqs-queue.ts';
import { DynamoSubscriptionStore } from '../adapters/aws/subscriptions.ts';
import { systemClock } from '../adapters/clock.ts';
import { refusingCipher } from '../adapters/secrets/refusing-cipher.ts';
import { loadLambdaConfig } from '../config.ts';
import type { DeliveryMessage } from '../core/model.ts';
import { createConnectionsHandler } from './handler.ts';

const config = loadLambdaConfig([
  'connectionsTable',
  'connectionsEndpoint',
  'partnersTable',
  'subscriptionsTable',
  'deliveriesTable',
  'deliveryQueueUrl',
  'deliveryTimeoutMs',
  'retentionDays',
]);

const sender = new ApiGatewayConnectionSender(
  new ApiGatewayManagementApiClient({ endpoint: config.connectionsEndpoint }),
);
const registry = new DynamoConnections(dynamoClient, { tableName: config.connectionsTable, sender });
const parked = new DynamoParkedTries(dynamoClient, {
  tableName: config.deliveriesTable,
  retentionDays: config.retentionDays,
});

export const handler = createConnectionsHandler({
  partners: new DynamoPartnerStore(dynamoClient, config.partnersTable),
  // It reads which subscriptions a connection serves, never a signing secret.
  subscriptions: new DynamoSubscriptionStore(dynamoClient, config.subscriptionsTable, refusingCipher),
  clock: systemClock,
  registry,
  sender,
  // Released tries go to the main lane; a failing endpoint's move to the slow lane as usual.
  parked: releasingTo(parked, new SqsQueue<DeliveryMessage>(sqsClient, config.deliveryQueueUrl)),
  ackTimeoutSeconds: Math.floor(config.deliveryTimeoutMs / 1000),
  log: (message, error) => (error === undefined ? logger.info(message) : logError(message, error)),
}).use(injectLambdaContext(logger));
