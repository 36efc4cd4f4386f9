/**
 * The HTTP API's requests and responses, as zod schemas: the handler validates what comes in
 * with the request schemas, and the OpenAPI document (openapi.ts) is generated from all of
 * them. A schema with an `id` becomes a named component of that document.
 */
import * as z from 'zod';
import { MAX_BATCH_EVENTS, MAX_POLL_WAIT_SECONDS } from '../core/events.ts';
import { EventFilter } from '../core/filters.ts';
import {
  ApiKeyId,
  Attempt,
  ConsumerName,
  DeliveryId,
  DeliveryOrigin,
  DeliveryStatus,
  EventId,
  EventType,
  EventTypeFilter,
  isReservedEventType,
  JsonValue,
  OrderingKey,
  PartnerId,
  SignatureScheme,
  SkippedReason,
  SubscriptionId,
  SubscriptionStatus,
  SubscriptionTransport,
  Timestamp,
} from '../core/model.ts';
import type { CreateSubscriptionInput } from '../core/subscriptions.ts';

/** The most items one page of any listing holds; `limit` defaults to DEFAULT_PAGE. */
export const MAX_PAGE = 1000;
export const DEFAULT_PAGE = 100;

/**
 * Any JSON value, named once in the document. The very schema is registered (not a copy, as
 * `.meta` would make), since its recursion refers to itself.
 */
const Json = JsonValue;
if (!z.globalRegistry.has(Json))
  z.globalRegistry.add(Json, { id: 'JsonValue', description: 'Any JSON value.' });

/**
 * JSON in a request body: JSON.parse made it (see jsonBody), so it is JSON whatever it holds,
 * and checking it with Json would walk every value of every event published again (3% of the
 * local runtime's CPU per callback). Documented as Json.
 */
const ParsedJson = z
  .custom<JsonValue>((value) => value !== undefined, { error: 'required: any JSON value' })
  .meta({ $ref: '#/components/schemas/JsonValue' });

// ── Shared pieces ──────────────────────────────────────────────────────────────────────────

export const FieldError = z
  .object({
    field: z.string().meta({ description: 'Where the fault is: `body.url`, `query.limit`.' }),
    message: z.string(),
  })
  .meta({ id: 'FieldError' });

export const Problem = z
  .object({
    type: z.string().meta({ description: 'A URN naming the kind of problem.' }),
    title: z.string(),
    status: z.number().int(),
    detail: z.string().meta({ description: 'What went wrong, for a person to read.' }),
    instance: z.string().optional().meta({ description: 'The request path.' }),
    errors: z.array(FieldError).optional().meta({ description: 'Each field at fault.' }),
  })
  .meta({
    id: 'Problem',
    description: 'An RFC 9457 problem (application/problem+json).',
  });

const limit = z.coerce
  .number()
  .int()
  .min(1)
  .max(MAX_PAGE)
  .default(DEFAULT_PAGE)
  .meta({ description: `Most items on the page, 1 to ${MAX_PAGE}.` });

const eventTypeList = z
  .string()
  .meta({ description: 'Comma-separated event types; only these are listed.' })
  .transform((text) =>
    text
      .split(',')
      .map((part) => part.trim())
      .filter((part) => part !== ''),
  )
  .pipe(z.array(EventType).max(50));

/** An instant with any offset and precision; compared as a time by the stores. */
const Instant = z.iso.datetime({ offset: true });

// ── Requests ───────────────────────────────────────────────────────────────────────────────

export const CreatePartnerBody = z
  .strictObject({ name: z.string().trim().min(1).max(200) })
  .meta({ id: 'CreatePartnerRequest' });

export const CreateApiKeyBody = z
  .strictObject({
    name: z.string().trim().min(1).max(100).optional().meta({
      description: 'What the key is for (`billing service`), shown in listings.',
    }),
  })
  .meta({ id: 'CreateApiKeyRequest' });

export const PublishBody = z
  .strictObject({
    partnerId: PartnerId,
    type: EventType.refine((type) => !isReservedEventType(type), {
      message: 'subscription.* and webhook.* are reserved for the dispatcher',
    }),
    payload: ParsedJson,
    idempotencyKey: z.string().min(1).max(255).optional().meta({
      description: 'Publishing again with the same key returns the first event instead of a new one.',
    }),
    orderingKey: OrderingKey.optional().meta({
      description:
        'Subscriptions with `ordering: key` receive the events of one ordering key one at a time, in the order they were published (an order id, an account id). Up to 128 letters, digits or `. _ - : / @ + = #`.',
    }),
  })
  .meta({ id: 'PublishRequest' });

