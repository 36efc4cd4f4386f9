/**
 * What the core needs from the outside world: interfaces only. Each port has a SQLite adapter (the local
 * runtime) and a DynamoDB/SQS adapter (AWS); the contract suite in test/contract runs the same
 * tests against every adapter of a port.
 */
import type {
  ApiKeyRecord,
  Attempt,
  AttemptErrorKind,
  Consumer,
  ConsumerPosition,
  Delivery,
  DeliveryMessage,
  Event,
  EventRef,
  Page,
  Partner,
  SkippedReason,
  Subscription,
  SubscriptionRecord,
} from './model.ts';

export interface ListQuery {
  /** Cursor: the id of the last item of the previous page. */
  after?: string;
  limit: number;
}

export interface EventListQuery extends ListQuery {
  /** Only these event types; absent or empty means all. */
  types?: string[];
  /**
   * Only events created at or after this instant: ISO-8601 with any offset and precision,
   * compared as a time, never as text.
   */
  since?: string;
}

/** An event as it is published, before the log gives it its id. */
export type NewEvent = Omit<Event, 'id'>;

export interface AppendResult {
  /** The event as stored, with the id the log gave it. */
  event: Event;
  /** False when the partner already published an event with the same idempotency key. */
  created: boolean;
}

/** The partner-scoped, append-only log of events: what partners poll and what fan-out reads. */
export interface EventLog {
  /**
   * Stores the event under a new id, which puts it in the stream: the table's own stream on
   * DynamoDB, the events table read in commit order locally (SqliteOutbox). The id is the log's to
   * give: a ULID whose time is `createdAt` (on DynamoDB its other bits say where the event
   * is kept, so reading it by id takes one read). With an idempotency key the partner has
   * used before, stores nothing and returns the first event. An event with an ordering key
   * gets the key's next place (`keySeq`: 1, 2, 3… per partner and key, no gaps) in the same
   * transaction; appends of one key that one instance makes in turn take their places in that
   * order.
   */
  append(event: NewEvent): Promise<AppendResult>;
  get(partnerId: string, eventId: string): Promise<Event | undefined>;
  /**
   * The partner's events after the cursor, in commit order: an event committed later never
   * sorts before one already returned, so a poller following `next` never skips one.
   * @throws CursorNotFoundError when `after` is not one of the partner's events.
   */
  list(partnerId: string, query: EventListQuery): Promise<Page<Event>>;
  /**
   * Resolves once the partner's log may hold an event after the cursor `after` (undefined:
   * from the start) of one of `types` (absent or empty: any), or once `timeoutMs` have
   * passed, whichever comes first. It may resolve early: the caller lists again to see.
   * Waiting costs the log as little as it can (no read while nothing is appended, where the
   * log can tell; a few small reads otherwise).
   */
  waitForEvents(
    partnerId: string,
    query: Pick<EventListQuery, 'after' | 'types'>,
    timeoutMs: number,
  ): Promise<void>;
  /**
   * A cursor at the end of the partner's log as it is now (null: the log is empty): listing
   * after it gives only events appended later.
   */
  latestCursor(partnerId: string): Promise<string | null>;
  /**
   * How many events of the partner's log come after the cursor (null: all of them), of every
   * type: exact on SQLite; on DynamoDB the places taken after it, a hole counted as an event.
   */
  countAfter(partnerId: string, after: string | null): Promise<number>;
  /**
   * When a cursor of the partner's log stands: its event's `createdAt`, or when a cursor that
   * is not an event (past a hole, or the latest) was made; undefined for anything else.
   */
  cursorTime(partnerId: string, cursor: string): Promise<string | undefined>;
  /**
   * Where a reader at `cursor` goes on, once events may have expired: `expired` when an event
   * after the cursor has been deleted by the retention (reading on would skip it unseen);
   * otherwise the cursor to list after: the cursor itself, or undefined (from the oldest event
   * kept) when the cursor's own event was the last of the partner's to expire.
   */
  resumeAfter(
    partnerId: string,
    cursor: string,
  ): Promise<{ expired: true } | { expired: false; after?: string }>;
}

/** What saving a consumer came to: made, replaced, or refused at the partner's cap. */
export type ConsumerSaved = 'created' | 'replaced' | 'limit';

