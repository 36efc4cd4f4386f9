/** The alarms and the dashboard of the service stack: what each watches, and that it exists. */
import { Match } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { STACK_OUTPUTS } from '../../bin/cli/aws.ts';
import { DELIVERY_METRICS } from '../../functions/adapters/delivery-metrics.ts';
import { SQS } from '../../functions/aws-quotas.ts';
import { DUE_LOOKAHEAD_SECONDS } from '../../lib/constructs/delivery-pipeline.ts';
import {
  API_5XX_PERCENT,
  DEFAULT_SLOW_LANE_BACKLOG_AGE,
  IN_FLIGHT_ALARM_THRESHOLD,
} from '../../lib/constructs/monitoring.ts';
import { getAtt, logicalIdOf, ref, resourcesOfType, type Synthesized, synthesize } from './fixture.ts';

let synth: Synthesized;
beforeAll(() => {
  synth = synthesize();
});

const monitoring = () => synth.stacks.service.monitoring;
const topic = () => ref(monitoring().topic);

/** Every alarm's properties, by the suffix of its name after the stack's name. */
function alarms(): Map<string, Record<string, unknown>> {
  const prefix = `${synth.stacks.service.stackName}-`;
  return new Map(
    resourcesOfType(synth.service, 'AWS::CloudWatch::Alarm').map(([, properties]) => {
      const name = String(properties.AlarmName);
      expect(name.startsWith(prefix), name).toBe(true);
      return [name.slice(prefix.length), properties];
    }),
  );
}

function alarm(suffix: string): Record<string, unknown> {
  const found = alarms().get(suffix);
  if (found === undefined) throw new Error(`no alarm ${suffix}`);
  return found;
}

interface MetricRef {
  readonly namespace: string;
  readonly metricName: string;
  readonly dimensions: Readonly<Record<string, unknown>>;
}

interface AlarmMetric {
  MetricStat?: {
    Metric: { Namespace: string; MetricName: string; Dimensions?: { Name: string; Value: unknown }[] };
  };
}

function dimensionsOf(
  list: readonly { Name: string; Value: unknown }[] | undefined,
): Record<string, unknown> {
  return Object.fromEntries((list ?? []).map(({ Name, Value }) => [Name, Value]));
}

/** The metrics an alarm reads: its own, or those of its math expression. */
function metricsOfAlarm(properties: Record<string, unknown>): MetricRef[] {
  if (properties.MetricName !== undefined) {
    return [
      {
        namespace: String(properties.Namespace),
        metricName: String(properties.MetricName),
        dimensions: dimensionsOf(properties.Dimensions as { Name: string; Value: unknown }[] | undefined),
      },
    ];
  }
  return ((properties.Metrics ?? []) as AlarmMetric[]).flatMap(({ MetricStat }) =>
    MetricStat === undefined
      ? []
      : [
          {
            namespace: MetricStat.Metric.Namespace,
            metricName: MetricStat.Metric.MetricName,
            dimensions: dimensionsOf(MetricStat.Metric.Dimensions),
          },
        ],
  );
}

/** The dashboard body as JSON, with each CloudFormation token in it put back as its object. */
function dashboardBody(): { widgets: { type: string; properties: Record<string, unknown> }[] } {
  const [[, dashboard] = ['', {}], ...others] = resourcesOfType(synth.service, 'AWS::CloudWatch::Dashboard');
  expect(others).toHaveLength(0);
  const parts = (dashboard.DashboardBody as { 'Fn::Join': ['', unknown[]] })['Fn::Join'][1];
  const tokens: unknown[] = [];
  const text = parts
    .map((part) => {
      if (typeof part === 'string') return part;
      tokens.push(part);
      return `@@${tokens.length - 1}@@`;
    })
    .join('');
  return JSON.parse(text, (_, value: unknown) => {
    const match = typeof value === 'string' ? /^@@(\d+)@@$/.exec(value) : null;
    return match === null ? value : tokens[Number(match[1])];
  });
}

function isToken(value: object): boolean {
  return Object.keys(value).some((key) => key === 'Ref' || key.startsWith('Fn::'));
}

