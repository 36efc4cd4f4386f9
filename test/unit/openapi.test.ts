/**
 * The OpenAPI document: the published file is the generated one, it is valid OpenAPI 3.1, it
 * describes each route of the routes table (and nothing else) with the errors each can answer,
 * and its schemas are the handler's (a request the schemas take, the document takes too).
 */
import { readFileSync } from 'node:fs';
import { Validator } from '@seriousme/openapi-schema-validator';
import { describe, expect, it } from 'vitest';
import { errorStatuses, openApiDocument } from '../../functions/api/openapi.ts';
import { OPERATIONS } from '../../functions/api/operations.ts';
import { ROUTES } from '../../functions/api/routes.ts';
import { OPENAPI_PATH } from '../support/openapi-conformance.ts';

type Operation = { operationId: string; responses: Record<string, unknown>; security: unknown[] };
const generated = openApiDocument() as { paths: Record<string, Record<string, Operation>> };

describe('the OpenAPI document', () => {
  it('is docs/openapi.json as generated from the code (run `npm run openapi` after changing the API)', () => {
    expect(JSON.parse(readFileSync(OPENAPI_PATH, 'utf8'))).toEqual(generated);
  });

  it('is valid OpenAPI 3.1', async () => {
    const validator = new Validator();
    const result = await validator.validate(structuredClone(generated));
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('describes each route of the routes table, and no other', () => {
    const described = Object.entries(generated.paths).flatMap(([path, item]) =>
      Object.entries(item).map(([method, op]) => `${method.toUpperCase()} ${path} ${op.operationId}`),
    );
    expect(described.sort()).toEqual(ROUTES.map((r) => `${r.method} ${r.path} ${r.operation}`).sort());
  });

  it.each(ROUTES.map((route) => [`${route.method} ${route.path}`, route] as const))(
    '%s describes its errors and its credentials',
    (_, route) => {
      const op = generated.paths[route.path]?.[route.method.toLowerCase()];
      const statuses = Object.keys(op?.responses ?? {}).map(Number);
      for (const status of errorStatuses(route, OPERATIONS[route.operation]))
        expect(statuses).toContain(status);
      expect(statuses).toContain(500);
      if (route.auth === 'public') {
        expect(op?.security).toEqual([]);
      } else {
        expect(statuses).toEqual(expect.arrayContaining([401, 429]));
        expect(op?.security).toEqual([{ [route.auth === 'admin' ? 'admin' : 'apiKey']: [] }]);
      }
    },
  );

  it('names the path parameters its routes take, with their shapes', () => {
    const op = generated.paths['/v1/events/{id}']?.get as unknown as { parameters: unknown[] };
    expect(op.parameters).toEqual([
      {
        name: 'id',
        in: 'path',
        required: true,
        schema: expect.objectContaining({ pattern: expect.stringMatching(/^\^evt_/) }),
      },
    ]);
  });

  it('refuses a route whose path and spec disagree on the parameters', () => {
    expect(() =>
      openApiDocument([
        { method: 'GET', path: '/v1/events/{eventId}', auth: 'partner', operation: 'getEvent' },
      ]),
    ).toThrow(/getEvent: the path has \{eventId\} but the spec describes \{id\}/);
  });
});
