/**
 * The HTTP API: API Gateway v2 (payload 2.0) events in, JSON or problem+json out. Validation
 * with zod happens here, at the edge; each route then calls one use case.
 */
import middy, { type MiddlewareObj, type Request } from '@middy/core';
import type {
  APIGatewayEventRequestContextV2,
  APIGatewayProxyEventV2WithRequestContext,
  APIGatewayProxyStructuredResultV2,
} from 'aws-lambda';
import type * as z from 'zod';
import { listEventDeliveries, listSubscriptionDeliveries } from '../core/attempt-log.ts';
import { NotFoundError, PayloadTooLargeError, UnauthorizedError, ValidationError } from '../core/errors.ts';
import {
  type BatchEntry,
  type BatchResult,
  getEvent,
  listEvents,
  publishEvent,
  publishEvents,
  toEventView,
} from '../core/events.ts';
import { admitRequest, type Caller, type RequestLimits } from '../core/limits.ts';
import type { DeliveryMessage } from '../core/model.ts';
import { createApiKey, createPartner, listApiKeys, revokeApiKey } from '../core/partners.ts';
import type {
  AddressResolver,
  Clock,
  DeliveryStore,
  EventLog,
  PartnerStore,
  QueueSender,
  RateLimiter,
  SubscriptionStore,
} from '../core/ports.ts';
import { redeliverEvent, replaySubscription, sendTestEvent } from '../core/redelivery.ts';
import {
  createSubscription,
  deleteSubscription,
  getSubscription,
  listSubscriptions,
  rotateSecret,
  toSubscriptionView,
  updateSubscription,
} from '../core/subscriptions.ts';
import { MethodNotAllowedError, RouteNotFoundError, UnsupportedMediaTypeError } from './errors.ts';
import { MAX_JSON_DEPTH, nestsDeeperThan } from './json-depth.ts';
import { openApiJson } from './openapi.ts';
import { OPERATIONS } from './operations.ts';
import { type Problem, problemJson, toProblem, validationErrorFrom } from './problem.ts';
import { matchRoute, type Operation, type RouteAuth } from './routes.ts';

/** What the authorizers leave in the request context: the partner's id, or an IAM caller. */
export interface ApiAuthorizerContext {
  lambda?: { partnerId?: string; keyId?: string };
  iam?: { userArn?: string };
}

export type ApiRequestContext = APIGatewayEventRequestContextV2 & { authorizer?: ApiAuthorizerContext };
export type ApiRequest = APIGatewayProxyEventV2WithRequestContext<ApiRequestContext>;
export type ApiResponse = APIGatewayProxyStructuredResultV2;

export interface ApiDeps {
  events: EventLog;
  partners: PartnerStore;
  subscriptions: SubscriptionStore;
  deliveries: DeliveryStore;
  /** Where redeliveries, replays and test events are queued for the dispatcher. */
  deliveryQueue: QueueSender<DeliveryMessage>;
  clock: Clock;
  resolver: AddressResolver;
  allowPrivateTargets: boolean;
  /** Counts each caller's requests against `limits`. */
  limiter: RateLimiter;
  limits: RequestLimits;
}

type Log = (message: string, error: unknown) => void;

/**
 * The largest request body, in both runtimes (the local server refuses larger ones before they
 * reach the handler; on AWS, API Gateway would pass up to API_GATEWAY.maxPayloadBytes, 10 MB).
 */
export const MAX_REQUEST_BYTES = 1024 * 1024;

function parse<T extends z.ZodType>(schema: T, value: unknown, where: string): z.infer<T> {
  const result = schema.safeParse(value);
  if (!result.success) throw validationErrorFrom(result.error, where);
  return result.data;
}

/** One entry of a batch, checked as a single publish is, its fields named `body.events[i].…`. */
function batchEntry(entry: unknown, index: number): BatchEntry {
  const result = OPERATIONS.publishEvent.body.safeParse(entry);
  return result.success ? result.data : validationErrorFrom(result.error, `body.events[${index}]`);
}

