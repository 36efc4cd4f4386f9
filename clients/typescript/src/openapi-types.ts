// Generated from docs/openapi.json by scripts/generate-types.ts: do not edit by hand.

/** An EventBridge event pattern over the event's `type` and `payload`: exact values, `prefix`, `suffix`, `anything-but`, `numeric`, `exists`, `equals-ignore-case`, `wildcard`, and `$or`. Only events it matches are delivered. */
export interface EventFilter {
  [key: string]: unknown;
}

/** Any JSON value. */
export type JsonValue = string | number | boolean | null | JsonValue[] | {
  [key: string]: JsonValue;
};

export interface FieldError {
  /** Where the fault is: `body.url`, `query.limit`. */
  field: string;
  message: string;
}

/** An RFC 9457 problem (application/problem+json). */
export interface Problem {
  /** A URN naming the kind of problem. */
  type: string;
  title: string;
  status: number;
  /** What went wrong, for a person to read. */
  detail: string;
  /** The request path. */
  instance?: string;
  /** Each field at fault. */
  errors?: FieldError[];
}

export interface CreatePartnerRequest {
  name: string;
}

export interface CreateApiKeyRequest {
  /** What the key is for (`billing service`), shown in listings. */
  name?: string;
}

export interface PublishRequest {
  partnerId: string;
  type: string;
  payload: JsonValue;
  /** Publishing again with the same key returns the first event instead of a new one. */
  idempotencyKey?: string;
  /** Subscriptions with `ordering: key` receive the events of one ordering key one at a time, in the order they were published (an order id, an account id). Up to 128 letters, digits or `. _ - : / @ + = #`. */
  orderingKey?: string;
}

export interface PublishBatchRequest {
  events: PublishRequest[];
}

export interface PutConsumerRequest {
  /** Only these event types. Absent on a new consumer: all; on an existing one: unchanged. */
  types?: string[];
  /** Where to start: `earliest` (the oldest event kept), `latest` (only events published from now on) or after one of your events, by id. Absent on a new consumer: `earliest`; on an existing one: it stays where it is. */
  start?: "earliest" | "latest" | string;
}

export interface AckRequest {
  /** The last event of the page handled: the consumer's new position. */
  eventId: string;
}

export interface Transformation {
  /** A JSONata expression over the callback body (`{id, type, payload, createdAt, orderingKey?}`); its result, as JSON, is the body your receiver gets, signed as sent. Regular expressions and `$eval` are not allowed. */
  jsonata: string;
}

export interface CreateSubscriptionRequest {
  /** `url` (the default): callbacks are POSTed to `url`. `connection`: they are pushed down connections you open (docs/connection-protocol.md), for a receiver the internet cannot reach. */
  transport?: "url" | "connection";
  /** Where callbacks go: required unless `transport` is `connection`. */
  url?: string;
  /** Event types to deliver: exact (`order.created`), a family (`order.*`) or `*`. Empty or absent: all. */
  eventTypes?: string[];
  filter?: EventFilter;
  /** `hmac` (the default): callbacks are signed `v1` with the `secret` this answer shows once. `ed25519`: signed `v1a` with a key of the dispatcher's; you verify with its `publicKey`, and hold no secret. */
  signature?: "hmac" | "ed25519";
  /** `key`: the events published with one `orderingKey` are delivered one at a time, in publish order; a failing delivery holds back only its own key, and once dead-lettered lets the key go on. `none` (the default): no order is kept. Set at creation only. */
  ordering?: "key" | "none";
  transformation?: Transformation;
  description?: string;
}

export interface UpdateSubscriptionRequest {
  url?: string;
  /** Event types to deliver: exact (`order.created`), a family (`order.*`) or `*`. Empty or absent: all. */
  eventTypes?: string[];
  /** A new payload filter; `null` removes it. */
  filter?: EventFilter | null;
  /** A new transformation; `null` removes it. */
  transformation?: Transformation | null;
  description?: string;
  status?: "active" | "disabled";
}

