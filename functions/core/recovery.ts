import * as z from 'zod';
import type { EventRef } from './model.ts';
import type { Clock, DeadLetterSource, EventWindowReader, QueueSender } from './ports.ts';

/**
 * How far either side of a failed stream batch's arrival times its events may have been
 * written: a record arrives in the stream within a second of its write, and the margin is
 * wide so that no event of the batch is missed. Events of the margin that did get through
 * are queued for fan-out again, which costs nothing: fan-out finds their deliveries made.
 */
export const RECOVERY_MARGIN_MS = 5 * 60_000;

/**
 * What the pipe's dead-letter queue holds for a stream batch it gave up on: the batch's
 * metadata, not its records (the shape stream sources use for their failure destinations,
 * `DDBStreamBatchInfo`; only the arrival times are needed here).
 */
const PipeDeadLetter = z.looseObject({
  DDBStreamBatchInfo: z.looseObject({
    approximateArrivalOfFirstRecord: z.iso.datetime({ offset: true }),
    approximateArrivalOfLastRecord: z.iso.datetime({ offset: true }),
  }),
});

/**
 * The span of writes a dead-lettered stream batch can hold: its records' arrival times, widened
 * by RECOVERY_MARGIN_MS on either side.
 * @throws Error when the message is not a stream batch's metadata
 */
export function pipeBatchWindow(body: string): { from: Date; to: Date } {
  const parsed = PipeDeadLetter.safeParse(JSON.parse(body));
  if (!parsed.success) {
    throw new Error(
      `not a stream batch's dead letter: ${parsed.error.issues.map((i) => i.path.join('.')).join(', ')}`,
    );
  }
  const info = parsed.data.DDBStreamBatchInfo;
  return {
    from: new Date(Date.parse(info.approximateArrivalOfFirstRecord) - RECOVERY_MARGIN_MS),
    to: new Date(Date.parse(info.approximateArrivalOfLastRecord) + RECOVERY_MARGIN_MS),
  };
}

export interface RecoveryDeps {
  events: EventWindowReader;
  /** The fan-out queue, sent to as the pipe sends: one EventRef a message. */
  fanout: QueueSender<EventRef>;
  deadLetters: DeadLetterSource;
  clock: Clock;
}

export interface RecoveryReport {
  /** Dead letters handled and deleted. */
  batches: number;
  /** Events queued for fan-out again (those of overlapping windows once each). */
  events: number;
  /** Dead letters left in the queue: unreadable ones, and any left when the time ran out. */
  left: number;
}

/**
 * Empties the pipe's dead-letter queue, queueing the events its batches held for fan-out again.
 * 1. Receive dead letters, ten at a time, until the queue is empty or `budgetMs` is spent.
 * 2. For each, read the events written in its batch's span (see pipeBatchWindow) and send them
 *    to the fan-out queue as the pipe would; an event of several spans goes once.
 * 3. Delete the dead letter once its events are queued. One that is not a stream batch's
 *    metadata is left in the queue, counted, for ops to look at.
 * Queueing an event for fan-out again is safe: fan-out's delivery ids come from the event and
 * the subscription, so a delivery made before is found, not made twice.
 */
export async function recoverPipeDeadLetters(deps: RecoveryDeps, budgetMs: number): Promise<RecoveryReport> {
  const started = deps.clock.now().getTime();
  const sent = new Set<string>();
  const report: RecoveryReport = { batches: 0, events: 0, left: 0 };
  const unreadable = new Set<string>();
  while (deps.clock.now().getTime() - started < budgetMs) {
    const letters = (await deps.deadLetters.receive()).filter((letter) => !unreadable.has(letter.messageId));
    if (letters.length === 0) break;
    for (const letter of letters) {
      let window: { from: Date; to: Date };
      try {
        window = pipeBatchWindow(letter.body);
      } catch {
        unreadable.add(letter.messageId);
        report.left++;
        continue;
      }
      for await (const page of deps.events.writtenBetween(window.from, window.to)) {
        // Event ids are unique within a partner's log: key by both.
        const fresh = page.filter((ref) => !sent.has(`${ref.partnerId}/${ref.id}`));
        if (fresh.length === 0) continue;
        await deps.fanout.send(fresh.map((ref) => ({ body: ref })));
        for (const ref of fresh) sent.add(`${ref.partnerId}/${ref.id}`);
        report.events += fresh.length;
      }
      await deps.deadLetters.delete(letter.receiptHandle);
      report.batches++;
    }
  }
  return report;
}
