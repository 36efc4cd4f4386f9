/**
 * Connection subscriptions on the local runtime, spoken to over a real WebSocket as
 * docs/connection-protocol.md describes: deliveries wait for a connection without spending a
 * try, flow once one opens, verify with the standard library, and are retried, timed out and
 * dead-lettered as a URL's are; connections share a subscription's deliveries; a large one comes
 * in parts, no frame over the limit.
 */
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import {
  MAX_CONNECTIONS_PER_PARTNER,
  MAX_SERVER_FRAME_BYTES,
} from '../../functions/core/connection-protocol.ts';
import { largePayload } from '../support/large-payload.ts';
import {
  createSubscriptionFor,
  type DeliveryView,
  expectProblem,
  type Page,
  publish,
} from './api-support.ts';
import { eventually, settled, startTestDispatcher, type TestDispatcher } from './harness.ts';

interface DeliveryFrame {
  type: 'delivery';
  deliveryId: string;
  attempt: number;
  subscriptionId: string;
  headers: Record<string, string>;
  body: string;
}

/** A connection as an agent opens it, with every frame it has received. */
async function connect(
  d: TestDispatcher,
  apiKey: string,
  subscriptionId?: string,
): Promise<{ ws: WebSocket; frames: Record<string, unknown>[]; deliveries: () => DeliveryFrame[] }> {
  const info = await d.as<{ url: string }>(apiKey, 'GET', '/v1/connect-info');
  expect(info.status).toBe(200);
  const url =
    subscriptionId === undefined ? info.body.url : `${info.body.url}?subscription=${subscriptionId}`;
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${apiKey}` } });
  const frames: Record<string, unknown>[] = [];
  ws.on('message', (data) => frames.push(JSON.parse(String(data)) as Record<string, unknown>));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  await eventually(() => (frames.some((f) => f.type === 'hello') ? true : undefined));
  return {
    ws,
    frames,
    deliveries: () =>
      frames.filter((f): f is DeliveryFrame & Record<string, unknown> => f.type === 'delivery'),
  };
}

/** The upgrade's answer when it is refused: its HTTP status. */
function refusedWith(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once('open', () => reject(new Error('the upgrade was accepted')));
    ws.once('error', () => {});
  });
}

async function deliveriesOf(
  d: TestDispatcher,
  apiKey: string,
  subscriptionId: string,
): Promise<DeliveryView[]> {
  const res = await d.as<Page<DeliveryView>>(apiKey, 'GET', `/v1/subscriptions/${subscriptionId}/deliveries`);
  return res.body.data;
}

async function connectionSubscription(d: TestDispatcher, apiKey: string) {
  return createSubscriptionFor(d, apiKey, { transport: 'connection' });
}

describe('connection subscriptions', () => {
  it('hold deliveries without spending a try until a connection opens, then push them, verified', async () => {
    const d = await startTestDispatcher();
    try {
      const partner = await d.createPartner();
      const sub = await connectionSubscription(d, partner.apiKey);
      expect(sub).toMatchObject({ transport: 'connection', status: 'active' });
      expect(sub).not.toHaveProperty('url');
      expect(sub.secret).toMatch(/^whsec_/);

      const events = [
        await publish(d, partner.id, 'order.created', { n: 1 }),
        await publish(d, partner.id, 'order.created', { n: 2 }),
      ];
      await eventually(async () => {
        const listed = await deliveriesOf(d, partner.apiKey, sub.id);
        return listed.length === 2 ? listed : undefined;
      });
      // Each try waits, delayed in the queue, untried.
      await eventually(() => (d.dispatcher.queues.delivery.stats().delayed === 2 ? true : undefined));
      for (const delivery of await deliveriesOf(d, partner.apiKey, sub.id)) {
        expect(delivery).toMatchObject({ status: 'pending', attemptCount: 0 });
      }

      const agent = await connect(d, partner.apiKey);
      expect(agent.frames[0]).toMatchObject({ type: 'hello', subscriptions: [sub.id], heartbeatSeconds: 30 });
      await eventually(() => (agent.deliveries().length === 2 ? true : undefined));
      const webhook = new Webhook(sub.secret ?? '');
      for (const frame of agent.deliveries()) {
        const verified = webhook.verify(frame.body, frame.headers) as { id: string };
        expect(events).toContain(verified.id);
        expect(frame).toMatchObject({ attempt: 1, subscriptionId: sub.id });
        expect(frame.headers['webhook-id']).toBe(frame.deliveryId);
        agent.ws.send(
          JSON.stringify({ type: 'ack', deliveryId: frame.deliveryId, attempt: frame.attempt, status: 204 }),
        );
      }
      await eventually(async () => {
        const listed = await deliveriesOf(d, partner.apiKey, sub.id);
        return listed.every((x) => x.status === 'succeeded') ? true : undefined;
      });
      const [first] = await deliveriesOf(d, partner.apiKey, sub.id);
      expect(first?.attempts).toEqual([expect.objectContaining({ number: 1, statusCode: 204 })]);

      // A heartbeat is answered.
      agent.ws.send(JSON.stringify({ type: 'ping', id: 7 }));
      await eventually(() => (agent.frames.some((f) => f.type === 'pong' && f.id === 7) ? true : undefined));
      agent.ws.close();
    } finally {
      await d.cleanup();
    }
  });

  it('retries a nack and an unanswered delivery on the schedule, then dead-letters it', async () => {
    const d = await startTestDispatcher({
      DISPATCHER_RETRY_SCHEDULE: '0,1',
      DISPATCHER_DELIVERY_TIMEOUT_MS: '500',
    });
    try {
      const partner = await d.createPartner();
      const sub = await connectionSubscription(d, partner.apiKey);
      const agent = await connect(d, partner.apiKey, sub.id);
      await publish(d, partner.id, 'order.created');
      const [firstTry] = await eventually(() =>
        agent.deliveries().length === 1 ? agent.deliveries() : undefined,
      );
      agent.ws.send(
        JSON.stringify({
          type: 'nack',
          deliveryId: firstTry?.deliveryId,
          attempt: 1,
          status: 500,
          error: 'down',
        }),
      );
      // The second try goes unanswered: a timeout, the schedule's last.
      await eventually(() => (agent.deliveries().length === 2 ? true : undefined));
      await eventually(() => (d.dispatcher.queues.deliveryDlq.stats().visible === 1 ? true : undefined));
      const [delivery] = await deliveriesOf(d, partner.apiKey, sub.id);
      expect(delivery?.status).toBe('dead');
      expect(delivery?.attempts.map((a) => [a.number, a.statusCode ?? null, a.error ?? null])).toEqual([
        [1, 500, 'http_status'],
        [2, null, 'timeout'],
      ]);
      // A late answer changes nothing.
      agent.ws.send(
        JSON.stringify({ type: 'ack', deliveryId: firstTry?.deliveryId, attempt: 2, status: 200 }),
      );
      await settled(d);
      expect((await deliveriesOf(d, partner.apiKey, sub.id))[0]?.status).toBe('dead');
      agent.ws.close();
    } finally {
      await d.cleanup();
    }
  });

  it('shares a subscription’s deliveries between its connections, each delivery once', async () => {
    const d = await startTestDispatcher();
    try {
      const partner = await d.createPartner();
      const sub = await connectionSubscription(d, partner.apiKey);
      const agents = [await connect(d, partner.apiKey, sub.id), await connect(d, partner.apiKey)];
      for (const agent of agents) {
        agent.ws.on('message', (data) => {
          const frame = JSON.parse(String(data)) as DeliveryFrame;
          if (frame.type !== 'delivery') return;
          // Answered a moment later, so tries overlap and both connections get some.
          setTimeout(() => {
            agent.ws.send(
              JSON.stringify({
                type: 'ack',
                deliveryId: frame.deliveryId,
                attempt: frame.attempt,
                status: 200,
              }),
            );
          }, 20);
        });
      }
      for (let i = 0; i < 12; i++) await publish(d, partner.id, 'order.created', { i });
      await eventually(async () => {
        const listed = await deliveriesOf(d, partner.apiKey, sub.id);
        return listed.length === 12 && listed.every((x) => x.status === 'succeeded') ? true : undefined;
      });
      const received = agents.flatMap((a) => a.deliveries().map((f) => f.deliveryId));
      expect(received).toHaveLength(12);
      expect(new Set(received).size).toBe(12);
      expect(agents.every((a) => a.deliveries().length > 0)).toBe(true);
      for (const agent of agents) agent.ws.close();
    } finally {
      await d.cleanup();
    }
  });

  it('closes the connections of a revoked key at once, and counts a nack as a failure whatever its status', async () => {
    const d = await startTestDispatcher({ DISPATCHER_RETRY_SCHEDULE: '0,60' });
    try {
      const partner = await d.createPartner();
      const sub = await connectionSubscription(d, partner.apiKey);
      const agent = await connect(d, partner.apiKey, sub.id);
      await publish(d, partner.id, 'order.created');
      const [frame] = await eventually(() =>
        agent.deliveries().length === 1 ? agent.deliveries() : undefined,
      );
      agent.ws.send(
        JSON.stringify({
          type: 'nack',
          deliveryId: frame?.deliveryId,
          attempt: 1,
          status: 200,
          error: 'not handled',
        }),
      );
      const [failed] = await eventually(async () => {
        const listed = await deliveriesOf(d, partner.apiKey, sub.id);
        return listed[0]?.status === 'failed' ? listed : undefined;
      });
      expect(failed?.attempts[0]).toMatchObject({ error: 'connection' });

      const second = await d.as<{ id: string; apiKey: string }>(partner.apiKey, 'POST', '/v1/keys', {});
      const other = await connect(d, second.body.apiKey, sub.id);
      const closed = new Promise<number>((resolve) => other.ws.once('close', (code) => resolve(code)));
      expect((await d.as(partner.apiKey, 'DELETE', `/v1/keys/${second.body.id}`)).status).toBe(204);
      expect(await closed).toBe(4401);
      // The first key's connection stays.
      expect(agent.ws.readyState).toBe(WebSocket.OPEN);
      agent.ws.close();
    } finally {
      await d.cleanup();
    }
  });

  it('sends a delivery larger than a frame as a head and its parts, each within the limit', async () => {
    const d = await startTestDispatcher();
    try {
      const partner = await d.createPartner();
      const sub = await connectionSubscription(d, partner.apiKey);
      const agent = await connect(d, partner.apiKey, sub.id);
      const sizes: number[] = [];
      agent.ws.on('message', (data: Buffer) => sizes.push(data.byteLength));
      const payload = largePayload(200);
      const event = await publish(d, partner.id, 'order.created', payload);

      const [head] = await eventually(() => {
        const heads = agent.frames.filter((f) => f.type === 'delivery');
        const parts = agent.frames.filter((f) => f.type === 'delivery-part');
        return heads.length === 1 && parts.length === heads[0]?.bodyParts ? heads : undefined;
      });
      expect(head).not.toHaveProperty('body');
      expect(head).toMatchObject({ attempt: 1, subscriptionId: sub.id, bodyParts: expect.any(Number) });
      const count = head?.bodyParts as number;
      expect(count).toBeGreaterThanOrEqual(2);
      const parts = agent.frames.filter((f) => f.type === 'delivery-part');
      // Sent in order, right after the head.
      expect(agent.frames.slice(agent.frames.indexOf(head ?? {}) + 1)).toEqual(parts);
      expect(parts.map((p) => [p.deliveryId, p.attempt, p.part])).toEqual(
        Array.from({ length: count }, (_, i) => [head?.deliveryId, 1, i]),
      );
      // Every frame of the try (the head and its parts) is within the limit, in UTF-8 bytes.
      expect(sizes).toHaveLength(count + 1);
      expect(Math.max(...sizes)).toBeLessThanOrEqual(MAX_SERVER_FRAME_BYTES);

      const body = parts.map((p) => p.data as string).join('');
      const headers = head?.headers as Record<string, string>;
      const verified = new Webhook(sub.secret ?? '').verify(body, headers) as {
        id: string;
        payload: unknown;
      };
      expect(verified.id).toBe(event);
      expect(verified.payload).toEqual(payload);

      agent.ws.send(JSON.stringify({ type: 'ack', deliveryId: head?.deliveryId, attempt: 1, status: 200 }));
      await eventually(async () => {
        const [delivery] = await deliveriesOf(d, partner.apiKey, sub.id);
        return delivery?.status === 'succeeded' ? true : undefined;
      });
      agent.ws.close();
    } finally {
      await d.cleanup();
    }
  });

  it('refuses a wrong key, another partner’s subscription, and a url where there is none', async () => {
    const d = await startTestDispatcher();
    try {
      const partner = await d.createPartner();
      const other = await d.createPartner('globex');
      const sub = await connectionSubscription(d, partner.apiKey);
      const info = await d.as<{ url: string }>(partner.apiKey, 'GET', '/v1/connect-info');
      expect(info.body.url).toBe(`${d.dispatcher.url.replace('http:', 'ws:')}/v1/connect`);

      // What the upgrade refuses, connect-info refuses with a status a client can read.
      expect((await d.as(partner.apiKey, 'GET', `/v1/connect-info?subscription=${sub.id}`)).status).toBe(200);
      expectProblem(await d.as(other.apiKey, 'GET', `/v1/connect-info?subscription=${sub.id}`), 404);
      expectProblem(
        await d.as(partner.apiKey, 'GET', '/v1/connect-info?subscription=nope'),
        400,
        'query.subscription',
      );

      expect(await refusedWith(info.body.url, {})).toBe(401);
      expect(await refusedWith(info.body.url, { authorization: 'Bearer dk_wrong' })).toBe(401);
      expect(
        await refusedWith(`${info.body.url}?subscription=${sub.id}`, {
          authorization: `Bearer ${other.apiKey}`,
        }),
      ).toBe(404);

      // At most 20 at once per partner.
      const open = await Promise.all(
        Array.from({ length: MAX_CONNECTIONS_PER_PARTNER }, () => connect(d, partner.apiKey)),
      );
      expect(await refusedWith(info.body.url, { authorization: `Bearer ${partner.apiKey}` })).toBe(429);
      for (const agent of open) agent.ws.terminate();
      await eventually(() => (d.dispatcher.connections.size === 0 ? true : undefined));

      expectProblem(
        await d.as(partner.apiKey, 'POST', '/v1/subscriptions', {
          transport: 'connection',
          url: 'https://hooks.example.com/x',
        }),
        400,
        'body.url',
      );
      expectProblem(await d.as(partner.apiKey, 'POST', '/v1/subscriptions', {}), 400, 'body.url');
      expectProblem(
        await d.as(partner.apiKey, 'PATCH', `/v1/subscriptions/${sub.id}`, {
          url: 'https://hooks.example.com/x',
        }),
        400,
        'body.url',
      );
    } finally {
      await d.cleanup();
    }
  });
});
