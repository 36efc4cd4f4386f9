/**
 * Dispatcher: SQS batches of delivery messages in; one signed POST each, all of a batch side
 * by side. Every try ends its message's receive: a failed one queues the next try as a
 * message of its own (after its wait; see DeliveryQueue) or, after the schedule's last try,
 * puts it in the dead-letter queue. So no waiting try is held in flight, and only the
 * dispatcher's own errors fail a record: the same message then comes back when its
 * visibility timeout ends, with no try spent, and the queue's max receive count only catches
 * a message that fails that way over and over (a poison message).
 */
import middy from '@middy/core';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { type Log, processBatch } from '../batch.ts';
import { type DeliverDeps, type DeliverOutcome, deliver } from '../core/delivery.ts';
import { DeliveryMessage } from '../core/model.ts';

export type DispatcherDeps = DeliverDeps;

/**
 * Told what became of each record, with the message it carried (the local runtime shares out
 * its slots by it; on AWS it is counted as metrics).
 */
export type OutcomeObserver = (record: SQSRecord, outcome: DeliverOutcome, message: DeliveryMessage) => void;

export function createDispatcherHandler(
  deps: DispatcherDeps,
  log: Log = console.error,
  observe?: OutcomeObserver,
) {
  return middy<SQSEvent, SQSBatchResponse>().handler((event) =>
    processBatch(
      event.Records,
      async (record) => {
        const message = DeliveryMessage.parse(JSON.parse(record.body));
        const outcome = await deliver(deps, message);
        observe?.(record, outcome, message);
        return true;
      },
      log,
    ),
  );
}

export type DispatcherHandler = ReturnType<typeof createDispatcherHandler>;
