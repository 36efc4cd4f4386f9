/** Lambda entry of fan-out: bus events from the fan-out queue, deliveries onto the delivery queue. */
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { dynamoClient } from '../adapters/aws/clients.ts';
import { DynamoDeliveryStore } from '../adapters/aws/deliveries.ts';
import { logError, logger } from '../adapters/aws/logger.ts';
import { sqsClient } from '../adapters/aws/sqs-client.ts';
import { SqsQueue } from '../adapters/aws/sqs-queue.ts';
import { DynamoSubscriptionStore } from '../adapters/aws/subscriptions.ts';
import { loadLambdaConfig } from '../config.ts';
import type { DeliveryMessage } from '../core/model.ts';
import { systemClock } from '../ports.ts';
import { createFanoutHandler } from './handler.ts';

const config = loadLambdaConfig([
  'subscriptionsTable',
  'deliveriesTable',
  'deliveryQueueUrl',
  'retentionDays',
]);

export const handler = createFanoutHandler(
  {
    subscriptions: new DynamoSubscriptionStore(dynamoClient, config.subscriptionsTable),
    deliveries: new DynamoDeliveryStore(dynamoClient, config.deliveriesTable, {
      retentionDays: config.retentionDays,
    }),
    deliveryQueue: new SqsQueue<DeliveryMessage>(sqsClient, config.deliveryQueueUrl),
    clock: systemClock,
  },
  logError,
).use(injectLambdaContext(logger));
