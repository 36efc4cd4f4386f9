import { toEventView } from './events.ts';
import { laneOf, unstoredDelivery } from './fanout.ts';
import { type HealthDeps, recordTry } from './health.ts';
import { newId } from './ids.ts';
import type { Attempt, Delivery, DeliveryMessage, SkippedReason } from './model.ts';
import { endTurn, takeLeaseMs, takeTurn } from './ordering.ts';
import type {
  CallbackResult,
  CallbackSender,
  Clock,
  ConnectionPusher,
  DeliveryQueue,
  DeliveryStore,
  EventLog,
  OrderedLines,
  SubscriptionStore,
  Transformer,
} from './ports.ts';
import { retryAfterDelaySeconds, retryDelaySeconds } from './retry.ts';
import { webhookHeaders } from './signing.ts';
import { signingSecrets } from './subscriptions.ts';
import { callbackBody } from './transformations.ts';

/**
 * Receives of one delivery message before its queue dead-letters it. Every try ends its
 * message's receive, so a message comes back only after an error of the dispatcher's own (a
 * store or queue fault, a function that died): this is a net for a message that fails that
 * way over and over, not a count of tries.
 */
export const DELIVERY_MAX_RECEIVES = 10;

/**
 * How long a connection subscription's try waits, with no connection open, before it looks
 * again; opening a connection releases the waiting tries at once, so this only bounds a try
 * that began to wait as a connection opened.
 */
const CONNECTION_WAIT_SECONDS = 300;

export interface DeliverDeps extends HealthDeps {
  events: EventLog;
  subscriptions: SubscriptionStore;
  deliveries: DeliveryStore;
  sender: CallbackSender;
  /** Where a connection subscription's tries go; without it, they wait as with no connection open. */
  connections?: ConnectionPusher;
  /** Where the next try goes; queued before this try is recorded. */
  queue: DeliveryQueue;
  clock: Clock;
  retrySchedule: readonly number[];
  deliveryTimeoutMs: number;
  random?: () => number;
  /** Ordered subscriptions' lines: a try of an ordered delivery runs only as its line's head. */
  lines: OrderedLines;
  /**
   * Evaluates subscriptions' transformations. Without it, a subscription with one has each try
   * fail (`transformation`), never an untransformed body sent.
   */
  transformer?: Transformer;
}

/**
 * What became of a message. Every outcome ends its receive: `done` (nothing more to send,
 * or a stale copy), `moved` (queued again in the slow lane, untried), `waiting` (a connection
 * subscription's try queued again, untried, to wait for a connection), `retry` (tried, failed,
 * the next try queued after `delaySeconds`) or `dead` (tried, failed, the schedule used up,
 * the message put in the dead-letter queue). An error of the dispatcher's own throws, and
 * the same message comes back with no try spent.
 */
export type DeliverOutcome =
  | {
      kind: 'done';
      reason: 'succeeded' | 'already-succeeded' | 'stale' | 'gone' | 'disabled' | 'endpoint-gone';
    }
  | { kind: 'moved' }
  | { kind: 'waiting' }
  | { kind: 'retry'; delaySeconds: number }
  | { kind: 'dead' };

/**
 * Makes one HTTP try of a delivery, in three phases: prepare, make the call, handle the outcome.
 * 1. Load the delivery, its subscription and its event. A delivery fan-out queued without
 *    storing it (the message says so) is stored by whatever ends this handling: its try, its
 *    skip or its move. Nothing is sent for a delivery that succeeded, or that has already
 *    recorded the try this message is for (a stale copy); one whose subscription is disabled
 *    or deleted, or whose event has expired, ends `skipped` with the reason (a success is
 *    never undone). A main-lane message of a failing endpoint moves to the slow lane untried.
 * 2. Sign the event with the subscription's live secrets; `webhook-id` is the delivery id,
 *    the same on every retry, so receivers can dedupe. POST it.
 * 3. Queue what comes next (see `decide`): the next try after its wait, or the dead-letter
 *    queue once the schedule is used up; only then record the attempt with the delivery's
 *    new state, so a crash in between leaves the same message to come back, never a delivery
 *    with no try to come.
 * 4. Keep the endpoint's health: a long run of failures, or a 410, disables the subscription.
 */
