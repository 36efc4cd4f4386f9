/**
 * The one module that reads the environment. Each runtime parses it once, with zod, into a
 * typed object; a missing or bad variable fails at start with a message naming it.
 */
import * as z from 'zod';
import { DEFAULT_DISABLE_AFTER_MS } from './core/health.ts';
import { DEFAULT_REQUEST_LIMITS, REQUESTS_PER_SECOND } from './core/limits.ts';
import { checkRetrySchedule, DEFAULT_RETRY_SCHEDULE, parseRetrySchedule } from './core/retry.ts';

const booleanText = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((value) => value === 'true' || value === '1' || value === 'yes');

/**
 * A retry schedule as comma-separated text (an environment variable, `-c key=value`) or as a
 * list of numbers (cdk.json). Exported with the other shared bounds below, so the CDK
 * settings accept exactly what the functions will.
 */
export const retryScheduleSetting = z.union([z.string(), z.array(z.number())]).transform((value, ctx) => {
  try {
    if (typeof value === 'string') return parseRetrySchedule(value);
    checkRetrySchedule(value);
    return value;
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: error instanceof Error ? error.message : String(error) });
    return z.NEVER;
  }
});

/** Milliseconds a callback may take. */
export const DELIVERY_TIMEOUT_MS = { min: 100, max: 60_000, default: 10_000 } as const;
export const deliveryTimeoutMsSetting = z.coerce
  .number()
  .int()
  .min(DELIVERY_TIMEOUT_MS.min)
  .max(DELIVERY_TIMEOUT_MS.max)
  .default(DELIVERY_TIMEOUT_MS.default);

/** Days an event (and its deliveries) is kept. */
export const retentionDaysSetting = z.coerce.number().int().min(1).max(3650).default(30);
/**
 * The fixed addresses callbacks leave from, comma-separated (`-c staticEgress=true` on AWS
 * sets them from the NAT gateways' Elastic IPs); none: no fixed address is promised.
 */
export const egressIpsSetting = z
  .string()
  .transform((text) =>
    text
      .split(',')
      .map((part) => part.trim())
      .filter((part) => part !== ''),
  )
  .pipe(z.array(z.union([z.ipv4(), z.ipv6()])).max(16))
  .default([]);

/** A caller's requests per second; the CDK settings accept exactly this too. */
export const requestsPerSecondSetting = (fallback: number) =>
  z.coerce.number().int().min(REQUESTS_PER_SECOND.min).max(REQUESTS_PER_SECOND.max).default(fallback);

/** Hours an endpoint may fail without one success before it is disabled, read as ms. */
const disableAfter = z.coerce
  .number()
  .positive()
  .max(24 * 365)
  .default(DEFAULT_DISABLE_AFTER_MS / 3_600_000)
  .transform((hours) => hours * 3_600_000);

const LocalEnv = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  HOST: z.string().min(1).default('127.0.0.1'),
  DISPATCHER_DATA_DIR: z.string().min(1).default('.data'),
  DISPATCHER_ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  DISPATCHER_SECRET_KEY_FILE: z.string().min(1).optional(),
  DISPATCHER_RETRY_SCHEDULE: retryScheduleSetting.optional(),
  DISPATCHER_DELIVERY_TIMEOUT_MS: deliveryTimeoutMsSetting,
  DISPATCHER_ALLOW_PRIVATE_TARGETS: booleanText.default(true),
  DISPATCHER_DISABLE_AFTER_HOURS: disableAfter,
  DISPATCHER_RETENTION_DAYS: retentionDaysSetting,
  DISPATCHER_EGRESS_IPS: egressIpsSetting,
  DISPATCHER_PARTNER_REQUESTS_PER_SECOND: requestsPerSecondSetting(DEFAULT_REQUEST_LIMITS.partnerPerSecond),
  DISPATCHER_PRODUCER_REQUESTS_PER_SECOND: requestsPerSecondSetting(DEFAULT_REQUEST_LIMITS.producerPerSecond),
});

/** Settings of the local runtime (`dispatcher start`). */
export interface LocalConfig {
  port: number;
  host: string;
  dataDir: string;
  /** Unset means: generate one at start and print it. */
  adminToken: string | undefined;
  /** The key file sealing signing secrets; unset means `secret-keys.json` in the data dir. */
  secretKeyFile: string | undefined;
  retrySchedule: readonly number[];
  deliveryTimeoutMs: number;
  allowPrivateTargets: boolean;
  disableAfterMs: number;
  /** Days events, their deliveries and attempts are kept, as on AWS (TTL there, a sweep here). */
  retentionDays: number;
  /** Addresses callbacks leave from that partners may allowlist; none by default. */
  egressIps: readonly string[];
  /** Requests per second of one partner's API key, and of the producer (the admin token). */
  partnerRequestsPerSecond: number;
  producerRequestsPerSecond: number;
}

