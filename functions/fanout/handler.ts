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
import { FanoutMessage } from '../core/model.ts';

/**
 * The records of a batch are fanned out side by side, and their deliveries queued together
 * (SendCoalescer): a batch of ten events to one subscription each is one SendMessageBatch,
 * not ten.
 */
export function createFanoutHandler(deps: FanOutDeps, log: Log = console.error) {
  return middy<SQSEvent, SQSBatchResponse>().handler((event) => {
    const coalescer = new SendCoalescer(deps.deliveryQueue, event.Records.length);
    const senders = event.Records.map(() => coalescer.sender());
    return processBatch(
      event.Records,
      async (record, index) => {
        const sender = senders[index];
        if (!sender) throw new Error('no sender for the record');
        try {
          const ref = FanoutMessage.parse(JSON.parse(record.body));
          await fanOutEvent({ ...deps, deliveryQueue: sender }, ref);
          return true;
        } finally {
          sender.close();
        }
      },
      log,
    );
  });
}

export type FanoutHandler = ReturnType<typeof createFanoutHandler>;
