import { Match } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { PIPE_FILTER_PATTERN, PIPE_INPUT_TEMPLATE } from '../../functions/adapters/aws/pipe.ts';
import { ROUTES } from '../../functions/api/routes.ts';
import { PIPES } from '../../functions/aws-quotas.ts';
import { LAMBDA_ENV } from '../../functions/config.ts';
import { DELIVERY_MAX_RECEIVES } from '../../functions/core/delivery.ts';
import { DUE_SWEEP_INTERVAL_SECONDS } from '../../functions/core/due-retries.ts';
import { DEFAULT_RETRY_SCHEDULE } from '../../functions/core/retry.ts';
import {
  DEFAULT_FANOUT_MAX_CONCURRENCY,
  DEFAULT_SLOW_LANE_MAX_CONCURRENCY,
} from '../../lib/constructs/delivery-pipeline.ts';
import { RECOVERY_MAX_RECEIVES } from '../../lib/constructs/event-stream.ts';
import { DEFAULT_SETTINGS } from '../../lib/settings.ts';
import {
  getAtt,
  logicalIdOf,
  propertiesOf,
  ref,
  resourcesOfType,
  type Synthesized,
  synthesize,
} from './fixture.ts';

let synth: Synthesized;
beforeAll(() => {
  synth = synthesize();
});

const FOURTEEN_DAYS = 14 * 24 * 3600;

/** How the service stack reads a value the data stack publishes (a weak cross-stack reference). */
function fromDataStack(attribute: unknown) {
  const outputs = synth.data.findOutputs('*', { Value: attribute });
  const [name, ...others] = Object.keys(outputs);
  if (name === undefined || others.length > 0) {
    throw new Error(`expected one data stack output of ${JSON.stringify(attribute)}`);
  }
  return {
    'Fn::GetStackOutput': Match.objectLike({ StackName: synth.stacks.data.stackName, OutputName: name }),
  };
}

function eventsTable() {
  return synth.stacks.data.tables.events.table;
}

describe('EventStream', () => {
  const pipe = () => synth.stacks.service.eventStream;

  it('reads the events table stream', () => {
    synth.service.hasResourceProperties('AWS::Pipes::Pipe', {
      Source: fromDataStack(getAtt(eventsTable(), 'StreamArn')),
    });
  });

  it('passes only what PIPE_FILTER_PATTERN lets through (inserted event items)', () => {
    const [[, properties] = ['', {}], ...others] = resourcesOfType(synth.service, 'AWS::Pipes::Pipe');
    expect(others).toHaveLength(0);
    const filters = (properties.SourceParameters as { FilterCriteria: { Filters: { Pattern: string }[] } })
      .FilterCriteria.Filters;
    expect(filters.map((filter) => JSON.parse(filter.Pattern))).toEqual([PIPE_FILTER_PATTERN]);
  });

  it('retries a bounded number of times, bisects failing batches and then dead-letters them', () => {
    synth.service.hasResourceProperties('AWS::Pipes::Pipe', {
      SourceParameters: {
        DynamoDBStreamParameters: {
          StartingPosition: 'TRIM_HORIZON',
          MaximumRetryAttempts: 10,
          OnPartialBatchItemFailure: 'AUTOMATIC_BISECT',
          DeadLetterConfig: { Arn: getAtt(pipe().deadLetterQueue, 'Arn') },
        },
      },
    });
  });

  it('sends each event to the fan-out queue shaped by the template of pipe.ts, ten to a batch', () => {
    synth.service.hasResourceProperties('AWS::Pipes::Pipe', {
      Target: getAtt(synth.stacks.service.pipeline.fanout.queue, 'Arn'),
      TargetParameters: { InputTemplate: PIPE_INPUT_TEMPLATE },
      SourceParameters: { DynamoDBStreamParameters: { BatchSize: PIPES.sqsTargetMaxBatch } },
    });
  });

  it('runs as a role only EventBridge Pipes of this account can assume, with least privilege', () => {
    synth.service.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [
          Match.objectLike({
            Principal: { Service: 'pipes.amazonaws.com' },
            Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } },
          }),
        ],
      },
    });
    const roleRef = ref(pipe().role);
    synth.service.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [roleRef],
      PolicyDocument: {
        Statement: Match.arrayEquals([
          Match.objectLike({
            Action: ['dynamodb:DescribeStream', 'dynamodb:GetRecords', 'dynamodb:GetShardIterator'],
            Resource: fromDataStack(getAtt(eventsTable(), 'StreamArn')),
          }),
          // The one action IAM cannot scope to a resource; alone in its statement.
          Match.objectLike({ Action: 'dynamodb:ListStreams', Resource: '*' }),
          Match.objectLike({
            Action: 'sqs:SendMessage',
            Resource: [
              getAtt(synth.stacks.service.pipeline.fanout.queue, 'Arn'),
              getAtt(pipe().deadLetterQueue, 'Arn'),
            ],
          }),
          Match.objectLike({
            Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
            Resource: getAtt(pipe().logGroup, 'Arn'),
          }),
        ]),
      },
    });
  });

  it('has no bus, archive or rule in between: the only rule is the sweeper’s schedule', () => {
    synth.service.resourceCountIs('AWS::Events::EventBus', 0);
    synth.service.resourceCountIs('AWS::Events::Archive', 0);
    synth.service.resourceCountIs('AWS::Events::Rule', 1);
    synth.service.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: Match.anyValue() });
  });
});

