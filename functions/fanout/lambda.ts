/**
 * Lambda entry of fan-out: event references from the fan-out queue, deliveries onto the delivery
 * queues (a keyed event parked at its key's gate back onto the fan-out queue, in its turn).
 */
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { dynamoClient } from '../adapters/aws/clients.ts';
import { seqInId } from '../adapters/aws/events.ts';
import { rememberingKmsCipher } from '../adapters/aws/kms-cipher.ts';
import { kmsClient } from '../adapters/aws/kms-client.ts';
import { logError, logger } from '../adapters/aws/logger.ts';
import { sqsClient } from '../adapters/aws/sqs-client.ts';
import { SqsQueue } from '../adapters/aws/sqs-queue.ts';
import {
  deliveryLanes,
  deliveryStore,
  eventLog,
  orderedLines,
  subscriptionStore,
} from '../adapters/aws/wiring.ts';
import { systemClock } from '../adapters/clock.ts';
import { loadLambdaConfig } from '../config.ts';
import type { EventRef } from '../core/model.ts';
import { createFanoutHandler } from './handler.ts';

const config = loadLambdaConfig([
  'eventsTable',
  'subscriptionsTable',
  'secretsKeyArn',
  'deliveriesTable',
  'deliveryQueueUrl',
  'slowLaneQueueUrl',
  'fanoutQueueUrl',
  'retentionDays',
]);

export const handler = createFanoutHandler(
  {
    subscriptions: subscriptionStore(
      dynamoClient,
      config,
      rememberingKmsCipher(kmsClient, config.secretsKeyArn),
    ),
    // An event's payload, read only for subscriptions with a payload filter.
    events: eventLog(dynamoClient, config),
    deliveries: deliveryStore(dynamoClient, config),
    // A failing endpoint's new deliveries go straight to the slow lane.
    deliveryQueue: deliveryLanes(sqsClient, config),
    clock: systemClock,
    // A main-lane delivery is stored with its first try: one write instead of two. Not for an
    // event from before ids said their place, whose delivery may be stored already under the
    // id it had then (the store looks for it).
    storeAtFirstTry: (event) => seqInId(event.partnerId, event.id) !== undefined,
    // Ordered subscriptions' key gates and lines, in the deliveries table.
    lines: orderedLines(dynamoClient, config),
    // Its own queue: an event parked at its key's gate is queued again once its turn comes.
    fanoutQueue: new SqsQueue<EventRef>(sqsClient, config.fanoutQueueUrl),
  },
  logError,
).use(injectLambdaContext(logger));
