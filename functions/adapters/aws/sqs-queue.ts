/**
 * A queue port on SQS. Sends go in batches of ten (SendMessageBatch); entries SQS reports as
 * failed are retried on their own, with backoff, while the rest are not sent twice. What is
 * still not sent in the end is named in the QueueSendError thrown, so a caller can tell the
 * messages that went from those that did not.
 */
import {
  type BatchResultErrorEntry,
  DeleteMessageCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  type SendMessageBatchRequestEntry,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { MessagesNotSentError } from '../../core/errors.ts';
import type { DeadLetterSource, OutgoingMessage, QueueSender } from '../../core/ports.ts';

const BATCH_SIZE = 10;

/**
 * Some messages of a send were not sent. `unsent` are their positions in the array given to
 * `send`; `failed` the entries SQS refused at the last try (a batch whose request itself
 * failed has none: `cause` is that error, and all its entries not yet sent count as unsent).
 */
export class QueueSendError extends MessagesNotSentError {
  readonly failed: BatchResultErrorEntry[];

  constructor(queueUrl: string, failed: BatchResultErrorEntry[], unsent: readonly number[], cause?: unknown) {
    const reasons = [
      ...failed.map((f) => `${f.Code ?? 'error'}${f.Message ? ` (${f.Message})` : ''}`),
      ...(cause === undefined ? [] : [cause instanceof Error ? cause.message : String(cause)]),
    ];
    super(
      `${unsent.length} message(s) could not be sent to ${queueUrl}: ${reasons.join(', ')}`,
      unsent,
      cause === undefined ? undefined : { cause },
    );
    this.failed = failed;
  }
}

/** What one batch left unsent: the entries, what SQS said of them, or the request's error. */
interface BatchOutcome {
  unsent: SendMessageBatchRequestEntry[];
  failed: BatchResultErrorEntry[];
  error?: unknown;
}

export interface SqsQueueOptions {
  /** Tries per batch entry, counting the first. @default 4 */
  maxTries?: number;
  /** Base of the exponential backoff between tries, in ms. @default 50 */
  backoffMs?: number;
}

export class SqsQueue<T> implements QueueSender<T> {
  readonly queueUrl: string;
  readonly #client: SQSClient;
  readonly #maxTries: number;
  readonly #backoffMs: number;

  constructor(client: SQSClient, queueUrl: string, options: SqsQueueOptions = {}) {
    this.#client = client;
    this.queueUrl = queueUrl;
    this.#maxTries = options.maxTries ?? 4;
    this.#backoffMs = options.backoffMs ?? 50;
  }

  /**
   * Sends every batch side by side and waits for all of them, so that on failure the error
   * names every message not sent, whichever batch it was in.
   * @throws QueueSendError naming the messages not sent
   */
  async send(messages: OutgoingMessage<T>[]): Promise<void> {
    const batches: { offset: number; entries: SendMessageBatchRequestEntry[] }[] = [];
    for (let offset = 0; offset < messages.length; offset += BATCH_SIZE) {
      const entries = messages.slice(offset, offset + BATCH_SIZE).map(
        (m, j): SendMessageBatchRequestEntry => ({
          Id: String(j),
          MessageBody: JSON.stringify(m.body),
          ...(m.delaySeconds === undefined ? {} : { DelaySeconds: m.delaySeconds }),
          // On a standard queue this makes it a fair queue: SQS keeps one group's backlog
          // from delaying the messages of the others.
          ...(m.groupId === undefined ? {} : { MessageGroupId: m.groupId }),
        }),
      );
      batches.push({ offset, entries });
    }
    const outcomes = await Promise.all(batches.map((batch) => this.#sendBatch(batch.entries)));
    const unsent: number[] = [];
    const failed: BatchResultErrorEntry[] = [];
    let cause: unknown;
    outcomes.forEach((outcome, k) => {
      const offset = batches[k]?.offset ?? 0;
      for (const entry of outcome.unsent) unsent.push(offset + Number(entry.Id));
      failed.push(...outcome.failed);
      if (outcome.error !== undefined) cause ??= outcome.error;
    });
    if (unsent.length > 0) throw new QueueSendError(this.queueUrl, failed, unsent, cause);
  }

  /** Never throws: what could not be sent is in the outcome. */
  async #sendBatch(entries: SendMessageBatchRequestEntry[]): Promise<BatchOutcome> {
    let pending = entries;
    // A sender fault (a malformed entry) fails the same way every time: it is not retried.
    const refused: SendMessageBatchRequestEntry[] = [];
    const refusals: BatchResultErrorEntry[] = [];
    for (let attempt = 1; ; attempt++) {
      let failed: BatchResultErrorEntry[];
      try {
        const result = await this.#client.send(
          new SendMessageBatchCommand({ QueueUrl: this.queueUrl, Entries: pending }),
        );
        failed = result.Failed ?? [];
      } catch (error) {
        // The request itself failed (after the SDK's own retries): whether SQS took any of
        // these entries is unknown, so they count as not sent.
        return { unsent: [...refused, ...pending], failed: refusals, error };
      }
      const permanent = new Set(failed.filter((f) => f.SenderFault).map((f) => f.Id));
      const transient = new Set(failed.filter((f) => !f.SenderFault).map((f) => f.Id));
      refused.push(...pending.filter((e) => permanent.has(e.Id)));
      refusals.push(...failed.filter((f) => f.SenderFault));
      pending = pending.filter((e) => transient.has(e.Id));
      if (pending.length === 0 || attempt >= this.#maxTries) {
        return {
          unsent: [...refused, ...pending],
          failed: [...refusals, ...failed.filter((f) => !f.SenderFault)],
        };
      }
      await new Promise((resolve) =>
        setTimeout(resolve, this.#backoffMs * 2 ** (attempt - 1) * Math.random()),
      );
    }
  }
}

/** A queue read to be emptied (see DeadLetterSource): no wait, ten messages a receive. */
export class SqsDeadLetterSource implements DeadLetterSource {
  readonly queueUrl: string;
  readonly #client: SQSClient;

  constructor(client: SQSClient, queueUrl: string) {
    this.#client = client;
    this.queueUrl = queueUrl;
  }

  async receive(): Promise<{ messageId: string; body: string; receiptHandle: string }[]> {
    const result = await this.#client.send(
      new ReceiveMessageCommand({
        QueueUrl: this.queueUrl,
        MaxNumberOfMessages: BATCH_SIZE,
        WaitTimeSeconds: 0,
      }),
    );
    return (result.Messages ?? []).flatMap((m) =>
      m.MessageId === undefined || m.ReceiptHandle === undefined
        ? []
        : [{ messageId: m.MessageId, body: m.Body ?? '', receiptHandle: m.ReceiptHandle }],
    );
  }

  async delete(receiptHandle: string): Promise<void> {
    await this.#client.send(
      new DeleteMessageCommand({ QueueUrl: this.queueUrl, ReceiptHandle: receiptHandle }),
    );
  }
}
