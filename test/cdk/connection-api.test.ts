/**
 * The WebSocket API of connection subscriptions: its routes and stage, its connections table,
 * the connections function, and what the connections function, the dispatcher and the API
 * function may do with the connections.
 */
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  CONNECTIONS_TABLE,
  DELIVERIES_TABLE,
  PARTNERS_TABLE,
  SUBSCRIPTIONS_TABLE,
  TABLES,
} from '../../functions/adapters/aws/tables.ts';
import { LAMBDA_ENV } from '../../functions/config.ts';
import {
  CONNECTION_STAGE_NAME,
  CONNECTION_STAGE_THROTTLE,
  ConnectionApi,
  type ConnectionApiProps,
  UNKNOWN_FRAME_THROTTLE,
} from '../../lib/constructs/connection-api.ts';
import { DispatcherFunction } from '../../lib/constructs/function.ts';
import { DefinedTable } from '../../lib/constructs/table.ts';
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

const connections = () => synth.stacks.service.connections;

/** `<scheme>://{apiId}.execute-api.{region}.{suffix}/v1`, as CloudFormation joins it. */
function stageUrl(scheme: 'wss' | 'https') {
  return {
    'Fn::Join': [
      '',
      [
        `${scheme}://`,
        ref(connections().api),
        '.execute-api.',
        { Ref: 'AWS::Region' },
        '.',
        { Ref: 'AWS::URLSuffix' },
        `/${CONNECTION_STAGE_NAME}`,
      ],
    ],
  };
}

/** `arn:…:execute-api:…:{apiId}/v1/<method>/@connections/*`, as CloudFormation joins it. */
function manageArn(method: 'POST' | 'DELETE') {
  return {
    'Fn::Join': [
      '',
      [
        'arn:',
        { Ref: 'AWS::Partition' },
        ':execute-api:',
        { Ref: 'AWS::Region' },
        ':',
        { Ref: 'AWS::AccountId' },
        ':',
        ref(connections().api),
        `/${CONNECTION_STAGE_NAME}/${method}/@connections/*`,
      ],
    ],
  };
}

interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: unknown;
}

/** Every statement of the policies attached to the function's role, in `template`. */
function statementsOf(fn: DispatcherFunction, template: Template = synth.service): Statement[] {
  if (fn.role === undefined) throw new Error(`${fn.node.path} has no role`);
  const role = JSON.stringify(ref(fn.role));
  return resourcesOfType(template, 'AWS::IAM::Policy')
    .filter(([, properties]) => JSON.stringify(properties.Roles).includes(role))
    .flatMap(([, properties]) => (properties.PolicyDocument as { Statement: Statement[] }).Statement);
}

/** The actions the statements allow on `resource`, sorted. */
function actionsOn(statements: readonly Statement[], resource: unknown): string[] {
  const wanted = JSON.stringify(resource);
  return statements
    .filter((statement) => [statement.Resource].flat().some((r) => JSON.stringify(r) === wanted))
    .flatMap((statement) => [statement.Action].flat())
    .sort();
}

/** The resources the statements allow `action` on. */
function resourcesOf(statements: readonly Statement[], action: string): unknown[] {
  return statements
    .filter((statement) => [statement.Action].flat().includes(action))
    .flatMap((statement) => [statement.Resource].flat());
}

function variablesOf(fn: DispatcherFunction): Record<string, unknown> {
  return (propertiesOf(synth.service, fn).Environment as { Variables: Record<string, unknown> }).Variables;
}