export interface TransformPreviewRequest {
  /** The event as it could be published. */
  event: {
    type: string;
    payload: JsonValue;
    orderingKey?: string;
  };
  /** An expression to try instead of the subscription’s own, before setting it. */
  transformation?: Transformation;
}

export interface TransformPreview {
  /** The callback body your receiver would get, as JSON. */
  body: JsonValue;
}

export interface RedeliverRequest {
  /** Only to this subscription. */
  subscriptionId?: string;
}

export interface ReplayRequest {
  /** Replay the events published from this instant on. */
  since: string;
  /** The `next` of the last replay, to go on from. */
  after?: string;
}

/** An event, as polled and as a callback body. */
export interface Event {
  id: string;
  type: string;
  payload: JsonValue;
  createdAt: string;
  /** The ordering key it was published with. */
  orderingKey?: string;
}

export interface EventPage {
  data: Event[];
  /** The cursor of the next page (pass it as `after`); null at the end. */
  next: string | null;
}

/** A cursor the dispatcher keeps for one of your readers. */
export interface Consumer {
  name: string;
  types: string[];
  /** The last event acknowledged; null: before the first. */
  position: string | null;
  positionAt: string | null;
  createdAt: string;
  updatedAt: string;
  /** Events in your log after the position, of every type: what is left to read. */
  lag: number;
}

export interface ConsumerPage {
  data: Consumer[];
  /** The cursor of the next page (pass it as `after`); null at the end. */
  next: string | null;
}

export interface Published {
  id: string;
  /** False when an idempotency key named an event already published. */
  created: boolean;
}

export interface PublishBatchResults {
  /** One entry per event, in the request's order: what a single publish would answer. */
  results: (Published | {
    error: Problem;
  })[];
}

export interface CreatedPartner {
  id: string;
  name: string;
  createdAt: string;
  /** The partner's first API key, shown this once. */
  apiKey: string;
  /** The key's id, to revoke it by. */
  apiKeyId: string;
}

/** An API key, as listed: never the key itself. */
export interface ApiKey {
  id: string;
  name: string;
  /** The key's first characters, to tell keys apart. */
  prefix: string;
  createdAt: string;
  /** When the key last authorised a request, to within five minutes; null: never. */
  lastUsedAt: string | null;
}

export interface CreatedApiKey {
  id: string;
  name: string;
  /** The key's first characters, to tell keys apart. */
  prefix: string;
  createdAt: string;
  /** When the key last authorised a request, to within five minutes; null: never. */
  lastUsedAt: string | null;
  /** The key, shown this once: only its hash is kept. */
  apiKey: string;
}

export interface ApiKeyPage {
  data: ApiKey[];
  /** The cursor of the next page (pass it as `after`); null at the end. */
  next: string | null;
}

export interface Subscription {
  id: string;
  /** How callbacks reach you: POSTed to `url`, or down your connections. */
  transport: "url" | "connection";
  /** A `url` subscription’s callback URL. */
  url?: string;
  eventTypes: string[];
  filter?: EventFilter;
  /** How callbacks are signed: `v1` (hmac) or `v1a` (ed25519). */
  signature: "hmac" | "ed25519";
  /** `key`: each ordering key’s events arrive one at a time, in publish order. */
  ordering: "key" | "none";
  transformation?: Transformation;
  /** An `ed25519` subscription’s public key: `whpk_` and the base64 of the raw 32-byte key. Verify `v1a` signatures with it; after a rotation the old key also signs for 24 hours. */
  publicKey?: string;
  description?: string;
  status: "active" | "disabled";
  disabledReason?: string;
  createdAt: string;
  updatedAt: string;
}

