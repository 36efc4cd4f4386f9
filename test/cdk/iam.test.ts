/**
 * Least privilege: every role's policy, action by action and resource by resource, against
 * what the code it runs calls.
 *
 * GRANTS states each function's whole policy. Its DynamoDB and SQS lines are the calls of the
 * adapter methods the function's use cases reach (the comments at each `useTable`/`useQueue`
 * say which); the other lines are its log group and the statements its SQS event sources add.
 * Two checks tie the grants to the code:
 * - ADAPTER_CALLS pins what each file of functions/adapters/aws sends to AWS, read from the
 *   source: a new SDK call fails here until it is pinned and the grants of the functions that
 *   reach it are reviewed;
 * - every DynamoDB, SQS and API Gateway management grant must be a call of an adapter the
 *   function's lambda.ts wires to that very table, index, queue or WebSocket API: a grant
 *   without a call fails.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import { ENCRYPTION_CONTEXT } from '../../functions/adapters/aws/kms-cipher.ts';
import { LAMBDA_ENV } from '../../functions/config.ts';
import { CONNECTION_STAGE_NAME } from '../../lib/constructs/connection-api.ts';
import { PROJECT_ROOT } from '../../lib/constructs/function.ts';
import { logicalIdOf, propertiesOf, resourcesOfType, type Synthesized, synthesize } from './fixture.ts';

let synth: Synthesized;
beforeAll(() => {
  synth = synthesize();
});

type FunctionName =
  | 'api'
  | 'authorizer'
  | 'poll'
  | 'fanout'
  | 'dispatcher'
  | 'sweeper'
  | 'recovery'
  | 'ops'
  | 'connections';

/** Resources by the names GRANTS uses. */
type Grants = Readonly<Record<string, readonly string[]>>;

const LOGS = ['logs:CreateLogStream', 'logs:PutLogEvents'];
/**
 * What an SQS event source adds for the queue it consumes (CDK's grantConsumeMessages). Lambda
 * itself needs ReceiveMessage, DeleteMessage and GetQueueAttributes; the function's code calls
 * none of them (it reports failed records in its answer instead of deleting or hiding them).
 */
const CONSUME = [
  'sqs:ChangeMessageVisibility',
  'sqs:DeleteMessage',
  'sqs:GetQueueAttributes',
  'sqs:GetQueueUrl',
  'sqs:ReceiveMessage',
];

/** What the ops function does with a work queue: its depths; a redrive's sends (a move task's, or by hand). */
const OPS_WORK_QUEUE = ['sqs:GetQueueAttributes', 'sqs:SendMessage'];
/**
 * What it does with a dead-letter queue: its depths, a peek (receive, then visible again), a
 * move by hand (receive, delete), a move task (started, listed, cancelled; SQS also checks
 * ReceiveMessage, DeleteMessage and GetQueueAttributes on its source), a purge.
 */
const OPS_DEAD_LETTER_QUEUE = [
  'sqs:GetQueueAttributes',
  'sqs:ReceiveMessage',
  'sqs:ChangeMessageVisibility',
  'sqs:DeleteMessage',
  'sqs:PurgeQueue',
  'sqs:StartMessageMoveTask',
  'sqs:ListMessageMoveTasks',
  'sqs:CancelMessageMoveTask',
];

/**
 * The connections WebSocket API's management calls on its stage, as GRANTS names them: POST is
 * PostToConnection, DELETE DeleteConnection (execute-api:ManageConnections, on any connection).
 */
const MANAGE = {
  POST: `connections api/${CONNECTION_STAGE_NAME}/POST/@connections/*`,
  DELETE: `connections api/${CONNECTION_STAGE_NAME}/DELETE/@connections/*`,
} as const;
const MANAGE_CONNECTIONS = ['execute-api:ManageConnections'];

