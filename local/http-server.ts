/**
 * The local stand-in for API Gateway (HTTP API, payload 2.0): each request becomes the event
 * API Gateway would send, authorised as the deployed routes are (admin routes by the admin
 * token in place of IAM, partner routes by the same Lambda authorizer), and is answered by
 * the same API handler. Besides the API it serves GET /metrics and the ops page (/ops).
 */
import { randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { APIGatewayRequestAuthorizerEventV2 } from 'aws-lambda';
import {
  type ApiHandler,
  type ApiRequest,
  type ApiResponse,
  REQUEST_ID_HEADER,
} from '../functions/api/handler.ts';
import { toProblemResponse } from '../functions/api/problem.ts';
import { matchRoute } from '../functions/api/routes.ts';
import { type AuthorizerHandler, bearerToken } from '../functions/authorizer/handler.ts';
import { PayloadTooLargeError, UnauthorizedError } from '../functions/core/errors.ts';
import { lambdaContext } from './lambda-context.ts';
import type { LocalMetrics } from './metrics.ts';
import { opsPageResponse } from './ops-page.ts';

/** API Gateway's own request limit is 10 MB; ours is tighter since an event is at most 256 KiB. */
export const MAX_REQUEST_BYTES = 1024 * 1024;

export interface HttpServerDeps {
  api: ApiHandler;
  authorizer: AuthorizerHandler;
  adminToken: string;
  /** GET /metrics, for Prometheus, with the admin token (a scrape config's bearer token). */
  metrics?: Pick<LocalMetrics, 'scrape'>;
  log: (message: string, error?: unknown) => void;
}

class BodyTooLargeError extends Error {}

/**
 * The request's body, refused past MAX_REQUEST_BYTES (declared or sent). Read with the stream's
 * events rather than its async iterator, which costs a callback's worth of allocations more.
 */
function readBody(req: IncomingMessage): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (declared > MAX_REQUEST_BYTES) return Promise.reject(new BodyTooLargeError());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_REQUEST_BYTES) {
        finish();
        // Nothing more is read: the 413 goes out with connection: close.
        req.pause();
        reject(new BodyTooLargeError());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      finish();
      resolve(chunks.length === 1 && chunks[0] !== undefined ? chunks[0] : Buffer.concat(chunks));
    };
    const onError = (error: Error) => {
      finish();
      reject(error);
    };
    // The client went away before the body ended: nothing to answer.
    const onClose = () => {
      if (!req.complete) onError(new Error('the request was aborted before its body ended'));
    };
    const finish = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

function headersOf(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(',') : value;
  }
  return headers;
}

function toApiRequest(req: IncomingMessage, body: Buffer): ApiRequest {
  const url = new URL(req.url ?? '/', 'http://local');
  const query: Record<string, string> = {};
  // API Gateway joins repeated query parameters with commas.
  for (const key of new Set(url.searchParams.keys())) query[key] = url.searchParams.getAll(key).join(',');
  const headers = headersOf(req);
  const now = new Date();
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: url.pathname,
    rawQueryString: url.search.slice(1),
    headers,
    ...(Object.keys(query).length > 0 ? { queryStringParameters: query } : {}),
    requestContext: {
      accountId: '000000000000',
      apiId: 'local',
      domainName: headers.host ?? 'localhost',
      domainPrefix: 'local',
      http: {
        method: req.method ?? 'GET',
        path: url.pathname,
        protocol: `HTTP/${req.httpVersion}`,
        sourceIp: req.socket.remoteAddress ?? '127.0.0.1',
        userAgent: headers['user-agent'] ?? '',
      },
      requestId: randomUUID(),
      routeKey: '$default',
      stage: '$default',
      time: now.toUTCString(),
      timeEpoch: now.getTime(),
    },
    ...(body.length > 0 ? { body: body.toString('utf8') } : {}),
    isBase64Encoded: false,
  };
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Whether the request carries the admin token (in place of IAM on AWS). */
function isAdmin(deps: Pick<HttpServerDeps, 'adminToken'>, request: ApiRequest): boolean {
  const token = bearerToken(request.headers.authorization);
  return token !== undefined && sameSecret(token, deps.adminToken);
}

