import { Duration } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type * as kms from 'aws-cdk-lib/aws-kms';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { SQS_EVENT_SOURCE } from '../../functions/aws-quotas.ts';
import { DELIVERY_TIMEOUT_MS, LAMBDA_ENV } from '../../functions/config.ts';
import { DELIVERY_MAX_RECEIVES } from '../../functions/core/delivery.ts';
import { DUE_SWEEP_INTERVAL_SECONDS } from '../../functions/core/due-retries.ts';
import { checkRetrySchedule } from '../../functions/core/retry.ts';
import type { FunctionNetwork } from './egress-network.ts';
import { DispatcherFunction } from './function.ts';
import { QueueWithDeadLetter } from './queues.ts';
import type { DefinedTable } from './table.ts';
import {
  dispatcherTimeoutSeconds,
  FANOUT_TIMEOUT_SECONDS,
  isEventSourceConcurrency,
  visibilityTimeoutSeconds,
} from './timings.ts';

export { VISIBILITY_TIMEOUT_FACTOR } from './timings.ts';

/** Records per invocation of the fan-out and dispatcher functions (their event sources' BatchSize). */
export const FANOUT_BATCH_SIZE = 10;
export const DISPATCHER_BATCH_SIZE = 10;
/**
 * MaximumConcurrency of the fan-out function's event source, unless the props say otherwise:
 * enough for thousands of events a second (npm run capacity).
 */
export const DEFAULT_FANOUT_MAX_CONCURRENCY = 50;
/**
 * MaximumConcurrency of the slow lane's event source, unless the props say otherwise: the
 * deliveries of failing endpoints share this many invocations, apart from the healthy ones
 * (enough for a fleet's dead endpoints' tries to keep up: npm run capacity).
 */
export const DEFAULT_SLOW_LANE_MAX_CONCURRENCY = 50;
/**
 * How long the delivery queues keep a message, unless the props say otherwise: past the five
 * days after which a failing endpoint is disabled, so a backlog of a failing endpoint's tries
 * is skipped when it is disabled, never dropped by the queue.
 */
export const DEFAULT_DELIVERY_RETENTION = Duration.days(7);
export { DUE_LOOKAHEAD_SECONDS, DUE_SWEEP_INTERVAL_SECONDS } from '../../functions/core/due-retries.ts';

export interface DeliveryPipelineProps {
  readonly eventsTable: DefinedTable;
  readonly subscriptionsTable: DefinedTable;
  /** Seals and opens the subscriptions' signing secrets. */
  readonly secretsKey: kms.IKey;
  readonly deliveriesTable: DefinedTable;
  /** CloudWatch namespace of the dispatcher's delivery metrics (DELIVERY_METRICS). */
  readonly metricsNamespace: string;
  /** Prefix of the queues' physical names (their DLQs' RedriveAllowPolicy names them). */
  readonly queueNamePrefix: string;
  /** Seconds before each delivery try; its length is the number of tries. */
  readonly retrySchedule: readonly number[];
  /** Per-callback HTTP timeout. */
  readonly deliveryTimeout: Duration;
  /** MaximumConcurrency of the dispatcher's event source on the main lane (2-1000). */
  readonly dispatcherMaxConcurrency: number;
  /**
   * MaximumConcurrency of the dispatcher's event source on the slow lane (2-1000), which
   * failing endpoints' deliveries share.
   * @default DEFAULT_SLOW_LANE_MAX_CONCURRENCY
   */
  readonly slowLaneMaxConcurrency?: number;
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
   * How long the delivery queues keep a message. Each try is a message of its own, waiting at
   * most 15 minutes in a queue (longer waits are due retries in the deliveries table), so this
   * only bounds how long a backlog may wait for the dispatcher; an alarm fires long before.
   * @default DEFAULT_DELIVERY_RETENTION
   */
  readonly deliveryRetention?: Duration;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /**
   * Where the dispatcher runs, the one function that sends callbacks (both lanes): an
   * EgressNetwork's private subnets, so callbacks leave from its fixed addresses.
   * @default - no VPC: callbacks leave from Lambda's own, changing addresses
   */
  readonly dispatcherNetwork?: FunctionNetwork;
}