export async function deliver(deps: DeliverDeps, message: DeliveryMessage): Promise<DeliverOutcome> {
  const { line } = message;
  if (line === undefined) return tryDelivery(deps, message);
  // A delivery waiting its turn in its key's line (ordering.ts): tried only as the head, by one
  // message per try. A message without a try number takes the delivery's next.
  const attempt = message.attempt ?? ((await deps.deliveries.get(message.deliveryId))?.attempts ?? 0) + 1;
  const lease = { at: deps.clock.now(), leaseMs: takeLeaseMs(deps.deliveryTimeoutMs) };
  const turn = await takeTurn(deps.lines, deps.queue, { ...message, line }, attempt, lease);
  if (turn.kind === 'later') {
    // Another copy holds this try; if its dispatcher died, this one makes it once the lease ends.
    await deps.queue.send([
      { body: message, delaySeconds: turn.delaySeconds, groupId: message.subscriptionId },
    ]);
    return { kind: 'done', reason: 'stale' };
  }
  if (turn.kind === 'none') return { kind: 'done', reason: 'stale' };
  // A try queued again untried (moved to the slow lane, or waiting for a connection) keeps its
  // number: it is given back first, so that its message may take it.
  const giveBack = () => deps.lines.untake(message.subscriptionId, line.key, line.seq, attempt);
  const outcome = await tryDelivery(deps, message, giveBack);
  if (await turnEnded(deps, message.deliveryId, outcome)) {
    await endTurn(deps.lines, deps.queue, message.subscriptionId, line);
  }
  return outcome;
}

/**
 * Whether the delivery's turn in its line is over: it succeeded, was dead-lettered or
 * skipped, or is gone. A stale copy says nothing by itself: the delivery's state tells.
 */
async function turnEnded(deps: DeliverDeps, deliveryId: string, outcome: DeliverOutcome): Promise<boolean> {
  if (outcome.kind === 'dead') return true;
  if (outcome.kind !== 'done') return false;
  if (outcome.reason !== 'stale') return true;
  const delivery = await deps.deliveries.get(deliveryId);
  return (
    delivery === undefined ||
    delivery.status === 'succeeded' ||
    delivery.status === 'dead' ||
    delivery.status === 'skipped'
  );
}

/**
 * One try of a delivery (see deliver). `giveBack` is called before the try is queued again
 * untried (moved to the slow lane, or waiting for a connection): an ordered delivery gives back
 * the try it took, so that the message queued may take it.
 */