describe('WebSocket API', () => {
  it('is a WebSocket API with $connect, $disconnect, $default and a route per frame type, each integrated with the connections function', () => {
    const apiId = ref(connections().api);
    expect(propertiesOf(synth.service, connections().api).ProtocolType).toBe('WEBSOCKET');
    const integrations = resourcesOfType(synth.service, 'AWS::ApiGatewayV2::Integration').filter(
      ([, properties]) => JSON.stringify(properties.ApiId) === JSON.stringify(apiId),
    );
    expect(integrations).toHaveLength(1);
    const [[integrationId, integration] = ['', {}]] = integrations;
    expect(integration.IntegrationType).toBe('AWS_PROXY');
    expect(JSON.stringify(integration.IntegrationUri)).toContain(
      JSON.stringify(getAtt(connections().connectionsFunction, 'Arn')),
    );
    const routes = resourcesOfType(synth.service, 'AWS::ApiGatewayV2::Route').filter(
      ([, properties]) => JSON.stringify(properties.ApiId) === JSON.stringify(apiId),
    );
    expect(propertiesOf(synth.service, connections().api).RouteSelectionExpression).toBe(
      '$request.body.type',
    );
    expect(routes.map(([, route]) => route.RouteKey).sort()).toEqual([
      '$connect',
      '$default',
      '$disconnect',
      'ack',
      'nack',
      'ping',
    ]);
    for (const [id, route] of routes) {
      expect(route.Target, id).toEqual({ 'Fn::Join': ['', ['integrations/', { Ref: integrationId }]] });
      // No API Gateway authorizer: $connect checks the API key in the function.
      expect(route.AuthorizationType, id).toBe('NONE');
      // One-way: the function answers down the connection (PostToConnection), not in its return value.
      expect(route.RouteResponseSelectionExpression, id).toBeUndefined();
    }
    synth.service.resourceCountIs('AWS::ApiGatewayV2::RouteResponse', 0);
  });

  it('lets API Gateway invoke the connections function for this API’s routes only', () => {
    const permissions = resourcesOfType(synth.service, 'AWS::Lambda::Permission').filter(
      ([, properties]) =>
        JSON.stringify(properties.FunctionName) ===
        JSON.stringify(getAtt(connections().connectionsFunction, 'Arn')),
    );
    const routeOf = (sourceArn: unknown) => {
      const parts = (sourceArn as { 'Fn::Join': ['', unknown[]] })['Fn::Join'][1];
      expect(parts).toContainEqual(ref(connections().api));
      return parts.at(-1);
    };
    expect(permissions.map(([, properties]) => routeOf(properties.SourceArn)).sort()).toEqual([
      '/*$connect',
      '/*$default',
      '/*$disconnect',
      '/*ack',
      '/*nack',
      '/*ping',
    ]);
    for (const [, properties] of permissions) expect(properties.Principal).toBe('apigateway.amazonaws.com');
  });

  it('serves stage v1, deployed on every change, throttled, with one JSON access log line per event', () => {
    const stage = propertiesOf(synth.service, connections().stage);
    expect(stage).toMatchObject({
      ApiId: ref(connections().api),
      StageName: CONNECTION_STAGE_NAME,
      AutoDeploy: true,
      DefaultRouteSettings: {
        ThrottlingRateLimit: CONNECTION_STAGE_THROTTLE.rateLimit,
        ThrottlingBurstLimit: CONNECTION_STAGE_THROTTLE.burstLimit,
      },
      AccessLogSettings: { DestinationArn: getAtt(connections().accessLogGroup, 'Arn') },
    });
    // Frames of no known type are throttled apart.
    expect(stage.RouteSettings).toEqual({
      $default: {
        ThrottlingRateLimit: UNKNOWN_FRAME_THROTTLE.rateLimit,
        ThrottlingBurstLimit: UNKNOWN_FRAME_THROTTLE.burstLimit,
      },
    });
    // Under the account's 10,000 a second (all its APIs and callbacks); room for 30,000
    // connections pinging every 30 s and a thousand acks a second.
    expect(CONNECTION_STAGE_THROTTLE.rateLimit).toBeLessThan(10_000);
    expect(CONNECTION_STAGE_THROTTLE.rateLimit).toBeGreaterThanOrEqual(30_000 / 30 + 1000);
    const format = JSON.parse((stage.AccessLogSettings as { Format: string }).Format);
    expect(format).toEqual({
      requestId: '$context.requestId',
      connectionId: '$context.connectionId',
      eventType: '$context.eventType',
      routeKey: '$context.routeKey',
      status: '$context.status',
      integrationStatus: '$context.integrationStatus',
      requestTime: '$context.requestTime',
      ip: '$context.identity.sourceIp',
      error: '$context.error.message',
    });
    expect(propertiesOf(synth.service, connections().accessLogGroup).RetentionInDays).toBe(30);
  });

  it('says where partners connect: the ConnectUrl output, the stage’s wss:// URL', () => {
    synth.service.hasOutput('ConnectUrl', {
      Value: stageUrl('wss'),
      Description: Match.stringLikeRegexp('wss://'),
    });
  });
});

