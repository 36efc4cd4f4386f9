/**
 * The ops routes on the local runtime: a receiver breaks, its deliveries end in the delivery
 * DLQ, ops see each dead letter and why it died, fix the receiver, redrive, and every event
 * is delivered; purges, paced and cancelled redrives, subscription health, delivery rates.
 */
import { describe, expect, it } from 'vitest';
import type { DeadLetterView } from '../../functions/core/ops.ts';
import type { QueueInfo, RedriveTask } from '../../functions/core/ports.ts';
import { createSubscriptionFor, expectProblem, publish, raw } from './api-support.ts';
import { eventually, settled, startTestDispatcher, type TestDispatcher } from './harness.ts';
import { answer, startReceiver, type TestReceiver } from './receiver.ts';

/** Two tries, a second apart: a broken receiver's deliveries die fast. */
const SHORT_SCHEDULE = { DISPATCHER_RETRY_SCHEDULE: '0,1' };

async function queue(d: TestDispatcher, name: string): Promise<QueueInfo> {
  const res = await d.admin<{ data: QueueInfo[] }>('GET', '/v1/admin/queues');
  expect(res.status).toBe(200);
  const found = res.body.data.find((q) => q.name === name);
  if (found === undefined) throw new Error(`no queue ${name}`);
  return found;
}

async function deadLetters(d: TestDispatcher, name = 'delivery-dlq', limit = 20): Promise<DeadLetterView[]> {
  const res = await d.admin<{ data: DeadLetterView[] }>(
    'GET',
    `/v1/admin/dlq/${name}/messages?limit=${limit}`,
  );
  expect(res.status).toBe(200);
  return res.body.data;
}

/** Event ids of the callbacks the receiver verified and answered 2xx to. */
function delivered(receiver: TestReceiver, succeededFrom: number): string[] {
  return receiver.callbacks
    .slice(succeededFrom)
    .filter((c) => c.verifiedBy.length > 0)
    .map((c) => (JSON.parse(c.body) as { id: string }).id);
}

/** A partner with a subscription to a receiver that answers 500 until told otherwise. */
async function brokenReceiver(d: TestDispatcher) {
  const receiver = await startReceiver(answer(500));
  const partner = await d.createPartner();
  const subscription = await createSubscriptionFor(d, partner.apiKey, { url: `${receiver.url}/hooks` });
  receiver.secrets.push(subscription.secret ?? '');
  return { receiver, partner, subscription };
}

async function deadLettered(d: TestDispatcher, count: number): Promise<void> {
  await eventually(
    async () => ((await queue(d, 'delivery-dlq')).visible >= count ? true : undefined),
    15_000,
  );
}

