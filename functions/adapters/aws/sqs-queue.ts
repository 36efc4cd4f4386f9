/**
 * A queue port on SQS. Sends go in batches of ten (SendMessageBatch); entries SQS reports as
 * failed are retried on their own, with backoff, while the rest are not sent twice.
 */
import {
  type BatchResultErrorEntry,
  ChangeMessageVisibilityCommand,
  SendMessageBatchCommand,
  type SendMessageBatchRequestEntry,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { OutgoingMessage, QueueSender, VisibilityControl } from '../../ports.ts';

const BATCH_SIZE = 10;

export class QueueSendError extends Error {
  readonly failed: BatchResultErrorEntry[];

  constructor(queueUrl: string, failed: BatchResultErrorEntry[]) {
    super(
      `${failed.length} message(s) could not be sent to ${queueUrl}: ` +
        failed.map((f) => `${f.Code ?? 'error'}${f.Message ? ` (${f.Message})` : ''}`).join(', '),
    );
    this.name = 'QueueSendError';
    this.failed = failed;
  }
}

export interface SqsQueueOptions {
  /** Tries per batch entry, counting the first. @default 4 */
  maxTries?: number;
  /** Base of the exponential backoff between tries, in ms. @default 50 */
  backoffMs?: number;
}

export class SqsQueue<T> implements QueueSender<T>, VisibilityControl {
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

  async send(messages: OutgoingMessage<T>[]): Promise<void> {
    const batches: Promise<void>[] = [];
    for (let i = 0; i < messages.length; i += BATCH_SIZE) {
      const entries = messages.slice(i, i + BATCH_SIZE).map(
        (m, j): SendMessageBatchRequestEntry => ({
          Id: String(j),
          MessageBody: JSON.stringify(m.body),
          ...(m.delaySeconds === undefined ? {} : { DelaySeconds: m.delaySeconds }),
          // On a standard queue this makes it a fair queue: SQS keeps one group's backlog
          // from delaying the messages of the others.
          ...(m.groupId === undefined ? {} : { MessageGroupId: m.groupId }),
        }),
      );
      batches.push(this.#sendBatch(entries));
    }
    await Promise.all(batches);
  }

  async #sendBatch(entries: SendMessageBatchRequestEntry[]): Promise<void> {
    let pending = entries;
    for (let attempt = 1; ; attempt++) {
      const result = await this.#client.send(
        new SendMessageBatchCommand({ QueueUrl: this.queueUrl, Entries: pending }),
      );
      const failed = result.Failed ?? [];
      if (failed.length === 0) return;
      // A sender fault (a malformed entry) fails the same way every time: only retry the others.
      const permanent = failed.filter((f) => f.SenderFault);
      if (permanent.length > 0 || attempt >= this.#maxTries) throw new QueueSendError(this.queueUrl, failed);
      const retry = new Set(failed.map((f) => f.Id));
      pending = pending.filter((e) => retry.has(e.Id));
      await new Promise((resolve) =>
        setTimeout(resolve, this.#backoffMs * 2 ** (attempt - 1) * Math.random()),
      );
    }
  }

  async changeVisibility(receiptHandle: string, timeoutSeconds: number): Promise<void> {
    await this.#client.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: this.queueUrl,
        ReceiptHandle: receiptHandle,
        VisibilityTimeout: timeoutSeconds,
      }),
    );
  }
}