function checkConcurrency(name: string, value: number): void {
  if (!isEventSourceConcurrency(value)) {
    throw new Error(
      `${name} must be a whole number from ${SQS_EVENT_SOURCE.minMaximumConcurrency} to ${SQS_EVENT_SOURCE.maxMaximumConcurrency}, got ${value}`,
    );
  }
}

/**
 * The push path: fan-out queue (the events table's pipe sends to it) → fan-out function (one
 * delivery per matching subscription) → delivery queues → dispatcher function (one signed
 * POST each).
 *
 * Two delivery queues, two lanes: the main one, and a slow one for the deliveries of
 * endpoints that are failing, each with an event source of its own on the dispatcher, so a
 * hanging endpoint holds slow-lane invocations only. Every try ends its message's receive:
 * the next try is a new message (DelaySeconds up to 15 minutes; a longer wait is a due retry
 * in the deliveries table, which the sweeper function queues shortly before its time), and
 * after the schedule's last try the dispatcher puts the message in the delivery DLQ itself.
 * Nothing waiting is held in flight, so the queues' in-flight quota is never approached by
 * retries; maxReceiveCount only catches a poison message. Both consumers report partial batch
 * failures; their event sources cap concurrency (MaximumConcurrency) rather than reserving it,
 * so a busy function never throttles messages into extra receives.
 */
