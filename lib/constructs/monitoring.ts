import { Aws, Duration } from 'aws-cdk-lib';
import type * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { DELIVERY_METRICS } from '../../functions/adapters/delivery-metrics.ts';
import { SQS } from '../../functions/aws-quotas.ts';

/** A queue and what to call it on the dashboard and in alarm names. */
export interface NamedQueue {
  readonly label: string;
  readonly queue: sqs.IQueue;
}

/** A dead-letter queue, and what ops do with its messages (the text of its alarm). */
export interface DeadLetterQueueWatch extends NamedQueue {
  readonly recovery: string;
}

/** A function and what to call it on the dashboard and in alarm names. */
export interface NamedFunction {
  readonly label: string;
  readonly fn: lambda.IFunction;
}

export interface MonitoringProps {
  /** Names the dashboard and prefixes the alarm names. */
  readonly name: string;
  /** Every dead-letter queue: each gets an alarm on its first message, saying how to recover. */
  readonly deadLetterQueues: readonly DeadLetterQueueWatch[];
  /** The work queues: on the dashboard, each with an alarm on its messages in flight. */
  readonly queues: readonly NamedQueue[];
  /** The delivery queue: an alarm when messages wait unclaimed and the oldest is older than `backlogAge`. */
  readonly deliveryQueue: sqs.IQueue;
  /** The age of the oldest delivery message that means deliveries are falling behind. */
  readonly backlogAge: Duration;
  /** The slow lane: an alarm when messages wait unclaimed and the oldest is older than `slowLaneBacklogAge`. */
  readonly slowLane: sqs.IQueue;
  /**
   * The age of the slow lane's oldest message that means failing endpoints' tries run behind.
   * @default DEFAULT_SLOW_LANE_BACKLOG_AGE
   */
  readonly slowLaneBacklogAge?: Duration;
  /** The dispatcher: an alarm on any invocation error (a whole batch failing, not a callback). */
  readonly dispatcher: lambda.IFunction;
  /** Fan-out: an alarm on any invocation error (a whole batch failing). */
  readonly fanout: lambda.IFunction;
  /** The sweeper of due retries: alarms when most of its runs fail, and when it stops running. */
  readonly sweeper: lambda.IFunction;
  /**
   * How long the sweeper may go without running before due retries leave late: how far ahead
   * of their time it queues them. Whole minutes.
   */
  readonly sweeperSilence: Duration;
  /** Every function: on the dashboard, each with an alarm on throttles. */
  readonly functions: readonly NamedFunction[];
  /** Failed pipe executions: an alarm on any. */
  readonly pipeFailures: cloudwatch.IMetric;
  /** Events the pipe passed on, for the dashboard. */
  readonly pipeEvents: cloudwatch.IMetric;
  /**
   * The namespace of the dispatcher's delivery metrics (DELIVERY_METRICS, with the `service`
   * dimension `dispatcher`): the dashboard graphs outcomes and publish → callback latency.
   */
  readonly deliveryMetricsNamespace: string;
  /** The API's stage: an alarm on its rate of 5xx answers, and the dashboard. */
  readonly apiStage: apigw.IHttpStage;
  /**
   * Where alarm notifications go.
   * @default - no subscription: subscribe to the topic yourself
   */
  readonly alarmEmail?: string;
}

const PERIOD = Duration.minutes(5);

/**
 * Messages in flight on a work queue that mean receives are failing rather than being worked:
 * a tenth of a standard queue's in-flight quota (SQS.standardInFlight, about 120,000;
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-queues.html).
 * Nothing waits in flight here (a retry waits as a delayed message or a due retry), so a
 * healthy queue holds in flight only the batches its consumer is working on: at most
 * MaximumConcurrency × BatchSize, 1,000 × 10 = 10,000 at the highest concurrency an event
 * source takes, 100 at the dispatcher's default. More are messages of receives that failed or
 * timed out, each hidden for its visibility timeout (six function timeouts); at the quota a
 * receive returns nothing and the queue stops without an error. A tenth alarms before that
 * with 108,000 messages of room left.
 */