export interface SubscriptionWithSecret {
  id: string;
  /** How callbacks reach you: POSTed to `url`, or down your connections. */
  transport: "url" | "connection";
  /** A `url` subscription’s callback URL. */
  url?: string;
  eventTypes: string[];
  filter?: EventFilter;
  /** How callbacks are signed: `v1` (hmac) or `v1a` (ed25519). */
  signature: "hmac" | "ed25519";
  /** `key`: each ordering key’s events arrive one at a time, in publish order. */
  ordering: "key" | "none";
  transformation?: Transformation;
  /** An `ed25519` subscription’s public key: `whpk_` and the base64 of the raw 32-byte key. Verify `v1a` signatures with it; after a rotation the old key also signs for 24 hours. */
  publicKey?: string;
  description?: string;
  status: "active" | "disabled";
  disabledReason?: string;
  createdAt: string;
  updatedAt: string;
  /** An `hmac` subscription’s signing secret (Standard Webhooks), shown this once. An `ed25519` one has none: verify with its `publicKey`. */
  secret?: string;
}

export interface SubscriptionPage {
  data: Subscription[];
  /** The cursor of the next page (pass it as `after`); null at the end. */
  next: string | null;
}

/** One HTTP try of a delivery. */
export interface Attempt {
  id: string;
  number: number;
  startedAt: string;
  durationMs: number;
  statusCode?: number;
  error?: "timeout" | "connection" | "dns" | "forbidden_target" | "http_status" | "response_too_large" | "transformation";
  errorMessage?: string;
  responseExcerpt?: string;
}

/** One event for one subscription; its id is the `webhook-id` header of its callbacks. */
export interface Delivery {
  id: string;
  eventId: string;
  eventType: string;
  subscriptionId: string;
  origin: "fanout" | "redelivery" | "replay" | "test";
  status: "pending" | "succeeded" | "failed" | "dead" | "skipped";
  attemptCount: number;
  createdAt: string;
  updatedAt: string;
  lastAttemptAt?: string;
  nextAttemptAt?: string;
  skippedReason?: "subscription disabled" | "subscription deleted" | "event expired" | "not queued";
  attempts: Attempt[];
}

export interface DeliveryPage {
  data: Delivery[];
  /** The cursor of the next page (pass it as `after`); null at the end. */
  next: string | null;
}

/** The new deliveries, one per subscription. */
export interface Redelivered {
  data: {
    id: string;
    subscriptionId: string;
  }[];
}

export interface ReplayQueued {
  queued: number;
  /** More events remain from here on: replay again with it as `after`. Null when done. */
  next: string | null;
}

export interface TestSent {
  eventId: string;
  deliveryId: string;
}

export interface OpenApiDocument {
  [key: string]: unknown;
}

/** Where and how to open a connection (docs/connection-protocol.md). */
export interface ConnectInfo {
  /** Where to open the WebSocket, with your API key as a Bearer token. */
  url: string;
  /** Send a `ping` this often. */
  heartbeatSeconds: number;
  /** Answer each delivery within this, or it is a failed try. */
  ackTimeoutSeconds: number;
}

export interface EgressIps {
  /** Whether callbacks leave only from `addresses`. */
  fixed: boolean;
  /** IPv4 or IPv6 addresses; empty unless `fixed`. */
  addresses: string[];
}

export interface Queue {
  /** A queue, as `GET /v1/admin/queues` names it: `delivery-dlq`, `fanout-dlq`, … */
  name: string;
  kind: "work" | "dead-letter";
  /** A dead-letter queue: where its redrive sends messages. */
  redrivesTo?: string;
  /** Receivable now. */
  visible: number;
  /** Received, hidden until handled or timed out. */
  inFlight: number;
  /** Waiting out a delay (a retry’s wait, say). */
  delayed: number;
  /** Seconds since the oldest message was sent; null when empty. */
  oldestAgeSeconds: number | null;
}

export interface QueueList {
  data: Queue[];
}