/** Each entry is checked on its own, with PublishBody, so that one bad entry fails alone. */
export const PublishBatchBody = z
  .strictObject({
    events: z
      .array(z.unknown().meta({ $ref: '#/components/schemas/PublishRequest' }))
      .min(1, 'must hold at least one event')
      .max(MAX_BATCH_EVENTS, `at most ${MAX_BATCH_EVENTS} events per batch`),
  })
  .meta({ id: 'PublishBatchRequest' });

/** A long poll's wait, for every listing of events. */
const wait = z.coerce
  .number()
  .int()
  .min(0)
  .max(MAX_POLL_WAIT_SECONDS)
  .default(0)
  .meta({
    description:
      `Seconds to wait, up to ${MAX_POLL_WAIT_SECONDS}, when there is no event after the cursor: the answer ` +
      'comes as soon as one is published, or empty when the time is up. 0 (the default): answer at once.',
  });

export const ListEventsQuery = z.strictObject({
  after: EventId.optional().meta({
    description: "The cursor: the `next` of the last page, or an event's id. Absent: from the oldest.",
  }),
  limit,
  types: eventTypeList.optional(),
  wait,
});

/** A consumer's page: how many, and how long to wait for the first. */
export const ConsumerEventsQuery = z.strictObject({ limit, wait });

export const PutConsumerBody = z
  .strictObject({
    types: z.array(EventType).max(50).optional().meta({
      description: 'Only these event types. Absent on a new consumer: all; on an existing one: unchanged.',
    }),
    start: z
      .union([z.enum(['earliest', 'latest']), EventId])
      .optional()
      .meta({
        description:
          'Where to start: `earliest` (the oldest event kept), `latest` (only events published from now on) or ' +
          'after one of your events, by id. Absent on a new consumer: `earliest`; on an existing one: it stays where it is.',
      }),
  })
  .meta({ id: 'PutConsumerRequest' });

export const AckBody = z
  .strictObject({
    eventId: EventId.meta({
      description: "The last event of the page handled: the consumer's new position.",
    }),
  })
  .meta({ id: 'AckRequest' });

export const PageQuery = z.strictObject({
  after: z.string().min(1).max(64).optional().meta({ description: 'The `next` of the last page.' }),
  limit,
});

const eventTypes = z.array(EventTypeFilter).max(100).meta({
  description:
    'Event types to deliver: exact (`order.created`), a family (`order.*`) or `*`. Empty or absent: all.',
});
const description = z.string().max(500);
const Ordering = z.enum(['key', 'none']);
const Transformation = z
  .strictObject({
    jsonata: z.string().min(1).max(4096).meta({
      description:
        'A JSONata expression over the callback body (`{id, type, payload, createdAt, orderingKey?}`); its result, as JSON, is the body your receiver gets, signed as sent. Regular expressions and `$eval` are not allowed.',
    }),
  })
  .meta({ id: 'Transformation' });
const callbackUrl = z.url({ protocol: /^https?$/ }).max(2048);

export const CreateSubscriptionBody = z
  .strictObject({
    transport: SubscriptionTransport.optional().meta({
      description:
        '`url` (the default): callbacks are POSTed to `url`. `connection`: they are pushed down connections you open (docs/connection-protocol.md), for a receiver the internet cannot reach.',
    }),
    url: callbackUrl
      .optional()
      .meta({ description: 'Where callbacks go: required unless `transport` is `connection`.' }),
    eventTypes: eventTypes.optional(),
    filter: EventFilter.optional(),
    signature: SignatureScheme.optional().meta({
      description:
        "`hmac` (the default): callbacks are signed `v1` with the `secret` this answer shows once. `ed25519`: signed `v1a` with a key of the dispatcher's; you verify with its `publicKey`, and hold no secret.",
    }),
    ordering: Ordering.optional().meta({
      description:
        '`key`: the events published with one `orderingKey` are delivered one at a time, in publish order; a failing delivery holds back only its own key, and once dead-lettered lets the key go on. `none` (the default): no order is kept. Set at creation only.',
    }),
    transformation: Transformation.optional(),
    description: description.optional(),
  })
  .superRefine((body, ctx) => {
    if (body.transport === 'connection' && body.url !== undefined)
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'a connection subscription has no url' });
    if (body.transport !== 'connection' && body.url === undefined)
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'required (or transport: connection)' });
  })
  .transform((body): CreateSubscriptionInput => {
    const common = {
      ...(body.eventTypes === undefined ? {} : { eventTypes: body.eventTypes }),
      ...(body.filter === undefined ? {} : { filter: body.filter }),
      ...(body.signature === undefined ? {} : { signature: body.signature }),
      ...(body.ordering === 'key' ? { ordering: 'key' as const } : {}),
      ...(body.transformation === undefined ? {} : { transformation: body.transformation }),
      ...(body.description === undefined ? {} : { description: body.description }),
    };
    return body.transport === 'connection' || body.url === undefined
      ? { transport: 'connection', ...common }
      : { url: body.url, ...common };
  })
  .meta({ id: 'CreateSubscriptionRequest' });

