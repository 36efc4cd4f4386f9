import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually, request, startTestDispatcher, type TestDispatcher } from './harness.ts';
import { answer, startReceiver, type TestReceiver } from './receiver.ts';

interface Delivery {
  id: string;
  eventId: string;
  status: string;
  attemptCount: number;
  attempts: { number: number; startedAt: string; statusCode?: number; error?: string }[];
}

const running: { stop(): Promise<void> }[] = [];
afterEach(async () => {
  for (const r of running.splice(0).reverse()) await r.stop();
});

async function dispatcherWith(env: Record<string, string> = {}): Promise<TestDispatcher> {
  const d = await startTestDispatcher(env);
  running.push({ stop: () => d.cleanup() });
  return d;
}

async function receiverWith(...args: Parameters<typeof startReceiver>): Promise<TestReceiver> {
  const r = await startReceiver(...args);
  running.push({ stop: () => r.close() });
  return r;
}

/** A partner with one subscription pointing at the receiver, whose secret the receiver verifies with. */
async function subscribed(d: TestDispatcher, receiver: TestReceiver, body: Record<string, unknown> = {}) {
  const partner = await d.createPartner();
  const sub = await d.as<{ id: string; secret: string }>(partner.apiKey, 'POST', '/v1/subscriptions', {
    url: receiver.url,
    ...body,
  });
  expect(sub.status).toBe(201);
  receiver.secrets.push(sub.body.secret);
  return { partner, subscriptionId: sub.body.id };
}

async function publish(
  d: TestDispatcher,
  partnerId: string,
  type = 'order.created',
  payload: unknown = { n: 1 },
) {
  const res = await d.admin<{ id: string }>('POST', '/v1/events', { partnerId, type, payload });
  expect(res.status).toBe(202);
  return res.body.id;
}

async function deliveries(d: TestDispatcher, apiKey: string, subscriptionId: string): Promise<Delivery[]> {
  const res = await d.as<{ data: Delivery[] }>(
    apiKey,
    'GET',
    `/v1/subscriptions/${subscriptionId}/deliveries`,
  );
  return res.body.data;
}