describe('queues', () => {
  it('encrypts every queue (SQS-managed keys) and sets its maximum message size explicitly', () => {
    synth.service.allResourcesProperties('AWS::SQS::Queue', {
      SqsManagedSseEnabled: true,
      MaximumMessageSize: 262_144,
    });
  });

  it('refuses plain-HTTP access to every queue', () => {
    const queues = resourcesOfType(synth.service, 'AWS::SQS::Queue').map(([id]) => id);
    const policies = resourcesOfType(synth.service, 'AWS::SQS::QueuePolicy');
    for (const id of queues) {
      const policy = policies.find(
        ([, properties]) => JSON.stringify(properties.Queues) === JSON.stringify([{ Ref: id }]),
      );
      expect(policy, id).toBeDefined();
      expect(policy?.[1].PolicyDocument).toMatchObject({
        Statement: expect.arrayContaining([
          expect.objectContaining({
            Effect: 'Deny',
            Action: 'sqs:*',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      });
    }
  });

  it.each([
    ['delivery', '-delivery$'],
    ['slowLane', '-delivery-slow$'],
  ] as const)(
    'dead-letters a %s message only after it fails 10 receives (a poison message), not by its tries',
    (name, queueName) => {
      const lane = synth.stacks.service.pipeline[name];
      synth.service.hasResourceProperties('AWS::SQS::Queue', {
        QueueName: Match.stringLikeRegexp(queueName),
        RedrivePolicy: {
          deadLetterTargetArn: getAtt(lane.deadLetterQueue, 'Arn'),
          maxReceiveCount: DELIVERY_MAX_RECEIVES,
        },
      });
    },
  );

  it('dead-letters fan-out messages after five receives', () => {
    const { fanout } = synth.stacks.service.pipeline;
    synth.service.hasResourceProperties('AWS::SQS::Queue', {
      QueueName: Match.stringLikeRegexp('-fanout$'),
      RedrivePolicy: { deadLetterTargetArn: getAtt(fanout.deadLetterQueue, 'Arn'), maxReceiveCount: 5 },
    });
  });

  it.each([
    ['fanout', 'fanout'],
    ['delivery', 'delivery'],
    ['slowLane', 'delivery-slow'],
  ] as const)(
    'lets the %s DLQ be redriven to its queue only, and keeps dead letters longer than the queue keeps messages',
    (name, suffix) => {
      const { queue, deadLetterQueue } = synth.stacks.service.pipeline[name];
      const queueName = `${synth.stacks.service.stackName}-${suffix}`;
      const source = propertiesOf(synth.service, queue);
      const dlq = propertiesOf(synth.service, deadLetterQueue);
      expect(source.QueueName).toBe(queueName);
      expect(dlq.RedriveAllowPolicy).toEqual({
        redrivePermission: 'byQueue',
        sourceQueueArns: [
          {
            'Fn::Join': [
              '',
              [
                'arn:',
                { Ref: 'AWS::Partition' },
                ':sqs:',
                { Ref: 'AWS::Region' },
                ':',
                { Ref: 'AWS::AccountId' },
                `:${queueName}`,
              ],
            ],
          },
        ],
      });
      expect(dlq.MessageRetentionPeriod).toBe(FOURTEEN_DAYS);
      expect(Number(source.MessageRetentionPeriod)).toBeLessThan(FOURTEEN_DAYS);
    },
  );

  it('makes the pipe DLQ the dead-letter queue of the recovery queue alone, so SQS redrives it there', () => {
    const { deadLetterQueue, recoveryQueue } = synth.stacks.service.eventStream;
    const queueName = `${synth.stacks.service.stackName}-pipe-recovery`;
    const dlq = propertiesOf(synth.service, deadLetterQueue);
    const recovery = propertiesOf(synth.service, recoveryQueue);
    expect(recovery.QueueName).toBe(queueName);
    expect(recovery.RedrivePolicy).toEqual({
      deadLetterTargetArn: getAtt(deadLetterQueue, 'Arn'),
      maxReceiveCount: RECOVERY_MAX_RECEIVES,
    });
    expect(dlq.RedriveAllowPolicy).toEqual({
      redrivePermission: 'byQueue',
      sourceQueueArns: [
        {
          'Fn::Join': [
            '',
            [
              'arn:',
              { Ref: 'AWS::Partition' },
              ':sqs:',
              { Ref: 'AWS::Region' },
              ':',
              { Ref: 'AWS::AccountId' },
              `:${queueName}`,
            ],
          ],
        },
      ],
    });
    expect(dlq.MessageRetentionPeriod).toBe(FOURTEEN_DAYS);
    expect(Number(recovery.MessageRetentionPeriod)).toBeLessThan(FOURTEEN_DAYS);
  });
});

describe('SQS event sources', () => {
  it.each([
    [
      'fan-out',
      () => synth.stacks.service.pipeline.fanoutFunction,
      () => synth.stacks.service.pipeline.fanout,
      DEFAULT_FANOUT_MAX_CONCURRENCY,
    ],
    [
      'dispatcher (main lane)',
      () => synth.stacks.service.pipeline.dispatcherFunction,
      () => synth.stacks.service.pipeline.delivery,
      DEFAULT_SETTINGS.dispatcherMaxConcurrency,
    ],
    [
      'dispatcher (slow lane)',
      () => synth.stacks.service.pipeline.dispatcherFunction,
      () => synth.stacks.service.pipeline.slowLane,
      DEFAULT_SLOW_LANE_MAX_CONCURRENCY,
    ],
  ] as const)(
    '%s: batches of 10, partial batch failures, capped concurrency',
    (_, fn, queue, concurrency) => {
      synth.service.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
        EventSourceArn: getAtt(queue().queue, 'Arn'),
        FunctionName: ref(fn()),
        BatchSize: 10,
        FunctionResponseTypes: ['ReportBatchItemFailures'],
        ScalingConfig: { MaximumConcurrency: concurrency },
      });
    },
  );

  it('gives the recovery function the recovery queue, a letter at a time, two at once, reporting failures', () => {
    const { recoveryFunction, recoveryQueue } = synth.stacks.service.eventStream;
    synth.service.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: getAtt(recoveryQueue, 'Arn'),
      FunctionName: ref(recoveryFunction),
      BatchSize: 1,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ScalingConfig: { MaximumConcurrency: 2 },
    });
  });

  it('gives every consumed queue a visibility timeout of at least six function timeouts', () => {
    const mappings = resourcesOfType(synth.service, 'AWS::Lambda::EventSourceMapping');
    expect(mappings).toHaveLength(4);
    const functions = new Map(resourcesOfType(synth.service, 'AWS::Lambda::Function'));
    const queues = new Map(resourcesOfType(synth.service, 'AWS::SQS::Queue'));
    for (const [id, mapping] of mappings) {
      const functionId = (mapping.FunctionName as { Ref: string }).Ref;
      const queueId = (mapping.EventSourceArn as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
      const timeout = Number(functions.get(functionId)?.Timeout);
      const visibility = Number(queues.get(queueId)?.VisibilityTimeout);
      expect(timeout, id).toBeGreaterThan(0);
      expect(visibility, id).toBeGreaterThanOrEqual(6 * timeout);
    }
  });
});

describe('functions', () => {
  it('runs every function on nodejs24.x, arm64, with source maps and JSON logs', () => {
    synth.service.resourceCountIs('AWS::Lambda::Function', 9);
    synth.service.allResourcesProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      Environment: {
        Variables: Match.objectLike({
          NODE_OPTIONS: '--enable-source-maps',
          POWERTOOLS_SERVICE_NAME: Match.anyValue(),
          POWERTOOLS_LOG_LEVEL: 'INFO',
        }),
      },
      LoggingConfig: Match.objectLike({ LogFormat: 'JSON', LogGroup: Match.anyValue() }),
    });
  });

  it('gives each function a role of its own with no managed policy', () => {
    const roles = synth.service.findResources('AWS::IAM::Role');
    const managed = Object.entries(roles).filter(
      ([, role]) => role.Properties?.ManagedPolicyArns !== undefined,
    );
    // Only API Gateway's logging role (AWS::ApiGateway::Account), which no function assumes.
    expect(managed.map(([id]) => id)).toEqual([
      logicalIdOf(synth.stacks.service.connections.node.findChild('ApiGatewayCloudWatchRole')),
    ]);
    const [[, role] = ['', {}]] = managed;
    expect(JSON.stringify(role.Properties?.AssumeRolePolicyDocument)).toContain('apigateway.amazonaws.com');
    expect(JSON.stringify(role.Properties?.ManagedPolicyArns)).toContain(
      'AmazonAPIGatewayPushToCloudWatchLogs',
    );
  });

  it('keeps function logs for a month', () => {
    synth.service.allResourcesProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
  });

  it.each([
    [
      'api',
      () => synth.stacks.service.api.apiFunction,
      [
        LAMBDA_ENV.eventsTable,
        LAMBDA_ENV.partnersTable,
        LAMBDA_ENV.subscriptionsTable,
        LAMBDA_ENV.deliveriesTable,
        LAMBDA_ENV.deliveryQueueUrl,
        LAMBDA_ENV.slowLaneQueueUrl,
        LAMBDA_ENV.allowPrivateTargets,
        LAMBDA_ENV.retentionDays,
        LAMBDA_ENV.partnerRequestsPerSecond,
        LAMBDA_ENV.producerRequestsPerSecond,
        LAMBDA_ENV.secretsKeyArn,
        // GET /v1/connect-info, and closing a revoked key's connections.
        LAMBDA_ENV.connectionsTable,
        LAMBDA_ENV.connectionsEndpoint,
        LAMBDA_ENV.connectUrl,
        LAMBDA_ENV.deliveryTimeoutMs,
      ],
    ],
    ['authorizer', () => synth.stacks.service.api.authorizerFunction, [LAMBDA_ENV.partnersTable]],
    [
      'fanout',
      () => synth.stacks.service.pipeline.fanoutFunction,
      [
        LAMBDA_ENV.eventsTable,
        LAMBDA_ENV.subscriptionsTable,
        LAMBDA_ENV.deliveriesTable,
        LAMBDA_ENV.deliveryQueueUrl,
        LAMBDA_ENV.slowLaneQueueUrl,
        LAMBDA_ENV.retentionDays,
        LAMBDA_ENV.secretsKeyArn,
        // Its own queue, where a keyed event parked at its key's gate is queued again.
        LAMBDA_ENV.fanoutQueueUrl,
      ],
    ],
    [
      'dispatcher',
      () => synth.stacks.service.pipeline.dispatcherFunction,
      [
        LAMBDA_ENV.eventsTable,
        LAMBDA_ENV.subscriptionsTable,
        LAMBDA_ENV.deliveriesTable,
        LAMBDA_ENV.deliveryQueueUrl,
        LAMBDA_ENV.slowLaneQueueUrl,
        LAMBDA_ENV.deliveryDeadLetterQueueUrl,
        LAMBDA_ENV.retrySchedule,
        LAMBDA_ENV.deliveryTimeoutMs,
        LAMBDA_ENV.retentionDays,
        LAMBDA_ENV.allowPrivateTargets,
        LAMBDA_ENV.secretsKeyArn,
        // Tries of connection subscriptions, pushed down WebSocket connections.
        LAMBDA_ENV.connectionsTable,
        LAMBDA_ENV.connectionsEndpoint,
      ],
    ],
    [
      'sweeper',
      () => synth.stacks.service.pipeline.sweeperFunction,
      [LAMBDA_ENV.deliveriesTable, LAMBDA_ENV.deliveryQueueUrl, LAMBDA_ENV.slowLaneQueueUrl],
    ],
    [
      'recovery',
      () => synth.stacks.service.eventStream.recoveryFunction,
      [LAMBDA_ENV.eventsTable, LAMBDA_ENV.fanoutQueueUrl, LAMBDA_ENV.pipeDeadLetterQueueUrl],
    ],
    [
      'ops',
      () => synth.stacks.service.opsFunction,
      [
        LAMBDA_ENV.fanoutQueueUrl,
        LAMBDA_ENV.fanoutDeadLetterQueueUrl,
        LAMBDA_ENV.deliveryQueueUrl,
        LAMBDA_ENV.deliveryDeadLetterQueueUrl,
        LAMBDA_ENV.slowLaneQueueUrl,
        LAMBDA_ENV.slowLaneDeadLetterQueueUrl,
        LAMBDA_ENV.pipeRecoveryQueueUrl,
        LAMBDA_ENV.pipeDeadLetterQueueUrl,
        LAMBDA_ENV.partnersTable,
        LAMBDA_ENV.subscriptionsTable,
        LAMBDA_ENV.deliveriesTable,
        LAMBDA_ENV.deliveryMetricsNamespace,
        LAMBDA_ENV.partnerRequestsPerSecond,
        LAMBDA_ENV.producerRequestsPerSecond,
      ],
    ],
    [
      'connections',
      () => synth.stacks.service.connections.connectionsFunction,
      [
        LAMBDA_ENV.connectionsTable,
        LAMBDA_ENV.connectionsEndpoint,
        LAMBDA_ENV.partnersTable,
        LAMBDA_ENV.subscriptionsTable,
        LAMBDA_ENV.deliveriesTable,
        LAMBDA_ENV.deliveryQueueUrl,
        LAMBDA_ENV.deliveryTimeoutMs,
        LAMBDA_ENV.retentionDays,
      ],
    ],
  ] as const)(
    'sets the LAMBDA_ENV variables the %s function needs, and no others (the rest keep their defaults)',
    (_, fn, names) => {
      const properties = propertiesOf(synth.service, fn());
      const variables = (properties.Environment as { Variables: Record<string, unknown> }).Variables;
      const lambdaEnvNames: readonly string[] = Object.values(LAMBDA_ENV);
      expect(
        Object.keys(variables)
          .filter((name) => lambdaEnvNames.includes(name))
          .sort(),
      ).toEqual([...names].sort());
    },
  );

  it('gives the dispatcher the retry schedule and timeout, and refuses private targets everywhere', () => {
    synth.service.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({
          [LAMBDA_ENV.retrySchedule]: DEFAULT_RETRY_SCHEDULE.join(','),
          [LAMBDA_ENV.deliveryTimeoutMs]: String(DEFAULT_SETTINGS.deliveryTimeoutMs),
          [LAMBDA_ENV.allowPrivateTargets]: 'false',
        }),
      },
    });
    for (const [, properties] of resourcesOfType(synth.service, 'AWS::Lambda::Function')) {
      const variables = (properties.Environment as { Variables: Record<string, unknown> }).Variables;
      expect(variables[LAMBDA_ENV.allowPrivateTargets] ?? 'false').toBe('false');
    }
  });

  it('runs the sweeper every minute, with a timeout that ends one run before the next starts', () => {
    const { sweeperFunction } = synth.stacks.service.pipeline;
    synth.service.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: `rate(${DUE_SWEEP_INTERVAL_SECONDS / 60} minute)`,
      Targets: [Match.objectLike({ Arn: getAtt(sweeperFunction, 'Arn') })],
    });
    expect(propertiesOf(synth.service, sweeperFunction).Timeout).toBeLessThanOrEqual(
      DUE_SWEEP_INTERVAL_SECONDS,
    );
  });
});