export const UpdateSubscriptionBody = z
  .strictObject({
    url: callbackUrl.optional(),
    eventTypes: eventTypes.optional(),
    filter: EventFilter.nullable()
      .optional()
      .meta({ description: 'A new payload filter; `null` removes it.' }),
    transformation: Transformation.nullable()
      .optional()
      .meta({ description: 'A new transformation; `null` removes it.' }),
    description: description.optional(),
    status: SubscriptionStatus.optional(),
  })
  .refine((body) => Object.keys(body).length > 0, { message: 'must change at least one field' })
  .meta({ id: 'UpdateSubscriptionRequest', minProperties: 1 });

export const TransformPreviewBody = z
  .strictObject({
    event: z
      .strictObject({
        type: EventType,
        payload: ParsedJson,
        orderingKey: OrderingKey.optional(),
      })
      .meta({ description: 'The event as it could be published.' }),
    transformation: Transformation.optional().meta({
      description: 'An expression to try instead of the subscription’s own, before setting it.',
    }),
  })
  .meta({ id: 'TransformPreviewRequest' });

export const TransformPreview = z
  .object({
    body: Json.meta({ description: 'The callback body your receiver would get, as JSON.' }),
  })
  .meta({ id: 'TransformPreview' });

export const RedeliverBody = z
  .strictObject({
    subscriptionId: SubscriptionId.optional().meta({ description: 'Only to this subscription.' }),
  })
  .meta({ id: 'RedeliverRequest' });

export const ReplayBody = z
  .strictObject({
    since: Instant.meta({ description: 'Replay the events published from this instant on.' }),
    after: EventId.optional().meta({ description: 'The `next` of the last replay, to go on from.' }),
  })
  .meta({ id: 'ReplayRequest' });

// ── Responses ──────────────────────────────────────────────────────────────────────────────

const next = (what: string) =>
  z
    .string()
    .nullable()
    .meta({ description: `The cursor of the next page (${what}); null at the end.` });

export const EventView = z
  .object({
    id: EventId,
    type: EventType,
    payload: Json,
    createdAt: Timestamp,
    orderingKey: OrderingKey.optional().meta({ description: 'The ordering key it was published with.' }),
  })
  .meta({ id: 'Event', description: 'An event, as polled and as a callback body.' });

export const EventPage = z
  .object({ data: z.array(EventView), next: next('pass it as `after`') })
  .meta({ id: 'EventPage' });

export const ConsumerView = z
  .object({
    name: ConsumerName,
    types: z.array(EventType),
    position: EventId.nullable().meta({
      description: 'The last event acknowledged; null: before the first.',
    }),
    positionAt: Timestamp.nullable(),
    createdAt: Timestamp,
    updatedAt: Timestamp,
    lag: z.number().int().nonnegative().meta({
      description: 'Events in your log after the position, of every type: what is left to read.',
    }),
  })
  .meta({ id: 'Consumer', description: 'A cursor the dispatcher keeps for one of your readers.' });

export const ConsumerPage = z
  .object({ data: z.array(ConsumerView), next: next('pass it as `after`') })
  .meta({ id: 'ConsumerPage' });

export const Published = z
  .object({
    id: EventId,
    created: z
      .boolean()
      .meta({ description: 'False when an idempotency key named an event already published.' }),
  })
  .meta({ id: 'Published' });

export const BatchResults = z
  .object({
    results: z.array(z.union([Published, z.object({ error: Problem })])).meta({
      description: "One entry per event, in the request's order: what a single publish would answer.",
    }),
  })
  .meta({ id: 'PublishBatchResults' });

