/**
 * Makes the DynamoDB Local jar available. AWS publishes it as a zip on S3; the npm package
 * `amplify-dynamodb-simulator` ships the same jar, so `npm pack` (npm's integrity-checked fetch,
 * no install scripts run) gets it through the registry the project already uses.
 *
 * The emulator is unpacked once per clone into node_modules/.cache, where `npm ci` starts it
 * over and git never sees it.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const SIMULATOR_PACKAGE = 'amplify-dynamodb-simulator';
export const SIMULATOR_VERSION = '2.9.30';

export const DEFAULT_CACHE_DIR = resolve(import.meta.dirname, '../../node_modules/.cache/dynamodb-local');

/** The npm CLI: the one running us under `npm test`, else the one on PATH. */
function npmCommand(): { file: string; prefix: string[] } {
  const execPath = process.env.npm_execpath;
  if (execPath !== undefined && /\.c?js$/.test(execPath) && /npm/.test(execPath)) {
    return { file: process.execPath, prefix: [execPath] };
  }
  return { file: process.platform === 'win32' ? 'npm.cmd' : 'npm', prefix: [] };
}

/**
 * The directory holding DynamoDBLocal.jar and DynamoDBLocal_lib/, fetched on first use.
 *
 * Concurrent runs (two `vitest` processes, CI matrix jobs sharing a cache) each unpack into
 * their own temporary directory and rename it into place: a rename within one file system is
 * atomic, so a reader either sees no emulator directory or a complete one, never half a jar.
 * The loser of the race discards its copy.
 */
export async function ensureDynamoDbLocal(cacheDir: string = DEFAULT_CACHE_DIR): Promise<string> {
  const target = join(cacheDir, SIMULATOR_VERSION);
  if (existsSync(join(target, 'DynamoDBLocal.jar'))) return target;

  mkdirSync(cacheDir, { recursive: true });
  const work = mkdtempSync(join(cacheDir, `.fetch-${process.pid}-`));
  try {
    const npm = npmCommand();
    await run(
      npm.file,
      [
        ...npm.prefix,
        'pack',
        `${SIMULATOR_PACKAGE}@${SIMULATOR_VERSION}`,
        '--pack-destination',
        work,
        '--silent',
      ],
      { maxBuffer: 16 * 1024 * 1024, shell: process.platform === 'win32' },
    );
    const tarball = readdirSync(work).find((name) => name.endsWith('.tgz'));
    if (tarball === undefined) throw new Error(`npm pack left no tarball in ${work}`);
    // tar ships with Linux, macOS and Windows 10+; node has no built-in gzip-tar reader.
    await run('tar', ['-xzf', tarball, 'package/emulator'], { cwd: work });
    const unpacked = join(work, 'package', 'emulator');
    if (!existsSync(join(unpacked, 'DynamoDBLocal.jar'))) {
      throw new Error(`${SIMULATOR_PACKAGE}@${SIMULATOR_VERSION} has no emulator/DynamoDBLocal.jar`);
    }
    try {
      renameSync(unpacked, target);
    } catch (error) {
      // Another run renamed its copy first; theirs is as good as ours.
      if (!existsSync(join(target, 'DynamoDBLocal.jar'))) throw error;
    }
    return target;
  } catch (error) {
    throw new Error(
      `could not fetch DynamoDB Local (npm pack ${SIMULATOR_PACKAGE}@${SIMULATOR_VERSION}) into ${cacheDir}: ${
        error instanceof Error ? error.message : String(error)
      }`,
      { cause: error },
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