export class DeliveryPipeline extends Construct {
  public readonly fanout: QueueWithDeadLetter;
  /** The main lane; its DLQ also gets the deliveries whose schedule is used up. */
  public readonly delivery: QueueWithDeadLetter;
  /** The slow lane: deliveries to endpoints that are failing. */
  public readonly slowLane: QueueWithDeadLetter;
  public readonly fanoutFunction: DispatcherFunction;
  public readonly dispatcherFunction: DispatcherFunction;
  /** Queues the due retries shortly before their time, every DUE_SWEEP_INTERVAL_SECONDS. */
  public readonly sweeperFunction: DispatcherFunction;
  public readonly sweepRule: events.Rule;
  /**
   * The age of the main lane's oldest message that means deliveries are falling behind: its
   * messages are queued with no delay (the waits of retries are in the slow lane), so on a
   * healthy queue every one is received within seconds.
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
    const fanoutMaxConcurrency = props.fanoutMaxConcurrency ?? DEFAULT_FANOUT_MAX_CONCURRENCY;
    checkConcurrency(`${id}: fanoutMaxConcurrency`, fanoutMaxConcurrency);

    const dispatcherTimeout = Duration.seconds(dispatcherTimeoutSeconds(timeoutMs));
    const fanoutTimeout = Duration.seconds(FANOUT_TIMEOUT_SECONDS);
    const deliveryRetention = props.deliveryRetention ?? DEFAULT_DELIVERY_RETENTION;
    const slowLaneMaxConcurrency = props.slowLaneMaxConcurrency ?? DEFAULT_SLOW_LANE_MAX_CONCURRENCY;
    checkConcurrency(`${id}: slowLaneMaxConcurrency`, slowLaneMaxConcurrency);
    this.backlogAge = Duration.minutes(15);

    this.fanout = new QueueWithDeadLetter(this, 'Fanout', {
      queueName: `${props.queueNamePrefix}-fanout`,
      visibilityTimeout: Duration.seconds(visibilityTimeoutSeconds(fanoutTimeout.toSeconds())),
      // Fan-out is idempotent (one delivery per event and subscription), so retries are safe.
      maxReceiveCount: 5,
    });
    const lane = (laneId: string, queueName: string) =>
      new QueueWithDeadLetter(this, laneId, {
        queueName: `${props.queueNamePrefix}-${queueName}`,
        visibilityTimeout: Duration.seconds(visibilityTimeoutSeconds(dispatcherTimeout.toSeconds())),
        maxReceiveCount: DELIVERY_MAX_RECEIVES,
        retentionPeriod: deliveryRetention,
      });
    this.delivery = lane('Delivery', 'delivery');
    this.slowLane = lane('SlowLane', 'delivery-slow');

    this.fanoutFunction = new DispatcherFunction(this, 'FanoutFunction', {
      entry: 'functions/fanout/lambda.ts',
      description: 'Fan-out: one delivery per subscription matching an event',
      serviceName: 'fanout',
      timeout: fanoutTimeout,
      logRetention: props.logRetention,
      // The deliveries it creates expire with the events they are about.
      environment: { [LAMBDA_ENV.retentionDays]: String(props.retentionDays) },
    })
      // Subscriptions: listActive, a Query on byPartner (never the table).
      .useTable(props.subscriptionsTable, LAMBDA_ENV.subscriptionsTable, {
        indexes: { byPartner: ['dynamodb:Query'] },
      })
      // Events: get, the payload a subscription's filter matches, read only for such a filter.
      .useTable(props.eventsTable, LAMBDA_ENV.eventsTable, { table: ['dynamodb:GetItem'] })
      // The subscriptions it reads have their secrets opened.
      .useSecretsKey(props.secretsKey, ['kms:Decrypt'])
      // Deliveries: createForEvent (a put only if absent, or else a get of the one there); the
      // ordering keys' gates (a get, a conditional update) and their parked events (a put only
      // if absent, a get, a delete); ordered subscriptions' lines: an entry put, the line read
      // (a get of its head, a query of its first entry), its head claimed (a put only if absent,
      // in a transaction checking that its entry is still there).
      .useTable(props.deliveriesTable, LAMBDA_ENV.deliveriesTable, {
        table: [
          'dynamodb:PutItem',
          'dynamodb:GetItem',
          'dynamodb:UpdateItem',
          'dynamodb:DeleteItem',
          'dynamodb:Query',
          // A line's head is claimed in a transaction with a check that its entry is still there.
          'dynamodb:ConditionCheckItem',
        ],
      })
      // SendMessageBatch, to the lane of each subscription.
      .useQueue(this.delivery.queue, LAMBDA_ENV.deliveryQueueUrl, ['sqs:SendMessage'])
      .useQueue(this.slowLane.queue, LAMBDA_ENV.slowLaneQueueUrl, ['sqs:SendMessage'])
      // Its own queue: a keyed event parked at its key's gate, queued again once its
      // predecessor has been fanned out.
      .useQueue(this.fanout.queue, LAMBDA_ENV.fanoutQueueUrl, ['sqs:SendMessage']);
    this.fanoutFunction.addEventSource(
      new SqsEventSource(this.fanout.queue, {
        batchSize: FANOUT_BATCH_SIZE,
        reportBatchItemFailures: true,
        maxConcurrency: fanoutMaxConcurrency,
      }),
    );

    this.dispatcherFunction = new DispatcherFunction(this, 'DispatcherFunction', {
      entry: 'functions/dispatcher/lambda.ts',
      // Subscriptions' transformations are evaluated on a worker thread bundled beside it.
      transformations: true,
      description: 'Dispatcher: one signed callback per delivery message; each retry a message of its own',
      serviceName: 'dispatcher',
      timeout: dispatcherTimeout,
      memorySize: 512,
      logRetention: props.logRetention,
      ...(props.dispatcherNetwork === undefined ? {} : { network: props.dispatcherNetwork }),
      environment: {
        [LAMBDA_ENV.retrySchedule]: schedule.join(','),
        [LAMBDA_ENV.deliveryTimeoutMs]: String(timeoutMs),
        [LAMBDA_ENV.retentionDays]: String(props.retentionDays),
        // Production never calls private, loopback or metadata addresses.
        [LAMBDA_ENV.allowPrivateTargets]: 'false',
        // Where Powertools Metrics puts the delivery outcomes (embedded in the log; no grant).
        POWERTOOLS_METRICS_NAMESPACE: props.metricsNamespace,
      },
    })
      // Events: get; append (of `subscription.disabled`).
      .useTable(props.eventsTable, LAMBDA_ENV.eventsTable, {
        table: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
      })
      // Subscriptions: get, updateHealth.
      .useTable(props.subscriptionsTable, LAMBDA_ENV.subscriptionsTable, {
        table: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
      })
      // It opens the secrets that sign; it never writes one.
      .useSecretsKey(props.secretsKey, ['kms:Decrypt'])
      // Deliveries: get, skip, recordAttempt; the due retries of waits over 15 minutes
      // (BatchWriteItem puts); a connection subscription's parked tries: a try parked as a
      // connection opened is taken back (DeleteItem) and looks for the connection again; and
      // ordered subscriptions' lines: read (a get of the head, a query of the first entry), the
      // head claimed (a put only if absent, checking its entry), a try taken and given back (conditional updates),
      // an ended delivery's entry and head deleted.
      .useTable(props.deliveriesTable, LAMBDA_ENV.deliveriesTable, {
        table: [
          'dynamodb:GetItem',
          'dynamodb:PutItem',
          'dynamodb:UpdateItem',
          'dynamodb:DeleteItem',
          'dynamodb:BatchWriteItem',
          'dynamodb:Query',
          // A line's head is claimed in a transaction with a check that its entry is still there.
          'dynamodb:ConditionCheckItem',
        ],
      })
      // SendMessageBatch: the next try to either lane, a used-up delivery to the DLQ.
      .useQueue(this.delivery.queue, LAMBDA_ENV.deliveryQueueUrl, ['sqs:SendMessage'])
      .useQueue(this.slowLane.queue, LAMBDA_ENV.slowLaneQueueUrl, ['sqs:SendMessage'])
      .useQueue(this.delivery.deadLetterQueue, LAMBDA_ENV.deliveryDeadLetterQueueUrl, ['sqs:SendMessage']);
    const lanes: [QueueWithDeadLetter, number][] = [
      [this.delivery, props.dispatcherMaxConcurrency],
      [this.slowLane, slowLaneMaxConcurrency],
    ];
    for (const [{ queue }, maxConcurrency] of lanes) {
      this.dispatcherFunction.addEventSource(
        new SqsEventSource(queue, {
          batchSize: DISPATCHER_BATCH_SIZE,
          reportBatchItemFailures: true,
          maxConcurrency,
        }),
      );
    }

    this.sweeperFunction = new DispatcherFunction(this, 'SweeperFunction', {
      entry: 'functions/sweeper/lambda.ts',
      description: 'Sweeper: queues the delivery retries that come due soon',
      serviceName: 'sweeper',
      timeout: Duration.seconds(DUE_SWEEP_INTERVAL_SECONDS),
      logRetention: props.logRetention,
    })
      // Deliveries: the due retries (a Query per shard; BatchWriteItem deletes once queued).
      .useTable(props.deliveriesTable, LAMBDA_ENV.deliveriesTable, {
        table: ['dynamodb:Query', 'dynamodb:BatchWriteItem'],
      })
      // SendMessageBatch, to the lane each message names.
      .useQueue(this.delivery.queue, LAMBDA_ENV.deliveryQueueUrl, ['sqs:SendMessage'])
      .useQueue(this.slowLane.queue, LAMBDA_ENV.slowLaneQueueUrl, ['sqs:SendMessage']);
    this.sweepRule = new events.Rule(this, 'SweepSchedule', {
      description: 'Runs the sweeper of due delivery retries',
      schedule: events.Schedule.rate(Duration.seconds(DUE_SWEEP_INTERVAL_SECONDS)),
      // One sweep at a time is enough; a missed one is made up by the next (the lookahead).
      targets: [new targets.LambdaFunction(this.sweeperFunction, { retryAttempts: 0 })],
    });
  }
}
