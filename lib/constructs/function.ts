import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Duration, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as lambdaNodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import { NodejsFunction, OutputFormat, SourceMapMode } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { ENCRYPTION_CONTEXT } from '../../functions/adapters/aws/kms-cipher.ts';
import { BUNDLED_WORKER_FILE, JSONATA_WORKER_SOURCE } from '../../functions/adapters/jsonata/limits.ts';
import { LAMBDA_ENV } from '../../functions/config.ts';
import type { FunctionNetwork } from './egress-network.ts';
import type { DefinedTable } from './table.ts';

/** The repository root: entries, package-lock.json and tsconfig.json are found from here. */
export const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export type LogLevel = 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';

/**
 * The DynamoDB actions a function may be granted on a table's items, as IAM names them.
 * TransactWriteItems has no action of its own: each operation in it needs its item action (a
 * Put PutItem, an Update UpdateItem, a Delete DeleteItem, a ConditionCheck
 * ConditionCheckItem), and TransactGetItems needs GetItem
 * (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html).
 * BatchWriteItem and BatchGetItem are actions of their own, whatever their requests hold.
 */
export type TableAction =
  | 'dynamodb:GetItem'
  | 'dynamodb:PutItem'
  | 'dynamodb:UpdateItem'
  | 'dynamodb:DeleteItem'
  | 'dynamodb:ConditionCheckItem'
  | 'dynamodb:Query'
  | 'dynamodb:BatchGetItem'
  | 'dynamodb:BatchWriteItem'
  | 'dynamodb:Scan';

/** What a function may do with a global secondary index: only read it with Query. */
export type IndexAction = 'dynamodb:Query';

/** The actions a function is granted on a table and on its indexes, each listed. */
export interface TableGrant {
  /** Actions on the table itself (its items; Query here queries the table's own key). @default - none */
  readonly table?: readonly TableAction[];
  /** Actions on each index, by index name. @default - none */
  readonly indexes?: Readonly<Record<string, readonly IndexAction[]>>;
  /**
   * The table actions only on items whose partition key matches one of these patterns (IAM's
   * `dynamodb:LeadingKeys`, `*` a wildcard): the items of one kind in a shared table.
   * @default - every item
   */
  readonly leadingKeys?: readonly string[];
}

/**
 * The SQS actions a function may be granted on a queue it does not consume through an event
 * source (which grants its own): sending; receiving and deleting (the pipe's recovery, which
 * empties a dead-letter queue itself); and what ops do with a queue (the ops function): read
 * its depths, look at its messages (receive, then make them visible again), move them (a move
 * task, or by hand), purge it. SendMessageBatch is authorized by sqs:SendMessage,
 * DeleteMessageBatch by sqs:DeleteMessage, ChangeMessageVisibilityBatch by
 * sqs:ChangeMessageVisibility.
 */
export type QueueAction =
  | 'sqs:SendMessage'
  | 'sqs:ReceiveMessage'
  | 'sqs:DeleteMessage'
  | 'sqs:ChangeMessageVisibility'
  | 'sqs:GetQueueAttributes'
  | 'sqs:PurgeQueue'
  | 'sqs:StartMessageMoveTask'
  | 'sqs:ListMessageMoveTasks'
  | 'sqs:CancelMessageMoveTask';

/** What a function does with the secrets key: seal (a new data key) and open. */
export type SecretsKeyAction = 'kms:GenerateDataKey' | 'kms:Decrypt';

type Env = typeof LAMBDA_ENV;
export type TableEnvVar = Env[
  | 'eventsTable'
  | 'partnersTable'
  | 'subscriptionsTable'
  | 'deliveriesTable'
  | 'connectionsTable'];
export type QueueEnvVar = Env[
  | 'fanoutQueueUrl'
  | 'fanoutDeadLetterQueueUrl'
  | 'deliveryQueueUrl'
  | 'slowLaneQueueUrl'
  | 'deliveryDeadLetterQueueUrl'
  | 'slowLaneDeadLetterQueueUrl'
  | 'pipeRecoveryQueueUrl'
  | 'pipeDeadLetterQueueUrl'];

/**
 * Settings bound by the construct that grants their use rather than given in the props, as
 * they name what is made after the function or go with such a grant (ConnectionApi: the
 * WebSocket API's management endpoint, with execute-api:ManageConnections; the URL partners
 * connect to and the time they have to answer a try, which the API function tells them).
 */
export type SettingEnvVar = Env['connectionsEndpoint' | 'connectUrl' | 'deliveryTimeoutMs'];

