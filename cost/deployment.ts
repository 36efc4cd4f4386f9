/**
 * What the cost model needs to know of the deployment, read from the synthesized templates of
 * the CDK app (the same synth `cdk synth` runs, without bundling): each function's memory,
 * architecture, log level and environment; which queue feeds which function and in batches of
 * how many; the pipe's batch size, filter and transformation; the tables' keys, indexes and
 * projections; the pipe's target queue, the sweeper's schedule, the alarms and dashboards; the
 * WebSocket API's routes and the function that serves them.
 * Nothing here is written down twice: change the stack and the cost follows.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { TABLES } from '../functions/adapters/aws/tables.ts';
import type { EventPattern } from '../functions/core/patterns.ts';
import { PROJECT_ROOT } from '../lib/constructs/function.ts';
import { synthesize } from '../test/cdk/fixture.ts';

type Json = Record<string, unknown>;

export type EnvValue =
  | { readonly kind: 'literal'; readonly value: string }
  | { readonly kind: 'table'; readonly table: string }
  | { readonly kind: 'queue'; readonly queue: string }
  | { readonly kind: 'key'; readonly key: string }
  /** The public IPs of these Elastic IPs (logical ids), comma-separated. */
  | { readonly kind: 'publicIps'; readonly addresses: readonly string[] }
  /**
   * A URL the template joins from text and references (an API's `wss://` or `https://`
   * address): `{ref}` parts name a resource's logical id or a pseudo parameter (AWS::Region).
   */
  | { readonly kind: 'url'; readonly parts: readonly (string | { readonly ref: string })[] };

export interface FunctionSpec {
  readonly logicalId: string;
  /** POWERTOOLS_SERVICE_NAME: api, authorizer, fanout, dispatcher, sweeper. */
  readonly service: string;
  /** The entry file, `functions/<service>/lambda.ts`. */
  readonly entry: string;
  readonly memoryMb: number;
  readonly architecture: 'arm64' | 'x86_64';
  /** Lambda's own START/END/REPORT lines are written only at INFO or DEBUG. */
  readonly systemLogLevel: string;
  readonly environment: Readonly<Record<string, EnvValue>>;
}

export interface QueueSpec {
  readonly logicalId: string;
  /** A short name: the queue's name after the stack's, else its logical id. */
  readonly name: string;
  /** The function an event source mapping feeds from this queue, and its batch size. */
  readonly consumer?: { readonly service: string; readonly batchSize: number };
}

export interface KeyElement {
  readonly name: string;
  readonly type: 'HASH' | 'RANGE';
}

export interface IndexSpec {
  readonly name: string;
  readonly keys: readonly KeyElement[];
  readonly projection: 'ALL' | 'KEYS_ONLY' | 'INCLUDE';
  readonly nonKeyAttributes: readonly string[];
}

export interface TableSpec {
  readonly logicalId: string;
  readonly keys: readonly KeyElement[];
  readonly attributeTypes: Readonly<Record<string, 'S' | 'N' | 'B'>>;
  readonly indexes: readonly IndexSpec[];
  readonly streamViewType?: string;
  readonly pointInTimeRecovery: boolean;
  readonly ttlAttribute?: string;
}

export interface PipeSpec {
  readonly sourceTable: string;
  readonly batchSize: number;
  readonly filters: readonly EventPattern[];
  readonly inputTemplate: string;
  /** The queue it sends each event to (logical id), in batches of up to `batchSize`. */
  readonly targetQueue: string;
}

/** A WebSocket API: its stage, and the function each route invokes. */
export interface WebSocketSpec {
  readonly stage: string;
  /** Route key (`$connect`, `$disconnect`, `$default`, `ping`…) → the service of the function it invokes. */
  readonly routes: Readonly<Record<string, string>>;
  /**
   * Where in a frame's JSON its route's key is (the route selection expression
   * `$request.body.type` is `['type']`): a frame whose value there is no route's goes to `$default`.
   */
  readonly routeSelection: readonly string[];
}

