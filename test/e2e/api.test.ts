/**
 * The HTTP API end to end: the real local runtime on 127.0.0.1, called over real HTTP as the
 * platform admin (admin token) and as partners (API keys) would call it.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiResult, eventually, request, startTestDispatcher, type TestDispatcher } from './harness.ts';
import { startReceiver } from './receiver.ts';

interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  errors?: { field: string; message: string }[];
}

interface CreatedPartner {
  id: string;
  name: string;
  createdAt: string;
  apiKey: string;
}

interface Published {
  id: string;
  created: boolean;
}

interface EventView {
  id: string;
  type: string;
  payload: unknown;
  createdAt: string;
}

interface Page<T> {
  data: T[];
  next: string | null;
}

interface SubscriptionView {
  id: string;
  url: string;
  eventTypes: string[];
  description?: string;
  status: string;
  disabledReason?: string;
  createdAt: string;
  updatedAt: string;
  secret?: string;
}

interface AttemptView {
  id: string;
  number: number;
  statusCode?: number;
  error?: string;
}

interface DeliveryView {
  id: string;
  eventId: string;
  eventType: string;
  status: string;
  attemptCount: number;
  attempts: AttemptView[];
}

/** MAX_SUBSCRIPTIONS_PER_PARTNER, as a partner reads it in the documentation. */
const MAX_SUBSCRIPTIONS = 100;

const ULID = '[0-9A-HJKMNP-TV-Z]{26}';
const PARTNER_ID = new RegExp(`^ptr_${ULID}$`);
const EVENT_ID = new RegExp(`^evt_${ULID}$`);
const SUBSCRIPTION_ID = new RegExp(`^sub_${ULID}$`);
/** Well-formed, but no event or subscription has it. */
const UNKNOWN_EVENT_ID = 'evt_00000000000000000000000000';
const UNKNOWN_PARTNER_ID = 'ptr_00000000000000000000000000';
const UNKNOWN_SUBSCRIPTION_ID = 'sub_00000000000000000000000000';

/** Asserts an RFC 9457 problem+json response with this status, optionally naming `field`. */
function expectProblem(res: ApiResult<unknown>, status: number, field?: string): Problem {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json\b/);
  const problem = res.body as Problem;
  expect(problem).toMatchObject({
    type: expect.any(String),
    title: expect.any(String),
    status,
    detail: expect.any(String),
  });
  expect(problem.type).not.toBe('');
  expect(problem.title).not.toBe('');
  expect(problem.detail).not.toBe('');
  if (field !== undefined) {
    expect(problem.errors?.map((e) => e.field)).toContain(field);
  }
  return problem;
}

/** An HTTP request with full control of headers and body, for what the harness does not send. */
async function raw(
  url: string,
  method: string,
  headers: Record<string, string>,
  body?: string | Buffer,
): Promise<ApiResult<unknown>> {
  const response = await fetch(url, { method, headers, ...(body === undefined ? {} : { body }) });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text === '' ? {} : JSON.parse(text) };
}

async function publish(
  d: TestDispatcher,
  partnerId: string,
  type: string,
  payload: unknown = { n: 1 },
  idempotencyKey?: string,
): Promise<string> {
  const res = await d.admin<Published>('POST', '/v1/events', {
    partnerId,
    type,
    payload,
    ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
  });
  expect(res.status).toBe(202);
  return res.body.id;
}

/** Pages through GET `path` with `limit`, following `next` until a page comes back short. */
async function pageThrough<T extends { id: string }>(
  d: TestDispatcher,
  apiKey: string,
  path: string,
  limit: number,
): Promise<{ items: T[]; pages: number }> {
  const items: T[] = [];
  let after: string | null = null;
  let pages = 0;
  for (;;) {
    const sep = path.includes('?') ? '&' : '?';
    const cursor: string = after === null ? '' : `&after=${encodeURIComponent(after)}`;
    const res: ApiResult<Page<T>> = await d.as<Page<T>>(
      apiKey,
      'GET',
      `${path}${sep}limit=${limit}${cursor}`,
    );
    expect(res.status).toBe(200);
    pages += 1;
    items.push(...res.body.data);
    if (res.body.data.length < limit || res.body.next === null) return { items, pages };
    after = res.body.next;
    if (pages > 100) throw new Error('paging did not end');
  }
}