/** A dead letter, with what it stands for and why it died. */
export interface DeadLetter {
  messageId: string;
  /** A queue, as `GET /v1/admin/queues` names it: `delivery-dlq`, `fanout-dlq`, … */
  queue: string;
  /** What it stands for: a delivery’s try, an event fan-out gave up on, a stream batch the pipe gave up on, or nothing readable. */
  kind: "delivery" | "event" | "stream-batch" | "unreadable";
  /** Why it is here: the last try’s failure, or what gave up on it. */
  reason: string;
  /** When it died. */
  deadAt: string;
  sentAt: string;
  receiveCount: number;
  partnerId?: string;
  eventId?: string;
  eventType?: string;
  deliveryId?: string;
  subscriptionId?: string;
  /** The subscription’s callback URL, while it exists. */
  url?: string;
  deliveryStatus?: "pending" | "succeeded" | "failed" | "dead" | "skipped";
  /** HTTP tries the delivery has had. */
  tries?: number;
  lastAttempt?: {
    number: number;
    startedAt: string;
    statusCode?: number;
    error?: "timeout" | "connection" | "dns" | "forbidden_target" | "http_status" | "response_too_large" | "transformation";
    errorMessage?: string;
    responseExcerpt?: string;
  };
  /** A stream batch: the span of writes whose events a redrive fans out again. */
  window?: {
    from: string;
    to: string;
  };
  /** The start of an unreadable message. */
  body?: string;
}

export interface DeadLetterList {
  data: DeadLetter[];
}

export interface RedriveRequest {
  /** Move at most this many (oldest first). Absent: every message visible now. */
  max?: number;
  /** Move at most this many a second (1 to 500). Absent: as fast as the queues go. */
  maxPerSecond?: number;
  /** Only say what would move. */
  dryRun?: boolean;
}

export interface Redrive {
  /** The redrive’s handle (SQS’s TaskHandle on AWS). */
  id: string;
  /** A queue, as `GET /v1/admin/queues` names it: `delivery-dlq`, `fanout-dlq`, … */
  queue: string;
  /** A queue, as `GET /v1/admin/queues` names it: `delivery-dlq`, `fanout-dlq`, … */
  destination: string;
  status: "running" | "completed" | "cancelling" | "cancelled" | "failed";
  moved: number;
  /** How many it set out to move, where known. */
  toMove: number | null;
  maxPerSecond?: number;
  startedAt: string;
  failureReason?: string;
}

/** What a redrive would move now. */
export interface RedrivePlan {
  dryRun: boolean;
  /** A queue, as `GET /v1/admin/queues` names it: `delivery-dlq`, `fanout-dlq`, … */
  queue: string;
  /** A queue, as `GET /v1/admin/queues` names it: `delivery-dlq`, `fanout-dlq`, … */
  destination: string;
  wouldMove: number;
}

export interface RedriveList {
  data: Redrive[];
}

export interface Purged {
  /** A queue, as `GET /v1/admin/queues` names it: `delivery-dlq`, `fanout-dlq`, … */
  queue: string;
  /** Messages deleted, where known. */
  purged: number | null;
}

/** A subscription as ops see it: never its secrets. */
export interface SubscriptionHealth {
  id: string;
  partnerId: string;
  transport: "url" | "connection";
  url?: string;
  eventTypes: string[];
  status: "active" | "disabled";
  disabledReason?: string;
  /** When its current run of failures began. */
  failingSince?: string;
  updatedAt: string;
}

export interface SubscriptionHealthPage {
  data: SubscriptionHealth[];
  /** The cursor of the next page (pass it as `after`); null at the end. */
  next: string | null;
}

/** Callbacks by outcome, a minute at a time, oldest first. */
export interface DeliveryRates {
  data: {
    /** The minute’s start. */
    minute: string;
    succeeded: number;
    /** Tries that failed and will be retried. */
    failed: number;
    dead: number;
    skipped: number;
  }[];
}