async function tryDelivery(
  deps: DeliverDeps,
  message: DeliveryMessage,
  giveBack: () => Promise<void> = async () => {},
): Promise<DeliverOutcome> {
  const stored = await deps.deliveries.get(message.deliveryId);
  // Fan-out may have left the delivery for this first handling to store (storeAtFirstTry).
  const delivery = stored ?? unstoredDelivery(message);
  if (!delivery) return { kind: 'done', reason: 'gone' };
  const unstored = stored === undefined;
  // A fan-out message of a delivery skipped already: the event fanned out again (a recovery),
  // or a copy. A skipped delivery stays skipped; a replay is how a partner sends it again.
  if (message.unstored !== undefined && stored?.status === 'skipped')
    return { kind: 'done', reason: 'stale' };
  if (delivery.status === 'succeeded') return { kind: 'done', reason: 'already-succeeded' };
  const attempt = message.attempt ?? delivery.attempts + 1;
  if (attempt <= delivery.attempts) return { kind: 'done', reason: 'stale' };
  const step = message.step ?? Math.min(delivery.attempts, deps.retrySchedule.length - 1);
  const [subscription, event] = await Promise.all([
    deps.subscriptions.get(delivery.subscriptionId),
    deps.events.get(delivery.partnerId, delivery.eventId),
  ]);
  if (!subscription || !event || subscription.status !== 'active') {
    const reason: SkippedReason = !subscription
      ? 'subscription deleted'
      : !event
        ? 'event expired'
        : 'subscription disabled';
    // Its message is dropped, so this is the delivery's last word: say why it was not sent.
    const at = deps.clock.now().toISOString();
    if (unstored) {
      const skipped: Delivery = { ...delivery, status: 'skipped', skippedReason: reason, updatedAt: at };
      const [kept] = await deps.deliveries.createForEvent([skipped]);
      if (kept?.status !== 'skipped') await deps.deliveries.skip(delivery.id, reason, at);
    } else {
      await deps.deliveries.skip(delivery.id, reason, at);
    }
    return { kind: 'done', reason: reason === 'subscription disabled' ? 'disabled' : 'gone' };
  }
  // One message group per subscription, as fan-out queues them.
  const groupId = delivery.subscriptionId;
  if (deps.queue.hasSlowLane && laneOf(subscription) === 'slow' && message.lane !== 'slow') {
    // It may wait in the slow lane a long time: stored now, it is listed while it waits.
    if (unstored) await deps.deliveries.createForEvent([delivery]);
    await giveBack();
    await deps.queue.send([{ body: { ...nextTry(message, attempt, step), lane: 'slow' }, groupId }]);
    return { kind: 'moved' };
  }

  // No connection open: the try waits for one, spending nothing. Stored now, it is listed
  // while it waits. Parked where the pusher parks tries (it may find a connection opened as it
  // parked: then, once, the try goes now), else queued again, delayed.
  let saved = !unstored;
  const waitForConnection = async (mayGoNow: boolean): Promise<DeliverOutcome | undefined> => {
    if (!saved) await deps.deliveries.createForEvent([delivery]);
    saved = true;
    const next = nextTry(message, attempt, step);
    if (connections?.park !== undefined) {
      const parked = await connections.park({
        partnerId: delivery.partnerId,
        subscriptionId: delivery.subscriptionId,
        message: next,
        groupId,
      });
      if (parked === 'parked') {
        // A copy released before this is given back waits out the lease, then tries.
        await giveBack();
        return { kind: 'waiting' };
      }
      if (mayGoNow) return undefined;
    }
    await giveBack();
    await deps.queue.send([
      { body: { ...next, waiting: true }, delaySeconds: CONNECTION_WAIT_SECONDS, groupId },
    ]);
    return { kind: 'waiting' };
  };
  const connections = subscription.url === undefined ? deps.connections : undefined;
  // Asked before signing: a try that waits hours looks again every few minutes.
  if (
    subscription.url === undefined &&
    !(await connections?.isOpen(delivery.partnerId, delivery.subscriptionId))
  ) {
    const waiting = await waitForConnection(true);
    if (waiting !== undefined) return waiting;
  }

  const started = deps.clock.now();
  const shaped = await callbackBody(deps, subscription, toEventView(event));
  const send = async (body: string) => {
    // The signature covers the body as sent: the transformed one, when there is a transformation.
    const headers = webhookHeaders({
      id: delivery.id,
      timestamp: Math.floor(started.getTime() / 1000),
      body,
      secrets: signingSecrets(subscription, started),
    });
    return subscription.url === undefined
      ? await connections?.push({
          partnerId: delivery.partnerId,
          subscriptionId: delivery.subscriptionId,
          deliveryId: delivery.id,
          attempt,
          headers,
          body,
          timeoutMs: deps.deliveryTimeoutMs,
        })
      : await deps.sender.send({ url: subscription.url, headers, body, timeoutMs: deps.deliveryTimeoutMs });
  };
  // A transformation that gave no body is a failed try, recorded, with nothing sent.
  const result: CallbackResult | undefined =
    'body' in shaped
      ? await send(shaped.body)
      : {
          error: 'transformation',
          errorMessage: shaped.error,
          durationMs: deps.clock.now().getTime() - started.getTime(),
        };
  // The connection closed in between.
  if (result === undefined) return (await waitForConnection(false)) ?? { kind: 'waiting' };
  const outcome = decide(deps, result, step);
  const succeeded = outcome.kind === 'done' && outcome.reason === 'succeeded';
  const gone = outcome.kind === 'done' && outcome.reason === 'endpoint-gone';

  if (outcome.kind === 'retry') {
    // A failing endpoint's next try waits in the slow lane.
    await deps.queue.send([
      {
        body: { ...nextTry(message, attempt + 1, step + 1), lane: 'slow' },
        delaySeconds: outcome.delaySeconds,
        groupId,
      },
    ]);
  } else if (outcome.kind === 'dead') {
    // Redriven, it is the next try of a fresh schedule, in the main lane; out of its key's
    // line, which goes on without it.
    const { line: _line, ...redriven } = nextTry(message, attempt + 1, 0);
    await deps.queue.deadLetter(redriven);
  }

  const attemptRecord: Attempt = {
    id: newId('att', started.getTime()),
    deliveryId: delivery.id,
    subscriptionId: delivery.subscriptionId,
    partnerId: delivery.partnerId,
    number: attempt,
    startedAt: started.toISOString(),
    durationMs: result.durationMs,
    ...(result.statusCode === undefined ? {} : { statusCode: result.statusCode }),
    ...(result.error !== undefined
      ? { error: result.error }
      : succeeded
        ? {}
        : { error: 'http_status' as const }),
    ...(result.errorMessage === undefined ? {} : { errorMessage: result.errorMessage }),
    ...(result.responseExcerpt === undefined ? {} : { responseExcerpt: result.responseExcerpt }),
  };
  const now = deps.clock.now();
  const { nextAttemptAt: _previous, skippedReason: _skipped, ...rest } = delivery;
  const updated: Delivery = {
    ...rest,
    status: succeeded ? 'succeeded' : outcome.kind === 'dead' ? 'dead' : gone ? 'skipped' : 'failed',
    // 410 Gone: tried, and not to be tried again, since the subscription is now disabled.
    ...(gone ? { skippedReason: 'subscription disabled' as const } : {}),
    attempts: attempt,
    updatedAt: now.toISOString(),
    lastAttemptAt: attemptRecord.startedAt,
    ...(outcome.kind === 'retry'
      ? { nextAttemptAt: new Date(now.getTime() + outcome.delaySeconds * 1000).toISOString() }
      : {}),
  };
  if (!saved) await deps.deliveries.createWithAttempt(attemptRecord, updated);
  else await deps.deliveries.recordAttempt(attemptRecord, updated);
  // A transformation's failure says nothing of the endpoint, which was not called.
  if (result.error !== 'transformation')
    await recordTry(
      deps,
      subscription,
      succeeded ? 'succeeded' : result.statusCode === 410 ? 'gone' : 'failed',
    );
  return outcome;
}

