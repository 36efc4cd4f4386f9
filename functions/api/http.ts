/**
 * The HTTP API's plumbing, shared by the API handler and the polling handler: API Gateway v2
 * (payload 2.0) requests in, JSON or problem+json out, each with its request id; the body,
 * path and query read and validated; the caller found and counted against its limit; and a
 * router from the routes table to the handlers given.
 */
import middy, { type MiddlewareObj, type Request } from '@middy/core';
import type {
  APIGatewayEventRequestContextV2,
  APIGatewayProxyEventV2WithRequestContext,
  APIGatewayProxyStructuredResultV2,
} from 'aws-lambda';
import type * as z from 'zod';
import { NotFoundError, PayloadTooLargeError, UnauthorizedError, ValidationError } from '../core/errors.ts';
import { type AdmitDeps, admitRequest, type Caller } from '../core/limits.ts';
import { MethodNotAllowedError, RouteNotFoundError, UnsupportedMediaTypeError } from './errors.ts';
import { MAX_JSON_DEPTH, nestsDeeperThan } from './json-depth.ts';
import { problemJson, validationErrorFrom } from './problem.ts';
import { matchRoute, type Operation, type RouteAuth } from './routes.ts';

/** What the authorizers leave in the request context: the partner's id, or an IAM caller. */
export interface ApiAuthorizerContext {
  lambda?: { partnerId?: string; keyId?: string };
  iam?: { userArn?: string };
}

export type ApiRequestContext = APIGatewayEventRequestContextV2 & { authorizer?: ApiAuthorizerContext };
export type ApiRequest = APIGatewayProxyEventV2WithRequestContext<ApiRequestContext>;
export type ApiResponse = APIGatewayProxyStructuredResultV2;

export type Log = (message: string, error: unknown) => void;

/**
 * The largest request body, in both runtimes (the local server refuses larger ones before they
 * reach the handler; on AWS, API Gateway would pass up to API_GATEWAY.maxPayloadBytes, 10 MB).
 */
export const MAX_REQUEST_BYTES = 1024 * 1024;

/** `value` parsed by `schema`, or a ValidationError naming each field at fault under `where`. */
export function parse<T extends z.ZodType>(schema: T, value: unknown, where: string): z.infer<T> {
  const result = schema.safeParse(value);
  if (!result.success) throw validationErrorFrom(result.error, where);
  return result.data;
}

/** The JSON body, or a clear 400/413/415 when it is not JSON or too large. */
export function jsonBody(event: ApiRequest): unknown {
  const contentType = event.headers['content-type'] ?? event.headers['Content-Type'];
  // application/json, with at most a UTF-8 charset: not json-seq, not a list of types, not none.
  if (contentType === undefined || !/^application\/json\s*(;\s*charset="?utf-8"?\s*)?$/i.test(contentType)) {
    throw new UnsupportedMediaTypeError(
      `content-type must be application/json (optionally; charset=utf-8), not ${contentType ?? 'missing'}`,
    );
  }
  if (event.body === undefined || event.body === '')
    throw new ValidationError('a JSON body is required', [{ field: 'body', message: 'required' }]);
  if (Buffer.byteLength(event.body, event.isBase64Encoded ? 'base64' : 'utf8') > MAX_REQUEST_BYTES)
    throw new PayloadTooLargeError(`request bodies are limited to ${MAX_REQUEST_BYTES} bytes`);
  const text = event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
  if (nestsDeeperThan(text, MAX_JSON_DEPTH)) {
    throw new ValidationError(`body nests deeper than ${MAX_JSON_DEPTH} levels of objects and arrays`, [
      { field: 'body', message: `at most ${MAX_JSON_DEPTH} levels deep` },
    ]);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    const reason = error instanceof Error ? error.message : 'unparseable';
    throw new ValidationError(`body is not valid JSON: ${reason}`, [
      { field: 'body', message: 'invalid JSON' },
    ]);
  }
}

