/**
 * A time-stepped simulation of the dispatcher's AWS pipeline, in aggregated counts:
 *
 *   producers → API Gateway (stage and account throttles) → API Lambda → event log (DynamoDB)
 *   → stream → pipe (ParallelizationFactor batches per shard at a time, one SendMessageBatch
 *   each) → fan-out queue → fan-out Lambda → delivery queue(s) → dispatcher Lambda → callback
 *
 * Messages move as cohorts (a count with its publish time, send time, endpoint kind and tries
 * made). Every stage has a capacity taken from AWS's published quotas (functions/aws-quotas.ts)
 * or the project's own settings, and from the latencies in `ASSUMPTIONS`; work over capacity
 * waits, and the waits are what the latency percentiles measure. The delivery queues keep the
 * SQS semantics that matter at scale: best-effort ordering (oldest send first), hidden messages
 * counting as in flight, a receive returning nothing once the queue holds its in-flight quota,
 * DelaySeconds up to 15 minutes (not in flight), retention, and event sources that scale up by
 * 300 batches a minute up to their MaximumConcurrency and share the account's Lambda
 * concurrency. Randomness (jitter) comes from a seeded generator: the same inputs give the same
 * result.
 */
import { EVENT_STRIPES } from '../functions/adapters/aws/events.ts';
import { PER_ITEM as RATE_COUNT_PER_ITEM } from '../functions/adapters/aws/rate-limiter.ts';
import { API_GATEWAY, DYNAMODB, LAMBDA, PIPES, SQS, SQS_EVENT_SOURCE } from '../functions/aws-quotas.ts';
import { retryDelaySeconds } from '../functions/core/retry.ts';

/**
 * How a failed try waits for the next one. `visibility`: the message is hidden for the wait
 * (ChangeMessageVisibility), in one delivery queue, full jitter. `scheduled`: the message is
 * deleted and the next try is a new message (DelaySeconds up to 15 minutes, longer waits as
 * due items that a sweeper queues), in a slow lane while the endpoint is failing.
 */
export type DeliveryDesign = 'visibility' | 'scheduled';
export const DELIVERY_DESIGNS: readonly DeliveryDesign[] = ['visibility', 'scheduled'];

/** How the event log appends. */
export interface EventLogDesign {
  /**
   * `seq-counter`: every append reads the partner's `SEQ` item and moves it in the same
   * transaction as the event (functions/adapters/aws/events.ts): one partner's appends are
   * serialized (the log before functions/adapters/aws/events.ts spread it). `counter-add`:
   * the counter is moved by an atomic ADD, one per partner per request (the appends of one
   * request share it), the event a plain write, conditional on an empty place, under an id
   * that says its seq (the log as built). `append-only`: plain writes, nothing shared between appends.
   */
  readonly kind: 'seq-counter' | 'counter-add' | 'append-only';
  /** Partition keys one partner's events are spread over (1: the partner id, as today). */
  readonly keysPerPartner: number;
}
/** The log before it was spread: a counter transaction per append, one key per partner. */
export const SEQ_COUNTER_EVENT_LOG: EventLogDesign = { kind: 'seq-counter', keysPerPartner: 1 };
/** The log as built (functions/adapters/aws/events.ts): an ADD per request, EVENT_STRIPES keys. */
export const PROJECT_EVENT_LOG: EventLogDesign = { kind: 'counter-add', keysPerPartner: EVENT_STRIPES };

export const ENDPOINT_KINDS = ['healthy', 'dead', 'hanging'] as const;
export type EndpointKind = (typeof ENDPOINT_KINDS)[number];

/** The project's settings the model runs on; capacity/scenarios.ts reads them from the code. */
export interface PipelineSettings {
  readonly retrySchedule: readonly number[];
  readonly deliveryTimeoutMs: number;
  /** The dispatcher function's timeout: the delivery timeout plus 20 s. */
  readonly dispatcherTimeoutSeconds: number;
  /** Visibility timeout of a queue, in function timeouts. */
  readonly visibilityTimeoutFactor: number;
  readonly dispatcherMaxConcurrency: number;
  readonly slowLaneMaxConcurrency: number;
  readonly fanoutMaxConcurrency: number;
  readonly fanoutBatchSize: number;
  readonly dispatcherBatchSize: number;
  readonly dueSweepIntervalSeconds: number;
  readonly dueLookaheadSeconds: number;
  /** Partitions the due retries are written over. */
  readonly dueShards: number;
  /** How long one sweep keeps starting rounds. */
  readonly sweepBudgetSeconds: number;
  /** Stream records per pipe batch, one SendMessageBatch to the fan-out queue (at most 10). */
  readonly pipeBatchSize: number;
  /** The HTTP API stage's throttle, shared by every producer. */
  readonly stageThrottle: { readonly rateLimit: number; readonly burstLimit: number };
  /** Requests per second one producer may make, counted by the API function in one item per second. */
  readonly producerRequestsPerSecond: number;
  /** Events one request of the batch route carries at most. */
  readonly maxEventsPerRequest: number;
  /** A subscription failing this long without one success is disabled. */
  readonly disableAfterSeconds: number;
  /** How long the delivery queue keeps a message. */
  readonly deliveryRetentionSeconds: number;
  /** Batches of one stream shard the pipe sends at once. */
  readonly pipeParallelizationFactor: number;
}

/**
 * What AWS does not publish and the model has to assume: latencies of calls, and the sizes and
 * shapes of the project's own work. Each is a typical figure, not a quota.
 */
export const ASSUMPTIONS = {
  /**
   * Event item size: a 1 KB published event is stored as an item of 1,172 bytes (its
   * payload as JSON text, its id, keys, type and times; `npm run cost` measures it), so two
   * write units. An append writes it, the counter and (seq-counter, append-only) an `ID#`
   * pointer.
   */
  eventKb: 1172 / 1024,
  /** API Gateway (an IAM-authorized route), the caller's request count and the API function around the append. */
  apiOverheadSeconds: 0.02,
  /** A consistent GetItem, and a TransactWriteItems, each in single-digit milliseconds. */
  counterReadSeconds: 0.004,
  transactionSeconds: 0.012,
  /** DynamoEventLog's defaults: tries of a contended append, and their jittered backoff. */
  appendMaxAttempts: 40,
  appendBackoffBaseSeconds: 0.005,
  appendBackoffCapSeconds: 0.2,
  /** A plain (append-only) write, and how long a throttled one is retried by the SDK. */
  writeSeconds: 0.008,
  appendOnlyMaxWaitSeconds: 1,
  /** A pipe polls each stream shard every so often (taken as 0.25 s). */
  streamPollSeconds: 0.25,
  /** The pipe's SendMessageBatch of one batch to the fan-out queue (an SQS call, tens of milliseconds). */
  sendBatchSeconds: 0.02,
  /** One fan-out batch: list subscriptions, write deliveries, SendMessageBatch (records side by side). */
  fanoutBatchSeconds: 0.06,
  /** Before and after each try of a batch: DynamoDB reads, the attempt record, health. */
  dispatchOverheadSeconds: 0.025,
  /** Moving a message to the slow lane untried (one SendMessage, the delete). */
  moveSeconds: 0.01,
  /** Callback latency of a healthy endpoint, uniform in this range. */
  healthyLatencySeconds: [0.05, 0.3] as const,
  /** A dead endpoint fails fast: connection refused or a 5xx. */
  deadLatencySeconds: 0.05,
  /** One sweep round: Query every shard, SendMessageBatch, BatchWrite deletes (side by side), of sweepDueRetries' default page. */
  sweepRoundSeconds: 0.1,
  sweepPageSize: 500,
} as const;
type Widened<T> = T extends number
  ? number
  : T extends readonly [number, number]
    ? readonly [number, number]
    : T;
/** The assumptions' shape, any figures: what a run may take instead of `ASSUMPTIONS`. */
export type Assumptions = { readonly [K in keyof typeof ASSUMPTIONS]: Widened<(typeof ASSUMPTIONS)[K]> };

