import { Aws, Duration, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as pipes from 'aws-cdk-lib/aws-pipes';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { PIPE_FILTER_PATTERN, PIPE_INPUT_TEMPLATE } from '../../functions/adapters/aws/pipe.ts';
import { PIPES } from '../../functions/aws-quotas.ts';
import { LAMBDA_ENV } from '../../functions/config.ts';
import { DispatcherFunction } from './function.ts';
import { DeadLetterQueue, queueNamed, WorkQueue } from './queues.ts';
import type { DefinedTable } from './table.ts';
import { visibilityTimeoutSeconds } from './timings.ts';

/**
 * Stream records per pipe batch: one SendMessageBatch to the fan-out queue, which takes ten
 * messages at most (an SQS target's largest batch).
 */
export const DEFAULT_PIPE_BATCH_SIZE = PIPES.sqsTargetMaxBatch;
/**
 * Batches of one stream shard the pipe sends at once (1 to 10): records of one partition key
 * (one stripe of a partner's log) stay in order, and the queue's order does not matter to
 * fan-out, so the most lets one partner's events through at thousands a second.
 */
export const PIPE_PARALLELIZATION_FACTOR = 10;

/** The recovery function's timeout: a direct invocation empties the whole pipe DLQ, scanning the events table. */
export const RECOVERY_TIMEOUT = Duration.minutes(15);

/**
 * Receives of a dead letter redriven to the recovery queue before it goes back to the pipe's
 * DLQ: a letter that is not a stream batch's metadata fails every time, and a failure of the
 * table or the fan-out queue gets two more tries, each after the queue's visibility timeout.
 */
export const RECOVERY_MAX_RECEIVES = 3;

export interface EventStreamProps {
  /** The events table; its stream feeds the pipe. */
  readonly eventsTable: DefinedTable;
  /** Where the pipe sends each event: the fan-out queue. */
  readonly fanoutQueue: sqs.IQueue;
  /** Prefixes the recovery queue's name (`<prefix>-pipe-recovery`), which is fixed in advance. */
  readonly queueNamePrefix: string;
  /**
   * Tries of a failing batch before its record goes to the pipe's DLQ (bisecting on the way).
   * @default 10
   */
  readonly maxRetryAttempts?: number;
  /** @default DEFAULT_PIPE_BATCH_SIZE (at most that: an SQS target's largest batch) */
  readonly batchSize?: number;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * The events table's stream onto the fan-out queue: an EventBridge Pipe that passes only
 * inserted event items, each sent as the EventRef functions/adapters/aws/pipe.ts shapes, ten
 * to a SendMessageBatch, with bounded retries, bisection of failing batches and a DLQ of its
 * own. The events table is the record of every event: what the pipe gave up on is found there
 * again (the recovery function), and partners replay from it.
 *
 * The way back for the pipe's dead letters is the recovery queue: its redrive policy names the
 * pipe's DLQ, so the DLQ is a dead-letter queue of an SQS queue, which SQS requires of a
 * redrive (the console's "Start DLQ redrive", StartMessageMoveTask). A letter redriven to it is
 * taken by the recovery function, which queues the events written in its batch's span for
 * fan-out again; one it keeps failing on returns to the DLQ.
 */
export class EventStream extends Construct {
  public readonly pipe: pipes.CfnPipe;
  public readonly role: iam.Role;
  /**
   * Gets what the pipe could not deliver: stream batch metadata, not the events themselves;
   * and the letters the recovery function failed on, from the recovery queue.
   */
  public readonly deadLetterQueue: DeadLetterQueue;
  /** Where ops redrive the DLQ to; the recovery function consumes it. */
  public readonly recoveryQueue: WorkQueue;
  public readonly logGroup: logs.LogGroup;
  /**
   * Queues the events of each letter redriven to the recovery queue for fan-out again; invoked
   * directly, it empties the DLQ itself.
   */
  public readonly recoveryFunction: DispatcherFunction;

  constructor(scope: Construct, id: string, props: EventStreamProps) {
    super(scope, id);
    const maxRetryAttempts = props.maxRetryAttempts ?? 10;
    const batchSize = props.batchSize ?? DEFAULT_PIPE_BATCH_SIZE;
    if (!props.eventsTable.definition.stream) {
      throw new Error(`${id}: table ${props.eventsTable.definition.name} has no stream to read`);
    }
    if (!Number.isInteger(maxRetryAttempts) || maxRetryAttempts < 0 || maxRetryAttempts > 10_000) {
      throw new Error(`${id}: maxRetryAttempts must be a whole number from 0 to 10000 (bounded retries)`);
    }
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > PIPES.sqsTargetMaxBatch) {
      throw new Error(`${id}: batchSize must be a whole number from 1 to ${PIPES.sqsTargetMaxBatch}`);
    }

    // The pipe dead-letters here too, by its own dead-letter config (not a RedrivePolicy); the
    // RedriveAllowPolicy concerns SQS queues only, and allows the recovery queue alone.
    const recoveryQueueName = `${props.queueNamePrefix}-pipe-recovery`;
    this.deadLetterQueue = new DeadLetterQueue(this, 'DeadLetterQueue', {
      sourceQueues: [queueNamed(this, 'RecoverySource', recoveryQueueName)],
    });
    this.recoveryQueue = new WorkQueue(this, 'RecoveryQueue', {
      queueName: recoveryQueueName,
      visibilityTimeout: Duration.seconds(visibilityTimeoutSeconds(RECOVERY_TIMEOUT.toSeconds())),
      deadLetterQueue: this.deadLetterQueue,
      maxReceiveCount: RECOVERY_MAX_RECEIVES,
    });

    this.logGroup = new logs.LogGroup(this, 'LogGroup', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
    });

    this.role = new iam.Role(this, 'Role', {
      description: 'EventBridge Pipe: events table stream to the fan-out queue',
      assumedBy: new iam.ServicePrincipal('pipes.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
      }),
    });
    const streamArn = props.eventsTable.streamArn;
    this.role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['dynamodb:DescribeStream', 'dynamodb:GetRecords', 'dynamodb:GetShardIterator'],
        resources: [streamArn],
      }),
    );
    // The Pipes DynamoDB source requires ListStreams. It is an account-level list call, which
    // CDK's own Table.grantStreamRead grants on "*" too; it returns stream ARNs, never items.
    this.role.addToPolicy(new iam.PolicyStatement({ actions: ['dynamodb:ListStreams'], resources: ['*'] }));
    // SendMessage is all the pipe needs of its target queue and its DLQ (EventBridge user
    // guide, "DynamoDB execution role permissions" and the SQS target's); grantSendMessages
    // would add GetQueueAttributes and GetQueueUrl.
    this.role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['sqs:SendMessage'],
        resources: [props.fanoutQueue.queueArn, this.deadLetterQueue.queueArn],
      }),
    );
    this.logGroup.grantWrite(this.role);
    const rolePolicy = this.role.node.findChild('DefaultPolicy');
    Validations.of(rolePolicy.node.defaultChild ?? rolePolicy).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'The EventBridge Pipes DynamoDB source requires dynamodb:ListStreams (EventBridge user guide, "DynamoDB ' +
        'execution role permissions"). It is an account-level list call, granted on "*" as CDK\'s own ' +
        'Table.grantStreamRead does, and it returns stream ARNs, never items. It is alone in its statement; every ' +
        'other action of this role names its resource (the stream, the fan-out queue, the DLQ, the log group).',
    });

    this.pipe = new pipes.CfnPipe(this, 'Pipe', {
      description: 'Inserted events from the events table stream onto the fan-out queue',
      roleArn: this.role.roleArn,
      source: streamArn,
      sourceParameters: {
        dynamoDbStreamParameters: {
          // TRIM_HORIZON: a pipe created after the table (a new service stack) still sends
          // the last 24 h of events; fan-out is idempotent and receivers dedupe on webhook-id.
          startingPosition: 'TRIM_HORIZON',
          batchSize,
          parallelizationFactor: PIPE_PARALLELIZATION_FACTOR,
          maximumRetryAttempts: maxRetryAttempts,
          onPartialBatchItemFailure: 'AUTOMATIC_BISECT',
          deadLetterConfig: { arn: this.deadLetterQueue.queueArn },
        },
        filterCriteria: { filters: [{ pattern: JSON.stringify(PIPE_FILTER_PATTERN) }] },
      },
      target: props.fanoutQueue.queueArn,
      // A standard queue: no message group or deduplication parameters.
      targetParameters: { inputTemplate: PIPE_INPUT_TEMPLATE },
      // ERROR only, and no execution data: a stream record carries the partner's payload.
      logConfiguration: {
        level: 'ERROR',
        cloudwatchLogsLogDestination: { logGroupArn: this.logGroup.logGroupArn },
      },
      desiredState: 'RUNNING',
    });
    // CloudFormation must attach the role's policy before it creates the pipe, or the pipe
    // fails its permission check on creation.
    this.pipe.node.addDependency(rolePolicy);

    // The way back for the pipe's dead letters (functions/core/recovery.ts): each letter
    // redriven to the recovery queue, or, invoked by ops, every letter of the DLQ.
    this.recoveryFunction = new DispatcherFunction(this, 'RecoveryFunction', {
      entry: 'functions/recovery/lambda.ts',
      description: "Recovery: queues the events of the pipe's dead-lettered batches for fan-out again",
      serviceName: 'recovery',
      timeout: RECOVERY_TIMEOUT,
      logRetention: props.logRetention,
    })
      // DynamoEventLog#writtenBetween scans the table for the events of a batch's span.
      .useTable(props.eventsTable, LAMBDA_ENV.eventsTable, { table: ['dynamodb:Scan'] })
      // SendMessageBatch of the events, as the pipe sends them.
      .useQueue(props.fanoutQueue, LAMBDA_ENV.fanoutQueueUrl, ['sqs:SendMessage'])
      // SqsDeadLetterSource (a direct invocation): receive, and delete once the batch's events are queued.
      .useQueue(this.deadLetterQueue, LAMBDA_ENV.pipeDeadLetterQueueUrl, [
        'sqs:ReceiveMessage',
        'sqs:DeleteMessage',
      ]);
    // One letter an invocation, two at a time: each scans the events table, so redriving many
    // letters reads the table at most twice at once.
    this.recoveryFunction.addEventSource(
      new SqsEventSource(this.recoveryQueue, {
        batchSize: 1,
        reportBatchItemFailures: true,
        maxConcurrency: 2,
      }),
    );
  }

  /** The pipe's name, the `PipeName` dimension of its metrics. */
  public get pipeName(): string {
    return this.pipe.ref;
  }

  /**
   * Failed, partially failed and timed-out pipe executions: anything here is retried, and
   * after the retries, dead-lettered.
   */
  public metricFailures(period: Duration = Duration.minutes(5)): cloudwatch.IMetric {
    const metric = (metricName: string) =>
      new cloudwatch.Metric({
        namespace: 'AWS/EventBridge/Pipes',
        metricName,
        dimensionsMap: { PipeName: this.pipeName },
        statistic: cloudwatch.Stats.SUM,
        period,
      });
    return new cloudwatch.MathExpression({
      expression: 'FILL(failed, 0) + FILL(partial, 0) + FILL(timeout, 0)',
      usingMetrics: {
        failed: metric('ExecutionFailed'),
        partial: metric('ExecutionPartiallyFailed'),
        timeout: metric('ExecutionTimeout'),
      },
      label: 'Pipe executions failed',
      period,
    });
  }

  /** A pipe metric by name (EventCount, Invocations, Duration, …). */
  public metric(metricName: string, statistic: string = cloudwatch.Stats.SUM): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: 'AWS/EventBridge/Pipes',
      metricName,
      dimensionsMap: { PipeName: this.pipeName },
      statistic,
      period: Duration.minutes(5),
    });
  }
}
