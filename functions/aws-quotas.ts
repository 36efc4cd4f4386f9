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
  /**
   * File descriptors of one execution environment, sockets included: no environment holds more
   * connections open than this.
   */
  fileDescriptors: 1024,
  /**
   * Elastic network interfaces per VPC: the Hyperplane interfaces of every function attached to
   * it, a quota shared with other services (such as EFS); adjustable, to thousands.
   */
  enisPerVpc: 250,
} as const;

/**
 * A function attached to a VPC reaches it through Hyperplane network interfaces: one per pair of
 * subnet and security group it is given, shared by every function of the account with the same
 * pair, and created when the function is created or its VPC settings change, not when it is
 * invoked. Each carries up to 65,000 connections; past that, Lambda adds interfaces (each takes
 * an address of its subnet). An attached function left uninvoked for long has its interfaces
 * reclaimed, and its next invocation fails while they are made again.
 * https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html
 */
export const LAMBDA_VPC = {
  connectionsPerHyperplaneEni: 65_000,
} as const;

/** https://docs.aws.amazon.com/vpc/latest/userguide/nat-gateway-basics.html */
export const NAT_GATEWAY = {
  /**
   * Simultaneous connections through one gateway's address to one destination (its IP address,
   * port and protocol); past it, connections fail with port allocation errors (the gateway's
   * ErrorPortAllocation metric).
   */
  connectionsPerDestination: 55_000,
  /**
   * New connections a second to one destination that reach the same limit, ports being held
   * about a minute after a connection closes (about 55,000 a minute).
   */
  newConnectionsPerSecondPerDestination: 900,
  /** Bandwidth of one gateway: 5 Gbps at first, scaling on its own up to 100 Gbps. */
  baseGbps: 5,
  maxGbps: 100,
  /**
   * A connection idle this long is dropped.
   * https://docs.aws.amazon.com/vpc/latest/userguide/nat-gateway-troubleshooting.html
   */
  idleTimeoutSeconds: 350,
} as const;

/**
 * The first four addresses and the last of every subnet are AWS's (network, router, DNS,
 * reserved, broadcast): a /24 has 251 for network interfaces.
 * https://docs.aws.amazon.com/vpc/latest/userguide/subnet-sizing.html
 */
export const VPC = {
  reservedAddressesPerSubnet: 5,
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