/** Thrown with every bad variable named, so a start-up failure says what to fix. */
export class ConfigError extends Error {
  constructor(issues: z.core.$ZodIssue[]) {
    super(
      `invalid configuration:\n${issues.map((issue) => `  ${issue.path.join('.')}: ${issue.message}`).join('\n')}`,
    );
    this.name = 'ConfigError';
  }
}

/** Parses the local runtime's variables out of `env` (tests pass their own). */
export function parseLocalConfig(env: Record<string, string | undefined>): LocalConfig {
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''));
  const parsed = LocalEnv.safeParse(present);
  if (!parsed.success) throw new ConfigError(parsed.error.issues);
  const e = parsed.data;
  return {
    port: e.PORT,
    host: e.HOST,
    dataDir: e.DISPATCHER_DATA_DIR,
    adminToken: e.DISPATCHER_ADMIN_TOKEN,
    secretKeyFile: e.DISPATCHER_SECRET_KEY_FILE,
    retrySchedule: e.DISPATCHER_RETRY_SCHEDULE ?? DEFAULT_RETRY_SCHEDULE,
    deliveryTimeoutMs: e.DISPATCHER_DELIVERY_TIMEOUT_MS,
    allowPrivateTargets: e.DISPATCHER_ALLOW_PRIVATE_TARGETS,
    disableAfterMs: e.DISPATCHER_DISABLE_AFTER_HOURS,
    retentionDays: e.DISPATCHER_RETENTION_DAYS,
    egressIps: e.DISPATCHER_EGRESS_IPS,
    partnerRequestsPerSecond: e.DISPATCHER_PARTNER_REQUESTS_PER_SECOND,
    producerRequestsPerSecond: e.DISPATCHER_PRODUCER_REQUESTS_PER_SECOND,
  };
}

/** The local runtime's configuration from this process's environment. */
export function loadLocalConfig(): LocalConfig {
  return parseLocalConfig(process.env);
}

/** The environment variables the Lambda functions read; the CDK stack sets them from here. */
export const LAMBDA_ENV = {
  eventsTable: 'EVENTS_TABLE_NAME',
  partnersTable: 'PARTNERS_TABLE_NAME',
  subscriptionsTable: 'SUBSCRIPTIONS_TABLE_NAME',
  deliveriesTable: 'DELIVERIES_TABLE_NAME',
  deliveryQueueUrl: 'DELIVERY_QUEUE_URL',
  slowLaneQueueUrl: 'SLOW_LANE_QUEUE_URL',
  deliveryDeadLetterQueueUrl: 'DELIVERY_DLQ_URL',
  slowLaneDeadLetterQueueUrl: 'SLOW_LANE_DLQ_URL',
  pipeDeadLetterQueueUrl: 'PIPE_DLQ_URL',
  pipeRecoveryQueueUrl: 'PIPE_RECOVERY_QUEUE_URL',
  fanoutQueueUrl: 'FANOUT_QUEUE_URL',
  fanoutDeadLetterQueueUrl: 'FANOUT_DLQ_URL',
  deliveryMetricsNamespace: 'DELIVERY_METRICS_NAMESPACE',
  secretsKeyArn: 'SECRETS_KEY_ARN',
  retrySchedule: 'DISPATCHER_RETRY_SCHEDULE',
  deliveryTimeoutMs: 'DISPATCHER_DELIVERY_TIMEOUT_MS',
  allowPrivateTargets: 'DISPATCHER_ALLOW_PRIVATE_TARGETS',
  retentionDays: 'DISPATCHER_RETENTION_DAYS',
  egressIps: 'DISPATCHER_EGRESS_IPS',
  disableAfterMs: 'DISPATCHER_DISABLE_AFTER_HOURS',
  partnerRequestsPerSecond: 'DISPATCHER_PARTNER_REQUESTS_PER_SECOND',
  producerRequestsPerSecond: 'DISPATCHER_PRODUCER_REQUESTS_PER_SECOND',
  connectionsTable: 'CONNECTIONS_TABLE_NAME',
  connectionsEndpoint: 'CONNECTIONS_ENDPOINT',
  connectUrl: 'CONNECT_URL',
} as const;