/** The metrics a dashboard graph shows: `[namespace, name, key, value, …, options?]` rows. */
function metricsOfDashboard(): MetricRef[] {
  return dashboardBody().widgets.flatMap(({ properties }) =>
    ((properties.metrics ?? []) as unknown[][]).flatMap((row) => {
      const [namespace, metricName, ...rest] = row;
      if (typeof namespace !== 'string' || typeof metricName !== 'string') return [];
      // The last item may be the row's options; a dimension value is a string or a token.
      const pairs = rest.filter((item) => typeof item !== 'object' || item === null || isToken(item));
      const dimensions: Record<string, unknown> = {};
      for (let i = 0; i + 1 < pairs.length; i += 2) dimensions[String(pairs[i])] = pairs[i + 1];
      return [{ namespace, metricName, dimensions }];
    }),
  );
}

/**
 * Each metric the alarms and the dashboard may read, with its dimensions, as AWS documents it:
 * SQS developer guide, "Available CloudWatch metrics for Amazon SQS"; Lambda developer guide,
 * "Types of metrics for Lambda functions"; API Gateway developer guide, "Monitor CloudWatch
 * metrics for HTTP APIs"; EventBridge user guide, "Logging and monitoring Amazon EventBridge
 * Pipes".
 */
const KNOWN_METRICS: Readonly<Record<string, readonly string[]>> = {
  'AWS/SQS ApproximateNumberOfMessagesVisible': ['QueueName'],
  'AWS/SQS ApproximateNumberOfMessagesNotVisible': ['QueueName'],
  'AWS/SQS ApproximateAgeOfOldestMessage': ['QueueName'],
  'AWS/Lambda Errors': ['FunctionName'],
  'AWS/Lambda Throttles': ['FunctionName'],
  'AWS/Lambda Invocations': ['FunctionName'],
  'AWS/Lambda Duration': ['FunctionName'],
  'AWS/ApiGateway Count': ['ApiId', 'Stage'],
  'AWS/ApiGateway 4xx': ['ApiId', 'Stage'],
  'AWS/ApiGateway 5xx': ['ApiId', 'Stage'],
  'AWS/ApiGateway Latency': ['ApiId', 'Stage'],
  'AWS/EventBridge/Pipes EventCount': ['PipeName'],
  'AWS/EventBridge/Pipes ExecutionFailed': ['PipeName'],
  'AWS/EventBridge/Pipes ExecutionPartiallyFailed': ['PipeName'],
  'AWS/EventBridge/Pipes ExecutionTimeout': ['PipeName'],
};

/** Whether a dimension value names a resource of this template that has that name. */
function namesAResource(dimension: string, value: unknown): boolean {
  const ids = (type: string) => resourcesOfType(synth.service, type).map(([id]) => id);
  const isRef = (type: string) =>
    typeof value === 'object' && value !== null && 'Ref' in value && ids(type).includes(String(value.Ref));
  switch (dimension) {
    case 'QueueName':
      return ids('AWS::SQS::Queue').some(
        (id) => JSON.stringify(value) === JSON.stringify(getAttOf(id, 'QueueName')),
      );
    case 'FunctionName':
      return isRef('AWS::Lambda::Function');
    case 'ApiId':
      return isRef('AWS::ApiGatewayV2::Api');
    case 'Stage':
      return resourcesOfType(synth.service, 'AWS::ApiGatewayV2::Stage').some(
        ([, stage]) => stage.StageName === value,
      );
    case 'PipeName':
      return isRef('AWS::Pipes::Pipe');
    default:
      return false;
  }
}

function getAttOf(id: string, attribute: string) {
  return { 'Fn::GetAtt': [id, attribute] };
}

