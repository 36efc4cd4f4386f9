/**
 * The layers' import rule (docs/architecture.md, "Layers"), checked on the source itself:
 * - the core imports only the core, zod and Node's pure modules: no adapter, no AWS, no I/O;
 * - handlers (functions/<name>/handler.ts and the API's modules but its Lambda entry) import no
 *   adapter and no AWS SDK: the Lambda entries and the local runtime wire adapters to them;
 * - the CDK app imports from functions/ only the definitions the two share, listed here.
 * A new import that breaks a rule fails this test, and `npm test` with it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');

/** Node modules the core may use: computation only (hashes, address parsing, deep equality). */
const CORE_NODE_MODULES = new Set(['node:crypto', 'node:net', 'node:util']);
const CORE_PACKAGES = new Set(['zod']);

/** What lib/ may import from functions/: definitions the deployed code and the stacks share. */
const SHARED_WITH_LIB = new Set([
  'functions/adapters/delivery-metrics.ts', // the dispatcher's metric names, for the dashboard
  'functions/adapters/aws/kms-cipher.ts', // the encryption context the key policy binds
  'functions/adapters/aws/pipe.ts', // the pipe's filter and input template
  'functions/adapters/aws/tables.ts', // the tables' keys and indexes
  'functions/adapters/jsonata/limits.ts', // where the JSONata worker's source is, and its bundle's name
  'functions/api/routes.ts', // the routes the HTTP API is built from
  'functions/aws-quotas.ts', // AWS's published limits
  'functions/config.ts', // the environment the functions read
  'functions/core/delivery.ts', // DELIVERY_MAX_RECEIVES
  'functions/core/due-retries.ts', // the sweeper's schedule and lead
  'functions/core/limits.ts', // per-partner limits
  'functions/core/retry.ts', // the retry schedule and SQS's delay limit
]);

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => relative(ROOT, join(entry.parentPath, entry.name)));
}

/** Every module a file imports or re-exports, statically or dynamically, as written. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const specifiers: string[] = [];
  const patterns = [
    /^\s*(?:import|export)\s[^'";]*?\sfrom\s+['"]([^'"]+)['"]/gm,
    /^\s*import\s+['"]([^'"]+)['"]/gm,
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const pattern of patterns) {
    for (const match of text.matchAll(pattern)) if (match[1] !== undefined) specifiers.push(match[1]);
  }
  return specifiers;
}

/** A relative specifier as a path from the repository root; a package or node: module as it is. */
function target(file: string, specifier: string): string {
  return specifier.startsWith('.') ? relative(ROOT, resolve(ROOT, dirname(file), specifier)) : specifier;
}

function violations(files: string[], allowed: (to: string) => boolean): string[] {
  return files.flatMap((file) =>
    importsOf(file)
      .map((specifier) => target(file, specifier))
      .filter((to) => !allowed(to))
      .map((to) => `${file} imports ${to}`),
  );
}

const isAdapter = (to: string) => to.startsWith('functions/adapters/');
const isAwsSdk = (to: string) =>
  to.startsWith('@aws-sdk/') || to === 'aws-cdk-lib' || to.startsWith('aws-cdk-lib/');

describe('the import rule', () => {
  it('finds the imports it checks: static, re-exports, type-only, multi-line and dynamic', () => {
    const handler = importsOf('functions/api/handler.ts');
    expect(handler.length).toBeGreaterThan(5);
    expect(importsOf('functions/core/fanout.ts')).toEqual(
      expect.arrayContaining(['./ids.ts', './model.ts', './subscriptions.ts']),
    );
  });

  it('keeps the core to itself, zod and pure Node modules', () => {
    const core = sourceFiles('functions/core');
    expect(core.length).toBeGreaterThan(10);
    expect(
      violations(
        core,
        (to) => to.startsWith('functions/core/') || CORE_PACKAGES.has(to) || CORE_NODE_MODULES.has(to),
      ),
    ).toEqual([]);
  });

  it('keeps adapters and the AWS SDK out of the handlers', () => {
    const handlers = [
      ...sourceFiles('functions').filter((file) => /^functions\/[a-z-]+\/handler\.ts$/.test(file)),
      ...sourceFiles('functions/api').filter((file) => !file.endsWith('/lambda.ts')),
    ];
    expect(handlers).toEqual(
      expect.arrayContaining(['functions/api/handler.ts', 'functions/dispatcher/handler.ts']),
    );
    expect(violations(handlers, (to) => !isAdapter(to) && !isAwsSdk(to))).toEqual([]);
  });

  it('lets the CDK app take from functions/ only the definitions the two share', () => {
    const lib = [...sourceFiles('lib'), ...sourceFiles('bin').filter((file) => file === 'bin/app.ts')];
    expect(violations(lib, (to) => !to.startsWith('functions/') || SHARED_WITH_LIB.has(to))).toEqual([]);
  });

  it('would catch a core module importing a port implementation', () => {
    expect(
      violations(
        ['functions/core/fanout.ts'],
        (to) => to.startsWith('functions/core/') && to !== 'functions/core/ids.ts',
      ),
    ).toContain('functions/core/fanout.ts imports functions/core/ids.ts');
  });
});
