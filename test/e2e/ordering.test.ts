/**
 * Ordering per key end to end on the local runtime: a subscription with `ordering: "key"`
 * receives each ordering key's events one at a time, in publish order, from a receiver that
 * fails at random; a failing head holds back only its own key; a dead-lettered head lets its
 * key go on; events without a key, and subscriptions without ordering, are not held.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { seededRandom } from '../support/seeded-random.ts';
import { expectProblem } from './api-support.ts';
import {
  closedPort,
  eventually,
  killed,
  request,
  settled,
  startTestDispatcher,
  stoppedAfterEach,
  type TestDispatcher,
} from './harness.ts';
import type { Callback, TestReceiver } from './receiver.ts';

const { dispatcher, receiver, track } = stoppedAfterEach();

interface Seen {
  key: string | undefined;
  n: number;
  ok: boolean;
}

/**
 * A receiver that answers each callback after a short random pause, with a 500 at random
 * (`failRate`), and records each callback's key and place, and how many of one key were in
 * flight at once.
 */
async function flakyReceiver(random: () => number, failRate: number) {
  const seen: Seen[] = [];
  const inFlight = new Map<string, number>();
  let mostInFlight = 0;
  const r: TestReceiver = await receiver((callback: Callback, res: ServerResponse) => {
    const event = JSON.parse(callback.body) as { orderingKey?: string; payload: { n: number } };
    const key = event.orderingKey;
    const ok = random() >= failRate;
    if (key !== undefined) {
      const now = (inFlight.get(key) ?? 0) + 1;
      inFlight.set(key, now);
      mostInFlight = Math.max(mostInFlight, now);
    }
    setTimeout(
      () => {
        seen.push({ key, n: event.payload.n, ok });
        if (key !== undefined) inFlight.set(key, (inFlight.get(key) ?? 1) - 1);
        res.writeHead(ok ? 204 : 500).end();
      },
      Math.floor(random() * 15),
    );
  });
  return { r, seen, mostInFlight: () => mostInFlight };
}

async function subscribe(d: TestDispatcher, apiKey: string, r: TestReceiver, body: Record<string, unknown>) {
  const sub = await d.as<{ id: string; secret: string; ordering: string }>(
    apiKey,
    'POST',
    '/v1/subscriptions',
    {
      url: r.url,
      ...body,
    },
  );
  expect(sub.status).toBe(201);
  r.secrets.push(sub.body.secret);
  return sub.body;
}

async function publishBatch(d: TestDispatcher, partnerId: string, events: { key?: string; n: number }[]) {
  const res = await d.admin<{ results: ({ id: string } | { error: unknown })[] }>(
    'POST',
    '/v1/events/batch',
    {
      events: events.map(({ key, n }) => ({
        partnerId,
        type: 'order.updated',
        payload: { n },
        ...(key === undefined ? {} : { orderingKey: key }),
      })),
    },
  );
  expect(res.status).toBe(200);
  expect(res.body.results.every((x) => 'id' in x)).toBe(true);
}

