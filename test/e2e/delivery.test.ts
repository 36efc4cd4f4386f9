import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { parseLocalConfig } from '../../functions/config.ts';
import { databasePath, startLocalDispatcher } from '../../local/runtime.ts';
import {
  closedPort,
  eventually,
  killed,
  request,
  settled,
  startTestDispatcher,
  type TestDispatcher,
} from './harness.ts';
import { answer, startReceiver, type TestReceiver } from './receiver.ts';

const execFileAsync = promisify(execFile);

interface Delivery {
  id: string;
  eventId: string;
  origin: string;
  status: string;
  skippedReason?: string;
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
      // Not execFileSync: this process serves the API the command calls.
      const { stdout: output } = await execFileAsync(
        process.execPath,
        ['bin/dispatcher.ts', 'dlq', 'redrive', 'delivery'],
        {
          env: {
            ...process.env,
            DISPATCHER_URL: d.dispatcher.url,
            DISPATCHER_ADMIN_TOKEN: d.dispatcher.adminToken,
          },
          encoding: 'utf8',
        },
      );
      expect(output).toContain('moved 1 message(s) from delivery-dlq to delivery');
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

  describe('isolation', () => {
    it('keeps delivering to healthy subscriptions while another one hangs, holding a bounded number of slots', async () => {
      const d = await dispatcherWith({ DISPATCHER_DELIVERY_TIMEOUT_MS: '20000' });
      const hanging = await receiverWith(() => {}); // holds every request open
      const healthy = await receiverWith();
      const { partner } = await subscribed(d, hanging);
      const other = await d.as<{ secret: string }>(partner.apiKey, 'POST', '/v1/subscriptions', {
        url: healthy.url,
      });
      healthy.secrets.push(other.body.secret);

      const ids: string[] = [];
      for (let i = 0; i < 40; i++) ids.push(await publish(d, partner.id, 'order.created', { i }));

      // Every healthy callback arrives while the hanging endpoint still holds its requests.
      await eventually(() => (healthy.callbacks.length === 40 ? true : undefined));
      expect(new Set(healthy.callbacks.map((c) => JSON.parse(c.body).id))).toEqual(new Set(ids));
      // The hanging subscription gets no more than its share of concurrent requests.
      expect(hanging.callbacks.length).toBeGreaterThan(0);
      expect(hanging.callbacks.length).toBeLessThanOrEqual(16);
    });

    it('gives an endpoint that keeps timing out one request at a time, not its whole share', async () => {
      const d = await dispatcherWith({ DISPATCHER_DELIVERY_TIMEOUT_MS: '300' });
      let open = 0;
      /** How many requests the endpoint held when each one arrived, itself included. */
      const openAtArrival: number[] = [];
      const hanging = await receiverWith((_callback, res) => {
        open += 1;
        openAtArrival.push(open);
        res.on('close', () => {
          open -= 1;
        });
      });
      const { partner } = await subscribed(d, hanging);
      for (let i = 0; i < 30; i++) await publish(d, partner.id, 'order.created', { i });

      await eventually(() => (hanging.callbacks.length >= 10 ? true : undefined));
      // A subscription starts with 4 slots; each timeout halves its share, down to one, so
      // after the first requests the endpoint holds one at a time (two for the instant a
      // timed-out connection takes to close on this side).
      expect(Math.max(...openAtArrival.slice(0, 4))).toBeLessThanOrEqual(4);
      expect(Math.max(...openAtArrival.slice(5))).toBeLessThanOrEqual(2);
    });

    it('lets an endpoint that answers, however slowly, earn its whole share of 16', async () => {
      const d = await dispatcherWith();
      let open = 0;
      const openAtArrival: number[] = [];
      const slow = await receiverWith((_callback, res) => {
        open += 1;
        openAtArrival.push(open);
        setTimeout(() => {
          open -= 1;
          res.writeHead(204).end();
        }, 150);
      });
      const { partner } = await subscribed(d, slow);
      for (let i = 0; i < 80; i++) await publish(d, partner.id, 'order.created', { i });

      await eventually(() => (slow.callbacks.length === 80 ? true : undefined));
      expect(Math.max(...openAtArrival)).toBeGreaterThan(8);
      expect(Math.max(...openAtArrival)).toBeLessThanOrEqual(16);
    });
  });

