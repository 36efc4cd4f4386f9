/**
 * Runs DynamoDB Local (in memory) as a child process on a free port, for the duration of a
 * test run.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';

const run = promisify(execFile);

export const JAVA_HINT = 'DynamoDB Local needs Java 17+: apt-get install -y openjdk-17-jre-headless';

/**
 * DynamoDB Local keeps one database per access key and region unless started with -sharedDb:
 * every client of a test run must use these, or they would not see each other's tables.
 */
export const LOCAL_REGION = 'local';
export const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' } as const;

/** The major Java version, or throws with the install hint. */
export async function checkJava(): Promise<number> {
  let output: string;
  try {
    // `java -version` writes to stderr.
    const { stdout, stderr } = await run('java', ['-version']);
    output = `${stderr}${stdout}`;
  } catch (error) {
    throw new Error(`${JAVA_HINT} (java -version failed: ${error instanceof Error ? error.message : error})`);
  }
  // "1.8.0_392" is Java 8; "17.0.15", "21" are themselves.
  const match = /version "(\d+)(?:\.(\d+))?/.exec(output);
  const first = Number(match?.[1]);
  const major = first === 1 ? Number(match?.[2]) : first;
  if (!Number.isInteger(major))
    throw new Error(`${JAVA_HINT} (cannot read the version in: ${output.trim()})`);
  if (major < 17) throw new Error(`${JAVA_HINT} (found Java ${major})`);
  return major;
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') throw new Error('no TCP port assigned');
  return address.port;
}

export interface RunningDynamoDbLocal {
  endpoint: string;
  stop(): Promise<void>;
}

async function stopProcess(child: ChildProcess): Promise<void> {
  // No pid: the spawn itself failed, there is nothing to stop.
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timedOut = sleep(5000).then(() => 'timeout' as const);
  if ((await Promise.race([exited, timedOut])) === 'timeout') {
    child.kill('SIGKILL');
    await exited;
  }
}

/** Polls ListTables until the emulator answers, or fails when it exits first or takes too long. */
async function waitUntilReady(child: ChildProcess, endpoint: string, output: () => string): Promise<void> {
  const client = new DynamoDBClient({
    endpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
    maxAttempts: 1,
  });
  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`DynamoDB Local exited (${child.exitCode ?? child.signalCode}):\n${output()}`);
      }
      try {
        await client.send(new ListTablesCommand({}), { abortSignal: AbortSignal.timeout(2000) });
        return;
      } catch (error) {
        if (Date.now() > deadline) {
          throw new Error(`DynamoDB Local did not answer within 60 s:\n${output()}`, { cause: error });
        }
        await sleep(100);
      }
    }
  } finally {
    client.destroy();
  }
}

/**
 * Starts `java -jar DynamoDBLocal.jar -inMemory` from the emulator directory (its native
 * SQLite library is found relative to it). The port is picked free just before, so another
 * process can take it in between: then the emulator exits at once and we try another port.
 */
export async function startDynamoDbLocal(emulatorDir: string): Promise<RunningDynamoDbLocal> {
  await checkJava();
  let lastError: unknown;
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = await freePort();
    const child = spawn(
      'java',
      [
        '-Djava.library.path=DynamoDBLocal_lib',
        '-jar',
        'DynamoDBLocal.jar',
        '-inMemory',
        '-port',
        String(port),
      ],
      { cwd: emulatorDir, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    const collect = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-8000);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    // A test runner killed with Ctrl-C must not leave a JVM holding the port.
    const killOnExit = () => child.kill('SIGKILL');
    process.once('exit', killOnExit);
    const spawnFailed = new Promise<never>((_, reject) => child.once('error', reject));
    // Only raced while starting; a later error must not surface as an unhandled rejection.
    spawnFailed.catch(() => undefined);
    const endpoint = `http://127.0.0.1:${port}`;
    try {
      await Promise.race([waitUntilReady(child, endpoint, () => output), spawnFailed]);
      return {
        endpoint,
        stop: async () => {
          process.off('exit', killOnExit);
          await stopProcess(child);
        },
      };
    } catch (error) {
      lastError = error;
      process.off('exit', killOnExit);
      await stopProcess(child);
    }
  }
  throw lastError;
}
