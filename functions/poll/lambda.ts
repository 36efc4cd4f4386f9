/**
 * Lambda entry of the polling routes (GET /v1/events, a consumer's events): the polling handler on DynamoDB, in a
 * function of 128 MB, since a long poll is billed for its wait by the function's memory.
 */
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { dynamoClient } from '../adapters/aws/clients.ts';
import { API_REQUEST_ID_PATH, logError, logger } from '../adapters/aws/logger.ts';
import { consumerStore, eventLog, requestLimits } from '../adapters/aws/wiring.ts';
import { systemClock } from '../adapters/clock.ts';
import { createPollHandler } from '../api/polling.ts';
import { loadLambdaConfig } from '../config.ts';

const config = loadLambdaConfig([
  'eventsTable',
  'partnersTable',
  'retentionDays',
  'partnerRequestsPerSecond',
  'producerRequestsPerSecond',
]);

export const handler = createPollHandler(
  {
    events: eventLog(dynamoClient, config),
    consumers: consumerStore(dynamoClient, config),
    clock: systemClock,
    retentionDays: config.retentionDays,
    // The same counts as the API function's: a partner's requests to either count once.
    ...requestLimits(dynamoClient, config),
  },
  logError,
).use(injectLambdaContext(logger, { correlationIdPath: API_REQUEST_ID_PATH }));