export const IN_FLIGHT_ALARM_THRESHOLD = SQS.standardInFlight / 10;

/**
 * Slow-lane messages wait their try's delay, up to 15 minutes, and a hanging endpoint holds
 * one of the lane's few invocations (slowLaneMaxConcurrency) a whole delivery timeout, so
 * minutes of age are normal there. An hour, with messages waiting unclaimed all along, means
 * failing endpoints' tries run an hour behind their schedule, longer than the default
 * schedule's first three waits together (5 s, 5 min, 30 min), and the backlog grows faster
 * than the lane works it.
 */
export const DEFAULT_SLOW_LANE_BACKLOG_AGE = Duration.hours(1);

/**
 * The share of API requests answered 5xx, in percent, that alarms over two periods in a row.
 * 5xx counts the API's own 500s (bugs), its 503s (a table or queue that refused for a moment:
 * the caller retries) and API Gateway's answers for a failed, timed-out or throttled
 * integration or authorizer. The odd 503 of a burst stays far below 1%.
 */
export const API_5XX_PERCENT = 1;

/** Sweeper errors in one period (about five runs) that alarm: most runs failed. */
const SWEEPER_FAILED_RUNS = 3;

const LABEL = /^[a-z0-9]+(-[a-z0-9]+)*$/;

/**
 * What ops watch, all notifying one SNS topic (and an e-mail address when given), and a
 * dashboard that reads top to bottom in the order events flow. Alarms, hop by hop:
 * - the pipe's failed executions;
 * - every dead-letter queue's first message, each saying how its messages are recovered;
 * - each work queue's messages in flight, well below SQS's in-flight quota; a main-lane
 *   backlog and a slow-lane backlog;
 * - fan-out, dispatcher and sweeper errors, a sweeper that stopped running, and throttles of
 *   every function;
 * - the API's share of 5xx answers.
 */
export class Monitoring extends Construct {
  public readonly topic: sns.Topic;
  public readonly alarms: readonly cloudwatch.Alarm[];
  /** The DLQ alarms, in the order of `deadLetterQueues`. */
  public readonly deadLetterAlarms: readonly cloudwatch.Alarm[];
  public readonly dashboard: cloudwatch.Dashboard;
  readonly #name: string;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    checkProps(id, props);
    this.#name = props.name;

    // Alarm notifications carry alarm names and states, no partner data; CloudWatch cannot
    // publish to a topic encrypted with the AWS-managed SNS key, so it stays SSE-less.
    this.topic = new sns.Topic(this, 'AlarmTopic', {
      displayName: `${props.name} alarms`,
      enforceSSL: true,
    });
    if (props.alarmEmail !== undefined) {
      this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    }