describe('HTTP API', () => {
  let d: TestDispatcher;

  beforeAll(async () => {
    // These tests make many requests a second from one partner; the limits have tests of their own.
    d = await startTestDispatcher({ DISPATCHER_PARTNER_REQUESTS_PER_SECOND: '10000' });
  });

  afterAll(async () => {
    await d.cleanup();
  });

  async function createSubscription(
    apiKey: string,
    body: Record<string, unknown> = { url: 'https://hooks.example.com/callback' },
  ): Promise<SubscriptionView> {
    const res = await d.as<SubscriptionView>(apiKey, 'POST', '/v1/subscriptions', body);
    expect(res.status).toBe(201);
    return res.body;
  }

  describe('POST /v1/partners', () => {
    it('creates a partner and returns its id, name, creation time and API key', async () => {
      const res = await d.admin<CreatedPartner>('POST', '/v1/partners', { name: 'Acme Corp' });
      expect(res.status).toBe(201);
      expect(res.headers.get('content-type')).toMatch(/^application\/json\b/);
      expect(res.body.id).toMatch(PARTNER_ID);
      expect(res.body.name).toBe('Acme Corp');
      expect(Number.isNaN(Date.parse(res.body.createdAt))).toBe(false);
      expect(res.body.apiKey).toMatch(/^dk_.+/);
    });

    it('gives each partner its own id and API key', async () => {
      const a = await d.createPartner('a');
      const b = await d.createPartner('b');
      expect(a.id).not.toBe(b.id);
      expect(a.apiKey).not.toBe(b.apiKey);
    });

    it('rejects a missing name with a 400 naming body.name', async () => {
      expectProblem(await d.admin('POST', '/v1/partners', {}), 400, 'body.name');
    });

    it('rejects an empty or blank name with a 400 naming body.name', async () => {
      expectProblem(await d.admin('POST', '/v1/partners', { name: '' }), 400, 'body.name');
      expectProblem(await d.admin('POST', '/v1/partners', { name: '   ' }), 400, 'body.name');
    });

    it('rejects an unknown field with a 400', async () => {
      expectProblem(await d.admin('POST', '/v1/partners', { name: 'x', plan: 'gold' }), 400);
    });

    it('answers 401 problem+json without the admin token', async () => {
      const res = await request(`${d.dispatcher.url}/v1/partners`, 'POST', undefined, { name: 'x' });
      expectProblem(res, 401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    });

    it('answers 401 to a wrong admin token', async () => {
      const res = await request(`${d.dispatcher.url}/v1/partners`, 'POST', 'not-the-admin-token-000', {
        name: 'x',
      });
      expectProblem(res, 401);
    });

    it("answers 401 to a partner's API key", async () => {
      const partner = await d.createPartner();
      expectProblem(await d.as(partner.apiKey, 'POST', '/v1/partners', { name: 'x' }), 401);
    });
  });

  describe('POST /v1/events', () => {
    it('accepts an event with 202 and returns its id and created: true', async () => {
      const partner = await d.createPartner();
      const res = await d.admin<Published>('POST', '/v1/events', {
        partnerId: partner.id,
        type: 'order.created',
        payload: { orderId: 'o-1', total: 12.5 },
      });
      expect(res.status).toBe(202);
      expect(res.body.id).toMatch(EVENT_ID);
      expect(res.body.created).toBe(true);
    });

    it('answers a repeated idempotency key with 200, the first id and created: false', async () => {
      const partner = await d.createPartner();
      const body = { partnerId: partner.id, type: 'order.created', payload: { n: 1 }, idempotencyKey: 'k-1' };
      const first = await d.admin<Published>('POST', '/v1/events', body);
      const second = await d.admin<Published>('POST', '/v1/events', body);
      expect(first.status).toBe(202);
      expect(first.body.created).toBe(true);
      expect(second.status).toBe(200);
      expect(second.body).toEqual({ id: first.body.id, created: false });

      const polled = await d.as<Page<EventView>>(partner.apiKey, 'GET', '/v1/events');
      expect(polled.body.data.map((e) => e.id)).toEqual([first.body.id]);
      expect(polled.body.data[0]?.payload).toEqual({ n: 1 });
    });

    it('answers 409 naming body.idempotencyKey when a key comes back with a different event', async () => {
      const partner = await d.createPartner();
      const first = {
        partnerId: partner.id,
        type: 'order.created',
        payload: { n: 1 },
        idempotencyKey: 'k-409',
      };
      expect((await d.admin('POST', '/v1/events', first)).status).toBe(202);

      const res = await d.admin('POST', '/v1/events', { ...first, payload: { n: 2 } });

      expectProblem(res, 409, 'body.idempotencyKey');
      const again = await d.admin('POST', '/v1/events', { ...first, payload: { n: 1 } });
      expect(again.status).toBe(200);
    });

    it('scopes idempotency keys to the partner', async () => {
      const a = await d.createPartner();
      const b = await d.createPartner();
      const idA = await publish(d, a.id, 'order.created', {}, 'shared-key');
      const idB = await publish(d, b.id, 'order.created', {}, 'shared-key');
      expect(idA).not.toBe(idB);
    });

    it('answers 404 naming the partner for an unknown partnerId', async () => {
      const res = await d.admin('POST', '/v1/events', {
        partnerId: UNKNOWN_PARTNER_ID,
        type: 'order.created',
        payload: {},
      });
      const problem = expectProblem(res, 404);
      expect(problem.detail).toContain(UNKNOWN_PARTNER_ID);
    });

    it('rejects a malformed partnerId with a 400 naming body.partnerId', async () => {
      const res = await d.admin('POST', '/v1/events', {
        partnerId: 'acme',
        type: 'order.created',
        payload: {},
      });
      expectProblem(res, 400, 'body.partnerId');
    });

    it('rejects a type that is not dotted lower-case words with a 400 naming body.type', async () => {
      const partner = await d.createPartner();
      for (const type of ['Order Created', 'order..created', '']) {
        const res = await d.admin('POST', '/v1/events', { partnerId: partner.id, type, payload: {} });
        expectProblem(res, 400, 'body.type');
      }
    });

    it('rejects the types the dispatcher publishes itself with a 400 naming body.type', async () => {
      const partner = await d.createPartner();
      for (const type of ['subscription.disabled', 'webhook.test']) {
        const res = await d.admin('POST', '/v1/events', { partnerId: partner.id, type, payload: {} });
        expectProblem(res, 400, 'body.type');
      }
    });

    it('rejects a missing payload with a 400 naming body.payload', async () => {
      const partner = await d.createPartner();
      const res = await d.admin('POST', '/v1/events', { partnerId: partner.id, type: 'order.created' });
      expectProblem(res, 400, 'body.payload');
    });

    it('rejects an unknown field with a 400', async () => {
      const partner = await d.createPartner();
      const res = await d.admin('POST', '/v1/events', {
        partnerId: partner.id,
        type: 'order.created',
        payload: {},
        priority: 'high',
      });
      expectProblem(res, 400);
    });

    it('accepts a payload of exactly 256 KiB and rejects one a byte larger with 413', async () => {
      const partner = await d.createPartner();
      // JSON.stringify of a string adds its two quotes.
      const fits = 'x'.repeat(256 * 1024 - 2);
      const ok = await d.admin('POST', '/v1/events', {
        partnerId: partner.id,
        type: 'big.one',
        payload: fits,
      });
      expect(ok.status).toBe(202);
      const tooBig = await d.admin('POST', '/v1/events', {
        partnerId: partner.id,
        type: 'big.one',
        payload: `${fits}x`,
      });
      expectProblem(tooBig, 413);
    });

    it('rejects a body that is not JSON with a 400 naming body', async () => {
      const res = await d.admin('POST', '/v1/events', '{"partnerId": ');
      expectProblem(res, 400, 'body');
    });

    it('rejects an empty body with a 400 naming body', async () => {
      const res = await raw(`${d.dispatcher.url}/v1/events`, 'POST', {
        authorization: `Bearer ${d.dispatcher.adminToken}`,
        'content-type': 'application/json',
      });
      expectProblem(res, 400, 'body');
    });

    it('rejects a content type other than JSON with 415', async () => {
      const partner = await d.createPartner();
      const res = await raw(
        `${d.dispatcher.url}/v1/events`,
        'POST',
        { authorization: `Bearer ${d.dispatcher.adminToken}`, 'content-type': 'text/plain' },
        JSON.stringify({ partnerId: partner.id, type: 'order.created', payload: {} }),
      );
      expectProblem(res, 415);
    });

    it.each([
      ['application/json-seq'],
      ['application/json, text/plain'],
      ['application/problem+json'],
      ['application/json; charset=latin1'],
    ])('rejects the content type %s with 415, naming what it takes', async (contentType) => {
      const partner = await d.createPartner();
      const res = await raw(
        `${d.dispatcher.url}/v1/events`,
        'POST',
        { authorization: `Bearer ${d.dispatcher.adminToken}`, 'content-type': contentType },
        JSON.stringify({ partnerId: partner.id, type: 'order.created', payload: {} }),
      );
      expect(expectProblem(res, 415).detail).toContain('application/json');
    });

    it('rejects a body with no content type with 415', async () => {
      const partner = await d.createPartner();
      const res = await fetch(`${d.dispatcher.url}/v1/events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${d.dispatcher.adminToken}` },
        body: new Blob([JSON.stringify({ partnerId: partner.id, type: 'order.created', payload: {} })]),
      });
      expect(res.status).toBe(415);
    });

    it.each([
      ['application/json; charset=utf-8'],
      ['Application/JSON'],
      ['application/json;charset="UTF-8"'],
    ])('takes %s as JSON', async (contentType) => {
      const partner = await d.createPartner();
      const res = await raw(
        `${d.dispatcher.url}/v1/events`,
        'POST',
        { authorization: `Bearer ${d.dispatcher.adminToken}`, 'content-type': contentType },
        JSON.stringify({ partnerId: partner.id, type: 'order.created', payload: {} }),
      );
      expect(res.status).toBe(202);
    });

    it('rejects a body nested deeper than 64 levels with a 400 naming the limit, and never a 500', async () => {
      const partner = await d.createPartner();
      const deep = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;
      const body = (payload: string, key = 'deep-1') =>
        `{"partnerId":"${partner.id}","type":"order.created","payload":${payload},"idempotencyKey":"${key}"}`;

      for (const levels of [65, 5000, 100_000]) {
        const res = await d.admin('POST', '/v1/events', body(deep(levels)));
        expect(expectProblem(res, 400, 'body').detail).toContain('64 levels');
      }
      // The body is the first level: a payload 63 deep is 64 in all, and taken, as often as sent.
      for (let i = 0; i < 2; i++) {
        const res = await d.admin('POST', '/v1/events', body(deep(63)));
        expect(res.status, `try ${i + 1}`).toBe(i === 0 ? 202 : 200);
      }
      // Brackets inside strings are text, not nesting.
      const res = await d.admin('POST', '/v1/events', body(JSON.stringify('['.repeat(1000)), 'brackets-1'));
      expect(res.status).toBe(202);
    });

    it('rejects a request body over 1 MiB with 413', async () => {
      const partner = await d.createPartner();
      const body = JSON.stringify({
        partnerId: partner.id,
        type: 'big.one',
        payload: 'x'.repeat(1024 * 1024),
      });
      const res = await raw(
        `${d.dispatcher.url}/v1/events`,
        'POST',
        { authorization: `Bearer ${d.dispatcher.adminToken}`, 'content-type': 'application/json' },
        body,
      );
      expectProblem(res, 413);
    });

    it('answers 401 without the admin token or with a partner API key', async () => {
      const partner = await d.createPartner();
      const body = { partnerId: partner.id, type: 'order.created', payload: {} };
      expectProblem(await request(`${d.dispatcher.url}/v1/events`, 'POST', undefined, body), 401);
      expectProblem(await d.as(partner.apiKey, 'POST', '/v1/events', body), 401);
    });
  });

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

  describe('GET /v1/events', () => {
    it("returns the partner's events with id, type, payload and createdAt, and a next cursor", async () => {
      const partner = await d.createPartner();
      const id = await publish(d, partner.id, 'order.created', { orderId: 'o-7' });
      const res = await d.as<Page<EventView>>(partner.apiKey, 'GET', '/v1/events');
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^application\/json\b/);
      expect(res.body.data).toHaveLength(1);
      const [event] = res.body.data;
      expect(event).toEqual({
        id,
        type: 'order.created',
        payload: { orderId: 'o-7' },
        createdAt: expect.any(String),
      });
      expect(Number.isNaN(Date.parse(event?.createdAt ?? ''))).toBe(false);
      expect(res.body.next).toBe(id);
    });

    it('returns an empty page for a partner with no events', async () => {
      const partner = await d.createPartner();
      const res = await d.as<Page<EventView>>(partner.apiKey, 'GET', '/v1/events');
      expect(res.status).toBe(200);
      expect(res.body.data).toEqual([]);
    });

    it('returns every event exactly once, in publish order, when paging with limit and after=next', async () => {
      const partner = await d.createPartner();
      const published: string[] = [];
      for (let i = 0; i < 7; i++) published.push(await publish(d, partner.id, 'order.created', { i }));
      const { items, pages } = await pageThrough<EventView>(d, partner.apiKey, '/v1/events', 3);
      expect(items.map((e) => e.id)).toEqual(published);
      expect(items.map((e) => e.payload)).toEqual(published.map((_, i) => ({ i })));
      expect(pages).toBe(3);
    });

    it('answers an exhausted cursor with an empty page whose next is the same cursor', async () => {
      const partner = await d.createPartner();
      const last = await publish(d, partner.id, 'order.created');
      const res = await d.as<Page<EventView>>(partner.apiKey, 'GET', `/v1/events?after=${last}`);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ data: [], next: last });
    });

    it('filters by a comma-separated list of types', async () => {
      const partner = await d.createPartner();
      const ab = await publish(d, partner.id, 'a.b');
      await publish(d, partner.id, 'x.y');
      const cd = await publish(d, partner.id, 'c.d');
      await publish(d, partner.id, 'a.b.c');
      const res = await d.as<Page<EventView>>(partner.apiKey, 'GET', '/v1/events?types=a.b,c.d');
      expect(res.status).toBe(200);
      expect(res.body.data.map((e) => e.id)).toEqual([ab, cd]);
      expect(res.body.data.map((e) => e.type)).toEqual(['a.b', 'c.d']);
    });

    it('rejects a bad type in the filter with a 400 naming query.types', async () => {
      const partner = await d.createPartner();
      const res = await d.as(partner.apiKey, 'GET', '/v1/events?types=Order%20Created');
      expect(expectProblem(res, 400).errors?.some((e) => e.field.startsWith('query.types'))).toBe(true);
    });

    it('rejects limit=0, limit=1000 and limit=x with a 400 naming query.limit', async () => {
      const partner = await d.createPartner();
      for (const limit of ['0', '1000', 'x', '-1', '1.5']) {
        expectProblem(await d.as(partner.apiKey, 'GET', `/v1/events?limit=${limit}`), 400, 'query.limit');
      }
    });

    it('accepts limit=1 and limit=500', async () => {
      const partner = await d.createPartner();
      expect((await d.as(partner.apiKey, 'GET', '/v1/events?limit=1')).status).toBe(200);
      expect((await d.as(partner.apiKey, 'GET', '/v1/events?limit=500')).status).toBe(200);
    });

    it('rejects an unknown query parameter with a 400', async () => {
      const partner = await d.createPartner();
      expectProblem(await d.as(partner.apiKey, 'GET', '/v1/events?since=yesterday'), 400);
    });

    it('rejects a malformed after cursor with a 400 naming query.after', async () => {
      const partner = await d.createPartner();
      expectProblem(await d.as(partner.apiKey, 'GET', '/v1/events?after=nope'), 400, 'query.after');
    });

    it('rejects an after cursor that is no event of the partner with a 400 naming query.after', async () => {
      const partner = await d.createPartner();
      const res = await d.as(partner.apiKey, 'GET', `/v1/events?after=${UNKNOWN_EVENT_ID}`);
      expectProblem(res, 400, 'query.after');
    });

    it("rejects another partner's event id as the after cursor with a 400", async () => {
      const a = await d.createPartner();
      const b = await d.createPartner();
      const foreign = await publish(d, b.id, 'order.created');
      expectProblem(await d.as(a.apiKey, 'GET', `/v1/events?after=${foreign}`), 400);
    });

    it("never returns another partner's events", async () => {
      const a = await d.createPartner('a');
      const b = await d.createPartner('b');
      const ownA = await publish(d, a.id, 'order.created', { to: 'a' });
      const ownB = await publish(d, b.id, 'order.created', { to: 'b' });
      const resA = await d.as<Page<EventView>>(a.apiKey, 'GET', '/v1/events');
      const resB = await d.as<Page<EventView>>(b.apiKey, 'GET', '/v1/events?types=order.created');
      expect(resA.body.data.map((e) => e.id)).toEqual([ownA]);
      expect(resB.body.data.map((e) => e.id)).toEqual([ownB]);
    });

    it('answers 401 problem+json without an API key', async () => {
      const res = await request(`${d.dispatcher.url}/v1/events`, 'GET', undefined);
      expectProblem(res, 401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    });

    it('answers 401 to a wrong or malformed API key', async () => {
      expectProblem(await d.as(`dk_${'A'.repeat(43)}`, 'GET', '/v1/events'), 401);
      expectProblem(await d.as('not-a-key', 'GET', '/v1/events'), 401);
    });

    it('answers 401 to the admin token, which is not an API key', async () => {
      expectProblem(await d.admin('GET', '/v1/events'), 401);
    });
  });

  describe('GET /v1/events/{id}', () => {
    it('returns one of the partner’s events', async () => {
      const partner = await d.createPartner();
      const id = await publish(d, partner.id, 'invoice.paid', { amount: 3 });
      const res = await d.as<EventView>(partner.apiKey, 'GET', `/v1/events/${id}`);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        id,
        type: 'invoice.paid',
        payload: { amount: 3 },
        createdAt: expect.any(String),
      });
    });

    it("answers 404 for another partner's event", async () => {
      const a = await d.createPartner();
      const b = await d.createPartner();
      const foreign = await publish(d, b.id, 'order.created');
      expectProblem(await d.as(a.apiKey, 'GET', `/v1/events/${foreign}`), 404);
    });

    it('answers 404 for an unknown or malformed id', async () => {
      const partner = await d.createPartner();
      expectProblem(await d.as(partner.apiKey, 'GET', `/v1/events/${UNKNOWN_EVENT_ID}`), 404);
      expectProblem(await d.as(partner.apiKey, 'GET', '/v1/events/not-an-id'), 404);
      expectProblem(await d.as(partner.apiKey, 'GET', '/v1/events/%E0%A4%A'), 404);
    });

    it('answers 401 without an API key', async () => {
      const partner = await d.createPartner();
      const id = await publish(d, partner.id, 'order.created');
      expectProblem(await request(`${d.dispatcher.url}/v1/events/${id}`, 'GET', undefined), 401);
    });
  });

  describe('POST /v1/subscriptions', () => {
    it('creates an active subscription and shows its whsec_ secret once', async () => {
      const partner = await d.createPartner();
      const res = await d.as<SubscriptionView>(partner.apiKey, 'POST', '/v1/subscriptions', {
        url: 'https://hooks.example.com/orders',
        eventTypes: ['order.created'],
        description: 'orders',
      });
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({
        url: 'https://hooks.example.com/orders',
        eventTypes: ['order.created'],
        description: 'orders',
        status: 'active',
      });
      expect(res.body.id).toMatch(SUBSCRIPTION_ID);
      expect(res.body.secret).toMatch(/^whsec_.+/);
    });

    it('takes every event type when eventTypes is left out', async () => {
      const partner = await d.createPartner();
      const sub = await createSubscription(partner.apiKey);
      expect(sub.eventTypes).toEqual([]);
    });

    it("accepts a family filter 'order.*' and the wildcard '*'", async () => {
      const partner = await d.createPartner();
      const sub = await createSubscription(partner.apiKey, {
        url: 'https://hooks.example.com/all',
        eventTypes: ['order.*', '*'],
      });
      expect(sub.eventTypes).toEqual(['order.*', '*']);
    });

    it('rejects a URL that is not a URL, or not http(s), with a 400 naming body.url', async () => {
      const partner = await d.createPartner();
      for (const url of ['not a url', 'ftp://files.example.com/in', 'javascript:alert(1)', '']) {
        const res = await d.as(partner.apiKey, 'POST', '/v1/subscriptions', { url });
        expectProblem(res, 400, 'body.url');
      }
    });

    it('rejects a missing url with a 400 naming body.url', async () => {
      const partner = await d.createPartner();
      expectProblem(await d.as(partner.apiKey, 'POST', '/v1/subscriptions', {}), 400, 'body.url');
    });

    it('rejects a bad eventTypes entry with a 400 naming it', async () => {
      const partner = await d.createPartner();
      for (const eventTypes of [['Order Created'], ['order.created', 'order.**'], 'order.created']) {
        const res = await d.as(partner.apiKey, 'POST', '/v1/subscriptions', {
          url: 'https://hooks.example.com/x',
          eventTypes,
        });
        const problem = expectProblem(res, 400);
        expect(problem.errors?.some((e) => e.field.startsWith('body.eventTypes'))).toBe(true);
      }
    });

    it('rejects an unknown field with a 400', async () => {
      const partner = await d.createPartner();
      const res = await d.as(partner.apiKey, 'POST', '/v1/subscriptions', {
        url: 'https://hooks.example.com/x',
        secret: 'whsec_mine',
      });
      expectProblem(res, 400);
    });

    it('answers 401 without an API key', async () => {
      const res = await request(`${d.dispatcher.url}/v1/subscriptions`, 'POST', undefined, {
        url: 'https://hooks.example.com/x',
      });
      expectProblem(res, 401);
    });
  });

  describe('GET /v1/subscriptions', () => {
    it("lists the partner's subscriptions without their secrets", async () => {
      const partner = await d.createPartner();
      const sub = await createSubscription(partner.apiKey);
      const res = await d.as<Page<SubscriptionView>>(partner.apiKey, 'GET', '/v1/subscriptions');
      expect(res.status).toBe(200);
      expect(res.body.data.map((s) => s.id)).toEqual([sub.id]);
      expect(res.body.next).toBeNull();
      expect(JSON.stringify(res.body)).not.toContain('whsec_');
    });

    it('returns every subscription exactly once when paging with limit and after=next', async () => {
      const partner = await d.createPartner();
      const created: string[] = [];
      for (let i = 0; i < 5; i++) {
        created.push(
          (await createSubscription(partner.apiKey, { url: `https://hooks.example.com/${i}` })).id,
        );
      }
      const { items, pages } = await pageThrough<SubscriptionView>(d, partner.apiKey, '/v1/subscriptions', 2);
      expect(items.map((s) => s.id)).toEqual(created);
      expect(pages).toBe(3);
    });

    it('returns next: null on the last page', async () => {
      const partner = await d.createPartner();
      await createSubscription(partner.apiKey);
      await createSubscription(partner.apiKey);
      const first = await d.as<Page<SubscriptionView>>(partner.apiKey, 'GET', '/v1/subscriptions?limit=1');
      expect(first.body.next).toBe(first.body.data[0]?.id);
      const last = await d.as<Page<SubscriptionView>>(
        partner.apiKey,
        'GET',
        `/v1/subscriptions?limit=1&after=${first.body.next ?? ''}`,
      );
      expect(last.body.data).toHaveLength(1);
      expect(last.body.next).toBeNull();
    });

    it("never lists another partner's subscriptions", async () => {
      const a = await d.createPartner();
      const b = await d.createPartner();
      await createSubscription(b.apiKey);
      const res = await d.as<Page<SubscriptionView>>(a.apiKey, 'GET', '/v1/subscriptions');
      expect(res.body.data).toEqual([]);
    });

    it('rejects a bad limit with a 400 naming query.limit', async () => {
      const partner = await d.createPartner();
      for (const limit of ['0', '1000', 'x']) {
        expectProblem(
          await d.as(partner.apiKey, 'GET', `/v1/subscriptions?limit=${limit}`),
          400,
          'query.limit',
        );
      }
    });
  });

  describe('GET /v1/subscriptions/{id}', () => {
    it('returns the subscription without its secret', async () => {
      const partner = await d.createPartner();
      const sub = await createSubscription(partner.apiKey, {
        url: 'https://hooks.example.com/one',
        eventTypes: ['order.*'],
        description: 'one',
      });
      const res = await d.as<SubscriptionView>(partner.apiKey, 'GET', `/v1/subscriptions/${sub.id}`);
      expect(res.status).toBe(200);
      const { secret: _secret, ...view } = sub;
      expect(res.body).toEqual(view);
      expect(JSON.stringify(res.body)).not.toContain('whsec_');
    });

    it('answers 404 for an unknown or malformed id', async () => {
      const partner = await d.createPartner();
      expectProblem(await d.as(partner.apiKey, 'GET', `/v1/subscriptions/${UNKNOWN_SUBSCRIPTION_ID}`), 404);
      expectProblem(await d.as(partner.apiKey, 'GET', '/v1/subscriptions/nope'), 404);
    });
  });

  describe('PATCH /v1/subscriptions/{id}', () => {
    it('changes url, eventTypes and description and keeps the rest', async () => {
      const partner = await d.createPartner();
      const sub = await createSubscription(partner.apiKey);
      const res = await d.as<SubscriptionView>(partner.apiKey, 'PATCH', `/v1/subscriptions/${sub.id}`, {
        url: 'https://hooks.example.com/v2',
        eventTypes: ['invoice.paid', 'order.*'],
        description: 'second version',
      });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({
        id: sub.id,
        url: 'https://hooks.example.com/v2',
        eventTypes: ['invoice.paid', 'order.*'],
        description: 'second version',
        status: 'active',
        createdAt: sub.createdAt,
      });
      expect(JSON.stringify(res.body)).not.toContain('whsec_');
      const read = await d.as<SubscriptionView>(partner.apiKey, 'GET', `/v1/subscriptions/${sub.id}`);
      expect(read.body).toEqual(res.body);
    });

    it('disables and re-enables a subscription through status', async () => {
      const partner = await d.createPartner();
      const sub = await createSubscription(partner.apiKey);
      const path = `/v1/subscriptions/${sub.id}`;
      const disabled = await d.as<SubscriptionView>(partner.apiKey, 'PATCH', path, { status: 'disabled' });
      expect(disabled.status).toBe(200);
      expect(disabled.body.status).toBe('disabled');
      const enabled = await d.as<SubscriptionView>(partner.apiKey, 'PATCH', path, { status: 'active' });
      expect(enabled.status).toBe(200);
      expect(enabled.body.status).toBe('active');
      expect(enabled.body.disabledReason).toBeUndefined();
    });

    it('rejects an empty change with a 400', async () => {
      const partner = await d.createPartner();
      const sub = await createSubscription(partner.apiKey);
      expectProblem(await d.as(partner.apiKey, 'PATCH', `/v1/subscriptions/${sub.id}`, {}), 400);
    });

    it("rejects status 'paused' with a 400 naming body.status", async () => {
      const partner = await d.createPartner();
      const sub = await createSubscription(partner.apiKey);
      const res = await d.as(partner.apiKey, 'PATCH', `/v1/subscriptions/${sub.id}`, { status: 'paused' });
      expectProblem(res, 400, 'body.status');
    });

    it('rejects a bad url with a 400 naming body.url and leaves the subscription unchanged', async () => {
      const partner = await d.createPartner();
      const sub = await createSubscription(partner.apiKey);
      const res = await d.as(partner.apiKey, 'PATCH', `/v1/subscriptions/${sub.id}`, {
        url: 'ftp://x.example',
      });
      expectProblem(res, 400, 'body.url');
      const read = await d.as<SubscriptionView>(partner.apiKey, 'GET', `/v1/subscriptions/${sub.id}`);
      expect(read.body.url).toBe(sub.url);
    });

    it('answers 404 for an unknown id', async () => {
      const partner = await d.createPartner();
      const res = await d.as(partner.apiKey, 'PATCH', `/v1/subscriptions/${UNKNOWN_SUBSCRIPTION_ID}`, {
        description: 'x',
      });
      expectProblem(res, 404);
    });
  });

  describe('DELETE /v1/subscriptions/{id}', () => {
    it('deletes with 204 and an empty body, after which GET answers 404', async () => {
      const partner = await d.createPartner();
      const sub = await createSubscription(partner.apiKey);
      const res = await d.as(partner.apiKey, 'DELETE', `/v1/subscriptions/${sub.id}`);
      expect(res.status).toBe(204);
      expect(res.body).toEqual({});
      expectProblem(await d.as(partner.apiKey, 'GET', `/v1/subscriptions/${sub.id}`), 404);
      expectProblem(await d.as(partner.apiKey, 'DELETE', `/v1/subscriptions/${sub.id}`), 404);
      const list = await d.as<Page<SubscriptionView>>(partner.apiKey, 'GET', '/v1/subscriptions');
      expect(list.body.data).toEqual([]);
    });
  });

  describe('POST /v1/subscriptions/{id}/rotate-secret', () => {
    it('returns a new whsec_ secret, different from the first, and keeps the subscription', async () => {
      const partner = await d.createPartner();
      const sub = await createSubscription(partner.apiKey);
      const res = await d.as<SubscriptionView>(
        partner.apiKey,
        'POST',
        `/v1/subscriptions/${sub.id}/rotate-secret`,
      );
      expect(res.status).toBe(200);
      expect(res.body.id).toBe(sub.id);
      expect(res.body.url).toBe(sub.url);
      expect(res.body.secret).toMatch(/^whsec_.+/);
      expect(res.body.secret).not.toBe(sub.secret);
      const again = await d.as<SubscriptionView>(
        partner.apiKey,
        'POST',
        `/v1/subscriptions/${sub.id}/rotate-secret`,
      );
      expect(again.body.secret).not.toBe(res.body.secret);
      const read = await d.as(partner.apiKey, 'GET', `/v1/subscriptions/${sub.id}`);
      expect(JSON.stringify(read.body)).not.toContain('whsec_');
    });

    it('answers 404 for an unknown id', async () => {
      const partner = await d.createPartner();
      const res = await d.as(
        partner.apiKey,
        'POST',
        `/v1/subscriptions/${UNKNOWN_SUBSCRIPTION_ID}/rotate-secret`,
      );
      expectProblem(res, 404);
    });
  });

  describe('GET /v1/subscriptions/{id}/deliveries', () => {
    it('is an empty page for a new subscription', async () => {
      const partner = await d.createPartner();
      const sub = await createSubscription(partner.apiKey);
      const res = await d.as<Page<DeliveryView>>(
        partner.apiKey,
        'GET',
        `/v1/subscriptions/${sub.id}/deliveries`,
      );
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ data: [], next: null });
    });

    it('rejects a bad limit with a 400 naming query.limit', async () => {
      const partner = await d.createPartner();
      const sub = await createSubscription(partner.apiKey);
      const res = await d.as(partner.apiKey, 'GET', `/v1/subscriptions/${sub.id}/deliveries?limit=0`);
      expectProblem(res, 400, 'query.limit');
    });

    describe('with a real receiver answering 204', () => {
      let receiver: Server;
      let receiverUrl: string;
      const received: { webhookId: string | undefined; body: string }[] = [];

      beforeAll(async () => {
        receiver = createServer(async (req, res) => {
          const chunks: Buffer[] = [];
          for await (const chunk of req) chunks.push(chunk as Buffer);
          const id = req.headers['webhook-id'];
          received.push({
            webhookId: Array.isArray(id) ? id[0] : id,
            body: Buffer.concat(chunks).toString('utf8'),
          });
          res.writeHead(204).end();
        });
        await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
        const address = receiver.address() as AddressInfo;
        receiverUrl = `http://127.0.0.1:${address.port}/hooks`;
      });

      afterAll(async () => {
        receiver.closeAllConnections();
        await new Promise<void>((resolve) => receiver.close(() => resolve()));
      });

      it('records one succeeded delivery with one attempt answered 204', async () => {
        const partner = await d.createPartner();
        const sub = await createSubscription(partner.apiKey, { url: receiverUrl, eventTypes: ['order.*'] });
        const eventId = await publish(d, partner.id, 'order.shipped', { orderId: 'o-9' });
        const path = `/v1/subscriptions/${sub.id}/deliveries`;

        const delivery = await eventually(async () => {
          const res = await d.as<Page<DeliveryView>>(partner.apiKey, 'GET', path);
          const first = res.body.data[0];
          return first?.status === 'succeeded' ? res.body : undefined;
        });
        expect(delivery.data).toHaveLength(1);
        const [only] = delivery.data;
        expect(only).toMatchObject({
          eventId,
          eventType: 'order.shipped',
          status: 'succeeded',
          attemptCount: 1,
        });
        expect(only?.attempts).toHaveLength(1);
        expect(only?.attempts[0]).toMatchObject({ number: 1, statusCode: 204 });
        expect(delivery.next).toBeNull();

        const callback = received.find((r) => r.body.includes(eventId));
        expect(callback?.webhookId).toBe(only?.id);
        expect(JSON.parse(callback?.body ?? '{}')).toMatchObject({
          id: eventId,
          type: 'order.shipped',
          payload: { orderId: 'o-9' },
        });
      });
    });
  });

  describe('limits', () => {
    /** Nothing listens on the discard port: a callback fails at once and stays out of the way. */
    const nowhere = { url: 'http://127.0.0.1:9/hooks' };

    it(`refuses a partner's subscription beyond ${MAX_SUBSCRIPTIONS} with a 409 naming the limit; a delete makes room`, async () => {
      const partner = await d.createPartner();
      const created: SubscriptionView[] = [];
      for (let i = 0; i < MAX_SUBSCRIPTIONS; i++)
        created.push(await createSubscription(partner.apiKey, nowhere));

      const refused = await d.as(partner.apiKey, 'POST', '/v1/subscriptions', nowhere);

      const problem = expectProblem(refused, 409);
      expect(problem.detail).toContain(`at most ${MAX_SUBSCRIPTIONS} subscriptions`);
      const other = await d.createPartner('other');
      await createSubscription(other.apiKey, nowhere);
      expect((await d.as(partner.apiKey, 'DELETE', `/v1/subscriptions/${created[0]?.id}`)).status).toBe(204);
      await createSubscription(partner.apiKey, nowhere);
    });

    it('answers a second replay of a subscription within 10 s with 429 and Retry-After', async () => {
      const partner = await d.createPartner();
      const sub = await createSubscription(partner.apiKey, nowhere);
      const other = await createSubscription(partner.apiKey, nowhere);
      const since = new Date().toISOString();

      expect(
        (await d.as(partner.apiKey, 'POST', `/v1/subscriptions/${sub.id}/replay`, { since })).status,
      ).toBe(202);
      const refused = await d.as(partner.apiKey, 'POST', `/v1/subscriptions/${sub.id}/replay`, { since });

      const problem = expectProblem(refused, 429);
      expect(problem.type).toBe('urn:webhook-dispatcher:problem:too-many-requests');
      const retryAfter = Number(refused.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(10);
      expect(
        (await d.as(partner.apiKey, 'POST', `/v1/subscriptions/${other.id}/replay`, { since })).status,
      ).toBe(202);
    });

    it('answers the eleventh test of a subscription within a minute with 429 and Retry-After', async () => {
      const partner = await d.createPartner();
      const sub = await createSubscription(partner.apiKey, nowhere);
      const path = `/v1/subscriptions/${sub.id}/test`;
      for (let i = 0; i < 10; i++) expect((await d.as(partner.apiKey, 'POST', path)).status).toBe(202);

      const refused = await d.as(partner.apiKey, 'POST', path);

      expectProblem(refused, 429);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(50);
    });
  });

  describe("another partner's subscription", () => {
    it('answers 404 to GET, PATCH, DELETE, rotate-secret and deliveries, and stays unchanged', async () => {
      const owner = await d.createPartner('owner');
      const other = await d.createPartner('other');
      const sub = await createSubscription(owner.apiKey);
      const path = `/v1/subscriptions/${sub.id}`;
      expectProblem(await d.as(other.apiKey, 'GET', path), 404);
      expectProblem(await d.as(other.apiKey, 'PATCH', path, { description: 'mine now' }), 404);
      expectProblem(await d.as(other.apiKey, 'DELETE', path), 404);
      expectProblem(await d.as(other.apiKey, 'POST', `${path}/rotate-secret`), 404);
      expectProblem(await d.as(other.apiKey, 'GET', `${path}/deliveries`), 404);

      const read = await d.as<SubscriptionView>(owner.apiKey, 'GET', path);
      expect(read.status).toBe(200);
      const { secret: _secret, ...view } = sub;
      expect(read.body).toEqual(view);
    });
  });

  describe('routing', () => {
    it('answers an unknown path with 404 problem+json', async () => {
      const partner = await d.createPartner();
      expectProblem(await d.as(partner.apiKey, 'GET', '/v1/nothing-here'), 404);
      expectProblem(await request(`${d.dispatcher.url}/`, 'GET', undefined), 404);
      expectProblem(await d.admin('POST', '/v2/events', {}), 404);
    });

    it('answers a wrong method with 405 and an allow header listing the right ones', async () => {
      const res = await d.admin('PUT', '/v1/events', {});
      expectProblem(res, 405);
      const allow = (res.headers.get('allow') ?? '').split(',').map((m) => m.trim());
      expect(allow.sort()).toEqual(['GET', 'POST']);
    });

    it('answers DELETE /v1/events/{id} with 405 allowing GET', async () => {
      const partner = await d.createPartner();
      const res = await d.as(partner.apiKey, 'DELETE', `/v1/events/${UNKNOWN_EVENT_ID}`);
      expectProblem(res, 405);
      expect(res.headers.get('allow')).toBe('GET');
    });

    it('treats a trailing slash as the same route', async () => {
      const partner = await d.createPartner();
      const res = await d.as<Page<EventView>>(partner.apiKey, 'GET', '/v1/events/');
      expect(res.status).toBe(200);
      expect(res.body.data).toEqual([]);
    });
  });

  describe('error responses', () => {
    it('are problem+json with type, title, status and detail, whatever the error', async () => {
      const partner = await d.createPartner();
      const url = d.dispatcher.url;
      const adminJson = {
        authorization: `Bearer ${d.dispatcher.adminToken}`,
        'content-type': 'application/json',
      };
      const cases: [string, Promise<ApiResult<unknown>>, number][] = [
        ['400 validation', d.admin('POST', '/v1/partners', {}), 400],
        ['400 bad JSON', d.admin('POST', '/v1/partners', '{'), 400],
        ['400 query', d.as(partner.apiKey, 'GET', '/v1/events?limit=0'), 400],
        ['401 no token', request(`${url}/v1/events`, 'GET', undefined), 401],
        ['401 partner key on admin route', d.as(partner.apiKey, 'POST', '/v1/events', {}), 401],
        ['404 route', d.admin('GET', '/nope'), 404],
        ['404 event', d.as(partner.apiKey, 'GET', `/v1/events/${UNKNOWN_EVENT_ID}`), 404],
        [
          '404 subscription',
          d.as(partner.apiKey, 'GET', `/v1/subscriptions/${UNKNOWN_SUBSCRIPTION_ID}`),
          404,
        ],
        ['405', d.admin('PUT', '/v1/partners', {}), 405],
        [
          '413 payload',
          d.admin('POST', '/v1/events', { partnerId: partner.id, type: 'a.b', payload: 'x'.repeat(300_000) }),
          413,
        ],
        [
          '415',
          raw(`${url}/v1/partners`, 'POST', { ...adminJson, 'content-type': 'text/csv' }, 'name\nx'),
          415,
        ],
      ];
      for (const [label, pending, status] of cases) {
        const res = await pending;
        expect(res.status, label).toBe(status);
        expectProblem(res, status);
      }
    });

    it('carry the request path as instance', async () => {
      const res = await d.admin('POST', '/v1/partners', {});
      expect(expectProblem(res, 400).instance).toBe('/v1/partners');
    });
  });
});

