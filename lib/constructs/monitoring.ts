import { Aws, Duration } from 'aws-cdk-lib';
import type * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

/** A queue and what to call it on the dashboard and in alarm names. */
export interface NamedQueue {
  readonly label: string;
  readonly queue: sqs.IQueue;
}

/** A dead-letter queue, and what ops do with its messages (the text of its alarm). */
export interface DeadLetterQueueWatch extends NamedQueue {
  readonly recovery: string;
}

/** A function and what to call it on the dashboard. */
export interface NamedFunction {
  readonly label: string;
  readonly fn: lambda.IFunction;
}

export interface MonitoringProps {
  /** Names the dashboard and prefixes the alarm names. */
  readonly name: string;
  /** Every dead-letter queue: each gets an alarm on its first message, saying how to recover. */
  readonly deadLetterQueues: readonly DeadLetterQueueWatch[];
  /** The work queues, for the dashboard. */
  readonly queues: readonly NamedQueue[];
  /** The delivery queue: an alarm when messages wait unclaimed and the oldest is older than `backlogAge`. */
  readonly deliveryQueue: sqs.IQueue;
  /** The age of the oldest delivery message that means deliveries are falling behind. */
  readonly backlogAge: Duration;
  /** The dispatcher: an alarm on any invocation error (a whole batch failing, not a callback). */
  readonly dispatcher: lambda.IFunction;
  /** Every function, for the dashboard. */
  readonly functions: readonly NamedFunction[];
  /** Failed pipe executions: an alarm on any. */
  readonly pipeFailures: cloudwatch.IMetric;
  /** Events the pipe passed on, for the dashboard. */
  readonly pipeEvents: cloudwatch.IMetric;
  /** The API's stage, for the dashboard. */
  readonly apiStage: apigw.IHttpStage;
  /**
   * Where alarm notifications go.
   * @default - no subscription: subscribe to the topic yourself
   */
  readonly alarmEmail?: string;
}

const PERIOD = Duration.minutes(5);

/**
 * What ops watch: an alarm on the first message in any DLQ, on a delivery backlog, on
 * dispatcher errors and on pipe failures, all notifying one SNS topic (and an e-mail address
 * when given), and a dashboard that reads top to bottom in the order events flow.
 */
export class Monitoring extends Construct {
  public readonly topic: sns.Topic;
  public readonly alarms: readonly cloudwatch.Alarm[];
  /** The DLQ alarms, in the order of `deadLetterQueues`. */
  public readonly deadLetterAlarms: readonly cloudwatch.Alarm[];
  public readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    if (!/^[A-Za-z0-9_-]{1,255}$/.test(props.name)) {
      throw new Error(
        `${id}: name must be 1-255 letters, digits, - or _ (a dashboard name), got "${props.name}"`,
      );
    }
    if (props.deadLetterQueues.length === 0) throw new Error(`${id}: no dead-letter queues to watch`);
    const labels = props.deadLetterQueues.map((dlq) => dlq.label);
    if (new Set(labels).size !== labels.length) throw new Error(`${id}: DLQ labels must be unique`);
    if (props.alarmEmail !== undefined && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(props.alarmEmail)) {
      throw new Error(`${id}: alarmEmail must be an e-mail address, got "${props.alarmEmail}"`);
    }

    // Alarm notifications carry alarm names and states, no partner data; CloudWatch cannot
    // publish to a topic encrypted with the AWS-managed SNS key, so it stays SSE-less.
    this.topic = new sns.Topic(this, 'AlarmTopic', {
      displayName: `${props.name} alarms`,
      enforceSSL: true,
    });
    if (props.alarmEmail !== undefined) {
      this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    }
    const notify = new actions.SnsAction(this.topic);