    this.deadLetterAlarms = props.deadLetterQueues.map(({ label, queue, recovery }) =>
      this.#alarm(`${label}DeadLetters`, `${label}-dead-letters`, {
        metric: queue.metricApproximateNumberOfMessagesVisible({
          statistic: cloudwatch.Stats.MAXIMUM,
          period: Duration.minutes(1),
        }),
        alarmDescription: `Messages in the ${label} dead-letter queue. ${recovery}`,
        threshold: 0,
      }),
    );
    this.alarms = [
      ...this.#eventAlarms(props),
      ...this.deadLetterAlarms,
      ...this.#queueAlarms(props),
      ...this.#functionAlarms(props),
      this.#apiAlarm(props),
    ];
    const notify = new actions.SnsAction(this.topic);
    for (const alarm of this.alarms) {
      alarm.addAlarmAction(notify);
      alarm.addOkAction(notify);
    }
    this.dashboard = this.#dashboard(props);
  }

  /** The dashboard in the CloudWatch console. */
  public get dashboardUrl(): string {
    return (
      `https://${Aws.REGION}.console.aws.amazon.com/cloudwatch/home?region=${Aws.REGION}` +
      `#dashboards/dashboard/${this.dashboard.dashboardName}`
    );
  }

  /** An alarm named `<name>-<suffix>`; by default above the threshold in one period, quiet without data. */
  #alarm(
    id: string,
    suffix: string,
    props: Omit<cloudwatch.AlarmProps, 'alarmName' | 'evaluationPeriods'> & { evaluationPeriods?: number },
  ): cloudwatch.Alarm {
    return new cloudwatch.Alarm(this, id, {
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      ...props,
      alarmName: `${this.#name}-${suffix}`,
    });
  }

  /** From the events table to the fan-out queue: the pipe. */
  #eventAlarms(props: MonitoringProps): cloudwatch.Alarm[] {
    const pipeFailures = this.#alarm('PipeFailures', 'pipe-failures', {
      metric: props.pipeFailures,
      alarmDescription:
        'The pipe from the events table stream to the fan-out queue failed executions: it retries and bisects, ' +
        "then dead-letters the batch (the pipe dead-letter alarm says how to recover). Find the cause in the pipe's " +
        'log group (errors only): the queue refusing SendMessageBatch, or the role missing a permission.',
      threshold: 0,
    });
    return [pipeFailures];
  }

  /** Messages in flight on every work queue, and the backlogs of the two delivery lanes. */
  #queueAlarms(props: MonitoringProps): cloudwatch.Alarm[] {
    const inFlight = props.queues.map(({ label, queue }) =>
      this.#alarm(`${label}InFlight`, `${label}-in-flight`, {
        metric: queue.metricApproximateNumberOfMessagesNotVisible({
          statistic: cloudwatch.Stats.MAXIMUM,
          period: PERIOD,
        }),
        alarmDescription:
          `Over ${IN_FLIGHT_ALARM_THRESHOLD.toLocaleString('en-US')} messages in flight on the ${label} queue, a ` +
          `tenth of SQS's in-flight quota (${SQS.standardInFlight.toLocaleString('en-US')}): far more than its ` +
          'consumer works on at once, so receives are failing or timing out and their messages stay hidden for ' +
          "a visibility timeout each. At the quota the queue stops delivering. Find the cause in the consumer's " +
          'errors and logs.',
        threshold: IN_FLIGHT_ALARM_THRESHOLD,
      }),
    );
    // A message hidden for its backoff is old but not late (a receiver's Retry-After can hide
    // one for hours), so the age counts only while messages wait unclaimed all period long:
    // the dispatchers are not keeping up.
    const backlog = this.#alarm('DeliveryBacklog', 'delivery-backlog', {
      metric: ageWhileWaiting(props.deliveryQueue, 'Oldest delivery message age while messages wait (s)'),
      alarmDescription:
        `Delivery messages waited unclaimed for a whole period and the oldest is over ` +
        `${props.backlogAge.toMinutes()} minutes old: dispatchers are falling behind (throttled, erroring or ` +
        'at max concurrency).',
      threshold: props.backlogAge.toSeconds(),
      evaluationPeriods: 2,
    });
    const slowLaneAge = props.slowLaneBacklogAge ?? DEFAULT_SLOW_LANE_BACKLOG_AGE;
    const slowLane = this.#alarm('SlowLaneBacklog', 'slow-lane-backlog', {
      metric: ageWhileWaiting(props.slowLane, 'Oldest slow-lane message age while messages wait (s)'),
      alarmDescription:
        `Slow-lane messages waited unclaimed for 15 minutes and the oldest is over ${slowLaneAge.toMinutes()} ` +
        "minutes old: failing endpoints' tries run that far behind their schedule, and the lane's few " +
        'invocations are not keeping up (endpoints hanging until the delivery timeout, or many endpoints ' +
        'failing at once). Find the subscriptions in the dispatcher logs; raise slowLaneMaxConcurrency if the ' +
        'endpoints are many rather than slow.',
      threshold: slowLaneAge.toSeconds(),
      evaluationPeriods: 3,
    });
    return [...inFlight, backlog, slowLane];
  }

  /** Errors of the queue consumers and the sweeper, a sweeper that stopped, throttles of all. */
  #functionAlarms(props: MonitoringProps): cloudwatch.Alarm[] {
    const batchFailed = (label: string) =>
      `${label} invocations failed as a whole (a failed record is reported and retried on its own, not an ` +
      'error): every message of such a batch comes back after its visibility timeout, counting a receive ' +
      'towards its DLQ. Find the cause in the function logs.';
    const dispatcherErrors = this.#alarm('DispatcherErrors', 'dispatcher-errors', {
      metric: props.dispatcher.metricErrors({ period: PERIOD }),
      alarmDescription: `${batchFailed('Dispatcher')} A failed callback is not an error: it is retried.`,
      threshold: 0,
    });
    const fanoutErrors = this.#alarm('FanoutErrors', 'fanout-errors', {
      metric: props.fanout.metricErrors({ period: PERIOD }),
      alarmDescription: batchFailed('Fan-out'),
      threshold: 0,
    });
    const silence = props.sweeperSilence.toMinutes();
    // One failed run is made up by the next: each queues the retries due within several runs.
    const sweeperErrors = this.#alarm('SweeperErrors', 'sweeper-errors', {
      metric: props.sweeper.metricErrors({ period: PERIOD }),
      alarmDescription:
        `The sweeper failed ${SWEEPER_FAILED_RUNS} or more of its runs in 5 minutes: delivery retries waiting ` +
        `over 15 minutes (due retries in the deliveries table) leave late once it has not run for ${silence} ` +
        'minutes. Find the cause in its logs (DynamoDB or SQS errors, or its timeout).',
      threshold: SWEEPER_FAILED_RUNS,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    });
    // Run every minute, the sweeper has invocations in every one-minute period; none in as many
    // minutes as it queues ahead means due retries now leave late.
    const sweeperStopped = this.#alarm('SweeperStopped', 'sweeper-stopped', {
      metric: props.sweeper.metricInvocations({
        statistic: cloudwatch.Stats.SUM,
        period: Duration.minutes(1),
      }),
      alarmDescription:
        `The sweeper has not run for ${silence} minutes: delivery retries waiting over 15 minutes stay in the ` +
        'deliveries table past their time. Check that its EventBridge schedule rule is enabled and that the ' +
        'function is not throttled; a run queues every retry due by then, late ones at once.',
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: silence,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });
    // No function reserves concurrency and the queue consumers are capped by their event
    // sources' MaximumConcurrency, so a throttle means the account's concurrency is used up.
    const throttles = props.functions.map(({ label, fn }) =>
      this.#alarm(`${label}Throttles`, `${label}-throttles`, {
        metric: fn.metricThrottles({ statistic: cloudwatch.Stats.SUM, period: PERIOD }),
        alarmDescription:
          `The ${label} function was throttled: the account's Lambda concurrency in this Region is used up ` +
          '(no function here reserves any; Lambda developer guide, "Lambda quotas"). A throttled API or ' +
          'authorizer request fails, a throttled queue consumer may count a receive towards the DLQ, a ' +
          'throttled sweep runs late. Find what else in the account is running, or request a higher ' +
          'concurrency quota.',
        threshold: 0,
      }),
    );
    return [dispatcherErrors, fanoutErrors, sweeperErrors, sweeperStopped, ...throttles];
  }

  /**
   * The share of requests answered 5xx. HTTP APIs publish no metric of throttled requests
   * (429s are counted in `4xx` with every other client error), so throttling is on the
   * dashboard, not an alarm.
   */
  #apiAlarm(props: MonitoringProps): cloudwatch.Alarm {
    return this.#alarm('Api5xx', 'api-5xx', {
      metric: new cloudwatch.MathExpression({
        expression: '100 * FILL(errors, 0) / requests',
        usingMetrics: {
          errors: props.apiStage.metricServerError({ statistic: cloudwatch.Stats.SUM, period: PERIOD }),
          requests: props.apiStage.metricCount({ statistic: cloudwatch.Stats.SUM, period: PERIOD }),
        },
        label: 'API requests answered 5xx (%)',
        period: PERIOD,
      }),
      alarmDescription:
        `Over ${API_5XX_PERCENT}% of API requests were answered 5xx for 10 minutes. Find them in the access ` +
        'logs (status, integrationError) and the API and authorizer function logs: errors, timeouts and ' +
        'throttles of the functions, or DynamoDB and SQS errors behind 503s.',
      threshold: API_5XX_PERCENT,
      evaluationPeriods: 2,
    });
  }

  #dashboard(props: MonitoringProps): cloudwatch.Dashboard {
    const dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: props.name,
      defaultInterval: Duration.hours(3),
    });
    const wide = 24;
    const half = 12;
    const third = 8;
    dashboard.addWidgets(
      new cloudwatch.TextWidget({
        markdown:
          `# ${props.name}\n` +
          'Events flow top to bottom: **API** → events table → **pipe** → **fan-out queue** → ' +
          '**delivery queue** (main lane) or **slow lane** → callbacks; the **sweeper** queues retries that ' +
          'wait longer than 15 minutes. Any message in a dead-letter queue is an alarm.',
        width: wide,
        height: 2,
      }),
    );
    dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: [...this.alarms], width: wide, height: 6 }),
    );
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'API requests and errors (4xx includes throttled requests)',
        left: [props.apiStage.metricCount({ statistic: cloudwatch.Stats.SUM, period: PERIOD })],
        right: [
          props.apiStage.metricClientError({ statistic: cloudwatch.Stats.SUM, period: PERIOD }),
          props.apiStage.metricServerError({ statistic: cloudwatch.Stats.SUM, period: PERIOD }),
        ],
        width: third,
      }),
      new cloudwatch.GraphWidget({
        title: 'API latency (p99)',
        left: [props.apiStage.metricLatency({ statistic: cloudwatch.Stats.p(99), period: PERIOD })],
        width: third,
      }),
      new cloudwatch.GraphWidget({
        title: 'Pipe: events passed and failed executions',
        left: [props.pipeEvents],
        right: [props.pipeFailures],
        width: third,
      }),
    );
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Queue depth (visible)',
        left: props.queues.map(({ label, queue }) =>
          queue.metricApproximateNumberOfMessagesVisible({
            label,
            statistic: cloudwatch.Stats.MAXIMUM,
            period: PERIOD,
          }),
        ),
        width: third,
      }),
      new cloudwatch.GraphWidget({
        title: 'Messages in flight',
        left: props.queues.map(({ label, queue }) =>
          queue.metricApproximateNumberOfMessagesNotVisible({
            label,
            statistic: cloudwatch.Stats.MAXIMUM,
            period: PERIOD,
          }),
        ),
        leftAnnotations: [{ label: 'in-flight alarm', value: IN_FLIGHT_ALARM_THRESHOLD }],
        width: third,
      }),
    );
    const slowLaneAge = props.slowLaneBacklogAge ?? DEFAULT_SLOW_LANE_BACKLOG_AGE;
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Oldest message age (s)',
        left: props.queues.map(({ label, queue }) =>
          queue.metricApproximateAgeOfOldestMessage({
            label,
            statistic: cloudwatch.Stats.MAXIMUM,
            period: PERIOD,
          }),
        ),
        leftAnnotations: [
          { label: 'delivery backlog alarm', value: props.backlogAge.toSeconds() },
          { label: 'slow-lane backlog alarm', value: slowLaneAge.toSeconds() },
        ],
        width: third,
      }),
      new cloudwatch.GraphWidget({
        title: 'Dead letters',
        left: props.deadLetterQueues.map(({ label, queue }) =>
          queue.metricApproximateNumberOfMessagesVisible({
            label,
            statistic: cloudwatch.Stats.MAXIMUM,
            period: PERIOD,
          }),
        ),
        width: third,
      }),
      new cloudwatch.GraphWidget({
        title: 'Function invocations (the sweeper: about 5 per period)',
        left: props.functions.map(({ label, fn }) =>
          fn.metricInvocations({ label, statistic: cloudwatch.Stats.SUM, period: PERIOD }),
        ),
        width: third,
      }),
    );
    const delivery = (metricName: string, label: string, statistic: string = cloudwatch.Stats.SUM) =>
      new cloudwatch.Metric({
        namespace: props.deliveryMetricsNamespace,
        metricName,
        dimensionsMap: { service: 'dispatcher' },
        label,
        statistic,
        period: PERIOD,
      });
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Callbacks: what became of each try',
        left: [
          delivery(DELIVERY_METRICS.succeeded, 'succeeded'),
          delivery(DELIVERY_METRICS.failed, 'failed, retried'),
          delivery(DELIVERY_METRICS.dead, 'dead-lettered'),
          delivery(DELIVERY_METRICS.skipped, 'not sent (skipped)'),
        ],
        width: half,
      }),
      new cloudwatch.GraphWidget({
        title: 'Publish → callback, first tries that succeeded (ms)',
        left: [
          delivery(DELIVERY_METRICS.latency, 'p50', cloudwatch.Stats.p(50)),
          delivery(DELIVERY_METRICS.latency, 'p99', cloudwatch.Stats.p(99)),
        ],
        width: half,
      }),
    );
    const byFunction = (metric: (fn: lambda.IFunction, label: string) => cloudwatch.IMetric) =>
      props.functions.map(({ label, fn }) => metric(fn, label));
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Function errors and throttles',
        left: byFunction((fn, label) => fn.metricErrors({ label: `${label} errors`, period: PERIOD })),
        right: byFunction((fn, label) => fn.metricThrottles({ label: `${label} throttles`, period: PERIOD })),
        width: half,
      }),
      new cloudwatch.GraphWidget({
        title: 'Function duration (p99, ms)',
        left: byFunction((fn, label) =>
          fn.metricDuration({ label, statistic: cloudwatch.Stats.p(99), period: PERIOD }),
        ),
        width: half,
      }),
    );
    return dashboard;
  }
}

