/**
 * The polling handler (the small function that serves the routes that wait, on AWS): it serves
 * exactly the routes the routes table gives it, as the API handler does, and no other.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { closeDatabase, openDatabase } from '../../functions/adapters/sqlite/database.ts';
import type { ApiRequest } from '../../functions/api/handler.ts';
import { createPollHandler, POLL_HANDLERS } from '../../functions/api/polling.ts';
import { ROUTES } from '../../functions/api/routes.ts';
import { newId } from '../../functions/core/ids.ts';
import { lambdaContext } from '../../local/lambda-context.ts';
import { apiRequest, sqliteApiDeps } from '../support/api-deps.ts';
import { checkAgainstOpenApi } from '../support/openapi-conformance.ts';

const db = openDatabase(':memory:');
afterAll(() => closeDatabase(db));
// The clock stands still, so that the rate limit's one-second windows never turn between the
// requests a test counts.
const startedAt = new Date();
const deps = { ...sqliteApiDeps(db, 2), clock: { now: () => new Date(startedAt) } };
const handler = createPollHandler(deps, () => {});
const partnerId = newId('ptr');

function get(path: string, query = ''): ApiRequest {
  return apiRequest({ path, query, authorizer: { lambda: { partnerId } } });
}

/** Its answer, checked against the OpenAPI document unless API Gateway never routes it here. */
async function answer(path: string, query?: string, routedHere = true) {
  const response = await handler(get(path, query), lambdaContext('poll'));
  const headers = new Headers(Object.entries(response.headers ?? {}).map(([k, v]) => [k, String(v)]));
  const body = response.body === undefined || response.body === '' ? '' : JSON.parse(response.body);
  if (routedHere) checkAgainstOpenApi('GET', path, { status: response.statusCode ?? 200, headers, body });
  return { status: response.statusCode, body };
}

describe('the polling handler', () => {
  it('serves the routes the routes table gives the polling function, and only those', () => {
    const polled = ROUTES.filter((route) => 'lambda' in route && route.lambda === 'poll').map(
      (r) => r.operation,
    );
    expect(Object.keys(POLL_HANDLERS).sort()).toEqual([...polled].sort());
  });

  it("lists the partner's events, as the API does, counting each request against the partner's limit", async () => {
    const { event } = await deps.events.append({
      partnerId,
      type: 'order.created',
      payload: { n: 1 },
      createdAt: new Date().toISOString(),
    });
    expect(await answer('/v1/events')).toEqual({
      status: 200,
      body: {
        data: [{ id: event.id, type: 'order.created', payload: { n: 1 }, createdAt: event.createdAt }],
        next: event.id,
      },
    });
    await answer('/v1/events', 'wait=0');
    // The third request in this second is over the limit of two.
    expect((await answer('/v1/events')).status).toBe(429);
  });

  it('answers any other route with a 404 problem, as a route it does not serve', async () => {
    const res = await answer('/v1/subscriptions', undefined, false);
    expect(res.status).toBe(404);
    expect(res.body).toMatchObject({ status: 404, detail: expect.stringMatching(/no route/) });
  });
});

describe('long polls of one partner', () => {
  it('may start waiting 20 times in 20 s; one more is answered 429 with Retry-After, and polls that answer at once are not counted', async () => {
    const own = openDatabase(':memory:');
    try {
      const ownDeps = sqliteApiDeps(own);
      const poll = createPollHandler(ownDeps, () => {});
      const partner = newId('ptr');
      const { event } = await ownDeps.events.append({
        partnerId: partner,
        type: 'order.created',
        payload: {},
        createdAt: new Date().toISOString(),
      });
      const request = (query: string) =>
        poll(
          apiRequest({ path: '/v1/events', query, authorizer: { lambda: { partnerId: partner } } }),
          lambdaContext('poll'),
        );
      // Answered at once (an event is there): not a wait.
      for (let i = 0; i < 30; i++) expect((await request('wait=20')).statusCode).toBe(200);
      const waits = await Promise.all(Array.from({ length: 21 }, () => request(`after=${event.id}&wait=1`)));
      const statuses = waits.map((w) => w.statusCode).sort();
      expect(statuses.filter((s) => s === 200)).toHaveLength(20);
      const refused = waits.find((w) => w.statusCode === 429);
      expect(Number(refused?.headers?.['retry-after'])).toBeGreaterThan(0);
      expect(refused?.body).toMatch(/at most 20 long polls/);
    } finally {
      closeDatabase(own);
    }
  });
});