export interface DispatcherFunctionProps {
  /** The entry file, relative to the repository root; it exports `handler`. */
  readonly entry: string;
  readonly description: string;
  /** POWERTOOLS_SERVICE_NAME: the `service` key of every log line. */
  readonly serviceName: string;
  /** @default Duration.seconds(10) */
  readonly timeout?: Duration;
  /** @default 256 */
  readonly memorySize?: number;
  /** Executions it may run at once, reserved out of the account's. @default - none reserved */
  readonly reservedConcurrentExecutions?: number;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** POWERTOOLS_LOG_LEVEL, and the Lambda application log level. @default 'INFO' */
  readonly logLevel?: LogLevel;
  /**
   * Settings the function reads; resources are bound with `useTable` / `useQueue`, which set
   * the permission and the variable together.
   * @default - none
   */
  readonly environment?: Readonly<Record<string, string>>;
  /**
   * Runs the function in these private subnets with this security group (EgressNetwork), and
   * grants its role what Lambda needs to manage its network interfaces there.
   * @default - no VPC: the function reaches the internet from Lambda's own addresses
   */
  readonly network?: FunctionNetwork;
  /**
   * Bundles the JSONata worker thread beside the function's code (`jsonata-worker.mjs`), for a
   * function that evaluates subscriptions' transformations (functions/adapters/jsonata/).
   * @default false
   */
  readonly transformations?: boolean;
}

/**
 * The commands that bundle the JSONata worker thread beside a function's bundle: a second
 * entry, which NodejsFunction's own bundling (one entry) cannot make.
 */
function jsonataWorkerHooks(): lambdaNodejs.ICommandHooks {
  return {
    beforeBundling: () => [],
    beforeInstall: () => [],
    afterBundling: (inputDir, outputDir) => [
      [
        `"${join(inputDir, 'node_modules', '.bin', 'esbuild')}"`,
        `"${join(inputDir, JSONATA_WORKER_SOURCE)}"`,
        '--bundle',
        '--platform=node',
        '--format=esm',
        '--target=node24',
        '--minify',
        `--banner:js="${REQUIRE_BANNER}"`,
        `--outfile="${join(outputDir, BUNDLED_WORKER_FILE)}"`,
      ].join(' '),
    ],
  };
}

const APPLICATION_LOG_LEVELS: Record<LogLevel, lambda.ApplicationLogLevel> = {
  DEBUG: lambda.ApplicationLogLevel.DEBUG,
  INFO: lambda.ApplicationLogLevel.INFO,
  WARN: lambda.ApplicationLogLevel.WARN,
  ERROR: lambda.ApplicationLogLevel.ERROR,
};

/**
 * An ESM bundle may still contain CommonJS that calls `require` for Node built-ins; ESM has no
 * `require`, so the bundle gets one. (None of today's bundled packages needs it; it costs a
 * fraction of a millisecond and keeps a CommonJS dependency added later from failing at run time.)
 */
const REQUIRE_BANNER =
  "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);";

/** A grant that lists an action twice is a slip in the list, not a wish for more access. */
function checkUnique(path: string, what: string, actions: readonly string[]): void {
  const twice = actions.filter((action, index) => actions.indexOf(action) !== index);
  if (twice.length > 0) throw new Error(`${path}: ${what}: ${twice.join(', ')} listed twice`);
}

/** Bundling runs esbuild from node_modules; without it CDK would fall back to Docker. */
function assertLocalEsbuild(): void {
  try {
    createRequire(import.meta.url).resolve('esbuild');
  } catch {
    throw new Error(
      'esbuild is not installed: Lambda bundles are built locally, never in Docker. Run `npm ci` first.',
    );
  }
}

/**
 * What Lambda needs, in a function's role, to create, look up and delete the Hyperplane network
 * interfaces of a function in a VPC, and to assign and release their addresses (the permissions
 * of the AWS managed policy AWSLambdaVPCAccessExecutionRole, less its logs:* ones, which the
 * function's own log group grants):
 * https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html. Creating is scoped to the
 * network's own subnets and security groups; the other changes to network interfaces of this
 * account and Region; the two lookups take no resource and are granted on "*".
 */
function grantNetworkInterfaces(role: iam.Role, network: FunctionNetwork): void {
  const stack = Stack.of(role);
  const arn = (resource: string, resourceName: string) =>
    stack.formatArn({ service: 'ec2', resource, resourceName });
  const subnets = network.vpc.selectSubnets(network.vpcSubnets).subnetIds;
  role.addToPolicy(
    new iam.PolicyStatement({
      actions: ['ec2:CreateNetworkInterface'],
      resources: [
        arn('network-interface', '*'),
        ...subnets.map((subnet) => arn('subnet', subnet)),
        ...network.securityGroups.map((group) => arn('security-group', group.securityGroupId)),
      ],
    }),
  );
  role.addToPolicy(
    new iam.PolicyStatement({
      actions: [
        'ec2:DeleteNetworkInterface',
        'ec2:AssignPrivateIpAddresses',
        'ec2:UnassignPrivateIpAddresses',
      ],
      resources: [arn('network-interface', '*')],
    }),
  );
  role.addToPolicy(
    new iam.PolicyStatement({
      actions: ['ec2:DescribeNetworkInterfaces', 'ec2:DescribeSubnets'],
      resources: ['*'],
    }),
  );
}

