/**
 * The partner guide's examples (examples/), run as a partner would run them, against a live
 * local runtime: each as a process of its own, with the client package as it resolves in this
 * repository (its sources, by the `development` export condition).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { spawnCollecting } from '../support/spawned.ts';
import { publish, withApiDispatcher } from './api-support.ts';
import { eventually, type TestDispatcher } from './harness.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const running: ChildProcess[] = [];
const scratch = mkdtempSync(join(tmpdir(), 'examples-'));

afterEach(() => {
  for (const child of running.splice(0)) child.kill();
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Starts an example; its output so far, and a promise of its exit code. */
function run(command: string, args: string[], env: Record<string, string>) {
  const { child, out, exited } = spawnCollecting(command, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
  });
  running.push(child);
  return { out, exited };
}

const node = (example: string, env: Record<string, string>) =>
  run(process.execPath, ['--conditions=development', `examples/${example}`], env);

describe('the partner guide’s examples', () => {
  let d: TestDispatcher;
  withApiDispatcher((started) => {
    d = started;
  });

  it('poll.sh: polls in a loop with curl, keeping the cursor in a file', async () => {
    const partner = await d.createPartner();
    const ids = [
      await publish(d, partner.id, 'order.created'),
      await publish(d, partner.id, 'order.created'),
    ];
    const cursorFile = join(scratch, 'cursor');
    const example = run('bash', ['examples/poll.sh'], {
      DISPATCHER_URL: d.dispatcher.url,
      API_KEY: partner.apiKey,
      CURSOR_FILE: cursorFile,
      MAX_EVENTS: '3',
    });
    await eventually(() => (example.out.stdout.includes(ids[1] ?? '-') ? true : undefined));
    // The loop is now long polling: the third event answers it.
    const third = await publish(d, partner.id, 'invoice.paid');
    expect(await example.exited).toBe(0);
    const lines = example.out.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { id: string });
    expect(lines.map((e) => e.id)).toEqual([...ids, third]);
    expect(readFileSync(cursorFile, 'utf8')).toBe(third);
  });

  it('poll.ts: every event as it comes, with the client', async () => {
    const partner = await d.createPartner();
    const first = await publish(d, partner.id, 'order.created', { n: 1 });
    const example = node('poll.ts', {
      DISPATCHER_URL: d.dispatcher.url,
      API_KEY: partner.apiKey,
      MAX_EVENTS: '2',
    });
    await eventually(() => (example.out.stdout.includes(first) ? true : undefined));
    const second = await publish(d, partner.id, 'order.shipped', { n: 2 });
    expect(await example.exited, example.out.stderr).toBe(0);
    expect(example.out.stdout).toBe(`${first} order.created {"n":1}\n${second} order.shipped {"n":2}\n`);
  });

  it('follow-consumer.ts: a reader the dispatcher keeps the cursor of, picking up where it stopped', async () => {
    const partner = await d.createPartner();
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(await publish(d, partner.id, 'order.created', { i }));
    const env = { DISPATCHER_URL: d.dispatcher.url, API_KEY: partner.apiKey, CONSUMER: 'guide' };
    const firstRun = node('follow-consumer.ts', { ...env, MAX_EVENTS: '3' });
    expect(await firstRun.exited, firstRun.out.stderr).toBe(0);
    expect(
      firstRun.out.stdout
        .trim()
        .split('\n')
        .map((line) => line.split(' ')[0]),
    ).toEqual(ids);

    // A second run starts after what the first acknowledged.
    const later = await publish(d, partner.id, 'order.created', { i: 3 });
    const secondRun = node('follow-consumer.ts', { ...env, MAX_EVENTS: '1' });
    expect(await secondRun.exited, secondRun.out.stderr).toBe(0);
    expect(secondRun.out.stdout).toBe(`${later} order.created {"i":3}\n`);
  });

  it('receive.ts: verifies each callback, answers 204, and tells a repeat by its webhook-id', async () => {
    const partner = await d.createPartner();
    const subscription = await d.as<{ id: string; secret: string }>(
      partner.apiKey,
      'POST',
      '/v1/subscriptions',
      {
        url: 'http://127.0.0.1:9/placeholder',
      },
    );
    const example = node('receive.ts', { WEBHOOK_SECRET: subscription.body.secret, PORT: '0' });
    const port = await eventually(() => /listening (\d+)/.exec(example.out.stdout)?.[1]);
    await d.as(partner.apiKey, 'PATCH', `/v1/subscriptions/${subscription.body.id}`, {
      url: `http://127.0.0.1:${port}/webhooks`,
    });
    const id = await publish(d, partner.id, 'order.created', { orderId: 'o_1' });
    await eventually(() => (example.out.stdout.includes(id) ? true : undefined));
    expect(example.out.stdout).toMatch(new RegExp(`verified \\S+ ${id} order.created \\{"orderId":"o_1"\\}`));

    // A forged callback is refused.
    const forged = await fetch(`http://127.0.0.1:${port}/webhooks`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'webhook-id': 'msg_forged',
        'webhook-timestamp': String(Math.floor(Date.now() / 1000)),
        'webhook-signature': 'v1,AAAA',
      },
      body: JSON.stringify({ id, type: 'order.created', payload: {}, createdAt: new Date().toISOString() }),
    });
    expect(forged.status).toBe(401);
  });
});