function checkProps(id: string, props: MonitoringProps): void {
  if (!/^[A-Za-z0-9_-]{1,255}$/.test(props.name)) {
    throw new Error(
      `${id}: name must be 1-255 letters, digits, - or _ (a dashboard name), got "${props.name}"`,
    );
  }
  if (props.deadLetterQueues.length === 0) throw new Error(`${id}: no dead-letter queues to watch`);
  const groups: [string, readonly { label: string }[]][] = [
    ['DLQ', props.deadLetterQueues],
    ['queue', props.queues],
    ['function', props.functions],
  ];
  for (const [what, named] of groups) {
    const labels = named.map((entry) => entry.label);
    if (new Set(labels).size !== labels.length) throw new Error(`${id}: ${what} labels must be unique`);
    const bad = labels.find((label) => !LABEL.test(label));
    if (bad !== undefined) {
      throw new Error(`${id}: ${what} label "${bad}" must be lowercase words joined by -`);
    }
  }
  const silence = props.sweeperSilence.toMinutes({ integral: false });
  if (!Number.isInteger(silence) || silence < 1) {
    throw new Error(`${id}: sweeperSilence must be a whole number of minutes, at least one`);
  }
  if (props.alarmEmail !== undefined && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(props.alarmEmail)) {
    throw new Error(`${id}: alarmEmail must be an e-mail address, got "${props.alarmEmail}"`);
  }
}

/**
 * The queue's oldest message age, counted only in periods when messages waited visible all
 * period long (a hidden or delayed message is old without being late).
 */
function ageWhileWaiting(queue: sqs.IQueue, label: string): cloudwatch.MathExpression {
  return new cloudwatch.MathExpression({
    expression: 'IF(waiting > 0, age, 0)',
    usingMetrics: {
      age: queue.metricApproximateAgeOfOldestMessage({ statistic: cloudwatch.Stats.MAXIMUM, period: PERIOD }),
      waiting: queue.metricApproximateNumberOfMessagesVisible({
        statistic: cloudwatch.Stats.MINIMUM,
        period: PERIOD,
      }),
    },
    label,
    period: PERIOD,
  });
}