export interface Scenario {
  readonly name: string;
  readonly summary: string;
  /** Events producers try to publish per second, spread evenly over the partners. */
  readonly offeredPerSecond: number;
  /** Producers (IAM identities) publishing them, each with its own request limit. */
  readonly producers: number;
  /** Events per publish request: 1 for POST /v1/events, up to the batch route's maximum. */
  readonly eventsPerRequest: number;
  readonly durationSeconds: number;
  /** Simulation step: the resolution of arrivals, timers and throttles. */
  readonly stepSeconds: number;
  /** Subscriptions by endpoint kind; each partner has one subscription. */
  readonly endpoints: Readonly<Record<EndpointKind, number>>;
  readonly seed: number;
}

export interface ModelOptions {
  readonly settings: PipelineSettings;
  readonly design: DeliveryDesign;
  readonly eventLog: EventLogDesign;
  readonly assumptions?: Assumptions;
}

/** Where every offered event and every delivery is at the end: the books balance exactly. */
export interface Ledger {
  offered: number;
  /** Answered 429 by API Gateway's throttles. */
  throttled: number;
  /** Answered 503 or 500: the log's contention gave up, or Lambda was out of concurrency. */
  rejected: number;
  /** Still being appended when the run ended. */
  publishing: number;
  /** Appended to the log (202). */
  accepted: number;
  /** Accepted, not fanned out yet (stream, pipe, fan-out queue). */
  upstream: number;
  /** Dropped by the fan-out queue's retention before fan-out took them. */
  expiredEvents: number;
  /** Fanned out to a disabled subscription: no delivery. */
  notDelivered: number;
  deliveries: number;
  succeeded: number;
  deadLettered: number;
  /** Received after the subscription was disabled: ended skipped. */
  skipped: number;
  /** Dropped by the queue's retention before anyone received them. */
  expired: number;
  /** Queued, hidden, delayed or due at the end. */
  pending: number;
}

export interface ScenarioResult {
  readonly name: string;
  readonly design: DeliveryDesign;
  readonly eventLog: EventLogDesign;
  readonly durationSeconds: number;
  readonly offeredPerSecond: number;
  readonly ledger: Ledger;
  /** Deliveries to healthy subscriptions, their callbacks, and publish → callback percentiles. */
  readonly healthy: {
    readonly deliveries: number;
    readonly callbacks: number;
    /** Accepted events for healthy subscriptions without a callback at the end (still on their way). */
    readonly withoutCallback: number;
    /** Of the callbacks made; 0 when there were none. */
    readonly p50Seconds: number;
    readonly p99Seconds: number;
    /** p99 of the events published after the first tenth of the run (its onset left out); null if none was called back. */
    readonly settledP99Seconds: number | null;
  };
  /** Most messages in flight in one delivery queue (its quota is SQS.standardInFlight). */
  readonly peakInFlight: number;
  /** When a delivery queue first held its in-flight quota, in seconds from the start. */
  readonly inFlightQuotaReachedAt: number | null;
  readonly peakLambdaConcurrency: number;
  /** Appends one partner can make per second with this log design. */
  readonly partnerLogCeiling: number;
  /** The limits that held work back, each with its figure. */
  readonly limits: readonly string[];
  /** Per hour: healthy deliveries created, healthy callbacks, and the delivery queues' in flight. */
  readonly hourly: {
    readonly healthyCreated: readonly number[];
    readonly healthyCallbacks: readonly number[];
    readonly peakInFlight: readonly number[];
  };
}

type Kind = 0 | 1 | 2;
const HEALTHY: Kind = 0;
const DEAD: Kind = 1;
const HANGING: Kind = 2;
const KINDS: readonly Kind[] = [HEALTHY, DEAD, HANGING];
type PerKind = [number, number, number];

/** Events on their way from the API to fan-out: `n` arriving evenly over `spread` seconds around `ready`. */
interface EventCohort {
  n: number;
  born: number;
  ready: number;
  spread: number;
}

/** Delivery messages alike in all that matters. */
interface Message {
  n: number;
  /** When the event was published. */
  born: number;
  /** SentTimestamp: the queue serves older sends first (best-effort ordering). */
  sent: number;
  /** When it can be received: for messages sent over a window, the window's middle. */
  visible: number;
  /** Seconds over which the messages were sent (fan-out's output); 0 for one instant. */
  spread: number;
  kind: Kind;
  /** HTTP tries made (visibility design: receives, which the queue counts). */
  tries: number;
}

/** mulberry32: small, fast and seedable. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Latencies on a log scale, 1 ms to about 100 days, 100 bins a decade. */
class Histogram {
  static readonly #PER_DECADE = 100;
  readonly #bins = new Float64Array(10 * Histogram.#PER_DECADE);
  #total = 0;

  add(seconds: number, weight: number): void {
    const at = Math.floor((Math.log10(Math.max(seconds, 1e-3)) + 3) * Histogram.#PER_DECADE);
    const bin = Math.min(this.#bins.length - 1, Math.max(0, at));
    this.#bins[bin] = (this.#bins[bin] ?? 0) + weight;
    this.#total += weight;
  }

  /** The upper edge of the bin holding quantile q; null when empty. */
  quantile(q: number): number | null {
    if (this.#total === 0) return null;
    let seen = 0;
    for (let bin = 0; bin < this.#bins.length; bin++) {
      seen += this.#bins[bin] ?? 0;
      if (seen >= q * this.#total) return 10 ** ((bin + 1) / Histogram.#PER_DECADE - 3);
    }
    return 10 ** (this.#bins.length / Histogram.#PER_DECADE - 3);
  }
}

/** A FIFO without Array#shift's cost. */
class Fifo<T> {
  #items: T[] = [];
  #head = 0;

  get size(): number {
    return this.#items.length - this.#head;
  }
  push(item: T): void {
    this.#items.push(item);
  }
  peek(): T | undefined {
    return this.#items[this.#head];
  }
  shift(): T | undefined {
    const item = this.#items[this.#head];
    if (item === undefined) return undefined;
    this.#head++;
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }
  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = this.#head; i < this.#items.length; i++) {
      const item = this.#items[i];
      if (item !== undefined) yield item;
    }
  }
}

/** A binary min-heap of messages by send time: what a receive sees first. */
class SendOrder {
  readonly #items: Message[] = [];
  count = 0;

  get size(): number {
    return this.#items.length;
  }
  peek(): Message | undefined {
    return this.#items[0];
  }
  push(message: Message): void {
    const items = this.#items;
    items.push(message);
    this.count += message.n;
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = items[parent];
      if (p === undefined || p.sent <= message.sent) break;
      items[i] = p;
      i = parent;
    }
    items[i] = message;
  }
  pop(): Message | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (top === undefined || last === undefined) return undefined;
    this.count -= top.n;
    if (items.length === 0) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      let smallestSent = last.sent;
      const l = items[left];
      if (l !== undefined && l.sent < smallestSent) {
        smallest = left;
        smallestSent = l.sent;
      }
      const r = items[right];
      if (r !== undefined && r.sent < smallestSent) smallest = right;
      if (smallest === i) break;
      const child = items[smallest];
      if (child === undefined) break;
      items[i] = child;
      i = smallest;
    }
    items[i] = last;
    return top;
  }
  *[Symbol.iterator](): IterableIterator<Message> {
    yield* this.#items;
  }
}

/** API Gateway's throttle: a token bucket of `burst` tokens refilled at `rate` a second. */
class TokenBucket {
  readonly rate: number;
  readonly burst: number;
  #tokens: number;
  constructor(rate: number, burst: number) {
    this.rate = rate;
    this.burst = burst;
    this.#tokens = burst;
  }
  /** Requests granted of `wanted` arriving over `seconds`: the bucket's tokens plus the refill. */
  take(wanted: number, seconds: number): number {
    const available = this.#tokens + this.rate * seconds;
    const granted = Math.min(wanted, Math.floor(available));
    this.#tokens = Math.min(this.burst, available - granted);
    return granted;
  }
}