/** The message of a delivery's try number `attempt`, at `step` of the schedule, in the main lane. */
function nextTry(message: DeliveryMessage, attempt: number, step: number): DeliveryMessage {
  const { lane: _lane, waiting: _waiting, ...ids } = message;
  return { ...ids, attempt, step };
}

/**
 * What a try's result means for its delivery: 2xx is done; 410 Gone is done too (the
 * endpoint is disabled, retrying is pointless); anything else is retried after the schedule's
 * next wait, or the wait a 429/503 asked for with Retry-After, until the schedule is used up.
 * `step` is the try's place in the schedule (0 for the first).
 */
function decide(deps: DeliverDeps, result: CallbackResult, step: number): DeliverOutcome {
  const status = result.statusCode;
  if (status !== undefined && status >= 200 && status < 300) return { kind: 'done', reason: 'succeeded' };
  if (status === 410) return { kind: 'done', reason: 'endpoint-gone' };
  const delay = retryDelaySeconds(deps.retrySchedule, step + 1, deps.random);
  if (delay === null) return { kind: 'dead' };
  if (result.retryAfterSeconds !== undefined) {
    return {
      kind: 'retry',
      delaySeconds: retryAfterDelaySeconds(deps.retrySchedule, result.retryAfterSeconds),
    };
  }
  return { kind: 'retry', delaySeconds: delay };
}