/** The namespace the dispatcher function writes its delivery metrics to (its environment). */
function dispatcherMetricsNamespace(): unknown {
  const dispatcher = resourcesOfType(synth.service, 'AWS::Lambda::Function').find(
    ([, properties]) =>
      (properties.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables
        ?.POWERTOOLS_SERVICE_NAME === 'dispatcher',
  );
  if (dispatcher === undefined) throw new Error('no dispatcher function in the service stack');
  const variables = (dispatcher[1].Environment as { Variables: Record<string, unknown> }).Variables;
  return variables.POWERTOOLS_METRICS_NAMESPACE;
}

describe('the delivery metrics', () => {
  it('are written by the dispatcher under the stack’s name, and graphed from there on the dashboard', () => {
    expect(dispatcherMetricsNamespace()).toBe(synth.stacks.service.stackName);
    const graphed = metricsOfDashboard().filter(
      (metric) => metric.namespace === dispatcherMetricsNamespace(),
    );
    expect(new Set(graphed.map((metric) => metric.metricName))).toEqual(
      new Set(Object.values(DELIVERY_METRICS)),
    );
  });
});

describe('alarms', () => {
  it('notify the alarm topic of alarm and OK, each saying what it means and what to do', () => {
    expect(alarms().size).toBe(monitoring().alarms.length);
    for (const [name, properties] of alarms()) {
      expect(properties.AlarmActions, name).toEqual([topic()]);
      expect(properties.OKActions, name).toEqual([topic()]);
      expect(String(properties.AlarmDescription).length, name).toBeGreaterThan(120);
    }
  });

  it('read only metrics AWS publishes, with their documented dimensions, each naming a resource here, and the dispatcher’s own', () => {
    const read = [...alarms().values()].flatMap(metricsOfAlarm).concat(metricsOfDashboard());
    expect(read.length).toBeGreaterThan(0);
    for (const { namespace, metricName, dimensions } of read) {
      if (namespace === dispatcherMetricsNamespace()) {
        expect(Object.values(DELIVERY_METRICS)).toContain(metricName);
        expect(dimensions).toEqual({ service: 'dispatcher' });
        continue;
      }
      const key = `${namespace} ${metricName}`;
      expect(KNOWN_METRICS[key], key).toBeDefined();
      expect(Object.keys(dimensions).sort(), key).toEqual([...(KNOWN_METRICS[key] ?? [])].sort());
      for (const [dimension, value] of Object.entries(dimensions)) {
        expect(namesAResource(dimension, value), `${key} ${dimension} ${JSON.stringify(value)}`).toBe(true);
      }
    }
  });

  it('alarm on the first message in every dead-letter queue', () => {
    const dlqIds = resourcesOfType(synth.service, 'AWS::SQS::Queue')
      .filter(([, properties]) => properties.RedriveAllowPolicy !== undefined)
      .map(([id]) => id);
    expect(dlqIds).toHaveLength(4);
    for (const id of dlqIds) {
      synth.service.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: 'AWS/SQS',
        MetricName: 'ApproximateNumberOfMessagesVisible',
        Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [id, 'QueueName'] } }],
        ComparisonOperator: 'GreaterThanThreshold',
        Threshold: 0,
        AlarmActions: [topic()],
      });
    }
  });

  it('tell ops in each dead-letter alarm how its messages are recovered', () => {
    const of = (label: string) => String(alarm(`${label}-dead-letters`).AlarmDescription);
    for (const label of ['pipe', 'fanout', 'delivery', 'slow-lane']) {
      expect(of(label)).toContain(`the ${label} dead-letter queue`);
    }
    expect(of('delivery')).toMatch(/custom destination.*DeliveryQueueArn/);
    expect(of('pipe')).toMatch(/Start DLQ redrive.*custom destination.*PipeRecoveryQueueArn/);
    expect(of('pipe')).toMatch(/dispatcher dlq redrive pipe-dlq --aws/);
    expect(of('pipe')).not.toMatch(/bus/);
    for (const [label, queue] of [
      ['fanout', 'fanout-dlq'],
      ['delivery', 'delivery-dlq'],
      ['slow-lane', 'slow-dlq'],
    ] as const) {
      expect(of(label)).toContain(`dispatcher dlq redrive ${queue} --aws`);
    }
  });

  it('alarm when the recovery queue has a tenth of the in-flight quota in flight', () => {
    expect(alarm('pipe-recovery-in-flight')).toMatchObject({
      MetricName: 'ApproximateNumberOfMessagesNotVisible',
      Dimensions: [
        { Name: 'QueueName', Value: getAtt(synth.stacks.service.eventStream.recoveryQueue, 'QueueName') },
      ],
      Threshold: IN_FLIGHT_ALARM_THRESHOLD,
    });
  });

  it('alarm on pipe failures', () => {
    expect(metricsOfAlarm(alarm('pipe-failures')).map((metric) => metric.metricName)).toEqual([
      'ExecutionFailed',
      'ExecutionPartiallyFailed',
      'ExecutionTimeout',
    ]);
  });

  it.each([
    ['fanout', 'fanout'],
    ['delivery', 'delivery'],
    ['slow-lane', 'slowLane'],
  ] as const)('alarm when the %s queue has a tenth of the in-flight quota in flight', (label, lane) => {
    expect(IN_FLIGHT_ALARM_THRESHOLD).toBe(SQS.standardInFlight / 10);
    expect(alarm(`${label}-in-flight`)).toMatchObject({
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesNotVisible',
      Dimensions: [
        {
          Name: 'QueueName',
          Value: getAtt(synth.stacks.service.pipeline[lane].queue, 'QueueName'),
        },
      ],
      Statistic: 'Maximum',
      Threshold: IN_FLIGHT_ALARM_THRESHOLD,
      ComparisonOperator: 'GreaterThanThreshold',
    });
  });

  it.each([
    ['delivery-backlog', 'delivery', () => synth.stacks.service.pipeline.backlogAge.toSeconds(), 2],
    ['slow-lane-backlog', 'slowLane', () => DEFAULT_SLOW_LANE_BACKLOG_AGE.toSeconds(), 3],
  ] as const)(
    'alarm %s when messages wait unclaimed and the oldest is older than a healthy lane explains',
    (name, lane, threshold, periods) => {
      const queueName = getAtt(synth.stacks.service.pipeline[lane].queue, 'QueueName');
      const metric = (metricName: string, stat: string) =>
        Match.objectLike({
          MetricStat: Match.objectLike({
            Metric: {
              Namespace: 'AWS/SQS',
              MetricName: metricName,
              Dimensions: [{ Name: 'QueueName', Value: queueName }],
            },
            Stat: stat,
          }),
        });
      synth.service.hasResourceProperties('AWS::CloudWatch::Alarm', {
        AlarmName: `${synth.stacks.service.stackName}-${name}`,
        Metrics: Match.arrayWith([
          Match.objectLike({ Expression: 'IF(waiting > 0, age, 0)' }),
          metric('ApproximateAgeOfOldestMessage', 'Maximum'),
          metric('ApproximateNumberOfMessagesVisible', 'Minimum'),
        ]),
        Threshold: threshold(),
        EvaluationPeriods: periods,
      });
    },
  );

  it('alarm on any whole-batch error of the dispatcher and fan-out', () => {
    const { pipeline } = synth.stacks.service;
    for (const [name, fn] of [
      ['dispatcher-errors', pipeline.dispatcherFunction],
      ['fanout-errors', pipeline.fanoutFunction],
    ] as const) {
      expect(alarm(name)).toMatchObject({
        Namespace: 'AWS/Lambda',
        MetricName: 'Errors',
        Dimensions: [{ Name: 'FunctionName', Value: ref(fn) }],
        Threshold: 0,
        ComparisonOperator: 'GreaterThanThreshold',
      });
    }
  });

  it('alarm when most sweeps in 5 minutes fail, and when the sweeper has not run for its lookahead', () => {
    const sweeper = ref(synth.stacks.service.pipeline.sweeperFunction);
    expect(alarm('sweeper-errors')).toMatchObject({
      MetricName: 'Errors',
      Dimensions: [{ Name: 'FunctionName', Value: sweeper }],
      Period: 300,
      Threshold: 3,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    });
    expect(alarm('sweeper-stopped')).toMatchObject({
      Namespace: 'AWS/Lambda',
      MetricName: 'Invocations',
      Dimensions: [{ Name: 'FunctionName', Value: sweeper }],
      Statistic: 'Sum',
      Period: 60,
      EvaluationPeriods: DUE_LOOKAHEAD_SECONDS / 60,
      Threshold: 1,
      ComparisonOperator: 'LessThanThreshold',
      // No invocation publishes no data point: silence is the breach.
      TreatMissingData: 'breaching',
    });
  });

  it('alarm on throttles of every function', () => {
    const functions = resourcesOfType(synth.service, 'AWS::Lambda::Function').map(([id]) => ({ Ref: id }));
    const throttled = [...alarms().entries()]
      .filter(([name]) => name.endsWith('-throttles'))
      .map(([, properties]) => {
        expect(properties).toMatchObject({ MetricName: 'Throttles', Threshold: 0, Statistic: 'Sum' });
        return (properties.Dimensions as { Value: unknown }[])[0]?.Value;
      });
    expect(throttled).toHaveLength(functions.length);
    expect(throttled).toEqual(expect.arrayContaining(functions));
  });

  it('alarm when over 1% of API requests are answered 5xx for two periods', () => {
    const { api } = synth.stacks.service;
    const properties = alarm('api-5xx');
    const dimensions = { ApiId: ref(api.api), Stage: '$default' };
    expect(metricsOfAlarm(properties)).toEqual([
      { namespace: 'AWS/ApiGateway', metricName: '5xx', dimensions },
      { namespace: 'AWS/ApiGateway', metricName: 'Count', dimensions },
    ]);
    expect(properties).toMatchObject({ Threshold: API_5XX_PERCENT, EvaluationPeriods: 2 });
    expect(properties.Metrics).toEqual(
      expect.arrayContaining([expect.objectContaining({ Expression: '100 * FILL(errors, 0) / requests' })]),
    );
  });
});

