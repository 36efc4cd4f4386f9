/**
 * The OpenAPI 3.1 document of the HTTP API, generated from the routes table, the operations'
 * specs and their zod schemas (zod's JSON Schema output is draft 2020-12, OpenAPI 3.1's
 * dialect). Served at GET /openapi.json and written to docs/openapi.json by `npm run openapi`.
 */
import * as z from 'zod';
import { OPERATIONS, type OperationSpec } from './operations.ts';
import { ROUTES, type Route } from './routes.ts';

export const OPENAPI_VERSION = '3.1.0';
/** The document's own version: the API's major version is in its paths (/v1). */
export const API_DOCUMENT_VERSION = '1.0.0';

type JsonSchema = Record<string, unknown>;
type Document = Record<string, unknown>;

const COMPONENT = '#/components/schemas/';

/** What each error status means, for every operation that can answer it. */
const ERROR_MEANINGS: Record<number, string> = {
  400: 'The request is invalid: `errors` names each field at fault.',
  401: 'No credentials, or credentials that are not valid for this route (on AWS, a missing API key is answered by API Gateway itself).',
  403: 'On AWS: an API key that is not valid, or revoked, answered by API Gateway itself (the local runtime answers 401).',
  404: 'No such resource among yours.',
  409: 'The request conflicts with the state of the resource.',
  410: 'Gone: events after the consumer’s position expired unread; move it with PUT to go on.',
  413: 'The body or the event payload is too large.',
  415: 'The body is not `application/json`.',
  422: 'The transformation gave no body for the event: `detail` says why.',
  429: 'Over a limit: try again after `Retry-After` seconds.',
  500: 'The request could not be completed; it has been logged.',
  503: 'Briefly unable to serve: try again after `Retry-After` seconds.',
};

const RETRY_AFTER = {
  description: 'Seconds to wait before trying again.',
  schema: { type: 'integer', minimum: 1 },
};

const REQUEST_ID = {
  description: "The request's id, as the service's logs carry it.",
  schema: { type: 'string' },
};

/** The error statuses an operation answers: those of its kind, and its own. */
export function errorStatuses(route: Route, spec: OperationSpec): number[] {
  const statuses = new Set<number>([500]);
  if (route.auth !== 'public') for (const status of [401, 429, 503]) statuses.add(status);
  if (route.auth === 'partner') statuses.add(403);
  if (spec.query !== undefined || spec.body !== undefined) statuses.add(400);
  if (spec.body !== undefined) for (const status of [413, 415]) statuses.add(status);
  if (route.path.includes('{')) statuses.add(404);
  for (const status of spec.errors ?? []) statuses.add(status);
  return [...statuses].sort((a, b) => a - b);
}

/** Every schema that has an id, as components, with references between them. */
function components(): Record<string, JsonSchema> {
  const { schemas } = z.toJSONSchema(z.globalRegistry, {
    io: 'input',
    uri: (id) => `${COMPONENT}${id}`,
    unrepresentable: 'any',
  }) as { schemas: Record<string, JsonSchema> };
  const out: Record<string, JsonSchema> = {};
  for (const [id, schema] of Object.entries(schemas)) {
    const { $schema: _schema, $id: _id, ...rest } = schema;
    out[id] = rest;
  }
  return out;
}

/** A reference to a body's schema: each is a named component. */
function schemaOf(schema: z.ZodType, operation: string): JsonSchema {
  const id = z.globalRegistry.get(schema)?.id;
  if (id === undefined) throw new Error(`${operation}: a body's schema needs an id (.meta({ id }))`);
  return { $ref: `${COMPONENT}${id}` };
}

/** The query's properties, each a parameter. */
function queryParameters(query: z.ZodObject): JsonSchema[] {
  const schema = z.toJSONSchema(query, { io: 'input', unrepresentable: 'any' }) as {
    properties?: Record<string, JsonSchema>;
    required?: string[];
  };
  return Object.entries(schema.properties ?? {}).map(([name, property]) => {
    const { description, ...rest } = property;
    return {
      name,
      in: 'query',
      required: schema.required?.includes(name) ?? false,
      ...(typeof description === 'string' ? { description } : {}),
      schema: rest,
    };
  });
}

/** The path's parameters, as the operation's spec describes them (and no others). */
function pathParameters(route: Route, spec: OperationSpec): JsonSchema[] {
  const names = [...route.path.matchAll(/\{([^}]+)\}/g)].map((match) => match[1] ?? '');
  const described = Object.keys(spec.params ?? {});
  if (names.join() !== described.join())
    throw new Error(
      `${route.operation}: the path has {${names.join()}} but the spec describes {${described.join()}}`,
    );
  return Object.entries(spec.params ?? {}).map(([name, schema]) => {
    const { $schema: _schema, ...rest } = z.toJSONSchema(schema, { io: 'input' }) as JsonSchema;
    return { name, in: 'path', required: true, schema: rest };
  });
}