    this.deadLetterAlarms = props.deadLetterQueues.map(({ label, queue, recovery }) =>
      queue
        .metricApproximateNumberOfMessagesVisible({
          statistic: cloudwatch.Stats.MAXIMUM,
          period: Duration.minutes(1),
        })
        .createAlarm(this, `${label}DeadLetters`, {
          alarmName: `${props.name}-${label}-dead-letters`,
          alarmDescription: `Messages in the ${label} dead-letter queue. ${recovery}`,
          threshold: 0,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
          evaluationPeriods: 1,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
    );

    // A message hidden for its backoff is old but not late (a receiver's Retry-After can hide
    // one for hours), so the age counts only while messages wait unclaimed all period long:
    // the dispatchers are not keeping up.
    const backlog = new cloudwatch.Alarm(this, 'DeliveryBacklog', {
      metric: new cloudwatch.MathExpression({
        expression: 'IF(waiting > 0, age, 0)',
        usingMetrics: {
          age: props.deliveryQueue.metricApproximateAgeOfOldestMessage({
            statistic: cloudwatch.Stats.MAXIMUM,
            period: PERIOD,
          }),
          waiting: props.deliveryQueue.metricApproximateNumberOfMessagesVisible({
            statistic: cloudwatch.Stats.MINIMUM,
            period: PERIOD,
          }),
        },
        label: 'Oldest delivery message age while messages wait (s)',
        period: PERIOD,
      }),
      alarmName: `${props.name}-delivery-backlog`,
      alarmDescription:
        `Delivery messages waited unclaimed for a whole period and the oldest is over ` +
        `${props.backlogAge.toMinutes()} minutes old: dispatchers are falling behind (throttled, erroring or ` +
        'at max concurrency).',
      threshold: props.backlogAge.toSeconds(),
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 2,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    const dispatcherErrors = props.dispatcher
      .metricErrors({ period: PERIOD })
      .createAlarm(this, 'DispatcherErrors', {
        alarmName: `${props.name}-dispatcher-errors`,
        alarmDescription:
          'Dispatcher invocations failed as a whole (a failed callback is not an error: it is retried). ' +
          'Every message of such a batch is tried again.',
        threshold: 0,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });

    const pipeFailures = new cloudwatch.Alarm(this, 'PipeFailures', {
      metric: props.pipeFailures,
      alarmName: `${props.name}-pipe-failures`,
      alarmDescription:
        'The pipe from the events table stream to the bus failed executions: it retries and bisects, then ' +
        'dead-letters the batch.',
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    this.alarms = [...this.deadLetterAlarms, backlog, dispatcherErrors, pipeFailures];
    for (const alarm of this.alarms) {
      alarm.addAlarmAction(notify);
      alarm.addOkAction(notify);
    }

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: props.name,
      defaultInterval: Duration.hours(3),
    });
    const wide = 24;
    const half = 12;
    const third = 8;
    this.dashboard.addWidgets(
      new cloudwatch.TextWidget({
        markdown:
          `# ${props.name}\n` +
          'Events flow top to bottom: **API** → events table → **pipe** → bus → **fan-out queue** → ' +
          '**delivery queue** → callbacks. Any message in a dead-letter queue is an alarm.',
        width: wide,
        height: 2,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: [...this.alarms], width: wide, height: 3 }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'API requests and errors',
        left: [props.apiStage.metricCount({ statistic: cloudwatch.Stats.SUM, period: PERIOD })],
        right: [
          props.apiStage.metricClientError({ period: PERIOD }),
          props.apiStage.metricServerError({ period: PERIOD }),
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
    this.dashboard.addWidgets(
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
        title: 'Oldest message age (s)',
        left: props.queues.map(({ label, queue }) =>
          queue.metricApproximateAgeOfOldestMessage({
            label,
            statistic: cloudwatch.Stats.MAXIMUM,
            period: PERIOD,
          }),
        ),
        leftAnnotations: [{ label: 'delivery backlog alarm', value: props.backlogAge.toSeconds() }],
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
    );
    const byFunction = (metric: (fn: lambda.IFunction, label: string) => cloudwatch.IMetric) =>
      props.functions.map(({ label, fn }) => metric(fn, label));
    this.dashboard.addWidgets(
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
  }

  /** The dashboard in the CloudWatch console. */
  public get dashboardUrl(): string {
    return (
      `https://${Aws.REGION}.console.aws.amazon.com/cloudwatch/home?region=${Aws.REGION}` +
      `#dashboards/dashboard/${this.dashboard.dashboardName}`
    );
  }
}