describe('connections table', () => {
  it('is in the service stack, keyed pk/sk, expiring on expiresAt, with no stream', () => {
    expect(synth.stacks.service.connections.table.definition).toBe(CONNECTIONS_TABLE);
    const table = propertiesOf(synth.service, connections().table.table);
    expect(table).toMatchObject({
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
      ],
      BillingMode: 'PAY_PER_REQUEST',
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
    });
    expect(table.StreamSpecification).toBeUndefined();
    expect(table.GlobalSecondaryIndexes).toBeUndefined();
    // The data stack keeps only the TABLES.
    synth.data.resourceCountIs('AWS::DynamoDB::Table', TABLES.length);
  });

  it('is deleted with the stack and has no deletion protection: it holds only open connections', () => {
    synth.service.hasResource('AWS::DynamoDB::Table', {
      Properties: Match.objectLike({ DeletionProtectionEnabled: false }),
      DeletionPolicy: 'Delete',
      UpdateReplacePolicy: 'Delete',
    });
    synth.service.resourceCountIs('AWS::DynamoDB::Table', 1);
  });
});

describe('connections function', () => {
  it('has 256 MB and 29 s, API Gateway’s longest wait for a WebSocket integration', () => {
    expect(propertiesOf(synth.service, connections().connectionsFunction)).toMatchObject({
      MemorySize: 256,
      Timeout: 29,
    });
    expect(variablesOf(connections().connectionsFunction).POWERTOOLS_SERVICE_NAME).toBe('connections');
  });

  it('is given its table, the partners’, subscriptions’ and deliveries’, the main lane, the endpoint and the timeouts', () => {
    const { pipeline } = synth.stacks.service;
    expect(variablesOf(connections().connectionsFunction)).toMatchObject({
      [LAMBDA_ENV.connectionsTable]: ref(connections().table.table),
      [LAMBDA_ENV.connectionsEndpoint]: stageUrl('https'),
      [LAMBDA_ENV.partnersTable]: expect.anything(),
      [LAMBDA_ENV.subscriptionsTable]: expect.anything(),
      [LAMBDA_ENV.deliveriesTable]: expect.anything(),
      [LAMBDA_ENV.deliveryQueueUrl]: ref(pipeline.delivery.queue),
      [LAMBDA_ENV.deliveryTimeoutMs]: String(DEFAULT_SETTINGS.deliveryTimeoutMs),
      [LAMBDA_ENV.retentionDays]: String(DEFAULT_SETTINGS.retentionDays),
    });
    expect(variablesOf(connections().connectionsFunction)[LAMBDA_ENV.connectUrl]).toBeUndefined();
  });

  it('is given the same endpoint the dispatcher and the API function are, and the API function the wss:// URL', () => {
    const { pipeline, api } = synth.stacks.service;
    for (const fn of [pipeline.dispatcherFunction, api.apiFunction]) {
      expect(variablesOf(fn)[LAMBDA_ENV.connectionsTable], fn.node.path).toEqual(
        ref(connections().table.table),
      );
      expect(variablesOf(fn)[LAMBDA_ENV.connectionsEndpoint], fn.node.path).toEqual(stageUrl('https'));
    }
    expect(variablesOf(api.apiFunction)[LAMBDA_ENV.connectUrl]).toEqual(stageUrl('wss'));
    expect(variablesOf(api.apiFunction)[LAMBDA_ENV.deliveryTimeoutMs]).toBe(
      String(DEFAULT_SETTINGS.deliveryTimeoutMs),
    );
  });

  it('is alarmed on when throttled, as every function is', () => {
    const labels = synth.stacks.service.monitoring.alarms.map((alarm) => alarm.node.id);
    expect(labels).toContain('connectionsThrottles');
  });
});

