/**
 * AWS's published on-demand prices in US East (N. Virginia), us-east-1, and the billing rules
 * that turn requests into billed units, one place for each, each named after the page that
 * states it. `npm run cost` (cost/) prices what the dispatcher does with these; nothing else
 * reads them. Free tiers are left out: they are per account, not per callback.
 *
 * The pricing pages render their rate tables in the browser; the rates below are the ones they
 * show for us-east-1 at the first (smallest) volume tier. Check them against the pages before
 * relying on a figure.
 */

/** `usd` for every `per` billed units. */
export interface Rate {
  readonly usd: number;
  readonly per: number;
}

/** https://aws.amazon.com/api-gateway/pricing/ */
export const API_GATEWAY_PRICES = {
  /**
   * HTTP API calls, first 300 million a month. A request is metered in 512 KB increments: one
   * of 513 KB is two. The rate and the increment are also stated, for us-east-1, in
   * https://docs.aws.amazon.com/whitepapers/latest/best-practices-api-gateway-private-apis-integration/cost-optimization.html
   */
  httpRequest: { usd: 1.0, per: 1_000_000 },
  httpMeteringBytes: 512 * 1024,
  /**
   * WebSocket API messages, sent and received (a frame a client sends, and each
   * PostToConnection down a connection), first billion a month. Metered in 32 KB increments:
   * a message of 33 KB is two.
   */
  webSocketMessage: { usd: 1.0, per: 1_000_000 },
  webSocketMeteringBytes: 32 * 1024,
  /** WebSocket API connection minutes: each minute a connection is open. */
  webSocketConnectionMinute: { usd: 0.25, per: 1_000_000 },
} as const;

/**
 * How long API Gateway keeps a WebSocket connection open: at most 2 hours, and 10 minutes
 * without a message either way. An agent that pings stays until the 2 hours, then reconnects.
 * https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-execution-service-websocket-limits-table.html
 */
export const WEBSOCKET_LIMITS = {
  connectionSeconds: 2 * 3600,
  idleTimeoutSeconds: 10 * 60,
} as const;

/** https://aws.amazon.com/lambda/pricing/ */
export const LAMBDA_PRICES = {
  request: { usd: 0.2, per: 1_000_000 },
  /** Duration, first 7.5 billion GB-seconds a month on Arm, 6 billion on x86. */
  arm64GbSecond: { usd: 0.0000133334, per: 1 },
  x86GbSecond: { usd: 0.0000166667, per: 1 },
  /** Duration is rounded up to the nearest millisecond. */
  billingGranularityMs: 1,
} as const;

/**
 * On-demand tables of the Standard table class.
 * https://aws.amazon.com/dynamodb/pricing/on-demand/
 */
export const DYNAMODB_PRICES = {
  writeRequestUnit: { usd: 0.625, per: 1_000_000 },
  readRequestUnit: { usd: 0.125, per: 1_000_000 },
  /** Table and index storage, per GB-month, past the first 25 GB. */
  storageGbMonth: { usd: 0.25, per: 1 },
  /** Continuous backups (point-in-time recovery), per GB-month of table data. */
  pointInTimeRecoveryGbMonth: { usd: 0.2, per: 1 },
  /**
   * Streams read request units: one per GetRecords call. Free when a Lambda trigger reads the
   * stream, charged when anything else does (an EventBridge Pipe).
   */
  streamReadRequest: { usd: 0.02, per: 100_000 },
} as const;

/**
 * How requests become billed units. A write unit covers 1 KB of the item (the larger of its
 * old and new image), a strongly consistent read unit 4 KB (an eventually consistent read is
 * half a unit). A transactional write costs two units per KB of each item in it. An index
 * write is charged for the index entry (keys and projected attributes), once per index whose
 * entry the write puts, changes or deletes (twice when it changes the entry's key); a write
 * that changes no projected attribute writes nothing to the index.
 * https://aws.amazon.com/dynamodb/pricing/on-demand/
 * https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html
 * https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html
 * Item sizes: the lengths of attribute names and values (numbers: 1 byte per two significant
 * digits, plus 1; lists and maps: 3 bytes, plus 1 per element), and for storage 100 bytes of
 * overhead per item.
 * https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html
 */
export const DYNAMODB_BILLING = {
  writeUnitBytes: 1024,
  readUnitBytes: 4096,
  transactionalWriteFactor: 2,
  eventuallyConsistentReadFactor: 0.5,
  storageOverheadBytes: 100,
  /** Stream records one GetRecords call returns at most. */
  streamRecordsPerGetRecords: 1000,
} as const;

/** Standard queues. https://aws.amazon.com/sqs/pricing/ */
export const SQS_PRICES = {
  /** Every API action is a request; a batch of up to 10 is one request per 64 KB of payload. */
  request: { usd: 0.4, per: 1_000_000 },
  chunkBytes: 64 * 1024,
} as const;