describe('HTTP API with private targets forbidden', () => {
  let d: TestDispatcher;
  /** A stand-in DNS: the policy is checked against what a host resolves to. */
  const dns: Record<string, string[]> = {
    'hooks.example.com': ['93.184.215.14'],
    'rebind.example.com': ['93.184.215.14', '10.1.2.3'],
    'metadata.example.com': ['169.254.169.254'],
  };

  beforeAll(async () => {
    d = await startTestDispatcher(
      { DISPATCHER_ALLOW_PRIVATE_TARGETS: 'false' },
      {
        resolver: {
          async resolve(hostname) {
            const addresses = dns[hostname];
            if (addresses === undefined) throw new Error(`ENOTFOUND ${hostname}`);
            return addresses;
          },
        },
      },
    );
  });

  afterAll(async () => {
    await d.cleanup();
  });

  describe('POST /v1/subscriptions', () => {
    it.each([
      ['plain http to loopback', 'http://127.0.0.1:8080/hooks'],
      ['a private address', 'https://10.0.0.1/'],
      ['the cloud metadata address', 'https://169.254.169.254/latest/meta-data/'],
      ['plain http to a public host', 'http://example.com/hooks'],
      ['IPv6 loopback', 'https://[::1]/'],
      ['localhost', 'https://localhost/hooks'],
      ['a host resolving to a private address', 'https://rebind.example.com/hooks'],
      ['a host resolving to the metadata address', 'https://metadata.example.com/hooks'],
      ['a host that does not resolve', 'https://nowhere.example.com/hooks'],
    ])('refuses %s with a 400 naming body.url', async (_label, url) => {
      const partner = await d.createPartner();
      const res = await d.as(partner.apiKey, 'POST', '/v1/subscriptions', { url });
      expectProblem(res, 400, 'body.url');
      const list = await d.as<Page<SubscriptionView>>(partner.apiKey, 'GET', '/v1/subscriptions');
      expect(list.body.data).toEqual([]);
    });

    it('accepts an https URL whose host resolves only to public addresses', async () => {
      const partner = await d.createPartner();
      const res = await d.as<SubscriptionView>(partner.apiKey, 'POST', '/v1/subscriptions', {
        url: 'https://hooks.example.com/in',
      });
      expect(res.status).toBe(201);
      expect(res.body.status).toBe('active');
    });
  });

  describe('PATCH /v1/subscriptions/{id}', () => {
    it('refuses to move a subscription to a private address with a 400 naming body.url', async () => {
      const partner = await d.createPartner();
      const created = await d.as<SubscriptionView>(partner.apiKey, 'POST', '/v1/subscriptions', {
        url: 'https://hooks.example.com/in',
      });
      expect(created.status).toBe(201);
      const path = `/v1/subscriptions/${created.body.id}`;
      expectProblem(
        await d.as(partner.apiKey, 'PATCH', path, { url: 'https://192.168.1.10/in' }),
        400,
        'body.url',
      );
      const read = await d.as<SubscriptionView>(partner.apiKey, 'GET', path);
      expect(read.body.url).toBe('https://hooks.example.com/in');
    });
  });
});

