/**
 * Starts the local runtime in-process on a temp data dir and a free port, with helpers to call
 * its API as the admin or as a partner. Every test gets its own dispatcher.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { SqliteOutbox } from '../../functions/adapters/sqlite/outbox.ts';
import { type LocalConfig, parseLocalConfig } from '../../functions/config.ts';
import { type LocalDispatcher, type LocalRuntimeOptions, startLocalDispatcher } from '../../local/runtime.ts';
import { checkedAnswer } from '../support/openapi-conformance.ts';
import { type Responder, startReceiver, type TestReceiver } from './receiver.ts';

export interface ApiResult<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  body: T;
}

export interface TestDispatcher {
  dispatcher: LocalDispatcher;
  config: LocalConfig;
  dataDir: string;
  /** Calls the API with the admin token. */
  admin<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<ApiResult<T>>;
  /** Calls the API with a partner's API key. */
  as<T = Record<string, unknown>>(
    apiKey: string,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<ApiResult<T>>;
  /** A new partner: its id and API key. */
  createPartner(name?: string): Promise<{ id: string; apiKey: string }>;
  /** Stops the dispatcher (the data dir stays until `cleanup`). */
  stop(): Promise<void>;
  /** Starts a new dispatcher on the same data dir, as after a restart. */
  restart(): Promise<TestDispatcher>;
  cleanup(): Promise<void>;
}

export async function request<T>(
  url: string,
  method: string,
  token: string | undefined,
  body?: unknown,
): Promise<ApiResult<T>> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  let payload: string | undefined;
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    payload = typeof body === 'string' ? body : JSON.stringify(body);
  }
  const response = await fetch(url, { method, headers, ...(payload === undefined ? {} : { body: payload }) });
  // Every answer is checked against the OpenAPI document: one it does not describe fails here.
  const answer = await checkedAnswer(method, url, response);
  return {
    status: answer.status,
    headers: answer.headers,
    body: (answer.body === '' ? {} : answer.body) as T,
  };
}

const quiet = () => {};

export async function startTestDispatcher(
  env: Record<string, string> = {},
  options: LocalRuntimeOptions = {},
  dataDir = mkdtempSync(join(tmpdir(), 'dispatcher-e2e-')),
): Promise<TestDispatcher> {
  const config = parseLocalConfig({
    PORT: '0',
    DISPATCHER_DATA_DIR: dataDir,
    DISPATCHER_ADMIN_TOKEN: 'test-admin-token-0123456789',
    DISPATCHER_DELIVERY_TIMEOUT_MS: '2000',
    ...env,
  });
  const dispatcher = await startLocalDispatcher(config, { log: quiet, idleMs: 200, ...options });
  let stopped = false;
  const self: TestDispatcher = {
    dispatcher,
    config,
    dataDir,
    admin: (method, path, body) => request(dispatcher.url + path, method, dispatcher.adminToken, body),
    as: (apiKey, method, path, body) => request(dispatcher.url + path, method, apiKey, body),
    async createPartner(name = 'acme') {
      const res = await self.admin<{ id: string; apiKey: string }>('POST', '/v1/partners', { name });
      if (res.status !== 201) throw new Error(`createPartner: ${res.status} ${JSON.stringify(res.body)}`);
      return { id: res.body.id, apiKey: res.body.apiKey };
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await dispatcher.stop();
    },
    async restart() {
      await self.stop();
      return startTestDispatcher(env, options, dataDir);
    },
    async cleanup() {
      await self.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return self;
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * Waits until the runtime has nothing left to do: no event waiting in the outbox, and no
 * message in the fan-out or delivery queue (visible, in flight or delayed). Past this point
 * nothing more is sent unless something new is published or asked for, so a test can assert
 * that something did not happen without sleeping.
 */
export async function settled(d: TestDispatcher, timeoutMs = 10_000): Promise<void> {
  const outbox = new SqliteOutbox(d.dispatcher.db);
  const empty = (stats: { visible: number; inFlight: number; delayed: number }) =>
    stats.visible + stats.inFlight + stats.delayed === 0;
  await eventually(() => {
    const { fanout, delivery } = d.dispatcher.queues;
    return outbox.peek(1).length === 0 && empty(fanout.stats()) && empty(delivery.stats()) ? true : undefined;
  }, timeoutMs);
}

/** Kills the process with SIGKILL, as a crash would end it, and waits for it to be gone. */
export function killed(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve();
      return;
    }
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** A port that was bound on 127.0.0.1 and closed again: nothing listens there. */
export function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/**
 * Dispatchers and receivers a test file starts, each stopped (newest first) after its test:
 * call once at the top of the file.
 */
export function stoppedAfterEach() {
  const running: { stop(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const r of running.splice(0).reverse()) await r.stop();
  });
  return {
    /** Something else to stop after the test. */
    track(stop: () => Promise<void>): void {
      running.push({ stop });
    },
    async dispatcher(env: Record<string, string> = {}): Promise<TestDispatcher> {
      const d = await startTestDispatcher(env);
      running.push({ stop: () => d.cleanup() });
      return d;
    },
    async receiver(respond?: Responder): Promise<TestReceiver> {
      const r = await startReceiver(respond);
      running.push({ stop: () => r.close() });
      return r;
    },
  };
}
