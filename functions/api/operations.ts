/**
 * What each operation of the routes table takes and answers: its query and body schemas (the
 * handler validates with these very schemas) and its responses. The OpenAPI document is made
 * from this and the routes table. A route without an entry here is a type error, the handler
 * parses each request with its operation's schemas from here, and the end-to-end tests check
 * every answer the API gives against the document.
 */
import type * as z from 'zod';
import { ApiKeyId, ConsumerName, EventId, PartnerId, SubscriptionId } from '../core/model.ts';
import type { Operation } from './routes.ts';
import * as s from './schemas.ts';

export interface SuccessResponse {
  readonly status: number;
  readonly description: string;
  /** Absent: no body (204). */
  readonly schema?: z.ZodType;
}

export interface OperationSpec {
  readonly summary: string;
  readonly description?: string;
  readonly tag:
    | 'Events'
    | 'Consumers'
    | 'Subscriptions'
    | 'Deliveries'
    | 'API keys'
    | 'Partners'
    | 'Publishing'
    | 'Ops'
    | 'API';
  /** The path's parameters: a value of the wrong shape names nothing, so it is answered 404. */
  readonly params?: Readonly<Record<string, z.ZodType<string>>>;
  readonly query?: z.ZodObject;
  readonly body?: z.ZodType;
  /** The body may be left out altogether. */
  readonly bodyOptional?: boolean;
  readonly responses: readonly SuccessResponse[];
  /**
   * Error statuses this operation answers besides those every operation of its kind does
   * (see errorStatuses in openapi.ts).
   */
  readonly errors?: readonly number[];
}

