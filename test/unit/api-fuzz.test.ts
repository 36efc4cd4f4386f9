/**
 * Property: whatever a caller sends to any route of the API (a body of any shape or depth, any
 * query, any path segment, any content type), the answer is not a 5xx, it comes, and it is one
 * the OpenAPI document describes.
 * Runs on the real API handler with the SQLite stores in memory. FUZZ_RUNS sets the number of
 * requests per route (npm run fuzz runs many more than npm test).
 */
import * as fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closeDatabase,
  openDatabase,
  type SqliteDatabase,
} from '../../functions/adapters/sqlite/database.ts';
import { type ApiRequest, createApiHandler } from '../../functions/api/handler.ts';
import { ROUTES, type RouteAuth } from '../../functions/api/routes.ts';
import { newId } from '../../functions/core/ids.ts';
import { lambdaContext } from '../../local/lambda-context.ts';
import { makeApiKey } from '../contract/fixtures.ts';
import { apiRequest, sqliteApiDeps } from '../support/api-deps.ts';
import { checkAgainstOpenApi } from '../support/openapi-conformance.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 60);

let db: SqliteDatabase;
let handler: ReturnType<typeof createApiHandler>;
const partnerId = newId('ptr');
let eventId = '';
let subscriptionId = '';

beforeAll(async () => {
  db = openDatabase(':memory:');
  const deps = sqliteApiDeps(db);
  const { partners, events, subscriptions } = deps;
  handler = createApiHandler(deps, () => {});
  await partners.create(
    { id: partnerId, name: 'fuzz', createdAt: new Date().toISOString() },
    makeApiKey(partnerId),
  );
  const { event } = await events.append({
    partnerId,
    type: 'order.created',
    payload: { n: 1 },
    createdAt: new Date().toISOString(),
  });
  eventId = event.id;
  subscriptionId = newId('sub');
  await subscriptions.put({
    id: subscriptionId,
    partnerId,
    url: 'http://127.0.0.1:9/hooks',
    eventTypes: [],
    status: 'active',
    secrets: [{ secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', createdAt: new Date().toISOString() }],
    createdAt: new Date().toISOString(),
    updatedAt: new Date().toISOString(),
  });
});

afterAll(() => {
  closeDatabase(db);
});

/** Something in a path segment: a real id, an id of the wrong kind, or any text. */
const segment = () =>
  fc.oneof(
    fc.constant(eventId),
    fc.constant(subscriptionId),
    fc.constant(newId('dlv')),
    fc.string({ maxLength: 40 }).map((s) => encodeURIComponent(s) || 'x'),
  );

/** A body: JSON of any shape, JSON nested very deep, text that is not JSON, or nothing. */
const body = fc.oneof(
  fc.jsonValue({ maxDepth: 6 }).map((v) => JSON.stringify(v)),
  fc
    .record({
      partnerId: fc.oneof(fc.constant(partnerId), fc.string()),
      type: fc.oneof(fc.constant('order.created'), fc.string()),
      payload: fc.jsonValue({ maxDepth: 4 }),
      url: fc.oneof(fc.constant('http://127.0.0.1:9/x'), fc.webUrl(), fc.string()),
      since: fc.oneof(
        fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
        fc.string(),
      ),
      events: fc.array(fc.jsonValue({ maxDepth: 3 }), { maxLength: 5 }),
    })
    .map((v) => JSON.stringify(v)),
  fc.integer({ min: 60, max: 20_000 }).map((n) => `${'['.repeat(n)}${']'.repeat(n)}`),
  fc.integer({ min: 60, max: 20_000 }).map((n) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`),
  // Deep where validation would walk it: the payload of a publish that is otherwise valid.
  fc
    .integer({ min: 60, max: 20_000 })
    .map(
      (n) => `{"partnerId":"${partnerId}","type":"order.created","payload":${'['.repeat(n)}${']'.repeat(n)}}`,
    ),
  fc.string({ maxLength: 200 }),
  fc.constant(undefined),
);

const contentType = fc.constantFrom(
  'application/json',
  'application/json; charset=utf-8',
  'text/plain',
  'application/json-seq',
  undefined,
);

const query = fc.dictionary(
  fc.constantFrom('after', 'limit', 'types', 'since', 'x'),
  fc.oneof(fc.string({ maxLength: 30 }), fc.integer().map(String), fc.constant(eventId)),
  { maxKeys: 4 },
);

function request(
  method: string,
  path: string,
  auth: RouteAuth,
  headers: Record<string, string>,
  query: string,
  body: string | undefined,
): ApiRequest {
  return apiRequest({
    method,
    path,
    query,
    headers,
    body,
    ...(auth === 'public'
      ? {}
      : {
          authorizer:
            auth === 'admin'
              ? { iam: { userArn: 'arn:aws:iam::123456789012:role/producer' } }
              : { lambda: { partnerId } },
        }),
  });
}

describe('every route, whatever it is sent', () => {
  it.each(ROUTES.map((route) => [`${route.method} ${route.path}`, route] as const))(
    // A request that hangs fails the test by its timeout, as a 5xx fails it by the assertion.
    '%s answers without a 5xx',
    async (_, route) => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(segment(), { minLength: 2, maxLength: 2 }),
          query,
          body,
          contentType,
          async (ids, params, text, type) => {
            let i = 0;
            const path = route.path.replace(/\{[^}]+\}/g, () => ids[i++] ?? 'x');
            const headers: Record<string, string> = type === undefined ? {} : { 'content-type': type };
            const response = await handler(
              request(route.method, path, route.auth, headers, new URLSearchParams(params).toString(), text),
              lambdaContext('api'),
            );
            expect(response.statusCode, `${route.method} ${path} → ${response.body}`).toBeLessThan(500);
            // Whatever it answers is an answer the OpenAPI document describes.
            const answered = new Headers();
            for (const [name, value] of Object.entries(response.headers ?? {}))
              answered.set(name, String(value));
            const answer = response.body ?? '';
            checkAgainstOpenApi(route.method, path, {
              status: response.statusCode ?? 200,
              headers: answered,
              body: answer === '' ? '' : JSON.parse(answer),
            });
          },
        ),
        { numRuns: RUNS },
      );
    },
  );
});