/** Takes a share of whole counts, carrying the fractions, so the shares add up exactly. */
class Share {
  #carry = 0;
  take(n: number, fraction: number): number {
    if (fraction <= 0 || n === 0) return 0;
    if (fraction >= 1) return n;
    this.#carry += n * fraction;
    const taken = Math.min(n, Math.floor(this.#carry + 1e-9));
    this.#carry -= taken;
    return taken;
  }
}

/** Splits `total` over `weights` in whole counts, largest remainder first. */
function apportion(total: number, weights: readonly number[]): number[] {
  if (weights.length === 1) return [total];
  const sum = weights.reduce((a, b) => a + b, 0);
  if (sum === 0) return weights.map(() => 0);
  const exact = weights.map((w) => (total * w) / sum);
  const counts = exact.map(Math.floor);
  let left = total - counts.reduce((a, b) => a + b, 0);
  const order = exact.map((x, i) => [x - Math.floor(x), i] as const).sort((a, b) => b[0] - a[0]);
  for (const [, i] of order) {
    if (left <= 0) break;
    counts[i] = (counts[i] ?? 0) + 1;
    left--;
  }
  return counts;
}

/**
 * A stage that serves events in order at a rate, each taking `latency` besides its share of
 * the rate: the pipe, the fan-out function.
 */
class Stage {
  readonly queue = new Fifo<EventCohort>();
  #freeAt = 0;
  waiting = 0;
  /** Longest an event waited for the rate, over the run. */
  worstWait = 0;

  push(cohort: EventCohort): void {
    this.queue.push(cohort);
    this.waiting += cohort.n;
  }

  /** Drops the events that arrived before `before`; returns how many. */
  expire(before: number): number {
    let dropped = 0;
    for (let head = this.queue.peek(); head !== undefined && head.ready < before; head = this.queue.peek()) {
      this.queue.shift();
      dropped += head.n;
    }
    this.waiting -= dropped;
    return dropped;
  }

  /**
   * Serves what the rate allows before `end`; hands each served cohort to `out`. A cohort is
   * done when both its last event has arrived and the rate has served all of them, so only a
   * rate short of the arrivals makes events wait.
   */
  serve(end: number, rate: number, latency: number, out: (cohort: EventCohort) => void): void {
    for (;;) {
      const head = this.queue.peek();
      if (head === undefined) return;
      const first = head.ready - head.spread / 2;
      const start = Math.max(this.#freeAt, first);
      if (start >= end) return;
      const finish = Math.max(start + head.n / rate, head.ready + head.spread / 2);
      const n =
        finish <= end
          ? head.n
          : Math.min(head.n, Math.max(1, Math.ceil((head.n * (end - start)) / (finish - start))));
      // The first n to arrive are served, over their share of [start, finish].
      const share = n / head.n;
      const done = start + (finish - start) * share;
      const arrived = first + (head.spread * share) / 2;
      const served = (start + done) / 2;
      this.#freeAt = done;
      this.worstWait = Math.max(this.worstWait, served - arrived);
      out({ n, born: head.born + arrived - head.ready, ready: served + latency, spread: done - start });
      this.waiting -= n;
      head.n -= n;
      if (head.n === 0) {
        this.queue.shift();
        continue;
      }
      const rest = first + head.spread * share;
      const ready = rest + (head.spread * (1 - share)) / 2;
      head.born += ready - head.ready;
      head.ready = ready;
      head.spread *= 1 - share;
      return;
    }
  }
}

/** A delivery queue and the dispatcher's event source on it. */
class Lane {
  readonly ready = new SendOrder();
  /** Received (or hidden by ChangeMessageVisibility) and not deleted. */
  hiddenInFlight = 0;
  /** Messages in batches being processed, at the end of the last step. */
  processing = 0;
  /** Lambda invocations busy over the last step. */
  busy = 0;
  concurrency: number;
  clock = 0;
  peakInFlight = 0;
  /** Whether work was left over at the end of the last step. */
  backlogged = false;

  readonly name: string;
  readonly maxConcurrency: number;

  constructor(name: string, maxConcurrency: number) {
    this.name = name;
    this.maxConcurrency = maxConcurrency;
    this.concurrency = Math.min(SQS_EVENT_SOURCE.initialConcurrency, maxConcurrency);
  }

  get inFlight(): number {
    return this.hiddenInFlight + this.processing;
  }

  /** The event source adds up to 300 concurrent batches a minute while messages wait. */
  scale(seconds: number): void {
    const floor = Math.min(SQS_EVENT_SOURCE.initialConcurrency, this.maxConcurrency);
    const step = (SQS_EVENT_SOURCE.scaleUpPerMinute / 60) * seconds;
    this.concurrency = this.backlogged
      ? Math.min(this.maxConcurrency, this.concurrency + step)
      : Math.max(floor, this.concurrency - step);
  }
}

interface TimerEntry {
  message: Message;
  lane: Lane;
  /** Hidden by a receive (in flight) rather than delayed by the sender (not in flight). */
  inFlight: boolean;
}

/** Sends this close are received together, as one mix of endpoint kinds. */
const CHUNK_SECONDS = 0.05;

/** Jitter draws per group of messages that failed together. */
const JITTER_STRATA = 2;

/** Publish → callback latency of one healthy try, spread over its own callback latency. */
const LATENCY_POINTS = 4;

/**
 * Messages alike but for their publish and send times, sent in the same this-many seconds,
 * share a cohort (and its mean send time) when they turn visible in the same step, rather than
 * fragmenting into single messages over their retries.
 */
const COALESCE_SECONDS = 3600;

/** Adds `m` into `into`, which is alike (same kind and tries, due in the same step). */
function merge(into: Message, m: Message): void {
  const n = into.n + m.n;
  into.born = (into.born * into.n + m.born * m.n) / n;
  into.sent = (into.sent * into.n + m.sent * m.n) / n;
  into.visible = Math.min(into.visible, m.visible);
  into.n = n;
}

/** Splits the first `n` sent of `m` (over its window) from the rest. */
function earliest(m: Message, n: number): [Message | undefined, Message | undefined] {
  if (n <= 0) return [undefined, m];
  if (n >= m.n) return [m, undefined];
  const share = n / m.n;
  const from = m.visible - m.spread / 2;
  const takenMiddle = from + (m.spread * share) / 2;
  const restMiddle = from + m.spread * share + (m.spread * (1 - share)) / 2;
  return [
    { ...m, n, born: m.born + takenMiddle - m.visible, visible: takenMiddle, spread: m.spread * share },
    {
      ...m,
      n: m.n - n,
      born: m.born + restMiddle - m.visible,
      visible: restMiddle,
      spread: m.spread * (1 - share),
    },
  ];
}

/** The settings' bounds, as the CDK constructs check them. */
function checkSettings(s: PipelineSettings): void {
  for (const [name, value] of [
    ['dispatcherMaxConcurrency', s.dispatcherMaxConcurrency],
    ['slowLaneMaxConcurrency', s.slowLaneMaxConcurrency],
    ['fanoutMaxConcurrency', s.fanoutMaxConcurrency],
  ] as const) {
    if (value < SQS_EVENT_SOURCE.minMaximumConcurrency || value > SQS_EVENT_SOURCE.maxMaximumConcurrency) {
      throw new Error(
        `${name} must be from ${SQS_EVENT_SOURCE.minMaximumConcurrency} to ${SQS_EVENT_SOURCE.maxMaximumConcurrency}, not ${value}`,
      );
    }
  }
  if (s.retrySchedule.length === 0) throw new Error('the retry schedule is empty');
  // A pipe cannot be configured with a bigger batch than its target takes.
  if (
    !Number.isInteger(s.pipeBatchSize) ||
    s.pipeBatchSize < 1 ||
    s.pipeBatchSize > PIPES.sqsTargetMaxBatch
  ) {
    throw new Error(
      `pipeBatchSize must be from 1 to ${PIPES.sqsTargetMaxBatch}, an SQS queue target's batch, not ${s.pipeBatchSize}`,
    );
  }
  if (s.dueLookaheadSeconds > SQS.maxDelaySeconds) {
    throw new Error(`dueLookaheadSeconds must be within SQS's ${SQS.maxDelaySeconds} s of delay`);
  }
}

/** Runs one scenario. */
export function simulate(scenario: Scenario, options: ModelOptions): ScenarioResult {
  return new Simulation(scenario, options).run();
}

class Simulation {
  readonly #s: PipelineSettings;
  readonly #a: Assumptions;
  readonly #design: DeliveryDesign;
  readonly #log: EventLogDesign;
  readonly #sc: Scenario;
  readonly #dt: number;
  readonly #random: () => number;
  /** The jitter draw retryDelaySeconds is given. */
  #draw = 0;
  readonly #drawn = (): number => this.#draw;

  // Structure derived from the settings and the quotas.
  readonly #subscriptions: PerKind;
  readonly #partners: number;
  readonly #schedule: readonly number[];
  readonly #timeout: number;
  readonly #visibilityTimeout: number;
  readonly #partnerLogCeiling: number;
  readonly #logRate: number;
  readonly #logMaxWait: number;
  readonly #logServiceSeconds: number;
  readonly #pipeRate: number;
  readonly #pipeShards: number;
  readonly #dueWriteRate: number;
  readonly #stageBucket: TokenBucket;
  readonly #accountBucket: TokenBucket;
  /** Requests all producers together may make per second: their limits, or their count items' partitions. */
  readonly #producerLimit: number;
  #producerWindow = -1;
  #producerUsed = 0;

  // State.
  readonly #ledger: Ledger = {
    offered: 0,
    throttled: 0,
    rejected: 0,
    publishing: 0,
    accepted: 0,
    upstream: 0,
    expiredEvents: 0,
    notDelivered: 0,
    deliveries: 0,
    succeeded: 0,
    deadLettered: 0,
    skipped: 0,
    expired: 0,
    pending: 0,
  };
  #offeredCarry = 0;
  #logCarry = 0;
  /** Appends waiting for the partner's log: contenders under seq-counter, a queue otherwise. */
  readonly #contenders: { n: number; born: number }[] = [];
  #apiBusy = 0;
  readonly #pipe = new Stage();
  readonly #fanout = new Stage();
  #fanoutConcurrency: number;
  #fanoutBusy = 0;
  readonly #kindSplit = new Share();
  readonly #kindSplitHanging = new Share();
  readonly #main: Lane;
  readonly #slow: Lane;
  readonly #lanes: readonly Lane[];
  /** Hidden or delayed messages by the step they turn visible in. */
  readonly #timers = new Map<number, Map<number, TimerEntry>>();
  /** Due retries (scheduled design) by sweep interval of their due time, alike ones due in the same step as one. */
  readonly #due = new Map<number, Map<number, Message>>();
  #dueCount = 0;
  /** The first due key a sweep has yet to look at. */
  #dueSwept = 0;
  #dueWrites = 0;
  #poolFactor = 1;
  #peakLambda = 0;
  readonly #moveShare: [Share, Share, Share] = [new Share(), new Share(), new Share()];
  readonly #throttleShare = new Share();
  /** Tries of not-yet-failing subscriptions that failed, and when each kind first failed. */
  readonly #failedTries: PerKind = [0, 0, 0];
  readonly #failing: PerKind = [0, 0, 0];
  readonly #firstFailure: PerKind = [
    Number.POSITIVE_INFINITY,
    Number.POSITIVE_INFINITY,
    Number.POSITIVE_INFINITY,
  ];
  readonly #pendingFailures = new Fifo<{ at: number; kind: Kind; n: number }>();
  readonly #healthyLatency = new Histogram();
  readonly #settledLatency = new Histogram();
  #healthyDeliveries = 0;
  #healthyCallbacks = 0;
  #quotaReachedAt: number | null = null;
  /** Each limit that held work back: what it is, the steps it did, the last of them. */
  readonly #limits = new Map<string, { text: string; steps: number; last: number }>();
  #step = 0;
  readonly #hourly = {
    healthyCreated: [] as number[],
    healthyCallbacks: [] as number[],
    peakInFlight: [] as number[],
  };

