/**
 * The bench's processes (receiver, local runtime, handler alone) talk to the runner over the
 * fork IPC channel with a small request/answer protocol: the runner sends `{id, method, params}`,
 * the child answers `{id, result}` or `{id, error}`. Nothing is sent per callback: children
 * aggregate and answer when asked, so IPC costs nothing during a measurement.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { performance } from 'node:perf_hooks';

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

interface RpcRequest {
  id: number;
  method: string;
  params: unknown;
}

interface RpcAnswer {
  id: number;
  result?: unknown;
  error?: string;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

function isRequest(value: unknown): value is RpcRequest {
  return isRecord(value) && typeof value.id === 'number' && typeof value.method === 'string';
}

function isAnswer(value: unknown): value is RpcAnswer {
  return isRecord(value) && typeof value.id === 'number' && !('method' in value);
}

/** In a child: answers the runner's calls with `methods`. */
export function serve(methods: Record<string, (params: unknown) => unknown>): void {
  const send = process.send?.bind(process);
  if (!send) throw new Error('bench child started without an IPC channel: run it through bench/run.ts');
  process.on('message', (message: unknown) => {
    if (!isRequest(message)) return;
    const method = methods[message.method];
    const reply = (answer: RpcAnswer) => send(answer);
    if (!method) {
      reply({ id: message.id, error: `unknown method ${message.method}` });
      return;
    }
    Promise.resolve()
      .then(() => method(message.params))
      .then(
        (result) => reply({ id: message.id, result: result ?? null }),
        (error: unknown) =>
          reply({
            id: message.id,
            error: error instanceof Error ? (error.stack ?? error.message) : String(error),
          }),
      );
  });
  // The runner going away ends the child too: no orphans left behind. Exiting (rather than
  // dying by the signal) lets --cpu-prof (BENCH_CPU_PROF_DIR) write its profile.
  process.on('disconnect', () => process.exit(0));
  if (process.listenerCount('SIGTERM') === 0) process.on('SIGTERM', () => process.exit(0));
}

export interface Child {
  readonly process: ChildProcess;
  call<T>(method: string, params?: unknown, timeoutMs?: number): Promise<T>;
  /** Asks nicely (SIGTERM), then SIGKILL after a grace period. */
  stop(): Promise<void>;
}

/**
 * This shell's environment minus the dispatcher's own settings, so a developer's
 * DISPATCHER_* or PORT cannot change what the bench measures.
 */
function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env))
    if (value !== undefined && !/^(DISPATCHER_|PORT$|HOST$)/.test(key)) env[key] = value;
  return env;
}

/**
 * Where children write CPU profiles (`BENCH_CPU_PROF_DIR`): Node refuses `--cpu-prof` in
 * NODE_OPTIONS, so the bench passes it to each child itself.
 */
const profileDir = process.env.BENCH_CPU_PROF_DIR;

/** Forks a bench child (a .ts module: Node 24 strips the types) with an IPC channel. */
export function startChild(module: URL, env: Record<string, string> = {}): Child {
  const child = fork(module, [], {
    env: { ...cleanEnv(), ...env },
    execArgv: profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  let nextId = 1;
  let exited = false;
  const exitedPromise = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = true;
      for (const { reject } of pending.values())
        reject(new Error(`${module.pathname} exited (${code ?? signal}) with calls pending`));
      pending.clear();
      resolve();
    });
  });
  child.on('message', (message: unknown) => {
    if (!isAnswer(message)) return;
    const waiter = pending.get(message.id);
    if (!waiter) return;
    pending.delete(message.id);
    if (message.error !== undefined) waiter.reject(new Error(message.error));
    else waiter.resolve(message.result);
  });
  return {
    process: child,
    call<T>(method: string, params: unknown = {}, timeoutMs = 60_000): Promise<T> {
      if (exited) return Promise.reject(new Error(`${module.pathname} is not running`));
      const id = nextId++;
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`${method} on ${module.pathname}: no answer within ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(id, {
          resolve: (value) => {
            clearTimeout(timer);
            resolve(value as T);
          },
          reject: (error) => {
            clearTimeout(timer);
            reject(error);
          },
        });
        child.send({ id, method, params } satisfies RpcRequest);
      });
    },
    async stop() {
      if (exited) return;
      child.kill('SIGTERM');
      const grace = sleep(5_000).then(() => 'timeout' as const);
      if ((await Promise.race([exitedPromise.then(() => 'exited' as const), grace])) === 'timeout') {
        child.kill('SIGKILL');
        await exitedPromise;
      }
    },
  };
}