describe('HTTP API', () => {
  /** The HTTP API's resources of a type (the WebSocket API of connections has its own). */
  const ofHttpApi = (type: string) =>
    resourcesOfType(synth.service, type).filter(
      ([, properties]) =>
        JSON.stringify(properties.ApiId) === JSON.stringify(ref(synth.stacks.service.api.api)),
    );

  it('protects every route of ROUTES: admin routes with IAM, partner routes with the Lambda authorizer', () => {
    const authorizerId = ref(synth.stacks.service.api.api.node.findChild('PartnerApiKey'));
    expect(ofHttpApi('AWS::ApiGatewayV2::Route')).toHaveLength(ROUTES.length + 1);
    const expected = {
      admin: { AuthorizationType: 'AWS_IAM', AuthorizerId: Match.absent() },
      partner: { AuthorizationType: 'CUSTOM', AuthorizerId: authorizerId },
      public: { AuthorizationType: 'NONE', AuthorizerId: Match.absent() },
    };
    for (const route of ROUTES) {
      synth.service.hasResourceProperties('AWS::ApiGatewayV2::Route', {
        RouteKey: `${route.method} ${route.path}`,
        ...expected[route.auth],
      });
    }
  });

  it('throttles the OpenAPI document apart from the stage', () => {
    synth.service.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      RouteSettings: { 'GET /openapi.json': { ThrottlingRateLimit: 10, ThrottlingBurstLimit: 20 } },
    });
  });

  it('leaves open only the OpenAPI document', () => {
    const open = ofHttpApi('AWS::ApiGatewayV2::Route').filter(
      ([, route]) => route.AuthorizationType === 'NONE',
    );
    expect(open.map(([, route]) => route.RouteKey).sort()).toEqual(['$default', 'GET /openapi.json']);
  });

  it('serves POST /v1/events/batch to IAM-signed callers only, as POST /v1/events', () => {
    for (const routeKey of ['POST /v1/events', 'POST /v1/events/batch']) {
      synth.service.hasResourceProperties('AWS::ApiGatewayV2::Route', {
        RouteKey: routeKey,
        AuthorizationType: 'AWS_IAM',
        AuthorizerId: Match.absent(),
        Target: Match.anyValue(),
      });
    }
  });

  it('sends every other request to the API function ($default), which answers 404 or 405', () => {
    synth.service.hasResourceProperties('AWS::ApiGatewayV2::Route', {
      RouteKey: '$default',
      AuthorizationType: 'NONE',
      Target: Match.anyValue(),
    });
    expect(ofHttpApi('AWS::ApiGatewayV2::Integration')).toHaveLength(3);
    synth.service.hasResourceProperties('AWS::ApiGatewayV2::Integration', {
      IntegrationType: 'AWS_PROXY',
      PayloadFormatVersion: '2.0',
      IntegrationUri: getAtt(synth.stacks.service.api.apiFunction, 'Arn'),
    });
  });

  it('serves the polling routes from the polling function, of 128 MB, within the HTTP API’s 30 s', () => {
    const { api } = synth.stacks.service;
    const integrations = synth.service.findResources('AWS::ApiGatewayV2::Integration');
    const pollIntegration = Object.entries(integrations).find(([, resource]) =>
      JSON.stringify(resource.Properties.IntegrationUri).includes(logicalIdOf(api.pollFunction)),
    )?.[0];
    expect(pollIntegration).toBeDefined();
    const routes = Object.values(synth.service.findResources('AWS::ApiGatewayV2::Route'));
    const polled = routes
      .filter((route) => JSON.stringify(route.Properties.Target ?? '').includes(pollIntegration ?? '-'))
      .map((route) => route.Properties.RouteKey)
      .sort();
    expect(polled).toEqual(
      ROUTES.filter((r) => 'lambda' in r && r.lambda === 'poll')
        .map((r) => `${r.method} ${r.path}`)
        .sort(),
    );
    expect(polled.length).toBeGreaterThan(0);
    synth.service.hasResourceProperties('AWS::Lambda::Function', {
      MemorySize: 128,
      Timeout: 25,
      ReservedConcurrentExecutions: 200,
      Environment: { Variables: Match.objectLike({ POWERTOOLS_SERVICE_NAME: 'poll' }) },
    });
  });

  it('serves the ops routes from the ops function, IAM-authorised, small, within the HTTP API’s 30 s', () => {
    const { opsFunction } = synth.stacks.service;
    const integrations = synth.service.findResources('AWS::ApiGatewayV2::Integration');
    const opsIntegration = Object.entries(integrations).find(([, resource]) =>
      JSON.stringify(resource.Properties.IntegrationUri).includes(logicalIdOf(opsFunction)),
    )?.[0];
    expect(opsIntegration).toBeDefined();
    const routes = Object.values(synth.service.findResources('AWS::ApiGatewayV2::Route')).filter((route) =>
      JSON.stringify(route.Properties.Target ?? '').includes(opsIntegration ?? '-'),
    );
    expect(routes.map((route) => route.Properties.RouteKey).sort()).toEqual(
      ROUTES.filter((r) => 'lambda' in r && r.lambda === 'ops')
        .map((r) => `${r.method} ${r.path}`)
        .sort(),
    );
    for (const route of routes) expect(route.Properties.AuthorizationType).toBe('AWS_IAM');
    const properties = propertiesOf(synth.service, opsFunction);
    expect(properties.MemorySize).toBeLessThanOrEqual(256);
    expect(properties.Timeout).toBeLessThan(30);
  });

  it('authorizes partners by API key with simple responses, cached a minute per Authorization header', () => {
    synth.service.hasResourceProperties('AWS::ApiGatewayV2::Authorizer', {
      AuthorizerType: 'REQUEST',
      AuthorizerPayloadFormatVersion: '2.0',
      EnableSimpleResponses: true,
      IdentitySource: ['$request.header.Authorization'],
      AuthorizerResultTtlInSeconds: 60,
    });
  });

  it('logs every request to a log group and throttles the stage', () => {
    synth.service.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: '$default',
      AutoDeploy: true,
      AccessLogSettings: {
        DestinationArn: getAtt(synth.stacks.service.api.accessLogGroup, 'Arn'),
        Format: Match.stringLikeRegexp('\\$context\\.requestId'),
      },
      // A ceiling for the deployment, under the account's HTTP API quota; callers have their own limits.
      DefaultRouteSettings: { ThrottlingRateLimit: 5000, ThrottlingBurstLimit: 2500 },
    });
  });
});