  constructor(scenario: Scenario, options: ModelOptions) {
    checkSettings(options.settings);
    this.#sc = scenario;
    this.#s = options.settings;
    this.#a = options.assumptions ?? ASSUMPTIONS;
    this.#design = options.design;
    this.#log = options.eventLog;
    this.#dt = scenario.stepSeconds;
    this.#random = seededRandom(scenario.seed);
    const e = scenario.endpoints;
    this.#subscriptions = [e.healthy, e.dead, e.hanging];
    this.#partners = e.healthy + e.dead + e.hanging;
    if (this.#partners < 1) throw new Error(`${scenario.name}: at least one endpoint is needed`);
    this.#schedule = this.#s.retrySchedule;
    this.#timeout = this.#s.deliveryTimeoutMs / 1000;
    this.#visibilityTimeout = this.#s.dispatcherTimeoutSeconds * this.#s.visibilityTimeoutFactor;

    // The log: what one partner's partition and (seq-counter) its counter allow.
    const a = this.#a;
    const itemUnits = Math.ceil((a.eventKb * 1024) / DYNAMODB.writeUnitBytes);
    const keys = Math.max(1, this.#log.keysPerPartner);
    let unitsPerEvent: number;
    if (this.#log.kind === 'seq-counter') {
      // Counter, event and ID# pointer in one transaction: each item written twice.
      unitsPerEvent = DYNAMODB.transactionalWriteFactor * (1 + itemUnits + 1);
      this.#logServiceSeconds = a.counterReadSeconds + a.transactionSeconds;
      // The next append can only read the counter once the last one committed.
      const serialized = 1 / this.#logServiceSeconds;
      const counterItem = DYNAMODB.partitionWriteUnitsPerSecond / DYNAMODB.transactionalWriteFactor;
      const partition = (keys * DYNAMODB.partitionWriteUnitsPerSecond) / unitsPerEvent;
      this.#partnerLogCeiling = Math.min(serialized, counterItem, partition);
      let wait = 0;
      for (let attempt = 1; attempt < a.appendMaxAttempts; attempt++) {
        wait += Math.min(a.appendBackoffCapSeconds, a.appendBackoffBaseSeconds * 2 ** (attempt - 1)) / 2;
      }
      this.#logMaxWait = wait + a.appendMaxAttempts * this.#logServiceSeconds;
    } else if (this.#log.kind === 'counter-add') {
      // The ADD, then the event (its id says its seq: no pointer); one ADD serves a
      // partner's events of one request, so the counter item takes one write per request
      // and partner.
      const perAdd = Math.max(1, scenario.eventsPerRequest / this.#partners);
      unitsPerEvent = 1 / perAdd + itemUnits;
      this.#logServiceSeconds = 2 * a.writeSeconds;
      this.#partnerLogCeiling = Math.min(
        DYNAMODB.partitionWriteUnitsPerSecond * perAdd,
        (keys * DYNAMODB.partitionWriteUnitsPerSecond) / itemUnits,
      );
      this.#logMaxWait = a.appendOnlyMaxWaitSeconds;
    } else {
      unitsPerEvent = itemUnits + 1;
      this.#logServiceSeconds = a.writeSeconds;
      this.#partnerLogCeiling = (keys * DYNAMODB.partitionWriteUnitsPerSecond) / unitsPerEvent;
      this.#logMaxWait = a.appendOnlyMaxWaitSeconds;
    }
    const tableCeiling = DYNAMODB.onDemandTableWriteUnitsPerSecond / unitsPerEvent;
    this.#logRate = Math.min(this.#partners * this.#partnerLogCeiling, tableCeiling);

    // A partner's events are on its keys' partitions, each with one stream shard; a new
    // on-demand table has as many partitions as its warm throughput needs, more as writes grow.
    const warmPartitions = Math.max(
      DYNAMODB.newOnDemandWarmWriteUnitsPerSecond / DYNAMODB.partitionWriteUnitsPerSecond,
      DYNAMODB.newOnDemandWarmReadUnitsPerSecond / DYNAMODB.partitionReadUnitsPerSecond,
    );
    const expectedUnits =
      Math.min(scenario.offeredPerSecond, this.#s.stageThrottle.rateLimit * scenario.eventsPerRequest) *
      unitsPerEvent;
    const partitions = Math.max(
      warmPartitions,
      Math.ceil(expectedUnits / DYNAMODB.partitionWriteUnitsPerSecond),
    );
    this.#pipeShards = Math.min(this.#partners * keys, partitions);
    // Each shard's batches go side by side, each one SendMessageBatch; a standard queue takes a
    // nearly unlimited number of calls a second, so nothing caps the shards' sum.
    const perShard = (this.#s.pipeParallelizationFactor * this.#s.pipeBatchSize) / a.sendBatchSeconds;
    this.#pipeRate = this.#pipeShards * perShard;
    this.#dueWriteRate = this.#s.dueShards * DYNAMODB.partitionWriteUnitsPerSecond;

    if (!(scenario.eventsPerRequest >= 1 && scenario.eventsPerRequest <= this.#s.maxEventsPerRequest)) {
      throw new Error(`${scenario.name}: eventsPerRequest must be from 1 to ${this.#s.maxEventsPerRequest}`);
    }
    // Each admitted request adds one to one of its producer's count items for the second (one
    // write unit); a limit is spread over items of at most PER_ITEM each, which one partition's
    // writes carry with room to spare, so the configured limit holds.
    const parts = Math.ceil(this.#s.producerRequestsPerSecond / RATE_COUNT_PER_ITEM);
    this.#producerLimit =
      Math.max(1, scenario.producers) *
      Math.min(
        this.#s.producerRequestsPerSecond,
        parts * Math.min(RATE_COUNT_PER_ITEM, DYNAMODB.partitionWriteUnitsPerSecond),
      );
    this.#stageBucket = new TokenBucket(this.#s.stageThrottle.rateLimit, this.#s.stageThrottle.burstLimit);
    this.#accountBucket = new TokenBucket(API_GATEWAY.accountRatePerSecond, API_GATEWAY.accountBurst);
    this.#fanoutConcurrency = Math.min(SQS_EVENT_SOURCE.initialConcurrency, this.#s.fanoutMaxConcurrency);
    this.#main = new Lane('delivery', this.#s.dispatcherMaxConcurrency);
    this.#slow = new Lane('slow lane', this.#s.slowLaneMaxConcurrency);
    this.#lanes = this.#design === 'scheduled' ? [this.#main, this.#slow] : [this.#main];
  }

  run(): ScenarioResult {
    const steps = Math.round(this.#sc.durationSeconds / this.#dt);
    for (let step = 0; step < steps; step++) {
      const t = step * this.#dt;
      this.#step = step;
      this.#sharePool();
      this.#publish(t);
      this.#append(t);
      this.#stream(t);
      this.#fireTimers(step);
      if (this.#design === 'scheduled') this.#sweep(t);
      for (const lane of this.#lanes) this.#dispatch(lane, t);
      this.#keepHealth(t);
      this.#observe(t);
    }
    return this.#result();
  }

  // Phase 1: API Gateway and the Lambda pool.

  /**
   * Lambda does not rank functions: when the account's concurrency runs out, every function
   * gets the same share of what it asks for.
   */
  #sharePool(): void {
    // An event source with work waiting asks for all its concurrency; the sweeper takes one.
    const fanout = this.#fanout.waiting > 0 ? this.#fanoutConcurrency : this.#fanoutBusy;
    const lanes = this.#lanes.reduce(
      (sum, lane) => sum + (lane.backlogged ? lane.concurrency : lane.busy),
      0,
    );
    const wanted = this.#apiBusy + fanout + lanes + (this.#design === 'scheduled' ? 1 : 0);
    this.#poolFactor = Math.min(1, LAMBDA.accountConcurrency / Math.max(1, wanted));
    this.#peakLambda = Math.max(this.#peakLambda, Math.min(wanted, LAMBDA.accountConcurrency));
    if (this.#poolFactor < 1)
      this.#limit('lambda', `Lambda account concurrency (${LAMBDA.accountConcurrency})`);
  }

  /**
   * Producers' requests through API Gateway's throttles (the stage's, the account's) and the
   * API function's per-producer limit (its counts spread over items, each well within a
   * partition's writes).
   */
  #publish(t: number): void {
    const perRequest = this.#sc.eventsPerRequest;
    this.#offeredCarry += (this.#sc.offeredPerSecond / perRequest) * this.#dt;
    const requests = Math.floor(this.#offeredCarry);
    this.#offeredCarry -= requests;
    const offered = requests * perRequest;
    this.#ledger.offered += offered;
    const stage = this.#stageBucket.take(requests, this.#dt);
    const gateway = this.#accountBucket.take(stage, this.#dt);
    if (gateway < requests) {
      this.#limit(
        stage < requests ? 'stage' : 'account',
        stage < requests
          ? `API Gateway stage throttle (${this.#s.stageThrottle.rateLimit} rps, burst ${this.#s.stageThrottle.burstLimit})`
          : `API Gateway account throttle (${API_GATEWAY.accountRatePerSecond} rps)`,
      );
    }
    // Counts are kept per second; a step of several seconds holds as many windows.
    const window = Math.floor(t);
    if (window !== this.#producerWindow) {
      this.#producerWindow = window;
      this.#producerUsed = 0;
    }
    const windowLimit = Math.floor(this.#producerLimit * Math.max(1, this.#dt));
    const allowed = Math.min(gateway, windowLimit - this.#producerUsed);
    this.#producerUsed += allowed;
    if (allowed < gateway) {
      const configured = this.#s.producerRequestsPerSecond;
      this.#limit('producer', `per-producer limit (${configured} rps)`);
    }
    const admitted = allowed * perRequest;
    this.#ledger.throttled += offered - admitted;
    const lambdaThrottled = admitted - Math.floor(admitted * this.#poolFactor);
    this.#ledger.rejected += lambdaThrottled;
    if (admitted - lambdaThrottled > 0) {
      this.#contenders.push({ n: admitted - lambdaThrottled, born: t + this.#dt / 2 });
    }
  }

  // Phase 2: the event log.

  /**
   * Appends at the log's rate. Under seq-counter, concurrent appends of a partner race for its
   * counter and a random one wins each round, so the winners are spread over the waiting; one
   * that has lost for all its attempts gives up (503). Append-only writes are served in order.
   */
  #append(t: number): void {
    const contenders = this.#contenders;
    let waiting = 0;
    for (let i = contenders.length - 1; i >= 0; i--) {
      const c = contenders[i];
      if (c === undefined) continue;
      if (t - c.born > this.#logMaxWait) {
        this.#ledger.rejected += c.n;
        contenders.splice(i, 1);
        const what =
          this.#log.kind === 'append-only' ? "the partner's partition" : "the partner's SEQ counter";
        this.#limit('log', `event log: ${what}, ${this.#partnerLogCeiling.toFixed(0)} appends/s per partner`);
      } else {
        waiting += c.n;
      }
    }
    this.#logCarry = Math.min(this.#logCarry + this.#logRate * this.#dt, this.#logRate * this.#dt + 1);
    const served = Math.min(waiting, Math.floor(this.#logCarry));
    this.#logCarry -= served;
    const taken =
      served === waiting
        ? contenders.map((c) => c.n)
        : this.#log.kind === 'seq-counter'
          ? apportion(
              served,
              contenders.map((c) => c.n),
            )
          : this.#inOrder(served, contenders);
    const finish = this.#logServiceSeconds + this.#a.apiOverheadSeconds;
    contenders.forEach((c, i) => {
      const n = taken[i] ?? 0;
      if (n === 0) return;
      c.n -= n;
      this.#ledger.accepted += n;
      const appended = Math.max(c.born, t + this.#dt / 2) + finish;
      const spread = c.born >= t ? this.#dt : 0;
      this.#pipe.push({ n, born: c.born, ready: appended + this.#a.streamPollSeconds / 2, spread });
    });
    for (let i = contenders.length - 1; i >= 0; i--) if (contenders[i]?.n === 0) contenders.splice(i, 1);
    // Every waiting append holds an API function (a batch's events share one), as does every
    // append done this step.
    this.#apiBusy = (waiting - served + (served * finish) / this.#dt) / this.#sc.eventsPerRequest;
  }

  #inOrder(served: number, queue: readonly { n: number }[]): number[] {
    let left = served;
    return queue.map((c) => {
      const n = Math.min(left, c.n);
      left -= n;
      return n;
    });
  }

  // Phase 3: stream, pipe, fan-out.

  #stream(t: number): void {
    const end = t + this.#dt;
    const a = this.#a;
    this.#pipe.serve(end, this.#pipeRate, a.sendBatchSeconds, (c) => this.#fanout.push(c));
    // The fan-out queue keeps a message for SQS's default retention, as the delivery queue does.
    const expired = this.#fanout.expire(t - this.#s.deliveryRetentionSeconds);
    this.#ledger.expiredEvents += expired;
    const before = this.#fanout.waiting;
    const concurrency = this.#fanoutConcurrency * this.#poolFactor;
    const rate = (concurrency * this.#s.fanoutBatchSize) / a.fanoutBatchSeconds;
    this.#fanout.serve(end, rate, a.fanoutBatchSeconds, (c) => this.#fanOut(c));
    const done = before - this.#fanout.waiting;
    this.#fanoutBusy = Math.min(concurrency, (done / rate / this.#dt) * concurrency);
    const floor = Math.min(SQS_EVENT_SOURCE.initialConcurrency, this.#s.fanoutMaxConcurrency);
    const scale = (SQS_EVENT_SOURCE.scaleUpPerMinute / 60) * this.#dt;
    this.#fanoutConcurrency =
      this.#fanout.waiting > 0
        ? Math.min(this.#s.fanoutMaxConcurrency, this.#fanoutConcurrency + scale)
        : Math.max(floor, this.#fanoutConcurrency - scale);
    if (this.#pipe.waiting > this.#pipeRate) {
      this.#limit(
        'pipe',
        `pipe: ${this.#pipeShards} stream shard(s) × ${this.#s.pipeParallelizationFactor} batch(es) of ${this.#s.pipeBatchSize} at a time (${this.#pipeRate.toFixed(0)} events/s)`,
      );
    }
    if (this.#fanout.waiting > rate) {
      const most = (this.#s.fanoutMaxConcurrency * this.#s.fanoutBatchSize) / a.fanoutBatchSeconds;
      this.#limit(
        'fanout',
        `fan-out: MaximumConcurrency ${this.#s.fanoutMaxConcurrency} × batches of ${this.#s.fanoutBatchSize} (${most.toFixed(0)} events/s)`,
      );
    }
  }

  /** One delivery per subscription of the event's partner, in its subscription's lane. */
  #fanOut(c: EventCohort): void {
    const [, dead, hanging] = this.#subscriptions;
    const deadOrHanging = this.#kindSplit.take(c.n, (dead + hanging) / this.#partners);
    const hangingCount = this.#kindSplitHanging.take(deadOrHanging, hanging / Math.max(1, dead + hanging));
    const counts: PerKind = [c.n - deadOrHanging, deadOrHanging - hangingCount, hangingCount];
    for (const kind of KINDS) {
      let n = counts[kind];
      if (n === 0) continue;
      if (this.#disabled(kind, c.ready)) {
        this.#ledger.notDelivered += n;
        continue;
      }
      this.#ledger.deliveries += n;
      if (kind === HEALTHY) this.#healthyDeliveries += n;
      this.#hour(this.#hourly.healthyCreated, c.ready, kind === HEALTHY ? n : 0);
      const message = { n, born: c.born, sent: c.ready, visible: c.ready, spread: c.spread, kind, tries: 0 };
      if (this.#design === 'scheduled' && kind !== HEALTHY) {
        const slow = this.#moveShare[kind].take(n, this.#failing[kind]);
        if (slow > 0) this.#slow.ready.push({ ...message, n: slow });
        n -= slow;
      }
      if (n > 0) this.#main.ready.push({ ...message, n });
    }
  }

  // Phase 4: timers (hidden and delayed messages) and the sweeper.

  #stepOf(time: number): number {
    return Math.floor(time / this.#dt + 1e-9);
  }

  #fireTimers(step: number): void {
    const entries = this.#timers.get(step);
    if (entries === undefined) return;
    this.#timers.delete(step);
    // Visible from the step's start: a later instant would hold the lane's clock back while
    // older sends wait (an error of one step, on waits of seconds to hours).
    const start = step * this.#dt;
    for (const { message, lane, inFlight } of entries.values()) {
      if (inFlight) lane.hiddenInFlight -= message.n;
      message.visible = Math.min(message.visible, start);
      message.spread = 0;
      lane.ready.push(message);
    }
  }

  #later(message: Message, lane: Lane, inFlight: boolean, now: number): void {
    if (inFlight) lane.hiddenInFlight += message.n;
    const step = Math.max(this.#stepOf(message.visible), this.#stepOf(now) + 1);
    let entries = this.#timers.get(step);
    if (entries === undefined) {
      entries = new Map();
      this.#timers.set(step, entries);
    }
    // Alike messages sent in the same COALESCE_SECONDS turn visible as one cohort.
    const key =
      ((Math.floor(message.sent / COALESCE_SECONDS) * 1024 + message.tries) * 4 + message.kind) * 4 +
      (lane === this.#slow ? 2 : 0) +
      (inFlight ? 1 : 0);
    const alike = entries.get(key);
    if (alike === undefined) entries.set(key, { message, lane, inFlight });
    else merge(alike.message, message);
  }

  /**
   * Every DUE_SWEEP_INTERVAL_SECONDS: queue the due retries due within the lookahead, each
   * with the rest of its wait as DelaySeconds; a sweep moves what its rounds can in its budget.
   */
  #sweep(t: number): void {
    const interval = this.#s.dueSweepIntervalSeconds;
    if (Math.floor(t / interval) === Math.floor((t - this.#dt) / interval) && t > 0) return;
    const a = this.#a;
    let budget = Math.floor(this.#s.sweepBudgetSeconds / a.sweepRoundSeconds) * a.sweepPageSize;
    const horizon = t + this.#s.dueLookaheadSeconds;
    const last = Math.floor(horizon / interval);
    for (let key = this.#dueSwept; key <= last; key++) {
      const bucket = this.#due.get(key);
      if (bucket === undefined) continue;
      const keep = new Map<number, Message>();
      // Soonest first, should the budget run out.
      const messages = [...bucket.entries()];
      if (budget < this.#dueCount) messages.sort((x, y) => x[1].visible - y[1].visible);
      for (const [alike, message] of messages) {
        if (message.visible > horizon || budget === 0) {
          keep.set(alike, message);
          continue;
        }
        const n = Math.min(message.n, budget);
        budget -= n;
        this.#dueCount -= n;
        const delay = Math.min(SQS.maxDelaySeconds, Math.max(0, message.visible - t));
        this.#later({ ...message, n, sent: t, visible: t + delay, spread: 0 }, this.#slow, false, t);
        if (n < message.n) keep.set(alike, { ...message, n: message.n - n });
      }
      if (keep.size === 0) this.#due.delete(key);
      else this.#due.set(key, keep);
    }
    // Keys below the horizon's are done unless the budget ran out; the horizon's may fill up.
    if (budget > 0) this.#dueSwept = last;
    if (budget === 0) this.#limit('sweep', 'sweeper: rounds per sweep budget');
    if (this.#dueWrites > this.#dueWriteRate * interval) {
      this.#limit('due', `due retries: ${this.#s.dueShards} partitions × 1,000 writes/s`);
    }
    this.#dueWrites = 0;
  }

  // Phase 5: the dispatcher.

  /**
   * Receives, oldest send first, as fast as the lane's invocations allow. A batch of `b`
   * messages runs its callbacks side by side and ends with the slowest: a hanging endpoint
   * (the full delivery timeout) holds the whole batch's invocation. In the visibility design a
   * receive returns nothing while the queue holds its in-flight quota.
   */
  #dispatch(lane: Lane, t: number): void {
    const end = t + this.#dt;
    lane.scale(this.#dt);
    const concurrency = Math.max(1e-9, lane.concurrency * this.#poolFactor);
    const throttled = 1 - this.#poolFactor;
    let clock = Math.max(lane.clock, t);
    let slotSeconds = 0;
    let received = 0;
    let batchSize = 1;
    let outOfTime = false;
    lane.backlogged = false;
    // The queue drops what it has kept for its retention period; the oldest sends come first.
    for (
      let top = lane.ready.peek();
      top !== undefined && t - top.sent > this.#s.deliveryRetentionSeconds;
      top = lane.ready.peek()
    ) {
      lane.ready.pop();
      this.#ledger.expired += top.n;
    }
    while (lane.ready.size > 0) {
      const room = SQS.standardInFlight - lane.hiddenInFlight;
      if (this.#design === 'visibility' && room <= 0) {
        lane.backlogged = true;
        this.#quotaReachedAt ??= t;
        this.#limit('inflight', `SQS in-flight quota (${SQS.standardInFlight.toLocaleString('en-US')})`);
        break;
      }
      const chunk = this.#chunk(lane.ready);
      // The chunk's messages arrive over [first, last] (one instant unless fan-out sent them over a window).
      let total = 0;
      let first = Number.POSITIVE_INFINITY;
      let last = Number.NEGATIVE_INFINITY;
      for (const m of chunk) {
        total += m.n;
        first = Math.min(first, m.visible - m.spread / 2);
        last = Math.max(last, m.visible + m.spread / 2);
      }
      const start = Math.max(clock, first);
      if (start >= end) {
        for (const m of chunk) lane.ready.push(m);
        if (first < end) lane.backlogged = true;
        break;
      }
      batchSize = Math.max(
        1,
        Math.min(this.#s.dispatcherBatchSize, Math.ceil((lane.ready.count + total) / concurrency)),
      );
      const mix = this.#mix(lane, chunk, start);
      const duration = this.#batchSeconds(batchSize, mix);
      const perMessage = duration / (batchSize * concurrency);
      const inTime = Math.ceil((end - start) / perMessage);
      let k = Math.min(total, inTime);
      // Only what has arrived by the step's end can be received in it.
      if (last > first && last > end)
        k = Math.min(k, Math.max(1, Math.ceil((total * (end - first)) / (last - first))));
      const retained = mix.failing + throttled;
      if (this.#design === 'visibility' && retained > 0) k = Math.min(k, Math.ceil(room / retained));
      // Received as fast as they arrive, or as the lane's invocations allow, whichever is slower.
      const finish = Math.max(start + k * perMessage, first + ((last - first) * k) / total);
      clock = finish;
      slotSeconds += (k * duration) / batchSize;
      received += k;
      const at = (start + finish) / 2;
      if (k === total) {
        for (const m of chunk) this.#receive(lane, m, at, throttled);
      } else {
        const parts = apportion(
          k,
          chunk.map((m) => m.n),
        );
        chunk.forEach((m, i) => {
          const n = parts[i] ?? 0;
          const [taken, rest] = earliest(m, n);
          if (rest !== undefined) lane.ready.push(rest);
          if (taken !== undefined) this.#receive(lane, taken, at, throttled);
        });
      }
      if (k < total) {
        lane.backlogged = true;
        outOfTime = k === inTime;
        break;
      }
    }
    lane.clock = clock;
    lane.busy = Math.min(concurrency, slotSeconds / this.#dt);
    lane.processing = Math.min(received, Math.ceil(lane.busy) * batchSize);
    if (outOfTime && lane.ready.count > concurrency * this.#s.dispatcherBatchSize * 10) {
      this.#limit(
        `lane-${lane.name}`,
        `${lane.name}: MaximumConcurrency ${lane.maxConcurrency} × batches of ${this.#s.dispatcherBatchSize}`,
      );
    }
  }

  /**
   * The oldest send and those sent with it (the kinds one fan-out cohort split into, or sends
   * within CHUNK_SECONDS): a receive takes them as one mix.
   */
  #chunk(ready: SendOrder): Message[] {
    const first = ready.pop();
    if (first === undefined) return [];
    const chunk = [first];
    for (
      let next = ready.peek();
      next !== undefined && next.sent - first.sent <= CHUNK_SECONDS;
      next = ready.peek()
    ) {
      const m = ready.pop();
      if (m !== undefined) chunk.push(m);
    }
    return chunk;
  }

  /**
   * Shares of a chunk by what its receive does: succeed, fail fast, hang; the rest (skipped,
   * moved to the slow lane) is quick.
   */
  #mix(lane: Lane, chunk: readonly Message[], at: number) {
    let total = 0;
    let healthy = 0;
    let dead = 0;
    let hanging = 0;
    for (const m of chunk) {
      total += m.n;
      if (this.#disabled(m.kind, at)) continue;
      const moved = this.#design === 'scheduled' && lane === this.#main ? this.#failing[m.kind] : 0;
      const tried = m.n * (1 - moved);
      if (m.kind === HEALTHY) healthy += tried;
      else if (m.kind === DEAD) dead += tried;
      else hanging += tried;
    }
    return {
      healthy: healthy / total,
      dead: dead / total,
      hanging: hanging / total,
      failing: (dead + hanging) / total,
    };
  }

  /** Expected run of a batch of `b` with this mix: the slowest callback, plus the overhead. */
  #batchSeconds(b: number, mix: { healthy: number; dead: number; hanging: number }): number {
    const a = this.#a;
    const withHanging = 1 - (1 - mix.hanging) ** b;
    const [lo, hi] = a.healthyLatencySeconds;
    const healthyPerBatch = (b * mix.healthy) / Math.max(1e-9, 1 - mix.hanging);
    const slowest =
      mix.healthy > 0
        ? lo + ((hi - lo) * Math.max(1, healthyPerBatch)) / (Math.max(1, healthyPerBatch) + 1)
        : mix.dead > 0
          ? a.deadLatencySeconds
          : a.moveSeconds;
    return a.dispatchOverheadSeconds + withHanging * this.#timeout + (1 - withHanging) * slowest;
  }

  /** What becomes of `m`, received at `at`. */
  #receive(lane: Lane, m: Message, at: number, throttledShare: number): void {
    const visibility = this.#design === 'visibility';
    if (at - m.sent > this.#s.deliveryRetentionSeconds) {
      this.#ledger.expired += m.n;
      return;
    }
    // A batch Lambda throttles stays in flight until the visibility timeout; the queue counts the receive.
    const throttled = this.#throttleShare.take(m.n, throttledShare);
    if (throttled > 0) {
      const tries = visibility ? m.tries + 1 : m.tries;
      if (tries >= this.#schedule.length) this.#ledger.deadLettered += throttled;
      else
        this.#later(
          { ...m, n: throttled, tries, visible: at + this.#visibilityTimeout, spread: 0 },
          lane,
          true,
          at,
        );
    }
    let n = m.n - throttled;
    if (n === 0) return;
    if (this.#disabled(m.kind, at)) {
      this.#ledger.skipped += n;
      return;
    }
    if (!visibility && lane === this.#main && m.kind !== HEALTHY) {
      const moved = this.#moveShare[m.kind].take(n, this.#failing[m.kind]);
      if (moved > 0) {
        const when = at + this.#a.moveSeconds;
        this.#slow.ready.push({ ...m, n: moved, sent: when, visible: when, spread: 0 });
      }
      n -= moved;
      if (n === 0) return;
    }
    if (m.kind === HEALTHY) {
      this.#succeed(m.born, n, at + this.#a.dispatchOverheadSeconds / 2);
      return;
    }
    const failedAt =
      at +
      this.#a.dispatchOverheadSeconds / 2 +
      (m.kind === DEAD ? this.#a.deadLatencySeconds : this.#timeout);
    if (!visibility && lane === this.#main) this.#pendingFailures.push({ at: failedAt, kind: m.kind, n });
    this.#firstFailure[m.kind] = Math.min(this.#firstFailure[m.kind], failedAt);
    this.#retry(m, n, failedAt, lane);
  }

  #succeed(born: number, n: number, at: number): void {
    const [lo, hi] = this.#a.healthyLatencySeconds;
    this.#ledger.succeeded += n;
    this.#healthyCallbacks += n;
    this.#hour(this.#hourly.healthyCallbacks, at, n);
    const settled = born > this.#sc.durationSeconds / 10;
    for (let point = 0; point < LATENCY_POINTS; point++) {
      const own = lo + ((hi - lo) * (point + 0.5)) / LATENCY_POINTS;
      this.#healthyLatency.add(at + own - born, n / LATENCY_POINTS);
      if (settled) this.#settledLatency.add(at + own - born, n / LATENCY_POINTS);
    }
  }

  /** The next try of `count` of `m`, whose try just failed, or the dead-letter queue. */
  #retry(m: Message, count: number, failedAt: number, lane: Lane): void {
    const tries = m.tries + 1;
    if (tries >= this.#schedule.length) {
      this.#ledger.deadLettered += count;
      return;
    }
    const wait = this.#schedule[tries] ?? 0;
    // Jitter: one draw per message up to JITTER_STRATA, else one per stratum of [0, 1).
    const strata = Math.min(count, JITTER_STRATA);
    for (let stratum = 0; stratum < strata; stratum++) {
      const n = Math.floor((count * (stratum + 1)) / strata) - Math.floor((count * stratum) / strata);
      const u = (stratum + this.#random()) / strata;
      this.#draw = u;
      if (this.#design === 'visibility') {
        // Hidden in place: still in flight, and still the send it was.
        const hidden = Math.min(Math.round(wait * u), SQS.maxVisibilityTimeoutSeconds);
        const next = {
          n,
          born: m.born,
          sent: m.sent,
          visible: failedAt + hidden,
          spread: 0,
          kind: m.kind,
          tries,
        };
        this.#later(next, lane, true, failedAt);
        continue;
      }
      const delay = retryDelaySeconds(this.#schedule, tries, this.#drawn) ?? 0;
      const next = {
        n,
        born: m.born,
        sent: failedAt,
        visible: failedAt + delay,
        spread: 0,
        kind: m.kind,
        tries,
      };
      if (delay <= SQS.maxDelaySeconds) {
        this.#later(next, this.#slow, false, failedAt);
      } else {
        const key = Math.max(this.#dueSwept, Math.floor(next.visible / this.#s.dueSweepIntervalSeconds));
        let bucket = this.#due.get(key);
        if (bucket === undefined) {
          bucket = new Map();
          this.#due.set(key, bucket);
        }
        const alike = (this.#stepOf(next.visible) * 1024 + tries) * 4 + next.kind;
        const into = bucket.get(alike);
        if (into === undefined) bucket.set(alike, next);
        else merge(into, next);
        this.#dueCount += n;
        this.#dueWrites += n;
      }
    }
  }

  // Phase 6: health and observation.

  /**
   * A subscription turns failing at its first failed try; `failing` is the share of a kind's
   * subscriptions that have failed once (tries spread over them at random), which only grows
   * for dead and hanging endpoints.
   */
  #keepHealth(t: number): void {
    // Failures come in nearly in time order (a hanging try ends a timeout after a dead one).
    for (
      let p = this.#pendingFailures.peek();
      p !== undefined && p.at <= t;
      p = this.#pendingFailures.peek()
    ) {
      this.#pendingFailures.shift();
      this.#failedTries[p.kind] += p.n;
      const subscriptions = Math.max(1, this.#subscriptions[p.kind]);
      this.#failing[p.kind] = 1 - Math.exp(-this.#failedTries[p.kind] / subscriptions);
    }
  }

  #disabled(kind: Kind, at: number): boolean {
    return kind !== HEALTHY && at - this.#firstFailure[kind] >= this.#s.disableAfterSeconds;
  }

  #observe(t: number): void {
    let peak = 0;
    for (const lane of this.#lanes) {
      lane.peakInFlight = Math.max(lane.peakInFlight, lane.inFlight);
      peak = Math.max(peak, lane.inFlight);
    }
    const hour = Math.floor(t / 3600);
    this.#hourly.peakInFlight[hour] = Math.max(this.#hourly.peakInFlight[hour] ?? 0, peak);
  }

  #hour(series: number[], at: number, n: number): void {
    // What completes after the end counts in the last hour.
    const hour = Math.min(Math.ceil(this.#sc.durationSeconds / 3600) - 1, Math.floor(at / 3600));
    series[hour] = (series[hour] ?? 0) + n;
  }

  #limit(key: string, text: string): void {
    const seen = this.#limits.get(key);
    if (seen === undefined) this.#limits.set(key, { text, steps: 1, last: this.#step });
    else if (seen.last !== this.#step) {
      seen.steps++;
      seen.last = this.#step;
    }
  }

  /** The limits that held work back for a minute or more (a twentieth of a shorter run), and for how much of it. */
  #heldBy(): string[] {
    const steps = Math.round(this.#sc.durationSeconds / this.#dt);
    const least = Math.min(60, this.#sc.durationSeconds / 20) / this.#dt;
    return [...this.#limits.values()]
      .filter((l) => l.steps >= least)
      .map((l) => `${l.text}, ${Math.max(1, Math.round((100 * l.steps) / steps))}% of the time`);
  }

  #result(): ScenarioResult {
    const ledger = { ...this.#ledger };
    ledger.publishing = this.#contenders.reduce((sum, c) => sum + c.n, 0);
    ledger.upstream = this.#pipe.waiting + this.#fanout.waiting;
    let pending = 0;
    for (const lane of this.#lanes) pending += lane.ready.count;
    for (const entries of this.#timers.values()) for (const e of entries.values()) pending += e.message.n;
    for (const bucket of this.#due.values()) for (const m of bucket.values()) pending += m.n;
    ledger.pending = pending;
    const hours = Math.ceil(this.#sc.durationSeconds / 3600);
    const series = (values: readonly number[]) => Array.from({ length: hours }, (_, i) => values[i] ?? 0);
    return {
      name: this.#sc.name,
      design: this.#design,
      eventLog: this.#log,
      durationSeconds: this.#sc.durationSeconds,
      offeredPerSecond: this.#sc.offeredPerSecond,
      ledger,
      healthy: {
        deliveries: this.#healthyDeliveries,
        callbacks: this.#healthyCallbacks,
        withoutCallback: Math.max(
          0,
          Math.round((ledger.accepted * this.#subscriptions[HEALTHY]) / this.#partners) -
            this.#healthyCallbacks,
        ),
        p50Seconds: this.#healthyLatency.quantile(0.5) ?? 0,
        p99Seconds: this.#healthyLatency.quantile(0.99) ?? 0,
        settledP99Seconds: this.#settledLatency.quantile(0.99),
      },
      peakInFlight: Math.max(...this.#lanes.map((lane) => lane.peakInFlight)),
      inFlightQuotaReachedAt: this.#quotaReachedAt,
      peakLambdaConcurrency: Math.round(this.#peakLambda),
      partnerLogCeiling: this.#partnerLogCeiling,
      limits: this.#heldBy(),
      hourly: {
        healthyCreated: series(this.#hourly.healthyCreated),
        healthyCallbacks: series(this.#hourly.healthyCallbacks),
        peakInFlight: series(this.#hourly.peakInFlight),
      },
    };
  }
}
