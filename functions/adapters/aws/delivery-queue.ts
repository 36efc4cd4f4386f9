/**
 * The delivery queues on AWS: a main lane and a slow lane (SQS queues), their dead-letter
 * queue, and the due retries of the deliveries table for waits SQS cannot hold. A message
 * goes to the lane its body names with its DelaySeconds when the wait fits in SQS's 15
 * minutes, and to the due retries otherwise, so no waiting try is ever held in flight (a
 * standard queue's in-flight quota counts hidden messages, and a dead endpoint's backlog
 * would reach it); the sweeper queues due retries shortly before their time.
 */
import { SQS } from '../../aws-quotas.ts';
import { MessagesNotSentError } from '../../core/errors.ts';
import type { DeliveryMessage } from '../../core/model.ts';
import type { Clock, DeliveryQueue, DueRetryStore, OutgoingMessage, QueueSender } from '../../core/ports.ts';
import { systemClock } from '../clock.ts';

export interface SqsDeliveryQueueOptions {
  main: QueueSender<DeliveryMessage>;
  slow: QueueSender<DeliveryMessage>;
  /** Where a delivery whose schedule is used up goes; needed only by the dispatcher. */
  deadLetters?: QueueSender<DeliveryMessage>;
  /** Where a try waits that is due later than SQS can delay it; needed only by the dispatcher. */
  due?: DueRetryStore;
  /** @default systemClock */
  clock?: Clock;
}

export class SqsDeliveryQueue implements DeliveryQueue {
  readonly hasSlowLane = true;
  readonly #options: SqsDeliveryQueueOptions;
  readonly #clock: Clock;

  constructor(options: SqsDeliveryQueueOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
  }

  /**
   * Sends each message where it belongs (main lane, slow lane, due retries), the three side
   * by side.
   * @throws MessagesNotSentError naming, by position in `messages`, every message not sent
   */
  async send(messages: OutgoingMessage<DeliveryMessage>[]): Promise<void> {
    const main: number[] = [];
    const slow: number[] = [];
    const later: number[] = [];
    messages.forEach((m, i) => {
      if ((m.delaySeconds ?? 0) > SQS.maxDelaySeconds) later.push(i);
      else if (m.body.lane === 'slow') slow.push(i);
      else main.push(i);
    });
    const now = this.#clock.now().getTime();
    const pick = (positions: number[]) => positions.flatMap((i) => messages[i] ?? []);
    const parts: { positions: number[]; sending: Promise<void> }[] = [
      { positions: main, sending: this.#options.main.send(pick(main)) },
      { positions: slow, sending: this.#options.slow.send(pick(slow)) },
      {
        positions: later,
        sending: this.#putDue(
          pick(later).map((m) => ({
            message: m.body,
            ...(m.groupId === undefined ? {} : { groupId: m.groupId }),
            dueAt: new Date(now + (m.delaySeconds ?? 0) * 1000).toISOString(),
          })),
        ),
      },
    ];
    const settled = await Promise.allSettled(parts.map((part) => part.sending));
    const unsent: number[] = [];
    let cause: unknown;
    settled.forEach((result, k) => {
      const positions = parts[k]?.positions ?? [];
      if (result.status === 'fulfilled') return;
      cause ??= result.reason;
      if (result.reason instanceof MessagesNotSentError) {
        for (const j of result.reason.unsent) unsent.push(positions[j] ?? -1);
      } else {
        unsent.push(...positions);
      }
    });
    if (unsent.length > 0) {
      throw new MessagesNotSentError(
        `${unsent.length} of ${messages.length} delivery message(s) were not sent`,
        unsent.sort((a, b) => a - b),
        { cause },
      );
    }
  }

  async deadLetter(message: DeliveryMessage): Promise<void> {
    const deadLetters = this.#options.deadLetters;
    if (deadLetters === undefined) throw new Error('this delivery queue has no dead-letter queue configured');
    await deadLetters.send([{ body: message }]);
  }

  async #putDue(retries: Parameters<DueRetryStore['put']>[0]): Promise<void> {
    if (retries.length === 0) return;
    const due = this.#options.due;
    if (due === undefined) throw new Error('this delivery queue cannot hold a wait over 900 s: no due store');
    await due.put(retries);
  }
}