describe('grants on the connections', () => {
  const CASES = [
    [
      'connections',
      () => connections().connectionsFunction,
      [
        'dynamodb:DeleteItem',
        'dynamodb:GetItem',
        'dynamodb:PutItem',
        'dynamodb:Query',
        'dynamodb:UpdateItem',
      ],
      ['POST', 'DELETE'],
    ],
    [
      'dispatcher',
      () => synth.stacks.service.pipeline.dispatcherFunction,
      ['dynamodb:BatchGetItem', 'dynamodb:DeleteItem', 'dynamodb:GetItem', 'dynamodb:Query'],
      ['POST', 'DELETE'],
    ],
    // It only closes a revoked key's connections.
    [
      'api',
      () => synth.stacks.service.api.apiFunction,
      ['dynamodb:DeleteItem', 'dynamodb:Query'],
      ['DELETE'],
    ],
  ] as const;

  it.each(CASES)('%s: exactly its actions on the connections table', (_, fn, actions) => {
    expect(actionsOn(statementsOf(fn()), getAtt(connections().table.table, 'Arn'))).toEqual([...actions]);
  });

  it.each(CASES)(
    '%s: ManageConnections on this API’s stage for its methods only, never on "*"',
    (_, fn, _actions, methods) => {
      const statements = statementsOf(fn());
      const resources = resourcesOf(statements, 'execute-api:ManageConnections');
      expect(resources).toHaveLength(methods.length);
      expect(resources).toEqual(expect.arrayContaining(methods.map(manageArn)));
      const anyExecuteApi = statements.filter((statement) =>
        [statement.Action].flat().some((action) => action.startsWith('execute-api:')),
      );
      for (const statement of anyExecuteApi) {
        expect([statement.Action].flat()).toEqual(['execute-api:ManageConnections']);
        expect([statement.Resource].flat()).not.toContain('*');
      }
    },
  );

  it('no other function may use the connections table or the management API', () => {
    const { service } = synth.stacks;
    const allowed = new Set(
      [connections().connectionsFunction, service.pipeline.dispatcherFunction, service.api.apiFunction].map(
        (fn) => logicalIdOf(fn.role ?? fn),
      ),
    );
    const table = JSON.stringify(getAtt(connections().table.table, 'Arn'));
    for (const [id, policy] of resourcesOfType(synth.service, 'AWS::IAM::Policy')) {
      const text = JSON.stringify(policy.PolicyDocument);
      if (!text.includes(table) && !text.includes('execute-api:ManageConnections')) continue;
      const roles = (policy.Roles as { Ref: string }[]).map((role) => role.Ref);
      expect(
        roles.every((role) => allowed.has(role)),
        id,
      ).toBe(true);
    }
  });

  it('the connections function has no KMS grant (it never opens a signing secret)', () => {
    const actions = statementsOf(connections().connectionsFunction).flatMap((s) => [s.Action].flat());
    expect(actions.filter((action) => action.startsWith('kms:'))).toEqual([]);
    expect(variablesOf(connections().connectionsFunction)[LAMBDA_ENV.secretsKeyArn]).toBeUndefined();
  });

  it('the connections function sends to the main lane and does nothing else with SQS', () => {
    const statements = statementsOf(connections().connectionsFunction);
    const sqsStatements = statements.filter((s) => [s.Action].flat().some((a) => a.startsWith('sqs:')));
    expect(sqsStatements.map((s) => [s.Action].flat())).toEqual([['sqs:SendMessage']]);
    expect(sqsStatements.flatMap((s) => [s.Resource].flat())).toEqual([
      getAtt(synth.stacks.service.pipeline.delivery.queue, 'Arn'),
    ]);
  });

  it('the connections function reads subscriptions by id and by partner (byPartner), and writes none', () => {
    const statements = statementsOf(connections().connectionsFunction);
    const subscriptions = resourcesOf(statements, 'dynamodb:GetItem').filter((r) =>
      JSON.stringify(r).includes('SubscriptionsTable'),
    );
    expect(subscriptions).toHaveLength(1);
    const subscriptionActions = statements
      .filter((s) => JSON.stringify(s.Resource).includes('SubscriptionsTable'))
      .flatMap((s) => [s.Action].flat())
      .sort();
    expect(subscriptionActions).toEqual(['dynamodb:GetItem', 'dynamodb:Query']);
    const byPartner = statements.filter((s) => JSON.stringify(s.Resource).includes('/index/byPartner'));
    expect(byPartner.flatMap((s) => [s.Action].flat())).toEqual(['dynamodb:Query']);
  });

  it('the connections function reaches only the parked tries of the deliveries table (LeadingKeys PARK#*)', () => {
    const statements = statementsOf(connections().connectionsFunction);
    const deliveries = statements.filter(
      (statement) =>
        JSON.stringify(statement.Resource).includes('DeliveriesTable') &&
        !JSON.stringify(statement.Resource).includes('/index/'),
    );
    expect(deliveries).toHaveLength(1);
    expect(deliveries[0]?.Condition).toEqual({
      'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['PARK#*'] },
    });
  });

  it('the dispatcher may take a parked try back: DeleteItem on the deliveries table', () => {
    const statements = statementsOf(synth.stacks.service.pipeline.dispatcherFunction);
    const deliveries = statements.filter(
      (s) =>
        JSON.stringify(s.Resource).includes('DeliveriesTable') &&
        !JSON.stringify(s.Resource).includes('/index/'),
    );
    expect(deliveries.flatMap((s) => [s.Action].flat())).toContain('dynamodb:DeleteItem');
  });
});