export const OPERATIONS = {
  getOpenApi: {
    summary: 'This API, as an OpenAPI 3.1 document',
    tag: 'API',
    responses: [{ status: 200, description: 'The document.', schema: s.OpenApiDocument }],
  },
  createPartner: {
    summary: 'Register a partner',
    description: 'Answers the partner with its first API key, which is shown this once.',
    tag: 'Partners',
    body: s.CreatePartnerBody,
    responses: [{ status: 201, description: 'The partner, with its API key.', schema: s.CreatedPartner }],
  },
  issuePartnerApiKey: {
    summary: 'Issue an API key to a partner',
    description: 'For a partner that has lost its keys, say. The key is shown this once.',
    tag: 'Partners',
    params: { id: PartnerId },
    body: s.CreateApiKeyBody,
    bodyOptional: true,
    responses: [{ status: 201, description: 'The key.', schema: s.CreatedApiKey }],
    errors: [409],
  },
  listPartnerApiKeys: {
    summary: "A partner's API keys",
    tag: 'Partners',
    params: { id: PartnerId },
    query: s.PageQuery,
    responses: [{ status: 200, description: 'A page of keys, oldest first.', schema: s.ApiKeyPage }],
  },
  revokePartnerApiKey: {
    summary: "Revoke a partner's API key",
    description: 'Any of its keys, its last one included.',
    tag: 'Partners',
    params: { id: PartnerId, keyId: ApiKeyId },
    responses: [{ status: 204, description: 'Revoked.' }],
  },
  createApiKey: {
    summary: 'Create another API key',
    description:
      'To rotate a key without downtime: create a new one, move your services to it, then revoke the ' +
      'old one. The key is shown this once.',
    tag: 'API keys',
    body: s.CreateApiKeyBody,
    bodyOptional: true,
    responses: [{ status: 201, description: 'The key.', schema: s.CreatedApiKey }],
    errors: [409],
  },
  listApiKeys: {
    summary: 'Your API keys',
    description: 'Their prefixes, names, and when each was created and last used: never the keys.',
    tag: 'API keys',
    query: s.PageQuery,
    responses: [{ status: 200, description: 'A page of keys, oldest first.', schema: s.ApiKeyPage }],
  },
  revokeApiKey: {
    summary: 'Revoke one of your API keys',
    description:
      'It stops working at once locally, and on AWS within the authorizer cache time (60 s by default). ' +
      'Your last key cannot be revoked (409): create another first.',
    tag: 'API keys',
    params: { id: ApiKeyId },
    responses: [{ status: 204, description: 'Revoked.' }],
    errors: [409],
  },
  publishEvent: {
    summary: "Publish an event to a partner's log",
    description:
      'The event is appended to the log the partner polls, and delivered to its subscriptions. ' +
      'With an idempotency key already used, the first event is answered (200) instead.',
    tag: 'Publishing',
    body: s.PublishBody,
    responses: [
      { status: 202, description: 'Published.', schema: s.Published },
      { status: 200, description: 'Already published with this idempotency key.', schema: s.Published },
    ],
    errors: [404, 409],
  },
  publishEventBatch: {
    summary: 'Publish up to 100 events in one request',
    description: 'Each event succeeds or fails on its own; the answer holds one result per event, in order.',
    tag: 'Publishing',
    body: s.PublishBatchBody,
    responses: [{ status: 200, description: 'One result per event.', schema: s.BatchResults }],
  },
  listEvents: {
    summary: 'Poll your events',
    description:
      'Events in the order they were committed, after the cursor. Keep the `next` of each page and pass ' +
      'it as `after`: no event is skipped or repeated. With `wait`, a long poll: an empty answer waits ' +
      'for the next event, up to that many seconds.',
    tag: 'Events',
    query: s.ListEventsQuery,
    responses: [{ status: 200, description: 'A page of events.', schema: s.EventPage }],
  },
  listConsumers: {
    summary: 'Your consumers, each with its lag',
    tag: 'Consumers',
    query: s.PageQuery,
    responses: [{ status: 200, description: 'A page of consumers, by name.', schema: s.ConsumerPage }],
  },
  putConsumer: {
    summary: 'Create a consumer, or change one (its types, or where it is: a seek)',
    description:
      'A consumer is a cursor the dispatcher keeps for one of your readers: read its next page, handle it, ' +
      'acknowledge its last event. A page not acknowledged comes again.',
    tag: 'Consumers',
    params: { name: ConsumerName },
    body: s.PutConsumerBody,
    bodyOptional: true,
    responses: [
      { status: 201, description: 'Created.', schema: s.ConsumerView },
      { status: 200, description: 'Changed.', schema: s.ConsumerView },
    ],
    errors: [409],
  },
  getConsumer: {
    summary: 'One of your consumers, with its lag',
    tag: 'Consumers',
    params: { name: ConsumerName },
    responses: [{ status: 200, description: 'The consumer.', schema: s.ConsumerView }],
  },
  deleteConsumer: {
    summary: 'Delete a consumer',
    tag: 'Consumers',
    params: { name: ConsumerName },
    responses: [{ status: 204, description: 'Deleted.' }],
  },
  readConsumer: {
    summary: "The page after a consumer's position",
    description:
      'Of its types, in the order they were committed. It moves nothing: acknowledge the page (its `next`) ' +
      'once handled to move on. With `wait`, a long poll. A consumer left behind until events after its ' +
      'position expired unread is a 410: move it with PUT to go on.',
    tag: 'Consumers',
    params: { name: ConsumerName },
    query: s.ConsumerEventsQuery,
    responses: [{ status: 200, description: 'A page of events.', schema: s.EventPage }],
    errors: [410],
  },
  ackConsumer: {
    summary: 'Acknowledge a page: move the consumer to its `next`',
    description:
      'The next read starts after it; `next` also moves past the events the consumer’s types leave out. ' +
      'An event of the page does too; acknowledging an earlier one moves the consumer back.',
    tag: 'Consumers',
    params: { name: ConsumerName },
    body: s.AckBody,
    responses: [{ status: 200, description: 'The consumer, moved.', schema: s.ConsumerView }],
  },
  getEvent: {
    summary: 'One of your events',
    tag: 'Events',
    params: { id: EventId },
    responses: [{ status: 200, description: 'The event.', schema: s.EventView }],
  },
  listEventDeliveries: {
    summary: "An event's deliveries, with their attempts",
    tag: 'Deliveries',
    params: { id: EventId },
    query: s.PageQuery,
    responses: [{ status: 200, description: 'A page of deliveries, newest first.', schema: s.DeliveryPage }],
  },
  redeliverEvent: {
    summary: 'Deliver an event again',
    description: 'To every active subscription whose filter takes it, or to one.',
    tag: 'Deliveries',
    params: { id: EventId },
    body: s.RedeliverBody,
    bodyOptional: true,
    responses: [{ status: 202, description: 'Queued.', schema: s.Redelivered }],
    errors: [409],
  },
  createSubscription: {
    summary: 'Subscribe a callback URL',
    description:
      'Answers the subscription with its signing secret, which is shown this once; an `ed25519` subscription has none, and its answer carries its `publicKey`.',
    tag: 'Subscriptions',
    body: s.CreateSubscriptionBody,
    responses: [{ status: 201, description: 'Created.', schema: s.SubscriptionWithSecret }],
    errors: [409],
  },
  listSubscriptions: {
    summary: 'Your subscriptions',
    tag: 'Subscriptions',
    query: s.PageQuery,
    responses: [{ status: 200, description: 'A page of subscriptions.', schema: s.SubscriptionPage }],
  },
  getSubscription: {
    summary: 'One of your subscriptions',
    tag: 'Subscriptions',
    params: { id: SubscriptionId },
    responses: [{ status: 200, description: 'The subscription.', schema: s.SubscriptionView }],
  },
  updateSubscription: {
    summary: 'Change a subscription',
    description: 'Its URL, event types, description, or status (`active` to enable it again).',
    tag: 'Subscriptions',
    params: { id: SubscriptionId },
    body: s.UpdateSubscriptionBody,
    responses: [{ status: 200, description: 'The subscription as changed.', schema: s.SubscriptionView }],
    errors: [409],
  },
  deleteSubscription: {
    summary: 'Delete a subscription',
    description: 'Its deliveries not yet made are skipped.',
    tag: 'Subscriptions',
    params: { id: SubscriptionId },
    responses: [{ status: 204, description: 'Deleted.' }],
  },
  rotateSecret: {
    summary: "Rotate a subscription's signing secret",
    description:
      'Callbacks carry signatures of both secrets (of an `ed25519` subscription, both keys: the answer has the new `publicKey`) for 24 hours, then of the new one only.',
    tag: 'Subscriptions',
    params: { id: SubscriptionId },
    responses: [
      {
        status: 200,
        description: 'The subscription, with its new secret.',
        schema: s.SubscriptionWithSecret,
      },
    ],
    errors: [409],
  },
  listDeliveries: {
    summary: "A subscription's deliveries, with their attempts",
    tag: 'Deliveries',
    params: { id: SubscriptionId },
    query: s.PageQuery,
    responses: [{ status: 200, description: 'A page of deliveries, newest first.', schema: s.DeliveryPage }],
  },
  replaySubscription: {
    summary: 'Deliver a period of events again to a subscription',
    tag: 'Deliveries',
    params: { id: SubscriptionId },
    body: s.ReplayBody,
    responses: [{ status: 202, description: 'Queued.', schema: s.ReplayQueued }],
    errors: [409],
  },
  previewTransformation: {
    summary: 'What a receiver of the subscription would get for an event',
    description:
      'The callback body for the event, after the subscription’s transformation, or the one given (to try it before setting it). Nothing is sent or stored.',
    tag: 'Subscriptions',
    params: { id: SubscriptionId },
    body: s.TransformPreviewBody,
    responses: [{ status: 200, description: 'The body a receiver would get.', schema: s.TransformPreview }],
    errors: [422],
  },
  sendTestEvent: {
    summary: 'Send a test event (`webhook.test`) to a subscription',
    tag: 'Deliveries',
    params: { id: SubscriptionId },
    responses: [{ status: 202, description: 'Queued.', schema: s.TestSent }],
    errors: [409],
  },
  getConnectInfo: {
    summary: 'Where to open a connection for connection subscriptions',
    description:
      'The WebSocket URL and its timings (docs/connection-protocol.md). 404 where the deployment serves no connections.',
    tag: 'Subscriptions',
    query: s.ConnectInfoQuery,
    responses: [{ status: 200, description: 'Where and how to connect.', schema: s.ConnectInfo }],
    errors: [404],
  },
  listEgressIps: {
    summary: 'The addresses callbacks come from',
    description:
      'For a firewall that lets in only known addresses: with `fixed`, every callback leaves from one of `addresses`. Without, callbacks come from the cloud provider’s shared ranges and no address is promised.',
    tag: 'Subscriptions',
    responses: [{ status: 200, description: 'The addresses.', schema: s.EgressIps }],
  },
  listQueues: {
    summary: 'Every queue and dead-letter queue, with its depths',
    tag: 'Ops',
    responses: [
      {
        status: 200,
        description: 'The queues, each work queue before its dead-letter queue.',
        schema: s.QueueList,
      },
    ],
  },
  listDeadLetters: {
    summary: "A dead-letter queue's messages, with what each stands for and why it died",
    description:
      'Oldest first, left in the queue. On AWS, listing hides the listed messages from other readers for a few seconds.',
    tag: 'Ops',
    params: { queue: s.QueueName },
    query: s.DeadLetterQuery,
    responses: [{ status: 200, description: 'The dead letters.', schema: s.DeadLetterList }],
  },
  purgeDeadLetters: {
    summary: 'Delete every message of a dead-letter queue',
    description: 'What a purge deletes is gone: list the messages first.',
    tag: 'Ops',
    params: { queue: s.QueueName },
    responses: [{ status: 200, description: 'Purged.', schema: s.Purged }],
    errors: [409],
  },
  redriveDeadLetters: {
    summary: 'Move dead letters back to be handled again',
    description:
      'Each dead-letter queue redrives to its `redrivesTo` queue: deliveries are tried again at once with a fresh schedule, events fanned out again, and a stream batch’s events queued for fan-out again. One redrive of a queue runs at a time.',
    tag: 'Ops',
    params: { queue: s.QueueName },
    body: s.RedriveBody,
    bodyOptional: true,
    responses: [
      { status: 202, description: 'Started; follow it with `GET …/redrives`.', schema: s.RedriveTaskView },
      { status: 200, description: 'A dry run: what would move.', schema: s.RedrivePlanView },
    ],
    errors: [409],
  },
  listRedrives: {
    summary: "A dead-letter queue's recent redrives, newest first",
    tag: 'Ops',
    params: { queue: s.QueueName },
    responses: [{ status: 200, description: 'The redrives.', schema: s.RedriveList }],
  },
  cancelRedrive: {
    summary: 'Stop a running redrive',
    description: 'What it moved stays moved.',
    tag: 'Ops',
    params: { queue: s.QueueName, taskId: s.RedriveTaskId },
    responses: [
      { status: 200, description: 'The redrive, cancelled or cancelling.', schema: s.RedriveTaskView },
    ],
  },
  listSubscriptionHealth: {
    summary: "Every partner's disabled or failing subscriptions",
    tag: 'Ops',
    query: s.SubscriptionHealthQuery,
    responses: [{ status: 200, description: 'A page of subscriptions.', schema: s.SubscriptionHealthPage }],
  },
  getDeliveryRates: {
    summary: 'Callbacks by outcome, a minute at a time',
    tag: 'Ops',
    query: s.DeliveryRatesQuery,
    responses: [{ status: 200, description: 'The minutes, oldest first.', schema: s.DeliveryRates }],
  },
} as const satisfies Record<Operation, OperationSpec>;