export const CreatedPartner = z
  .object({
    id: PartnerId,
    name: z.string(),
    createdAt: Timestamp,
    apiKey: z.string().meta({ description: "The partner's first API key, shown this once." }),
    apiKeyId: ApiKeyId.meta({ description: "The key's id, to revoke it by." }),
  })
  .meta({ id: 'CreatedPartner' });

const apiKeyFields = {
  id: ApiKeyId,
  name: z.string(),
  prefix: z.string().meta({ description: "The key's first characters, to tell keys apart." }),
  createdAt: Timestamp,
  lastUsedAt: Timestamp.nullable().meta({
    description: 'When the key last authorised a request, to within five minutes; null: never.',
  }),
};

export const ApiKeyView = z
  .object(apiKeyFields)
  .meta({ id: 'ApiKey', description: 'An API key, as listed: never the key itself.' });

export const CreatedApiKey = z
  .object({
    ...apiKeyFields,
    apiKey: z.string().meta({ description: 'The key, shown this once: only its hash is kept.' }),
  })
  .meta({ id: 'CreatedApiKey' });

export const ApiKeyPage = z
  .object({ data: z.array(ApiKeyView), next: next('pass it as `after`') })
  .meta({ id: 'ApiKeyPage' });

const subscriptionFields = {
  id: SubscriptionId,
  transport: SubscriptionTransport.meta({
    description: 'How callbacks reach you: POSTed to `url`, or down your connections.',
  }),
  url: z.url().optional().meta({ description: 'A `url` subscription’s callback URL.' }),
  eventTypes: z.array(EventTypeFilter),
  filter: EventFilter.optional(),
  signature: SignatureScheme.meta({
    description: 'How callbacks are signed: `v1` (hmac) or `v1a` (ed25519).',
  }),
  ordering: Ordering.meta({
    description: '`key`: each ordering key’s events arrive one at a time, in publish order.',
  }),
  transformation: Transformation.optional(),
  publicKey: z
    .string()
    .regex(/^whpk_/)
    .optional()
    .meta({
      description:
        'An `ed25519` subscription’s public key: `whpk_` and the base64 of the raw 32-byte key. Verify `v1a` signatures with it; after a rotation the old key also signs for 24 hours.',
    }),
  description: z.string().optional(),
  status: SubscriptionStatus,
  disabledReason: z.string().optional(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
};

export const SubscriptionView = z.object(subscriptionFields).meta({ id: 'Subscription' });

export const SubscriptionWithSecret = z
  .object({
    ...subscriptionFields,
    secret: z
      .string()
      .regex(/^whsec_/)
      .optional()
      .meta({
        description:
          'An `hmac` subscription’s signing secret (Standard Webhooks), shown this once. An `ed25519` one has none: verify with its `publicKey`.',
      }),
  })
  .meta({ id: 'SubscriptionWithSecret' });

export const SubscriptionPage = z
  .object({ data: z.array(SubscriptionView), next: next('pass it as `after`') })
  .meta({ id: 'SubscriptionPage' });

export const AttemptView = Attempt.omit({ deliveryId: true, subscriptionId: true, partnerId: true }).meta({
  id: 'Attempt',
  description: 'One HTTP try of a delivery.',
});

export const DeliveryView = z
  .object({
    id: DeliveryId,
    eventId: EventId,
    eventType: EventType,
    subscriptionId: SubscriptionId,
    origin: DeliveryOrigin,
    status: DeliveryStatus,
    attemptCount: z.number().int().nonnegative(),
    createdAt: Timestamp,
    updatedAt: Timestamp,
    lastAttemptAt: Timestamp.optional(),
    nextAttemptAt: Timestamp.optional(),
    skippedReason: SkippedReason.optional(),
    attempts: z.array(AttemptView),
  })
  .meta({
    id: 'Delivery',
    description: 'One event for one subscription; its id is the `webhook-id` header of its callbacks.',
  });

export const DeliveryPage = z
  .object({ data: z.array(DeliveryView), next: next('pass it as `after`') })
  .meta({ id: 'DeliveryPage' });

export const Redelivered = z
  .object({ data: z.array(z.object({ id: DeliveryId, subscriptionId: SubscriptionId })) })
  .meta({ id: 'Redelivered', description: 'The new deliveries, one per subscription.' });

export const ReplayQueued = z
  .object({
    queued: z.number().int().nonnegative(),
    next: EventId.nullable().meta({
      description: 'More events remain from here on: replay again with it as `after`. Null when done.',
    }),
  })
  .meta({ id: 'ReplayQueued' });

export const TestSent = z.object({ eventId: EventId, deliveryId: DeliveryId }).meta({ id: 'TestSent' });

/** The OpenAPI document itself is a JSON object; its shape is OpenAPI's. */
export const OpenApiDocument = z.record(z.string(), z.unknown()).meta({ id: 'OpenApiDocument' });

export const ConnectInfoQuery = z.strictObject({
  subscription: SubscriptionId.optional().meta({
    description: 'The connection subscription you will connect for: 404 unless it is one of yours.',
  }),
});

export const ConnectInfo = z
  .object({
    url: z
      .string()
      .meta({ description: 'Where to open the WebSocket, with your API key as a Bearer token.' }),
    heartbeatSeconds: z.number().int().positive().meta({ description: 'Send a `ping` this often.' }),
    ackTimeoutSeconds: z
      .number()
      .int()
      .positive()
      .meta({ description: 'Answer each delivery within this, or it is a failed try.' }),
  })
  .meta({
    id: 'ConnectInfo',
    description: 'Where and how to open a connection (docs/connection-protocol.md).',
  });

export const EgressIps = z
  .object({
    fixed: z.boolean().meta({ description: 'Whether callbacks leave only from `addresses`.' }),
    addresses: z.array(z.string()).meta({ description: 'IPv4 or IPv6 addresses; empty unless `fixed`.' }),
  })
  .meta({ id: 'EgressIps' });

// ── Ops ────────────────────────────────────────────────────────────────────────────────────

/** Most messages a redrive moves a second: SQS's own bound for a move task. */
export const MAX_REDRIVE_PER_SECOND = 500;

const QueueName = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,62}$/)
  .meta({ description: 'A queue, as `GET /v1/admin/queues` names it: `delivery-dlq`, `fanout-dlq`, …' });

