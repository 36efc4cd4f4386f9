/**
 * The real agent (`dispatcher listen`, a process of its own) against the real local runtime,
 * forwarding to a receiver that verifies with the standard library: every event arrives
 * verified; the agent killed, events published meanwhile, the agent restarted, nothing lost; a
 * failing receiver's deliveries retried and dead-lettered as a URL's are; two agents sharing a
 * subscription, each delivery once; an event too large for one frame put together from its
 * parts and forwarded byte for byte.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { largePayload } from '../support/large-payload.ts';
import { createSubscriptionFor, type DeliveryView, type Page, publish } from './api-support.ts';
import { eventually, settled, startTestDispatcher, type TestDispatcher } from './harness.ts';
import { answer, startReceiver, type TestReceiver } from './receiver.ts';

const BIN = join(import.meta.dirname, '../../bin/dispatcher.ts');

describe('the agent, end to end', () => {
  let d: TestDispatcher;
  let receiver: TestReceiver;
  let apiKey: string;
  let partnerId: string;
  let subscriptionId: string;
  const agents = new Set<ChildProcess>();

  /** Starts `dispatcher listen` for the subscription, forwarding to the receiver; resolves once connected. */
  function startAgent(): ChildProcess {
    const child = spawn(
      process.execPath,
      [
        BIN,
        'listen',
        '--url',
        d.dispatcher.url,
        '--subscription',
        subscriptionId,
        '--forward-to',
        `${receiver.url}/hooks`,
      ],
      { env: { PATH: process.env.PATH ?? '', DISPATCHER_API_KEY: apiKey }, stdio: 'ignore' },
    );
    agents.add(child);
    child.on('exit', () => agents.delete(child));
    return child;
  }

  async function stopAgent(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
    const exited = new Promise((done) => child.once('exit', done));
    child.kill(signal);
    await exited;
  }

  /** Event ids of the callbacks the receiver verified and answered 2xx, from `from` on. */
  function verified(from = 0): string[] {
    return receiver.callbacks
      .slice(from)
      .filter((c) => c.verifiedBy.length > 0)
      .map((c) => (JSON.parse(c.body) as { id: string }).id);
  }

  async function deliveries(): Promise<DeliveryView[]> {
    const all: DeliveryView[] = [];
    let after = '';
    for (;;) {
      const page = await d.as<Page<DeliveryView>>(
        apiKey,
        'GET',
        `/v1/subscriptions/${subscriptionId}/deliveries?limit=100${after}`,
      );
      all.push(...page.body.data);
      if (page.body.next === null) return all;
      after = `&after=${page.body.next}`;
    }
  }

  async function publishMany(count: number): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < count; i++) ids.push(await publish(d, partnerId, 'order.created', { i }));
    return ids;
  }

  beforeAll(async () => {
    d = await startTestDispatcher({
      DISPATCHER_RETRY_SCHEDULE: '0,1',
      DISPATCHER_DELIVERY_TIMEOUT_MS: '3000',
    });
    receiver = await startReceiver(answer(204));
    const partner = await d.createPartner();
    apiKey = partner.apiKey;
    partnerId = partner.id;
    const subscription = await createSubscriptionFor(d, apiKey, { transport: 'connection' });
    subscriptionId = subscription.id;
    receiver.secrets.push(subscription.secret ?? '');
  });

  afterAll(async () => {
    for (const child of agents) child.kill('SIGKILL');
    await receiver.close();
    await d.cleanup();
  });

  it('delivers every event through the agent, verified at the forwarded URL; a killed agent loses nothing', async () => {
    const agent = startAgent();
    await eventually(() => (d.dispatcher.connections.size === 1 ? true : undefined), 15_000);
    const first = await publishMany(3);
    await eventually(() => (verified().length >= 3 ? true : undefined), 15_000);
    expect(new Set(verified())).toEqual(new Set(first));

    await stopAgent(agent, 'SIGKILL');
    const meanwhile = await publishMany(3);
    // With no connection they wait, untried.
    await eventually(async () => {
      const listed = await deliveries();
      const waiting = listed.filter((x) => meanwhile.includes(x.eventId));
      return waiting.length === 3 && waiting.every((x) => x.status === 'pending' && x.attemptCount === 0)
        ? true
        : undefined;
    });

    const restarted = startAgent();
    await eventually(() => (meanwhile.every((id) => verified().includes(id)) ? true : undefined), 15_000);
    await settled(d);
    const listed = await deliveries();
    expect(listed.filter((x) => [...first, ...meanwhile].includes(x.eventId)).map((x) => x.status)).toEqual(
      Array(6).fill('succeeded'),
    );
    await stopAgent(restarted, 'SIGTERM');
  });

  it('shares the subscription between two agents, each delivery once', async () => {
    const both = [startAgent(), startAgent()];
    await eventually(() => (d.dispatcher.connections.size === 2 ? true : undefined), 15_000);
    const before = receiver.callbacks.length;
    const events = await publishMany(10);
    await eventually(() => (events.every((id) => verified(before).includes(id)) ? true : undefined), 15_000);
    await settled(d);
    const got = verified(before);
    expect(got.filter((id) => events.includes(id)).sort()).toEqual([...events].sort());
    for (const child of both) await stopAgent(child, 'SIGTERM');
  });

  it('delivers an event too large for one frame, its body put together and forwarded byte for byte', async () => {
    const agent = startAgent();
    await eventually(() => (d.dispatcher.connections.size === 1 ? true : undefined), 15_000);
    const before = receiver.callbacks.length;
    const payload = largePayload(200);
    expect(Buffer.byteLength(JSON.stringify(payload))).toBeGreaterThan(200 * 1024);
    const event = await publish(d, partnerId, 'order.created', payload);
    const [callback] = await eventually(() => {
      const got = receiver.callbacks.slice(before);
      return got.length > 0 ? got : undefined;
    }, 15_000);
    // Verified with the subscription's secret: the signature covers the exact bytes sent.
    expect(callback?.verifiedBy).toEqual([0]);
    const body = JSON.parse(callback?.body ?? '') as { id: string; payload: unknown };
    expect(body.id).toBe(event);
    expect(body.payload).toEqual(payload);
    expect(callback?.headers['webhook-id']).toBeDefined();
    await eventually(async () => {
      const delivery = (await deliveries()).find((x) => x.eventId === event);
      return delivery?.status === 'succeeded' ? delivery : undefined;
    }, 15_000);
    expect(receiver.callbacks.slice(before)).toHaveLength(1);
    await stopAgent(agent, 'SIGTERM');
  });

  it('retries what the receiver fails, then dead-letters it, as for a URL', async () => {
    const agent = startAgent();
    await eventually(() => (d.dispatcher.connections.size === 1 ? true : undefined), 15_000);
    receiver.respond = answer(500);
    const [event] = await publishMany(1);
    await eventually(async () => {
      const delivery = (await deliveries()).find((x) => x.eventId === event);
      return delivery?.status === 'dead' ? delivery : undefined;
    }, 15_000);
    const delivery = (await deliveries()).find((x) => x.eventId === event);
    expect(delivery?.attempts.map((a) => a.statusCode)).toEqual([500, 500]);
    expect(d.dispatcher.queues.deliveryDlq.stats().visible).toBe(1);
    receiver.respond = answer(204);
    await stopAgent(agent, 'SIGTERM');
  });
});
