/**
 * Fan-out: SQS batches of bus envelopes (one event each) in; one delivery per matching
 * subscription queued for the dispatcher. Failed records are reported back so only they are
 * retried, and after the queue's max receives they land in its DLQ.
 */
import middy from '@middy/core';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import * as z from 'zod';
import { type Log, processBatch } from '../batch.ts';
import { type FanOutDeps, fanOutEvent } from '../core/fanout.ts';
import { EventId, EventType, PartnerId, Timestamp } from '../core/model.ts';

const Envelope = z.object({
  detail: z.object({ id: EventId, partnerId: PartnerId, type: EventType, createdAt: Timestamp }),
});

export function createFanoutHandler(deps: FanOutDeps, log: Log = console.error) {
  return middy<SQSEvent, SQSBatchResponse>().handler((event) =>
    processBatch(
      event.Records,
      async (record) => {
        const envelope = Envelope.parse(JSON.parse(record.body));
        await fanOutEvent(deps, envelope.detail);
        return true;
      },
      log,
    ),
  );
}

export type FanoutHandler = ReturnType<typeof createFanoutHandler>;