export { QueueName };

/** A redrive's handle: ours locally, SQS's TaskHandle (base64 text) on AWS. */
export const RedriveTaskId = z.string().min(1).max(1024);

export const QueueView = z
  .object({
    name: QueueName,
    kind: z.enum(['work', 'dead-letter']),
    redrivesTo: QueueName.optional().meta({
      description: 'A dead-letter queue: where its redrive sends messages.',
    }),
    visible: z.number().int().nonnegative().meta({ description: 'Receivable now.' }),
    inFlight: z
      .number()
      .int()
      .nonnegative()
      .meta({ description: 'Received, hidden until handled or timed out.' }),
    delayed: z
      .number()
      .int()
      .nonnegative()
      .meta({ description: 'Waiting out a delay (a retry’s wait, say).' }),
    oldestAgeSeconds: z
      .number()
      .nonnegative()
      .nullable()
      .meta({ description: 'Seconds since the oldest message was sent; null when empty.' }),
  })
  .meta({ id: 'Queue' });

export const QueueList = z.object({ data: z.array(QueueView) }).meta({ id: 'QueueList' });

export const DeadLetterView = z
  .object({
    messageId: z.string(),
    queue: QueueName,
    kind: z.enum(['delivery', 'event', 'stream-batch', 'unreadable']).meta({
      description:
        'What it stands for: a delivery’s try, an event fan-out gave up on, a stream batch the pipe gave up on, or nothing readable.',
    }),
    reason: z
      .string()
      .meta({ description: 'Why it is here: the last try’s failure, or what gave up on it.' }),
    deadAt: Timestamp.meta({ description: 'When it died.' }),
    sentAt: Timestamp,
    receiveCount: z.number().int().nonnegative(),
    partnerId: PartnerId.optional(),
    eventId: EventId.optional(),
    eventType: EventType.optional(),
    deliveryId: DeliveryId.optional(),
    subscriptionId: SubscriptionId.optional(),
    url: z.string().optional().meta({ description: 'The subscription’s callback URL, while it exists.' }),
    deliveryStatus: DeliveryStatus.optional(),
    tries: z
      .number()
      .int()
      .nonnegative()
      .optional()
      .meta({ description: 'HTTP tries the delivery has had.' }),
    lastAttempt: AttemptView.pick({
      number: true,
      startedAt: true,
      statusCode: true,
      error: true,
      errorMessage: true,
      responseExcerpt: true,
    }).optional(),
    window: z
      .object({ from: Timestamp, to: Timestamp })
      .optional()
      .meta({ description: 'A stream batch: the span of writes whose events a redrive fans out again.' }),
    body: z.string().optional().meta({ description: 'The start of an unreadable message.' }),
  })
  .meta({ id: 'DeadLetter', description: 'A dead letter, with what it stands for and why it died.' });

