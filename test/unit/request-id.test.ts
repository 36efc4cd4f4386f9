/**
 * Every answer of the API carries its request's id (x-request-id), and a failure's log line
 * carries the same id, so ops can find what went wrong from what a partner reports.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { closeDatabase, openDatabase } from '../../functions/adapters/sqlite/database.ts';
import { type ApiRequest, createApiHandler, REQUEST_ID_HEADER } from '../../functions/api/handler.ts';
import { lambdaContext } from '../../local/lambda-context.ts';
import { apiRequest, sqliteApiDeps } from '../support/api-deps.ts';

const db = openDatabase(':memory:');
afterAll(() => closeDatabase(db));

const logged: string[] = [];
const deps = sqliteApiDeps(db);
const handler = createApiHandler(
  {
    ...deps,
    events: {
      append: (event) => deps.events.append(event),
      get: (partnerId, id) => deps.events.get(partnerId, id),
      list: async () => {
        throw new Error('the table is gone');
      },
      waitForEvents: (partnerId, query, timeoutMs) => deps.events.waitForEvents(partnerId, query, timeoutMs),
      latestCursor: (partnerId) => deps.events.latestCursor(partnerId),
      countAfter: (partnerId, after) => deps.events.countAfter(partnerId, after),
      cursorTime: (partnerId, cursor) => deps.events.cursorTime(partnerId, cursor),
      resumeAfter: (partnerId, cursor) => deps.events.resumeAfter(partnerId, cursor),
    },
  },
  (message) => logged.push(message),
);

function get(path: string, authorizer: ApiRequest['requestContext']['authorizer']): ApiRequest {
  return apiRequest({ path, authorizer });
}

const partner = { lambda: { partnerId: 'ptr_01JA0000000000000000000000' } };

describe('the request id', () => {
  it('is on a success, a problem and an unknown route, each its own request', async () => {
    const requests = [
      get('/openapi.json', undefined),
      get('/v1/events/x', partner),
      get('/v2/nothing', partner),
    ];
    const answers = await Promise.all(requests.map((r) => handler(r, lambdaContext('api'))));
    expect(answers.map((a) => a.statusCode)).toEqual([200, 404, 404]);
    answers.forEach((answer, i) => {
      expect(answer.headers?.[REQUEST_ID_HEADER]).toBe(requests[i]?.requestContext.requestId);
    });
  });

  it("is in the log line of a failure, as in the failure's answer", async () => {
    const request = get('/v1/events', partner);
    const answer = await handler(request, lambdaContext('api'));
    expect(answer.statusCode).toBe(500);
    const id = request.requestContext.requestId;
    expect(answer.headers?.[REQUEST_ID_HEADER]).toBe(id);
    expect(logged.filter((line) => line.includes(id))).toHaveLength(1);
  });
});
