/**
 * `dispatcher listen`, run as a partner runs it (`node bin/dispatcher.ts listen`, a process of
 * its own), against a stand-in dispatcher speaking the connection protocol and a receiver, both
 * on 127.0.0.1: deliveries forwarded and answered with the receiver's status, a clean stop on
 * SIGTERM, and its exit codes.
 */
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { API_KEY, answers, deliveryFrame, startConnectServer } from '../support/connect-server.ts';
import { spawnCollecting } from '../support/spawned.ts';
import { eventually } from './harness.ts';

const BIN = join(import.meta.dirname, '../../bin/dispatcher.ts');
const running: ChildProcess[] = [];
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const child of running.splice(0)) child.kill('SIGKILL');
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Starts `dispatcher listen …` with only the environment given; its output, and its exit code. */
function listen(args: readonly string[], env: Record<string, string> = {}) {
  const spawned = spawnCollecting(process.execPath, [BIN, 'listen', ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
  });
  running.push(spawned.child);
  return spawned;
}

async function receiver(status: number) {
  const bodies: string[] = [];
  const server = createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    bodies.push(Buffer.concat(chunks).toString('utf8'));
    response.writeHead(status).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks`, bodies };
}

describe('dispatcher listen', () => {
  it('forwards each delivery, answers with the receiver’s status, and stops cleanly on SIGTERM', async () => {
    const server = await startConnectServer();
    cleanups.push(() => server.close());
    const ok = await receiver(200);
    const agent = listen(['--url', server.url, '--subscription', 'sub_conn', '--forward-to', ok.url], {
      DISPATCHER_API_KEY: API_KEY,
    });
    const connection = await eventually(() => server.connections[0]);
    expect(connection.authorization).toBe(`Bearer ${API_KEY}`);
    expect(connection.query.get('subscription')).toBe('sub_conn');

    connection.send(deliveryFrame(1));
    expect(await eventually(() => answers(connection).get('dlv_1'))).toEqual({
      type: 'ack',
      deliveryId: 'dlv_1',
      attempt: 1,
      status: 200,
    });
    expect(ok.bodies).toEqual(['{"n":1}']);
    await eventually(() => (/^dlv_1 200 \d+ms$/m.test(agent.out.stdout) ? true : undefined));

    agent.child.kill('SIGTERM');
    expect(await agent.exited).toBe(0);
    expect(await eventually(() => connection.closeCode)).toBe(1000);
    expect(agent.out.stderr).toBe('');
  });

  it('nacks a delivery the receiver fails', async () => {
    const server = await startConnectServer();
    cleanups.push(() => server.close());
    const failing = await receiver(503);
    const agent = listen(['--url', server.url, '--api-key', API_KEY, '--forward-to', failing.url]);
    const connection = await eventually(() => server.connections[0]);
    connection.send(deliveryFrame(2));
    expect(await eventually(() => answers(connection).get('dlv_2'))).toMatchObject({
      type: 'nack',
      status: 503,
    });
    agent.child.kill('SIGINT');
    expect(await agent.exited).toBe(0);
  });

  it('exits 1 when the dispatcher refuses the key, 2 for a wrong command line', async () => {
    const server = await startConnectServer();
    cleanups.push(() => server.close());
    const target = 'http://127.0.0.1/';
    const refused = listen(['--url', server.url, '--api-key', 'dk_wrong', '--forward-to', target]);
    const noKey = listen(['--url', server.url, '--forward-to', target]);
    const badTarget = listen(['--url', server.url, '--api-key', API_KEY, '--forward-to', 'ftp://x/']);
    expect(await refused.exited).toBe(1);
    expect(refused.out.stderr).toMatch(/^dispatcher: listen: .*a wrong API key/m);
    expect(await noKey.exited).toBe(2);
    expect(noKey.out.stderr).toMatch(/--api-key/);
    expect(await badTarget.exited).toBe(2);
    expect(server.connections).toHaveLength(0);
  });
});