export const DeadLetterList = z.object({ data: z.array(DeadLetterView) }).meta({ id: 'DeadLetterList' });

export const DeadLetterQuery = z.strictObject({
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(100)
    .default(20)
    .meta({ description: 'Most dead letters listed, oldest first, 1 to 100.' }),
});

export const RedriveBody = z
  .strictObject({
    max: z.number().int().min(1).max(1_000_000).optional().meta({
      description: 'Move at most this many (oldest first). Absent: every message visible now.',
    }),
    maxPerSecond: z
      .number()
      .int()
      .min(1)
      .max(MAX_REDRIVE_PER_SECOND)
      .optional()
      .meta({
        description: `Move at most this many a second (1 to ${MAX_REDRIVE_PER_SECOND}). Absent: as fast as the queues go.`,
      }),
    dryRun: z.boolean().optional().meta({ description: 'Only say what would move.' }),
  })
  .meta({ id: 'RedriveRequest' });

export const RedriveTaskView = z
  .object({
    id: z.string().meta({ description: 'The redrive’s handle (SQS’s TaskHandle on AWS).' }),
    queue: QueueName,
    destination: QueueName,
    status: z.enum(['running', 'completed', 'cancelling', 'cancelled', 'failed']),
    moved: z.number().int().nonnegative(),
    toMove: z
      .number()
      .int()
      .nonnegative()
      .nullable()
      .meta({ description: 'How many it set out to move, where known.' }),
    maxPerSecond: z.number().int().positive().optional(),
    startedAt: Timestamp,
    failureReason: z.string().optional(),
  })
  .meta({ id: 'Redrive' });

export const RedrivePlanView = z
  .object({
    dryRun: z.literal(true),
    queue: QueueName,
    destination: QueueName,
    wouldMove: z.number().int().nonnegative(),
  })
  .meta({ id: 'RedrivePlan', description: 'What a redrive would move now.' });

export const RedriveList = z.object({ data: z.array(RedriveTaskView) }).meta({ id: 'RedriveList' });

export const Purged = z
  .object({
    queue: QueueName,
    purged: z.number().int().nonnegative().nullable().meta({ description: 'Messages deleted, where known.' }),
  })
  .meta({ id: 'Purged' });

export const SubscriptionHealthQuery = z.strictObject({
  status: z.enum(['disabled', 'failing']).meta({
    description: '`disabled`, or `failing`: active, with a failure since the last success.',
  }),
  after: z.string().min(1).max(64).optional().meta({ description: 'The `next` of the last page.' }),
  limit,
});

export const SubscriptionHealthView = z
  .object({
    id: SubscriptionId,
    partnerId: PartnerId,
    transport: SubscriptionTransport,
    url: z.string().optional(),
    eventTypes: z.array(EventTypeFilter),
    status: SubscriptionStatus,
    disabledReason: z.string().optional(),
    failingSince: Timestamp.optional().meta({ description: 'When its current run of failures began.' }),
    updatedAt: Timestamp,
  })
  .meta({ id: 'SubscriptionHealth', description: 'A subscription as ops see it: never its secrets.' });

export const SubscriptionHealthPage = z
  .object({ data: z.array(SubscriptionHealthView), next: next('pass it as `after`') })
  .meta({ id: 'SubscriptionHealthPage' });

export const DeliveryRatesQuery = z.strictObject({
  minutes: z.coerce
    .number()
    .int()
    .min(1)
    .max(180)
    .default(60)
    .meta({ description: 'How many minutes back, 1 to 180.' }),
});

export const DeliveryRates = z
  .object({
    data: z.array(
      z.object({
        minute: Timestamp.meta({ description: 'The minute’s start.' }),
        succeeded: z.number().int().nonnegative(),
        failed: z
          .number()
          .int()
          .nonnegative()
          .meta({ description: 'Tries that failed and will be retried.' }),
        dead: z.number().int().nonnegative(),
        skipped: z.number().int().nonnegative(),
      }),
    ),
  })
  .meta({ id: 'DeliveryRates', description: 'Callbacks by outcome, a minute at a time, oldest first.' });