/** Each function's whole policy: resource → actions. */
const GRANTS: Record<FunctionName, Grants> = {
  api: {
    'api logs': LOGS,
    events: [
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
      'dynamodb:DeleteItem',
      'dynamodb:Query',
    ],
    partners: [
      'dynamodb:GetItem',
      'dynamodb:BatchGetItem',
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
      'dynamodb:DeleteItem',
    ],
    subscriptions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
    'subscriptions/index/byPartner': ['dynamodb:Query'],
    deliveries: ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:Query', 'dynamodb:BatchGetItem'],
    'deliveries/index/bySubscription': ['dynamodb:Query'],
    'deliveries/index/byEvent': ['dynamodb:Query'],
    delivery: ['sqs:SendMessage'],
    'slow-lane': ['sqs:SendMessage'],
    'secrets key': ['kms:GenerateDataKey', 'kms:Decrypt'],
    // A revoked key's connections: listed, closed, forgotten. It never posts down one.
    connections: ['dynamodb:Query', 'dynamodb:DeleteItem'],
    [MANAGE.DELETE]: MANAGE_CONNECTIONS,
  },
  authorizer: {
    'authorizer logs': LOGS,
    partners: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
  },
  poll: {
    'poll logs': LOGS,
    events: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query'],
    partners: ['dynamodb:UpdateItem'],
  },
  fanout: {
    'fanout logs': LOGS,
    // An event's payload, for a subscription's filter.
    events: ['dynamodb:GetItem'],
    'subscriptions/index/byPartner': ['dynamodb:Query'],
    // Ordering keys' gates and parked events, ordered subscriptions' lines too: a gate moved (an
    // update), a parked event deleted, a line's first entry queried, a head claimed (a
    // transaction checking its entry).
    deliveries: [
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
      'dynamodb:DeleteItem',
      'dynamodb:Query',
      'dynamodb:ConditionCheckItem',
    ],
    delivery: ['sqs:SendMessage'],
    'slow-lane': ['sqs:SendMessage'],
    // A parked event is queued again on the queue it came from.
    fanout: ['sqs:SendMessage', ...CONSUME],
    'secrets key': ['kms:Decrypt'],
  },
  dispatcher: {
    'dispatcher logs': LOGS,
    events: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
    subscriptions: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
    // The parked tries of connection subscriptions too: parked (a put), taken back (a claim, a
    // delete); and ordered subscriptions' lines: read (a query of the first entry), a head
    // claimed (a transaction checking its entry), a try taken and given back (updates), an
    // ended delivery's entry and head deleted.
    deliveries: [
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
      'dynamodb:DeleteItem',
      'dynamodb:BatchWriteItem',
      'dynamodb:Query',
      'dynamodb:ConditionCheckItem',
    ],
    delivery: ['sqs:SendMessage', ...CONSUME],
    'slow-lane': ['sqs:SendMessage', ...CONSUME],
    'delivery-dlq': ['sqs:SendMessage'],
    'secrets key': ['kms:Decrypt'],
    // A subscription's connections (a query), an answer (a get), now and then with whether its
    // connection is still there (a batch get), a gone or silent one forgotten; tries posted,
    // dead connections closed.
    connections: ['dynamodb:Query', 'dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:DeleteItem'],
    [MANAGE.POST]: MANAGE_CONNECTIONS,
    [MANAGE.DELETE]: MANAGE_CONNECTIONS,
  },
  sweeper: {
    'sweeper logs': LOGS,
    deliveries: ['dynamodb:Query', 'dynamodb:BatchWriteItem'],
    delivery: ['sqs:SendMessage'],
    'slow-lane': ['sqs:SendMessage'],
  },
  recovery: {
    'recovery logs': LOGS,
    events: ['dynamodb:Scan'],
    fanout: ['sqs:SendMessage'],
    'pipe-dlq': ['sqs:ReceiveMessage', 'sqs:DeleteMessage'],
    'pipe-recovery': CONSUME,
  },
  ops: {
    'ops logs': LOGS,
    partners: ['dynamodb:UpdateItem'],
    subscriptions: ['dynamodb:GetItem', 'dynamodb:Scan'],
    deliveries: ['dynamodb:GetItem', 'dynamodb:Query'],
    fanout: OPS_WORK_QUEUE,
    'fanout-dlq': OPS_DEAD_LETTER_QUEUE,
    delivery: OPS_WORK_QUEUE,
    'delivery-dlq': OPS_DEAD_LETTER_QUEUE,
    'slow-lane': OPS_WORK_QUEUE,
    'slow-lane-dlq': OPS_DEAD_LETTER_QUEUE,
    'pipe-recovery': OPS_WORK_QUEUE,
    'pipe-dlq': OPS_DEAD_LETTER_QUEUE,
    // GetMetricData takes no resource; acknowledged in ops-function.ts.
    '*': ['cloudwatch:GetMetricData'],
  },
  // No secrets key: it reads which subscriptions a connection serves, never a signing secret.
  connections: {
    'connections logs': LOGS,
    connections: [
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
      'dynamodb:DeleteItem',
      'dynamodb:Query',
    ],
    partners: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
    subscriptions: ['dynamodb:GetItem'],
    'subscriptions/index/byPartner': ['dynamodb:Query'],
    // The parked tries only: listed, claimed (an update), deleted once queued.
    'deliveries (PARK#*)': ['dynamodb:Query', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
    delivery: ['sqs:SendMessage'],
    [MANAGE.POST]: MANAGE_CONNECTIONS,
    [MANAGE.DELETE]: MANAGE_CONNECTIONS,
  },
};

/** The pipe's role (EventBridge user guide, "Event source permissions for Amazon EventBridge Pipes"). */
const PIPE_GRANTS: Grants = {
  'events stream': ['dynamodb:DescribeStream', 'dynamodb:GetRecords', 'dynamodb:GetShardIterator'],
  // Not scoped to a resource by IAM; acknowledged in event-stream.ts.
  '*': ['dynamodb:ListStreams'],
  fanout: ['sqs:SendMessage'],
  'pipe-dlq': ['sqs:SendMessage'],
  'pipe logs': LOGS,
};

/** The queues each function consumes through an SQS event source. */
const CONSUMES: Record<FunctionName, readonly string[]> = {
  api: [],
  authorizer: [],
  poll: [],
  fanout: ['fanout'],
  dispatcher: ['delivery', 'slow-lane'],
  sweeper: [],
  recovery: ['pipe-recovery'],
  ops: [],
  connections: [],
};

const ENTRIES: Record<FunctionName, string> = {
  api: 'functions/api/lambda.ts',
  authorizer: 'functions/authorizer/lambda.ts',
  poll: 'functions/poll/lambda.ts',
  fanout: 'functions/fanout/lambda.ts',
  dispatcher: 'functions/dispatcher/lambda.ts',
  sweeper: 'functions/sweeper/lambda.ts',
  recovery: 'functions/recovery/lambda.ts',
  ops: 'functions/ops/lambda.ts',
  connections: 'functions/connections/lambda.ts',
};

/** The resource each setting a lambda.ts passes to an adapter names. */
const CONFIG_RESOURCES = {
  eventsTable: 'events',
  partnersTable: 'partners',
  subscriptionsTable: 'subscriptions',
  deliveriesTable: 'deliveries',
  deliveryQueueUrl: 'delivery',
  slowLaneQueueUrl: 'slow-lane',
  deliveryDeadLetterQueueUrl: 'delivery-dlq',
  slowLaneDeadLetterQueueUrl: 'slow-lane-dlq',
  pipeDeadLetterQueueUrl: 'pipe-dlq',
  pipeRecoveryQueueUrl: 'pipe-recovery',
  fanoutQueueUrl: 'fanout',
  fanoutDeadLetterQueueUrl: 'fanout-dlq',
  secretsKeyArn: 'secrets key',
  connectionsTable: 'connections',
} as const satisfies Partial<Record<keyof typeof LAMBDA_ENV, string>>;

/** The WebSocket API whose management endpoint each setting a lambda.ts gives a management client names. */
const ENDPOINT_RESOURCES = { connectionsEndpoint: 'connections api' } as const satisfies Partial<
  Record<keyof typeof LAMBDA_ENV, string>
>;

type ResourceKey = keyof typeof CONFIG_RESOURCES;

function isResourceKey(key: string): key is ResourceKey {
  return Object.hasOwn(CONFIG_RESOURCES, key);
}

interface AdapterCalls {
  /** The IAM actions of every request the file sends. */
  readonly actions: readonly string[];
  /** Whether it queries a table's own key (Query without an IndexName). */
  readonly queriesTable?: boolean;
  /** The indexes it queries. */
  readonly indexes?: readonly string[];
  /** The management API's methods it calls on a connection (POST PostToConnection, DELETE DeleteConnection). */
  readonly connectionMethods?: readonly ('POST' | 'DELETE')[];
}

/**
 * What each file of functions/adapters/aws sends, as the IAM actions that authorize it. A
 * transaction counts as the item actions of its operations; SendMessageBatch as SendMessage.
 */
const ADAPTER_CALLS: Readonly<Record<string, AdapterCalls>> = {
  'clients.ts': { actions: [] },
  // Connections: opened (two puts), heard and made ready (updates), closed and forgotten
  // (deletes), counted and listed per partner (queries), answers put and read with whether the
  // connection is still there (a batch get); parked tries in the deliveries table: parked (a
  // put), claimed (an update), listed (a query), deleted. Frames posted down a connection,
  // connections closed.
  'connections.ts': {
    actions: [
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
      'dynamodb:DeleteItem',
      'dynamodb:Query',
      'dynamodb:BatchGetItem',
      'execute-api:ManageConnections',
    ],
    queriesTable: true,
    connectionMethods: ['POST', 'DELETE'],
  },
  // The queues' oldest message ages and the dispatcher's outcome counts.
  'cloudwatch.ts': { actions: ['cloudwatch:GetMetricData'] },
  'cloudwatch-client.ts': { actions: [] },
  // Saved by a put (a create also moves the count, in a transaction), moved by an update,
  // deleted in a transaction with the count, listed by a query.
  'consumers.ts': {
    actions: [
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
      'dynamodb:DeleteItem',
      'dynamodb:Query',
    ],
    queriesTable: true,
  },
  'deliveries.ts': {
    actions: [
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
      'dynamodb:Query',
      'dynamodb:BatchGetItem',
    ],
    queriesTable: true,
    indexes: ['bySubscription', 'byEvent'],
  },
  'delivery-queue.ts': { actions: [] },
  'due-retries.ts': { actions: ['dynamodb:Query', 'dynamodb:BatchWriteItem'], queriesTable: true },
  // The paging and put-if-absent helpers the adapters share; it wires to nothing itself.
  'dynamo.ts': { actions: ['dynamodb:Query', 'dynamodb:BatchGetItem', 'dynamodb:PutItem'] },
  // Appends (a transaction of the event's put and its ordering key's counter's update, for an
  // event with a key), gets, polls, holes; the recovery's scan.
  'events.ts': {
    actions: [
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
      'dynamodb:Query',
      'dynamodb:Scan',
    ],
    queriesTable: true,
  },
  'kms-cipher.ts': { actions: ['kms:Decrypt', 'kms:GenerateDataKey'] },
  'kms-client.ts': { actions: [] },
  'logger.ts': { actions: [] },
  // A key's change is a transaction of an update of the partner and a put or delete of the
  // key's item; touchApiKey an update; listApiKeys a batch get (dynamo.ts's helper).
  'partners.ts': {
    actions: [
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
      'dynamodb:DeleteItem',
      'dynamodb:BatchGetItem',
    ],
  },
  // Gates (a get, a conditional update), parked events (put, get, delete), lines (an entry
  // put, the head got and the first entry queried, the head claimed in a transaction that
  // checks its entry, a try taken and given back by updates, an entry and a head deleted).
  'ordered-lines.ts': {
    actions: [
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
      'dynamodb:DeleteItem',
      'dynamodb:Query',
      'dynamodb:ConditionCheckItem',
    ],
    queriesTable: true,
  },
  'pipe.ts': { actions: [] },
  'rate-limiter.ts': { actions: ['dynamodb:UpdateItem'] },
  'sqs-client.ts': { actions: [] },
  'sqs-queue.ts': { actions: ['sqs:SendMessage', 'sqs:ReceiveMessage', 'sqs:DeleteMessage'] },
  // Ops: depths, peeks (made visible again), moves by hand and move tasks, purges.
  'sqs-ops.ts': {
    actions: [
      'sqs:GetQueueAttributes',
      'sqs:ReceiveMessage',
      'sqs:ChangeMessageVisibility',
      'sqs:SendMessage',
      'sqs:DeleteMessage',
      'sqs:PurgeQueue',
      'sqs:StartMessageMoveTask',
      'sqs:ListMessageMoveTasks',
      'sqs:CancelMessageMoveTask',
    ],
  },
  // How the Lambda entries make the stores and queues above; it sends nothing itself.
  'wiring.ts': { actions: [] },
  // listByHealth scans the table (ops, rarely).
  'subscriptions.ts': {
    actions: [
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
      'dynamodb:DeleteItem',
      'dynamodb:Query',
      'dynamodb:Scan',
    ],
    indexes: ['byPartner'],
  },
  'tables.ts': { actions: [] },
};

/** The IAM action of each SDK command (Service Authorization Reference: DynamoDB, SQS, KMS, CloudWatch). */
const COMMAND_ACTIONS: Readonly<Record<string, readonly string[]>> = {
  GetCommand: ['dynamodb:GetItem'],
  PutCommand: ['dynamodb:PutItem'],
  UpdateCommand: ['dynamodb:UpdateItem'],
  DeleteCommand: ['dynamodb:DeleteItem'],
  QueryCommand: ['dynamodb:Query'],
  ScanCommand: ['dynamodb:Scan'],
  BatchGetCommand: ['dynamodb:BatchGetItem'],
  BatchWriteCommand: ['dynamodb:BatchWriteItem'],
  // Their operations' item actions: see TRANSACT_OPERATIONS.
  TransactGetCommand: [],
  TransactWriteCommand: [],
  SendMessageCommand: ['sqs:SendMessage'],
  SendMessageBatchCommand: ['sqs:SendMessage'],
  ReceiveMessageCommand: ['sqs:ReceiveMessage'],
  DeleteMessageCommand: ['sqs:DeleteMessage'],
  DeleteMessageBatchCommand: ['sqs:DeleteMessage'],
  ChangeMessageVisibilityCommand: ['sqs:ChangeMessageVisibility'],
  ChangeMessageVisibilityBatchCommand: ['sqs:ChangeMessageVisibility'],
  GetQueueAttributesCommand: ['sqs:GetQueueAttributes'],
  PurgeQueueCommand: ['sqs:PurgeQueue'],
  StartMessageMoveTaskCommand: ['sqs:StartMessageMoveTask'],
  ListMessageMoveTasksCommand: ['sqs:ListMessageMoveTasks'],
  CancelMessageMoveTaskCommand: ['sqs:CancelMessageMoveTask'],
  GetMetricDataCommand: ['cloudwatch:GetMetricData'],
  GenerateDataKeyCommand: ['kms:GenerateDataKey'],
  DecryptCommand: ['kms:Decrypt'],
  // API Gateway's management API (IAM authorizes it by method: see CONNECTION_METHODS).
  PostToConnectionCommand: ['execute-api:ManageConnections'],
  DeleteConnectionCommand: ['execute-api:ManageConnections'],
};

/** The management API's method of each command on a connection, as ManageConnections grants name it. */
const CONNECTION_METHODS: Readonly<Record<string, 'POST' | 'DELETE'>> = {
  PostToConnectionCommand: 'POST',
  DeleteConnectionCommand: 'DELETE',
};

/** The item action of each operation of a transaction (DynamoDB developer guide, "Using IAM with DynamoDB transactions"). */
const TRANSACT_OPERATIONS: Readonly<Record<string, string>> = {
  Put: 'dynamodb:PutItem',
  Update: 'dynamodb:UpdateItem',
  Delete: 'dynamodb:DeleteItem',
  ConditionCheck: 'dynamodb:ConditionCheckItem',
  Get: 'dynamodb:GetItem',
};

const ADAPTERS_DIR = join(PROJECT_ROOT, 'functions/adapters/aws');

/** The IAM actions of the requests a source file sends, read from the commands it builds. */
function actionsInSource(source: string): { actions: string[]; unknown: string[] } {
  const actions = new Set<string>();
  const unknown: string[] = [];
  for (const [, command = ''] of source.matchAll(/\bnew (\w+Command)\(/g)) {
    const mapped = COMMAND_ACTIONS[command];
    if (mapped === undefined) unknown.push(command);
    for (const action of mapped ?? []) actions.add(action);
  }
  if (/\bnew Transact(Write|Get)Command\(/.test(source)) {
    for (const [, operation = ''] of source.matchAll(/\b(Put|Update|Delete|ConditionCheck|Get)\s*:\s*\{/g)) {
      const action = TRANSACT_OPERATIONS[operation];
      if (action !== undefined) actions.add(action);
    }
  }
  // dynamo.ts's paging helpers send a QueryCommand for their caller, its batchGetItems a
  // BatchGetCommand.
  if (/\b(queryItems|queryUpTo)\(/.test(source)) actions.add('dynamodb:Query');
  if (/\bbatchGetItems\(/.test(source)) actions.add('dynamodb:BatchGetItem');
  return { actions: [...actions].sort(), unknown };
}

/** The adapters a lambda.ts builds, each with the resource it is given (from CONFIG_RESOURCES). */
function wiring(entry: string): { file: string; resource: string }[] {
  const source = readFileSync(join(PROJECT_ROOT, entry), 'utf8');
  const files = new Map<string, string>();
  for (const [, names = '', file = ''] of source.matchAll(
    /import \{([^}]+)\} from '\.\.\/adapters\/aws\/([\w-]+\.ts)'/g,
  )) {
    for (const name of names.split(',')) files.set(name.replace(/^\s*type\s+/, '').trim(), file);
  }
  const constructed = [
    ...source.matchAll(
      /\bnew (\w+)(?:<[^>]*>)?\(\s*(?:dynamoClient|sqsClient|kmsClient),\s*(?:\{\s*tableName:\s*)?config\.(\w+)/g,
    ),
  ].map(([, className = '', key = '']) => {
    const file = files.get(className);
    if (file === undefined || !isResourceKey(key)) {
      throw new Error(`${entry}: cannot tell what new ${className}(…, config.${key}) is`);
    }
    return { file, resource: CONFIG_RESOURCES[key] };
  });
  // The helpers of adapters/aws/wiring.ts, as they make their adapters.
  const helped = [
    ...source.matchAll(/\b(\w+)\(\s*(?:dynamoClient|sqsClient),\s*config\b([^;]*?)\)(?:,|\n)/g),
  ].flatMap(([, helper = '', rest = '']) => {
    if (files.get(helper) !== 'wiring.ts') return [];
    const made = WIRING_HELPERS[helper];
    if (made === undefined) throw new Error(`${entry}: cannot tell what ${helper}() makes`);
    const withDispatcher = /\{\s*dynamo:/.test(rest) ? (WIRING_HELPERS_FOR_DISPATCHER[helper] ?? []) : [];
    return [...made, ...withDispatcher].map(({ file, key }) => ({ file, resource: CONFIG_RESOURCES[key] }));
  });
  // CloudWatch adapters: GetMetricData takes no resource, so they are wired to "*".
  const metrics = [...source.matchAll(/\bnew (\w+)\(\s*cloudWatchClient\b/g)].map(([, className = '']) => {
    const file = files.get(className);
    if (file === undefined)
      throw new Error(`${entry}: cannot tell what new ${className}(cloudWatchClient…) is`);
    return { file, resource: '*' };
  });
  // Adapter functions called like a constructor (rememberingKmsCipher(kmsClient, config.…)).
  const called = [...source.matchAll(/(?<!new )\b(\w+)\(\s*kmsClient,\s*config\.(\w+)/g)].map(
    ([, name = '', key = '']) => {
      const file = files.get(name);
      if (file === undefined || !isResourceKey(key)) {
        throw new Error(`${entry}: cannot tell what ${name}(kmsClient, config.${key}) is`);
      }
      return { file, resource: CONFIG_RESOURCES[key] };
    },
  );
  // Senders over a WebSocket API's management endpoint (new ApiGatewayConnectionSender(new
  // ApiGatewayManagementApiClient({ endpoint: config.connectionsEndpoint }))).
  const managed = [
    ...source.matchAll(
      /\bnew (\w+)\(\s*new ApiGatewayManagementApiClient\(\{\s*endpoint:\s*config\.(\w+)\s*\}\)/g,
    ),
  ].map(([, className = '', key = '']) => {
    const file = files.get(className);
    const resource = (ENDPOINT_RESOURCES as Readonly<Record<string, string>>)[key];
    if (file === undefined || resource === undefined) {
      throw new Error(`${entry}: cannot tell what new ${className}(…config.${key}…) is`);
    }
    return { file, resource };
  });
  return [...constructed, ...helped, ...metrics, ...called, ...managed];
}

/** What each helper of adapters/aws/wiring.ts makes: the adapter file and the setting it reads. */
const WIRING_HELPERS: Readonly<Record<string, readonly { file: string; key: ResourceKey }[]>> = {
  eventLog: [{ file: 'events.ts', key: 'eventsTable' }],
  consumerStore: [{ file: 'consumers.ts', key: 'eventsTable' }],
  requestLimits: [{ file: 'rate-limiter.ts', key: 'partnersTable' }],
  subscriptionStore: [{ file: 'subscriptions.ts', key: 'subscriptionsTable' }],
  deliveryStore: [{ file: 'deliveries.ts', key: 'deliveriesTable' }],
  orderedLines: [{ file: 'ordered-lines.ts', key: 'deliveriesTable' }],
  deliveryLanes: [
    { file: 'sqs-queue.ts', key: 'deliveryQueueUrl' },
    { file: 'sqs-queue.ts', key: 'slowLaneQueueUrl' },
  ],
  opsQueues: [
    { file: 'sqs-ops.ts', key: 'fanoutQueueUrl' },
    { file: 'sqs-ops.ts', key: 'fanoutDeadLetterQueueUrl' },
    { file: 'sqs-ops.ts', key: 'deliveryQueueUrl' },
    { file: 'sqs-ops.ts', key: 'deliveryDeadLetterQueueUrl' },
    { file: 'sqs-ops.ts', key: 'slowLaneQueueUrl' },
    { file: 'sqs-ops.ts', key: 'slowLaneDeadLetterQueueUrl' },
    { file: 'sqs-ops.ts', key: 'pipeRecoveryQueueUrl' },
    { file: 'sqs-ops.ts', key: 'pipeDeadLetterQueueUrl' },
  ],
};

/** What deliveryLanes makes besides, given the dispatcher's part. */
const WIRING_HELPERS_FOR_DISPATCHER: Readonly<Record<string, readonly { file: string; key: ResourceKey }[]>> =
  {
    deliveryLanes: [
      { file: 'sqs-queue.ts', key: 'deliveryDeadLetterQueueUrl' },
      { file: 'due-retries.ts', key: 'deliveriesTable' },
    ],
  };

function functionsByName(): Record<FunctionName, IFunction> {
  const { api, pipeline } = synth.stacks.service;
  return {
    api: api.apiFunction,
    authorizer: api.authorizerFunction,
    poll: api.pollFunction,
    fanout: pipeline.fanoutFunction,
    dispatcher: pipeline.dispatcherFunction,
    sweeper: pipeline.sweeperFunction,
    recovery: synth.stacks.service.eventStream.recoveryFunction,
    ops: synth.stacks.service.opsFunction,
    connections: synth.stacks.service.connections.connectionsFunction,
  };
}

/** Names for the logical ids of both stacks, as GRANTS spells them. */
function resourceNames(): { service: Map<string, string>; data: Map<string, string> } {
  const { data, service } = synth.stacks;
  const { pipeline, eventStream, connections } = service;
  const named = (entries: [IConstruct, string][]) =>
    new Map(entries.map(([construct, name]) => [logicalIdOf(construct), name]));
  const logGroups = Object.entries(functionsByName()).map(([name, fn]): [IConstruct, string] => {
    const logGroup = fn.node.scope?.node.tryFindChild(`${fn.node.id}LogGroup`);
    if (logGroup === undefined) throw new Error(`no log group beside ${fn.node.path}`);
    return [logGroup, `${name} logs`];
  });
  return {
    service: named([
      [pipeline.fanout.queue, 'fanout'],
      [pipeline.fanout.deadLetterQueue, 'fanout-dlq'],
      [pipeline.delivery.queue, 'delivery'],
      [pipeline.delivery.deadLetterQueue, 'delivery-dlq'],
      [pipeline.slowLane.queue, 'slow-lane'],
      [pipeline.slowLane.deadLetterQueue, 'slow-lane-dlq'],
      [eventStream.deadLetterQueue, 'pipe-dlq'],
      [eventStream.recoveryQueue, 'pipe-recovery'],
      [eventStream.logGroup, 'pipe logs'],
      [connections.table.table, 'connections'],
      [connections.api, 'connections api'],
      ...logGroups,
    ]),
    data: named([
      [data.tables.events.table, 'events'],
      [data.tables.partners.table, 'partners'],
      [data.tables.subscriptions.table, 'subscriptions'],
      [data.tables.deliveries.table, 'deliveries'],
      [data.secretsKey, 'secrets key'],
    ]),
  };
}

/** The pseudo parameters an ARN is made of, as nameOf spells them. */
const PSEUDO_PARAMETERS: Readonly<Record<string, string>> = {
  'AWS::Partition': '<partition>',
  'AWS::Region': '<region>',
  'AWS::AccountId': '<account>',
};

/** The start of an execute-api ARN of this account and Region, left off by nameOf: `<api>/<stage>/…` remains. */
const EXECUTE_API_ARN = /^arn:<partition>:execute-api:<region>:<account>:/;

/** What a template value (an ARN, a name, a URL) refers to, as GRANTS names it. */
function nameOf(value: unknown, names = resourceNames(), stack: 'service' | 'data' = 'service'): string {
  if (value === '*') return '*';
  if (typeof value !== 'object' || value === null) return JSON.stringify(value);
  const lookUp = (id: unknown) =>
    PSEUDO_PARAMETERS[String(id)] ?? names[stack].get(String(id)) ?? `unknown ${String(id)}`;
  if ('Ref' in value) return lookUp(value.Ref);
  if ('Fn::GetAtt' in value && Array.isArray(value['Fn::GetAtt'])) {
    const [id, attribute] = value['Fn::GetAtt'];
    return attribute === 'StreamArn' ? `${lookUp(id)} stream` : lookUp(id);
  }
  if ('Fn::GetStackOutput' in value) {
    const output: unknown = value['Fn::GetStackOutput'];
    const outputName =
      typeof output === 'object' && output !== null && 'OutputName' in output ? output.OutputName : undefined;
    const published = synth.data.toJSON().Outputs?.[String(outputName)]?.Value;
    return nameOf(published, names, 'data');
  }
  if ('Fn::Join' in value && Array.isArray(value['Fn::Join'])) {
    const [separator, parts] = value['Fn::Join'];
    if (separator === '' && Array.isArray(parts)) {
      return parts
        .map((part) => (typeof part === 'string' ? part : nameOf(part, names, stack)))
        .join('')
        .replace(EXECUTE_API_ARN, '');
    }
  }
  return JSON.stringify(value);
}

interface Statement {
  Effect?: unknown;
  Action?: unknown;
  Resource?: unknown;
  Condition?: unknown;
  NotAction?: unknown;
  NotResource?: unknown;
}

/** Every statement of the policies attached to the role. */
function statementsOf(roleLogicalId: string): Statement[] {
  const attached = resourcesOfType(synth.service, 'AWS::IAM::Policy').filter(([, properties]) =>
    JSON.stringify(properties.Roles).includes(JSON.stringify({ Ref: roleLogicalId })),
  );
  return attached.flatMap(
    ([, properties]) => (properties.PolicyDocument as { Statement: Statement[] }).Statement,
  );
}

/** The one condition a statement may carry: KMS data keys of the signing secrets' purpose only. */
const SECRETS_KEY_CONDITION = {
  StringEquals: { 'kms:EncryptionContext:purpose': ENCRYPTION_CONTEXT.purpose },
};

/**
 * A policy as `resource: action` lines, sorted; each statement must allow, unconditionally
 * but for KMS statements, which must hold to the signing secrets' encryption context.
 */
function linesOf(roleLogicalId: string): string[] {
  const names = resourceNames();
  return statementsOf(roleLogicalId)
    .flatMap((statement) => {
      expect(statement.Effect, JSON.stringify(statement)).toBe('Allow');
      expect(statement.NotAction ?? statement.NotResource, JSON.stringify(statement)).toBe(undefined);
      const kms = [statement.Action].flat().every((action) => String(action).startsWith('kms:'));
      // A table grant limited to some items says which, after the table's name.
      const leadingKeys = leadingKeysOf(statement.Condition);
      if (leadingKeys === undefined)
        expect(statement.Condition, JSON.stringify(statement)).toEqual(
          kms ? SECRETS_KEY_CONDITION : undefined,
        );
      const actions = [statement.Action].flat();
      const resources = [statement.Resource].flat();
      const suffix = leadingKeys === undefined ? '' : ` (${leadingKeys.join(', ')})`;
      return resources.flatMap((resource) =>
        actions.map((action) => `${nameOf(resource, names)}${suffix}: ${action}`),
      );
    })
    .sort();
}

/** The patterns of a `dynamodb:LeadingKeys` condition, when it is the statement's only one. */
function leadingKeysOf(condition: unknown): string[] | undefined {
  const keys = (
    condition as { 'ForAllValues:StringLike'?: { 'dynamodb:LeadingKeys'?: unknown } } | undefined
  )?.['ForAllValues:StringLike']?.['dynamodb:LeadingKeys'];
  if (keys === undefined || Object.keys(condition as object).length !== 1) return undefined;
  return [keys].flat().map(String);
}

function linesOfGrants(grants: Grants): string[] {
  return Object.entries(grants)
    .flatMap(([resource, actions]) => actions.map((action) => `${resource}: ${action}`))
    .sort();
}

function roleOf(fn: IFunction): string {
  if (fn.role === undefined) throw new Error(`${fn.node.path} has no role`);
  return logicalIdOf(fn.role);
}

const FUNCTIONS: readonly FunctionName[] = [
  'api',
  'authorizer',
  'poll',
  'fanout',
  'dispatcher',
  'sweeper',
  'recovery',
  'ops',
  'connections',
];

describe('function roles', () => {
  it.each(FUNCTIONS)(
    '%s: its policy is exactly GRANTS, every statement an Allow (KMS ones bound to their purpose)',
    (name) => {
      const fn = functionsByName()[name];
      expect(linesOf(roleOf(fn))).toEqual(linesOfGrants(GRANTS[name]));
    },
  );

  it.each(FUNCTIONS)('%s: consumes exactly the queues of its SQS event sources', (name) => {
    const names = resourceNames();
    const fn = logicalIdOf(functionsByName()[name]);
    const consumed = resourcesOfType(synth.service, 'AWS::Lambda::EventSourceMapping')
      .filter(([, mapping]) => JSON.stringify(mapping.FunctionName) === JSON.stringify({ Ref: fn }))
      .map(([, mapping]) => nameOf(mapping.EventSourceArn, names))
      .sort();
    expect(consumed).toEqual([...CONSUMES[name]].sort());
    const withConsume = Object.entries(GRANTS[name])
      .filter(([, actions]) => CONSUME.every((action) => actions.includes(action)))
      .map(([resource]) => resource)
      .sort();
    expect(withConsume).toEqual([...CONSUMES[name]].sort());
  });

  it.each(FUNCTIONS)('%s: each resource its lambda.ts names is the one bound to that variable', (name) => {
    const fn = functionsByName()[name];
    const variables = (propertiesOf(synth.service, fn).Environment as { Variables: Record<string, unknown> })
      .Variables;
    const source = readFileSync(join(PROJECT_ROOT, ENTRIES[name]), 'utf8');
    // Named in the source (config.eventsTable), or read by the wiring helpers it calls with config.
    const named = [...source.matchAll(/config\.(\w+)/g)].map(([, key = '']) => key);
    const helped = [...source.matchAll(/\b(\w+)\(\s*(?:dynamoClient|sqsClient),\s*config\b/g)].flatMap(
      ([, helper = '']) => (WIRING_HELPERS[helper] ?? []).map(({ key }) => key),
    );
    const keys = [...named, ...helped].filter(isResourceKey);
    expect(keys.length).toBeGreaterThan(0);
    const names = resourceNames();
    for (const key of new Set(keys)) {
      const variable = LAMBDA_ENV[key];
      expect(nameOf(variables[variable], names), `${name} ${variable}`).toBe(CONFIG_RESOURCES[key]);
    }
  });

  it.each(FUNCTIONS)(
    '%s: every DynamoDB, SQS and connection management grant is a call of an adapter its lambda.ts wires to it',
    (name) => {
      const wired = wiring(ENTRIES[name]);
      const consumed = new Set(CONSUMES[name]);
      for (const [resource, actions] of Object.entries(GRANTS[name])) {
        for (const action of actions) {
          if (LOGS.includes(action) || (consumed.has(resource) && CONSUME.includes(action))) continue;
          // A grant limited to some items (` (PARK#*)`) is a grant on its table.
          const [table = '', index] = resource.replace(/ \(.*\)$/, '').split('/index/');
          // A WebSocket API's management grant: `<api>/<stage>/<method>/@connections/*`.
          const [api = '', , method] = table.split('/');
          const managed = action === 'execute-api:ManageConnections';
          const callers = wired.filter(({ file, resource: wiredTo }) => {
            const calls = ADAPTER_CALLS[file];
            if (calls === undefined || !calls.actions.includes(action)) return false;
            if (managed) {
              return (
                wiredTo === api &&
                (calls.connectionMethods as readonly string[] | undefined)?.includes(method ?? '') === true
              );
            }
            if (wiredTo !== table) return false;
            if (index !== undefined) return calls.indexes?.includes(index) ?? false;
            return action !== 'dynamodb:Query' || calls.queriesTable === true;
          });
          expect(
            callers,
            `${name} is granted ${action} on ${resource}, which no adapter it wires there calls`,
          ).not.toEqual([]);
        }
      }
    },
  );
});

describe('AWS adapters', () => {
  it('send exactly the requests ADAPTER_CALLS pins (a new call means reviewing the grants of its callers)', () => {
    const files = readdirSync(ADAPTERS_DIR)
      .filter((file) => file.endsWith('.ts'))
      .sort();
    expect(files).toEqual(Object.keys(ADAPTER_CALLS).sort());
    for (const file of files) {
      const { actions, unknown } = actionsInSource(readFileSync(join(ADAPTERS_DIR, file), 'utf8'));
      expect(unknown, `${file}: SDK commands with no IAM action in COMMAND_ACTIONS`).toEqual([]);
      expect(actions, file).toEqual([...(ADAPTER_CALLS[file]?.actions ?? [])].sort());
    }
  });

  it('call the management API methods ADAPTER_CALLS pins on a connection', () => {
    for (const [file, calls] of Object.entries(ADAPTER_CALLS)) {
      const source = readFileSync(join(ADAPTERS_DIR, file), 'utf8');
      const methods = new Set(
        [...source.matchAll(/\bnew (\w+Command)\(/g)].flatMap(([, command = '']) => {
          const method = CONNECTION_METHODS[command];
          return method === undefined ? [] : [method];
        }),
      );
      expect([...methods].sort(), file).toEqual([...(calls.connectionMethods ?? [])].sort());
    }
  });

  it('query the indexes ADAPTER_CALLS pins, by their names in the table definitions', () => {
    for (const [file, calls] of Object.entries(ADAPTER_CALLS)) {
      const source = readFileSync(join(ADAPTERS_DIR, file), 'utf8');
      for (const index of calls.indexes ?? []) {
        expect(source, `${file} queries ${index}`).toContain(`'${index}'`);
        expect(source, `${file} queries ${index}`).toContain('IndexName');
      }
    }
  });
});

describe('the pipe role', () => {
  it('has exactly what EventBridge Pipes needs of a DynamoDB stream source, its queue target and its DLQ', () => {
    expect(linesOf(logicalIdOf(synth.stacks.service.eventStream.role))).toEqual(linesOfGrants(PIPE_GRANTS));
  });
});