  describe('partner actions', () => {
    const types = (r: TestReceiver) => r.callbacks.map((c) => JSON.parse(c.body).type as string);

    it('redelivers an event with a new webhook-id and the original event id, listed under the event', async () => {
      const d = await dispatcherWith();
      const receiver = await receiverWith();
      const { partner, subscriptionId } = await subscribed(d, receiver);
      const eventId = await publish(d, partner.id);
      const first = await eventually(() => receiver.callbacks[0]);

      const res = await d.as<{ data: { id: string; subscriptionId: string }[] }>(
        partner.apiKey,
        'POST',
        `/v1/events/${eventId}/redeliver`,
      );
      expect(res.status).toBe(202);
      expect(res.body.data).toEqual([{ id: expect.stringMatching(/^dlv_/), subscriptionId }]);

      const second = await eventually(() => receiver.callbacks[1]);
      expect(second.headers['webhook-id']).toBe(res.body.data[0]?.id);
      expect(second.headers['webhook-id']).not.toBe(first.headers['webhook-id']);
      expect(JSON.parse(second.body).id).toBe(eventId);
      expect(second.verifiedBy).toEqual([0]);
      const listed = await eventually(async () => {
        const page = await d.as<{ data: Delivery[] }>(
          partner.apiKey,
          'GET',
          `/v1/events/${eventId}/deliveries`,
        );
        return page.body.data.every((x) => x.status === 'succeeded') && page.body.data.length === 2
          ? page.body.data
          : undefined;
      });
      expect(listed.map((x) => x.origin)).toEqual(['redelivery', 'fanout']);
    });

    it('redelivers to the one subscription named, and refuses a disabled one with 409', async () => {
      const d = await dispatcherWith();
      const a = await receiverWith();
      const b = await receiverWith();
      const { partner, subscriptionId } = await subscribed(d, a);
      const other = await d.as<{ id: string; secret: string }>(partner.apiKey, 'POST', '/v1/subscriptions', {
        url: b.url,
      });
      b.secrets.push(other.body.secret);
      const eventId = await publish(d, partner.id);
      await eventually(() => (a.callbacks.length === 1 && b.callbacks.length === 1 ? true : undefined));

      await d.as(partner.apiKey, 'POST', `/v1/events/${eventId}/redeliver`, { subscriptionId });
      await eventually(() => a.callbacks[1]);
      expect(b.callbacks).toHaveLength(1);

      await d.as(partner.apiKey, 'PATCH', `/v1/subscriptions/${other.body.id}`, { status: 'disabled' });
      const refused = await d.as(partner.apiKey, 'POST', `/v1/events/${eventId}/redeliver`, {
        subscriptionId: other.body.id,
      });
      expect(refused.status).toBe(409);
      expect(refused.headers.get('content-type')).toBe('application/problem+json');
    });

    it('does not redeliver another partner’s event', async () => {
      const d = await dispatcherWith();
      const receiver = await receiverWith();
      const { partner } = await subscribed(d, receiver);
      const stranger = await d.createPartner('stranger');
      const eventId = await publish(d, partner.id);
      expect((await d.as(stranger.apiKey, 'POST', `/v1/events/${eventId}/redeliver`)).status).toBe(404);
      expect((await d.as(stranger.apiKey, 'GET', `/v1/events/${eventId}/deliveries`)).status).toBe(404);
    });

    it('replays to one subscription everything it takes since a time', async () => {
      const d = await dispatcherWith();
      const receiver = await receiverWith();
      const { partner, subscriptionId } = await subscribed(d, receiver, { eventTypes: ['order.*'] });
      await publish(d, partner.id, 'order.created', { n: 1 });
      const first = await eventually(() => receiver.callbacks[0]);
      // A millisecond after the first event: `since` takes it no more, and the others were created later.
      const since = new Date(Date.parse(JSON.parse(first.body).createdAt) + 1).toISOString();
      await eventually(() => (Date.now() > Date.parse(since) ? true : undefined));
      await publish(d, partner.id, 'order.shipped', { n: 2 });
      await publish(d, partner.id, 'invoice.paid', { n: 3 });
      await publish(d, partner.id, 'order.delivered', { n: 4 });
      await eventually(() => (receiver.callbacks.length === 3 ? true : undefined));

      const res = await d.as(partner.apiKey, 'POST', `/v1/subscriptions/${subscriptionId}/replay`, { since });

      expect(res.status).toBe(202);
      expect(res.body).toEqual({ queued: 2, next: null });
      await eventually(() => (receiver.callbacks.length === 5 ? true : undefined));
      expect(types(receiver).slice(3).sort()).toEqual(['order.delivered', 'order.shipped']);
    });

    it('replays since a time given in whole seconds with an offset, as the instant it names', async () => {
      const d = await dispatcherWith();
      const receiver = await receiverWith();
      const { partner, subscriptionId } = await subscribed(d, receiver);
      // The same second, written in whole seconds at +02:00: events of its later milliseconds
      // sort before it as text, and must be replayed all the same.
      const now = new Date();
      const second = new Date(Math.floor(now.getTime() / 1000) * 1000);
      const local = new Date(second.getTime() + 2 * 3_600_000).toISOString().replace(/\.\d{3}Z$/, '+02:00');
      await publish(d, partner.id, 'order.created', { n: 1 });
      await eventually(() => receiver.callbacks[0]);

      const res = await d.as(partner.apiKey, 'POST', `/v1/subscriptions/${subscriptionId}/replay`, {
        since: local,
      });

      expect(res.status).toBe(202);
      expect(res.body).toEqual({ queued: 1, next: null });
      await eventually(() => (receiver.callbacks.length === 2 ? true : undefined));
    });

    it('rejects a replay without a valid since, naming the field', async () => {
      const d = await dispatcherWith();
      const receiver = await receiverWith();
      const { partner, subscriptionId } = await subscribed(d, receiver);
      const res = await d.as<{ errors: { field: string }[] }>(
        partner.apiKey,
        'POST',
        `/v1/subscriptions/${subscriptionId}/replay`,
        { since: 'yesterday' },
      );
      expect(res.status).toBe(400);
      expect(res.body.errors.map((e) => e.field)).toEqual(['body.since']);
    });

    it('sends a webhook.test event to the one subscription asked, and logs it for polling', async () => {
      const d = await dispatcherWith();
      const tested = await receiverWith();
      const bystander = await receiverWith();
      const { partner, subscriptionId } = await subscribed(d, tested);
      const other = await d.as<{ secret: string }>(partner.apiKey, 'POST', '/v1/subscriptions', {
        url: bystander.url,
      });
      bystander.secrets.push(other.body.secret);

      const res = await d.as<{ eventId: string; deliveryId: string }>(
        partner.apiKey,
        'POST',
        `/v1/subscriptions/${subscriptionId}/test`,
      );

      expect(res.status).toBe(202);
      const callback = await eventually(() => tested.callbacks[0]);
      expect(callback.verifiedBy).toEqual([0]);
      expect(callback.headers['webhook-id']).toBe(res.body.deliveryId);
      expect(JSON.parse(callback.body)).toMatchObject({ id: res.body.eventId, type: 'webhook.test' });
      const polled = await d.as<{ data: { id: string }[] }>(partner.apiKey, 'GET', '/v1/events');
      expect(polled.body.data.map((e) => e.id)).toEqual([res.body.eventId]);
      // Fan-out saw the test event too, and gave it to no other subscription.
      await settled(d);
      expect(bystander.callbacks).toHaveLength(0);
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

    it('ends a delivery skipped when its subscription is disabled before the next try; re-enabling does not resend it, a replay does', async () => {
      const d = await dispatcherWith({ DISPATCHER_RETRY_SCHEDULE: '0,1,1' });
      const receiver = await receiverWith();
      const { partner, subscriptionId } = await subscribed(d, receiver);
      const path = `/v1/subscriptions/${subscriptionId}`;
      // The first try fails, and the partner disables the subscription before answering it.
      receiver.respond = async (_callback, res) => {
        await d.as(partner.apiKey, 'PATCH', path, { status: 'disabled' });
        res.writeHead(500).end();
      };
      const since = new Date(Date.now() - 1000).toISOString();
      const eventId = await publish(d, partner.id);

      const skipped = await eventually(async () => {
        const [delivery] = await deliveries(d, partner.apiKey, subscriptionId);
        return delivery?.status === 'skipped' ? delivery : undefined;
      });
      expect(skipped).toMatchObject({ eventId, skippedReason: 'subscription disabled', attemptCount: 1 });
      expect(skipped).not.toHaveProperty('nextAttemptAt');
      const byEvent = await d.as<{ data: Delivery[] }>(
        partner.apiKey,
        'GET',
        `/v1/events/${eventId}/deliveries`,
      );
      expect(byEvent.body.data).toMatchObject([{ id: skipped.id, status: 'skipped' }]);
      expect(receiver.callbacks).toHaveLength(1);

      receiver.respond = answer(204);
      await d.as(partner.apiKey, 'PATCH', path, { status: 'active' });
      await settled(d);
      expect(receiver.callbacks).toHaveLength(1);
      expect((await deliveries(d, partner.apiKey, subscriptionId))[0]).toMatchObject({ status: 'skipped' });

      const replay = await d.as(partner.apiKey, 'POST', `${path}/replay`, { since });
      expect(replay.body).toEqual({ queued: 1, next: null });
      const resent = await eventually(() => receiver.callbacks[1]);
      expect(JSON.parse(resent.body).id).toBe(eventId);
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
    it('leaves nothing running and the database closed when it cannot listen', async () => {
      const taken = createServer();
      await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
      const address = taken.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      const dataDir = mkdtempSync(join(tmpdir(), 'dispatcher-taken-'));
      try {
        const config = parseLocalConfig({ PORT: String(port), DISPATCHER_DATA_DIR: dataDir });
        await expect(startLocalDispatcher(config, { log: () => {} })).rejects.toThrow(/EADDRINUSE/);
        // Closing the last connection removes the write-ahead log: nothing holds the file.
        expect(existsSync(`${databasePath(dataDir)}-wal`)).toBe(false);
      } finally {
        taken.close();
        rmSync(dataDir, { recursive: true, force: true });
      }
    });

    it('loses nothing when stopped cleanly with deliveries in flight', async () => {
      // Enough short tries that no delivery runs out of them however long the restart takes.
      let d = await dispatcherWith({
        DISPATCHER_RETRY_SCHEDULE: [0, ...Array(29).fill(1)].join(','),
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

    it('redelivers what was in flight within 15 s of a restart after the process is killed with SIGKILL', async () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'dispatcher-kill-'));
      running.push({ stop: async () => rmSync(dataDir, { recursive: true, force: true }) });
      // The receiver holds every request open: deliveries are in flight when the process dies.
      const receiver = await receiverWith(() => {});
      // The default delivery timeout: a minute of visibility, which a restart does not wait out.
      const env = {
        DISPATCHER_DATA_DIR: dataDir,
        DISPATCHER_ADMIN_TOKEN: 'test-admin-token-0123456789',
      };
      const port = await closedPort();
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
      // A new subscription starts with 4 slots: 4 callbacks are held open, the 5th waits.
      await eventually(() => (receiver.callbacks.length >= 4 ? true : undefined));
      await killed(child);
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

describe('the data directory', () => {
  it('belongs to one runtime: a second is refused, naming the process that has it; after a stop another starts', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'dispatcher-lock-'));
    try {
      const first = await startTestDispatcher({}, {}, dataDir);
      await expect(startTestDispatcher({}, {}, dataDir)).rejects.toThrow(
        new RegExp(`in use by process ${process.pid}.*DISPATCHER_DATA_DIR`),
      );
      await first.stop();
      const second = await startTestDispatcher({}, {}, dataDir);
      await second.stop();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('is taken over from a process that died holding it', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'dispatcher-lock-'));
    try {
      const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
      await new Promise((resolve) => child.once('exit', resolve));
      writeFileSync(join(dataDir, 'dispatcher.lock'), String(child.pid));

      const d = await startTestDispatcher({}, {}, dataDir);
      await d.stop();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