describe('dashboard', () => {
  it('graphs the depth of every dead-letter queue and of the recovery queue', () => {
    const { pipeline, eventStream } = synth.stacks.service;
    const depths = metricsOfDashboard()
      .filter((m) => m.namespace === 'AWS/SQS' && m.metricName === 'ApproximateNumberOfMessagesVisible')
      .map((m) => JSON.stringify(m.dimensions.QueueName));
    for (const queue of [
      pipeline.fanout.deadLetterQueue,
      pipeline.delivery.deadLetterQueue,
      pipeline.slowLane.deadLetterQueue,
      eventStream.deadLetterQueue,
      eventStream.recoveryQueue,
    ]) {
      expect(depths).toContain(JSON.stringify(getAtt(queue, 'QueueName')));
    }
  });

  it('shows the status of every alarm', () => {
    const widget = dashboardBody().widgets.find((w) => w.properties.title === 'Alarms');
    expect(widget?.properties.alarms).toEqual(
      monitoring().alarms.map((a) => ({ 'Fn::GetAtt': [logicalIdOf(a), 'Arn'] })),
    );
  });

  it('marks the alarm thresholds on the in-flight and age graphs', () => {
    const annotations = dashboardBody()
      .widgets.flatMap(
        (w) =>
          (w.properties.annotations as { horizontal?: { value: number }[] } | undefined)?.horizontal ?? [],
      )
      .map((a) => a.value);
    expect(annotations).toEqual(
      expect.arrayContaining([
        IN_FLIGHT_ALARM_THRESHOLD,
        synth.stacks.service.pipeline.backlogAge.toSeconds(),
        DEFAULT_SLOW_LANE_BACKLOG_AGE.toSeconds(),
      ]),
    );
  });
});

describe('alarm topic and outputs', () => {
  it('notifies a TLS-only topic with no subscriber unless an alarm e-mail is set', () => {
    synth.service.resourceCountIs('AWS::SNS::Subscription', 0);
    synth.service.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
  });

  it('publishes a dashboard and the URLs ops need', () => {
    synth.service.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    for (const output of [
      'ApiUrl',
      'DashboardName',
      'DashboardUrl',
      'AlarmTopicArn',
      'RecoveryFunctionName',
      'OpsFunctionName',
      // Everything `dispatcher … --aws --stack` reads, the redrive destinations' ARNs among them.
      ...STACK_OUTPUTS,
    ]) {
      synth.service.hasOutput(output, { Value: Match.anyValue() });
    }
  });
});