/** The two wildcards grantNetworkInterfaces needs, acknowledged on the role's policy with their reasons. */
function acknowledgeNetworkInterfaceGrants(role: iam.Role): void {
  const policy = role.node.tryFindChild('DefaultPolicy');
  if (policy === undefined) throw new Error(`${role.node.path} has no policy`);
  const target = policy.node.defaultChild ?? policy;
  Validations.of(target).acknowledge({
    id: 'AwsSolutions-IAM5[Resource::*]',
    reason:
      'ec2:DescribeNetworkInterfaces and ec2:DescribeSubnets take no resource: IAM grants them only on "*" ' +
      '(Lambda developer guide, "Giving Lambda functions access to resources in an Amazon VPC"; Service ' +
      'Authorization Reference, Amazon EC2). Lambda uses them to find the Hyperplane network interfaces of the ' +
      "function's subnets. They read, never change anything.",
  });
  Validations.of(target).acknowledge({
    id: 'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:network-interface/*]',
    reason:
      'Lambda creates the network interfaces of a function in a VPC with its role, and deletes them and assigns ' +
      'their addresses the same way; their ids are not known before they exist, so the grant names network ' +
      'interfaces of this account and Region. Creating one also needs the subnet and security group, which are ' +
      "named: only the egress network's private subnets and its security group.",
  });
}

/**
 * Every Lambda function of the dispatcher: Node.js 24 on arm64, a minified ESM bundle with
 * source maps, its own log group with a retention, JSON logs with the Powertools settings, and
 * a role of its own that starts with nothing but writing to that log group (no managed
 * policy). Resources are bound with `useTable` / `useQueue`, each granting the actions listed
 * (the calls the function's code makes, no access level) and setting the variable the function
 * reads (names from `LAMBDA_ENV`).
 *
 * The AWS SDK v3 is taken from the Lambda runtime, not bundled: it is about 370 KB of minified
 * code per function, more than everything else together, and cold starts pay for every byte
 * parsed. The runtime's SDK is a v3 release like the one in package-lock.json that the
 * contract tests ran against DynamoDB Local; the adapters use only long-stable commands.
 *
 * Bundling never uses Docker: esbuild from node_modules runs locally, and without it the
 * construct fails at once rather than letting CDK fall back to a Docker build.
 */
export class DispatcherFunction extends NodejsFunction {
  /** Variables already set, so a second binding of one fails instead of overwriting it. */
  private readonly bound: Set<string>;

  constructor(scope: Construct, id: string, props: DispatcherFunctionProps) {
    const entry = join(PROJECT_ROOT, props.entry);
    if (!existsSync(entry)) throw new Error(`${id}: entry ${props.entry} does not exist`);
    const memorySize = props.memorySize ?? 256;
    if (!Number.isInteger(memorySize) || memorySize < 128 || memorySize > 10_240) {
      throw new Error(`${id}: memorySize must be a whole number of MB from 128 to 10240, got ${memorySize}`);
    }
    assertLocalEsbuild();

    // Created beside the function: they go into its props, which exist before `this` does.
    const logGroup = new logs.LogGroup(scope, `${id}LogGroup`, {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
    });
    const role = new iam.Role(scope, `${id}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Runs the ${props.serviceName} function`,
    });
    logGroup.grantWrite(role);
    if (props.network !== undefined) grantNetworkInterfaces(role, props.network);

