import { CfnOutput, Duration, Stack, type StackProps } from 'aws-cdk-lib';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import type { RequestLimits } from '../../functions/core/limits.ts';
import { ConnectionApi } from '../constructs/connection-api.ts';
import {
  DEFAULT_SLOW_LANE_MAX_CONCURRENCY,
  DeliveryPipeline,
  DUE_LOOKAHEAD_SECONDS,
} from '../constructs/delivery-pipeline.ts';
import { EgressNetwork } from '../constructs/egress-network.ts';
import { EventStream } from '../constructs/event-stream.ts';
import { Monitoring } from '../constructs/monitoring.ts';
import { OpsFunction } from '../constructs/ops-function.ts';
import { PartnerApi } from '../constructs/partner-api.ts';
import type { DispatcherTables } from './data-stack.ts';

export interface ServiceStackProps extends StackProps {
  /** The tables, from the data stack. */
  readonly tables: DispatcherTables;
  /** The key sealing the signing secrets, from the data stack. */
  readonly secretsKey: kms.IKey;
  /** Seconds before each delivery try; its length is the number of tries. */
  readonly retrySchedule: readonly number[];
  /** Per-callback HTTP timeout. */
  readonly deliveryTimeout: Duration;
  /** Most concurrent dispatcher invocations. */
  readonly dispatcherMaxConcurrency: number;
  /** Days events are kept (TTL), and with them their deliveries and attempts. */
  readonly retentionDays: number;
  /**
   * Requests per second of each partner and of each producer.
   * @default DEFAULT_REQUEST_LIMITS
   */
  readonly requestLimits?: RequestLimits;
  /**
   * Where alarm notifications go.
   * @default - none: subscribe to the alarm topic yourself
   */
  readonly alarmEmail?: string;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /**
   * Callbacks leave from fixed addresses: the dispatcher runs in an EgressNetwork whose NAT
   * gateways have Elastic IPs, given as the EgressIps output and listed by `GET /v1/egress-ips`.
   * @default false
   */
  readonly staticEgress?: boolean;
}

/** What to do with a queue's poison messages, in its DLQ alarm. */
function redriveTo(source: string, queue: string): string {
  return (
    `Messages that failed their handler over and over. Find the cause in the logs, fix it, then redrive them to ${source} ` +
    `(SQS console: the queue, "Start DLQ redrive", "Redrive to source queue(s)"; or npx dispatcher dlq redrive ${queue} ` +
    '--aws --stack <this stack>).'
  );
}

/**
 * The stateless stack: everything that can be rebuilt from code. The pipe from the events
 * stream to the fan-out queue, the queues and functions of the push path, the HTTP API, the
 * WebSocket API of connection subscriptions, and the alarms and dashboard over all of it.
 * Queues hold only messages in flight, the pipe starts at the stream's trim horizon, and the
 * connections table only open connections (agents reconnect), so deleting and deploying this
 * stack again loses no event.
 */
export class ServiceStack extends Stack {
  public readonly eventStream: EventStream;
  public readonly pipeline: DeliveryPipeline;
  public readonly api: PartnerApi;
  /** The WebSocket API partners' agents connect to, and its connections table. */
  public readonly connections: ConnectionApi;
  /** Serves the ops routes: queues, dead letters, redrives, subscription health, delivery rates. */
  public readonly opsFunction: OpsFunction;
  public readonly monitoring: Monitoring;
  /** With `staticEgress`: the VPC and NAT gateways the dispatcher's callbacks leave through. */
  public readonly egress: EgressNetwork | undefined;