function unauthorized(detail: string, instance: string): ApiResponse {
  const response = toProblemResponse(new UnauthorizedError(detail), instance);
  return { ...response, headers: { ...response.headers, 'www-authenticate': 'Bearer' } };
}

/** Authorises the request as its deployed route would be, or returns the 401 to send. */
async function authorize(deps: HttpServerDeps, request: ApiRequest): Promise<ApiResponse | undefined> {
  const match = matchRoute(request.requestContext.http.method, request.rawPath);
  if (match.kind !== 'found' || match.route.auth === 'public') return undefined; // the handler answers
  const token = bearerToken(request.headers.authorization);
  if (match.route.auth === 'admin') {
    if (!isAdmin(deps, request)) {
      return unauthorized(
        'this route needs the admin token: Authorization: Bearer <admin token>',
        request.rawPath,
      );
    }
    request.requestContext.authorizer = { iam: { userArn: 'arn:aws:iam::000000000000:user/local-admin' } };
    return undefined;
  }
  const authEvent: APIGatewayRequestAuthorizerEventV2 = {
    version: '2.0',
    type: 'REQUEST',
    routeArn: `arn:aws:execute-api:local:000000000000:local/$default/${match.route.method}${match.route.path}`,
    identitySource: token ? [request.headers.authorization ?? ''] : [],
    routeKey: `${match.route.method} ${match.route.path}`,
    rawPath: request.rawPath,
    rawQueryString: request.rawQueryString,
    cookies: [],
    headers: request.headers as Record<string, string>,
    queryStringParameters: request.queryStringParameters as Record<string, string>,
    requestContext: request.requestContext,
    pathParameters: match.params,
    stageVariables: {},
  };
  const result = await deps.authorizer(authEvent, lambdaContext('authorizer'));
  if (!result.isAuthorized) {
    return unauthorized('a valid API key is required: Authorization: Bearer <apiKey>', request.rawPath);
  }
  request.requestContext.authorizer = { lambda: { ...result.context } };
  return undefined;
}

/** Sends `response`; one the handler did not make gets the request's id here. */
function send(res: ServerResponse, response: ApiResponse, requestId: string): void {
  const headers: Record<string, string> = { [REQUEST_ID_HEADER]: requestId };
  for (const [name, value] of Object.entries(response.headers ?? {})) headers[name] = String(value);
  res.writeHead(response.statusCode ?? 200, headers);
  res.end(response.body ?? '');
}

async function handle(deps: HttpServerDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  let body: Buffer;
  try {
    body = await readBody(req);
  } catch (error) {
    if (!(error instanceof BodyTooLargeError)) throw error;
    res.setHeader('connection', 'close');
    const tooLarge = new PayloadTooLargeError(`request bodies are limited to ${MAX_REQUEST_BYTES} bytes`);
    send(res, toProblemResponse(tooLarge, req.url ?? '/'), randomUUID());
    return;
  }
  const request = toApiRequest(req, body);
  if (
    deps.metrics !== undefined &&
    request.rawPath === '/metrics' &&
    request.requestContext.http.method === 'GET'
  ) {
    if (!isAdmin(deps, request)) {
      send(
        res,
        unauthorized('metrics need the admin token: Authorization: Bearer <admin token>', '/metrics'),
        request.requestContext.requestId,
      );
      return;
    }
    const { contentType, body: text } = await deps.metrics.scrape();
    send(
      res,
      { statusCode: 200, headers: { 'content-type': contentType }, body: text },
      request.requestContext.requestId,
    );
    return;
  }
  const page = opsPageResponse(request.requestContext.http.method, request.rawPath);
  if (page !== undefined) {
    send(res, page, request.requestContext.requestId);
    return;
  }
  const denied = await authorize(deps, request);
  send(res, denied ?? (await deps.api(request, lambdaContext('api'))), request.requestContext.requestId);
}

export function createHttpServer(deps: HttpServerDeps): Server {
  return createServer((req, res) => {
    handle(deps, req, res).catch((error: unknown) => {
      const requestId = randomUUID();
      deps.log(`request ${requestId} failed`, error);
      if (!res.headersSent) {
        // Already logged above: the mapping's own log would say it twice.
        send(
          res,
          toProblemResponse(error, req.url ?? '/', undefined, () => {}),
          requestId,
        );
      } else {
        res.destroy();
      }
    });
  });
}