describe('ConnectionApi on its own', () => {
  /** No bundling: only the templates matter here. */
  function setUp(overrides: Partial<ConnectionApiProps> = {}) {
    const stack = new Stack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Test');
    const api = new ConnectionApi(stack, 'Connections', {
      partnersTable: new DefinedTable(stack, 'Partners', { definition: PARTNERS_TABLE }),
      subscriptionsTable: new DefinedTable(stack, 'Subscriptions', { definition: SUBSCRIPTIONS_TABLE }),
      deliveriesTable: new DefinedTable(stack, 'Deliveries', { definition: DELIVERIES_TABLE }),
      deliveryQueue: new sqs.Queue(stack, 'Delivery'),
      deliveryTimeout: Duration.seconds(10),
      retentionDays: 30,
      ...overrides,
    });
    const fn = new DispatcherFunction(stack, 'Fn', {
      entry: 'functions/authorizer/lambda.ts',
      description: 'test',
      serviceName: 'test',
    });
    return { stack, api, fn };
  }

  it('gives a function served twice (pushing and closing) the union, each variable bound once', () => {
    const { stack, api, fn } = setUp();
    api.grantPush(fn);
    api.grantClose(fn);
    const template = Template.fromStack(stack);
    const statements = statementsOf(fn, template);
    expect(actionsOn(statements, getAtt(api.table.table, 'Arn'))).toEqual([
      'dynamodb:BatchGetItem',
      'dynamodb:DeleteItem',
      'dynamodb:GetItem',
      'dynamodb:Query',
    ]);
    // POST and DELETE once each.
    expect(resourcesOf(statements, 'execute-api:ManageConnections')).toHaveLength(2);
    const variables = (propertiesOf(template, fn).Environment as { Variables: Record<string, unknown> })
      .Variables;
    expect(Object.keys(variables)).toEqual(
      expect.arrayContaining([
        LAMBDA_ENV.connectionsTable,
        LAMBDA_ENV.connectionsEndpoint,
        LAMBDA_ENV.connectUrl,
        LAMBDA_ENV.deliveryTimeoutMs,
      ]),
    );
  });

  it("sets the Region's API Gateway CloudWatch role before the stage, retained; not with setCloudWatchRole false", () => {
    const { stack, api } = setUp();
    const template = Template.fromStack(stack);
    const accounts = template.findResources('AWS::ApiGateway::Account');
    expect(Object.values(accounts)).toHaveLength(1);
    const [[accountId, account] = ['', {}]] = Object.entries(accounts);
    expect(account.DeletionPolicy).toBe('Retain');
    const role = api.node.findChild('ApiGatewayCloudWatchRole');
    expect(account.Properties?.CloudWatchRoleArn).toEqual(getAtt(role, 'Arn'));
    const stage = template.findResources('AWS::ApiGatewayV2::Stage')[logicalIdOf(api.stage)];
    expect(stage?.DependsOn).toContain(accountId);
    const without = setUp({ setCloudWatchRole: false });
    Template.fromStack(without.stack).resourceCountIs('AWS::ApiGateway::Account', 0);
  });

  it.each([
    ['a delivery timeout under 100 ms', { deliveryTimeout: Duration.millis(50) }, /deliveryTimeout/],
    ['a delivery timeout over a minute', { deliveryTimeout: Duration.minutes(2) }, /deliveryTimeout/],
    ['a retention of no days', { retentionDays: 0 }, /retentionDays/],
  ])('refuses %s', (_, overrides, message) => {
    expect(() => setUp(overrides)).toThrow(message);
  });
});