describe('ordering per key', () => {
  it('delivers each key in publish order, one at a time, to a receiver that fails at random', async () => {
    const seed = Date.now() % 100_000;
    const random = seededRandom(seed);
    const d = await dispatcher({ DISPATCHER_RETRY_SCHEDULE: '0,1,1,1,1,1' });
    const partner = await d.createPartner();
    const { r, seen, mostInFlight } = await flakyReceiver(random, 0.3);
    const sub = await subscribe(d, partner.apiKey, r, { ordering: 'key' });
    expect(sub.ordering).toBe('key');

    const keys = ['order:1', 'order:2', 'order#3', 'acct/4'];
    const perKey = 6;
    // Interleaved across keys, in several requests, as a producer would publish them.
    const events = Array.from({ length: perKey }, (_, n) => keys.map((key) => ({ key, n }))).flat();
    await publishBatch(d, partner.id, events.slice(0, 10));
    await publishBatch(d, partner.id, events.slice(10));

    await eventually(
      () =>
        keys.every((key) => seen.filter((s) => s.key === key && s.ok).length >= perKey) ? true : undefined,
      60_000,
    );
    await settled(d, 20_000);
    for (const key of keys) {
      const tries = seen.filter((s) => s.key === key).map((s) => s.n);
      console.log(
        key,
        seen
          .filter((s) => s.key === key)
          .map((s) => `${s.n}${s.ok ? '' : 'x'}`)
          .join(','),
      );
      // Never back to an earlier event once a later one was tried; each event until it succeeded.
      expect(tries, `seed ${seed}, key ${key}: ${tries.join(',')}`).toEqual([...tries].sort((a, b) => a - b));
      expect(
        seen.filter((s) => s.key === key && s.ok).map((s) => s.n),
        `seed ${seed}`,
      ).toEqual([0, 1, 2, 3, 4, 5]);
    }
    expect(mostInFlight(), `seed ${seed}`).toBe(1);
    expect(r.callbacks.every((c) => c.verifiedBy.length === 1)).toBe(true);
  }, 90_000);

  it('holds back only the failing key, and lets the key go on once its head is dead-lettered', async () => {
    const d = await dispatcher({ DISPATCHER_RETRY_SCHEDULE: '0,1' });
    const partner = await d.createPartner();
    const seen: { key?: string; n: number }[] = [];
    const r = await receiver((callback, res) => {
      const event = JSON.parse(callback.body) as { orderingKey?: string; payload: { n: number } };
      seen.push({
        ...(event.orderingKey === undefined ? {} : { key: event.orderingKey }),
        n: event.payload.n,
      });
      // Key "stuck"'s first event always fails.
      res.writeHead(event.orderingKey === 'stuck' && event.payload.n === 0 ? 500 : 204).end();
    });
    await subscribe(d, partner.apiKey, r, { ordering: 'key' });

    await publishBatch(d, partner.id, [
      { key: 'stuck', n: 0 },
      { key: 'stuck', n: 1 },
      { key: 'free', n: 0 },
      { key: 'free', n: 1 },
      { n: 100 },
    ]);
    // The other key, and the event without one, are not held by the failing head.
    await eventually(() => (seen.some((s) => s.key === 'free' && s.n === 1) ? true : undefined));
    expect(seen.some((s) => s.n === 100 && s.key === undefined)).toBe(true);
    expect(seen.filter((s) => s.key === 'stuck').map((s) => s.n)).toEqual([0]);

    // Two tries (0 s, then ~1 s), dead-lettered, then the key's next event goes.
    await eventually(() => (seen.some((s) => s.key === 'stuck' && s.n === 1) ? true : undefined));
    expect(seen.filter((s) => s.key === 'stuck').map((s) => s.n)).toEqual([0, 0, 1]);
    await settled(d);
    const dlq = await d.admin<{ data: unknown[] }>('GET', '/v1/admin/dlq/delivery-dlq/messages');
    expect(dlq.status).toBe(200);
    expect(dlq.body.data).toHaveLength(1);
  }, 30_000);

  it('keeps no order for a subscription without ordering: a failing event holds nothing back', async () => {
    const d = await dispatcher({ DISPATCHER_RETRY_SCHEDULE: '0,1' });
    const partner = await d.createPartner();
    const seen: number[] = [];
    const r = await receiver((callback, res) => {
      const n = (JSON.parse(callback.body) as { payload: { n: number } }).payload.n;
      seen.push(n);
      res.writeHead(n === 0 ? 500 : 204).end();
    });
    const sub = await subscribe(d, partner.apiKey, r, {});
    expect(sub.ordering).toBe('none');
    await publishBatch(d, partner.id, [
      { key: 'k', n: 0 },
      { key: 'k', n: 1 },
    ]);
    await eventually(() => (seen.includes(1) ? true : undefined));
    // Both first tries went at once; the first event's retry came only after its wait.
    expect(seen.slice(0, 2).sort()).toEqual([0, 1]);
  });

  it('goes on with a key after the runtime is killed mid-try: the try comes back once its lease ends', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'dispatcher-ordering-kill-'));
    track(async () => rmSync(dataDir, { recursive: true, force: true }));
    // Held open until the kill: the key's first try is in flight when the process dies.
    const seen: number[] = [];
    let hold = true;
    const r = await receiver((callback, res) => {
      seen.push((JSON.parse(callback.body) as { payload: { n: number } }).payload.n);
      if (!hold) res.writeHead(204).end();
    });
    // A short delivery timeout: a take's lease is two of them and 10 s.
    const env = {
      DISPATCHER_DATA_DIR: dataDir,
      DISPATCHER_ADMIN_TOKEN: 'test-admin-token-0123456789',
      DISPATCHER_DELIVERY_TIMEOUT_MS: '1000',
    };
    const port = await closedPort();
    const child = spawn(process.execPath, ['bin/dispatcher.ts', 'start'], {
      env: { ...process.env, ...env, PORT: String(port) },
      stdio: 'ignore',
    });
    track(() => killed(child));
    const url = `http://127.0.0.1:${port}`;
    await eventually(() => request(`${url}/v1/nope`, 'GET', undefined).catch(() => undefined));
    const admin = <T>(path: string, body: unknown) =>
      request<T>(url + path, 'POST', env.DISPATCHER_ADMIN_TOKEN, body);
    const partner = (await admin<{ id: string; apiKey: string }>('/v1/partners', { name: 'acme' })).body;
    const sub = await request<{ secret: string }>(`${url}/v1/subscriptions`, 'POST', partner.apiKey, {
      url: r.url,
      ordering: 'key',
    });
    r.secrets.push(sub.body.secret);
    for (const n of [0, 1])
      await admin('/v1/events', {
        partnerId: partner.id,
        type: 'order.updated',
        payload: { n },
        orderingKey: 'o1',
      });
    await eventually(() => (seen.length >= 1 ? true : undefined));
    await killed(child);
    expect(seen).toEqual([0]);

    hold = false;
    const d = await startTestDispatcher(env, {}, dataDir);
    track(() => d.stop());
    // The try held by the dead process is made again, then the key's next event goes.
    await eventually(() => (seen.includes(1) ? true : undefined), 30_000);
    expect(seen).toEqual([0, 0, 1]);
    expect(r.callbacks.every((c) => c.verifiedBy.length === 1)).toBe(true);
  }, 45_000);

  it('refuses a bad ordering key or ordering, naming the field, and ordering in a PATCH', async () => {
    const d = await dispatcher();
    const partner = await d.createPartner();
    const bad = await d.admin('POST', '/v1/events', {
      partnerId: partner.id,
      type: 'order.updated',
      payload: {},
      orderingKey: 'has space',
    });
    expectProblem(bad, 400, 'body.orderingKey');
    const long = await d.admin('POST', '/v1/events', {
      partnerId: partner.id,
      type: 'order.updated',
      payload: {},
      orderingKey: 'k'.repeat(129),
    });
    expectProblem(long, 400, 'body.orderingKey');
    const sub = await d.as(partner.apiKey, 'POST', '/v1/subscriptions', {
      url: 'https://example.com/hook',
      ordering: 'fifo',
    });
    expectProblem(sub, 400, 'body.ordering');
    const made = await d.as<{ id: string }>(partner.apiKey, 'POST', '/v1/subscriptions', {
      url: 'https://example.com/hook',
      ordering: 'key',
    });
    expect(made.status).toBe(201);
    const patched = await d.as(partner.apiKey, 'PATCH', `/v1/subscriptions/${made.body.id}`, {
      ordering: 'none',
    });
    expectProblem(patched, 400, 'body.ordering');
    // The key is said back to pollers, as in callbacks.
    const ok = await d.admin<{ id: string }>('POST', '/v1/events', {
      partnerId: partner.id,
      type: 'order.updated',
      payload: {},
      orderingKey: 'order:42',
    });
    expect(ok.status).toBe(202);
    const polled = await d.as<{ data: { orderingKey?: string }[] }>(partner.apiKey, 'GET', '/v1/events');
    expect(polled.body.data.map((e) => e.orderingKey)).toEqual(['order:42']);
  });
});