const name = z.string().min(1);

/** One schema per setting, keyed like LambdaConfig. */
const lambdaSettings = {
  eventsTable: name,
  partnersTable: name,
  subscriptionsTable: name,
  deliveriesTable: name,
  deliveryQueueUrl: z.url(),
  slowLaneQueueUrl: z.url(),
  deliveryDeadLetterQueueUrl: z.url(),
  slowLaneDeadLetterQueueUrl: z.url(),
  pipeDeadLetterQueueUrl: z.url(),
  pipeRecoveryQueueUrl: z.url(),
  fanoutQueueUrl: z.url(),
  fanoutDeadLetterQueueUrl: z.url(),
  deliveryMetricsNamespace: name,
  secretsKeyArn: name,
  retrySchedule: retryScheduleSetting.default([...DEFAULT_RETRY_SCHEDULE]),
  deliveryTimeoutMs: deliveryTimeoutMsSetting,
  // Production refuses private targets unless a deployment says otherwise.
  allowPrivateTargets: booleanText.default(false),
  retentionDays: retentionDaysSetting,
  egressIps: egressIpsSetting,
  disableAfterMs: disableAfter,
  partnerRequestsPerSecond: requestsPerSecondSetting(DEFAULT_REQUEST_LIMITS.partnerPerSecond),
  producerRequestsPerSecond: requestsPerSecondSetting(DEFAULT_REQUEST_LIMITS.producerPerSecond),
  connectionsTable: name,
  connectionsEndpoint: z.url({ protocol: /^https$/ }),
  connectUrl: z.url({ protocol: /^wss$/ }),
} satisfies Record<keyof typeof LAMBDA_ENV, z.ZodType>;

/** Settings of the Lambda functions; each function asks only for the keys it uses. */
export interface LambdaConfig {
  eventsTable: string;
  partnersTable: string;
  subscriptionsTable: string;
  deliveriesTable: string;
  deliveryQueueUrl: string;
  slowLaneQueueUrl: string;
  deliveryDeadLetterQueueUrl: string;
  slowLaneDeadLetterQueueUrl: string;
  pipeDeadLetterQueueUrl: string;
  /** The queue the pipe's dead letters are redriven to, which the recovery function consumes. */
  pipeRecoveryQueueUrl: string;
  fanoutQueueUrl: string;
  fanoutDeadLetterQueueUrl: string;
  /** Where the dispatcher's metrics are (DELIVERY_METRICS; the stack's name on AWS), for the ops function. */
  deliveryMetricsNamespace: string;
  /** The KMS key that seals signing secrets (kms-cipher.ts). */
  secretsKeyArn: string;
  retrySchedule: readonly number[];
  deliveryTimeoutMs: number;
  allowPrivateTargets: boolean;
  retentionDays: number;
  /** The NAT gateways' Elastic IPs with `staticEgress`; none otherwise. */
  egressIps: readonly string[];
  disableAfterMs: number;
  partnerRequestsPerSecond: number;
  producerRequestsPerSecond: number;
  /** The partners' open connections and their answers (functions/adapters/aws/connections.ts). */
  connectionsTable: string;
  /** The WebSocket API's management endpoint (https://…/<stage>): PostToConnection, DeleteConnection. */
  connectionsEndpoint: string;
  /** Where partners open connections (wss://…/<stage>), told by GET /v1/connect-info. */
  connectUrl: string;
}

type LambdaKey = keyof LambdaConfig;

/**
 * Parses the variables behind `keys` (and no others, so a function is not failed for a
 * variable it never uses); throws a ConfigError naming each missing or bad one.
 */
export function parseLambdaConfig<K extends LambdaKey>(
  keys: readonly K[],
  env: Record<string, string | undefined>,
): Pick<LambdaConfig, K> {
  const schema = z.object(Object.fromEntries(keys.map((key) => [LAMBDA_ENV[key], lambdaSettings[key]])));
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''));
  const parsed = schema.safeParse(present);
  if (!parsed.success) throw new ConfigError(parsed.error.issues);
  const values: Record<string, unknown> = parsed.data;
  return Object.fromEntries(keys.map((key) => [key, values[LAMBDA_ENV[key]]])) as Pick<LambdaConfig, K>;
}

/** A Lambda function's configuration from its environment, read once at cold start. */
export function loadLambdaConfig<K extends LambdaKey>(keys: readonly K[]): Pick<LambdaConfig, K> {
  return parseLambdaConfig(keys, process.env);
}
