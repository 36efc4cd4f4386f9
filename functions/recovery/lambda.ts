/**
 * Lambda entry of the pipe's recovery: its dead letters' events back onto the fan-out queue,
 * from the recovery queue (an SQS event source) or, invoked directly, from the dead-letter
 * queue itself.
 */
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { dynamoClient } from '../adapters/aws/clients.ts';
import { logError, logger } from '../adapters/aws/logger.ts';
import { sqsClient } from '../adapters/aws/sqs-client.ts';
import { SqsDeadLetterSource, SqsQueue } from '../adapters/aws/sqs-queue.ts';
import { eventLog } from '../adapters/aws/wiring.ts';
import { systemClock } from '../adapters/clock.ts';
import { loadLambdaConfig } from '../config.ts';
import type { EventRef } from '../core/model.ts';
import { createRecoveryHandler } from './handler.ts';

const config = loadLambdaConfig(['eventsTable', 'fanoutQueueUrl', 'pipeDeadLetterQueueUrl']);

/** Time a direct invocation gives itself of its function's 15 minutes, leaving room to answer. */
const BUDGET_MS = 13 * 60_000;

export const handler = createRecoveryHandler(
  {
    events: eventLog(dynamoClient, config),
    fanout: new SqsQueue<EventRef>(sqsClient, config.fanoutQueueUrl),
    deadLetters: new SqsDeadLetterSource(sqsClient, config.pipeDeadLetterQueueUrl),
    clock: systemClock,
  },
  BUDGET_MS,
  logError,
).use(injectLambdaContext(logger));
