/**
 * Recovery of the pipe's dead letters, two ways in:
 * - an SQS batch from the recovery queue: ops redrive the pipe's dead-letter queue to it (SQS
 *   console "Start DLQ redrive" to a custom destination, `dispatcher dlq redrive pipe-dlq`, or
 *   the admin API). Each record's events are queued for fan-out again; a record that fails is
 *   reported, tried again after its visibility timeout, and after the queue's receives goes
 *   back to the pipe's dead-letter queue;
 * - any other event (console "Test", `aws lambda invoke --function-name <RecoveryFunctionName>`):
 *   it empties the pipe's dead-letter queue itself and answers what it did.
 */
import middy from '@middy/core';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { type Log, processBatch } from '../batch.ts';
import {
  type RecoveryDeps,
  type RecoveryReport,
  recoverPipeDeadLetter,
  recoverPipeDeadLetters,
} from '../core/recovery.ts';

/** An SQS event source's batch (its records say they come from SQS), not a direct invocation. */
function isSqsBatch(event: unknown): event is SQSEvent {
  if (typeof event !== 'object' || event === null || !('Records' in event)) return false;
  const { Records } = event;
  return (
    Array.isArray(Records) &&
    Records.every(
      (record: unknown) =>
        typeof record === 'object' &&
        record !== null &&
        'eventSource' in record &&
        record.eventSource === 'aws:sqs',
    )
  );
}

export function createRecoveryHandler(deps: RecoveryDeps, budgetMs: number, log: Log = console.error) {
  return middy<unknown, RecoveryReport | SQSBatchResponse>().handler((event) => {
    if (!isSqsBatch(event)) return recoverPipeDeadLetters(deps, budgetMs);
    // Letters of one batch whose spans overlap queue their common events once.
    const sent = new Set<string>();
    return processBatch(
      event.Records,
      async (record) => {
        await recoverPipeDeadLetter(deps, record.body, sent);
        return true;
      },
      log,
    );
  });
}