/** https://aws.amazon.com/eventbridge/pricing/ */
export const EVENTBRIDGE_PRICES = {
  /** EventBridge Pipes: events that pass the pipe's filter, each 64 KB billed as one request. */
  pipeRequest: { usd: 0.4, per: 1_000_000 },
  chunkBytes: 64 * 1024,
  /** Invocations of a scheduled rule, priced as custom events ($1 a million: an upper bound). */
  scheduledInvocation: { usd: 1.0, per: 1_000_000 },
} as const;

/** https://aws.amazon.com/kms/pricing/ */
export const KMS_PRICES = {
  /**
   * A customer managed key, per month; with automatic rotation each newly generated backing
   * key adds the same again, so a key bills $1 a month in its first year, $2 in its second.
   */
  keyMonth: { usd: 1.0, per: 1 },
  /** Requests to a symmetric key: GenerateDataKey, Decrypt. */
  request: { usd: 0.03, per: 10_000 },
} as const;

/** https://aws.amazon.com/cloudwatch/pricing/ */
export const CLOUDWATCH_PRICES = {
  /** Logs ingested (Standard log class; Lambda's logs are billed the same at this tier). */
  logsIngestedGb: { usd: 0.5, per: 1 },
  /** A standard-resolution alarm, per metric it evaluates, per month. */
  alarmMetricMonth: { usd: 0.1, per: 1 },
  /** A dashboard, per month (the first three of an account are free). */
  dashboardMonth: { usd: 3.0, per: 1 },
  /**
   * A custom metric (a name with one set of dimensions), per month, in the first 10,000;
   * billed pro rata by the hour it is written in, so a metric written all month is one.
   */
  customMetricMonth: { usd: 0.3, per: 1 },
  /**
   * Vended logs delivered to CloudWatch Logs (VPC flow logs among them), per GB ingested, first
   * 10 TB a month.
   */
  vendedLogsIngestedGb: { usd: 0.5, per: 1 },
} as const;

/** https://aws.amazon.com/vpc/pricing/ */
export const VPC_PRICES = {
  /** A NAT gateway, per hour it exists, whatever it carries. */
  natGatewayHour: { usd: 0.045, per: 1 },
  /** Data a NAT gateway processes, per GB, in either direction, whatever its source or destination. */
  natGatewayProcessedGb: { usd: 0.045, per: 1 },
  /** A public IPv4 address, per hour, in use or idle: an Elastic IP on a NAT gateway is one. */
  publicIpv4Hour: { usd: 0.005, per: 1 },
} as const;

/**
 * Interface endpoints (AWS PrivateLink), which the dispatcher does without (see
 * lib/constructs/egress-network.ts); gateway endpoints (DynamoDB, S3) cost nothing:
 * https://docs.aws.amazon.com/vpc/latest/privatelink/gateway-endpoints.html
 * https://aws.amazon.com/privatelink/pricing/
 */
export const PRIVATELINK_PRICES = {
  /** One interface endpoint in one Availability Zone, per hour. */
  interfaceEndpointZoneHour: { usd: 0.01, per: 1 },
  /** Data an interface endpoint processes, per GB, first petabyte a month. */
  interfaceEndpointProcessedGb: { usd: 0.01, per: 1 },
} as const;

/**
 * Data transfer out of AWS to the internet, per GB, first 10 TB a month (the first 100 GB a
 * month of an account are free); data coming in is free. A Lambda function's is billed at these
 * EC2 rates, in a VPC or not (https://aws.amazon.com/lambda/pricing/).
 * https://aws.amazon.com/ec2/pricing/on-demand/ ("Data Transfer")
 */
export const DATA_TRANSFER_PRICES = {
  outToInternetGb: { usd: 0.09, per: 1 },
} as const;

/**
 * How often the services poll on their own, whatever the traffic: what an idle deployment
 * still pays for.
 * https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html
 * https://docs.aws.amazon.com/lambda/latest/dg/with-ddb.html
 */
export const POLLING = {
  /** Long-polling receives an SQS event source keeps open at first, each waiting up to 20 s. */
  sqsEventSourcePollers: 5,
  sqsLongPollSeconds: 20,
  /** GetRecords calls per second on each stream shard (Lambda's rate; Pipes poll alike). */
  streamPollsPerSecondPerShard: 4,
} as const;

/** Seconds in a month of 30.4 days (365 / 12), as the pricing pages count a month. */
export const SECONDS_PER_MONTH = (365 / 12) * 86_400;
/** Hours in that month: 730. */
export const HOURS_PER_MONTH = SECONDS_PER_MONTH / 3600;

/** What `units` billed units cost at `rate`. */
export function priceOf(rate: Rate, units: number): number {
  return (units * rate.usd) / rate.per;
}