/** The network of fixed egress addresses (`-c staticEgress=true`), when the stack has one. */
export interface EgressSpec {
  readonly natGateways: number;
  /** Elastic IPs, each a public IPv4 address billed by the hour. */
  readonly publicIpv4Addresses: number;
  /** Interface endpoints times the subnets (zones) each is in, each billed by the hour. */
  readonly interfaceEndpointZones: number;
  /** Services of the gateway endpoints (free), as `com.amazonaws.<region>.<service>` ends. */
  readonly gatewayEndpoints: readonly string[];
  /** The services (POWERTOOLS_SERVICE_NAME) of the functions attached to the VPC. */
  readonly attachedServices: readonly string[];
  /** The traffic each flow log records: ALL, ACCEPT or REJECT. */
  readonly flowLogTraffic: readonly string[];
}

export interface Deployment {
  readonly functions: readonly FunctionSpec[];
  readonly queues: readonly QueueSpec[];
  readonly tables: readonly TableSpec[];
  readonly pipe: PipeSpec;
  /** Scheduled invocations: the function and how many seconds apart. */
  readonly schedules: readonly { readonly service: string; readonly everySeconds: number }[];
  /** Metrics the alarms evaluate, summed over every alarm. */
  readonly alarmMetrics: number;
  /** The KMS keys (logical ids in the data stack), each billed by the month. */
  readonly keys: readonly string[];
  readonly dashboards: number;
  /** @default - none: the functions reach the internet from Lambda's own addresses */
  readonly egress?: EgressSpec;
  /** The WebSocket API of connection subscriptions. @default - none */
  readonly webSocket?: WebSocketSpec;
}

