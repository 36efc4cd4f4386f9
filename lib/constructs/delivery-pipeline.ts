import { Duration } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { DELIVERY_TIMEOUT_MS, LAMBDA_ENV } from '../../functions/config.ts';
import { type EventPattern, ROUTING_RULES, type RoutingRule } from '../../functions/core/patterns.ts';
import { checkRetrySchedule, maxAttempts } from '../../functions/core/retry.ts';
import { DispatcherFunction } from './function.ts';
import { DeadLetterQueue, QueueWithDeadLetter } from './queues.ts';
import type { DefinedTable } from './table.ts';

/** AWS's advice for a queue a Lambda function consumes: at least six function timeouts. */
export const VISIBILITY_TIMEOUT_FACTOR = 6;

export interface DeliveryPipelineProps {
  /** The bus the rules listen on. */
  readonly bus: events.IEventBus;
  readonly eventsTable: DefinedTable;
  readonly subscriptionsTable: DefinedTable;
  readonly deliveriesTable: DefinedTable;
  /** Prefix of the queues' physical names (their DLQs' RedriveAllowPolicy names them). */
  readonly queueNamePrefix: string;
  /** Seconds before each delivery try; its length is the delivery queue's maxReceiveCount. */
  readonly retrySchedule: readonly number[];
  /** Per-callback HTTP timeout. */
  readonly deliveryTimeout: Duration;
  /** MaximumConcurrency of the dispatcher's event source (2-1000). */
  readonly dispatcherMaxConcurrency: number;
  /**
   * Days an event is kept: the dispatcher appends `subscription.disabled` events, and
   * deliveries and attempts expire with their events.
   */
  readonly retentionDays: number;
  /**
   * MaximumConcurrency of the fan-out function's event source (2-1000).
   * @default 5
   */
  readonly fanoutMaxConcurrency?: number;
  /**
   * The rules on the bus; each sends what its pattern matches to its target's queue.
   * @default ROUTING_RULES
   */
  readonly rules?: readonly RoutingRule[];
  /**
   * How long the delivery queue keeps a message: the whole retry schedule must fit in it.
   * @default Duration.days(4)
   */
  readonly deliveryRetention?: Duration;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * EventBridge's rule types name only the fields it knows (source, detail-type, …) and pass
 * the rest through untouched; an EventPattern from patterns.ts is plain EventBridge JSON.
 */
function ruleEventPattern(pattern: EventPattern): events.EventPattern {
  return pattern as events.EventPattern;
}

function checkConcurrency(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 2 || value > 1000) {
    throw new Error(`${name} must be a whole number from 2 to 1000, got ${value}`);
  }
}

/**
 * The push path: rules on the bus → fan-out queue → fan-out function (one delivery per
 * matching subscription) → delivery queue → dispatcher function (one signed POST each).
 *
 * The dispatcher backs off by hiding a failed message for the schedule's next wait, so each
 * receive of a delivery message is one try, and the delivery queue's maxReceiveCount is the
 * schedule's length: the receive after the last try moves the message to the DLQ. Both
 * consumers report partial batch failures; their event sources cap concurrency
 * (MaximumConcurrency) rather than reserving it, so a busy function never throttles
 * messages into extra receives.
 */
export class DeliveryPipeline extends Construct {
  public readonly rules: readonly events.Rule[];
  /** Gets the events a rule could not put on its target queue. */
  public readonly ruleDeadLetterQueue: DeadLetterQueue;
  public readonly fanout: QueueWithDeadLetter;
  public readonly delivery: QueueWithDeadLetter;
  public readonly fanoutFunction: DispatcherFunction;
  public readonly dispatcherFunction: DispatcherFunction;
  /**
   * The age of the delivery queue's oldest message that means deliveries are falling behind.
   * ApproximateAgeOfOldestMessage counts a message until its third receive, and the
   * dispatcher's jitter only shortens waits, so on a healthy queue it stays under the first
   * three waits plus three tries; 15 minutes past that is a backlog.
   */
  public readonly backlogAge: Duration;

