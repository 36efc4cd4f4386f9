/** Lambda entry of the partner API's authorizer: API keys looked up by hash in DynamoDB. */
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { dynamoClient } from '../adapters/aws/clients.ts';
import { API_REQUEST_ID_PATH, logger } from '../adapters/aws/logger.ts';
import { DynamoPartnerStore } from '../adapters/aws/partners.ts';
import { systemClock } from '../adapters/clock.ts';
import { loadLambdaConfig } from '../config.ts';
import { createAuthorizerHandler } from './handler.ts';

const config = loadLambdaConfig(['partnersTable']);

export const handler = createAuthorizerHandler({
  partners: new DynamoPartnerStore(dynamoClient, config.partnersTable),
  clock: systemClock,
}).use(injectLambdaContext(logger, { correlationIdPath: API_REQUEST_ID_PATH }));
