/**
 * The domain's nouns, as zod schemas (for validation at the edges and in adapters reading
 * stored rows) and the TypeScript types inferred from them. Words follow Svix: partner, event,
 * subscription, delivery, attempt; every id carries its prefix.
 */
import * as z from 'zod';

export const ID_PREFIXES = {
  partner: 'ptr',
  event: 'evt',
  subscription: 'sub',
  delivery: 'dlv',
  attempt: 'att',
} as const;
export type IdPrefix = (typeof ID_PREFIXES)[keyof typeof ID_PREFIXES];

/** Crockford base32, 26 characters: the ULID alphabet. */
const ulidPart = '[0-9A-HJKMNP-TV-Z]{26}';
const prefixedId = (prefix: IdPrefix) =>
  z.string().regex(new RegExp(`^${prefix}_${ulidPart}$`), `must be an id starting with ${prefix}_`);

export const PartnerId = prefixedId('ptr');
export const EventId = prefixedId('evt');
export const SubscriptionId = prefixedId('sub');
/**
 * A ULID and six more characters naming the delivery's event (where the deliveries of one
 * event are kept on DynamoDB); deliveries stored before ids named their event have none.
 */
export const DeliveryId = z
  .string()
  .regex(new RegExp(`^dlv_${ulidPart}([0-9A-HJKMNP-TV-Z]{6})?$`), 'must be an id starting with dlv_');
export const AttemptId = prefixedId('att');

/** ISO-8601 UTC timestamp with milliseconds, as `Date.prototype.toISOString` writes it. */
export const Timestamp = z.iso.datetime();

/** Event types are dotted lower-case words: `order.created`, `subscription.disabled`. */
export const EventType = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/, 'must be dotted lower-case words, like order.created');

/** The event types the dispatcher itself publishes into a partner's log. */
export const SUBSCRIPTION_DISABLED = 'subscription.disabled';
export const WEBHOOK_TEST = 'webhook.test';

/** Families of types reserved for the dispatcher: producers cannot publish them. */
const RESERVED_TYPE_PREFIXES = ['subscription.', 'webhook.'] as const;

export function isReservedEventType(type: string): boolean {
  return RESERVED_TYPE_PREFIXES.some((prefix) => type.startsWith(prefix));
}

/** A subscription's filter entry: an exact type, `prefix.*` for a family of types, or `*`. */
export const EventTypeFilter = z
  .string()
  .min(1)
  .max(128)
  .regex(
    /^(\*|[a-z0-9_-]+(\.[a-z0-9_-]+)*(\.\*)?)$/,
    'must be an event type (order.created), a family (order.*) or *',
  );

/** Any JSON value: what an event's payload may be. */
export const JsonValue = z.json();
export type JsonValue = z.infer<typeof JsonValue>;

export const Partner = z.object({
  id: PartnerId,
  name: z.string().min(1).max(200),
  createdAt: Timestamp,
});
export type Partner = z.infer<typeof Partner>;

/**
 * An API key's id: `key_` and the first 24 hex digits of the key's SHA-256, so any key, one
 * stored before keys had ids included, has one without a lookup.
 */
export const ApiKeyId = z.string().regex(/^key_[0-9a-f]{24}$/, 'must be an id starting with key_');

/** An API key as stored: its hash, never the key; `prefix` is the key's first characters. */
export const ApiKeyRecord = z.object({
  id: ApiKeyId,
  partnerId: PartnerId,
  hash: z.string().min(1),
  name: z.string().min(1).max(100),
  prefix: z.string(),
  createdAt: Timestamp,
  /** When the key was last used, to within API_KEY_LAST_USED_PRECISION_MS; absent: never. */
  lastUsedAt: Timestamp.optional(),
});
export type ApiKeyRecord = z.infer<typeof ApiKeyRecord>;

/**
 * What a producer names the events that must reach an ordered subscription in publish order:
 * an order, an account, a document. Up to 128 letters, digits and `.`, `_`, `-`, `:`, `/`, `@`,
 * `+`, `=`, `#`.
 */
