/** Lambda entry of the dispatcher: signed POSTs for the delivery queues' messages (both lanes). */
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { dynamoClient } from '../adapters/aws/clients.ts';
import { DynamoDeliveryStore } from '../adapters/aws/deliveries.ts';
import { deliveryMetrics } from '../adapters/aws/delivery-metrics.ts';
import { SqsDeliveryQueue } from '../adapters/aws/delivery-queue.ts';
import { DynamoDueRetryStore } from '../adapters/aws/due-retries.ts';
import { DynamoEventLog } from '../adapters/aws/events.ts';
import { KmsSecretCipher } from '../adapters/aws/kms-cipher.ts';
import { kmsClient } from '../adapters/aws/kms-client.ts';
import { logError, logger } from '../adapters/aws/logger.ts';
import { sqsClient } from '../adapters/aws/sqs-client.ts';
import { SqsQueue } from '../adapters/aws/sqs-queue.ts';
import { DynamoSubscriptionStore } from '../adapters/aws/subscriptions.ts';
import { systemClock } from '../adapters/clock.ts';
import { HttpCallbackSender } from '../adapters/http/callback-sender.ts';
import { RememberingCipher } from '../adapters/secrets/remembering-cipher.ts';
import { loadLambdaConfig } from '../config.ts';
import type { DeliveryMessage } from '../core/model.ts';
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
]);

/** Namespace and service from the environment the stack sets (POWERTOOLS_METRICS_NAMESPACE, POWERTOOLS_SERVICE_NAME). */
const metrics = new Metrics();

export const handler = createDispatcherHandler(
  {
    // It appends subscription.disabled events, which keep the deployment's retention.
    events: new DynamoEventLog(dynamoClient, config.eventsTable, { retentionDays: config.retentionDays }),
    subscriptions: new DynamoSubscriptionStore(
      dynamoClient,
      config.subscriptionsTable,
      new RememberingCipher(new KmsSecretCipher(kmsClient, config.secretsKeyArn)),
    ),
    deliveries: new DynamoDeliveryStore(dynamoClient, config.deliveriesTable, {
      retentionDays: config.retentionDays,
    }),
    // The agents outlive invocations: warm starts reuse their keep-alive connections.
    sender: new HttpCallbackSender({ allowPrivateTargets: config.allowPrivateTargets }),
    queue: new SqsDeliveryQueue({
      main: new SqsQueue<DeliveryMessage>(sqsClient, config.deliveryQueueUrl),
      slow: new SqsQueue<DeliveryMessage>(sqsClient, config.slowLaneQueueUrl),
      deadLetters: new SqsQueue<DeliveryMessage>(sqsClient, config.deliveryDeadLetterQueueUrl),
      due: new DynamoDueRetryStore(dynamoClient, config.deliveriesTable),
    }),
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
