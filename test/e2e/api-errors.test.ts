/**
 * The HTTP API end to end, limits, routing, errors and failures: the real local runtime on 127.0.0.1,
 * called over real HTTP as the platform admin (admin token) and as partners (API keys) would.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPENAPI_PATH } from '../support/openapi-conformance.ts';
import {
  createSubscriptionFor,
  type EventView,
  expectProblem,
  MAX_SUBSCRIPTIONS,
  type Page,
  raw,
  type SubscriptionView,
  UNKNOWN_EVENT_ID,
  UNKNOWN_SUBSCRIPTION_ID,
  withApiDispatcher,
} from './api-support.ts';
import { type ApiResult, eventually, request, startTestDispatcher, type TestDispatcher } from './harness.ts';

describe('HTTP API: limits, routing and errors', () => {
  let d: TestDispatcher;
  withApiDispatcher((started) => {
    d = started;
  });

  const createSubscription = (apiKey: string, body?: Record<string, unknown>) =>
    createSubscriptionFor(d, apiKey, body);

  describe('GET /openapi.json', () => {
    it('serves the OpenAPI document to anyone, as docs/openapi.json has it', async () => {
      const res = await raw(`${d.dispatcher.url}/openapi.json`, 'GET', {});
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/json');
      expect(res.body).toEqual(JSON.parse(readFileSync(OPENAPI_PATH, 'utf8')));
    });

    it('gives every answer, an authorizer refusal included, an id of its own', async () => {
      const answers = await Promise.all([
        raw(`${d.dispatcher.url}/openapi.json`, 'GET', {}),
        raw(`${d.dispatcher.url}/v1/events`, 'GET', {}),
        raw(`${d.dispatcher.url}/v1/events`, 'POST', { authorization: 'Bearer wrong' }),
      ]);
      expect(answers.map((a) => a.status)).toEqual([200, 401, 401]);
      const ids = answers.map((a) => a.headers.get('x-request-id'));
      for (const id of ids) expect(id).toMatch(/^[0-9a-f-]{36}$/);
      expect(new Set(ids).size).toBe(3);
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
