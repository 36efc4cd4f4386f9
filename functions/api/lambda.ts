/** Lambda entry of the HTTP API: the API handler on DynamoDB. */
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';
import { dynamoClient } from '../adapters/aws/clients.ts';
import { ApiGatewayConnectionSender, DynamoConnections } from '../adapters/aws/connections.ts';
import { rememberingKmsCipher } from '../adapters/aws/kms-cipher.ts';
import { kmsClient } from '../adapters/aws/kms-client.ts';
import { API_REQUEST_ID_PATH, logError, logger } from '../adapters/aws/logger.ts';
import { DynamoPartnerStore } from '../adapters/aws/partners.ts';
import { sqsClient } from '../adapters/aws/sqs-client.ts';
import {
  consumerStore,
  deliveryLanes,
  deliveryStore,
  eventLog,
  requestLimits,
  subscriptionStore,
} from '../adapters/aws/wiring.ts';
import { systemClock } from '../adapters/clock.ts';
import { systemResolver } from '../adapters/dns.ts';
import { JsonataTransformer } from '../adapters/jsonata/transformer.ts';
import { loadLambdaConfig } from '../config.ts';
import { closingRevokedConnections, HEARTBEAT_SECONDS } from '../core/connection-protocol.ts';
import { createApiHandler } from './handler.ts';

const config = loadLambdaConfig([
  'eventsTable',
  'partnersTable',
  'subscriptionsTable',
  'secretsKeyArn',
  'deliveriesTable',
  'allowPrivateTargets',
  'retentionDays',
  'egressIps',
  'deliveryQueueUrl',
  'slowLaneQueueUrl',
  'partnerRequestsPerSecond',
  'producerRequestsPerSecond',
  'deliveryTimeoutMs',
  'connectionsTable',
  'connectionsEndpoint',
  'connectUrl',
]);

/** Partners' open connections: a revoked key's are closed at once. */
const connections = new DynamoConnections(dynamoClient, {
  tableName: config.connectionsTable,
  sender: new ApiGatewayConnectionSender(
    new ApiGatewayManagementApiClient({ endpoint: config.connectionsEndpoint }),
  ),
});

export const handler = createApiHandler(
  {
    events: eventLog(dynamoClient, config),
    partners: closingRevokedConnections(
      new DynamoPartnerStore(dynamoClient, config.partnersTable),
      connections,
      // The key is revoked; each of its connections is closed at its next ping (30 s) instead.
      (error) => logError('closing a revoked key’s connections failed', error),
    ),
    subscriptions: subscriptionStore(
      dynamoClient,
      config,
      rememberingKmsCipher(kmsClient, config.secretsKeyArn),
    ),
    deliveries: deliveryStore(dynamoClient, config),
    consumers: consumerStore(dynamoClient, config),
    retentionDays: config.retentionDays,
    deliveryQueue: deliveryLanes(sqsClient, config),
    clock: systemClock,
    resolver: systemResolver,
    allowPrivateTargets: config.allowPrivateTargets,
    egressIps: config.egressIps,
    // Checks transformations as they are set; evaluates previews on a worker thread.
    transformer: new JsonataTransformer(),
    connect: {
      url: () => config.connectUrl,
      heartbeatSeconds: HEARTBEAT_SECONDS,
      ackTimeoutSeconds: Math.floor(config.deliveryTimeoutMs / 1000),
    },
    ...requestLimits(dynamoClient, config),
  },
  logError,
).use(injectLambdaContext(logger, { correlationIdPath: API_REQUEST_ID_PATH }));