  constructor(scope: Construct, id: string, props: DeliveryPipelineProps) {
    super(scope, id);
    const schedule = props.retrySchedule;
    try {
      checkRetrySchedule(schedule);
    } catch (error) {
      throw new Error(`${id}: retrySchedule: ${error instanceof Error ? error.message : String(error)}`);
    }
    const timeoutMs = props.deliveryTimeout.toMilliseconds();
    if (timeoutMs < DELIVERY_TIMEOUT_MS.min || timeoutMs > DELIVERY_TIMEOUT_MS.max) {
      throw new Error(
        `${id}: deliveryTimeout must be from ${DELIVERY_TIMEOUT_MS.min} ms to ${DELIVERY_TIMEOUT_MS.max / 1000} s`,
      );
    }
    checkConcurrency(`${id}: dispatcherMaxConcurrency`, props.dispatcherMaxConcurrency);
    const fanoutMaxConcurrency = props.fanoutMaxConcurrency ?? 5;
    checkConcurrency(`${id}: fanoutMaxConcurrency`, fanoutMaxConcurrency);
    const rules = props.rules ?? ROUTING_RULES;
    if (rules.length === 0) throw new Error(`${id}: at least one routing rule is needed`);

    // A batch is processed concurrently, so one slow callback bounds the invocation: the
    // delivery timeout, plus room for DNS, DynamoDB and the SQS visibility change.
    const dispatcherTimeout = Duration.seconds(Math.ceil(timeoutMs / 1000) + 20);
    const fanoutTimeout = Duration.seconds(30);
    const deliveryRetention = props.deliveryRetention ?? Duration.days(4);
    // The longest a delivery can take from its first try to its last: jitter only shortens a
    // wait, but a receiver's Retry-After (429/503) may stretch any wait up to the schedule's
    // longest (functions/core/retry.ts); each try may also run a full function timeout.
    const longestWait = Math.max(...schedule);
    const worstSpan =
      (schedule[0] ?? 0) +
      (schedule.length - 1) * longestWait +
      schedule.length * dispatcherTimeout.toSeconds();
    if (worstSpan > deliveryRetention.toSeconds() - Duration.days(1).toSeconds()) {
      throw new Error(
        `${id}: the retry schedule can span ${Math.ceil(worstSpan / 3600)} h (each wait stretched to the ` +
          `longest by Retry-After); it must end a day before the delivery queue drops the message ` +
          `(${deliveryRetention.toDays()} days)`,
      );
    }

    const firstWaits = schedule.slice(0, 3).reduce((sum, wait) => sum + wait, 0);
    this.backlogAge = Duration.minutes(Math.ceil((firstWaits + 3 * dispatcherTimeout.toSeconds()) / 60) + 15);

    this.fanout = new QueueWithDeadLetter(this, 'Fanout', {
      queueName: `${props.queueNamePrefix}-fanout`,
      visibilityTimeout: Duration.seconds(fanoutTimeout.toSeconds() * VISIBILITY_TIMEOUT_FACTOR),
      // Fan-out is idempotent (one delivery per event and subscription), so retries are safe.
      maxReceiveCount: 5,
    });
    this.delivery = new QueueWithDeadLetter(this, 'Delivery', {
      queueName: `${props.queueNamePrefix}-delivery`,
      visibilityTimeout: Duration.seconds(dispatcherTimeout.toSeconds() * VISIBILITY_TIMEOUT_FACTOR),
      maxReceiveCount: maxAttempts(schedule),
      retentionPeriod: deliveryRetention,
    });

    this.ruleDeadLetterQueue = new DeadLetterQueue(this, 'RuleDeadLetterQueue', {
      otherSource: 'every EventBridge rule target on the partner bus',
    });
    const ruleTargets: Record<RoutingRule['target'], sqs.IQueue> = { fanout: this.fanout.queue };
    this.rules = rules.map(
      (rule) =>
        new events.Rule(this, `Rule-${rule.name}`, {
          eventBus: props.bus,
          description: rule.description,
          eventPattern: ruleEventPattern(rule.pattern),
          targets: [
            new targets.SqsQueue(ruleTargets[rule.target], {
              deadLetterQueue: this.ruleDeadLetterQueue,
              retryAttempts: 185,
              maxEventAge: Duration.hours(24),
            }),
          ],
        }),
    );

    this.fanoutFunction = new DispatcherFunction(this, 'FanoutFunction', {
      entry: 'functions/fanout/lambda.ts',
      description: 'Fan-out: one delivery per subscription matching an event',
      serviceName: 'fanout',
      timeout: fanoutTimeout,
      logRetention: props.logRetention,
      // The deliveries it creates expire with the events they are about.
      environment: { [LAMBDA_ENV.retentionDays]: String(props.retentionDays) },
    })
      .useTable(props.subscriptionsTable, LAMBDA_ENV.subscriptionsTable, 'read')
      .useTable(props.deliveriesTable, LAMBDA_ENV.deliveriesTable, 'readWrite')
      .useQueue(this.delivery.queue, LAMBDA_ENV.deliveryQueueUrl, 'send');
    this.fanoutFunction.addEventSource(
      new SqsEventSource(this.fanout.queue, {
        batchSize: 10,
        reportBatchItemFailures: true,
        maxConcurrency: fanoutMaxConcurrency,
      }),
    );

    this.dispatcherFunction = new DispatcherFunction(this, 'DispatcherFunction', {
      entry: 'functions/dispatcher/lambda.ts',
      description: 'Dispatcher: one signed callback per delivery message, backoff by visibility timeout',
      serviceName: 'dispatcher',
      timeout: dispatcherTimeout,
      memorySize: 512,
      logRetention: props.logRetention,
      environment: {
        [LAMBDA_ENV.retrySchedule]: schedule.join(','),
        [LAMBDA_ENV.deliveryTimeoutMs]: String(timeoutMs),
        [LAMBDA_ENV.retentionDays]: String(props.retentionDays),
        // Production never calls private, loopback or metadata addresses.
        [LAMBDA_ENV.allowPrivateTargets]: 'false',
      },
    })
      // Writes to events and subscriptions too: it keeps each endpoint's health, disables a
      // subscription that keeps failing and appends `subscription.disabled` to the partner's log.
      .useTable(props.eventsTable, LAMBDA_ENV.eventsTable, 'readWrite')
      .useTable(props.subscriptionsTable, LAMBDA_ENV.subscriptionsTable, 'readWrite')
      .useTable(props.deliveriesTable, LAMBDA_ENV.deliveriesTable, 'readWrite')
      .useQueue(this.delivery.queue, LAMBDA_ENV.deliveryQueueUrl, 'changeVisibility');
    this.dispatcherFunction.addEventSource(
      new SqsEventSource(this.delivery.queue, {
        batchSize: 10,
        reportBatchItemFailures: true,
        maxConcurrency: props.dispatcherMaxConcurrency,
      }),
    );
  }
}
