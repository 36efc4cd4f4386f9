/** Lambda entry of fan-out: event references from the fan-out queue, deliveries onto the delivery queues. */
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { dynamoClient } from '../adapters/aws/clients.ts';
import { DynamoDeliveryStore } from '../adapters/aws/deliveries.ts';
import { SqsDeliveryQueue } from '../adapters/aws/delivery-queue.ts';
import { seqInId } from '../adapters/aws/events.ts';
import { KmsSecretCipher } from '../adapters/aws/kms-cipher.ts';
import { kmsClient } from '../adapters/aws/kms-client.ts';
import { logError, logger } from '../adapters/aws/logger.ts';
import { sqsClient } from '../adapters/aws/sqs-client.ts';
import { SqsQueue } from '../adapters/aws/sqs-queue.ts';
import { DynamoSubscriptionStore } from '../adapters/aws/subscriptions.ts';
import { systemClock } from '../adapters/clock.ts';
import { RememberingCipher } from '../adapters/secrets/remembering-cipher.ts';
import { loadLambdaConfig } from '../config.ts';
import type { DeliveryMessage } from '../core/model.ts';
import { createFanoutHandler } from './handler.ts';

const config = loadLambdaConfig([
  'subscriptionsTable',
  'secretsKeyArn',
  'deliveriesTable',
  'deliveryQueueUrl',
  'slowLaneQueueUrl',
  'retentionDays',
]);

export const handler = createFanoutHandler(
  {
    subscriptions: new DynamoSubscriptionStore(
      dynamoClient,
      config.subscriptionsTable,
      new RememberingCipher(new KmsSecretCipher(kmsClient, config.secretsKeyArn)),
    ),
    deliveries: new DynamoDeliveryStore(dynamoClient, config.deliveriesTable, {
      retentionDays: config.retentionDays,
    }),
    // A failing endpoint's new deliveries go straight to the slow lane.
    deliveryQueue: new SqsDeliveryQueue({
      main: new SqsQueue<DeliveryMessage>(sqsClient, config.deliveryQueueUrl),
      slow: new SqsQueue<DeliveryMessage>(sqsClient, config.slowLaneQueueUrl),
    }),
    clock: systemClock,
    // A main-lane delivery is stored with its first try: one write instead of two. Not for an
    // event from before ids said their place, whose delivery may be stored already under the
    // id it had then (the store looks for it).
    storeAtFirstTry: (event) => seqInId(event.partnerId, event.id) !== undefined,
  },
  logError,
).use(injectLambdaContext(logger));
