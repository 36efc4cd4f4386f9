/**
 * Lambda entry of the ops routes (`/v1/admin/…`): the queues on SQS, the dead letters explained
 * from the DynamoDB deliveries and subscriptions (read only, their secrets left sealed), and the
 * dispatcher's delivery rates from CloudWatch.
 */
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { dynamoClient } from '../adapters/aws/clients.ts';
import { CloudWatchDeliveryRates, CloudWatchQueueAges } from '../adapters/aws/cloudwatch.ts';
import { cloudWatchClient } from '../adapters/aws/cloudwatch-client.ts';
import { DynamoDeliveryStore } from '../adapters/aws/deliveries.ts';
import { API_REQUEST_ID_PATH, logError, logger } from '../adapters/aws/logger.ts';
import { sqsClient } from '../adapters/aws/sqs-client.ts';
import { DynamoSubscriptionStore } from '../adapters/aws/subscriptions.ts';
import { opsQueues, requestLimits } from '../adapters/aws/wiring.ts';
import { systemClock } from '../adapters/clock.ts';
import { refusingCipher } from '../adapters/secrets/refusing-cipher.ts';
import { createOpsHandler } from '../api/ops.ts';
import { loadLambdaConfig } from '../config.ts';

const config = loadLambdaConfig([
  'fanoutQueueUrl',
  'fanoutDeadLetterQueueUrl',
  'deliveryQueueUrl',
  'deliveryDeadLetterQueueUrl',
  'slowLaneQueueUrl',
  'slowLaneDeadLetterQueueUrl',
  'pipeRecoveryQueueUrl',
  'pipeDeadLetterQueueUrl',
  'subscriptionsTable',
  'deliveriesTable',
  'partnersTable',
  'deliveryMetricsNamespace',
  'partnerRequestsPerSecond',
  'producerRequestsPerSecond',
]);

/** A redrive of at most `max` messages moves them for this long, within the function's 25 s. */
const MOVE_BUDGET_MS = 15_000;

export const handler = createOpsHandler(
  {
    ops: {
      queues: opsQueues(sqsClient, config, {
        ages: new CloudWatchQueueAges(cloudWatchClient),
        moveBudgetMs: MOVE_BUDGET_MS,
      }),
      deliveries: new DynamoDeliveryStore(dynamoClient, config.deliveriesTable),
      // Ops read subscriptions with describe and listByHealth only, which never open a secret.
      subscriptions: new DynamoSubscriptionStore(dynamoClient, config.subscriptionsTable, refusingCipher),
      rates: new CloudWatchDeliveryRates(cloudWatchClient, config.deliveryMetricsNamespace),
    },
    clock: systemClock,
    // The same counts as the API function's: a producer's requests to either count once.
    ...requestLimits(dynamoClient, config),
  },
  logError,
).use(injectLambdaContext(logger, { correlationIdPath: API_REQUEST_ID_PATH }));
