/**
 * The HTTP API: every route of the routes table, each calling one use case with what the
 * request carried, validated with zod here at the edge (the plumbing is in http.ts).
 */
import { listEventDeliveries, listSubscriptionDeliveries } from '../core/attempt-log.ts';
import { ackConsumer, deleteConsumer, getConsumer, listConsumers, putConsumer } from '../core/consumers.ts';
import { NotFoundError } from '../core/errors.ts';
import {
  type BatchEntry,
  type BatchResult,
  getEvent,
  publishEvent,
  publishEvents,
  toEventView,
} from '../core/events.ts';
import type { DeliveryMessage } from '../core/model.ts';
import { createApiKey, createPartner, type KeyManager, listApiKeys, revokeApiKey } from '../core/partners.ts';
import type {
  AddressResolver,
  DeliveryStore,
  PartnerStore,
  QueueSender,
  SubscriptionStore,
  Transformer,
} from '../core/ports.ts';
import { redeliverEvent, replaySubscription, sendTestEvent } from '../core/redelivery.ts';
import {
  connectionSubscriptionOf,
  createSubscription,
  deleteSubscription,
  getSubscription,
  listSubscriptions,
  previewCallback,
  rotateSecret,
  toSubscriptionView,
  updateSubscription,
} from '../core/subscriptions.ts';
import {
  type ApiRequest,
  json,
  jsonBody,
  type Log,
  optionalJsonBody,
  parse,
  partnerOf,
  pathId,
  type RouteHandler,
  requireAdmin,
  routedHandler,
} from './http.ts';
import { openApiJson } from './openapi.ts';
import { OPERATIONS } from './operations.ts';
import { OPS_HANDLERS, type OpsServices } from './ops.ts';
import { POLL_HANDLERS, type PollDeps } from './polling.ts';
import { type Problem, toProblem, validationErrorFrom } from './problem.ts';
import type { Operation } from './routes.ts';

export {
  type ApiRequest,
  type ApiResponse,
  callerOf,
  MAX_REQUEST_BYTES,
  REQUEST_ID_HEADER,
} from './http.ts';

/** Where a partner opens a connection, and its timings. */
export interface ConnectInfoSource {
  /** The WebSocket URL, for the request that asks (its host, locally). */
  url(request: ApiRequest): string;
  heartbeatSeconds: number;
  ackTimeoutSeconds: number;
}

/** Everything the polling routes need (the log, consumers, clock, limits), and the rest. */
export interface ApiDeps extends PollDeps {
  partners: PartnerStore;
  subscriptions: SubscriptionStore;
  deliveries: DeliveryStore;
  /** Where redeliveries, replays and test events are queued for the dispatcher. */
  deliveryQueue: QueueSender<DeliveryMessage>;
  resolver: AddressResolver;
  allowPrivateTargets: boolean;
  /** The fixed addresses callbacks leave from, for partners to allowlist; empty: none promised. */
  egressIps: readonly string[];
  /**
   * Where partners open connections (docs/connection-protocol.md); absent: this deployment
   * serves none, and refuses connection subscriptions.
   */
  connect?: ConnectInfoSource;
  /** Checks transformations as they are set, and evaluates previews; absent: none is accepted. */
  transformer?: Transformer;
  /**
   * The ops routes' services. The local runtime serves those routes here; on AWS the ops
   * function does (functions/api/ops.ts), and without them this handler answers them 404.
   */
  ops?: OpsServices;
}

const ADMIN: KeyManager = { kind: 'admin' };

/** The partner managing its keys, with the key the authorizer let it in by. */
function callingKey(event: ApiRequest): KeyManager {
  return { kind: 'partner', keyId: event.requestContext.authorizer?.lambda?.keyId };
}

/** One entry of a batch, checked as a single publish is, its fields named `body.events[i].…`. */
function batchEntry(entry: unknown, index: number): BatchEntry {
  const result = OPERATIONS.publishEvent.body.safeParse(entry);
  return result.success ? result.data : validationErrorFrom(result.error, `body.events[${index}]`);
}

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

