import { Duration, Validations } from 'aws-cdk-lib';
import * as apigwv1 from 'aws-cdk-lib/aws-apigateway';
import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import {
  HttpIamAuthorizer,
  HttpLambdaAuthorizer,
  HttpLambdaResponseType,
} from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { type HttpMethod, ROUTES, type Route, type RouteAuth } from '../../functions/api/routes.ts';
import { API_GATEWAY } from '../../functions/aws-quotas.ts';
import { LAMBDA_ENV } from '../../functions/config.ts';
import {
  DEFAULT_REQUEST_LIMITS,
  REQUESTS_PER_SECOND,
  type RequestLimits,
} from '../../functions/core/limits.ts';
import { DispatcherFunction } from './function.ts';
import type { DefinedTable } from './table.ts';

/**
 * The stage's default throttle, for all callers together: a ceiling for the whole deployment,
 * half the account's HTTP API quota (the other half is left to the account's other APIs).
 * Each caller has its own, lower limit in the API function (requestLimits), so one partner
 * polling hard is answered 429 alone rather than using up this ceiling for everyone.
 */
export const DEFAULT_STAGE_THROTTLE = {
  rateLimit: API_GATEWAY.accountRatePerSecond / 2,
  burstLimit: API_GATEWAY.accountBurst / 2,
} as const satisfies apigw.ThrottleSettings;

/**
 * The API function's timeout: a long poll's longest wait (MAX_POLL_WAIT_SECONDS, 20 s), the
 * reads around it and a cold start fit, and API Gateway's own limit on its integration
 * (API_GATEWAY.maxIntegrationTimeoutSeconds, 30 s) still answers after it with the function's
 * error rather than its own 504.
 */
export const API_FUNCTION_TIMEOUT_SECONDS = 25;

/**
 * The polling function's reserved concurrency: 200 long polls waiting at once, all partners
 * together (each partner may start LONG_POLLS_PER_WINDOW, 20, every 20 s, so at most 40 wait at
 * once), out of the account's default 1,000 concurrent executions.
 */
export const DEFAULT_POLL_CONCURRENCY = 200;

/** The throttle of each route anyone may call (the OpenAPI document), all callers together. */
export const PUBLIC_ROUTE_THROTTLE = { rateLimit: 10, burstLimit: 20 } as const;

/** The polling function's memory: the least Lambda gives, since it mostly waits. */
export const POLL_FUNCTION_MEMORY_MB = 128;

/**
 * How long a revoked API key keeps working on AWS: API Gateway caches each authorizer answer
 * this long per Authorization header. Short, so a revocation takes effect soon; a partner
 * polling all the time costs one authorizer invocation a minute for it.
 */
export const DEFAULT_AUTHORIZER_CACHE_TTL = Duration.seconds(60);

export interface PartnerApiProps {
  readonly eventsTable: DefinedTable;
  readonly partnersTable: DefinedTable;
  readonly subscriptionsTable: DefinedTable;
  /** Seals and opens the subscriptions' signing secrets. */
  readonly secretsKey: kms.IKey;
  readonly deliveriesTable: DefinedTable;
  /** Where redeliveries, replays and test events a partner asks for are queued (main lane). */
  readonly deliveryQueue: sqs.IQueue;
  /** Where they are queued for a subscription whose endpoint is failing. */
  readonly slowLaneQueue: sqs.IQueue;
  /** Days an event is kept (the API sets its TTL). */
  readonly retentionDays: number;
  /**
   * Serves the ops routes (`lambda: 'ops'` in ROUTES): the ops function (ops-function.ts).
   * Needed when `routes` has any.
   * @default - none
   */
  readonly opsFunction?: lambda.IFunction;
  /**
   * Requests per second of each partner (per API key) and of each producer (per IAM role or
   * user), counted across every instance of the API function.
   * @default DEFAULT_REQUEST_LIMITS
   */
  readonly requestLimits?: RequestLimits;
  /**
   * The routes; admin ones take IAM authorization, partner ones the Lambda authorizer.
   * @default ROUTES
   */
  readonly routes?: readonly Route[];
  /**
   * The stage's default throttle, for all callers together: steady requests per second, and burst.
   * @default DEFAULT_STAGE_THROTTLE
   */
  readonly throttle?: apigw.ThrottleSettings;
  /**
   * How long API Gateway caches an authorizer answer per Authorization header. A revoked API
   * key keeps working this long.
   * @default DEFAULT_AUTHORIZER_CACHE_TTL
   */
  readonly authorizerCacheTtl?: Duration;
  /**
   * Executions the polling function may run at once (its reserved concurrency): long polls
   * waiting, all partners together.
   * @default DEFAULT_POLL_CONCURRENCY
   */
  readonly pollConcurrency?: number;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /**
   * The fixed addresses callbacks leave from, comma-separated (EgressNetwork.egressIps), which
   * `GET /v1/egress-ips` lists for partners to allowlist.
   * @default - none: the route answers that no fixed address is promised
   */
  readonly egressIps?: string;
}

