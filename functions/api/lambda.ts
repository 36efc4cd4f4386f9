/** Lambda entry of the HTTP API: the API handler on DynamoDB. */
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { dynamoClient } from '../adapters/aws/clients.ts';
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
import { loadLambdaConfig } from '../config.ts';
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
]);

export const handler = createApiHandler(
  {
    events: eventLog(dynamoClient, config),
    partners: new DynamoPartnerStore(dynamoClient, config.partnersTable),
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
    ...requestLimits(dynamoClient, config),
  },
  logError,
).use(injectLambdaContext(logger, { correlationIdPath: API_REQUEST_ID_PATH }));