/** Consumers: server-kept cursors over a partner's log, one item per consumer. */
export interface ConsumerStore {
  /**
   * Creates the consumer, or replaces the one of that name; a new one is refused ('limit',
   * nothing written) when the partner already has `maxPerPartner`. With `keepPosition`, a
   * replace changes its types alone, so a commit made meanwhile stands.
   */
  save(
    consumer: Consumer,
    options: { maxPerPartner: number; keepPosition?: boolean },
  ): Promise<ConsumerSaved>;
  get(partnerId: string, name: string): Promise<Consumer | undefined>;
  /** The partner's consumers by name; `after` is a name. */
  list(partnerId: string, query: ListQuery): Promise<Page<Consumer>>;
  /** Moves the consumer to `position`; false when there is no such consumer. */
  commit(partnerId: string, name: string, position: ConsumerPosition, at: string): Promise<boolean>;
  /** False when there was no such consumer. */
  delete(partnerId: string, name: string): Promise<boolean>;
}

/** What adding or removing an API key came to. */
export type ApiKeyChange = 'done' | 'no-partner' | 'limit' | 'not-found' | 'last';

export interface PartnerStore {
  /**
   * Stores the partner with its first API key (its hash: the key itself is never stored).
   * Throws on a duplicate partner id or key hash, storing nothing.
   */
  create(partner: Partner, firstKey: ApiKeyRecord): Promise<void>;
  get(partnerId: string): Promise<Partner | undefined>;
  /** The key with this SHA-256 hash, or undefined: one read, for the authorizer. */
  findApiKey(apiKeyHash: string): Promise<ApiKeyRecord | undefined>;
  /**
   * Adds a key to its partner: 'no-partner' when there is no such partner, 'limit' when it
   * already has `maxPerPartner` keys (nothing is written then), 'done' otherwise.
   */
  addApiKey(key: ApiKeyRecord, options: { maxPerPartner: number }): Promise<ApiKeyChange>;
  /** The partner's keys, oldest first. */
  listApiKeys(partnerId: string): Promise<ApiKeyRecord[]>;
  /**
   * Removes one of the partner's keys: 'not-found' when it has no such key, 'last' when it is
   * its only key and `keepLast` is set (nothing is removed then), 'done' otherwise.
   */
  removeApiKey(partnerId: string, keyId: string, options: { keepLast: boolean }): Promise<ApiKeyChange>;
  /** Records that the key was used at `at`, unless its record already says `staleBefore` or later. */
  touchApiKey(key: ApiKeyRecord, at: string, staleBefore: string): Promise<void>;
}

/** A subscription's poor health, as ops list it. */
export type SubscriptionHealth = 'disabled' | 'failing';

export interface SubscriptionStore {
  /**
   * Creates a subscription with a new id, counted against its partner's cap: when the partner
   * already has `maxPerPartner` subscriptions (active or disabled), nothing is written and
   * SubscriptionLimitError is thrown. Exact under concurrent creates, also from other
   * processes or Lambda instances.
   */
  create(subscription: Subscription, options: { maxPerPartner: number }): Promise<void>;
  /**
   * Creates or replaces. With `expectedUpdatedAt`, replaces only the version read then:
   * a change written in between (a concurrent PATCH, a rotation, the dispatcher disabling it)
   * fails the write with StaleWriteError instead of being lost. A subscription created here
   * counts towards its partner's cap but is not refused by it (that is `create`'s job). Only
   * the subscription's own fields are written: its allowances (takeAllowance) are kept.
   */
  put(subscription: Subscription, options?: { expectedUpdatedAt?: string }): Promise<void>;
  /** Not partner-scoped: use cases check ownership. */
  get(subscriptionId: string): Promise<Subscription | undefined>;
  list(partnerId: string, query: ListQuery): Promise<Page<Subscription>>;
  /**
   * Every active subscription of the partner, whatever its event types (fan-out filters). For
   * listings that do not sign: a subscription whose secrets cannot be opened comes with none,
   * so it does not stop the partner's others (`get`, which the dispatcher signs with, fails).
   */
  listActive(partnerId: string): Promise<Subscription[]>;
  /** Deletes the subscription; true if it existed. */
  delete(subscriptionId: string): Promise<boolean>;
  /**
   * Every partner's subscriptions in that health, for ops: `disabled`, or `failing` (active,
   * with a failure since the last success). In an order the cursor (the last item's id) goes
   * on from: by id locally, the table's own order on DynamoDB.
   */
  listByHealth(health: SubscriptionHealth, query: ListQuery): Promise<Page<SubscriptionRecord>>;
  /** The subscription without its secrets, which are not opened: for readers that never sign. */
  describe(subscriptionId: string): Promise<SubscriptionRecord | undefined>;
  /**
   * The partner's connection subscriptions (any status) without their secrets, by id: what a
   * connection opened without a `subscription` serves.
   */
  listConnections(partnerId: string): Promise<SubscriptionRecord[]>;
  /**
   * Applies a change of endpoint health in place: only the health fields are written, so a
   * concurrent PATCH by the partner is never overwritten with a stale copy. `failing` keeps an
   * earlier `failingSince`; `disable` applies only to an active subscription, so of several
   * concurrent disablers exactly one sees `changed: true`. Undefined when the subscription is gone.
   */
  updateHealth(subscriptionId: string, change: HealthChange): Promise<HealthUpdate | undefined>;
  /**
   * Counts one use of a rate-limited partner action against the subscription's allowance: at
   * most `limit` uses in a window of `windowMs`, which opens at the first use after the
   * previous window closed. Written in place and conditionally on the subscription, so
   * concurrent callers (other API instances) share one allowance, and nothing else of the
   * subscription changes. Undefined when the subscription is gone.
   */
  takeAllowance(
    subscriptionId: string,
    action: RateLimitedAction,
    allowance: Allowance,
    now: Date,
  ): Promise<AllowanceResult | undefined>;
}

