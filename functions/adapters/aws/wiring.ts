/**
 * The AWS adapters as the Lambda entries wire them, from the settings each reads: one place
 * for how a store or a queue is made, so the entries differ only in what they use. Clients and
 * the secrets' cipher are passed in, never imported here: an entry that does not use KMS (the
 * sweeper, the recovery) must not load its package at every cold start.
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { LambdaConfig } from '../../config.ts';
import { type RequestLimits, rememberingRefusals } from '../../core/limits.ts';
import type { DeliveryMessage } from '../../core/model.ts';
import type { RateLimiter, SecretCipher } from '../../core/ports.ts';
import { DynamoConsumerStore } from './consumers.ts';
import { DynamoDeliveryStore } from './deliveries.ts';
import { SqsDeliveryQueue } from './delivery-queue.ts';
import { DynamoDueRetryStore } from './due-retries.ts';
import { DynamoEventLog } from './events.ts';
import { DynamoOrderedLines } from './ordered-lines.ts';
import { DynamoRateLimiter } from './rate-limiter.ts';
import { AWS_OPS_QUEUES, type OpsQueueUrls, SqsOpsQueues, type SqsOpsQueuesOptions } from './sqs-ops.ts';
import { SqsQueue } from './sqs-queue.ts';
import { DynamoSubscriptionStore } from './subscriptions.ts';

/** The partners' consumers, kept in the events table beside the log they read. */
export function consumerStore(
  dynamo: DynamoDBDocumentClient,
  config: Pick<LambdaConfig, 'eventsTable'>,
): DynamoConsumerStore {
  return new DynamoConsumerStore(dynamo, config.eventsTable);
}

/** The event log; appends keep the deployment's retention when it is given. */
export function eventLog(
  dynamo: DynamoDBDocumentClient,
  config: Pick<LambdaConfig, 'eventsTable'> & Partial<Pick<LambdaConfig, 'retentionDays'>>,
): DynamoEventLog {
  return new DynamoEventLog(
    dynamo,
    config.eventsTable,
    config.retentionDays === undefined ? {} : { retentionDays: config.retentionDays },
  );
}

/** The subscriptions, their signing secrets sealed and opened with `cipher`. */
export function subscriptionStore(
  dynamo: DynamoDBDocumentClient,
  config: Pick<LambdaConfig, 'subscriptionsTable'>,
  cipher: SecretCipher,
): DynamoSubscriptionStore {
  return new DynamoSubscriptionStore(dynamo, config.subscriptionsTable, cipher);
}

/** The deliveries, expiring with the deployment's retention. */
export function deliveryStore(
  dynamo: DynamoDBDocumentClient,
  config: Pick<LambdaConfig, 'deliveriesTable' | 'retentionDays'>,
): DynamoDeliveryStore {
  return new DynamoDeliveryStore(dynamo, config.deliveriesTable, { retentionDays: config.retentionDays });
}

/**
 * Ordered subscriptions' gates and lines, in the deliveries table; what waits in them expires
 * with the deliveries.
 */
export function orderedLines(
  dynamo: DynamoDBDocumentClient,
  config: Pick<LambdaConfig, 'deliveriesTable' | 'retentionDays'>,
): DynamoOrderedLines {
  return new DynamoOrderedLines(dynamo, config.deliveriesTable, { retentionDays: config.retentionDays });
}

/**
 * The delivery queues' two lanes; with `dispatcher`, also their dead-letter queue and the due
 * retries of the deliveries table, which only the dispatcher puts into.
 */
export function deliveryLanes(
  sqs: SQSClient,
  config: Pick<LambdaConfig, 'deliveryQueueUrl' | 'slowLaneQueueUrl'>,
  dispatcher?: {
    dynamo: DynamoDBDocumentClient;
    config: Pick<LambdaConfig, 'deliveryDeadLetterQueueUrl' | 'deliveriesTable'>;
  },
): SqsDeliveryQueue {
  return new SqsDeliveryQueue({
    main: new SqsQueue<DeliveryMessage>(sqs, config.deliveryQueueUrl),
    slow: new SqsQueue<DeliveryMessage>(sqs, config.slowLaneQueueUrl),
    ...(dispatcher === undefined
      ? {}
      : {
          deadLetters: new SqsQueue<DeliveryMessage>(sqs, dispatcher.config.deliveryDeadLetterQueueUrl),
          due: new DynamoDueRetryStore(dispatcher.dynamo, dispatcher.config.deliveriesTable),
        }),
  });
}

/**
 * The callers' request limits and their counts: in the partners table, shared by every
 * instance of every function that serves the API; a caller refused once is refused by this
 * instance until its window ends without another write.
 */
export function requestLimits(
  dynamo: DynamoDBDocumentClient,
  config: Pick<LambdaConfig, 'partnersTable' | 'partnerRequestsPerSecond' | 'producerRequestsPerSecond'>,
): { limiter: RateLimiter; limits: RequestLimits } {
  return {
    limiter: rememberingRefusals(new DynamoRateLimiter(dynamo, config.partnersTable)),
    limits: {
      partnerPerSecond: config.partnerRequestsPerSecond,
      producerPerSecond: config.producerRequestsPerSecond,
    },
  };
}

/**
 * Every queue of the deployment as ops name them (AWS_OPS_QUEUES), from the settings that hold
 * their URLs; their ARNs are read from SQS when first needed.
 */
export function opsQueues(
  sqs: SQSClient,
  config: Pick<LambdaConfig, keyof OpsQueueUrls>,
  options: SqsOpsQueuesOptions = {},
): SqsOpsQueues {
  return new SqsOpsQueues(
    sqs,
    AWS_OPS_QUEUES.map(({ key, ...queue }) => ({ ...queue, url: config[key] })),
    options,
  );
}
