/**
 * The ops commands against a service stack on AWS, with the caller's own credentials (the
 * standard AWS credential chain). The stack's outputs (CloudFormation DescribeStacks) name its
 * queues, tables and API. Queues and dead letters are worked on directly, by the same use cases
 * the ops function runs (functions/core/ops.ts) on the same adapters: a redrive of a whole
 * dead-letter queue is an SQS move task to the queue it redrives to (the pipe DLQ's goes to the
 * recovery queue, whose function queues each batch's events for fan-out again). Partners and
 * events go to the stack's API, SigV4-signed, since those routes take IAM authorisation.
 */
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import {
  CloudFormationClient,
  type CloudFormationClientConfig,
  DescribeStacksCommand,
  type DescribeStacksCommandOutput,
} from '@aws-sdk/client-cloudformation';
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { SignatureV4 } from '@smithy/signature-v4';
import { CloudWatchQueueAges } from '../../functions/adapters/aws/cloudwatch.ts';
import { DynamoDeliveryStore } from '../../functions/adapters/aws/deliveries.ts';
import { AWS_OPS_QUEUES, SqsOpsQueues } from '../../functions/adapters/aws/sqs-ops.ts';
import { DynamoSubscriptionStore } from '../../functions/adapters/aws/subscriptions.ts';
import { refusingCipher } from '../../functions/adapters/secrets/refusing-cipher.ts';
import { DomainError } from '../../functions/core/errors.ts';
import {
  cancelRedrive,
  listDeadLetters,
  listQueues,
  listRedrives,
  listSubscriptionsByHealth,
  type OpsDeps,
  purgeDeadLetters,
  redriveDeadLetters,
} from '../../functions/core/ops.ts';
import { BackendError, type CreatedPartnerView, type OpsBackend } from './backend.ts';

/** The stack output that holds each queue's URL (`<name>Url`) and ARN (`<name>Arn`), by its setting. */
const QUEUE_OUTPUTS: Readonly<Record<(typeof AWS_OPS_QUEUES)[number]['key'], string>> = {
  fanoutQueueUrl: 'FanoutQueue',
  fanoutDeadLetterQueueUrl: 'FanoutDeadLetterQueue',
  deliveryQueueUrl: 'DeliveryQueue',
  deliveryDeadLetterQueueUrl: 'DeliveryDeadLetterQueue',
  slowLaneQueueUrl: 'SlowLaneQueue',
  slowLaneDeadLetterQueueUrl: 'SlowLaneDeadLetterQueue',
  pipeRecoveryQueueUrl: 'PipeRecoveryQueue',
  pipeDeadLetterQueueUrl: 'PipeDeadLetterQueue',
};

/** Every output of the service stack this backend reads. */
export const STACK_OUTPUTS: readonly string[] = [
  'ApiUrl',
  'SubscriptionsTableName',
  'DeliveriesTableName',
  ...Object.values(QUEUE_OUTPUTS).flatMap((name) => [`${name}Url`, `${name}Arn`]),
];

/**
 * How long a redrive of at most `max` messages keeps moving them: a command line has no API
 * Gateway timeout to keep within, so longer than the ops function's 15 s.
 */
const MOVE_BUDGET_MS = 5 * 60_000;

export interface AwsBackendOptions {
  /** The service stack's name: `WebhookDispatcher-<stage>-Service`. */
  stack: string;
  /** @default - the credential chain's (AWS_REGION, the profile's) */
  region?: string;
  /** @default - the standard credential chain */
  credentials?: CloudFormationClientConfig['credentials'];
  /** A DynamoDB endpoint other than AWS's (DynamoDB Local, in tests). @default - AWS's */
  dynamoEndpoint?: string;
}

type SourceData = string | ArrayBuffer | ArrayBufferView;

function bytes(data: SourceData): Uint8Array {
  if (typeof data === 'string') return new TextEncoder().encode(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Uint8Array(data);
}

/** SHA-256 (an HMAC given a secret) on node:crypto, as SignatureV4 takes a hash. */
class Sha256 {
  readonly #secret: SourceData | undefined;
  #hash: Hash | Hmac;

  constructor(secret?: SourceData) {
    this.#secret = secret;
    this.#hash = this.#fresh();
  }

  update(data: SourceData): void {
    this.#hash.update(bytes(data));
  }

  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.#hash.digest());
  }

  reset(): void {
    this.#hash = this.#fresh();
  }

  #fresh(): Hash | Hmac {
    return this.#secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(this.#secret));
  }
}

/** An error of the use cases or of AWS, as the command line reports it. */
function backendError(error: unknown): unknown {
  if (error instanceof BackendError) return error;
  if (error instanceof DomainError)
    return new BackendError(`${error.status}: ${error.message}`, error.status);
  if (error instanceof Error) return new BackendError(`${error.name}: ${error.message}`);
  return error;
}

async function translated<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw backendError(error);
  }
}