/**
 * Keeps signing secrets encrypted at rest, with a key the subscription stores do not hold:
 * the stores seal every secret they write and open every one they read, so the core only ever
 * sees them in the clear. A secret is bound to `context` (its subscription's id): opened under
 * another context, or altered, it fails.
 */
export interface SecretCipher {
  seal(secret: string, context: string): Promise<string>;
  /** @throws SecretUnreadableError when it does not open (another key, subscription, or altered) */
  open(sealed: string, context: string): Promise<string>;
}

/**
 * Counts a caller's requests in fixed windows, one count shared by every API instance (a
 * table item on AWS), so a caller's limit holds however many instances serve it.
 */
export interface RateLimiter {
  /**
   * Counts one request of `key` against `allowance` in the window that holds `now` (windows
   * start at multiples of `windowMs`); refused past the limit, with the time to the next
   * window. A request refused is not counted.
   */
  take(key: string, allowance: Allowance, now: Date): Promise<AllowanceResult>;
}

/** Partner actions limited per subscription, since each can send many callbacks. */
export type RateLimitedAction = 'replay' | 'test';

export interface Allowance {
  /** Uses per window. */
  limit: number;
  windowMs: number;
}

export type AllowanceResult = { allowed: true } | { allowed: false; retryAfterMs: number };

export type HealthChange =
  | { kind: 'failing'; since: string }
  | { kind: 'healthy' }
  | { kind: 'disable'; reason: string; at: string };

export interface HealthUpdate {
  subscription: Subscription;
  /** Whether this call changed anything (false: the change was already in place). */
  changed: boolean;
}

export interface DeliveryStore {
  /**
   * Creates the fan-out deliveries of one event that do not exist yet, keyed by
   * (eventId, subscriptionId), so a retried fan-out creates no duplicates; returns every one
   * of them as stored (existing ones unchanged).
   */
  createForEvent(deliveries: Delivery[]): Promise<Delivery[]>;
  /**
   * Creates deliveries a partner asked for (redelivery, replay, test): each one is new, never
   * matched against an earlier delivery of the same event and subscription.
   */
  create(deliveries: Delivery[]): Promise<void>;
  get(deliveryId: string): Promise<Delivery | undefined>;
  /**
   * Stores the attempt and the delivery's new state together. Two copies of one message can
   * be tried at once (queues deliver at least once), so the write is safe against a stale
   * copy: `attempts` becomes the attempt's number unless it is higher already (a try made by
   * two copies counts once; the value in `delivery` is not written), the new state is taken
   * only from the delivery's latest try, and a delivery that succeeded keeps its success (a
   * copy's failure never overwrites it, and a copy's success of the same try wins over a
   * failure). The attempt itself is always stored.
   */
  recordAttempt(attempt: Attempt, delivery: Delivery): Promise<void>;
  /**
   * Stores a fan-out delivery that was queued without being stored, with its first attempt,
   * in one write, only if no delivery with its id is stored yet. When one is (another copy of
   * the message got there first), the attempt is recorded against it as recordAttempt does.
   */
  createWithAttempt(attempt: Attempt, delivery: Delivery): Promise<void>;
  /**
   * Ends a delivery that will not be tried (again): status `skipped` with the reason, no next
   * try, `updatedAt` = `at`. Conditional, like recordAttempt, so a stale message copy cannot
   * undo a success: a delivery that succeeded is left as it is. Returns whether the delivery
   * is now skipped by this call (false: it succeeded, or it is unknown).
   */
  skip(deliveryId: string, reason: SkippedReason, at: string): Promise<boolean>;
  /** Newest first. */
  listBySubscription(subscriptionId: string, query: ListQuery): Promise<Page<Delivery>>;
  /** Newest first. */
  listByEvent(partnerId: string, eventId: string, query: ListQuery): Promise<Page<Delivery>>;
  /** Oldest first. */
  listAttempts(deliveryId: string): Promise<Attempt[]>;
}