  constructor(scope: Construct, id: string, props: ServiceStackProps) {
    super(scope, id, props);
    const { tables } = props;
    const logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;

    this.egress =
      props.staticEgress === true
        ? new EgressNetwork(this, 'Egress', {
            // The dispatcher's environments at most: both lanes' event sources at their caps.
            maxEnvironments: props.dispatcherMaxConcurrency + DEFAULT_SLOW_LANE_MAX_CONCURRENCY,
            logRetention,
          })
        : undefined;
    this.pipeline = new DeliveryPipeline(this, 'Delivery', {
      eventsTable: tables.events,
      subscriptionsTable: tables.subscriptions,
      deliveriesTable: tables.deliveries,
      secretsKey: props.secretsKey,
      metricsNamespace: this.stackName,
      queueNamePrefix: this.stackName,
      retrySchedule: props.retrySchedule,
      deliveryTimeout: props.deliveryTimeout,
      dispatcherMaxConcurrency: props.dispatcherMaxConcurrency,
      retentionDays: props.retentionDays,
      logRetention,
      ...(this.egress === undefined ? {} : { dispatcherNetwork: this.egress.functionNetwork }),
    });
    // After the pipeline: parked tries are queued again on its main lane, and agents are told
    // its delivery timeout.
    this.connections = new ConnectionApi(this, 'Connections', {
      partnersTable: tables.partners,
      subscriptionsTable: tables.subscriptions,
      deliveriesTable: tables.deliveries,
      deliveryQueue: this.pipeline.delivery.queue,
      deliveryTimeout: props.deliveryTimeout,
      retentionDays: props.retentionDays,
      logRetention,
    });
    this.connections.grantPush(this.pipeline.dispatcherFunction);
    this.eventStream = new EventStream(this, 'EventStream', {
      eventsTable: tables.events,
      fanoutQueue: this.pipeline.fanout.queue,
      queueNamePrefix: this.stackName,
      logRetention,
    });
    const { fanout, delivery, slowLane } = this.pipeline;
    const pipe = { queue: this.eventStream.recoveryQueue, deadLetterQueue: this.eventStream.deadLetterQueue };
    this.opsFunction = new OpsFunction(this, 'OpsFunction', {
      fanout,
      delivery,
      slowLane,
      pipe,
      partnersTable: tables.partners,
      subscriptionsTable: tables.subscriptions,
      deliveriesTable: tables.deliveries,
      deliveryMetricsNamespace: this.stackName,
      ...(props.requestLimits === undefined ? {} : { requestLimits: props.requestLimits }),
      logRetention,
    });
    this.api = new PartnerApi(this, 'Api', {
      eventsTable: tables.events,
      partnersTable: tables.partners,
      subscriptionsTable: tables.subscriptions,
      deliveriesTable: tables.deliveries,
      secretsKey: props.secretsKey,
      deliveryQueue: this.pipeline.delivery.queue,
      slowLaneQueue: this.pipeline.slowLane.queue,
      retentionDays: props.retentionDays,
      opsFunction: this.opsFunction,
      ...(props.requestLimits === undefined ? {} : { requestLimits: props.requestLimits }),
      logRetention,
      ...(this.egress === undefined ? {} : { egressIps: this.egress.egressIps }),
    });
    this.connections.grantClose(this.api.apiFunction);

    this.monitoring = new Monitoring(this, 'Monitoring', {
      name: this.stackName,
      deadLetterQueues: [
        {
          label: 'pipe',
          queue: this.eventStream.deadLetterQueue,
          recovery:
            'Each message names a stream batch the pipe gave up on (shard, sequence numbers, arrival times), not ' +
            'its events, which never reached the fan-out queue: they are in the events table (pollable) but got no ' +
            'callback (or a batch the recovery function failed on 3 times). Fix the cause (pipe and recovery ' +
            'function logs), then redrive the queue to the recovery queue (SQS console: the queue, "Start DLQ ' +
            'redrive", "Redrive to a custom destination", the PipeRecoveryQueueArn output; or npx dispatcher dlq ' +
            'redrive pipe-dlq --aws --stack <this stack>): the recovery function queues the events of each batch ' +
            'for fan-out again. Fan-out makes one delivery per event and subscription, so events that did get ' +
            'through are not sent twice.',
        },
        {
          label: 'fanout',
          queue: fanout.deadLetterQueue,
          recovery: redriveTo('the fan-out queue', 'fanout-dlq'),
        },
        {
          label: 'delivery',
          queue: delivery.deadLetterQueue,
          recovery:
            'Deliveries whose tries are used up (and main-lane messages that failed 10 receives). Once the ' +
            'receiver is fixed, redrive them to the delivery queue (SQS console: the queue, "Start DLQ redrive", ' +
            '"Redrive to a custom destination", the DeliveryQueueArn output; or npx dispatcher dlq redrive ' +
            'delivery-dlq --aws --stack <this stack>): each is tried at once with a fresh schedule.',
        },
        {
          label: 'slow-lane',
          queue: slowLane.deadLetterQueue,
          recovery: redriveTo('the slow lane', 'slow-dlq'),
        },
      ],
      queues: [
        { label: 'fanout', queue: fanout.queue },
        { label: 'delivery', queue: delivery.queue },
        { label: 'slow-lane', queue: slowLane.queue },
        { label: 'pipe-recovery', queue: pipe.queue },
      ],
      deliveryQueue: delivery.queue,
      backlogAge: this.pipeline.backlogAge,
      slowLane: slowLane.queue,
      dispatcher: this.pipeline.dispatcherFunction,
      fanout: this.pipeline.fanoutFunction,
      sweeper: this.pipeline.sweeperFunction,
      // It queues the retries due this far ahead: a longer silence makes them late.
      sweeperSilence: Duration.seconds(DUE_LOOKAHEAD_SECONDS),
      functions: [
        { label: 'api', fn: this.api.apiFunction },
        { label: 'authorizer', fn: this.api.authorizerFunction },
        { label: 'poll', fn: this.api.pollFunction },
        { label: 'fanout', fn: this.pipeline.fanoutFunction },
        { label: 'dispatcher', fn: this.pipeline.dispatcherFunction },
        { label: 'sweeper', fn: this.pipeline.sweeperFunction },
        { label: 'recovery', fn: this.eventStream.recoveryFunction },
        { label: 'ops', fn: this.opsFunction },
        { label: 'connections', fn: this.connections.connectionsFunction },
      ],
      pipeFailures: this.eventStream.metricFailures(),
      pipeEvents: this.eventStream.metric('EventCount'),
      apiStage: this.api.stage,
      deliveryMetricsNamespace: this.stackName,
      ...(props.alarmEmail === undefined ? {} : { alarmEmail: props.alarmEmail }),
    });
    this.egress?.alarmOnPortAllocation(this.monitoring.topic, this.stackName);

    const output = (id: string, value: string, description: string) =>
      new CfnOutput(this, id, { value, description });
    output('ApiUrl', this.api.url, 'Base URL of the HTTP API');
    output(
      'ConnectUrl',
      this.connections.connectUrl,
      "Where partners' agents open connections (wss://; connection subscriptions): GET /v1/connect-info tells it",
    );
    const queueOutputs = (id: string, queue: sqs.IQueue, description: string) => {
      output(`${id}Url`, queue.queueUrl, description);
      output(`${id}Arn`, queue.queueArn, description);
    };
    queueOutputs('FanoutQueue', fanout.queue, 'Fan-out queue: the destination of a fan-out DLQ redrive');
    queueOutputs(
      'DeliveryQueue',
      delivery.queue,
      'Delivery queue (main lane): the destination of a delivery DLQ redrive',
    );
    queueOutputs(
      'SlowLaneQueue',
      slowLane.queue,
      'Delivery queue of failing endpoints (slow lane): the destination of a slow-lane DLQ redrive',
    );
    queueOutputs(
      'PipeRecoveryQueue',
      pipe.queue,
      "Recovery queue: the destination of a pipe DLQ redrive; the recovery function queues each batch's events for fan-out",
    );
    queueOutputs('FanoutDeadLetterQueue', fanout.deadLetterQueue, 'Fan-out DLQ: redrive to its source queue');
    queueOutputs(
      'DeliveryDeadLetterQueue',
      delivery.deadLetterQueue,
      'Delivery DLQ: redrive to a custom destination, the DeliveryQueueArn',
    );
    queueOutputs(
      'SlowLaneDeadLetterQueue',
      slowLane.deadLetterQueue,
      'Slow-lane DLQ: redrive to its source queue',
    );
    queueOutputs(
      'PipeDeadLetterQueue',
      pipe.deadLetterQueue,
      'Pipe DLQ (stream batches the pipe gave up on): redrive to a custom destination, the PipeRecoveryQueueArn',
    );
    output(
      'RecoveryFunctionName',
      this.eventStream.recoveryFunction.functionName,
      "Consumes the recovery queue; invoked directly, it empties the pipe DLQ itself, queueing its batches' events for fan-out",
    );
    output(
      'SubscriptionsTableName',
      tables.subscriptions.table.tableName,
      'Subscriptions table (ops read it)',
    );
    output('DeliveriesTableName', tables.deliveries.table.tableName, 'Deliveries table (ops read it)');
    output(
      'OpsFunctionName',
      this.opsFunction.functionName,
      'Serves the ops routes of the API (/v1/admin/…)',
    );
    output('AlarmTopicArn', this.monitoring.topic.topicArn, 'SNS topic of every alarm');
    output('DashboardName', this.monitoring.dashboard.dashboardName, 'CloudWatch dashboard');
    output('DashboardUrl', this.monitoring.dashboardUrl, 'CloudWatch dashboard in the console');
    if (this.egress !== undefined) {
      output(
        'EgressIps',
        this.egress.egressIps,
        "The fixed addresses callbacks leave from (the NAT gateways' Elastic IPs), comma-separated: partners " +
          'allowlist them; GET /v1/egress-ips lists them',
      );
    }
  }
}