describe('dead letters, from a broken receiver to every event delivered', () => {
  it('lists each dead letter with why it died, redrives it once the receiver is fixed, and delivers every event', async () => {
    const d = await startTestDispatcher(SHORT_SCHEDULE);
    const { receiver, partner, subscription } = await brokenReceiver(d);
    try {
      const events = [];
      for (let i = 0; i < 3; i++) events.push(await publish(d, partner.id, 'order.created', { i }));
      await deadLettered(d, 3);
      await settled(d);

      const queues = (await d.admin<{ data: QueueInfo[] }>('GET', '/v1/admin/queues')).body.data;
      expect(queues.map((q) => [q.name, q.kind, q.redrivesTo ?? null])).toEqual([
        ['fanout', 'work', null],
        ['fanout-dlq', 'dead-letter', 'fanout'],
        ['delivery', 'work', null],
        ['delivery-dlq', 'dead-letter', 'delivery'],
      ]);
      const dlq = queues.find((q) => q.name === 'delivery-dlq');
      expect(dlq).toMatchObject({ visible: 3, inFlight: 0, delayed: 0 });
      expect(dlq?.oldestAgeSeconds).toBeGreaterThanOrEqual(0);

      const letters = await deadLetters(d);
      expect(letters.map((l) => l.eventId).sort()).toEqual([...events].sort());
      for (const letter of letters) {
        expect(letter).toMatchObject({
          queue: 'delivery-dlq',
          kind: 'delivery',
          partnerId: partner.id,
          subscriptionId: subscription.id,
          url: `${receiver.url}/hooks`,
          eventType: 'order.created',
          deliveryStatus: 'dead',
          tries: 2,
          lastAttempt: { number: 2, statusCode: 500 },
        });
        expect(letter.reason).toMatch(/^HTTP 500 \(try 2, the schedule used up\)$/);
        expect(Date.parse(letter.deadAt)).toBeGreaterThanOrEqual(
          Date.parse(letter.lastAttempt?.startedAt ?? ''),
        );
      }
      // Listing leaves them where they are.
      expect((await queue(d, 'delivery-dlq')).visible).toBe(3);

      const failing = await d.admin<{ data: { id: string; failingSince?: string }[] }>(
        'GET',
        '/v1/admin/subscriptions?status=failing',
      );
      expect(failing.body.data.map((s) => s.id)).toEqual([subscription.id]);
      expect(failing.body.data[0]?.failingSince).toBeDefined();

      const dry = await d.admin('POST', '/v1/admin/dlq/delivery-dlq/redrive', { dryRun: true });
      expect(dry.status).toBe(200);
      expect(dry.body).toEqual({
        dryRun: true,
        queue: 'delivery-dlq',
        destination: 'delivery',
        wouldMove: 3,
      });
      expect((await queue(d, 'delivery-dlq')).visible).toBe(3);

      receiver.respond = answer(204);
      const before = receiver.callbacks.length;
      const started = await d.admin<RedriveTask>('POST', '/v1/admin/dlq/delivery-dlq/redrive');
      expect(started.status).toBe(202);
      expect(started.body).toMatchObject({ queue: 'delivery-dlq', destination: 'delivery', toMove: 3 });

      await eventually(() => (new Set(delivered(receiver, before)).size === 3 ? true : undefined), 15_000);
      await settled(d);
      expect(delivered(receiver, before).sort()).toEqual([...events].sort());
      expect((await queue(d, 'delivery-dlq')).visible).toBe(0);
      expect(await deadLetters(d)).toEqual([]);
      const redrives = await d.admin<{ data: RedriveTask[] }>('GET', '/v1/admin/dlq/delivery-dlq/redrives');
      expect(redrives.body.data[0]).toMatchObject({ id: started.body.id, status: 'completed', moved: 3 });
      // One success ends the run of failures.
      const healthy = await d.admin<{ data: unknown[] }>('GET', '/v1/admin/subscriptions?status=failing');
      expect(healthy.body.data).toEqual([]);

      const rates = await d.admin<{ data: { minute: string; succeeded: number; dead: number }[] }>(
        'GET',
        '/v1/admin/delivery-rates?minutes=60',
      );
      expect(rates.body.data).toHaveLength(60);
      expect(rates.body.data.reduce((n, m) => n + m.succeeded, 0)).toBe(3);
      expect(rates.body.data.reduce((n, m) => n + m.dead, 0)).toBe(3);
    } finally {
      await receiver.close();
      await d.cleanup();
    }
  });

  it('paces a redrive, shows its progress, cancels it, and purges what is left', async () => {
    const d = await startTestDispatcher(SHORT_SCHEDULE);
    const { receiver, partner } = await brokenReceiver(d);
    try {
      for (let i = 0; i < 4; i++) await publish(d, partner.id, 'order.created', { i });
      await deadLettered(d, 4);
      await settled(d);

      const started = await d.admin<RedriveTask>('POST', '/v1/admin/dlq/delivery-dlq/redrive', {
        maxPerSecond: 1,
        max: 3,
      });
      expect(started.status).toBe(202);
      expect(started.body).toMatchObject({ status: 'running', toMove: 3, maxPerSecond: 1 });
      const second = await d.admin('POST', '/v1/admin/dlq/delivery-dlq/redrive');
      expectProblem(second, 409);

      await eventually(async () => {
        const tasks = await d.admin<{ data: RedriveTask[] }>('GET', '/v1/admin/dlq/delivery-dlq/redrives');
        return (tasks.body.data[0]?.moved ?? 0) >= 1 ? true : undefined;
      });
      const cancelled = await d.admin<RedriveTask>(
        'DELETE',
        `/v1/admin/dlq/delivery-dlq/redrives/${encodeURIComponent(started.body.id)}`,
      );
      expect(cancelled.status).toBe(200);
      expect(cancelled.body.status).toBe('cancelled');
      expect(cancelled.body.moved).toBeLessThan(3);
      const again = await d.admin('DELETE', `/v1/admin/dlq/delivery-dlq/redrives/${started.body.id}`);
      expectProblem(again, 404);

      // The receiver still fails, so what moved dies again; then the DLQ is purged.
      await settled(d, 15_000);
      const left = (await queue(d, 'delivery-dlq')).visible;
      expect(left).toBe(4);
      const purged = await d.admin('DELETE', '/v1/admin/dlq/delivery-dlq/messages');
      expect(purged.status).toBe(200);
      expect(purged.body).toEqual({ queue: 'delivery-dlq', purged: 4 });
      expect((await queue(d, 'delivery-dlq')).visible).toBe(0);
    } finally {
      await receiver.close();
      await d.cleanup();
    }
  });

  it('names the queues there are, refuses bad input by field, and needs the admin token', async () => {
    const d = await startTestDispatcher();
    try {
      const unknown = expectProblem(await d.admin('GET', '/v1/admin/dlq/nope/messages'), 404, 'path.queue');
      expect(unknown.detail).toContain('delivery-dlq');
      // A work queue is not a dead-letter queue.
      expectProblem(await d.admin('POST', '/v1/admin/dlq/delivery/redrive'), 404, 'path.queue');
      expectProblem(await d.admin('GET', '/v1/admin/dlq/delivery-dlq/messages?limit=0'), 400, 'query.limit');
      expectProblem(
        await d.admin('POST', '/v1/admin/dlq/delivery-dlq/redrive', { maxPerSecond: 501 }),
        400,
        'body.maxPerSecond',
      );
      expectProblem(
        await d.admin('POST', '/v1/admin/dlq/delivery-dlq/redrive', { max: 'all' }),
        400,
        'body.max',
      );
      expectProblem(await d.admin('GET', '/v1/admin/subscriptions'), 400, 'query.status');
      expectProblem(await d.admin('GET', '/v1/admin/subscriptions?status=sad'), 400, 'query.status');
      expectProblem(await d.admin('GET', '/v1/admin/delivery-rates?minutes=181'), 400, 'query.minutes');

      const partner = await d.createPartner();
      const callers: Record<string, string>[] = [{}, { authorization: `Bearer ${partner.apiKey}` }];
      for (const headers of callers) {
        for (const [method, path] of [
          ['GET', '/v1/admin/queues'],
          ['GET', '/v1/admin/dlq/delivery-dlq/messages'],
          ['POST', '/v1/admin/dlq/delivery-dlq/redrive'],
          ['DELETE', '/v1/admin/dlq/delivery-dlq/messages'],
          ['GET', '/v1/admin/subscriptions?status=disabled'],
        ] as const) {
          expectProblem(await raw(`${d.dispatcher.url}${path}`, method, headers), 401);
        }
      }
    } finally {
      await d.cleanup();
    }
  });

  it('explains a fan-out dead letter and an unreadable one, and redrives the fan-out DLQ to fan-out', async () => {
    const d = await startTestDispatcher();
    try {
      const receiver = await startReceiver(answer(204));
      const partner = await d.createPartner();
      const subscription = await createSubscriptionFor(d, partner.apiKey, { url: `${receiver.url}/hooks` });
      receiver.secrets.push(subscription.secret ?? '');
      const createdAt = new Date().toISOString();
      const { fanoutDlq } = d.dispatcher.queues;
      // What fan-out gave up on, as its queue leaves it: the event's reference (the event exists).
      const eventId = await publish(d, partner.id, 'order.created', { n: 1 });
      await eventually(() => (receiver.callbacks.length === 1 ? true : undefined));
      await fanoutDlq.send([
        { body: { id: eventId, partnerId: partner.id, type: 'order.created', createdAt } },
      ]);
      await fanoutDlq.send([{ body: { not: 'ours' } as never }]);

      const letters = await deadLetters(d, 'fanout-dlq');
      expect(letters).toHaveLength(2);
      expect(letters[0]).toMatchObject({
        kind: 'event',
        eventId,
        partnerId: partner.id,
        eventType: 'order.created',
      });
      expect(letters[0]?.reason).toMatch(/^fan-out failed on it/);
      expect(letters[1]).toMatchObject({ kind: 'unreadable', body: '{"not":"ours"}' });

      const moved = await d.admin<RedriveTask>('POST', '/v1/admin/dlq/fanout-dlq/redrive', { max: 1 });
      expect(moved.body).toMatchObject({ status: 'completed', moved: 1, destination: 'fanout' });
      await settled(d);
      // Fanned out again, the event finds its delivery made: no second callback.
      expect(receiver.callbacks).toHaveLength(1);
      expect((await deadLetters(d, 'fanout-dlq')).map((l) => l.kind)).toEqual(['unreadable']);
      await receiver.close();
    } finally {
      await d.cleanup();
    }
  });
});