export interface OutgoingMessage<T> {
  body: T;
  /** Seconds before the message becomes visible (SQS DelaySeconds, at most 900). */
  delaySeconds?: number;
  /**
   * The tenant the message belongs to (SQS fair queues' MessageGroupId on a standard queue):
   * a consumer keeps one group's backlog or slowness from holding back the others.
   */
  groupId?: string;
}

export interface QueueSender<T> {
  /**
   * Sends every message or throws; partial failures are retried inside the adapter. When it
   * knows which messages were not sent, it throws MessagesNotSentError naming them; any other
   * error means none of them may have been sent.
   */
  send(messages: OutgoingMessage<T>[]): Promise<void>;
}

/**
 * Where the dispatcher puts a delivery's next try. `send` takes any `delaySeconds`, however
 * long: the adapter holds a wait the queue cannot (SQS delays at most 900 s) outside it, so
 * no waiting try is ever held in flight, and it puts each message in the lane its body names.
 */
export interface DeliveryQueue extends QueueSender<DeliveryMessage> {
  /**
   * Whether a slow lane of its own serves failing endpoints (on AWS); without one (locally,
   * where the poller shares out slots per subscription) the dispatcher never moves a message.
   */
  readonly hasSlowLane: boolean;
  /** Puts a delivery whose schedule is used up in the dead-letter queue, for ops to redrive. */
  deadLetter(message: DeliveryMessage): Promise<void>;
}

/** A delivery's try waiting outside the queues until shortly before it is due. */
export interface DueRetry {
  message: DeliveryMessage;
  groupId?: string;
  /** When the try should be made (ISO-8601). */
  dueAt: string;
}

/**
 * Tries whose wait is longer than a queue can delay a message, kept until they come due, so
 * nothing waits in flight. The sweeper moves them into the queues shortly before their time.
 */
export interface DueRetryStore {
  put(retries: readonly DueRetry[]): Promise<void>;
  /** Up to `limit` retries due before `horizon`, soonest first (roughly: across shards). */
  due(horizon: Date, limit: number): Promise<DueRetry[]>;
  /** Removes retries `due` returned, once they are queued; removing one already gone is no error. */
  remove(retries: readonly DueRetry[]): Promise<void>;
}

/** The events written in a span of time, whatever their partner: what the pipe may have missed. */
export interface EventWindowReader {
  /** Pages of the events written from `from` to `to` (both included), in no particular order. */
  writtenBetween(from: Date, to: Date): AsyncIterable<EventRef[]>;
}

/** A dead-letter queue read to be emptied: each message, then its deletion once handled. */
export interface DeadLetterSource {
  /** Up to ten messages, at once (no wait); none when the queue is empty. */
  receive(): Promise<{ messageId: string; body: string; receiptHandle: string }[]>;
  delete(receiptHandle: string): Promise<void>;
}

export interface Clock {
  now(): Date;
}

export interface CallbackRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
}

/** What one HTTP try produced: a status code, or the kind of error that prevented one. */
export interface CallbackResult {
  statusCode?: number;
  error?: AttemptErrorKind;
  errorMessage?: string;
  /** The first bytes of the response body, for the attempt log. */
  responseExcerpt?: string;
  /** The wait a 429 or 503 asked for with Retry-After, in seconds. */
  retryAfterSeconds?: number;
  durationMs: number;
}

