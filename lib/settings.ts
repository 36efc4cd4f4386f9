/**
 * The deployment's settings, read once from CDK context (`cdk.json` or `-c key=value`) and
 * checked before any construct is built, so a bad value fails synth with the key named.
 *
 *   npx cdk synth -c stage=prod -c alarmEmail=ops@example.com -c retrySchedule=0,5,300,1800
 */
import type { Node } from 'constructs';
import { z } from 'zod';
import {
  DELIVERY_TIMEOUT_MS,
  deliveryTimeoutMsSetting,
  requestsPerSecondSetting,
  retentionDaysSetting,
  retryScheduleSetting,
} from '../functions/config.ts';
import { DEFAULT_REQUEST_LIMITS } from '../functions/core/limits.ts';
import { DEFAULT_RETRY_SCHEDULE } from '../functions/core/retry.ts';

/** What a deployment may choose; everything else is fixed by the design. */
export interface DispatcherSettings {
  /** Names the stacks (`WebhookDispatcher-<stage>-…`) and tags every resource. */
  readonly stage: string;
  /** Seconds before each delivery try; its length is the number of tries. */
  readonly retrySchedule: readonly number[];
  /** Per-callback HTTP timeout; the dispatcher's function timeout is derived from it. */
  readonly deliveryTimeoutMs: number;
  /** Most concurrent dispatcher invocations the delivery queue's event source starts. */
  readonly dispatcherMaxConcurrency: number;
  /** Days events are kept (their TTL), and with them their deliveries and attempts. */
  readonly retentionDays: number;
  /** Requests per second of each partner's API key, and of each producer (IAM role or user). */
  readonly partnerRequestsPerSecond: number;
  readonly producerRequestsPerSecond: number;
  /** Where alarm notifications go; unset: the topic has no subscription. */
  readonly alarmEmail: string | undefined;
  /**
   * Callbacks leave from fixed addresses: the dispatcher runs in a VPC whose NAT gateways have
   * Elastic IPs, which partners may allowlist (lib/constructs/egress-network.ts). Off: it runs
   * outside any VPC and callbacks leave from Lambda's shared, changing addresses.
   */
  readonly staticEgress: boolean;
}

/** The context key of each setting. */
export const CONTEXT_KEYS = {
  stage: 'stage',
  retrySchedule: 'retrySchedule',
  deliveryTimeoutMs: 'deliveryTimeoutMs',
  dispatcherMaxConcurrency: 'dispatcherMaxConcurrency',
  retentionDays: 'retentionDays',
  partnerRequestsPerSecond: 'partnerRequestsPerSecond',
  producerRequestsPerSecond: 'producerRequestsPerSecond',
  alarmEmail: 'alarmEmail',
  staticEgress: 'staticEgress',
} as const satisfies Record<keyof DispatcherSettings, string>;

export const DEFAULT_SETTINGS: DispatcherSettings = {
  stage: 'dev',
  retrySchedule: DEFAULT_RETRY_SCHEDULE,
  deliveryTimeoutMs: DELIVERY_TIMEOUT_MS.default,
  // Enough for the fleet of npm run capacity (5,000 callbacks a second), well within the
  // account's 1,000 concurrent executions.
  dispatcherMaxConcurrency: 200,
  retentionDays: 30,
  partnerRequestsPerSecond: DEFAULT_REQUEST_LIMITS.partnerPerSecond,
  producerRequestsPerSecond: DEFAULT_REQUEST_LIMITS.producerPerSecond,
  alarmEmail: undefined,
  staticEgress: false,
};

/** A yes/no setting: `true`/`false` in cdk.json, or their text from `-c key=value`. */
const flag = z
  .union([z.boolean(), z.enum(['true', 'false'])], 'must be true or false')
  .transform((value) => value === true || value === 'true');

const ContextSchema = z.object({
  [CONTEXT_KEYS.stage]: z
    .string()
    .regex(
      /^[a-z][a-z0-9-]{0,19}$/,
      'must be 1-20 lower-case letters, digits or hyphens, starting with a letter',
    )
    .default(DEFAULT_SETTINGS.stage),
  // The dispatcher's own schemas (functions/config.ts): synth accepts what the functions will.
  [CONTEXT_KEYS.retrySchedule]: retryScheduleSetting.optional(),
  [CONTEXT_KEYS.deliveryTimeoutMs]: deliveryTimeoutMsSetting,
  // The bounds SQS event sources accept for MaximumConcurrency.
  [CONTEXT_KEYS.dispatcherMaxConcurrency]: z.coerce
    .number()
    .int()
    .min(2)
    .max(1000)
    .default(DEFAULT_SETTINGS.dispatcherMaxConcurrency),
  [CONTEXT_KEYS.retentionDays]: retentionDaysSetting,
  [CONTEXT_KEYS.partnerRequestsPerSecond]: requestsPerSecondSetting(DEFAULT_REQUEST_LIMITS.partnerPerSecond),
  [CONTEXT_KEYS.producerRequestsPerSecond]: requestsPerSecondSetting(
    DEFAULT_REQUEST_LIMITS.producerPerSecond,
  ),
  [CONTEXT_KEYS.alarmEmail]: z.email('must be an e-mail address').optional(),
  [CONTEXT_KEYS.staticEgress]: flag.default(DEFAULT_SETTINGS.staticEgress),
});

/** Thrown with every bad context value named. */
export class SettingsError extends Error {
  constructor(issues: readonly z.core.$ZodIssue[]) {
    super(
      `invalid CDK context:\n${issues.map((issue) => `  ${issue.path.join('.')}: ${issue.message}`).join('\n')}`,
    );
    this.name = 'SettingsError';
  }
}

/**
 * Parses the settings out of context values; an absent or empty value takes its default.
 * @throws SettingsError naming each bad value.
 */
export function parseSettings(context: Readonly<Record<string, unknown>>): DispatcherSettings {
  const present = Object.fromEntries(
    Object.values(CONTEXT_KEYS)
      .map((key): [string, unknown] => [key, context[key]])
      .filter(([, value]) => value !== undefined && value !== ''),
  );
  const parsed = ContextSchema.safeParse(present);
  if (!parsed.success) throw new SettingsError(parsed.error.issues);
  const c = parsed.data;
  return {
    stage: c.stage,
    retrySchedule: c.retrySchedule ?? DEFAULT_SETTINGS.retrySchedule,
    deliveryTimeoutMs: c.deliveryTimeoutMs,
    dispatcherMaxConcurrency: c.dispatcherMaxConcurrency,
    retentionDays: c.retentionDays,
    partnerRequestsPerSecond: c.partnerRequestsPerSecond,
    producerRequestsPerSecond: c.producerRequestsPerSecond,
    alarmEmail: c.alarmEmail,
    staticEgress: c.staticEgress,
  };
}

/** The settings from a construct tree's context (the app's). */
export function readSettings(node: Node): DispatcherSettings {
  return parseSettings(
    Object.fromEntries(Object.values(CONTEXT_KEYS).map((key) => [key, node.tryGetContext(key)])),
  );
}
