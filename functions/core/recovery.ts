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

/** The events table and the fan-out queue: what re-emitting one dead letter's events takes. */
export type PipeLetterDeps = Pick<RecoveryDeps, 'events' | 'fanout'>;

/**
 * Queues the events one dead letter's stream batch held for fan-out again, as the pipe would
 * have sent them (an EventRef a message).
 * 1. Read the batch's span of writes from the letter (see pipeBatchWindow).
 * 2. Read the events written in it, page by page, and send each page's to the fan-out queue.
 * `sent` holds the events already queued (`<partnerId>/<eventId>`): they are skipped, and those
 * this letter queues are added, so letters of overlapping spans queue an event once.
 * @returns how many events it queued
 * @throws Error when the letter is not a stream batch's metadata, or a send failed (what was
 *   sent stays sent: queueing an event again is harmless)
 */
export async function recoverPipeDeadLetter(
  deps: PipeLetterDeps,
  body: string,
  sent: Set<string> = new Set(),
): Promise<number> {
  const window = pipeBatchWindow(body);
  let queued = 0;
  for await (const page of deps.events.writtenBetween(window.from, window.to)) {
    // Event ids are unique within a partner's log: key by both.
    const fresh = page.filter((ref) => !sent.has(`${ref.partnerId}/${ref.id}`));
    if (fresh.length === 0) continue;
    await deps.fanout.send(fresh.map((ref) => ({ body: ref })));
    for (const ref of fresh) sent.add(`${ref.partnerId}/${ref.id}`);
    queued += fresh.length;
  }
  return queued;
}

/**
 * Empties the pipe's dead-letter queue, queueing the events its batches held for fan-out again.
 * 1. Receive dead letters, ten at a time, until the queue is empty or `budgetMs` is spent.
 * 2. For each, queue the events of its batch's span (recoverPipeDeadLetter); an event of
 *    several spans goes once.
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
      try {
        pipeBatchWindow(letter.body);
      } catch {
        unreadable.add(letter.messageId);
        report.left++;
        continue;
      }
      report.events += await recoverPipeDeadLetter(deps, letter.body, sent);
      await deps.deadLetters.delete(letter.receiptHandle);
      report.batches++;
    }
  }
  return report;
}
