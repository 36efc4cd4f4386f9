import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { SQSBatchResponse, SQSRecord } from 'aws-lambda';
import { MessagesNotSentError } from './core/errors.ts';
import type { OutgoingMessage, QueueSender } from './core/ports.ts';

export type Log = (message: string, error: unknown) => void;

/** A record `process` answered false for: it failed without an error of its own. */
class RecordNotProcessedError extends Error {
  constructor(messageId: string) {
    super(`message ${messageId} was not processed`);
    this.name = 'RecordNotProcessedError';
  }
}

/**
 * Runs `process` on every record of an SQS batch concurrently and reports partial failures,
 * with Powertools' batch utility (processPartialResponse, records in parallel): a record fails
 * when `process` throws (logged) or returns false, only failed records are retried, and a
 * batch whose every record failed is answered as such rather than thrown. `process` gets the
 * record's place in the batch.
 */
export async function processBatch(
  records: readonly SQSRecord[],
  process: (record: SQSRecord, index: number) => Promise<boolean>,
  log: Log,
): Promise<SQSBatchResponse> {
  const places = new Map(records.map((record, index) => [record.messageId, index]));
  return processPartialResponse(
    { Records: [...records] },
    async (record: SQSRecord) => {
      let processed: boolean;
      try {
        processed = await process(record, places.get(record.messageId) ?? -1);
      } catch (error) {
        log(`message ${record.messageId} failed`, error);
        throw error;
      }
      if (!processed) throw new RecordNotProcessedError(record.messageId);
    },
    new BatchProcessor(EventType.SQS),
    { processInParallel: true, throwOnFullBatchFailure: false },
  );
}

/** One record's share of a SendCoalescer: its sends, and its end. */
export interface CoalescedSender<T> extends QueueSender<T> {
  /** The record is done (sent, sent nothing, or failed): the others no longer wait for it. */
  close(): void;
}

interface Waiting<T> {
  messages: OutgoingMessage<T>[];
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * Gathers the sends of a batch's records, processed side by side, into one send: it goes when
 * every record has either sent or ended, so the queue adapter packs the messages of the whole
 * batch into as few requests as it can (SendMessageBatch takes ten) instead of a request per
 * record. Each record's send settles with the shared one: it fails only if one of its own
 * messages was not sent. A record that sends again after that sends on its own.
 */
export class SendCoalescer<T> {
  readonly #queue: QueueSender<T>;
  #open: number;
  #waiting: Waiting<T>[] = [];

  constructor(queue: QueueSender<T>, records: number) {
    this.#queue = queue;
    this.#open = records;
  }

  /** The sender of one record. Ask for exactly as many as `records`. */
  sender(): CoalescedSender<T> {
    let open = true;
    const arrive = () => {
      if (!open) return false;
      open = false;
      this.#open -= 1;
      return true;
    };
    return {
      send: (messages) => {
        if (!arrive()) return this.#queue.send(messages);
        const sent = new Promise<void>((resolve, reject) =>
          this.#waiting.push({ messages, resolve, reject }),
        );
        this.#flushWhenAllArrived();
        return sent;
      },
      close: () => {
        if (arrive()) this.#flushWhenAllArrived();
      },
    };
  }

  #flushWhenAllArrived(): void {
    if (this.#open > 0 || this.#waiting.length === 0) return;
    const waiting = this.#waiting;
    this.#waiting = [];
    const all = waiting.flatMap((w) => w.messages);
    Promise.resolve()
      .then(() => this.#queue.send(all))
      .then(
        () => {
          for (const w of waiting) w.resolve();
        },
        (error: unknown) => {
          if (!(error instanceof MessagesNotSentError)) {
            for (const w of waiting) w.reject(error);
            return;
          }
          // Only the records whose own messages were not sent fail.
          const unsent = new Set(error.unsent);
          let offset = 0;
          for (const w of waiting) {
            const mine = w.messages.flatMap((_, i) => (unsent.has(offset + i) ? [i] : []));
            offset += w.messages.length;
            if (mine.length === 0) w.resolve();
            else w.reject(new MessagesNotSentError(error.message, mine, { cause: error }));
          }
        },
      );
  }
}
