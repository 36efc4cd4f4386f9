import { Duration, Stack, Validations } from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { SQS } from '../../functions/aws-quotas.ts';

/**
 * SQS's largest message, 256 KiB (the queues carry event references, not payloads). Set
 * explicitly so it is a choice, not the service default of the day.
 */
export const MAX_MESSAGE_SIZE_BYTES = SQS.maxMessageBytes;

/** SQS's longest retention: dead letters wait this long for ops. */
export const DEAD_LETTER_RETENTION = Duration.seconds(SQS.maxRetentionSeconds);

/** The settings every queue here shares: SQS-managed encryption, TLS only, explicit size. */
const COMMON: sqs.QueueProps = {
  encryption: sqs.QueueEncryption.SQS_MANAGED,
  enforceSSL: true,
  maxMessageSizeBytes: MAX_MESSAGE_SIZE_BYTES,
};

export interface DeadLetterQueueProps {
  /**
   * The queues that dead-letter into this one: its RedriveAllowPolicy allows exactly them.
   * Give this or `otherSource`.
   * @default - none
   */
  readonly sourceQueues?: readonly sqs.IQueue[];
  /**
   * What dead-letters into this queue when that is not an SQS queue (a pipe, a rule target),
   * for the record. The RedriveAllowPolicy is then DENY_ALL: no queue may use it as its DLQ.
   * Give this or `sourceQueues`.
   * @default - none
   */
  readonly otherSource?: string;
}

/** A dead-letter queue: kept 14 days (longer than any source queue keeps a message). */
export class DeadLetterQueue extends sqs.Queue {
  constructor(scope: Construct, id: string, props: DeadLetterQueueProps) {
    const sources = props.sourceQueues ?? [];
    const other = props.otherSource?.trim() ?? '';
    if (sources.length > 0 === (other !== '')) {
      throw new Error(`${id}: give either sourceQueues or otherSource`);
    }
    if (sources.length > 10) throw new Error(`${id}: a RedriveAllowPolicy names at most 10 source queues`);
    super(scope, id, {
      ...COMMON,
      retentionPeriod: DEAD_LETTER_RETENTION,
      redriveAllowPolicy:
        sources.length > 0
          ? { redrivePermission: sqs.RedrivePermission.BY_QUEUE, sourceQueues: [...sources] }
          : { redrivePermission: sqs.RedrivePermission.DENY_ALL },
    });
    if (other !== '') {
      // cdk-nag recognises a DLQ only by another queue's RedrivePolicy naming it.
      Validations.of(this.node.defaultChild ?? this).acknowledge({
        id: 'AwsSolutions-SQS3',
        reason:
          `This queue is itself a dead-letter queue: ${other} names it in its own dead-letter config, which ` +
          "the rule does not read (it recognises a DLQ only by another queue's RedrivePolicy). A DLQ of a DLQ " +
          'would only move the same alarm one hop on: the service stack alarms on its first visible message.',
      });
    }
  }
}

/**
 * A reference to the queue of that name in this stack, made from its ARN before the queue
 * exists: a DLQ's RedriveAllowPolicy names its source queues by ARN, and a reference to the
 * queue itself would make the two depend on each other (the queue's RedrivePolicy already
 * names the DLQ).
 */
export function queueNamed(scope: Construct, id: string, queueName: string): sqs.IQueue {
  return sqs.Queue.fromQueueArn(
    scope,
    id,
    Stack.of(scope).formatArn({ service: 'sqs', resource: queueName }),
  );
}

export interface WorkQueueProps {
  /**
   * The queue's physical name. It must be known before the queue exists: its DLQ's
   * RedriveAllowPolicy names the queue's ARN (see queueNamed).
   */
  readonly queueName: string;
  /** At least 6 × the timeout of the function that consumes the queue (AWS's advice). */
  readonly visibilityTimeout: Duration;
  /** Where a message goes after `maxReceiveCount` receives. */
  readonly deadLetterQueue: DeadLetterQueue;
  /** Receives before a message moves to the DLQ. */
  readonly maxReceiveCount: number;
  /**
   * How long the queue keeps a message; must be shorter than the DLQ's 14 days, since a
   * standard queue's message keeps its first enqueue time in the DLQ.
   * @default Duration.days(4)
   */
  readonly retentionPeriod?: Duration;
}

/** A queue a function consumes, with a name known in advance and a dead-letter queue. */
export class WorkQueue extends sqs.Queue {
  constructor(scope: Construct, id: string, props: WorkQueueProps) {
    if (!/^[A-Za-z0-9_-]{1,80}$/.test(props.queueName)) {
      throw new Error(`${id}: queueName must be 1-80 letters, digits, - or _, got "${props.queueName}"`);
    }
    if (
      !Number.isInteger(props.maxReceiveCount) ||
      props.maxReceiveCount < 1 ||
      props.maxReceiveCount > SQS.maxReceiveCount
    ) {
      throw new Error(
        `${id}: maxReceiveCount must be a whole number from 1 to ${SQS.maxReceiveCount}, got ${props.maxReceiveCount}`,
      );
    }
    const visibility = props.visibilityTimeout.toSeconds();
    if (visibility > SQS.maxVisibilityTimeoutSeconds) {
      throw new Error(
        `${id}: visibilityTimeout must be at most ${SQS.maxVisibilityTimeoutSeconds} s (12 hours)`,
      );
    }
    const retention = props.retentionPeriod ?? Duration.seconds(SQS.defaultRetentionSeconds);
    if (retention.toSeconds() >= DEAD_LETTER_RETENTION.toSeconds()) {
      throw new Error(`${id}: retentionPeriod must be shorter than the DLQ's 14 days`);
    }
    super(scope, id, {
      ...COMMON,
      queueName: props.queueName,
      visibilityTimeout: props.visibilityTimeout,
      retentionPeriod: retention,
      deadLetterQueue: { queue: props.deadLetterQueue, maxReceiveCount: props.maxReceiveCount },
    });
  }
}

export type QueueWithDeadLetterProps = Omit<WorkQueueProps, 'deadLetterQueue'>;

/**
 * A queue and its dead-letter queue, set up for a redrive from the SQS console: the DLQ's
 * RedriveAllowPolicy allows exactly this queue.
 */
export class QueueWithDeadLetter extends Construct {
  public readonly queue: sqs.Queue;
  public readonly deadLetterQueue: DeadLetterQueue;

  constructor(scope: Construct, id: string, props: QueueWithDeadLetterProps) {
    super(scope, id);
    this.deadLetterQueue = new DeadLetterQueue(this, 'DeadLetterQueue', {
      sourceQueues: [queueNamed(this, 'Source', props.queueName)],
    });
    this.queue = new WorkQueue(this, 'Queue', { ...props, deadLetterQueue: this.deadLetterQueue });
  }
}
