/** Lambda entry of the sweeper: due retries into the delivery queues, every minute. */
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { dynamoClient } from '../adapters/aws/clients.ts';
import { DynamoDueRetryStore } from '../adapters/aws/due-retries.ts';
import { logger } from '../adapters/aws/logger.ts';
import { sqsClient } from '../adapters/aws/sqs-client.ts';
import { deliveryLanes } from '../adapters/aws/wiring.ts';
import { systemClock } from '../adapters/clock.ts';
import { loadLambdaConfig } from '../config.ts';
import { DUE_LOOKAHEAD_SECONDS, SWEEP_BUDGET_MS } from '../core/due-retries.ts';
import { createSweeperHandler } from './handler.ts';

const config = loadLambdaConfig(['deliveriesTable', 'deliveryQueueUrl', 'slowLaneQueueUrl']);

export const handler = createSweeperHandler(
  {
    due: new DynamoDueRetryStore(dynamoClient, config.deliveriesTable),
    queue: deliveryLanes(sqsClient, config),
    clock: systemClock,
  },
  { lookaheadSeconds: DUE_LOOKAHEAD_SECONDS, budgetMs: SWEEP_BUDGET_MS },
).use(injectLambdaContext(logger));