/** One try of a connection subscription's delivery: what a callback would POST, to push instead. */
export interface PushRequest {
  partnerId: string;
  subscriptionId: string;
  deliveryId: string;
  attempt: number;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
}

/**
 * Pushes tries of connection subscriptions down the connections partners open
 * (docs/connection-protocol.md), and waits for each one's answer.
 */
export interface ConnectionPusher {
  /** Whether a connection that takes the subscription's deliveries is open now. */
  isOpen(partnerId: string, subscriptionId: string): Promise<boolean>;
  /**
   * Sends the try down one open connection of the subscription and resolves with what came of
   * it, as an HTTP try's result: the status the agent acknowledged or refused with, a timeout
   * when no answer came in `timeoutMs`, or a connection error when the connection closed
   * first. Undefined, having sent nothing, when no connection of the subscription is open.
   */
  push(request: PushRequest): Promise<CallbackResult | undefined>;
  /**
   * Keeps a try until a connection of its subscription opens, instead of the delayed message
   * `deliver` queues otherwise (a runtime whose queue cannot release a delayed message early
   * parks them: AWS). Resolves `parked`, or `open` when a connection opened as it parked and
   * the try was taken back: it is the caller's to push now.
   */
  park?(parked: ParkedTry): Promise<'parked' | 'open'>;
}

/** A try waiting for a connection: the message that will make it, and its group. */
export interface ParkedTry {
  partnerId: string;
  subscriptionId: string;
  message: DeliveryMessage;
  groupId: string;
}

/** A partner's connection as the registry keeps it (AWS: the connections table). */
export interface RegisteredConnection {
  connectionId: string;
  partnerId: string;
  /** The API key it was opened with: revoking the key closes it. */
  keyId: string;
  /** That key's hash (its record's lookup key): each ping checks the key is still live. */
  keyHash: string;
  /** Only this subscription's deliveries; absent: every connection subscription of the partner. */
  subscriptionId?: string;
  /** The subscriptions it served when it opened (told in `hello`). */
  subscriptions: string[];
  /** Whether `hello` went: only then is it sent deliveries. */
  ready: boolean;
  /** Whether its subscriptions' parked tries are still being released, a batch a ping. */
  releasing: boolean;
}

/**
 * The open connections of a WebSocket API whose server keeps no state between frames (API
 * Gateway): who opened each, whether it is ready, and the answers its agent sent.
 */
export interface ConnectionRegistry {
  /** How many connections the partner has open. */
  count(partnerId: string): Promise<number>;
  open(connection: RegisteredConnection, at: Date): Promise<void>;
  /** Records that the connection sent a frame; undefined when it is not (or no longer) open. */
  heard(connectionId: string, at: Date): Promise<RegisteredConnection | undefined>;
  /** Marks it ready for deliveries, once `hello` went, with its parked tries to release. */
  ready(connection: RegisteredConnection): Promise<void>;
  /** Marks its parked tries released, every one. */
  released(connection: RegisteredConnection): Promise<void>;
  /** Forgets it (it closed). */
  close(connectionId: string): Promise<void>;
  /** Keeps an answer for the dispatcher waiting on it. */
  answer(connectionId: string, answer: ConnectionAnswer, at: Date): Promise<void>;
}

/** An ack or a nack as an agent sent it (docs/connection-protocol.md). */
export type ConnectionAnswer =
  | { type: 'ack'; deliveryId: string; attempt: number; status: number }
  | { type: 'nack'; deliveryId: string; attempt: number; status?: number; error?: string };

/**
 * What became of frames sent down a connection: all `sent`; the connection `gone`; or
 * `refused` by the gateway (its buffer for the connection full, a frame too large), a reason.
 */
export type PostResult = 'sent' | 'gone' | { refused: string };

/** Sends frames down connections of a WebSocket API, and closes them. */
export interface ConnectionSender {
  /** Sends the frames in order, stopping at the first not sent. */
  post(connectionId: string, frames: readonly string[]): Promise<PostResult>;
  close(connectionId: string): Promise<void>;
}

/** What one release of a subscription's parked tries did. */
export interface Release {
  /** Tries queued for delivery. */
  released: number;
  /** Parked items that could not be read, left where they are. */
  unreadable: number;
  /** Whether tries are left to release (more than the batch, or some not taken this time). */
  more: boolean;
}

