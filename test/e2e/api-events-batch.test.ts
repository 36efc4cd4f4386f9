/**
 * The HTTP API end to end, publishing in batches: the real local runtime on 127.0.0.1,
 * called over real HTTP as the platform admin (admin token) and as partners (API keys) would.
 */
import { describe, expect, it } from 'vitest';
import {
  createSubscriptionFor,
  EVENT_ID,
  type EventView,
  expectProblem,
  type Page,
  type Problem,
  type Published,
  pageThrough,
  publish,
  raw,
  UNKNOWN_PARTNER_ID,
  withApiDispatcher,
} from './api-support.ts';
import { eventually, request, type TestDispatcher } from './harness.ts';
import { startReceiver } from './receiver.ts';

describe('HTTP API: POST /v1/events/batch', () => {
  let d: TestDispatcher;
  withApiDispatcher((started) => {
    d = started;
  });

  const createSubscription = (apiKey: string, body?: Record<string, unknown>) =>
    createSubscriptionFor(d, apiKey, body);

  describe('POST /v1/events/batch', () => {
    interface BatchAnswer {
      results: ({ id: string; created: boolean } | { error: Problem })[];
    }

    const batch = (events: unknown) => d.admin<BatchAnswer>('POST', '/v1/events/batch', { events });

    /** Asserts the entry is the problem a single publish would answer, naming `field`. */
    function expectEntryProblem(entry: unknown, status: number, field?: string): Problem {
      expect(entry).toEqual({ error: expect.any(Object) });
      const problem = (entry as { error: Problem }).error;
      expect(problem).toMatchObject({
        type: expect.stringMatching(/^urn:webhook-dispatcher:problem:.+/),
        title: expect.any(String),
        status,
        detail: expect.any(String),
        instance: '/v1/events/batch',
      });
      if (field !== undefined) expect(problem.errors?.map((e) => e.field)).toContain(field);
      return problem;
    }

    function created(entry: unknown): string {
      expect(entry).toEqual({ id: expect.stringMatching(EVENT_ID), created: true });
      return (entry as Published).id;
    }

    it('answers 200 with a result per entry, in request order; a bad entry fails alone', async () => {
      const partner = await d.createPartner();
      const good = (n: number) => ({ partnerId: partner.id, type: 'order.created', payload: { n } });

      const res = await batch([
        good(0),
        { ...good(1), type: 'Order Created' },
        { ...good(2), type: 'webhook.test' },
        { ...good(3), partnerId: UNKNOWN_PARTNER_ID },
        { ...good(4), payload: 'x'.repeat(256 * 1024 - 1) },
        { partnerId: partner.id, type: 'order.created' },
        { ...good(6), priority: 'high' },
        'not an event',
        good(8),
      ]);

      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^application\/json\b/);
      const { results } = res.body;
      expect(results).toHaveLength(9);
      const first = created(results[0]);
      expectEntryProblem(results[1], 400, 'body.events[1].type');
      expectEntryProblem(results[2], 400, 'body.events[2].type');
      const unknown = expectEntryProblem(results[3], 404, 'body.events[3].partnerId');
      expect(unknown.detail).toContain(UNKNOWN_PARTNER_ID);
      expectEntryProblem(results[4], 413, 'body.events[4].payload');
      expectEntryProblem(results[5], 400, 'body.events[5].payload');
      expectEntryProblem(results[6], 400);
      expectEntryProblem(results[7], 400, 'body.events[7]');
      const last = created(results[8]);

      const polled = await d.as<Page<EventView>>(partner.apiKey, 'GET', '/v1/events');
      expect(polled.body.data).toEqual([
        { id: first, type: 'order.created', payload: { n: 0 }, createdAt: expect.any(String) },
        { id: last, type: 'order.created', payload: { n: 8 }, createdAt: expect.any(String) },
      ]);
    });

    it('answers each problem entry as the single publish answers the same event', async () => {
      const partner = await d.createPartner();
      const bad = [
        { partnerId: partner.id, type: 'subscription.disabled', payload: {} },
        { partnerId: UNKNOWN_PARTNER_ID, type: 'order.created', payload: {} },
        { partnerId: 'acme', type: 'order.created', payload: {} },
      ];

      const res = await batch(bad);

      for (const [i, event] of bad.entries()) {
        const single = (await d.admin<Problem>('POST', '/v1/events', event)).body;
        const entry = (res.body.results[i] as { error: Problem }).error;
        expect(entry).toEqual({
          ...single,
          detail: single.detail.replace(/^body\./, `body.events[${i}].`),
          instance: '/v1/events/batch',
          errors: single.errors?.map((e) => ({ ...e, field: e.field.replace(/^body/, `body.events[${i}]`) })),
        });
      }
    });

    it('publishes events of several partners, each pollable only by its own partner, in request order', async () => {
      const a = await d.createPartner('a');
      const b = await d.createPartner('b');
      const events = Array.from({ length: 20 }, (_, i) => ({
        partnerId: i % 2 === 0 ? a.id : b.id,
        type: 'order.created',
        payload: { i },
      }));

      const res = await batch(events);

      expect(res.status).toBe(200);
      const ids = res.body.results.map(created);
      const pollA = await d.as<Page<EventView>>(a.apiKey, 'GET', '/v1/events');
      const pollB = await d.as<Page<EventView>>(b.apiKey, 'GET', '/v1/events');
      expect(pollA.body.data.map((e) => e.id)).toEqual(ids.filter((_, i) => i % 2 === 0));
      expect(pollB.body.data.map((e) => e.id)).toEqual(ids.filter((_, i) => i % 2 === 1));
      expect(pollA.body.data.map((e) => e.payload)).toEqual(
        events.filter((_, i) => i % 2 === 0).map((e) => e.payload),
      );
    });

    it('sends each published event to the subscription as a signed callback', async () => {
      const receiver = await startReceiver();
      try {
        const partner = await d.createPartner();
        const sub = await createSubscription(partner.apiKey, { url: receiver.url, eventTypes: ['order.*'] });
        receiver.secrets.push(sub.secret ?? '');
        const res = await batch([
          { partnerId: partner.id, type: 'order.created', payload: { n: 1 } },
          { partnerId: partner.id, type: 'webhook.test', payload: {} },
          { partnerId: partner.id, type: 'order.paid', payload: { n: 2 } },
        ]);
        const ids = [created(res.body.results[0]), created(res.body.results[2])];

        const callbacks = await eventually(() =>
          receiver.callbacks.length >= 2 ? receiver.callbacks : undefined,
        );
        expect(callbacks.map((c) => c.verifiedBy)).toEqual([[0], [0]]);
        const bodies = callbacks.map((c) => JSON.parse(c.body) as EventView);
        expect(bodies.map((b) => b.id).sort()).toEqual([...ids].sort());
        expect(bodies.find((b) => b.id === ids[1])).toMatchObject({ type: 'order.paid', payload: { n: 2 } });
      } finally {
        await receiver.close();
      }
    });

    it('treats entries sharing an idempotency key as publishes in a row: the first id, or a 409', async () => {
      const partner = await d.createPartner();
      const event = {
        partnerId: partner.id,
        type: 'order.created',
        payload: { n: 1 },
        idempotencyKey: 'k-1',
      };

      const res = await batch([
        event,
        { ...event },
        { ...event, payload: { n: 2 } },
        { ...event, type: 'order.paid' },
        { ...event, idempotencyKey: 'k-2' },
      ]);

      const { results } = res.body;
      const first = created(results[0]);
      expect(results[1]).toEqual({ id: first, created: false });
      expectEntryProblem(results[2], 409, 'body.events[2].idempotencyKey');
      expectEntryProblem(results[3], 409, 'body.events[3].idempotencyKey');
      const other = created(results[4]);
      const polled = await d.as<Page<EventView>>(partner.apiKey, 'GET', '/v1/events');
      expect(polled.body.data.map((e) => e.id)).toEqual([first, other]);
    });

    it('shares idempotency keys with earlier batches and with the single publish', async () => {
      const partner = await d.createPartner();
      const event = (key: string, n = 1) => ({
        partnerId: partner.id,
        type: 'order.created',
        payload: { n },
        idempotencyKey: key,
      });
      const single = await publish(d, partner.id, 'order.created', { n: 1 }, 'from-single');
      const earlier = created((await batch([event('from-batch')])).body.results[0]);

      const res = await batch([event('from-single'), event('from-batch'), event('from-batch', 2)]);

      expect(res.body.results.slice(0, 2)).toEqual([
        { id: single, created: false },
        { id: earlier, created: false },
      ]);
      expectEntryProblem(res.body.results[2], 409, 'body.events[2].idempotencyKey');
      const again = await d.admin<Published>('POST', '/v1/events', event('from-batch'));
      expect(again.status).toBe(200);
      expect(again.body).toEqual({ id: earlier, created: false });
      const polled = await d.as<Page<EventView>>(partner.apiKey, 'GET', '/v1/events');
      expect(polled.body.data.map((e) => e.id)).toEqual([single, earlier]);
    });

    it('accepts 100 events and rejects 101 with a 400 naming body.events, publishing none of them', async () => {
      const partner = await d.createPartner();
      const events = (count: number) =>
        Array.from({ length: count }, (_, i) => ({
          partnerId: partner.id,
          type: 'order.created',
          payload: { i },
        }));

      expectProblem(await batch(events(101)), 400, 'body.events');
      expect((await d.as<Page<EventView>>(partner.apiKey, 'GET', '/v1/events')).body.data).toEqual([]);

      const res = await batch(events(100));
      expect(res.status).toBe(200);
      expect(res.body.results.filter((r) => 'created' in r && r.created)).toHaveLength(100);
      const { items } = await pageThrough<EventView>(d, partner.apiKey, '/v1/events', 500);
      expect(items.map((e) => e.payload)).toEqual(events(100).map((e) => e.payload));
    });

    it('rejects a missing, non-array or empty events with a 400 naming body.events', async () => {
      for (const body of [{}, { events: null }, { events: {} }, { events: 'x' }, { events: [] }]) {
        expectProblem(await d.admin('POST', '/v1/events/batch', body), 400, 'body.events');
      }
    });

    it('rejects a body that is not an object of events, or has other fields, with a 400', async () => {
      const partner = await d.createPartner();
      const event = { partnerId: partner.id, type: 'order.created', payload: {} };
      expectProblem(await d.admin('POST', '/v1/events/batch', [event]), 400, 'body');
      expectProblem(await d.admin('POST', '/v1/events/batch', { events: [event], atomic: true }), 400);
      expect((await d.as<Page<EventView>>(partner.apiKey, 'GET', '/v1/events')).body.data).toEqual([]);
    });

    it('rejects a body that is not JSON with a 400 naming body', async () => {
      expectProblem(await d.admin('POST', '/v1/events/batch', '{"events": ['), 400, 'body');
    });

    it('rejects a content type other than JSON with 415', async () => {
      const partner = await d.createPartner();
      const res = await raw(
        `${d.dispatcher.url}/v1/events/batch`,
        'POST',
        { authorization: `Bearer ${d.dispatcher.adminToken}`, 'content-type': 'text/plain' },
        JSON.stringify({ events: [{ partnerId: partner.id, type: 'order.created', payload: {} }] }),
      );
      expectProblem(res, 415);
    });

    it('rejects a request over 1 MiB with 413, though each of its events would fit', async () => {
      const partner = await d.createPartner();
      const event = { partnerId: partner.id, type: 'big.one', payload: 'x'.repeat(200 * 1024) };
      const res = await raw(
        `${d.dispatcher.url}/v1/events/batch`,
        'POST',
        { authorization: `Bearer ${d.dispatcher.adminToken}`, 'content-type': 'application/json' },
        JSON.stringify({ events: Array.from({ length: 6 }, () => event) }),
      );
      expectProblem(res, 413);
      expect((await d.as<Page<EventView>>(partner.apiKey, 'GET', '/v1/events')).body.data).toEqual([]);
    });

    it('answers 401 without the admin token, with a wrong one, or with a partner API key', async () => {
      const partner = await d.createPartner();
      const body = { events: [{ partnerId: partner.id, type: 'order.created', payload: {} }] };
      const url = `${d.dispatcher.url}/v1/events/batch`;
      const none = await request(url, 'POST', undefined, body);
      expectProblem(none, 401);
      expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expectProblem(await request(url, 'POST', 'not-the-admin-token-000', body), 401);
      expectProblem(await d.as(partner.apiKey, 'POST', '/v1/events/batch', body), 401);
      expect((await d.as<Page<EventView>>(partner.apiKey, 'GET', '/v1/events')).body.data).toEqual([]);
    });
  });
});
