/**
 * The one module that reads the environment. Each runtime parses it once, with zod, into a
 * typed object; a missing or bad variable fails at start with a message naming it.
 */
import { z } from 'zod';
import { DEFAULT_RETRY_SCHEDULE, parseRetrySchedule } from './core/retry.ts';

const booleanText = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((value) => value === 'true' || value === '1' || value === 'yes');

const retrySchedule = z.string().transform((text, ctx) => {
  try {
    return parseRetrySchedule(text);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: error instanceof Error ? error.message : String(error) });
    return z.NEVER;
  }
});

const LocalEnv = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  HOST: z.string().min(1).default('127.0.0.1'),
  DISPATCHER_DATA_DIR: z.string().min(1).default('.data'),
  DISPATCHER_ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  DISPATCHER_RETRY_SCHEDULE: retrySchedule.optional(),
  DISPATCHER_DELIVERY_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(10_000),
  DISPATCHER_ALLOW_PRIVATE_TARGETS: booleanText.default(true),
});

/** Settings of the local runtime (`dispatcher start`). */
export interface LocalConfig {
  port: number;
  host: string;
  dataDir: string;
  /** Unset means: generate one at start and print it. */
  adminToken: string | undefined;
  retrySchedule: readonly number[];
  deliveryTimeoutMs: number;
  allowPrivateTargets: boolean;
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
    retrySchedule: e.DISPATCHER_RETRY_SCHEDULE ?? DEFAULT_RETRY_SCHEDULE,
    deliveryTimeoutMs: e.DISPATCHER_DELIVERY_TIMEOUT_MS,
    allowPrivateTargets: e.DISPATCHER_ALLOW_PRIVATE_TARGETS,
  };
}

/** The local runtime's configuration from this process's environment. */
export function loadLocalConfig(): LocalConfig {
  return parseLocalConfig(process.env);
}
