/**
 * Ops' use cases: the queues' depths, what each dead letter stands for and why it is there,
 * redrives and purges, and the subscriptions in poor health. The same on both runtimes: the
 * queues are behind OpsQueues (SQS on AWS, SQLite locally).
 */
import * as z from 'zod';
import { QueueNotFoundError } from './errors.ts';
import {
  type Attempt,
  type Delivery,
  DeliveryMessage,
  type EventRef,
  FanoutMessage,
  type Page,
  type Subscription,
  type SubscriptionRecord,
} from './model.ts';
import type {
  DeliveryStore,
  ListQuery,
  OpsQueues,
  QueueInfo,
  QueueLayout,
  RedriveTask,
  StoredDeadLetter,
  SubscriptionHealth,
  SubscriptionStore,
} from './ports.ts';
import { pipeBatchWindow } from './recovery.ts';

export interface OpsDeps {
  queues: OpsQueues;
  deliveries: DeliveryStore;
  subscriptions: SubscriptionStore;
}

/** Most dead letters one listing shows. */
const MAX_DEAD_LETTERS_LISTED = 100;
/** Most characters of an unreadable body, or of a receiver's answer, a listing repeats. */
const EXCERPT_CHARS = 300;

/** What a dead letter stands for: a try of a delivery, an event to fan out, a stream batch, or nothing readable. */
export type DeadLetterKind = 'delivery' | 'event' | 'stream-batch' | 'unreadable';

export interface DeadLetterView {
  messageId: string;
  queue: string;
  kind: DeadLetterKind;
  /** Why it is here, in a sentence: the last try's failure, or what gave up on it. */
  reason: string;
  /** When it died: the delivery's last try, else when the queue took it, else when it was sent. */
  deadAt: string;
  sentAt: string;
  /** Receives before it came here (0: put here directly). */
  receiveCount: number;
  partnerId?: string;
  eventId?: string;
  eventType?: string;
  deliveryId?: string;
  subscriptionId?: string;
  /** The subscription's callback URL, while the subscription exists. */
  url?: string;
  /** The delivery's status now (a redriven copy may have succeeded since). */
  deliveryStatus?: Delivery['status'];
  /** HTTP tries the delivery has had. */
  tries?: number;
  lastAttempt?: Pick<
    Attempt,
    'number' | 'startedAt' | 'statusCode' | 'error' | 'errorMessage' | 'responseExcerpt'
  >;
  /** A stream batch's span of writes: a redrive queues the events written in it for fan-out again. */
  window?: { from: string; to: string };
  /** The start of a body that is none of the above. */
  body?: string;
}

/** The dead-letter queue by that name. */
function deadLetterQueue(ops: OpsQueues, name: string): QueueLayout {
  // The layout, not describe: knowing a name needs no depth (on AWS, nine calls).
  const dlqs = ops.layout().filter((q) => q.kind === 'dead-letter');
  const queue = dlqs.find((q) => q.name === name);
  if (queue === undefined)
    throw new QueueNotFoundError(
      name,
      dlqs.map((q) => q.name),
    );
  return queue;
}

export function listQueues(deps: Pick<OpsDeps, 'queues'>): Promise<QueueInfo[]> {
  return deps.queues.describe();
}

function excerpt(text: string): string {
  return text.length > EXCERPT_CHARS ? `${text.slice(0, EXCERPT_CHARS)}…` : text;
}

/** One try's failure in a phrase: `HTTP 503: <its answer>`, `timeout: …`. */
export function describeAttempt(attempt: Attempt): string {
  if (attempt.statusCode !== undefined) {
    const answer = attempt.responseExcerpt ? `: ${excerpt(attempt.responseExcerpt)}` : '';
    return `HTTP ${attempt.statusCode}${answer}`;
  }
  return `${attempt.error ?? 'error'}${attempt.errorMessage ? `: ${attempt.errorMessage}` : ''}`;
}

/** Reads each subscription of one listing once (never its secrets). */
function subscriptionReader(subscriptions: SubscriptionStore) {
  const read = new Map<string, Promise<SubscriptionRecord | undefined>>();
  return (id: string) => {
    let found = read.get(id);
    if (found === undefined) {
      found = subscriptions.describe(id);
      read.set(id, found);
    }
    return found;
  };
}

