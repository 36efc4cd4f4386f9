/**
 * Cold start of each Lambda: the size of its bundle, built by the CDK wrapper itself
 * (bench/build-bundles.ts), and the time a fresh `node` takes to import it.
 *
 * Packages the wrapper leaves external (today the AWS SDK v3, which the Lambda runtime
 * provides) are resolved from this project's node_modules, as the runtime resolves them from
 * its own: their load time is part of the import measured, their bytes are not part of the
 * bundle's size (they are not uploaded).
 */
import { execFile } from 'node:child_process';
import { readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { LAMBDA_ENV } from '../functions/config.ts';
import type { ProbeResult } from './import-probe.ts';

const run = promisify(execFile);

const PROJECT_ROOT = fileURLToPath(new URL('../', import.meta.url));
const BUILDER = fileURLToPath(new URL('./build-bundles.ts', import.meta.url));
const PROBE = fileURLToPath(new URL('./import-probe.ts', import.meta.url));

/** The Lambda entries that serve requests or callbacks, as lib/constructs wires them. */
export const LAMBDA_ENTRIES = {
  api: 'functions/api/lambda.ts',
  authorizer: 'functions/authorizer/lambda.ts',
  poll: 'functions/poll/lambda.ts',
  fanout: 'functions/fanout/lambda.ts',
  dispatcher: 'functions/dispatcher/lambda.ts',
} as const;
export type LambdaName = keyof typeof LAMBDA_ENTRIES;

/** Dummy values for the settings the functions read (names from LAMBDA_ENV). */
const DUMMY_SETTINGS: Partial<Record<keyof typeof LAMBDA_ENV, string>> = {
  eventsTable: 'bench-events',
  partnersTable: 'bench-partners',
  subscriptionsTable: 'bench-subscriptions',
  deliveriesTable: 'bench-deliveries',
  deliveryQueueUrl: 'https://sqs.us-east-1.amazonaws.com/000000000000/bench-delivery',
  slowLaneQueueUrl: 'https://sqs.us-east-1.amazonaws.com/000000000000/bench-delivery-slow',
  deliveryDeadLetterQueueUrl: 'https://sqs.us-east-1.amazonaws.com/000000000000/bench-delivery-dlq',
  secretsKeyArn: 'arn:aws:kms:us-east-1:000000000000:key/00000000-0000-0000-0000-000000000000',
  fanoutQueueUrl: 'https://sqs.us-east-1.amazonaws.com/000000000000/bench-fanout',
  connectionsTable: 'bench-connections',
  connectionsEndpoint: 'https://bench0000.execute-api.us-east-1.amazonaws.com/v1',
  connectUrl: 'wss://bench0000.execute-api.us-east-1.amazonaws.com/v1',
};

/**
 * A Lambda-like environment: the function's settings with dummy values, a region, dummy
 * credentials, no instance metadata; nothing of this shell's AWS setup (profiles, SSO).
 */
function lambdaEnv(name: LambdaName): Record<string, string> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/tmp',
    AWS_REGION: 'us-east-1',
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'AKIABENCHDUMMY000000',
    AWS_SECRET_ACCESS_KEY: 'bench-dummy-secret-access-key-000000000',
    AWS_SESSION_TOKEN: 'bench-dummy-session-token',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_LAMBDA_FUNCTION_NAME: `bench-${name}`,
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '256',
    AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
    // What the wrapper sets on every function.
    NODE_OPTIONS: '--enable-source-maps',
    POWERTOOLS_SERVICE_NAME: name,
    POWERTOOLS_LOG_LEVEL: 'INFO',
  };
  for (const key of Object.keys(LAMBDA_ENV) as (keyof typeof LAMBDA_ENV)[]) {
    const value = DUMMY_SETTINGS[key];
    if (value !== undefined) env[LAMBDA_ENV[key]] = value;
  }
  return env;
}

async function probe(bundle: string, env: Record<string, string>): Promise<ProbeResult> {
  const { stdout } = await run(process.execPath, [PROBE, bundle], { env, timeout: 30_000 });
  const parsed: ProbeResult = JSON.parse(stdout.trim().split('\n').at(-1) ?? '');
  return parsed;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

/** Bare package imports left in the bundle (the wrapper's externals), e.g. @aws-sdk/client-sqs. */
function externalImports(code: string): string[] {
  const found = new Set<string>();
  for (const match of code.matchAll(
    /(?:from|import)\s*\(?"((?:@[a-z0-9-]+\/)?[a-z0-9][a-z0-9._-]*(?:\/[^"]*)?)"/g,
  )) {
    const specifier = match[1];
    if (specifier && !specifier.startsWith('node:')) found.add(specifier);
  }
  return [...found].sort();
}

export interface BundleFigure {
  name: LambdaName;
  entry: string;
  /** index.mjs, bytes: what is uploaded (the source map is a separate file). */
  bytes: number;
  sourceMapBytes: number;
  /** Packages imported at run time rather than bundled (from the Lambda runtime). */
  externals: string[];
  /** Median `await import()` time over the spawns, each in a fresh process. */
  importMs: number;
  importSamplesMs: number[];
  handler: string;
  networkAttempts: string[];
}

export interface ColdStartFigures {
  bundles: BundleFigure[];
  /** Median import of a one-line ESM module in a fresh process: the floor any bundle starts from. */
  baselineImportMs: number;
  buildMs: number;
}

export async function measureColdStart(outDir: string, spawns: number): Promise<ColdStartFigures> {
  const buildStarted = performance.now();
  const { stdout } = await run(
    process.execPath,
    [BUILDER, outDir, ...Object.entries(LAMBDA_ENTRIES).map(([name, entry]) => `${name}=${entry}`)],
    { cwd: PROJECT_ROOT, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
  );
  const built: Record<string, string> = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}');
  const buildMs = performance.now() - buildStarted;
  // The runtime's SDK stands in for the one Lambda provides: resolvable from every bundle.
  symlinkSync(join(PROJECT_ROOT, 'node_modules'), join(outDir, 'node_modules'), 'dir');

  const trivial = join(outDir, 'baseline.mjs');
  writeFileSync(trivial, 'export const handler = async () => ({ statusCode: 204 });\n');
  const baselineSamples: number[] = [];
  for (let i = 0; i < spawns; i++) baselineSamples.push((await probe(trivial, lambdaEnv('api'))).importMs);

  const bundles: BundleFigure[] = [];
  for (const [name, entry] of Object.entries(LAMBDA_ENTRIES) as [LambdaName, string][]) {
    const dir = built[name];
    if (!dir) throw new Error(`cold start: no bundle built for ${name}`);
    const bundle = join(dir, 'index.mjs');
    const samples: ProbeResult[] = [];
    for (let i = 0; i < spawns; i++) samples.push(await probe(bundle, lambdaEnv(name)));
    bundles.push({
      name,
      entry,
      bytes: statSync(bundle).size,
      sourceMapBytes: statSync(`${bundle}.map`).size,
      externals: externalImports(readFileSync(bundle, 'utf8')),
      importMs: median(samples.map((s) => s.importMs)),
      importSamplesMs: samples.map((s) => s.importMs),
      handler: samples[0]?.handler ?? 'missing',
      networkAttempts: [...new Set(samples.flatMap((s) => s.networkAttempts))],
    });
  }
  return { bundles, baselineImportMs: median(baselineSamples), buildMs };
}