function isJson(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function field(object: unknown, key: string): unknown {
  return isJson(object) ? object[key] : undefined;
}

function text(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new Error(`${what}: expected a string, got ${JSON.stringify(value)}`);
  return value;
}

function count(value: unknown, what: string): number {
  if (typeof value !== 'number') throw new Error(`${what}: expected a number, got ${JSON.stringify(value)}`);
  return value;
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function pattern(value: unknown, what: string): EventPattern {
  const parsed: unknown = typeof value === 'string' ? JSON.parse(value) : value;
  if (!isJson(parsed)) throw new Error(`${what}: not an event pattern`);
  return parsed as EventPattern;
}

/** Resources of one type in a template, as [logical id, properties]. */
function resources(template: Json, type: string): [string, Json][] {
  const all = field(template, 'Resources');
  if (!isJson(all)) return [];
  return Object.entries(all).flatMap(([id, resource]) =>
    field(resource, 'Type') === type
      ? [[id, isJson(field(resource, 'Properties')) ? (field(resource, 'Properties') as Json) : {}]]
      : [],
  );
}

/** The logical id a `{Ref}` or `{Fn::GetAtt}` names, or the data stack resource behind a cross-stack reference. */
function referenced(value: unknown, dataOutputs: Json): string | undefined {
  const ref = field(value, 'Ref');
  if (typeof ref === 'string') return ref;
  const getAtt = field(value, 'Fn::GetAtt');
  if (Array.isArray(getAtt) && typeof getAtt[0] === 'string') return getAtt[0];
  const output = field(field(value, 'Fn::GetStackOutput'), 'OutputName');
  if (typeof output === 'string') return referenced(field(dataOutputs[output], 'Value'), {});
  const imported = field(value, 'Fn::ImportValue');
  if (imported !== undefined) throw new Error('Fn::ImportValue references are not resolved here');
  return undefined;
}

/** The Elastic IPs whose public IPs a value joins with commas, or undefined if it is not such a list. */
function publicIpsOf(value: unknown, service: Json): string[] | undefined {
  const join = field(value, 'Fn::Join');
  if (!Array.isArray(join) || join[0] !== ',' || !Array.isArray(join[1])) return undefined;
  const eips = new Set(resources(service, 'AWS::EC2::EIP').map(([id]) => id));
  const ids = join[1].map((part: unknown) => {
    const getAtt = field(part, 'Fn::GetAtt');
    return Array.isArray(getAtt) && getAtt[1] === 'PublicIp' && typeof getAtt[0] === 'string'
      ? getAtt[0]
      : undefined;
  });
  return ids.every((id): id is string => id !== undefined && eips.has(id)) ? ids : undefined;
}

/**
 * The parts of a URL the template joins (`Fn::Join` with no separator) from text and `Ref`s, or
 * undefined if it is not one.
 */
function urlOf(value: unknown): (string | { ref: string })[] | undefined {
  const join = field(value, 'Fn::Join');
  if (!Array.isArray(join) || join[0] !== '' || !Array.isArray(join[1])) return undefined;
  const parts = join[1].map((part: unknown): string | { ref: string } | undefined => {
    if (typeof part === 'string') return part;
    const ref = field(part, 'Ref');
    return typeof ref === 'string' ? { ref } : undefined;
  });
  const [first] = parts;
  if (typeof first !== 'string' || !/^(https|wss):\/\//.test(first)) return undefined;
  return parts.every((part) => part !== undefined) ? parts : undefined;
}

/** The VPC the functions are attached to, if any: what it bills by the hour, and who is in it. */
function readEgress(service: Json, functions: readonly FunctionSpec[]): EgressSpec | undefined {
  const natGateways = resources(service, 'AWS::EC2::NatGateway').length;
  const attached = resources(service, 'AWS::Lambda::Function').filter(
    ([, properties]) => properties.VpcConfig !== undefined,
  );
  if (natGateways === 0 && attached.length === 0) return undefined;
  const byLogicalId = new Map(functions.map((fn) => [fn.logicalId, fn.service]));
  const endpoints = resources(service, 'AWS::EC2::VPCEndpoint');
  return {
    natGateways,
    publicIpv4Addresses: resources(service, 'AWS::EC2::EIP').length,
    interfaceEndpointZones: endpoints
      .filter(([, properties]) => properties.VpcEndpointType === 'Interface')
      .reduce((sum, [, properties]) => sum + list(properties.SubnetIds).length, 0),
    gatewayEndpoints: endpoints
      .filter(([, properties]) => properties.VpcEndpointType === 'Gateway')
      .map(([id, properties]) => {
        const parts = list(field(properties.ServiceName, 'Fn::Join')).at(1);
        const last = list(parts).at(-1);
        return typeof last === 'string' ? last.replace(/^\./, '') : id;
      }),
    attachedServices: attached.flatMap(([id]) => {
      const name = byLogicalId.get(id);
      return name === undefined ? [] : [name];
    }),
    flowLogTraffic: resources(service, 'AWS::EC2::FlowLog').map(([, properties]) =>
      String(properties.TrafficType),
    ),
  };
}

function keyElements(value: unknown, what: string): KeyElement[] {
  return list(value).map((element) => {
    const type = field(element, 'KeyType');
    if (type !== 'HASH' && type !== 'RANGE') throw new Error(`${what}: bad KeyType ${String(type)}`);
    return { name: text(field(element, 'AttributeName'), what), type };
  });
}

function readTables(data: Json): TableSpec[] {
  return resources(data, 'AWS::DynamoDB::Table').map(([logicalId, properties]) => {
    const attributeTypes: Record<string, 'S' | 'N' | 'B'> = {};
    for (const definition of list(properties.AttributeDefinitions)) {
      const type = field(definition, 'AttributeType');
      if (type !== 'S' && type !== 'N' && type !== 'B') throw new Error(`${logicalId}: bad AttributeType`);
      attributeTypes[text(field(definition, 'AttributeName'), logicalId)] = type;
    }
    const indexes = list(properties.GlobalSecondaryIndexes).map((index): IndexSpec => {
      const projection = field(field(index, 'Projection'), 'ProjectionType') ?? 'ALL';
      if (projection !== 'ALL' && projection !== 'KEYS_ONLY' && projection !== 'INCLUDE') {
        throw new Error(`${logicalId}: bad ProjectionType ${String(projection)}`);
      }
      return {
        name: text(field(index, 'IndexName'), logicalId),
        keys: keyElements(field(index, 'KeySchema'), logicalId),
        projection,
        nonKeyAttributes: list(field(field(index, 'Projection'), 'NonKeyAttributes')).map((a) =>
          text(a, logicalId),
        ),
      };
    });
    const streamViewType = field(properties.StreamSpecification, 'StreamViewType');
    const ttl = properties.TimeToLiveSpecification;
    return {
      logicalId,
      keys: keyElements(properties.KeySchema, logicalId),
      attributeTypes,
      indexes,
      ...(typeof streamViewType === 'string' ? { streamViewType } : {}),
      pointInTimeRecovery:
        field(properties.PointInTimeRecoverySpecification, 'PointInTimeRecoveryEnabled') === true,
      ...(field(ttl, 'Enabled') === true
        ? { ttlAttribute: text(field(ttl, 'AttributeName'), logicalId) }
        : {}),
    };
  });
}

function readFunctions(
  service: Json,
  dataOutputs: Json,
  tables: ReadonlySet<string>,
  keys: ReadonlySet<string>,
): FunctionSpec[] {
  return resources(service, 'AWS::Lambda::Function').flatMap(([logicalId, properties]): FunctionSpec[] => {
    const variables = field(properties.Environment, 'Variables');
    const name = field(variables, 'POWERTOOLS_SERVICE_NAME');
    // Functions CDK adds on its own (log retention, custom resources) are not the dispatcher's.
    if (typeof name !== 'string') return [];
    const environment: Record<string, EnvValue> = {};
    for (const [key, value] of Object.entries(isJson(variables) ? variables : {})) {
      if (typeof value === 'string') {
        environment[key] = { kind: 'literal', value };
        continue;
      }
      const addresses = publicIpsOf(value, service);
      if (addresses !== undefined) {
        environment[key] = { kind: 'publicIps', addresses };
        continue;
      }
      const url = urlOf(value);
      if (url !== undefined) {
        environment[key] = { kind: 'url', parts: url };
        continue;
      }
      const target = referenced(value, dataOutputs);
      if (target === undefined) throw new Error(`${logicalId}: cannot resolve ${key}`);
      environment[key] = tables.has(target)
        ? { kind: 'table', table: target }
        : keys.has(target)
          ? { kind: 'key', key: target }
          : { kind: 'queue', queue: target };
    }
    const architecture = list(properties.Architectures)[0] ?? 'x86_64';
    if (architecture !== 'arm64' && architecture !== 'x86_64')
      throw new Error(`${logicalId}: bad architecture`);
    const entry = `functions/${name}/lambda.ts`;
    if (!existsSync(join(PROJECT_ROOT, entry)))
      throw new Error(`${logicalId}: no entry ${entry} for service ${name}`);
    return [
      {
        logicalId,
        service: name,
        entry,
        memoryMb: count(properties.MemorySize ?? 128, `${logicalId} MemorySize`),
        architecture,
        systemLogLevel: String(field(properties.LoggingConfig, 'SystemLogLevel') ?? 'INFO'),
        environment,
      },
    ];
  });
}

function readQueues(service: Json, functions: readonly FunctionSpec[]): QueueSpec[] {
  const byLogicalId = new Map(functions.map((fn) => [fn.logicalId, fn.service]));
  const consumers = new Map<string, { service: string; batchSize: number }>();
  for (const [id, properties] of resources(service, 'AWS::Lambda::EventSourceMapping')) {
    const queue = referenced(properties.EventSourceArn, {});
    const fn = byLogicalId.get(referenced(properties.FunctionName, {}) ?? '');
    if (queue === undefined || fn === undefined) continue;
    consumers.set(queue, { service: fn, batchSize: count(properties.BatchSize ?? 10, `${id} BatchSize`) });
  }
  return resources(service, 'AWS::SQS::Queue').map(([logicalId, properties]) => {
    const consumer = consumers.get(logicalId);
    const queueName = typeof properties.QueueName === 'string' ? properties.QueueName : undefined;
    // Queue names are `<stack name>-<queue>` (delivery-pipeline.ts).
    const name = queueName?.replace(/^.*-Service-/, '') ?? logicalId;
    return consumer === undefined ? { logicalId, name } : { logicalId, name, consumer };
  });
}

function readPipe(service: Json, dataOutputs: Json): PipeSpec {
  const pipes = resources(service, 'AWS::Pipes::Pipe');
  const [pipe] = pipes;
  if (pipe === undefined || pipes.length > 1) throw new Error(`expected one pipe, found ${pipes.length}`);
  const [id, properties] = pipe;
  const stream = field(properties.SourceParameters, 'DynamoDBStreamParameters');
  const target = properties.TargetParameters;
  const sourceTable = referenced(properties.Source, dataOutputs);
  if (sourceTable === undefined) throw new Error(`${id}: cannot resolve its source`);
  const targetQueue = referenced(properties.Target, dataOutputs);
  if (targetQueue === undefined || !resources(service, 'AWS::SQS::Queue').some(([q]) => q === targetQueue)) {
    throw new Error(`${id}: its target is not a queue of the stack`);
  }
  return {
    sourceTable,
    batchSize: count(field(stream, 'BatchSize') ?? 1, `${id} BatchSize`),
    filters: list(field(field(properties.SourceParameters, 'FilterCriteria'), 'Filters')).map((filter) =>
      pattern(field(filter, 'Pattern'), `${id} filter`),
    ),
    inputTemplate: text(field(target, 'InputTemplate'), `${id} InputTemplate`),
    targetQueue,
  };
}

/** `rate(1 minute)`, `rate(5 minutes)`, `rate(1 hour)`… in seconds. */
export function rateSeconds(expression: string): number {
  const match = /^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$/.exec(expression);
  if (match === null) throw new Error(`unsupported schedule ${expression}`);
  const unit = match[2]?.replace(/s$/, '');
  const seconds = unit === 'minute' ? 60 : unit === 'hour' ? 3600 : 86_400;
  return Number(match[1]) * seconds;
}

/** The scheduled rules: which function each invokes, how many seconds apart. */
function readSchedules(service: Json, functions: readonly FunctionSpec[]) {
  const byLogicalId = new Map(functions.map((fn) => [fn.logicalId, fn.service]));
  const schedules: { service: string; everySeconds: number }[] = [];
  for (const [logicalId, properties] of resources(service, 'AWS::Events::Rule')) {
    if (typeof properties.ScheduleExpression !== 'string') {
      throw new Error(`${logicalId}: only scheduled rules are expected (the pipe feeds the fan-out queue)`);
    }
    const everySeconds = rateSeconds(properties.ScheduleExpression);
    for (const target of list(properties.Targets).map((t) => referenced(field(t, 'Arn'), {}) ?? '')) {
      const fn = byLogicalId.get(target);
      if (fn !== undefined) schedules.push({ service: fn, everySeconds });
    }
  }
  return schedules;
}

/** The WebSocket API, if the stack has one: its stage, and which function each route invokes. */
function readWebSocket(service: Json, functions: readonly FunctionSpec[]): WebSocketSpec | undefined {
  const apis = resources(service, 'AWS::ApiGatewayV2::Api').filter(
    ([, properties]) => properties.ProtocolType === 'WEBSOCKET',
  );
  const [api] = apis;
  if (api === undefined) return undefined;
  if (apis.length > 1) throw new Error(`expected one WebSocket API, found ${apis.length}`);
  const [apiId] = api;
  const ofApi = (type: string) =>
    resources(service, type).filter(([, properties]) => referenced(properties.ApiId, {}) === apiId);
  const byLogicalId = new Map(functions.map((fn) => [fn.logicalId, fn.service]));
  const integrations = new Map(
    ofApi('AWS::ApiGatewayV2::Integration').map(([id, properties]) => {
      const parts = list(list(field(properties.IntegrationUri, 'Fn::Join')).at(1));
      const fn = parts
        .map((part) => referenced(part, {}))
        .find((ref) => ref !== undefined && byLogicalId.has(ref));
      return [id, fn === undefined ? undefined : byLogicalId.get(fn)] as const;
    }),
  );
  const routes: Record<string, string> = {};
  for (const [id, properties] of ofApi('AWS::ApiGatewayV2::Route')) {
    const target = list(list(field(properties.Target, 'Fn::Join')).at(1)).at(-1);
    const integration = referenced(target, {});
    const fn = integration === undefined ? undefined : integrations.get(integration);
    if (fn === undefined) throw new Error(`${id}: its route invokes no function of the stack`);
    routes[text(properties.RouteKey, `${id} RouteKey`)] = fn;
  }
  const stages = ofApi('AWS::ApiGatewayV2::Stage');
  const [stage] = stages;
  if (stage === undefined || stages.length > 1)
    throw new Error(`${apiId}: expected one stage, found ${stages.length}`);
  const selection = text(api[1].RouteSelectionExpression, `${apiId} RouteSelectionExpression`);
  const path = /^\$request\.body\.([\w.]+)$/.exec(selection)?.[1];
  if (path === undefined) throw new Error(`${apiId}: unsupported route selection ${selection}`);
  return {
    stage: text(stage[1].StageName, `${stage[0]} StageName`),
    routes,
    routeSelection: path.split('.'),
  };
}

function alarmMetrics(service: Json): number {
  return resources(service, 'AWS::CloudWatch::Alarm').reduce((sum, [, properties]) => {
    // A metric-math alarm is billed per metric it reads.
    const metrics = list(properties.Metrics).filter((m) => field(m, 'MetricStat') !== undefined);
    return sum + Math.max(1, metrics.length);
  }, 0);
}

/** Reads the deployment from the two templates (as `Template.toJSON()` gives them). */
export function readDeployment(data: Json, service: Json): Deployment {
  const dataOutputs = isJson(data.Outputs) ? data.Outputs : {};
  // The data stack's tables, and the service stack's own (the connections table).
  const tables = [...readTables(data), ...readTables(service)];
  const keys = resources(data, 'AWS::KMS::Key').map(([logicalId]) => logicalId);
  const functions = readFunctions(
    service,
    dataOutputs,
    new Set(tables.map((t) => t.logicalId)),
    new Set(keys),
  );
  const schedules = readSchedules(service, functions);
  const egress = readEgress(service, functions);
  const webSocket = readWebSocket(service, functions);
  return {
    functions,
    queues: readQueues(service, functions),
    tables,
    pipe: readPipe(service, dataOutputs),
    schedules,
    keys,
    alarmMetrics: alarmMetrics(service),
    dashboards: resources(service, 'AWS::CloudWatch::Dashboard').length,
    ...(egress === undefined ? {} : { egress }),
    ...(webSocket === undefined ? {} : { webSocket }),
  };
}

/** Synthesizes the app (cdk.json's context, no bundling) and reads its deployment. */
export function synthesizeDeployment(context: Readonly<Record<string, unknown>> = {}): Deployment {
  const synthesized = synthesize({ context });
  try {
    return readDeployment(synthesized.data.toJSON(), synthesized.service.toJSON());
  } finally {
    rmSync(synthesized.assembly.directory, { recursive: true, force: true });
  }
}

/** The function of a service (api, fanout, …). */
export function functionOf(deployment: Deployment, service: string): FunctionSpec {
  const fn = deployment.functions.find((f) => f.service === service);
  if (fn === undefined) throw new Error(`the deployment has no ${service} function`);
  return fn;
}

/**
 * The deployment with each table's index projections as its definition in
 * functions/adapters/aws/tables.ts asks (a table is matched to its definition by its key and
 * index names): what the cost would be once the stack builds the indexes that way.
 */
export function withDefinitionProjections(deployment: Deployment): Deployment {
  return {
    ...deployment,
    tables: deployment.tables.map((table) => {
      const definition = TABLES.find(
        (d) =>
          d.partitionKey.name === table.keys.find((k) => k.type === 'HASH')?.name &&
          (d.sortKey?.name ?? undefined) === table.keys.find((k) => k.type === 'RANGE')?.name &&
          d.globalIndexes.map((i) => i.indexName).join() === table.indexes.map((i) => i.name).join(),
      );
      if (definition === undefined) return table;
      return {
        ...table,
        indexes: table.indexes.map((index) => ({
          ...index,
          projection: definition.globalIndexes.find((i) => i.indexName === index.name)?.projection ?? 'ALL',
          nonKeyAttributes: [],
        })),
      };
    }),
  };
}