describe('local dispatcher, end to end', () => {
  describe('publish, callback, poll', () => {
    it('delivers a signed callback that standardwebhooks verifies, with the body a poll returns', async () => {
      const d = await dispatcherWith();
      const receiver = await receiverWith();
      const { partner } = await subscribed(d, receiver);

      const eventId = await publish(d, partner.id, 'order.created', { orderId: 'o_1', total: 42 });

      const callback = await eventually(() => receiver.callbacks[0]);
      expect(callback.verifiedBy).toEqual([0]);
      expect(callback.headers['webhook-id']).toMatch(/^dlv_/);
      expect(callback.headers['content-type']).toBe('application/json');
      const polled = await d.as<{ data: unknown[]; next: string }>(partner.apiKey, 'GET', '/v1/events');
      expect(polled.body.data).toEqual([JSON.parse(callback.body)]);
      expect(JSON.parse(callback.body)).toMatchObject({
        id: eventId,
        type: 'order.created',
        payload: { orderId: 'o_1', total: 42 },
      });
      expect(polled.body.next).toBe(eventId);
    });

    it('delivers only the event types a subscription asked for', async () => {
      const d = await dispatcherWith();
      const orders = await receiverWith();
      const everything = await receiverWith();
      const { partner } = await subscribed(d, orders, { eventTypes: ['order.*'] });
      const all = await d.as<{ secret: string }>(partner.apiKey, 'POST', '/v1/subscriptions', {
        url: everything.url,
      });
      everything.secrets.push(all.body.secret);

      await publish(d, partner.id, 'invoice.paid');
      await publish(d, partner.id, 'order.shipped');

      await eventually(() =>
        everything.callbacks.length === 2 && orders.callbacks.length >= 1 ? true : undefined,
      );
      expect(orders.callbacks.map((c) => JSON.parse(c.body).type)).toEqual(['order.shipped']);
      expect(everything.callbacks.every((c) => c.verifiedBy.length === 1)).toBe(true);
    });

    it('signs with both the new and the old secret after a rotation', async () => {
      const d = await dispatcherWith();
      const receiver = await receiverWith();
      const { partner, subscriptionId } = await subscribed(d, receiver);
      const rotated = await d.as<{ secret: string }>(
        partner.apiKey,
        'POST',
        `/v1/subscriptions/${subscriptionId}/rotate-secret`,
      );
      receiver.secrets.push(rotated.body.secret);

      await publish(d, partner.id);

      const callback = await eventually(() => receiver.callbacks[0]);
      expect(callback.verifiedBy).toEqual([0, 1]);
      expect(callback.headers['webhook-signature']?.split(' ')).toHaveLength(2);
    });

    it('never delivers one partner’s event to another partner’s subscription', async () => {
      const d = await dispatcherWith();
      const mine = await receiverWith();
      const theirs = await receiverWith();
      const { partner } = await subscribed(d, mine);
      await subscribed(d, theirs);

      await publish(d, partner.id);

      await eventually(() => mine.callbacks[0]);
      expect(theirs.callbacks).toHaveLength(0);
    });
  });

  describe('retries and dead letters', () => {
    it('retries a failing receiver by the schedule, then dead-letters the delivery; a CLI redrive delivers it', async () => {
      const d = await dispatcherWith({ DISPATCHER_RETRY_SCHEDULE: '0,1,1' });
      const receiver = await receiverWith(answer(500));
      const { partner, subscriptionId } = await subscribed(d, receiver);
      const eventId = await publish(d, partner.id);

      const dead = await eventually(async () => {
        const [delivery] = await deliveries(d, partner.apiKey, subscriptionId);
        return delivery?.status === 'dead' ? delivery : undefined;
      });
      expect(dead.eventId).toBe(eventId);
      expect(dead.attempts.map((a) => [a.number, a.statusCode, a.error])).toEqual([
        [1, 500, 'http_status'],
        [2, 500, 'http_status'],
        [3, 500, 'http_status'],
      ]);
      // Every try of one delivery carries the same webhook-id, so the receiver can dedupe.
      expect(new Set(receiver.callbacks.map((c) => c.headers['webhook-id']))).toEqual(new Set([dead.id]));
      await eventually(() => (d.dispatcher.queues.deliveryDlq.stats().visible === 1 ? true : undefined));

      receiver.respond = answer(200);
      // Ops redrive with the CLI, beside the running dispatcher, as they would from a shell.
      const output = execFileSync(process.execPath, ['bin/dispatcher.ts', 'redrive', 'delivery'], {
        env: { ...process.env, DISPATCHER_DATA_DIR: d.dataDir, DISPATCHER_RETRY_SCHEDULE: '0,1,1' },
        encoding: 'utf8',
      });
      expect(output).toContain('moved 1 message(s) from delivery-dlq back to delivery');
      const redriven = await eventually(async () => {
        const [delivery] = await deliveries(d, partner.apiKey, subscriptionId);
        return delivery?.status === 'succeeded' ? delivery : undefined;
      });
      expect(redriven.attemptCount).toBe(4);
      expect(d.dispatcher.queues.deliveryDlq.stats().visible).toBe(0);
    });

    it('records a timeout and a refused connection as attempt errors and retries them', async () => {
      const d = await dispatcherWith({
        DISPATCHER_RETRY_SCHEDULE: '0,1',
        DISPATCHER_DELIVERY_TIMEOUT_MS: '300',
      });
      const hanging = await receiverWith(() => {}); // never answers
      const { partner, subscriptionId } = await subscribed(d, hanging);
      const closed = await receiverWith();
      await closed.close(); // nothing listens on its port any more
      const refused = await d.as<{ id: string }>(partner.apiKey, 'POST', '/v1/subscriptions', {
        url: closed.url,
      });

      await publish(d, partner.id);

      for (const [id, error] of [
        [subscriptionId, 'timeout'],
        [refused.body.id, 'connection'],
      ] as const) {
        const dead = await eventually(async () => {
          const [delivery] = await deliveries(d, partner.apiKey, id);
          return delivery?.status === 'dead' ? delivery : undefined;
        });
        expect(dead.attempts.map((a) => a.error)).toEqual([error, error]);
      }
    });
  });

  describe('endpoint health', () => {
    it('disables a subscription answering 410 Gone and tells the partner by poll and by its other subscription', async () => {
      const d = await dispatcherWith();
      const gone = await receiverWith(answer(410));
      const healthy = await receiverWith();
      const { partner, subscriptionId } = await subscribed(d, gone);
      const other = await d.as<{ secret: string }>(partner.apiKey, 'POST', '/v1/subscriptions', {
        url: healthy.url,
      });
      healthy.secrets.push(other.body.secret);

      await publish(d, partner.id);

      const notice = await eventually(() =>
        healthy.callbacks.map((c) => JSON.parse(c.body)).find((e) => e.type === 'subscription.disabled'),
      );
      expect(notice.payload).toMatchObject({
        subscriptionId,
        url: gone.url,
        reason: 'the endpoint answered 410 Gone',
      });
      expect(gone.callbacks).toHaveLength(1); // not retried
      const sub = await d.as(partner.apiKey, 'GET', `/v1/subscriptions/${subscriptionId}`);
      expect(sub.body).toMatchObject({
        status: 'disabled',
        disabledReason: 'the endpoint answered 410 Gone',
      });
      const polled = await d.as<{ data: { type: string }[] }>(
        partner.apiKey,
        'GET',
        '/v1/events?types=subscription.disabled',
      );
      expect(polled.body.data).toHaveLength(1);

      // The partner fixes its endpoint and turns the subscription back on.
      gone.respond = answer(204);
      const enabled = await d.as(partner.apiKey, 'PATCH', `/v1/subscriptions/${subscriptionId}`, {
        status: 'active',
      });
      expect(enabled.body).toMatchObject({ status: 'active' });
      expect(enabled.body).not.toHaveProperty('disabledReason');
      await publish(d, partner.id, 'order.shipped');
      await eventually(() => gone.callbacks.find((c) => JSON.parse(c.body).type === 'order.shipped'));
    });

    it('waits what a 429 asked for with Retry-After before the next try', async () => {
      const d = await dispatcherWith({ DISPATCHER_RETRY_SCHEDULE: '0,1,30' });
      let calls = 0;
      const receiver = await receiverWith((_callback, res) => {
        calls += 1;
        if (calls === 1) res.writeHead(429, { 'retry-after': '2' }).end();
        else res.writeHead(204).end();
      });
      const { partner, subscriptionId } = await subscribed(d, receiver);

      await publish(d, partner.id);

      const done = await eventually(async () => {
        const [delivery] = await deliveries(d, partner.apiKey, subscriptionId);
        return delivery?.status === 'succeeded' ? delivery : undefined;
      });
      const [first, second] = done.attempts;
      expect(first?.statusCode).toBe(429);
      // The schedule alone would have retried within a second; the receiver asked for two.
      const waited = Date.parse(second?.startedAt ?? '') - Date.parse(first?.startedAt ?? '');
      expect(waited).toBeGreaterThanOrEqual(2000);
    });
  });

  describe('restarts', () => {
    it('loses nothing when stopped cleanly with deliveries in flight', async () => {
      let d = await dispatcherWith({
        DISPATCHER_RETRY_SCHEDULE: '0,1,1,1,1,1',
        DISPATCHER_DELIVERY_TIMEOUT_MS: '500',
      });
      const receiver = await receiverWith(answer(503));
      const { partner } = await subscribed(d, receiver);
      const ids: string[] = [];
      for (let i = 0; i < 10; i++) ids.push(await publish(d, partner.id, 'order.created', { i }));
      await eventually(() => (receiver.callbacks.length >= 1 ? true : undefined));

      d = await d.restart();
      running.push({ stop: () => d.cleanup() });
      receiver.respond = answer(204);
      const afterRestart = receiver.callbacks.length;

      const delivered = await eventually(() => {
        const ok = new Set(
          receiver.callbacks
            .slice(afterRestart)
            .filter((c) => c.verifiedBy.length === 1)
            .map((c) => JSON.parse(c.body).id as string),
        );
        return ids.every((id) => ok.has(id)) ? ok : undefined;
      }, 15_000);
      expect(delivered.size).toBe(10);
    });

    it('redelivers what was in flight after the process is killed with SIGKILL', async () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'dispatcher-kill-'));
      running.push({ stop: async () => rmSync(dataDir, { recursive: true, force: true }) });
      // The receiver holds every request open: deliveries are in flight when the process dies.
      const receiver = await receiverWith(() => {});
      const env = {
        DISPATCHER_DATA_DIR: dataDir,
        DISPATCHER_ADMIN_TOKEN: 'test-admin-token-0123456789',
        DISPATCHER_DELIVERY_TIMEOUT_MS: '1000',
      };
      const port = await freePort();
      const child = spawn(process.execPath, ['bin/dispatcher.ts', 'start'], {
        env: { ...process.env, ...env, PORT: String(port) },
        stdio: 'ignore',
      });
      running.push({ stop: async () => void child.kill('SIGKILL') });
      const url = `http://127.0.0.1:${port}`;
      await eventually(() => request(`${url}/v1/nope`, 'GET', undefined).catch(() => undefined));

      const admin = (method: string, path: string, body?: unknown) =>
        request<Record<string, string>>(url + path, method, env.DISPATCHER_ADMIN_TOKEN, body);
      const partner = (await admin('POST', '/v1/partners', { name: 'acme' })).body;
      const sub = await request<{ secret: string }>(`${url}/v1/subscriptions`, 'POST', partner.apiKey, {
        url: receiver.url,
      });
      receiver.secrets.push(sub.body.secret);
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        ids.push(
          (
            await admin('POST', '/v1/events', {
              partnerId: partner.id,
              type: 'order.created',
              payload: { i },
            })
          ).body.id ?? '',
        );
      }
      await eventually(() => (receiver.callbacks.length >= 5 ? true : undefined));
      await kill(child);
      const beforeRestart = receiver.callbacks.length;

      receiver.respond = answer(204);
      const d = await startTestDispatcher(env, {}, dataDir);
      running.push({ stop: () => d.stop() });

      const delivered = await eventually(() => {
        const ok = new Set(
          receiver.callbacks
            .slice(beforeRestart)
            .filter((c) => c.verifiedBy.length === 1)
            .map((c) => JSON.parse(c.body).id),
        );
        return ids.every((id) => ok.has(id)) ? ok : undefined;
      }, 15_000);
      expect(delivered.size).toBe(5);
    });
  });
});

function freePort(): Promise<number> {
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

function kill(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}