export const OrderingKey = z
  .string()
  .regex(/^[A-Za-z0-9._:/@+=#-]{1,128}$/, 'must be 1 to 128 letters, digits or any of . _ - : / @ + = #');

export const Event = z.object({
  id: EventId,
  partnerId: PartnerId,
  type: EventType,
  payload: JsonValue,
  createdAt: Timestamp,
  idempotencyKey: z.string().min(1).max(255).optional(),
  orderingKey: OrderingKey.optional(),
  /**
   * The event's place among its ordering key's events: 1 for the key's first, then one more
   * for each, in the order the log stored them (no gaps, no repeats). Set by the log, exactly
   * when `orderingKey` is.
   */
  keySeq: z.number().int().positive().optional(),
});
export type Event = z.infer<typeof Event>;

/** A consumer's name: what a partner calls one of its readers (`billing`, `search-indexer`). */
export const ConsumerName = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/,
    'must be 1 to 64 letters, digits, dots, dashes or underscores, starting with a letter or digit',
  );

/**
 * A server-kept cursor over a partner's log: the last event its reader acknowledged (absent:
 * before the first), with that event's time, by which a position past the retention is known.
 */
export const ConsumerPosition = z.object({ eventId: EventId, createdAt: Timestamp });
export type ConsumerPosition = z.infer<typeof ConsumerPosition>;

export const Consumer = z.object({
  partnerId: PartnerId,
  name: ConsumerName,
  /** Only these event types; empty: all. */
  types: z.array(EventType),
  position: ConsumerPosition.optional(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});
export type Consumer = z.infer<typeof Consumer>;

export const SubscriptionStatus = z.enum(['active', 'disabled']);
export type SubscriptionStatus = z.infer<typeof SubscriptionStatus>;

/**
 * A signing secret (`whsec_`, shared with the partner) or signing key (`whsk_`, ours alone: the
 * partner verifies with its public key); during a rotation the old one keeps signing until
 * `expiresAt`.
 */
export const SigningSecret = z.object({
  secret: z.string().regex(/^(whsec_|whsk_)/),
  createdAt: Timestamp,
  expiresAt: Timestamp.optional(),
});
export type SigningSecret = z.infer<typeof SigningSecret>;

/**
 * How a subscription's deliveries reach the partner: POSTed to its `url`, or pushed down a
 * connection the partner opens (docs/connection-protocol.md), for a receiver the internet
 * cannot reach.
 */
export const SubscriptionTransport = z.enum(['url', 'connection']);
export type SubscriptionTransport = z.infer<typeof SubscriptionTransport>;

/**
 * How a subscription's callbacks are signed (Standard Webhooks): `hmac`, `v1` by a secret shared
 * with the partner; `ed25519`, `v1a` by a key of ours, which the partner verifies with its
 * public key, holding no secret.
 */
export const SignatureScheme = z.enum(['hmac', 'ed25519']);
export type SignatureScheme = z.infer<typeof SignatureScheme>;

/** How a subscription's deliveries are ordered: `key` keeps each ordering key's events in order. */
export const SubscriptionOrdering = z.enum(['key']);
export type SubscriptionOrdering = z.infer<typeof SubscriptionOrdering>;

export const Subscription = z.object({
  id: SubscriptionId,
  partnerId: PartnerId,
  /** Absent: `url` (every subscription stored before connections existed is one). */
  transport: SubscriptionTransport.optional(),
  /** Where callbacks go: set exactly when `transport` is `url`. */
  url: z.url().optional(),
  /** Empty means every event type. */
  eventTypes: z.array(EventTypeFilter),
  /**
   * Only events this pattern matches (over `{type, payload}`) are delivered; absent: every one.
   * Checked whole where it comes in (EventFilter at the API); read back as stored, so a rule
   * added later never makes a stored subscription unreadable.
   */
  filter: z.record(z.string(), z.unknown()).optional(),
  /** Absent: `hmac` (every subscription stored before signing keys existed is one). */
  signature: SignatureScheme.optional(),
  /**
   * `key`: the events of one ordering key reach it one at a time, in publish order
   * (functions/core/ordering.ts). Absent: no order is kept.
   */
  ordering: SubscriptionOrdering.optional(),
  /** The callback body is what this JSONata expression makes of the event (Transformer). */
  transformation: z.object({ jsonata: z.string() }).optional(),
  description: z.string().max(500).optional(),
  status: SubscriptionStatus,
  disabledReason: z.string().optional(),
  /** When the current run of failed tries began; absent while the endpoint is healthy. */
  failingSince: Timestamp.optional(),
  /** Newest first. */
  secrets: z.array(SigningSecret).min(1),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});
export type Subscription = z.infer<typeof Subscription>;
/** A subscription without its signing secrets: what readers that never sign (ops) see. */
export type SubscriptionRecord = Omit<Subscription, 'secrets'>;

/**
 * pending: not tried yet; failed: tried, another try is scheduled; succeeded; dead: the retry
 * schedule is used up; skipped: never tried, or not tried again, because it could not be (see
 * SkippedReason). succeeded, dead and skipped are final: nothing tries the delivery again
 * unless ops redrive its dead letter.
 */
export const DeliveryStatus = z.enum(['pending', 'succeeded', 'failed', 'dead', 'skipped']);
export type DeliveryStatus = z.infer<typeof DeliveryStatus>;

/**
 * Why a delivery was skipped: its subscription was disabled (a 410 Gone disables it at once)
 * or deleted, or its event expired (retention), before its next try; or its queue message
 * could not be sent, so nothing would ever try it (the request that created it was answered
 * 503, for the partner to retry).
 */
export const SkippedReason = z.enum([
  'subscription disabled',
  'subscription deleted',
  'event expired',
  'not queued',
]);
export type SkippedReason = z.infer<typeof SkippedReason>;

/**
 * Why a delivery exists: fan-out of a new event (at most one per event and subscription), or
 * a partner's request: redelivering an event, replaying a period, or a test event.
 */
export const DeliveryOrigin = z.enum(['fanout', 'redelivery', 'replay', 'test']);
export type DeliveryOrigin = z.infer<typeof DeliveryOrigin>;

/**
 * One event for one subscription. Its id is the `webhook-id` header: stable across the
 * retries of this delivery, new for a redelivery.
 */
export const Delivery = z.object({
  id: DeliveryId,
  eventId: EventId,
  subscriptionId: SubscriptionId,
  partnerId: PartnerId,
  eventType: EventType,
  origin: DeliveryOrigin,
  status: DeliveryStatus,
  attempts: z.number().int().nonnegative(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
  lastAttemptAt: Timestamp.optional(),
  nextAttemptAt: Timestamp.optional(),
  /** Set while the status is `skipped`. */
  skippedReason: SkippedReason.optional(),
});
export type Delivery = z.infer<typeof Delivery>;

export const AttemptErrorKind = z.enum([
  'timeout',
  'connection',
  'dns',
  'forbidden_target',
  'http_status',
  'response_too_large',
  // The subscription's transformation gave no body (an error, too long, too large): nothing was sent.
  'transformation',
]);
export type AttemptErrorKind = z.infer<typeof AttemptErrorKind>;

/** One HTTP try of a delivery. */
export const Attempt = z.object({
  id: AttemptId,
  deliveryId: DeliveryId,
  subscriptionId: SubscriptionId,
  partnerId: PartnerId,
  /** 1-based. */
  number: z.number().int().positive(),
  startedAt: Timestamp,
  durationMs: z.number().nonnegative(),
  statusCode: z.number().int().optional(),
  error: AttemptErrorKind.optional(),
  errorMessage: z.string().optional(),
  responseExcerpt: z.string().optional(),
});
export type Attempt = z.infer<typeof Attempt>;

/**
 * The lanes of the delivery path: deliveries to an endpoint that is failing (a failure since
 * its last success) go to the slow lane, which has invocations of its own, so a hanging or
 * failing endpoint never holds a batch of the healthy ones.
 */
export const DeliveryLane = z.enum(['main', 'slow']);
export type DeliveryLane = z.infer<typeof DeliveryLane>;

/**
 * What the fan-out queue carries for an event: enough to find its subscriptions; the
 * dispatcher loads the full event by id. The EventBridge Pipe writes it from a stream record
 * (functions/adapters/aws/pipe.ts) and the local router from an events row, in this shape.
 */
export interface EventRef {
  id: string;
  partnerId: string;
  type: string;
  createdAt: string;
  /** The event's ordering key and its place among the key's events (Event.keySeq), together. */
  orderingKey?: string;
  keySeq?: number;
}

/**
 * An EventRef as a queue carries it. The pipe, whose template cannot leave a field out, says
 * the ordering in one text, `ordering`: `<keySeq>/<orderingKey>`, or empty for an event with
 * no key; it is read into the two fields.
 */
const EventRefShape = z
  .object({
    id: EventId,
    partnerId: PartnerId,
    type: EventType,
    createdAt: Timestamp,
    orderingKey: OrderingKey.optional(),
    keySeq: z.number().int().positive().optional(),
    ordering: z.string().optional(),
  })
  .transform(({ ordering, ...ref }): EventRef => {
    const parsed = /^([1-9][0-9]{0,14})\/(.+)$/.exec(ordering ?? '');
    const key = parsed === null ? undefined : OrderingKey.safeParse(parsed[2]);
    if (parsed !== null && key?.success) return { ...ref, orderingKey: key.data, keySeq: Number(parsed[1]) };
    if (ref.orderingKey === undefined || ref.keySeq === undefined) {
      const { orderingKey: _key, keySeq: _seq, ...plain } = ref;
      return plain;
    }
    return ref;
  });
/**
 * What a fan-out queue message holds: an EventRef, as the pipe and the local router send it;
 * or, from a queue filled before the pipe sent to it directly, a bus event carrying one as its
 * detail.
 */
export const FanoutMessage = z.union([
  EventRefShape,
  z.object({ detail: EventRefShape }).transform((envelope) => envelope.detail),
]);

/**
 * What travels on the delivery queues: one message per try of a delivery. `attempt` and
 * `step` move on only with a real HTTP try, when the next message is queued; an error of the
 * dispatcher's own brings the same message back, so it spends no try. Messages queued before
 * these fields existed lack them: the dispatcher then takes them from the delivery.
 */
export const DeliveryMessage = z.object({
  deliveryId: DeliveryId,
  eventId: EventId,
  subscriptionId: SubscriptionId,
  partnerId: PartnerId,
  /** The try this message is for (1-based): a copy whose try the delivery has already recorded is stale. */
  attempt: z.number().int().positive().optional(),
  /** Its place in the retry schedule (0: the first try); a redrive from the dead-letter queue starts again at 0. */
  step: z.number().int().nonnegative().optional(),
  /** Absent: the main lane. */
  lane: DeliveryLane.optional(),
  /**
   * Set by a fan-out that queued the delivery without storing it (on AWS, for a subscription
   * in the main lane): the delivery's creation time and its event's type, so the dispatcher
   * can store it with its first try (or its skip, or its move to the slow lane).
   */
  unstored: z.object({ createdAt: Timestamp, eventType: EventType }).optional(),
  /**
   * A connection subscription's try waiting for a connection to open (none was): it spends no
   * try, and opening a connection makes it due at once.
   */
  waiting: z.literal(true).optional(),
  /**
   * A try of an ordered subscription's delivery that waits its turn in its key's line
   * (functions/core/ordering.ts): the dispatcher tries it only while it is the line's head.
   * A dead-lettered try leaves the line, so a redrive sends it on its own.
   */
  line: z.object({ key: OrderingKey, seq: z.number().int().positive() }).optional(),
});
export type DeliveryMessage = z.infer<typeof DeliveryMessage>;

/** A page of a partner-scoped listing: `next` is the cursor to pass as `after`, null at the end. */
export interface Page<T> {
  items: T[];
  next: string | null;
}