const handlers: Record<Exclude<Operation, keyof typeof OPS_HANDLERS>, RouteHandler<ApiDeps>> = {
  ...POLL_HANDLERS,

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
    const { key, apiKey } = await createApiKey(deps, partnerId, body, ADMIN);
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
    await revokeApiKey(deps, partnerId, keyId, ADMIN);
    return { statusCode: 204 };
  },

  async createApiKey(deps, event) {
    const partnerId = partnerOf(event);
    const body = parse(OPERATIONS.createApiKey.body, optionalJsonBody(event), 'body');
    const { key, apiKey } = await createApiKey(deps, partnerId, body, callingKey(event));
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
    await revokeApiKey(deps, partnerId, keyId, callingKey(event));
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

  async listConsumers(deps, event) {
    const partnerId = partnerOf(event);
    const query = parse(OPERATIONS.listConsumers.query, event.queryStringParameters ?? {}, 'query');
    const page = await listConsumers(deps, partnerId, query);
    return json(200, { data: page.items, next: page.next });
  },

  async putConsumer(deps, event, params) {
    const partnerId = partnerOf(event);
    // This route names a consumer to create: a name of the wrong shape is a 400, not a 404.
    const name = parse(OPERATIONS.putConsumer.params.name, params.name, 'path.name');
    const body = parse(OPERATIONS.putConsumer.body, optionalJsonBody(event), 'body');
    const start =
      body.start === undefined || body.start === 'earliest' || body.start === 'latest'
        ? body.start
        : { after: body.start };
    const { consumer, created } = await putConsumer(deps, partnerId, name, { types: body.types, start });
    return json(created ? 201 : 200, consumer);
  },

  async getConsumer(deps, event, params) {
    const partnerId = partnerOf(event);
    const name = pathId(OPERATIONS.getConsumer.params.name, params.name, 'consumer');
    return json(200, await getConsumer(deps, partnerId, name));
  },

  async deleteConsumer(deps, event, params) {
    const partnerId = partnerOf(event);
    await deleteConsumer(
      deps,
      partnerId,
      pathId(OPERATIONS.deleteConsumer.params.name, params.name, 'consumer'),
    );
    return { statusCode: 204 };
  },

  async ackConsumer(deps, event, params) {
    const partnerId = partnerOf(event);
    const name = pathId(OPERATIONS.ackConsumer.params.name, params.name, 'consumer');
    const body = parse(OPERATIONS.ackConsumer.body, jsonBody(event), 'body');
    return json(200, await ackConsumer(deps, partnerId, name, body.eventId));
  },

  async getEvent(deps, event, params) {
    const partnerId = partnerOf(event);
    const id = pathId(OPERATIONS.getEvent.params.id, params.id, 'event');
    return json(200, toEventView(await getEvent(deps, partnerId, id)));
  },

  async createSubscription(deps, event) {
    const partnerId = partnerOf(event);
    const body = parse(OPERATIONS.createSubscription.body, jsonBody(event), 'body');
    const { subscription, secret } = await createSubscription(
      { ...deps, connectionsEnabled: deps.connect !== undefined },
      partnerId,
      body,
    );
    // An ed25519 subscription's answer has its public key instead: its signing key is ours.
    return json(201, { ...toSubscriptionView(subscription), ...(secret === undefined ? {} : { secret }) });
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
    return json(200, { ...toSubscriptionView(subscription), ...(secret === undefined ? {} : { secret }) });
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

  async getConnectInfo(deps, event) {
    const partnerId = partnerOf(event);
    if (deps.connect === undefined) throw new NotFoundError('this deployment serves no connections');
    const { subscription } = parse(
      OPERATIONS.getConnectInfo.query,
      event.queryStringParameters ?? {},
      'query',
    );
    // As the upgrade would refuse it: a client learns here what a WebSocket cannot tell it.
    if (subscription !== undefined) await connectionSubscriptionOf(deps, partnerId, subscription);
    return json(200, {
      url: deps.connect.url(event),
      heartbeatSeconds: deps.connect.heartbeatSeconds,
      ackTimeoutSeconds: deps.connect.ackTimeoutSeconds,
    });
  },

  async listEgressIps(deps, event) {
    partnerOf(event);
    return json(200, { fixed: deps.egressIps.length > 0, addresses: deps.egressIps });
  },

  async previewTransformation(deps, event, params) {
    const partnerId = partnerOf(event);
    const id = pathId(OPERATIONS.previewTransformation.params.id, params.id, 'subscription');
    const body = parse(OPERATIONS.previewTransformation.body, jsonBody(event), 'body');
    return json(200, await previewCallback(deps, partnerId, id, body));
  },
  async sendTestEvent(deps, event, params) {
    const partnerId = partnerOf(event);
    const id = pathId(OPERATIONS.sendTestEvent.params.id, params.id, 'subscription');
    const { event: test, delivery } = await sendTestEvent(deps, partnerId, id);
    return json(202, { eventId: test.id, deliveryId: delivery.id });
  },
};

/** Builds the API handler around its ports; the Lambda entry and the local server share it. */
export function createApiHandler(deps: ApiDeps, log?: Log) {
  const { ops } = deps;
  if (ops === undefined) return routedHandler(deps, handlers, log);
  return routedHandler({ ...deps, ops }, { ...handlers, ...OPS_HANDLERS }, log);
}

export type ApiHandler = ReturnType<typeof createApiHandler>;
