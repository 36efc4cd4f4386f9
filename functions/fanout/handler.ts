/**
 * Fan-out: SQS batches of event references (one event each, as the pipe or the local router
 * writes them) in; one delivery per matching subscription queued for the dispatcher. Failed
 * records are reported back so only they are retried, and after the queue's max receives they
 * land in its DLQ.
 */
import middy from '@middy/core';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { type Log, processBatch, SendCoalescer } from '../batch.ts';
import { type FanOutDeps, fanOutEvent } from '../core/fanout.ts';
import { type EventRef, FanoutMessage } from '../core/model.ts';

/**
 * Fan-out of `count` events side by side, their deliveries queued together (SendCoalescer): a
 * batch of ten events to one subscription each is one send (one SendMessageBatch), not ten.
 * Call the function returned once for each event, with its place; `ref` is read inside, so
 * an event that cannot even be read still lets the others' send go.
 */
export function fanOutTogether(
  deps: FanOutDeps,
  count: number,
): (index: number, ref: () => EventRef) => Promise<void> {
  const coalescer = new SendCoalescer(deps.deliveryQueue, count);
  const senders = Array.from({ length: count }, () => coalescer.sender());
  return async (index, ref) => {
    const sender = senders[index];
    if (!sender) throw new Error(`no sender for event ${index} of ${count}`);
    try {
      await fanOutEvent({ ...deps, deliveryQueue: sender }, ref());
    } finally {
      sender.close();
    }
  };
}

/** The records of a batch are fanned out together (fanOutTogether). */
export function createFanoutHandler(deps: FanOutDeps, log: Log = console.error) {
  return middy<SQSEvent, SQSBatchResponse>().handler((event) => {
    const fanOut = fanOutTogether(deps, event.Records.length);
    return processBatch(
      event.Records,
      async (record, index) => {
        await fanOut(index, () => FanoutMessage.parse(JSON.parse(record.body)));
        return true;
      },
      log,
    );
  });
}

export type FanoutHandler = ReturnType<typeof createFanoutHandler>;
