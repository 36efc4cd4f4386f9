import { type CfnElement, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as apigwv1 from 'aws-cdk-lib/aws-apigateway';
import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import { WebSocketLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { CONNECTIONS_TABLE } from '../../functions/adapters/aws/tables.ts';
import { DELIVERY_TIMEOUT_MS, LAMBDA_ENV } from '../../functions/config.ts';
import { DispatcherFunction, type TableAction } from './function.ts';
import { DefinedTable } from './table.ts';

/** The stage partners connect to: `wss://{apiId}.execute-api.{region}.amazonaws.com/v1`. */
export const CONNECTION_STAGE_NAME = 'v1';

/**
 * The stage's throttle, all connections of all partners together: messages a second (each
 * `$connect`, and each ack, nack and ping an agent sends) and burst. A connection pings every
 * HEARTBEAT_SECONDS (30), so this carries 30,000 idle connections with room for a thousand
 * acks a second, under the account's Region-wide 10,000 requests a second, which its HTTP
 * APIs and the dispatcher's PostToConnection calls share ("Amazon API Gateway quotas",
 * https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html).
 * New connections are held to 500 a second per account and Region by API Gateway itself
 * (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-execution-service-websocket-limits-table.html),
 * and each partner to MAX_CONNECTIONS_PER_PARTNER by the `$connect` handler.
 */
export const CONNECTION_STAGE_THROTTLE = {
  rateLimit: 2000,
  burstLimit: 4000,
} as const satisfies apigw.ThrottleSettings;

/**
 * The `$default` route's own throttle: frames that are no type of the protocol's, which the
 * function ignores. Held apart, so a client that floods the API with them is refused by API
 * Gateway, without invoking the function, and leaves the stage's rate to everyone else.
 */
export const UNKNOWN_FRAME_THROTTLE = {
  rateLimit: 10,
  burstLimit: 20,
} as const satisfies apigw.ThrottleSettings;

/** The connections function's memory: it waits on DynamoDB, SQS and API Gateway, and computes little. */
export const CONNECTIONS_FUNCTION_MEMORY_MB = 256;

/**
 * The connections function's timeout: API Gateway's longest wait for a WebSocket route's
 * integration (29 s, the WebSocketLambdaIntegration's default), so the function is never cut
 * off while API Gateway still waits for it.
 */
export const CONNECTIONS_FUNCTION_TIMEOUT_SECONDS = 29;

/**
 * The management API's calls the functions make on a connection, as IAM names them:
 * PostToConnection (a frame down it) is a POST, DeleteConnection (closing it) a DELETE, each on
 * `@connections/{connectionId}`
 * (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-control-access-iam.html).
 * GetConnection (a GET) is granted to none: no function calls it.
 */
type ManagementMethod = 'POST' | 'DELETE';

/**
 * One JSON line per WebSocket event (a connect, a message, a disconnect): which connection,
 * which route, how it went. WebSocket APIs have their own `$context` variables
 * (https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-logging.html).
 */
const ACCESS_LOG_FORMAT = JSON.stringify({
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

export interface ConnectionApiProps {
  /** The partners and their API keys: `$connect` authenticates the key and stamps its last use. */
  readonly partnersTable: DefinedTable;
  /** The subscriptions a connection serves (a partner's connection subscriptions). */
  readonly subscriptionsTable: DefinedTable;
  /** Where the tries waiting for a connection are parked (`PARK#<subscriptionId>` items). */
  readonly deliveriesTable: DefinedTable;
  /** The main lane: a connection that opens queues its subscriptions' parked tries here. */
  readonly deliveryQueue: sqs.IQueue;
  /** Per-try timeout, the same as an HTTP callback's: how long an agent has to answer a try. */
  readonly deliveryTimeout: Duration;
  /** Days an event is kept: a parked try expires with its delivery. */
  readonly retentionDays: number;
  /**
   * The stage's throttle, all connections together: messages per second, and burst.
   * @default CONNECTION_STAGE_THROTTLE
   */
  readonly throttle?: apigw.ThrottleSettings;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /**
   * Sets the Region's API Gateway CloudWatch role (AWS::ApiGateway::Account), which API Gateway
   * writes a WebSocket stage's access logs with: without one the stage fails to deploy. The
   * setting is the account's, one per Region: pass false where another stack already sets it.
   * @default true
   */
  readonly setCloudWatchRole?: boolean;
}

/** The routes: API Gateway's three, and one per frame an agent sends (`$request.body.type`). */
type RouteKey = '$connect' | '$disconnect' | '$default' | 'ack' | 'nack' | 'ping';
/** The frames an agent sends, each a route of its own: its count, errors and log lines apart. */
const FRAME_ROUTES = ['ack', 'nack', 'ping'] as const;

/** What another function does with the connections. */
interface ConnectionUse {
  /** Its actions on the connections table. */
  readonly table: readonly TableAction[];
  /** The management API's calls it makes on connections: POST PostToConnection, DELETE DeleteConnection. */
  readonly methods: readonly ManagementMethod[];
  /** Whether it tells partners where to connect and how long they have to answer a try. */
  readonly connectInfo: boolean;
}

/**
 * Connection subscriptions on AWS: an API Gateway WebSocket API that partners' agents open with
 * their API key, and the dispatcher pushes tries down (docs/connection-protocol.md).
 *
 * One function serves the three routes, by `event.requestContext.routeKey`: `$connect` checks
 * the `Authorization: Bearer <apiKey>` header itself (the same check as the HTTP API's
 * authorizer), refuses the upgrade with 401, 404 or 429, or records the connection; `$default`
 * takes pings (the first makes the connection ready: `hello`, then its subscriptions' parked
 * tries are queued), acks and nacks; `$disconnect` forgets the connection. The routes are
 * one-way: past `$connect`'s status, which accepts or refuses, the function answers down the
 * connection with PostToConnection, never in its return value.
 *
 * The connections table holds only open connections and their answers (tries waiting for a
 * connection are parked in the deliveries table), so it lives here, in the stateless stack, and
 * may be deleted with it: losing it only closes connections, which agents reopen.
 *
 * API Gateway writes a WebSocket stage's access logs with the Region's API Gateway CloudWatch
 * role (the account setting, AWS::ApiGateway::Account), unlike an HTTP API's: the stage fails to
 * deploy in a Region where that role is not set.
 */
export class ConnectionApi extends Construct {
  /** The open connections and the answers they send (CONNECTIONS_TABLE). */
  public readonly table: DefinedTable;
  /** Serves `$connect`, `$disconnect` and `$default`. */
  public readonly connectionsFunction: DispatcherFunction;
  public readonly api: apigw.WebSocketApi;
  public readonly stage: apigw.WebSocketStage;
  public readonly accessLogGroup: logs.LogGroup;
  /** The route resources, by route key: `$connect`, `$disconnect`, `$default`, `ack`, `nack`, `ping`. */
  public readonly routes: Readonly<Record<RouteKey, apigw.WebSocketRoute>>;
  /** The functions given the connections, with the table actions and methods each was given. */
  private readonly served = new Map<
    DispatcherFunction,
    { table: Set<TableAction>; methods: Set<ManagementMethod> }
  >();
  private readonly deliveryTimeoutMs: number;

  constructor(scope: Construct, id: string, props: ConnectionApiProps) {
    super(scope, id);
    const timeoutMs = props.deliveryTimeout.toMilliseconds();
    if (timeoutMs < DELIVERY_TIMEOUT_MS.min || timeoutMs > DELIVERY_TIMEOUT_MS.max) {
      throw new Error(
        `${id}: deliveryTimeout must be from ${DELIVERY_TIMEOUT_MS.min} ms to ${DELIVERY_TIMEOUT_MS.max / 1000} s`,
      );
    }
    if (!Number.isInteger(props.retentionDays) || props.retentionDays < 1) {
      throw new Error(`${id}: retentionDays must be a whole number of days, at least one`);
    }
    this.deliveryTimeoutMs = timeoutMs;
    const logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;

    this.table = new DefinedTable(this, CONNECTIONS_TABLE.name, {
      definition: CONNECTIONS_TABLE,
      // Open connections only: deleting the table closes them, and agents reconnect.
      removalPolicy: RemovalPolicy.DESTROY,
      deletionProtection: false,
    });

    this.connectionsFunction = new DispatcherFunction(this, 'ConnectionsFunction', {
      entry: 'functions/connections/lambda.ts',
      description: 'WebSocket API: $connect (API key), $disconnect, $default (acks, nacks, pings)',
      serviceName: 'connections',
      timeout: Duration.seconds(CONNECTIONS_FUNCTION_TIMEOUT_SECONDS),
      memorySize: CONNECTIONS_FUNCTION_MEMORY_MB,
      logRetention,
      environment: {
        // The ack timeout `hello` tells an agent.
        [LAMBDA_ENV.deliveryTimeoutMs]: String(timeoutMs),
        [LAMBDA_ENV.retentionDays]: String(props.retentionDays),
      },
    })
      // Connections: counted per partner (a query) and recorded (puts) on $connect; a frame's
      // connection found (a get), heard from and made ready (updates), an ack or a nack put;
      // forgotten on $disconnect (deletes).
      .useTable(this.table, LAMBDA_ENV.connectionsTable, {
        table: [
          'dynamodb:GetItem',
          'dynamodb:PutItem',
          'dynamodb:UpdateItem',
          'dynamodb:DeleteItem',
          'dynamodb:Query',
        ],
      })
      // The API key's item and its "last used" stamp, as the authorizer function reads them.
      .useTable(props.partnersTable, LAMBDA_ENV.partnersTable, {
        table: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
      })
      // A subscription asked for by id (the table), or the partner's connection
      // subscriptions (byPartner, never the table).
      .useTable(props.subscriptionsTable, LAMBDA_ENV.subscriptionsTable, {
        table: ['dynamodb:GetItem'],
        indexes: { byPartner: ['dynamodb:Query'] },
      })
      // The parked tries of a connection's subscriptions: listed, taken (an update), deleted.
      .useTable(props.deliveriesTable, LAMBDA_ENV.deliveriesTable, {
        table: ['dynamodb:Query', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
        // Those items only: the function faces the internet, and never reads a delivery.
        leadingKeys: ['PARK#*'],
      })
      // SendMessageBatch: the parked tries, queued again on the main lane when a connection opens.
      .useQueue(props.deliveryQueue, LAMBDA_ENV.deliveryQueueUrl, ['sqs:SendMessage']);

    // One integration for the three routes; each route gets its own invoke permission.
    const integration = new WebSocketLambdaIntegration('Connections', this.connectionsFunction);
    this.api = new apigw.WebSocketApi(this, 'WebSocketApi', {
      apiName: `${Stack.of(this).stackName}-connections`,
      description: 'Webhook dispatcher: partners open connections and tries are pushed down them',
      connectRouteOptions: { integration },
      disconnectRouteOptions: { integration },
      // A frame goes to the route of its type; one that is not JSON, or of another type, to $default.
      routeSelectionExpression: '$request.body.type',
      defaultRouteOptions: { integration },
    });
    const [ack, nack, ping] = FRAME_ROUTES.map((type) => this.api.addRoute(type, { integration }));
    if (ack === undefined || nack === undefined || ping === undefined)
      throw new Error(`${id}: the frame routes were not made`);
    this.routes = {
      $connect: this.route('$connect'),
      $disconnect: this.route('$disconnect'),
      $default: this.route('$default'),
      ack,
      nack,
      ping,
    };
    this.acknowledgeRoutes();

    this.accessLogGroup = new logs.LogGroup(this, 'AccessLogs', { retention: logRetention });
    const account = props.setCloudWatchRole === false ? undefined : this.cloudWatchRole();
    this.stage = new apigw.WebSocketStage(this, 'Stage', {
      webSocketApi: this.api,
      stageName: CONNECTION_STAGE_NAME,
      autoDeploy: true,
      throttle: props.throttle ?? CONNECTION_STAGE_THROTTLE,
      accessLogSettings: {
        destination: new apigw.LogGroupLogDestination(this.accessLogGroup),
        format: apigwv1.AccessLogFormat.custom(ACCESS_LOG_FORMAT),
      },
    });
    (this.stage.node.defaultChild as apigw.CfnStage).addPropertyOverride('RouteSettings', {
      $default: {
        ThrottlingRateLimit: UNKNOWN_FRAME_THROTTLE.rateLimit,
        ThrottlingBurstLimit: UNKNOWN_FRAME_THROTTLE.burstLimit,
      },
    });
    // The stage's access logs need the account's role set first.
    if (account !== undefined) this.stage.node.addDependency(account);

    this.connectionsFunction.useSetting(LAMBDA_ENV.connectionsEndpoint, this.managementEndpoint);
    // PostToConnection: hello and pongs; DeleteConnection: a connection forgotten (silent too
    // long, or its key revoked) that API Gateway still holds.
    this.grantManageConnections(this.connectionsFunction, ['POST', 'DELETE']);
  }

  /** Where partners connect: the stage's `wss://` URL. */
  public get connectUrl(): string {
    return this.stage.url;
  }

  /** The management API of the stage's connections (PostToConnection, DeleteConnection): its `https://` URL. */
  public get managementEndpoint(): string {
    return this.stage.callbackUrl;
  }

  /**
   * Lets the dispatcher push tries down connections: it reads a partner's connections (a
   * query), posts the try (PostToConnection), reads the answer (a get), now and then with
   * whether the connection is still there (a batch get of both items), and closes and forgets a connection that is gone
   * or silent (DeleteConnection, DeleteItem).
   */
  public grantPush(fn: DispatcherFunction): void {
    this.serve(fn, {
      table: ['dynamodb:Query', 'dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:DeleteItem'],
      methods: ['POST', 'DELETE'],
      connectInfo: false,
    });
  }

  /**
   * Lets the API function close the connections opened with a key when it is revoked (a query
   * of the partner's connections, DeleteConnection and DeleteItem for each), and tell partners
   * where to connect and how long they have to answer (`GET /v1/connect-info`). It never posts
   * down a connection.
   */
  public grantClose(fn: DispatcherFunction): void {
    this.serve(fn, {
      table: ['dynamodb:Query', 'dynamodb:DeleteItem'],
      methods: ['DELETE'],
      connectInfo: true,
    });
  }

  /**
   * Binds the connections table and the management endpoint (and with `connectInfo`, the
   * connect URL and the delivery timeout), and grants the table actions and ManageConnections
   * for the methods. A function served twice (both pushing and closing, say) gets the union:
   * each variable is bound once, and only what it lacked is granted.
   */
  private serve(fn: DispatcherFunction, use: ConnectionUse): void {
    let served = this.served.get(fn);
    if (served === undefined) {
      fn.useTable(this.table, LAMBDA_ENV.connectionsTable, { table: use.table });
      fn.useSetting(LAMBDA_ENV.connectionsEndpoint, this.managementEndpoint);
      served = { table: new Set(use.table), methods: new Set() };
      this.served.set(fn, served);
    } else {
      const missing = use.table.filter((action) => !served?.table.has(action));
      if (missing.length > 0) {
        fn.addToRolePolicy(
          new iam.PolicyStatement({ actions: missing, resources: [this.table.table.tableArn] }),
        );
        for (const action of missing) served.table.add(action);
      }
    }
    const methods = use.methods.filter((method) => !served?.methods.has(method));
    if (methods.length > 0) {
      this.grantManageConnections(fn, methods);
      for (const method of methods) served.methods.add(method);
    }
    if (use.connectInfo) {
      if (!fn.isBound(LAMBDA_ENV.connectUrl)) fn.useSetting(LAMBDA_ENV.connectUrl, this.connectUrl);
      // The same deployment setting as the dispatcher's: bound here unless the function has it.
      if (!fn.isBound(LAMBDA_ENV.deliveryTimeoutMs)) {
        fn.useSetting(LAMBDA_ENV.deliveryTimeoutMs, String(this.deliveryTimeoutMs));
      }
    }
  }

  /**
   * execute-api:ManageConnections on this API's stage, for the methods given, on any
   * connection: connection ids are made by API Gateway as each connection opens, so no grant
   * can name them. The wildcard is acknowledged on the role's policy, method by method.
   */
  private grantManageConnections(fn: DispatcherFunction, methods: readonly ManagementMethod[]): void {
    const resources = methods.map((method) =>
      this.api.arnForExecuteApiV2(`${method}/@connections/*`, CONNECTION_STAGE_NAME),
    );
    fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['execute-api:ManageConnections'], resources }));
    const policy = fn.role?.node.tryFindChild('DefaultPolicy');
    if (policy === undefined) throw new Error(`${fn.node.path}: the function's role has no policy`);
    const target = policy.node.defaultChild ?? policy;
    // As cdk-nag spells the resource: the API by its logical id, pseudo parameters in <>.
    const apiResource = this.api.node.defaultChild as CfnElement;
    const apiId = Stack.of(apiResource).resolve(apiResource.logicalId);
    for (const method of methods) {
      const call = method === 'POST' ? 'PostToConnection' : 'DeleteConnection';
      Validations.of(target).acknowledge({
        id:
          'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:' +
          `<${apiId}>/${CONNECTION_STAGE_NAME}/${method}/@connections/*]`,
        reason:
          `execute-api:ManageConnections for ${call} (${method} @connections/{connectionId}) on this WebSocket ` +
          `API's ${CONNECTION_STAGE_NAME} stage only. Connection ids are made by API Gateway as each connection ` +
          "opens, so a policy cannot name them: the resource is the stage's connections (API Gateway developer " +
          'guide, "Control access to WebSocket APIs with IAM authorization": ' +
          'arn:aws:execute-api:region:account-id:api-id/stage-name/METHOD/@connections/*).',
      });
    }
  }

  /**
   * The Region's API Gateway CloudWatch role (AWS::ApiGateway::Account), as aws-apigateway's
   * RestApi sets it: a role API Gateway assumes to write logs, with AWS's managed policy for
   * exactly that. Both are retained with the stack: other APIs of the account may log with it.
   */
  private cloudWatchRole(): apigwv1.CfnAccount {
    const role = new iam.Role(this, 'ApiGatewayCloudWatchRole', {
      assumedBy: new iam.ServicePrincipal('apigateway.amazonaws.com'),
      description: "API Gateway's role to write the Region's API logs to CloudWatch Logs",
      managedPolicies: [
        iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AmazonAPIGatewayPushToCloudWatchLogs'),
      ],
    });
    role.applyRemovalPolicy(RemovalPolicy.RETAIN);
    Validations.of(role.node.defaultChild ?? role).acknowledge({
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]',
      reason:
        'The managed policy AWS documents for the API Gateway CloudWatch role (API Gateway developer guide, ' +
        '"Set up CloudWatch logging for WebSocket APIs in API Gateway"): it lets API Gateway create log groups ' +
        'and streams and put events, which is all the role is for. API Gateway assumes it, no function does.',
    });
    const account = new apigwv1.CfnAccount(this, 'ApiGatewayAccount', { cloudWatchRoleArn: role.roleArn });
    account.applyRemovalPolicy(RemovalPolicy.RETAIN);
    return account;
  }

  /** The route construct of a route the API was made with. */
  private route(routeKey: RouteKey): apigw.WebSocketRoute {
    const route = this.api.node.tryFindChild(`${routeKey}-Route`);
    if (!(route instanceof apigw.WebSocketRoute)) throw new Error(`${this.node.path}: no ${routeKey} route`);
    return route;
  }

  /**
   * None of the routes has an API Gateway authorizer (cdk-nag AwsSolutions-APIG4): the
   * `$connect` handler authorises by API key itself; the other two cannot have one.
   */
  private acknowledgeRoutes(): void {
    const onlyOnConnect =
      'API Gateway allows an authorizer only on the $connect route of a WebSocket API (API Gateway developer ' +
      'guide, "Control access to WebSocket APIs with AWS Lambda REQUEST authorizers").';
    const reasons: Partial<Record<RouteKey, string>> = {
      $connect:
        'Authorised in the connections function itself, before the upgrade is accepted: it checks the ' +
        "partner's API key from the Authorization: Bearer header with the same lookup as the HTTP API's " +
        'authorizer (authenticateApiKey) and refuses the connection with 401 (no or unknown key), 404 (a ' +
        "subscription not the partner's) or 429 (too many connections). The check runs on every connect, so " +
        'a revoked key is refused at once, with no authorizer cache.',
      $disconnect:
        `${onlyOnConnect} $disconnect runs only for a connection $connect accepted, when it closes; it only ` +
        'forgets that connection.',
      $default:
        `${onlyOnConnect} $default runs only for frames on a connection $connect accepted: API Gateway opens ` +
        'no connection $connect refused. An ack or a nack is kept under that connection id alone, read only by ' +
        'the dispatcher that sent that connection the try.',
    };
    const frames =
      `${onlyOnConnect} The ack, nack and ping routes, like $default, run only for frames on a connection ` +
      '$connect accepted; an ack or a nack is kept under that connection id alone, read only by the ' +
      'dispatcher that sent that connection the try, and a ping only answers that connection.';
    reasons.ack = frames;
    reasons.nack = frames;
    reasons.ping = frames;
    for (const [routeKey, route] of Object.entries(this.routes) as [RouteKey, apigw.WebSocketRoute][]) {
      const resource = route.node.defaultChild;
      if (resource === undefined) throw new Error(`${this.node.path}: route ${routeKey} has no resource`);
      const reason = reasons[routeKey];
      if (reason === undefined) throw new Error(`${this.node.path}: no reason for route ${routeKey}`);
      Validations.of(resource).acknowledge({ id: 'AwsSolutions-APIG4', reason });
    }
  }
}