/** The JSON body, or a clear 400/413/415 when it is not JSON or too large. */
function jsonBody(event: ApiRequest): unknown {
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
function optionalJsonBody(event: ApiRequest): unknown {
  return event.body === undefined || event.body === '' ? {} : jsonBody(event);
}

/** A path id of the wrong shape names nothing that exists: 404, as for an unknown id. */
function pathId<T extends z.ZodType<string>>(schema: T, value: string | undefined, what: string): string {
  const result = schema.safeParse(value);
  if (!result.success) throw new NotFoundError(`${what} ${value ?? ''} not found`);
  return result.data;
}

function json(statusCode: number, body: unknown): ApiResponse {
  return { statusCode, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
}

function partnerOf(event: ApiRequest): string {
  const partnerId = event.requestContext.authorizer?.lambda?.partnerId;
  if (!partnerId) throw new UnauthorizedError('an API key is required: Authorization: Bearer <apiKey>');
  return partnerId;
}

function requireAdmin(event: ApiRequest): void {
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

type RouteHandler = (
  deps: ApiDeps,
  event: ApiRequest,
  params: Record<string, string>,
  log: Log | undefined,
) => Promise<ApiResponse>;

/** An entry of a batch's answer: as a single publish answers, or the problem it would answer. */
function batchResultView(
  result: BatchResult,
  index: number,
  instance: string,
  log: Log | undefined,
): { id: string; created: boolean } | { error: Problem } {
  if ('error' in result)
    return { error: toProblem(result.error, instance, `body.events[${index}]`, log).problem };
  return { id: result.event.id, created: result.created };
}

const handlers: Record<Operation, RouteHandler> = {
  async getOpenApi() {
    return { statusCode: 200, headers: { 'content-type': 'application/json' }, body: openApiJson() };
  },

  async createPartner(deps, event) {
    requireAdmin(event);
    const body = parse(OPERATIONS.createPartner.body, jsonBody(event), 'body');
    const { partner, apiKey, key } = await createPartner(deps, body);
    return json(201, { ...partner, apiKey, apiKeyId: key.id });
  },

  async issuePartnerApiKey(deps, event, params) {
    requireAdmin(event);
    const partnerId = pathId(OPERATIONS.issuePartnerApiKey.params.id, params.id, 'partner');
    const body = parse(OPERATIONS.issuePartnerApiKey.body, optionalJsonBody(event), 'body');
    const { key, apiKey } = await createApiKey(deps, partnerId, body);
    return json(201, { ...key, apiKey });
  },

  async listPartnerApiKeys(deps, event, params) {
    requireAdmin(event);
    const partnerId = pathId(OPERATIONS.listPartnerApiKeys.params.id, params.id, 'partner');
    const query = parse(OPERATIONS.listPartnerApiKeys.query, event.queryStringParameters ?? {}, 'query');
    const page = await listApiKeys(deps, partnerId, query);
    return json(200, { data: page.items, next: page.next });
  },

  async revokePartnerApiKey(deps, event, params) {
    requireAdmin(event);
    const partnerId = pathId(OPERATIONS.revokePartnerApiKey.params.id, params.id, 'partner');
    const keyId = pathId(OPERATIONS.revokePartnerApiKey.params.keyId, params.keyId, 'API key');
    await revokeApiKey(deps, partnerId, keyId, { keepLast: false });
    return { statusCode: 204 };
  },

  async createApiKey(deps, event) {
    const partnerId = partnerOf(event);
    const body = parse(OPERATIONS.createApiKey.body, optionalJsonBody(event), 'body');
    const { key, apiKey } = await createApiKey(deps, partnerId, body);
    return json(201, { ...key, apiKey });
  },

  async listApiKeys(deps, event) {
    const partnerId = partnerOf(event);
    const query = parse(OPERATIONS.listApiKeys.query, event.queryStringParameters ?? {}, 'query');
    const page = await listApiKeys(deps, partnerId, query);
    return json(200, { data: page.items, next: page.next });
  },

  async revokeApiKey(deps, event, params) {
    const partnerId = partnerOf(event);
    const keyId = pathId(OPERATIONS.revokeApiKey.params.id, params.id, 'API key');
    await revokeApiKey(deps, partnerId, keyId, { keepLast: true });
    return { statusCode: 204 };
  },

  async publishEvent(deps, event) {
    requireAdmin(event);
    const body = parse(OPERATIONS.publishEvent.body, jsonBody(event), 'body');
    const { event: stored, created } = await publishEvent(deps, body);
    return json(created ? 202 : 200, { id: stored.id, created });
  },

  async publishEventBatch(deps, event, _params, log) {
    requireAdmin(event);
    const body = parse(OPERATIONS.publishEventBatch.body, jsonBody(event), 'body');
    const results = await publishEvents(deps, body.events.map(batchEntry));
    return json(200, { results: results.map((r, i) => batchResultView(r, i, event.rawPath, log)) });
  },

  async listEvents(deps, event) {
    const partnerId = partnerOf(event);
    const query = parse(OPERATIONS.listEvents.query, event.queryStringParameters ?? {}, 'query');
    return json(200, await listEvents(deps, partnerId, query));
  },

  async getEvent(deps, event, params) {
    const partnerId = partnerOf(event);
    const id = pathId(OPERATIONS.getEvent.params.id, params.id, 'event');
    return json(200, toEventView(await getEvent(deps, partnerId, id)));
  },

  async createSubscription(deps, event) {
    const partnerId = partnerOf(event);
    const body = parse(OPERATIONS.createSubscription.body, jsonBody(event), 'body');
    const { subscription, secret } = await createSubscription(deps, partnerId, body);
    return json(201, { ...toSubscriptionView(subscription), secret });
  },

  async listSubscriptions(deps, event) {
    const partnerId = partnerOf(event);
    const query = parse(OPERATIONS.listSubscriptions.query, event.queryStringParameters ?? {}, 'query');
    const page = await listSubscriptions(deps, partnerId, query);
    return json(200, { data: page.items.map(toSubscriptionView), next: page.next });
  },

  async getSubscription(deps, event, params) {
    const partnerId = partnerOf(event);
    const id = pathId(OPERATIONS.getSubscription.params.id, params.id, 'subscription');
    return json(200, toSubscriptionView(await getSubscription(deps, partnerId, id)));
  },

  async updateSubscription(deps, event, params) {
    const partnerId = partnerOf(event);
    const id = pathId(OPERATIONS.updateSubscription.params.id, params.id, 'subscription');
    const body = parse(OPERATIONS.updateSubscription.body, jsonBody(event), 'body');
    return json(200, toSubscriptionView(await updateSubscription(deps, partnerId, id, body)));
  },

  async deleteSubscription(deps, event, params) {
    const partnerId = partnerOf(event);
    await deleteSubscription(
      deps,
      partnerId,
      pathId(OPERATIONS.deleteSubscription.params.id, params.id, 'subscription'),
    );
    return { statusCode: 204 };
  },

  async rotateSecret(deps, event, params) {
    const partnerId = partnerOf(event);
    const id = pathId(OPERATIONS.rotateSecret.params.id, params.id, 'subscription');
    const { subscription, secret } = await rotateSecret(deps, partnerId, id);
    return json(200, { ...toSubscriptionView(subscription), secret });
  },

  async listDeliveries(deps, event, params) {
    const partnerId = partnerOf(event);
    const id = pathId(OPERATIONS.listDeliveries.params.id, params.id, 'subscription');
    const query = parse(OPERATIONS.listDeliveries.query, event.queryStringParameters ?? {}, 'query');
    const page = await listSubscriptionDeliveries(deps, partnerId, id, query);
    return json(200, { data: page.items, next: page.next });
  },

  async listEventDeliveries(deps, event, params) {
    const partnerId = partnerOf(event);
    const id = pathId(OPERATIONS.listEventDeliveries.params.id, params.id, 'event');
    const query = parse(OPERATIONS.listEventDeliveries.query, event.queryStringParameters ?? {}, 'query');
    const page = await listEventDeliveries(deps, partnerId, id, query);
    return json(200, { data: page.items, next: page.next });
  },

  async redeliverEvent(deps, event, params) {
    const partnerId = partnerOf(event);
    const id = pathId(OPERATIONS.redeliverEvent.params.id, params.id, 'event');
    const body = parse(OPERATIONS.redeliverEvent.body, optionalJsonBody(event), 'body');
    const deliveries = await redeliverEvent(deps, partnerId, id, body.subscriptionId);
    return json(202, { data: deliveries.map((d) => ({ id: d.id, subscriptionId: d.subscriptionId })) });
  },

  async replaySubscription(deps, event, params) {
    const partnerId = partnerOf(event);
    const id = pathId(OPERATIONS.replaySubscription.params.id, params.id, 'subscription');
    const body = parse(OPERATIONS.replaySubscription.body, jsonBody(event), 'body');
    return json(202, await replaySubscription(deps, partnerId, id, body));
  },

  async sendTestEvent(deps, event, params) {
    const partnerId = partnerOf(event);
    const id = pathId(OPERATIONS.sendTestEvent.params.id, params.id, 'subscription');
    const { event: test, delivery } = await sendTestEvent(deps, partnerId, id);
    return json(202, { eventId: test.id, deliveryId: delivery.id });
  },
};

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

/** Builds the API handler around its ports; the Lambda entry and the local server share it. */
export function createApiHandler(deps: ApiDeps, log?: Log) {
  return middy<ApiRequest, ApiResponse>()
    .use(requestIdHeader())
    .use(problemJson(log))
    .handler(async (event) => {
      const method = event.requestContext.http.method;
      const match = matchRoute(method, event.rawPath);
      if (match.kind === 'not-found') throw new RouteNotFoundError(`no route for ${event.rawPath}`);
      if (match.kind === 'method-not-allowed')
        throw new MethodNotAllowedError(method, event.rawPath, match.allowed);
      const caller = callerOf(event, match.route.auth);
      if (caller !== undefined) await admitRequest(deps, caller);
      return handlers[match.route.operation](deps, event, match.params, log);
    });
}

export type ApiHandler = ReturnType<typeof createApiHandler>;