/** Tries parked until a connection opens (ConnectionPusher.park). */
export interface ParkedTries {
  /** Queues at most `limit` of the subscription's parked tries for delivery now. */
  release(subscriptionId: string, limit: number): Promise<Release>;
}

/** A delivery waiting its turn in an ordered subscription's line for one ordering key. */
export interface LineEntry {
  /** Its event's place among the key's events (Event.keySeq). */
  seq: number;
  deliveryId: string;
  eventId: string;
  partnerId: string;
}

/** A line's head: its entry, and the try last taken for one message (0: none yet) and when (epoch ms). */
export interface LineHead extends LineEntry {
  taken: number;
  takenAt: number;
}

/**
 * What keeps ordered subscriptions' deliveries in their keys' order (functions/core/ordering.ts):
 * - the **gate**, per partner and ordering key: the key's events are fanned out one after the
 *   other, in key order; an event that comes before its predecessor was fanned out is parked
 *   until it has been;
 * - the **lines**, per subscription and ordering key: the deliveries waiting, in key order, and
 *   the head, the one being tried. Only the head is tried.
 * Every write is idempotent, and each claim conditional, so concurrent or repeated handling of
 * one message never breaks the order.
 */
export interface OrderedLines {
  /** The key's place fanned out through: every event of the key up to it has been (0: none). */
  fannedThrough(partnerId: string, key: string): Promise<number>;
  /** Moves the gate from `from` to `to`; false (and nothing written) if it was not at `from`. */
  advanceGate(partnerId: string, key: string, from: number, to: number): Promise<boolean>;
  /** Parks an event whose predecessor has not been fanned out yet (a second park of it is a no-op). */
  park(ref: EventRef & { orderingKey: string; keySeq: number }): Promise<void>;
  /** The event parked at the key's place `seq`, if one is. */
  parked(partnerId: string, key: string, seq: number): Promise<EventRef | undefined>;
  unpark(partnerId: string, key: string, seq: number): Promise<void>;
  /** Puts a delivery into the subscription's line for the key (a no-op if it is there). */
  append(subscriptionId: string, key: string, entry: LineEntry): Promise<void>;
  /** The line's head, if a delivery is being tried. */
  head(subscriptionId: string, key: string): Promise<LineHead | undefined>;
  /** The line's first entry: the head's, or the next to go. */
  first(subscriptionId: string, key: string): Promise<LineEntry | undefined>;
  /** Both, the head read first (lineOf in ordering.ts): an idle line shows no entry already finished. */
  line(subscriptionId: string, key: string): Promise<{ head?: LineHead; first?: LineEntry }>;
  /**
   * Makes `entry` the line's head (no try taken yet) if the line has none and the entry is
   * still in it; false otherwise (a start that comes after the entry's turn ended claims nothing).
   */
  claim(subscriptionId: string, key: string, entry: LineEntry): Promise<boolean>;
  /**
   * Takes the head's try number `attempt` for one message, so that two copies of a message
   * never try at once: true when the head is the entry at `seq` and no try from `attempt` on
   * has been taken, or this one was taken more than `leaseMs` before `at` (its taker died).
   */
  take(
    subscriptionId: string,
    key: string,
    seq: number,
    attempt: number,
    at: Date,
    leaseMs: number,
  ): Promise<boolean>;
  /** Gives back a try taken and not made (its message was queued again untried): it may be taken again. */
  untake(subscriptionId: string, key: string, seq: number, attempt: number): Promise<void>;
  /** Takes the entry at `seq` out of the line, and the head with it if the head is that entry. */
  finish(subscriptionId: string, key: string, seq: number): Promise<void>;
}

/** What is wrong with a transformation's expression, and where (a character offset), if known. */
export interface ExpressionIssue {
  message: string;
  position?: number;
}

/** A transformation's outcome: the body to send, as JSON text, or why there is none. */
export type TransformResult = { body: string } | { error: string };

/**
 * Evaluates subscriptions' declarative transformations (JSONata) of the callback body, bounded
 * in time and memory and in the size of what they give: no partner code runs.
 */
export interface Transformer {
  /**
   * Why the expression may not be used (its syntax, a part not allowed), or undefined if it may.
   * @throws ServiceUnavailableError when it could not be checked now
   */
  check(expression: string): Promise<ExpressionIssue | undefined>;
  /** The expression evaluated over `input`, as JSON text, or why it gave none. */
  apply(expression: string, input: unknown): Promise<TransformResult>;
}