function securityOf(route: Route): JsonSchema[] {
  if (route.auth === 'public') return [];
  return [{ [route.auth === 'admin' ? 'admin' : 'apiKey']: [] }];
}

function operationObject(route: Route, spec: OperationSpec): JsonSchema {
  const responses: Record<string, JsonSchema> = {};
  for (const success of spec.responses) {
    responses[String(success.status)] = {
      description: success.description,
      headers: { 'x-request-id': { $ref: '#/components/headers/RequestId' } },
      ...(success.schema === undefined
        ? {}
        : { content: { 'application/json': { schema: schemaOf(success.schema, route.operation) } } }),
    };
  }
  for (const status of errorStatuses(route, spec))
    responses[String(status)] = { $ref: `#/components/responses/E${status}` };
  const parameters = [...pathParameters(route, spec), ...(spec.query ? queryParameters(spec.query) : [])];
  return {
    operationId: route.operation,
    summary: spec.summary,
    ...(spec.description === undefined ? {} : { description: spec.description }),
    tags: [spec.tag],
    security: securityOf(route),
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(spec.body === undefined
      ? {}
      : {
          requestBody: {
            required: spec.bodyOptional !== true,
            content: { 'application/json': { schema: schemaOf(spec.body, route.operation) } },
          },
        }),
    responses,
  };
}

/**
 * What API Gateway answers itself, on AWS: a refused API key (401, 403), its throttling (429),
 * a function that failed or did not answer in time (500, 503). Such an answer carries
 * `apigw-requestid` rather than `x-request-id`.
 */
const GATEWAY_STATUSES = new Set(['401', '403', '429', '500', '503']);
const GATEWAY_ERROR = {
  type: 'object',
  description: 'API Gateway\'s own answer, on AWS: `{"message": "Forbidden"}` and the like.',
  properties: { message: { type: 'string' } },
  required: ['message'],
};

function errorResponses(): Record<string, JsonSchema> {
  const responses: Record<string, JsonSchema> = {};
  for (const [status, description] of Object.entries(ERROR_MEANINGS)) {
    const headers: Record<string, unknown> = { 'x-request-id': { $ref: '#/components/headers/RequestId' } };
    if (status === '429' || status === '503') headers['retry-after'] = RETRY_AFTER;
    if (status === '401') headers['www-authenticate'] = { description: 'Bearer', schema: { type: 'string' } };
    const problem = { 'application/problem+json': { schema: { $ref: `${COMPONENT}Problem` } } };
    responses[`E${status}`] = {
      description,
      headers,
      // API Gateway answers some of these itself, before the API runs: in its own shape.
      content: GATEWAY_STATUSES.has(status)
        ? { ...problem, 'application/json': { schema: GATEWAY_ERROR } }
        : problem,
    };
  }
  return responses;
}

/** The whole document; `routes` defaults to the API's own. */
export function openApiDocument(routes: readonly Route[] = ROUTES): Document {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const route of routes) {
    const spec = OPERATIONS[route.operation as keyof typeof OPERATIONS];
    if (spec === undefined) throw new Error(`no operation spec for ${route.operation}`);
    paths[route.path] ??= {};
    const item = paths[route.path];
    if (item) item[route.method.toLowerCase()] = operationObject(route, spec);
  }
  return {
    openapi: OPENAPI_VERSION,
    info: {
      title: 'Webhook dispatcher API',
      version: API_DOCUMENT_VERSION,
      description:
        'Partners poll their events and manage the subscriptions that deliver them as signed callbacks ' +
        '(Standard Webhooks). The platform publishes events and registers partners.',
    },
    tags: [
      { name: 'Events', description: 'Polling your event log.' },
      { name: 'Consumers', description: 'Cursors the dispatcher keeps for your readers.' },
      { name: 'Subscriptions', description: 'Callback URLs and their signing secrets.' },
      { name: 'Deliveries', description: 'What was sent where, each try, and sending again.' },
      {
        name: 'API keys',
        description: 'Your keys: several at once, so each can be rotated without downtime.',
      },
      { name: 'Partners', description: "The platform's: registering partners and managing their keys." },
      { name: 'Publishing', description: "The platform's: publishing events to partners." },
      { name: 'API', description: 'This document.' },
    ],
    paths,
    components: {
      securitySchemes: {
        apiKey: {
          type: 'http',
          scheme: 'bearer',
          description: "A partner's API key (`dk_…`): `Authorization: Bearer dk_…`.",
        },
        admin: {
          type: 'http',
          scheme: 'bearer',
          description:
            "The platform's own credentials: on AWS, IAM (SigV4-signed requests, `execute-api:Invoke`); " +
            'on the local runtime, its admin token as a Bearer token.',
        },
      },
      headers: { RequestId: REQUEST_ID },
      responses: errorResponses(),
      schemas: components(),
    },
  };
}

let cached: string | undefined;

/** The document as JSON text, made once per process. */
export function openApiJson(): string {
  cached ??= JSON.stringify(openApiDocument());
  return cached;
}