const METHODS: Record<HttpMethod, apigw.HttpMethod> = {
  GET: apigw.HttpMethod.GET,
  POST: apigw.HttpMethod.POST,
  PUT: apigw.HttpMethod.PUT,
  PATCH: apigw.HttpMethod.PATCH,
  DELETE: apigw.HttpMethod.DELETE,
};

/** One JSON line per request: who (partner id or IAM caller), what, how it went. */
const ACCESS_LOG_FORMAT = JSON.stringify({
  requestId: '$context.requestId',
  requestTime: '$context.requestTime',
  ip: '$context.identity.sourceIp',
  userAgent: '$context.identity.userAgent',
  method: '$context.httpMethod',
  path: '$context.path',
  routeKey: '$context.routeKey',
  status: '$context.status',
  protocol: '$context.protocol',
  responseLength: '$context.responseLength',
  latencyMs: '$context.responseLatency',
  integrationLatencyMs: '$context.integrationLatency',
  integrationError: '$context.integrationErrorMessage',
  partnerId: '$context.authorizer.partnerId',
  keyId: '$context.authorizer.keyId',
  authorizerError: '$context.authorizer.error',
  iamCaller: '$context.identity.userArn',
});

/**
 * The HTTP API (API Gateway v2, payload 2.0), its routes made from `ROUTES`: partner routes
 * behind the API-key Lambda authorizer (simple responses, cached per Authorization header),
 * admin routes (publish, partners, and the ops routes, served by the ops function) behind
 * IAM. A `$default` route sends every other request to the API function, which answers 404 or
 * 405 in problem+json. Access logs go to a log group; the stage throttles.
 */
export class PartnerApi extends Construct {
  public readonly api: apigw.HttpApi;
  public readonly stage: apigw.HttpStage;
  public readonly apiFunction: DispatcherFunction;
  public readonly authorizerFunction: DispatcherFunction;
  /** Serves the routes that poll (`lambda: 'poll'` in ROUTES), with little memory: see polling.ts. */
  public readonly pollFunction: DispatcherFunction;
  public readonly accessLogGroup: logs.LogGroup;
  /** One per entry of `routes` (each has one method). */
  public readonly routes: readonly apigw.HttpRoute[];
  /** The admin routes a producer service may be given: publish, partners (not ops). */
  private readonly adminRoutes: readonly apigw.HttpRoute[];
  /** The ops routes: queues, dead letters, subscription health, delivery rates. */
  private readonly opsRoutes: readonly apigw.HttpRoute[];

