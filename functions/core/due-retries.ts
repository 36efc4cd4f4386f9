import { MessagesNotSentError } from './errors.ts';
import type { DeliveryMessage } from './model.ts';
import type { Clock, DueRetryStore, QueueSender } from './ports.ts';

/** How often the sweeper runs. */
export const DUE_SWEEP_INTERVAL_SECONDS = 60;
/**
 * How far ahead of their time the sweeper queues due retries, with the rest of their wait as
 * DelaySeconds: several sweeps' worth, so a late or failed sweep still leaves them on time,
 * and within SQS's 15-minute delay.
 */
export const DUE_LOOKAHEAD_SECONDS = 300;
/** A sweep starts no new round after this long (its function times out at 60 s). */
export const SWEEP_BUDGET_MS = 40_000;

export interface SweepDeps {
  due: DueRetryStore;
  /** The delivery queues (a lookahead within SQS's 15 minutes keeps every delay within them). */
  queue: QueueSender<DeliveryMessage>;
  clock: Clock;
}

export interface SweepOptions {
  /** Retries due within this many seconds are queued now, with the rest of their wait as delay. */
  lookaheadSeconds: number;
  /** Retries read and queued per round. @default 500 */
  pageSize?: number;
  /** Stop starting rounds after this long, leaving the rest to the next sweep. @default SWEEP_BUDGET_MS */
  budgetMs?: number;
}

/**
 * Moves the tries that come due soon from the due store into the delivery queues.
 * 1. Read the retries due before now + lookahead, soonest first.
 * 2. Queue each with the rest of its wait as DelaySeconds (never more than the queue takes),
 *    so it still leaves on time, in the lane its message names.
 * 3. Remove the ones queued; one queued but not removed (a crash in between) is queued again
 *    by the next sweep, and the dispatcher drops the copy whose try is already recorded.
 * Repeats until nothing is due or the budget is spent. Returns how many were queued.
 */
export async function sweepDueRetries(deps: SweepDeps, options: SweepOptions): Promise<number> {
  const pageSize = options.pageSize ?? 500;
  const budgetMs = options.budgetMs ?? SWEEP_BUDGET_MS;
  const started = deps.clock.now().getTime();
  let queued = 0;
  for (;;) {
    const now = deps.clock.now().getTime();
    if (now - started > budgetMs) return queued;
    const due = await deps.due.due(new Date(now + options.lookaheadSeconds * 1000), pageSize);
    if (due.length === 0) return queued;
    const messages = due.map((retry) => ({
      body: retry.message,
      ...(retry.groupId === undefined ? {} : { groupId: retry.groupId }),
      delaySeconds: Math.max(0, Math.ceil((Date.parse(retry.dueAt) - now) / 1000)),
    }));
    try {
      await deps.queue.send(messages);
    } catch (error) {
      if (!(error instanceof MessagesNotSentError)) throw error;
      const unsent = new Set(error.unsent);
      await deps.due.remove(due.filter((_, i) => !unsent.has(i)));
      throw error;
    }
    await deps.due.remove(due);
    queued += due.length;
    if (due.length < pageSize) return queued;
  }
}
