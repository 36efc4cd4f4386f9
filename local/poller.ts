import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import type { SqliteQueue } from '../functions/adapters/sqlite/queues.ts';
import { lambdaContext } from './lambda-context.ts';
import { Wakeup } from './wakeup.ts';

type BatchHandler = (event: SQSEvent, context: ReturnType<typeof lambdaContext>) => Promise<SQSBatchResponse>;

export interface PollerOptions<T> {
  name: string;
  queue: SqliteQueue<T>;
  handler: BatchHandler;
  /** Records per invocation, as an SQS event source mapping's BatchSize. */
  batchSize: number;
  /** Invocations in flight at once, as an event source mapping's maximum concurrency. */
  concurrency: number;
  /** Longest sleep when the queue looks empty; writes from other processes are seen this late. */
  idleMs?: number;
  log: (message: string, error?: unknown) => void;
}

/**
 * What Lambda's SQS event source mapping does, in-process: receive a batch, invoke the
 * handler, delete the records it did not report in `batchItemFailures`. A failed record stays
 * in the queue and comes back when its visibility timeout (which the handler may have
 * changed) runs out; a handler that throws fails the whole batch.
 */
export class QueuePoller<T> {
  readonly wakeup = new Wakeup();
  readonly #options: PollerOptions<T>;
  #running = false;
  #loops: Promise<void>[] = [];

  constructor(options: PollerOptions<T>) {
    this.#options = options;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loops = Array.from({ length: this.#options.concurrency }, () => this.#loop());
  }

  /** Stops receiving and waits for the batches in flight. */
  async stop(): Promise<void> {
    this.#running = false;
    this.wakeup.wake();
    await Promise.all(this.#loops);
  }

  async #loop(): Promise<void> {
    const { queue, idleMs = 1_000 } = this.#options;
    while (this.#running) {
      const records = queue.receive(this.#options.batchSize);
      if (records.length === 0) {
        const next = queue.nextVisibleAt();
        const wait = next === null ? idleMs : Math.min(idleMs, Math.max(1, next.getTime() - Date.now()));
        await this.wakeup.sleep(wait);
        continue;
      }
      // Another loop may find work too: let it look while this batch runs.
      if (records.length === this.#options.batchSize) this.wakeup.wake();
      await this.#invoke(records);
    }
  }

  async #invoke(records: SQSEvent['Records']): Promise<void> {
    const { queue, handler, name, log } = this.#options;
    let failed: Set<string>;
    try {
      const response = await handler({ Records: records }, lambdaContext(name));
      failed = new Set((response?.batchItemFailures ?? []).map((f) => f.itemIdentifier));
    } catch (error) {
      log(`${name}: batch of ${records.length} failed`, error);
      return;
    }
    for (const record of records) {
      if (!failed.has(record.messageId)) queue.delete(record.receiptHandle);
    }
  }
}