/** The service stack's outputs, by key. */
async function stackOutputs(client: CloudFormationClient, stack: string): Promise<Map<string, string>> {
  let answer: DescribeStacksCommandOutput;
  try {
    answer = await client.send(new DescribeStacksCommand({ StackName: stack }));
  } catch (error) {
    if (error instanceof Error && /does not exist/.test(error.message)) {
      throw new BackendError(
        `no stack ${stack} here: name the service stack, e.g. WebhookDispatcher-prod-Service (and --region)`,
      );
    }
    throw backendError(error);
  }
  const outputs = new Map<string, string>();
  for (const output of answer.Stacks?.[0]?.Outputs ?? []) {
    if (output.OutputKey !== undefined && output.OutputValue !== undefined)
      outputs.set(output.OutputKey, output.OutputValue);
  }
  const missing = STACK_OUTPUTS.filter((key) => !outputs.has(key));
  if (missing.length > 0) {
    throw new BackendError(
      `stack ${stack} has no output ${missing.join(', ')}: name the service stack (…-Service), deployed by this version`,
    );
  }
  return outputs;
}

/** The ops backend of a service stack on AWS. */
export async function awsBackend(options: AwsBackendOptions): Promise<OpsBackend> {
  const config = {
    ...(options.region === undefined ? {} : { region: options.region }),
    ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
  };
  const cloudFormation = new CloudFormationClient(config);
  const sqs = new SQSClient(config);
  const cloudWatch = new CloudWatchClient(config);
  const dynamo = new DynamoDBClient({
    ...config,
    ...(options.dynamoEndpoint === undefined ? {} : { endpoint: options.dynamoEndpoint }),
  });
  const clients = [cloudFormation, sqs, cloudWatch, dynamo];
  const close = async () => {
    for (const client of clients) client.destroy();
  };
  let outputs: Map<string, string>;
  let region: string;
  try {
    outputs = await stackOutputs(cloudFormation, options.stack);
    region = await cloudFormation.config.region();
  } catch (error) {
    await close();
    throw backendError(error);
  }
  const output = (key: string): string => {
    const value = outputs.get(key);
    if (value === undefined) throw new BackendError(`stack ${options.stack} has no output ${key}`);
    return value;
  };
  const documents = DynamoDBDocumentClient.from(dynamo, { marshallOptions: { removeUndefinedValues: true } });
  const deps: OpsDeps = {
    queues: new SqsOpsQueues(
      sqs,
      AWS_OPS_QUEUES.map(({ key, ...queue }) => ({
        ...queue,
        url: output(`${QUEUE_OUTPUTS[key]}Url`),
        arn: output(`${QUEUE_OUTPUTS[key]}Arn`),
      })),
      { ages: new CloudWatchQueueAges(cloudWatch), moveBudgetMs: MOVE_BUDGET_MS },
    ),
    deliveries: new DynamoDeliveryStore(documents, output('DeliveriesTableName')),
    // Ops read subscriptions with describe and listByHealth only, which never open a secret.
    subscriptions: new DynamoSubscriptionStore(documents, output('SubscriptionsTableName'), refusingCipher),
  };

  const apiUrl = output('ApiUrl');
  const signer = new SignatureV4({
    service: 'execute-api',
    region,
    credentials: cloudFormation.config.credentials,
    sha256: Sha256,
  });
  /** A SigV4-signed JSON request to the stack's API, answered with its JSON. */
  async function call<T>(method: string, path: string, body: unknown): Promise<T> {
    const url = new URL(path.replace(/^\//, ''), apiUrl.endsWith('/') ? apiUrl : `${apiUrl}/`);
    const text = JSON.stringify(body);
    const signed = await signer.sign({
      method,
      protocol: url.protocol,
      hostname: url.hostname,
      ...(url.port === '' ? {} : { port: Number(url.port) }),
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: { host: url.host, 'content-type': 'application/json' },
      body: text,
    });
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers: signed.headers,
        body: text,
        signal: AbortSignal.timeout(30_000),
      });
    } catch (error) {
      const cause =
        error instanceof Error && error.cause instanceof Error ? error.cause.message : String(error);
      throw new BackendError(`the API of ${options.stack} (${apiUrl}) does not answer: ${cause}`);
    }
    const answer = await response.text();
    if (!response.ok) {
      let detail = answer || response.statusText;
      try {
        const problem = JSON.parse(answer) as { detail?: string; message?: string };
        detail = problem.detail ?? problem.message ?? detail;
      } catch {
        // Not JSON: the text says it.
      }
      throw new BackendError(`${response.status}: ${detail}`, response.status);
    }
    return JSON.parse(answer) as T;
  }

  return {
    target: `${options.stack} (${region})`,
    queues: () => translated(() => listQueues(deps)),
    deadLetters: (queue, limit) => translated(() => listDeadLetters(deps, queue, limit)),
    redrive: (queue, request) => translated(() => redriveDeadLetters(deps, queue, request)),
    redrives: (queue) => translated(() => listRedrives(deps, queue)),
    cancelRedrive: (queue, taskId) => translated(() => cancelRedrive(deps, queue, taskId)),
    purge: (queue) => translated(() => purgeDeadLetters(deps, queue)),
    subscriptions: (status, query) =>
      translated(() =>
        listSubscriptionsByHealth(deps, status, {
          limit: query.limit,
          ...(query.after === undefined ? {} : { after: query.after }),
        }),
      ),
    createPartner: (name) => translated(() => call<CreatedPartnerView>('POST', '/v1/partners', { name })),
    publish: (event) => translated(() => call<{ id: string; created: boolean }>('POST', '/v1/events', event)),
    close,
  };
}
