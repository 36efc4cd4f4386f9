/**
 * Dispatcher: SQS batches of delivery messages in; one signed POST each. A failed try is
 * reported in `batchItemFailures` after its message has been hidden for the retry schedule's
 * next wait (ChangeMessageVisibility), so the queue itself is the backoff timer; after the
 * last try the message is made visible at once, and the queue moves it to the DLQ on the
 * receive that exceeds its max receive count.
 */
import middy from '@middy/core';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { type Log, processBatch } from '../batch.ts';
import { type DeliverDeps, deliver } from '../core/delivery.ts';
import { DeliveryMessage } from '../core/model.ts';
import type { VisibilityControl } from '../ports.ts';

export interface DispatcherDeps extends DeliverDeps {
  queue: VisibilityControl;
}

async function processRecord(deps: DispatcherDeps, record: SQSRecord): Promise<boolean> {
  const message = DeliveryMessage.parse(JSON.parse(record.body));
  const receiveCount = Number(record.attributes.ApproximateReceiveCount) || 1;
  const outcome = await deliver(deps, message, receiveCount);
  if (outcome.kind === 'done') return true;
  await deps.queue.changeVisibility(
    record.receiptHandle,
    outcome.kind === 'retry' ? outcome.delaySeconds : 0,
  );
  return false;
}

export function createDispatcherHandler(deps: DispatcherDeps, log: Log = console.error) {
  return middy<SQSEvent, SQSBatchResponse>().handler((event) =>
    processBatch(event.Records, (record) => processRecord(deps, record), log),
  );
}

export type DispatcherHandler = ReturnType<typeof createDispatcherHandler>;