async function deliveryLetter(
  deps: OpsDeps,
  base: DeadLetterView,
  /** Whether the queue knows when the letter came (`base.deadAt`). */
  deadAtKnown: boolean,
  message: DeliveryMessage,
  subscription: (id: string) => Promise<SubscriptionRecord | undefined>,
): Promise<DeadLetterView> {
  const [delivery, sub] = await Promise.all([
    deps.deliveries.get(message.deliveryId),
    subscription(message.subscriptionId),
  ]);
  const view: DeadLetterView = {
    ...base,
    kind: 'delivery',
    partnerId: message.partnerId,
    eventId: message.eventId,
    deliveryId: message.deliveryId,
    subscriptionId: message.subscriptionId,
    ...(sub === undefined ? {} : { url: sub.url }),
  };
  if (delivery === undefined) {
    return {
      ...view,
      ...(message.unstored ? { eventType: message.unstored.eventType } : {}),
      tries: 0,
      reason: `never tried: the dispatcher failed on it ${base.receiveCount} time(s) before storing it (see its log)`,
    };
  }
  const attempts = delivery.attempts > 0 ? await deps.deliveries.listAttempts(delivery.id) : [];
  const last = attempts.at(-1);
  const reason =
    last === undefined
      ? `never tried: the dispatcher failed on it ${base.receiveCount} time(s) (see its log)`
      : `${describeAttempt(last)} (try ${last.number}${delivery.status === 'dead' ? ', the schedule used up' : ''})`;
  return {
    ...view,
    eventType: delivery.eventType,
    deliveryStatus: delivery.status,
    tries: delivery.attempts,
    reason,
    // Where the queue does not know when the letter came, it came after the last try.
    deadAt:
      !deadAtKnown && delivery.lastAttemptAt !== undefined && delivery.lastAttemptAt > base.deadAt
        ? delivery.lastAttemptAt
        : base.deadAt,
    ...(last === undefined
      ? {}
      : {
          lastAttempt: {
            number: last.number,
            startedAt: last.startedAt,
            ...(last.statusCode === undefined ? {} : { statusCode: last.statusCode }),
            ...(last.error === undefined ? {} : { error: last.error }),
            ...(last.errorMessage === undefined ? {} : { errorMessage: last.errorMessage }),
            ...(last.responseExcerpt === undefined ? {} : { responseExcerpt: excerpt(last.responseExcerpt) }),
          },
        }),
  };
}

function eventLetter(base: DeadLetterView, ref: EventRef): DeadLetterView {
  return {
    ...base,
    kind: 'event',
    partnerId: ref.partnerId,
    eventId: ref.id,
    eventType: ref.type,
    reason: `fan-out failed on it ${base.receiveCount} time(s) (see the fan-out function's log): no delivery was made`,
  };
}

const StreamBatch = z.looseObject({
  DDBStreamBatchInfo: z.looseObject({ shardId: z.string().optional(), batchSize: z.number().optional() }),
});

function parsed(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}

/** What one stored dead letter stands for, and why it is there. */
async function viewOf(
  deps: OpsDeps,
  queue: string,
  letter: StoredDeadLetter,
  subscription: (id: string) => Promise<SubscriptionRecord | undefined>,
): Promise<DeadLetterView> {
  const base: DeadLetterView = {
    messageId: letter.messageId,
    queue,
    kind: 'unreadable',
    reason: 'not a message of this deployment: nothing can redrive it; purge it once looked at',
    deadAt: (letter.deadLetteredAt ?? letter.sentAt).toISOString(),
    sentAt: letter.sentAt.toISOString(),
    receiveCount: letter.receiveCount,
  };
  const body = parsed(letter.body);
  const delivery = DeliveryMessage.safeParse(body);
  if (delivery.success)
    return deliveryLetter(deps, base, letter.deadLetteredAt !== undefined, delivery.data, subscription);
  const ref = FanoutMessage.safeParse(body);
  if (ref.success) return eventLetter(base, ref.data);
  const batch = StreamBatch.safeParse(body);
  if (batch.success) {
    try {
      const window = pipeBatchWindow(letter.body);
      const info = batch.data.DDBStreamBatchInfo;
      const size =
        info.batchSize === undefined ? 'a stream batch' : `a stream batch of ${info.batchSize} record(s)`;
      return {
        ...base,
        kind: 'stream-batch',
        reason: `the pipe gave up on ${size}${info.shardId ? ` of shard ${info.shardId}` : ''}: its events are in the log but were not fanned out`,
        window: { from: window.from.toISOString(), to: window.to.toISOString() },
      };
    } catch {
      // Not the metadata a redrive can use: shown as it is.
    }
  }
  return { ...base, body: excerpt(letter.body) };
}

