/** Lambda entry of the dispatcher: signed POSTs for the delivery queues' messages (both lanes). */
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';
import { dynamoClient } from '../adapters/aws/clients.ts';
import {
  ApiGatewayConnectionPusher,
  ApiGatewayConnectionSender,
  DynamoConnections,
  DynamoParkedTries,
} from '../adapters/aws/connections.ts';
import { rememberingKmsCipher } from '../adapters/aws/kms-cipher.ts';
import { kmsClient } from '../adapters/aws/kms-client.ts';
import { logError, logger } from '../adapters/aws/logger.ts';
import { sqsClient } from '../adapters/aws/sqs-client.ts';
import {
  deliveryLanes,
  deliveryStore,
  eventLog,
  orderedLines,
  subscriptionStore,
} from '../adapters/aws/wiring.ts';
import { systemClock } from '../adapters/clock.ts';
import { deliveryMetrics } from '../adapters/delivery-metrics.ts';
import { HttpCallbackSender } from '../adapters/http/callback-sender.ts';
import { JsonataTransformer } from '../adapters/jsonata/transformer.ts';
import { loadLambdaConfig } from '../config.ts';
import { createDispatcherHandler } from './handler.ts';

const config = loadLambdaConfig([
  'eventsTable',
  'subscriptionsTable',
  'secretsKeyArn',
  'deliveriesTable',
  'deliveryQueueUrl',
  'slowLaneQueueUrl',
  'deliveryDeadLetterQueueUrl',
  'retrySchedule',
  'deliveryTimeoutMs',
  'allowPrivateTargets',
  'disableAfterMs',
  'retentionDays',
  'connectionsTable',
  'connectionsEndpoint',
]);

/** Namespace and service from the environment the stack sets (POWERTOOLS_METRICS_NAMESPACE, POWERTOOLS_SERVICE_NAME). */
const metrics = new Metrics();

export const handler = createDispatcherHandler(
  {
    // It appends subscription.disabled events, which keep the deployment's retention.
    events: eventLog(dynamoClient, config),
    subscriptions: subscriptionStore(
      dynamoClient,
      config,
      rememberingKmsCipher(kmsClient, config.secretsKeyArn),
    ),
    deliveries: deliveryStore(dynamoClient, config),
    // The agents outlive invocations: warm starts reuse their keep-alive connections.
    sender: new HttpCallbackSender({ allowPrivateTargets: config.allowPrivateTargets }),
    // Connection subscriptions' tries go down the partners' WebSocket connections.
    connections: new ApiGatewayConnectionPusher(
      new DynamoConnections(dynamoClient, {
        tableName: config.connectionsTable,
        sender: new ApiGatewayConnectionSender(
          new ApiGatewayManagementApiClient({ endpoint: config.connectionsEndpoint }),
        ),
      }),
      new DynamoParkedTries(dynamoClient, {
        tableName: config.deliveriesTable,
        retentionDays: config.retentionDays,
      }),
    ),
    queue: deliveryLanes(sqsClient, config, { dynamo: dynamoClient, config }),
    // Ordered subscriptions' lines: a try runs only as its line's head, and its end starts the next.
    lines: orderedLines(dynamoClient, config),
    // Subscriptions' transformations, evaluated on a worker thread.
    transformer: new JsonataTransformer(),
    clock: systemClock,
    retrySchedule: config.retrySchedule,
    deliveryTimeoutMs: config.deliveryTimeoutMs,
    disableAfterMs: config.disableAfterMs,
  },
  logError,
  deliveryMetrics(metrics),
)
  .use(injectLambdaContext(logger))
  // One line of embedded metrics per invocation, with every outcome of its batch.
  .use(logMetrics(metrics));
