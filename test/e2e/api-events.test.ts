/**
 * The HTTP API end to end, partners and events: the real local runtime on 127.0.0.1,
 * called over real HTTP as the platform admin (admin token) and as partners (API keys) would.
 */
import { request as httpRequest } from 'node:http';
import { describe, expect, it } from 'vitest';
import {
  type CreatedPartner,
  createSubscriptionFor,
  EVENT_ID,
  type EventView,
  expectProblem,
  PARTNER_ID,
  type Page,
  type Published,
  pageThrough,
  publish,
  raw,
  UNKNOWN_EVENT_ID,
  UNKNOWN_PARTNER_ID,
  withApiDispatcher,
} from './api-support.ts';
import { request, startTestDispatcher, type TestDispatcher } from './harness.ts';

describe('HTTP API: partners and events', () => {
  let d: TestDispatcher;
  withApiDispatcher((started) => {
    d = started;
  });

  const _createSubscription = (apiKey: string, body?: Record<string, unknown>) =>
    createSubscriptionFor(d, apiKey, body);

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

    it('rejects a chunked body that grows past 1 MiB with 413, and closes the connection', async () => {
      const url = new URL('/v1/events', d.dispatcher.url);
      const answer = await new Promise<{ status: number; connection: string | undefined; body: string }>(
        (resolve, reject) => {
          const req = httpRequest(
            url,
            {
              method: 'POST',
              headers: {
                authorization: `Bearer ${d.dispatcher.adminToken}`,
                'content-type': 'application/json',
                'transfer-encoding': 'chunked',
              },
            },
            (res) => {
              let body = '';
              res.setEncoding('utf8');
              res.on('data', (chunk: string) => {
                body += chunk;
              });
              res.on('end', () =>
                resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body }),
              );
            },
          );
          // The server may close before every chunk is written: that is the point.
          req.on('error', (error: NodeJS.ErrnoException) => {
            if (error.code !== 'EPIPE' && error.code !== 'ECONNRESET') reject(error);
          });
          const chunk = 'x'.repeat(64 * 1024);
          for (let i = 0; i < 20; i++) req.write(chunk);
          req.end();
        },
      );
      expect(answer.status).toBe(413);
      expect(answer.connection).toBe('close');
      expect(JSON.parse(answer.body)).toMatchObject({ status: 413 });
    });

    it('stores nothing from a request whose client goes away halfway through its body, and serves the next', async () => {
      const partner = await d.createPartner();
      const url = new URL('/v1/events', d.dispatcher.url);
      // Whole JSON, then padding: a body taken as ended where the client stopped would be a
      // valid event, and stored.
      const event = JSON.stringify({ partnerId: partner.id, type: 'cut.short', payload: {} });
      const whole = `${event}${' '.repeat(10_000)}`;
      await new Promise<void>((resolve) => {
        const req = httpRequest(url, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${d.dispatcher.adminToken}`,
            'content-type': 'application/json',
            'content-length': String(Buffer.byteLength(whole)),
          },
        });
        req.on('error', () => resolve());
        req.on('close', () => resolve());
        req.write(whole.slice(0, event.length + 5_000), () => setTimeout(() => req.destroy(), 50));
      });

      const next = await publish(d, partner.id, 'order.created');
      const page = await d.as<Page<EventView>>(partner.apiKey, 'GET', '/v1/events');
      expect(page.body.data.map((e) => e.id)).toEqual([next]);
    });

    it('answers 401 without the admin token or with a partner API key', async () => {
      const partner = await d.createPartner();
      const body = { partnerId: partner.id, type: 'order.created', payload: {} };
      expectProblem(await request(`${d.dispatcher.url}/v1/events`, 'POST', undefined, body), 401);
      expectProblem(await d.as(partner.apiKey, 'POST', '/v1/events', body), 401);
    });
  });

  describe('GET /v1/events?wait= (long polling)', () => {
    it('holds an empty poll open until the next event is published, and answers with it', async () => {
      const partner = await d.createPartner();
      const first = await publish(d, partner.id, 'order.created');
      const other = await d.createPartner();
      const poll = d.as<Page<EventView>>(partner.apiKey, 'GET', `/v1/events?after=${first}&wait=20`);
      // Another partner's event does not answer it; the partner's own does.
      await publish(d, other.id, 'order.created');
      const next = await publish(d, partner.id, 'order.shipped');
      const res = await poll;
      expect(res.status).toBe(200);
      expect(res.body.data.map((e) => e.id)).toEqual([next]);
      expect(res.body.next).toBe(next);
    });

    it('answers at once when there is already an event after the cursor', async () => {
      const partner = await d.createPartner();
      const id = await publish(d, partner.id, 'order.created');
      const res = await d.as<Page<EventView>>(partner.apiKey, 'GET', '/v1/events?wait=20');
      expect(res.body.data.map((e) => e.id)).toEqual([id]);
    });

    it('answers an empty page with the same cursor when the wait is up', async () => {
      const partner = await d.createPartner();
      const id = await publish(d, partner.id, 'order.created');
      const res = await d.as<Page<EventView>>(partner.apiKey, 'GET', `/v1/events?after=${id}&wait=1`);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ data: [], next: id });
    });

    it('answers a long poll still waiting when the dispatcher stops, and lets it stop', async () => {
      const own = await startTestDispatcher();
      try {
        const partner = await own.createPartner();
        const poll = own.as<Page<EventView>>(partner.apiKey, 'GET', '/v1/events?wait=20').then(
          (res) => res.status,
          () => 'closed',
        );
        // Let the request reach its wait (were it still on its way, it would be refused: also fine).
        await new Promise((resolve) => setTimeout(resolve, 300));
        await own.stop();
        expect([200, 'closed']).toContain(await poll);
      } finally {
        await own.cleanup();
      }
    });

    it('refuses a wait over 20 seconds, below 0 or not a number, naming query.wait', async () => {
      const partner = await d.createPartner();
      for (const wait of ['21', '-1', 'soon', '1.5']) {
        expectProblem(await d.as(partner.apiKey, 'GET', `/v1/events?wait=${wait}`), 400, 'query.wait');
      }
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

    it('rejects limit=0, limit=1001 and limit=x with a 400 naming query.limit', async () => {
      const partner = await d.createPartner();
      for (const limit of ['0', '1001', 'x', '-1', '1.5']) {
        expectProblem(await d.as(partner.apiKey, 'GET', `/v1/events?limit=${limit}`), 400, 'query.limit');
      }
    });

    it('accepts limit=1 and limit=1000', async () => {
      const partner = await d.createPartner();
      expect((await d.as(partner.apiKey, 'GET', '/v1/events?limit=1')).status).toBe(200);
      expect((await d.as(partner.apiKey, 'GET', '/v1/events?limit=1000')).status).toBe(200);
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
});
