/**
 * AWS's published quotas that this project designs around, one place for each, named after
 * the documentation page that states it. The CDK code, the adapters and the capacity model
 * read them from here, so a quota is never written down twice. Where a quota differs by
 * Region, the value is the largest Regions' (us-east-1, us-west-2, eu-west-1).
 */

/** https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-queues.html */
export const SQS = {
  /** Longest DelaySeconds of a message (or a queue's delay): 15 minutes. */
  maxDelaySeconds: 900,
  /**
   * Messages a standard queue holds in flight (received, not deleted), approximately. At the
   * quota a long-polling receive returns no messages and no error.
   */
  standardInFlight: 120_000,
  /** Longest visibility timeout: 12 hours. */
  maxVisibilityTimeoutSeconds: 43_200,
  /** Entries of one SendMessageBatch / DeleteMessageBatch / ChangeMessageVisibilityBatch. */
  maxBatchEntries: 10,
  /** Highest maxReceiveCount of a redrive policy. */
  maxReceiveCount: 1000,
  /**
   * How long a queue keeps a message unless told otherwise: 4 days; and at most: 14 days.
   * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html
   */
  defaultRetentionSeconds: 345_600,
  maxRetentionSeconds: 1_209_600,
  /**
   * Largest message: 256 KiB.
   * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html
   */
  maxMessageBytes: 262_144,
} as const;

/**
 * How a Lambda function's SQS event source scales: five concurrent batches at first, up to 300
 * more a minute while messages wait, MaximumConcurrency from 2 to 1000.
 * https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html
 */
export const SQS_EVENT_SOURCE = {
  initialConcurrency: 5,
  scaleUpPerMinute: 300,
  minMaximumConcurrency: 2,
  maxMaximumConcurrency: 1000,
} as const;

/** https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html */
export const LAMBDA = {
  /** Concurrent executions of all functions of an account in a Region (new accounts get less). */
  accountConcurrency: 1000,
  /** A synchronous invocation's response (the API function's answer): 6 MB. */
  maxSyncResponseBytes: 6 * 1024 * 1024,
} as const;

export const DYNAMODB = {
  /**
   * What one partition serves per second, however much the table has: 1,000 write units and
   * 3,000 read units. A new on-demand table is warm for 4,000 writes and 12,000 reads a second.
   * https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/warm-throughput-scenarios.html
   */
  partitionWriteUnitsPerSecond: 1000,
  partitionReadUnitsPerSecond: 3000,
  newOnDemandWarmWriteUnitsPerSecond: 4000,
  newOnDemandWarmReadUnitsPerSecond: 12_000,
  /**
   * One write unit writes 1 KB; a transactional write takes two, prepare and commit.
   * https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html
   * https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html
   */
  writeUnitBytes: 1024,
  transactionalWriteFactor: 2,
  /**
   * The table-level throughput quota that bounds an on-demand table without a maximum set.
   * https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/on-demand-capacity-mode-max-throughput.html
   */
  onDemandTableWriteUnitsPerSecond: 40_000,
  /**
   * The largest item, names and values together: 400 KB.
   * https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html
   */
  maxItemBytes: 400 * 1024,
} as const;

/**
 * Requests per second across all of an account's APIs in a Region (token bucket: steady rate,
 * burst). https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html
 */
export const API_GATEWAY = {
  accountRatePerSecond: 10_000,
  accountBurst: 5000,
  /**
   * The largest request an HTTP API passes on: 10 MB.
   * https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html
   */
  maxPayloadBytes: 10 * 1024 * 1024,
  /**
   * The longest an HTTP API waits for its integration (the API function) to answer: 30 s,
   * not increasable. Same page.
   */
  maxIntegrationTimeoutSeconds: 30,
} as const;

/**
 * A pipe reads each stream shard one batch at a time (ParallelizationFactor 1 unless set), and
 * maps each batch to its target's batch API: an SQS queue target takes at most 10 messages a
 * batch, one SendMessageBatch. A standard queue supports a nearly unlimited number of API
 * calls a second, per action, so no queue-side quota caps what the pipe sends.
 * https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-pipes-batching-concurrency.html
 * https://docs.aws.amazon.com/eventbridge/latest/pipes-reference/API_PipeSourceDynamoDBStreamParameters.html
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html
 */
export const PIPES = {
  defaultParallelizationFactor: 1,
  sqsTargetMaxBatch: 10,
} as const;