  constructor(scope: Construct, id: string, props: PartnerApiProps) {
    super(scope, id);
    const routes: readonly Route[] = props.routes ?? ROUTES;
    const keys = routes.map((route) => `${route.method} ${route.path}`);
    if (new Set(keys).size !== keys.length)
      throw new Error(`${id}: routes must be unique: ${keys.join(', ')}`);
    const throttle = props.throttle ?? DEFAULT_STAGE_THROTTLE;
    const limits = props.requestLimits ?? DEFAULT_REQUEST_LIMITS;
    for (const [name, value] of Object.entries(limits)) {
      if (!Number.isInteger(value) || value < REQUESTS_PER_SECOND.min || value > REQUESTS_PER_SECOND.max) {
        throw new Error(
          `${id}: requestLimits.${name} must be a whole number from ${REQUESTS_PER_SECOND.min} to ${REQUESTS_PER_SECOND.max}`,
        );
      }
    }
    const cacheTtl = props.authorizerCacheTtl ?? DEFAULT_AUTHORIZER_CACHE_TTL;
    if (cacheTtl.toSeconds() > 3600) throw new Error(`${id}: authorizerCacheTtl must be at most one hour`);
    if (!Number.isInteger(props.retentionDays) || props.retentionDays < 1) {
      throw new Error(`${id}: retentionDays must be a whole number of days, at least one`);
    }

    this.apiFunction = new DispatcherFunction(this, 'ApiFunction', {
      entry: 'functions/api/lambda.ts',
      // Subscriptions' transformations are evaluated on a worker thread bundled beside it.
      transformations: true,
      description: 'HTTP API: partners, events, subscriptions, deliveries',
      serviceName: 'api',
      timeout: Duration.seconds(API_FUNCTION_TIMEOUT_SECONDS),
      memorySize: 512,
      logRetention: props.logRetention,
      environment: {
        [LAMBDA_ENV.retentionDays]: String(props.retentionDays),
        [LAMBDA_ENV.allowPrivateTargets]: 'false',
        [LAMBDA_ENV.partnerRequestsPerSecond]: String(limits.partnerPerSecond),
        [LAMBDA_ENV.producerRequestsPerSecond]: String(limits.producerPerSecond),
        ...(props.egressIps === undefined ? {} : { [LAMBDA_ENV.egressIps]: props.egressIps }),
      },
    })
      // Events: append (an event with an ordering key is a transaction of its put and its
      // key's counter's update), get, list; the consumers kept beside them (saved, moved,
      // listed, and deleted in a transaction with their count).
      .useTable(props.eventsTable, LAMBDA_ENV.eventsTable, {
        table: [
          'dynamodb:GetItem',
          'dynamodb:PutItem',
          'dynamodb:UpdateItem',
          'dynamodb:DeleteItem',
          'dynamodb:Query',
        ],
      })
      // Partners: create, get; their API keys (each change a transaction of an update and a put
      // or delete; a listing a get and a batch get); the callers' request counts (updates).
      .useTable(props.partnersTable, LAMBDA_ENV.partnersTable, {
        table: [
          'dynamodb:GetItem',
          'dynamodb:BatchGetItem',
          'dynamodb:PutItem',
          'dynamodb:UpdateItem',
          'dynamodb:DeleteItem',
        ],
      })
      // Subscriptions: create, get, put, delete and takeAllowance on the table; list,
      // listActive and the start of a partner's counter query byPartner (never the table).
      .useTable(props.subscriptionsTable, LAMBDA_ENV.subscriptionsTable, {
        table: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
        indexes: { byPartner: ['dynamodb:Query'] },
      })
      // Secrets: sealed when a subscription is created, changed or rotated, opened when read.
      .useSecretsKey(props.secretsKey, ['kms:GenerateDataKey', 'kms:Decrypt'])
      // Deliveries: create, skip and listAttempts on the table; listBySubscription and
      // listByEvent query their index for the page's keys, then read the deliveries in batches.
      .useTable(props.deliveriesTable, LAMBDA_ENV.deliveriesTable, {
        table: ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:Query', 'dynamodb:BatchGetItem'],
        indexes: { bySubscription: ['dynamodb:Query'], byEvent: ['dynamodb:Query'] },
      })
      // SendMessageBatch: redeliveries, replays and tests, to the subscription's lane.
      .useQueue(props.deliveryQueue, LAMBDA_ENV.deliveryQueueUrl, ['sqs:SendMessage'])
      .useQueue(props.slowLaneQueue, LAMBDA_ENV.slowLaneQueueUrl, ['sqs:SendMessage']);

    this.pollFunction = new DispatcherFunction(this, 'PollFunction', {
      entry: 'functions/poll/lambda.ts',
      description: 'HTTP API polling: GET /v1/events, long polls included',
      serviceName: 'poll',
      timeout: Duration.seconds(API_FUNCTION_TIMEOUT_SECONDS),
      // A long poll is billed for its wait by this memory (docs/cost.md, "Long polling").
      memorySize: POLL_FUNCTION_MEMORY_MB,
      // Waiting polls hold executions: cap them, so they never take the account's concurrency
      // from the API, the authorizer and the dispatcher (each partner's share is capped too).
      reservedConcurrentExecutions: props.pollConcurrency ?? DEFAULT_POLL_CONCURRENCY,
      logRetention: props.logRetention,
      environment: {
        [LAMBDA_ENV.retentionDays]: String(props.retentionDays),
        [LAMBDA_ENV.partnerRequestsPerSecond]: String(limits.partnerPerSecond),
        [LAMBDA_ENV.producerRequestsPerSecond]: String(limits.producerPerSecond),
      },
    })
      // Events: list (which puts a hole where an append died, or where TTL took a place a
      // poll reads from), the counter a long poll reads while it waits; a consumer's position.
      .useTable(props.eventsTable, LAMBDA_ENV.eventsTable, {
        table: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query'],
      })
      // The callers' request counts (the rate limiter's updates), shared with the API function.
      .useTable(props.partnersTable, LAMBDA_ENV.partnersTable, { table: ['dynamodb:UpdateItem'] });

    this.authorizerFunction = new DispatcherFunction(this, 'AuthorizerFunction', {
      entry: 'functions/authorizer/lambda.ts',
      description: 'Partner API authorizer: Bearer API key to partner id',
      serviceName: 'authorizer',
      timeout: Duration.seconds(5),
      logRetention: props.logRetention,
    })
      // findApiKey: a get of the key's item; touchApiKey: its "last used", at most every 5 minutes.
      .useTable(props.partnersTable, LAMBDA_ENV.partnersTable, {
        table: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
      });

    const authorizers: Record<RouteAuth, apigw.IHttpRouteAuthorizer> = {
      admin: new HttpIamAuthorizer(),
      partner: new HttpLambdaAuthorizer('PartnerApiKey', this.authorizerFunction, {
        responseTypes: [HttpLambdaResponseType.SIMPLE],
        identitySource: ['$request.header.Authorization'],
        resultsCacheTtl: cacheTtl,
      }),
      public: new apigw.HttpNoneAuthorizer(),
    };
    // One invoke permission for the whole API instead of one per route: every route goes to
    // this one function anyway.
    const integration = new HttpLambdaIntegration('Api', this.apiFunction, {
      payloadFormatVersion: apigw.PayloadFormatVersion.VERSION_2_0,
      scopePermissionToRoute: false,
    });
    if (props.opsFunction === undefined && routes.some((route) => route.lambda === 'ops')) {
      throw new Error(`${id}: routes with lambda 'ops' need an opsFunction`);
    }
    const integrations: Record<NonNullable<Route['lambda']>, HttpLambdaIntegration | undefined> = {
      api: integration,
      poll: new HttpLambdaIntegration('Poll', this.pollFunction, {
        payloadFormatVersion: apigw.PayloadFormatVersion.VERSION_2_0,
        scopePermissionToRoute: false,
      }),
      ops:
        props.opsFunction === undefined
          ? undefined
          : new HttpLambdaIntegration('Ops', props.opsFunction, {
              payloadFormatVersion: apigw.PayloadFormatVersion.VERSION_2_0,
              scopePermissionToRoute: false,
            }),
    };

    this.api = new apigw.HttpApi(this, 'HttpApi', {
      description:
        'Webhook dispatcher: partners poll events and manage subscriptions; the platform publishes',
      createDefaultStage: false,
      defaultIntegration: integration,
    });
    // The route resource itself, not the route construct: that also holds the integration
    // and the invoke permission.
    const defaultRoute = this.api.node.tryFindChild('DefaultRoute')?.node.defaultChild;
    if (defaultRoute === undefined) throw new Error(`${id}: the HTTP API has no $default route`);
    Validations.of(defaultRoute).acknowledge({
      id: 'AwsSolutions-APIG4',
      reason:
        'The $default route only catches requests no other route matches, so the API function can answer ' +
        "404 or 405 (with Allow) in problem+json instead of API Gateway's bare 404. It grants nothing: the " +
        "function serves an operation only with the authorizer context of that operation's route (the " +
        'partner id from the Lambda authorizer, or an IAM caller), so a request that reaches an operation ' +
        'through $default (e.g. a trailing slash) gets 401.',
    });

    this.routes = routes.map((route) => {
      const routeIntegration = integrations[route.lambda ?? 'api'];
      if (routeIntegration === undefined)
        throw new Error(`${id}: no function for ${route.method} ${route.path}`);
      const [created] = this.api.addRoutes({
        path: route.path,
        methods: [METHODS[route.method]],
        integration: routeIntegration,
        authorizer: authorizers[route.auth],
      });
      if (!created) throw new Error(`${id}: no route created for ${route.method} ${route.path}`);
      if (route.auth === 'public') {
        const resource = created.node.defaultChild;
        if (resource === undefined) throw new Error(`${id}: route ${route.path} has no resource`);
        Validations.of(resource).acknowledge({
          id: 'AwsSolutions-APIG4',
          reason:
            `${route.method} ${route.path} serves the API's own OpenAPI description, the same document ` +
            'published in the repository: no partner data, nothing to change. Partners and their tools ' +
            'read it before they hold a key.',
        });
      }
      return created;
    });
    const admin = (index: number, ops: boolean) =>
      routes[index]?.auth === 'admin' && (routes[index]?.lambda === 'ops') === ops;
    this.adminRoutes = this.routes.filter((_, index) => admin(index, false));
    this.opsRoutes = this.routes.filter((_, index) => admin(index, true));

    this.accessLogGroup = new logs.LogGroup(this, 'AccessLogs', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
    });
    this.stage = this.api.addStage('DefaultStage', {
      stageName: '$default',
      autoDeploy: true,
      throttle,
      accessLogSettings: {
        destination: new apigw.LogGroupLogDestination(this.accessLogGroup),
        format: apigwv1.AccessLogFormat.custom(ACCESS_LOG_FORMAT),
      },
    });
    // Routes anyone may call are throttled apart, so they cannot use up the stage's rate.
    const publicRoutes = routes.filter((route) => route.auth === 'public');
    if (publicRoutes.length > 0) {
      const cfnStage = this.stage.node.defaultChild as apigw.CfnStage;
      cfnStage.addPropertyOverride(
        'RouteSettings',
        Object.fromEntries(
          publicRoutes.map((route) => [
            `${route.method} ${route.path}`,
            {
              ThrottlingRateLimit: PUBLIC_ROUTE_THROTTLE.rateLimit,
              ThrottlingBurstLimit: PUBLIC_ROUTE_THROTTLE.burstLimit,
            },
          ]),
        ),
      );
    }
  }

  /** The API's base URL (the `$default` stage's). */
  public get url(): string {
    return this.stage.url;
  }

  /**
   * Lets `grantee` (a producer service's role) call the admin routes: publish, partners. Not
   * the ops routes, which move and purge dead letters: see grantOpsInvoke.
   */
  public grantAdminInvoke(grantee: iam.IGrantable): void {
    for (const route of this.adminRoutes) route.grantInvoke(grantee);
  }

  /**
   * Lets `grantee` (an operator's role) call the ops routes (`/v1/admin/…`): queues, dead
   * letters and their redrives and purges, subscription health, delivery rates.
   */
  public grantOpsInvoke(grantee: iam.IGrantable): void {
    for (const route of this.opsRoutes) route.grantInvoke(grantee);
  }
}
