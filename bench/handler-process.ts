/**
 * The dispatcher handler alone, in its own process: createDispatcherHandler with the SQLite
 * adapters on an in-memory database, the real HttpCallbackSender and a no-op delivery
 * queue, fed SQS-shaped batches by concurrent "invocations" (batch size and
 * concurrency from the runner). Events, the subscription and the deliveries (made by the
 * product's own fan-out) exist before the clock starts, so what is timed is what the Lambda
 * does per record: load the delivery, its subscription and event, sign, POST, store the attempt.
 */
import { randomUUID } from 'node:crypto';
import type { SQSRecord } from 'aws-lambda';
import { z } from 'zod';
import { systemClock } from '../functions/adapters/clock.ts';
import { systemResolver } from '../functions/adapters/dns.ts';
import { HttpCallbackSender } from '../functions/adapters/http/callback-sender.ts';
import { generateLocalKey, KeyFileCipher } from '../functions/adapters/secrets/key-file.ts';
import { openDatabase } from '../functions/adapters/sqlite/database.ts';
import { SqliteDeliveryStore } from '../functions/adapters/sqlite/deliveries.ts';
import { SqliteEventLog } from '../functions/adapters/sqlite/events.ts';
import { SqliteOrderedLines } from '../functions/adapters/sqlite/ordered-lines.ts';
import { SqliteSubscriptionStore } from '../functions/adapters/sqlite/subscriptions.ts';
import { fanOutEvent } from '../functions/core/fanout.ts';
import { DEFAULT_DISABLE_AFTER_MS } from '../functions/core/health.ts';
import { newId } from '../functions/core/ids.ts';
import type { DeliveryMessage } from '../functions/core/model.ts';
import type { OutgoingMessage } from '../functions/core/ports.ts';
import { DEFAULT_RETRY_SCHEDULE } from '../functions/core/retry.ts';
import { createSubscription } from '../functions/core/subscriptions.ts';
import { createDispatcherHandler } from '../functions/dispatcher/handler.ts';
import { lambdaContext } from '../local/lambda-context.ts';
import { benchPayload, EVENT_TYPE } from './payload.ts';
import { nowMs, serve } from './rpc.ts';

const Prepare = z.object({ url: z.string(), count: z.number().int().positive() });
const Run = z.object({
  batchSize: z.number().int().positive(),
  concurrency: z.number().int().positive(),
  /** Give up (and report what was done) after this long. */
  timeLimitMs: z.number().positive(),
});

export interface HandlerPrepared {
  /** The subscription's signing secret, for the receiver. */
  secret: string;
  setupMs: number;
}

export interface HandlerRunResult {
  delivered: number;
  failed: number;
  startedAt: number;
  endedAt: number;
}

const db = openDatabase(':memory:');
const events = new SqliteEventLog(db);
const subscriptions = new SqliteSubscriptionStore(db, new KeyFileCipher([generateLocalKey()]));
const deliveries = new SqliteDeliveryStore(db);
const lines = new SqliteOrderedLines(db);
const sender = new HttpCallbackSender({ allowPrivateTargets: true });
let records: SQSRecord[] = [];

function toRecord(message: OutgoingMessage<DeliveryMessage>): SQSRecord {
  const body = JSON.stringify(message.body);
  return {
    messageId: randomUUID(),
    receiptHandle: randomUUID(),
    body,
    attributes: {
      ApproximateReceiveCount: '1',
      SentTimestamp: String(Date.now()),
      SenderId: 'bench',
      ApproximateFirstReceiveTimestamp: String(Date.now()),
    },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn:aws:sqs:local:000000000000:delivery',
    awsRegion: 'local',
  };
}

/**
 * Stores a subscription to `url` and `count` events, and fans each out with the product's
 * own use case; the delivery messages it queues become the SQS records `run` hands over.
 */
async function prepare(params: unknown): Promise<HandlerPrepared> {
  const p = Prepare.parse(params);
  const started = nowMs();
  const partnerId = newId('ptr');
  const { secret } = await createSubscription(
    { subscriptions, clock: systemClock, resolver: systemResolver, allowPrivateTargets: true },
    partnerId,
    { url: p.url },
  );
  if (secret === undefined) throw new Error('an hmac subscription comes with its secret');
  const deliveryQueue = {
    send: async (messages: OutgoingMessage<DeliveryMessage>[]) => {
      records.push(...messages.map(toRecord));
    },
  };
  records = [];
  for (let seq = 0; seq < p.count; seq++) {
    const { event } = await events.append({
      partnerId,
      type: EVENT_TYPE,
      payload: benchPayload(seq, nowMs()),
      createdAt: new Date().toISOString(),
    });
    await fanOutEvent(
      {
        subscriptions,
        events,
        deliveries,
        deliveryQueue,
        clock: systemClock,
        lines,
        fanoutQueue: {
          send: async () => {
            throw new Error('the bench publishes no ordering key, so no event is parked');
          },
        },
      },
      event,
    );
  }
  if (records.length !== p.count)
    throw new Error(`fan-out queued ${records.length} of ${p.count} deliveries`);
  return { secret, setupMs: nowMs() - started };
}

async function run(params: unknown): Promise<HandlerRunResult> {
  const p = Run.parse(params);
  const handler = createDispatcherHandler({
    events,
    subscriptions,
    deliveries,
    lines,
    sender,
    clock: systemClock,
    retrySchedule: DEFAULT_RETRY_SCHEDULE,
    deliveryTimeoutMs: 10_000,
    disableAfterMs: DEFAULT_DISABLE_AFTER_MS,
    // The bench's receiver answers every callback: nothing is queued again.
    queue: { hasSlowLane: false, send: async () => {}, deadLetter: async () => {} },
  });
  const startedAt = nowMs();
  const deadline = startedAt + p.timeLimitMs;
  let next = 0;
  let delivered = 0;
  let failed = 0;
  const invoker = async () => {
    while (next < records.length && nowMs() < deadline) {
      const batch = records.slice(next, next + p.batchSize);
      next += batch.length;
      const response = await handler({ Records: batch }, lambdaContext('dispatcher'));
      const failures = response?.batchItemFailures.length ?? 0;
      failed += failures;
      delivered += batch.length - failures;
    }
  };
  await Promise.all(Array.from({ length: p.concurrency }, invoker));
  return { delivered, failed, startedAt, endedAt: nowMs() };
}

serve({ prepare, run });