/** Up to `limit` dead letters of the queue, oldest first, each with what it stands for and why it died. */
export async function listDeadLetters(
  deps: OpsDeps,
  queue: string,
  limit: number,
): Promise<DeadLetterView[]> {
  deadLetterQueue(deps.queues, queue);
  const letters = await deps.queues.peek(queue, Math.min(limit, MAX_DEAD_LETTERS_LISTED));
  const subscription = subscriptionReader(deps.subscriptions);
  return Promise.all(letters.map((letter) => viewOf(deps, queue, letter, subscription)));
}

export interface RedriveRequest {
  max?: number;
  maxPerSecond?: number;
  /** Only say what would move. */
  dryRun?: boolean;
}

export interface RedrivePlan {
  queue: string;
  destination: string;
  /** Messages a redrive would move now (those visible, at most `max`). */
  wouldMove: number;
}

/** Starts a redrive of the dead-letter queue to its `redrivesTo` queue, or with `dryRun` says what it would move. */
export async function redriveDeadLetters(
  deps: Pick<OpsDeps, 'queues'>,
  queue: string,
  request: RedriveRequest,
): Promise<{ dryRun: true; plan: RedrivePlan } | { dryRun: false; task: RedriveTask }> {
  const dlq = deadLetterQueue(deps.queues, queue);
  if (request.dryRun) {
    const visible = (await deps.queues.describe()).find((q) => q.name === queue)?.visible ?? 0;
    const wouldMove = request.max === undefined ? visible : Math.min(visible, request.max);
    return { dryRun: true, plan: { queue, destination: dlq.redrivesTo ?? queue, wouldMove } };
  }
  const task = await deps.queues.startRedrive(queue, {
    ...(request.max === undefined ? {} : { max: request.max }),
    ...(request.maxPerSecond === undefined ? {} : { maxPerSecond: request.maxPerSecond }),
  });
  return { dryRun: false, task };
}

export async function listRedrives(deps: Pick<OpsDeps, 'queues'>, queue: string): Promise<RedriveTask[]> {
  deadLetterQueue(deps.queues, queue);
  return deps.queues.redrives(queue);
}

export async function cancelRedrive(
  deps: Pick<OpsDeps, 'queues'>,
  queue: string,
  taskId: string,
): Promise<RedriveTask> {
  deadLetterQueue(deps.queues, queue);
  return deps.queues.cancelRedrive(queue, taskId);
}

export async function purgeDeadLetters(
  deps: Pick<OpsDeps, 'queues'>,
  queue: string,
): Promise<{ queue: string; purged: number | null }> {
  deadLetterQueue(deps.queues, queue);
  return { queue, ...(await deps.queues.purge(queue)) };
}

/** A subscription as ops see it: whose, where, and how it is doing (never its secrets). */
export interface SubscriptionHealthView {
  id: string;
  partnerId: string;
  transport: 'url' | 'connection';
  url?: string;
  eventTypes: string[];
  status: Subscription['status'];
  disabledReason?: string;
  failingSince?: string;
  updatedAt: string;
}

function toHealthView(sub: SubscriptionRecord): SubscriptionHealthView {
  return {
    id: sub.id,
    partnerId: sub.partnerId,
    transport: sub.transport ?? 'url',
    ...(sub.url === undefined ? {} : { url: sub.url }),
    eventTypes: sub.eventTypes,
    status: sub.status,
    ...(sub.disabledReason === undefined ? {} : { disabledReason: sub.disabledReason }),
    ...(sub.failingSince === undefined ? {} : { failingSince: sub.failingSince }),
    updatedAt: sub.updatedAt,
  };
}

/** Every partner's subscriptions in that health, by id. */
export async function listSubscriptionsByHealth(
  deps: Pick<OpsDeps, 'subscriptions'>,
  health: SubscriptionHealth,
  query: ListQuery,
): Promise<Page<SubscriptionHealthView>> {
  const page = await deps.subscriptions.listByHealth(health, query);
  return { items: page.items.map(toHealthView), next: page.next };
}
