import { Duration, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { LAMBDA_ENV } from '../../functions/config.ts';
import { DEFAULT_REQUEST_LIMITS, type RequestLimits } from '../../functions/core/limits.ts';
import { DispatcherFunction, type QueueAction } from './function.ts';
import type { DefinedTable } from './table.ts';

/** The ops function's memory: it waits on SQS, DynamoDB and CloudWatch, and computes little. */
export const OPS_FUNCTION_MEMORY_MB = 256;

/**
 * The ops function's timeout, within API Gateway's 30 s: a redrive of at most `max` messages
 * moves them for 15 s (functions/ops/lambda.ts) and answers.
 */
export const OPS_FUNCTION_TIMEOUT = Duration.seconds(25);

/** A work queue: its depths are read, and a redrive sends to it (a move task, or by hand). */
const WORK_QUEUE_ACTIONS: readonly QueueAction[] = ['sqs:GetQueueAttributes', 'sqs:SendMessage'];

/**
 * A dead-letter queue: its depths are read; a peek receives and makes visible again; a move by
 * hand receives and deletes; a move task is started, listed and cancelled (SQS also needs
 * ReceiveMessage, DeleteMessage and GetQueueAttributes on the source of a move task, and
 * SendMessage on its destination: SQS developer guide, "Configure permissions for dead-letter
 * queue redrive"); and the queue is purged.
 */
const DEAD_LETTER_QUEUE_ACTIONS: readonly QueueAction[] = [
  'sqs:GetQueueAttributes',
  'sqs:ReceiveMessage',
  'sqs:ChangeMessageVisibility',
  'sqs:DeleteMessage',
  'sqs:PurgeQueue',
  'sqs:StartMessageMoveTask',
  'sqs:ListMessageMoveTasks',
  'sqs:CancelMessageMoveTask',
];

/** A work queue and the dead-letter queue that redrives to it. */
export interface QueuePair {
  readonly queue: sqs.IQueue;
  readonly deadLetterQueue: sqs.IQueue;
}

export interface OpsFunctionProps {
  readonly fanout: QueuePair;
  readonly delivery: QueuePair;
  readonly slowLane: QueuePair;
  /** The recovery queue, and the pipe's DLQ, which redrives to it. */
  readonly pipe: QueuePair;
  readonly partnersTable: DefinedTable;
  readonly subscriptionsTable: DefinedTable;
  readonly deliveriesTable: DefinedTable;
  /** Where the dispatcher's metrics are: the delivery rates are read from them. */
  readonly deliveryMetricsNamespace: string;
  /** @default DEFAULT_REQUEST_LIMITS */
  readonly requestLimits?: RequestLimits;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * The function behind the admin API's ops routes (`lambda: 'ops'` in ROUTES), the only one that
 * may look into, move and purge the queues: every queue's depths, the dead-letter queues'
 * messages explained from the deliveries and subscriptions tables (read only; it never opens
 * a signing secret, so it has no use of the secrets key), redrives and purges, and the
 * dispatcher's delivery rates from CloudWatch.
 */
export class OpsFunction extends DispatcherFunction {
  constructor(scope: Construct, id: string, props: OpsFunctionProps) {
    const limits = props.requestLimits ?? DEFAULT_REQUEST_LIMITS;
    super(scope, id, {
      entry: 'functions/ops/lambda.ts',
      description: 'HTTP API ops routes: queues, dead letters, redrives, subscription health',
      serviceName: 'ops',
      timeout: OPS_FUNCTION_TIMEOUT,
      memorySize: OPS_FUNCTION_MEMORY_MB,
      logRetention: props.logRetention,
      environment: {
        [LAMBDA_ENV.deliveryMetricsNamespace]: props.deliveryMetricsNamespace,
        [LAMBDA_ENV.partnerRequestsPerSecond]: String(limits.partnerPerSecond),
        [LAMBDA_ENV.producerRequestsPerSecond]: String(limits.producerPerSecond),
      },
    });
    this
      // The callers' request counts (the rate limiter's updates), shared with the API function.
      .useTable(props.partnersTable, LAMBDA_ENV.partnersTable, { table: ['dynamodb:UpdateItem'] })
      // Subscriptions: describe (a get, its secrets left sealed), listByHealth (a scan).
      .useTable(props.subscriptionsTable, LAMBDA_ENV.subscriptionsTable, {
        table: ['dynamodb:GetItem', 'dynamodb:Scan'],
      })
      // Deliveries: get, and listAttempts (a query of the delivery's partition).
      .useTable(props.deliveriesTable, LAMBDA_ENV.deliveriesTable, {
        table: ['dynamodb:GetItem', 'dynamodb:Query'],
      })
      .useQueue(props.fanout.queue, LAMBDA_ENV.fanoutQueueUrl, WORK_QUEUE_ACTIONS)
      .useQueue(props.fanout.deadLetterQueue, LAMBDA_ENV.fanoutDeadLetterQueueUrl, DEAD_LETTER_QUEUE_ACTIONS)
      .useQueue(props.delivery.queue, LAMBDA_ENV.deliveryQueueUrl, WORK_QUEUE_ACTIONS)
      .useQueue(
        props.delivery.deadLetterQueue,
        LAMBDA_ENV.deliveryDeadLetterQueueUrl,
        DEAD_LETTER_QUEUE_ACTIONS,
      )
      .useQueue(props.slowLane.queue, LAMBDA_ENV.slowLaneQueueUrl, WORK_QUEUE_ACTIONS)
      .useQueue(
        props.slowLane.deadLetterQueue,
        LAMBDA_ENV.slowLaneDeadLetterQueueUrl,
        DEAD_LETTER_QUEUE_ACTIONS,
      )
      .useQueue(props.pipe.queue, LAMBDA_ENV.pipeRecoveryQueueUrl, WORK_QUEUE_ACTIONS)
      .useQueue(props.pipe.deadLetterQueue, LAMBDA_ENV.pipeDeadLetterQueueUrl, DEAD_LETTER_QUEUE_ACTIONS);
    // The queues' oldest message ages and the dispatcher's outcome counts.
    this.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['cloudwatch:GetMetricData'], resources: ['*'] }),
    );
    const policy = this.role?.node.tryFindChild('DefaultPolicy');
    if (policy === undefined) throw new Error(`${id}: the function's role has no policy`);
    Validations.of(policy.node.defaultChild ?? policy).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'cloudwatch:GetMetricData takes no resource: IAM can grant it only on "*" (Service Authorization ' +
        'Reference, Amazon CloudWatch). It reads metric values, never changes anything; the function reads the ' +
        "queues' ApproximateAgeOfOldestMessage and the dispatcher's delivery counts with it. It is alone in its " +
        'statement; every other action of this role names its table or queue.',
    });
  }
}