describe('HTTP API limits per caller', () => {
  let d: TestDispatcher;

  beforeAll(async () => {
    d = await startTestDispatcher({
      DISPATCHER_PARTNER_REQUESTS_PER_SECOND: '5',
      DISPATCHER_PRODUCER_REQUESTS_PER_SECOND: '50',
    });
  });

  afterAll(async () => {
    await d.cleanup();
  });

  it('answers a partner that polls too hard 429 with Retry-After, while another partner polls on', async () => {
    const busy = await d.createPartner('busy');
    const calm = await d.createPartner('calm');

    const [hard, gentle] = await Promise.all([
      Promise.all(Array.from({ length: 30 }, () => d.as(busy.apiKey, 'GET', '/v1/events'))),
      Promise.all(Array.from({ length: 3 }, () => d.as(calm.apiKey, 'GET', '/v1/events'))),
    ]);

    // The burst may straddle two one-second windows: at most two windows' worth get through.
    const allowed = hard.filter((res) => res.status === 200);
    expect(allowed.length).toBeGreaterThanOrEqual(5);
    expect(allowed.length).toBeLessThanOrEqual(10);
    const refused = hard.filter((res) => res.status !== 200);
    for (const res of refused) {
      const problem = expectProblem(res, 429);
      expect(problem.detail).toMatch(/5 requests per second/);
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    }
    expect(gentle.map((res) => res.status)).toEqual([200, 200, 200]);
  });

  it('lets the partner in again once its window has passed', async () => {
    const partner = await d.createPartner();
    await Promise.all(Array.from({ length: 12 }, () => d.as(partner.apiKey, 'GET', '/v1/events')));

    const later = await eventually(async () => {
      const res = await d.as(partner.apiKey, 'GET', '/v1/events');
      return res.status === 200 ? res : undefined;
    }, 3000);
    expect(later.status).toBe(200);
  });

  it('limits producers apart from partners: a partner over its limit does not slow publishing', async () => {
    const partner = await d.createPartner('subscriber');
    await Promise.all(Array.from({ length: 20 }, () => d.as(partner.apiKey, 'GET', '/v1/events')));

    const published = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        d.admin('POST', '/v1/events', { partnerId: partner.id, type: 'order.created', payload: { i } }),
      ),
    );
    expect(published.map((res) => res.status)).toEqual(Array.from({ length: 10 }, () => 202));
  });
});