    const logLevel = props.logLevel ?? 'INFO';
    super(scope, id, {
      entry,
      handler: 'handler',
      description: props.description,
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize,
      ...(props.reservedConcurrentExecutions === undefined
        ? {}
        : { reservedConcurrentExecutions: props.reservedConcurrentExecutions }),
      timeout: props.timeout ?? Duration.seconds(10),
      role,
      logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      applicationLogLevelV2: APPLICATION_LOG_LEVELS[logLevel],
      systemLogLevelV2: lambda.SystemLogLevel.WARN,
      ...(props.network === undefined
        ? {}
        : {
            vpc: props.network.vpc,
            vpcSubnets: props.network.vpcSubnets,
            securityGroups: [...props.network.securityGroups],
          }),
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: join(PROJECT_ROOT, 'package-lock.json'),
      environment: {
        ...props.environment,
        NODE_OPTIONS: '--enable-source-maps',
        POWERTOOLS_SERVICE_NAME: props.serviceName,
        POWERTOOLS_LOG_LEVEL: logLevel,
      },
      bundling: {
        format: OutputFormat.ESM,
        target: 'node24',
        mainFields: ['module', 'main'],
        banner: REQUIRE_BANNER,
        minify: true,
        sourceMap: true,
        sourceMapMode: SourceMapMode.DEFAULT,
        sourcesContent: false,
        externalModules: ['@aws-sdk/*'],
        forceDockerBundling: false,
        ...(props.transformations ? { commandHooks: jsonataWorkerHooks() } : {}),
      },
    });
    this.bound = new Set(Object.keys(props.environment ?? {}));
    if (props.network !== undefined) acknowledgeNetworkInterfaceGrants(role);
  }

  /**
   * Grants exactly the listed actions on the table and on the indexes named, and sets
   * `envVar` to the table's name. List what the function's code calls, no more: the grant is
   * the function's whole access to the table.
   */
  public useTable(table: DefinedTable, envVar: TableEnvVar, grant: TableGrant): this {
    const name = table.definition.name;
    const tableActions = grant.table ?? [];
    const indexes = Object.entries(grant.indexes ?? {});
    if (tableActions.length === 0 && indexes.length === 0) {
      throw new Error(`${this.node.path}: no actions granted on table ${name}`);
    }
    checkUnique(this.node.path, `table ${name}`, tableActions);
    this.bind(envVar, table.table.tableName);
    if (tableActions.length > 0) {
      this.addToRolePolicy(
        new iam.PolicyStatement({
          actions: [...tableActions],
          resources: [table.table.tableArn],
          ...(grant.leadingKeys === undefined
            ? {}
            : {
                conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': [...grant.leadingKeys] } },
              }),
        }),
      );
    }
    const known = new Set(table.definition.globalIndexes.map((index) => index.indexName));
    for (const [indexName, actions] of indexes) {
      if (!known.has(indexName))
        throw new Error(`${this.node.path}: table ${name} has no index ${indexName}`);
      if (actions.length === 0)
        throw new Error(`${this.node.path}: no actions granted on index ${indexName}`);
      checkUnique(this.node.path, `index ${indexName}`, actions);
      this.addToRolePolicy(
        new iam.PolicyStatement({
          actions: [...actions],
          resources: [`${table.table.tableArn}/index/${indexName}`],
        }),
      );
    }
    return this;
  }

  /** Grants exactly the listed actions on the queue and sets `envVar` to its URL. */
  public useQueue(queue: sqs.IQueue, envVar: QueueEnvVar, actions: readonly QueueAction[]): this {
    if (actions.length === 0) throw new Error(`${this.node.path}: no actions granted on ${envVar}`);
    checkUnique(this.node.path, envVar, actions);
    this.bind(envVar, queue.queueUrl);
    this.addToRolePolicy(new iam.PolicyStatement({ actions: [...actions], resources: [queue.queueArn] }));
    return this;
  }

  /**
   * Grants the listed KMS actions on the key that seals signing secrets, for data keys of
   * their purpose only (the encryption context kms-cipher.ts binds), and sets the variable the
   * cipher reads to the key's ARN.
   */
  public useSecretsKey(key: kms.IKey, actions: readonly SecretsKeyAction[]): this {
    if (actions.length === 0) throw new Error(`${this.node.path}: no actions granted on the secrets key`);
    checkUnique(this.node.path, 'the secrets key', actions);
    this.bind(LAMBDA_ENV.secretsKeyArn, key.keyArn);
    this.addToRolePolicy(
      new iam.PolicyStatement({
        actions: [...actions],
        resources: [key.keyArn],
        conditions: {
          StringEquals: Object.fromEntries(
            Object.entries(ENCRYPTION_CONTEXT).map(([name, value]) => [
              `kms:EncryptionContext:${name}`,
              value,
            ]),
          ),
        },
      }),
    );
    return this;
  }

  /**
   * Sets `envVar` (bound once, as every variable). Any permission the setting needs is granted
   * with it by the construct that binds it (ConnectionApi), which alone knows what it takes.
   */
  public useSetting(envVar: SettingEnvVar, value: string): this {
    this.bind(envVar, value);
    return this;
  }

  /** Whether `envVar` is set already (by the props or a `use…` method). */
  public isBound(envVar: string): boolean {
    return this.bound.has(envVar);
  }

  private bind(envVar: string, value: string): void {
    if (this.bound.has(envVar)) throw new Error(`${this.node.path}: ${envVar} is already bound`);
    this.bound.add(envVar);
    this.addEnvironment(envVar, value);
  }
}