/** The JSON body of a route whose body may be left out: `{}` when it is. */
export function optionalJsonBody(event: ApiRequest): unknown {
  return event.body === undefined || event.body === '' ? {} : jsonBody(event);
}

/** A path id of the wrong shape names nothing that exists: 404, as for an unknown id. */
export function pathId<T extends z.ZodType<string>>(
  schema: T,
  value: string | undefined,
  what: string,
): string {
  const result = schema.safeParse(value);
  if (!result.success) throw new NotFoundError(`${what} ${value ?? ''} not found`);
  return result.data;
}

export function json(statusCode: number, body: unknown): ApiResponse {
  return { statusCode, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
}

export function partnerOf(event: ApiRequest): string {
  const partnerId = event.requestContext.authorizer?.lambda?.partnerId;
  if (!partnerId) throw new UnauthorizedError('an API key is required: Authorization: Bearer <apiKey>');
  return partnerId;
}

export function requireAdmin(event: ApiRequest): void {
  if (!event.requestContext.authorizer?.iam) throw new UnauthorizedError('admin credentials are required');
}

/**
 * Who is calling, for the limits: the partner of the API key, or the producer's IAM identity.
 * An assumed role's session name is dropped (`…:assumed-role/Role/session` counts as the
 * role), so every instance of one producer service shares the role's limit.
 */
export function callerOf(event: ApiRequest, auth: RouteAuth): Caller | undefined {
  if (auth === 'public') return undefined; // the API's own description: the stage's throttle is enough
  if (auth === 'partner') return { kind: 'partner', partnerId: partnerOf(event) };
  requireAdmin(event);
  const arn = event.requestContext.authorizer?.iam?.userArn ?? 'unknown';
  const role = /^(arn:[^:]+:sts::\d+:assumed-role\/[^/]+)\/.+$/.exec(arn);
  return { kind: 'producer', identity: role?.[1] ?? arn };
}

/** The header every answer carries: the request's id, which the logs carry too. */
export const REQUEST_ID_HEADER = 'x-request-id';

/** Middy middleware: stamps each answer, a problem included, with the request's id. */
function requestIdHeader(): MiddlewareObj<ApiRequest, ApiResponse> {
  const stamp = (request: Request<ApiRequest, ApiResponse>) => {
    const response = request.response;
    if (response === undefined || response === null) return;
    response.headers = { ...response.headers, [REQUEST_ID_HEADER]: request.event.requestContext.requestId };
  };
  // Registered first, so it runs last on the way out: after problemJson has made the problem.
  return { name: 'requestIdHeader', after: stamp, onError: stamp };
}

/** What one route does with its request: the deps it needs, the request, the path's parameters. */
export type RouteHandler<D> = (
  deps: D,
  event: ApiRequest,
  params: Record<string, string>,
  log: Log | undefined,
) => Promise<ApiResponse>;

/**
 * A handler serving `handlers`' operations of the routes table: the route matched (404/405
 * otherwise, and 404 for a route whose operation is not among `handlers`), the caller counted
 * against its limit, then the operation's handler; every error becomes problem+json.
 */
export function routedHandler<D extends AdmitDeps>(
  deps: D,
  handlers: Partial<Record<Operation, RouteHandler<D>>>,
  log?: Log,
) {
  return middy<ApiRequest, ApiResponse>()
    .use(requestIdHeader())
    .use(problemJson(log))
    .handler(async (event) => {
      const method = event.requestContext.http.method;
      const match = matchRoute(method, event.rawPath);
      if (match.kind === 'not-found') throw new RouteNotFoundError(`no route for ${event.rawPath}`);
      if (match.kind === 'method-not-allowed')
        throw new MethodNotAllowedError(method, event.rawPath, match.allowed);
      const handle = handlers[match.route.operation];
      if (handle === undefined) throw new RouteNotFoundError(`no route for ${event.rawPath} here`);
      const caller = callerOf(event, match.route.auth);
      if (caller !== undefined) await admitRequest(deps, caller);
      return handle(deps, event, match.params, log);
    });
}