describe('HTTP API when the database cannot be written', () => {
  let d: TestDispatcher;

  beforeAll(async () => {
    d = await startTestDispatcher();
  });

  afterAll(async () => {
    await d.cleanup();
  });

  it('answers 503 with Retry-After while the disk is full, loses nothing accepted, and recovers by itself', async () => {
    const partner = await d.createPartner();
    const first = await d.admin<{ id: string }>('POST', '/v1/events', {
      partnerId: partner.id,
      type: 'order.created',
      payload: { n: 1 },
    });
    expect(first.status).toBe(202);
    const { db } = d.dispatcher;
    const pages = Number((db.prepare('PRAGMA page_count').get() as { page_count: number }).page_count);
    // The disk is full: SQLite may not grow the file by a page.
    db.exec(`PRAGMA max_page_count = ${pages}`);
    try {
      const refused = await d.admin('POST', '/v1/events', {
        partnerId: partner.id,
        type: 'order.created',
        payload: { big: 'x'.repeat(200_000) },
      });
      const problem = expectProblem(refused, 503);
      expect(problem.detail).toMatch(/cannot be written now/);
      expect(refused.headers.get('retry-after')).toBe('5');
      // Still up, still reading.
      expect((await d.as(partner.apiKey, 'GET', '/v1/events')).status).toBe(200);
    } finally {
      db.exec('PRAGMA max_page_count = 1073741823');
    }

    const again = await d.admin('POST', '/v1/events', {
      partnerId: partner.id,
      type: 'order.created',
      payload: { big: 'x'.repeat(200_000) },
    });
    expect(again.status).toBe(202);
    const page = await d.as<{ data: { id: string }[] }>(partner.apiKey, 'GET', '/v1/events');
    expect(page.body.data.map((e) => e.id)).toContain(first.body.id);
    expect(page.body.data).toHaveLength(2);
  });
});