/** Sends one signed callback; never throws for what the target did (that is a result). */
export interface CallbackSender {
  send(request: CallbackRequest): Promise<CallbackResult>;
}

/** DNS: every address a host name resolves to (A and AAAA). */
export interface AddressResolver {
  resolve(hostname: string): Promise<string[]>;
}

/** What a queue is for, as ops see it: a work queue a function consumes, or a dead-letter queue. */
export type QueueKind = 'work' | 'dead-letter';

/** One queue of the deployment by name and kind: what is known of it without a call. */
export interface QueueLayout {
  /** Its short name, the same on both runtimes where both have it: `delivery`, `delivery-dlq`, … */
  name: string;
  kind: QueueKind;
  /** For a dead-letter queue: the queue its redrive sends messages to. */
  redrivesTo?: string;
}

/** One queue of the deployment, with its depths at the time of the call. */
export interface QueueInfo extends QueueLayout {
  /** Receivable now. */
  visible: number;
  /** Received and hidden until their visibility timeout ends. */
  inFlight: number;
  /** Sent with a delay that has not ended. */
  delayed: number;
  /** Seconds since the oldest message was sent; null when the queue is empty (or it is not known). */
  oldestAgeSeconds: number | null;
}

/** A message as a dead-letter queue holds it: the body undecoded, and when it came. */
export interface StoredDeadLetter {
  messageId: string;
  body: string;
  /** When the message was first sent (to this queue, or to the queue it was dead-lettered from). */
  sentAt: Date;
  /** When it was put into the dead-letter queue, where the queue knows (locally it does). */
  deadLetteredAt?: Date;
  /** How often it had been received before it came here (0: sent here directly). */
  receiveCount: number;
}

export type RedriveStatus = 'running' | 'completed' | 'cancelling' | 'cancelled' | 'failed';

/** A redrive: messages moving from a dead-letter queue back to where they are handled. */
export interface RedriveTask {
  /** The task's handle: SQS's TaskHandle on AWS. */
  id: string;
  queue: string;
  destination: string;
  status: RedriveStatus;
  /** Moved so far. */
  moved: number;
  /** How many it set out to move, where known. */
  toMove: number | null;
  /** The pace asked for; absent: as fast as the queues go. */
  maxPerSecond?: number;
  startedAt: string;
  failureReason?: string;
}

/**
 * The deployment's queues as ops handle them: SQS on AWS, the SQLite queues locally. A name
 * the deployment has no queue by fails with QueueNotFoundError.
 */
export interface OpsQueues {
  /** Every queue, in describe's order, without reading a depth. */
  layout(): readonly QueueLayout[];
  /** Every queue, work queues first, each with its dead-letter queue after it. */
  describe(): Promise<QueueInfo[]>;
  /** Up to `limit` messages of a dead-letter queue, oldest first, left where they are. */
  peek(queue: string, limit: number): Promise<StoredDeadLetter[]>;
  /**
   * Starts moving a dead-letter queue's messages back to its `redrivesTo` queue: every one
   * visible now, or at most `max`, at most `maxPerSecond` a second. One redrive of a queue runs
   * at a time: another one still running fails with RedriveInProgressError.
   */
  startRedrive(queue: string, options: { max?: number; maxPerSecond?: number }): Promise<RedriveTask>;
  /** The queue's recent redrives, newest first. */
  redrives(queue: string): Promise<RedriveTask[]>;
  /** Stops a running redrive; what moved stays moved. */
  cancelRedrive(queue: string, taskId: string): Promise<RedriveTask>;
  /** Deletes every message of a dead-letter queue; how many, where known. */
  purge(queue: string): Promise<{ purged: number | null }>;
}

/** Callbacks by outcome in one minute, as the dispatcher's metrics count them. */
export interface DeliveryRateMinute {
  /** The minute's start (ISO-8601). */
  minute: string;
  succeeded: number;
  /** Tries that failed, their next one queued. */
  failed: number;
  dead: number;
  skipped: number;
}

/** The dispatcher's outcome counts, a minute at a time: locally kept in memory, on AWS its CloudWatch metrics. */
export interface DeliveryRateSource {
  /** The last `minutes` minutes, the current one included, oldest first; a minute without outcomes has zeros. */
  lastMinutes(minutes: number): Promise<DeliveryRateMinute[]>;
}
