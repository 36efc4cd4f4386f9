import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import type { SqliteQueue } from '../functions/adapters/sqlite/queues.ts';
import type { OutgoingMessage } from '../functions/core/ports.ts';
import { lambdaContext } from './lambda-context.ts';
import { Wakeup } from './wakeup.ts';

type BatchHandler = (event: SQSEvent, context: ReturnType<typeof lambdaContext>) => Promise<SQSBatchResponse>;

/** A message group's slots before it has earned more (see maxInFlightPerGroup). */
const GROUP_START_SLOTS = 4;
/** Groups whose caps are remembered before idle ones at the full cap are forgotten. */
const MAX_REMEMBERED_GROUPS = 10_000;

/** Records asked of the queue in one receive. */
const RECEIVE_MAX = 100;
/**
 * Longest a busy poller goes between receives that look at every group: in between it
 * receives only for the groups whose records ended (see #receiveLoop), and a message that
 * became visible by itself (a delay, a visibility timeout run out) waits for the next look.
 */
const FULL_RECEIVE_EVERY_MS = 100;

/** Asked about a candidate record's group: whether the poller takes it. */
type Admit = (groupId: string | undefined) => boolean;

export interface PollerOptions<T> {
  name: string;
  queue: SqliteQueue<T>;
  handler: BatchHandler;
  /** Records per invocation, as an SQS event source mapping's BatchSize. */
  batchSize: number;
  /** Records in flight at most, across invocations (the event source's concurrency). */
  maxInFlight: number;
  /**
   * Records of one message group in flight at most: a group whose messages hang (a slow
   * endpoint) holds this many slots and no more, so the other groups keep flowing. A group
   * starts with a few (GROUP_START_SLOTS) and earns the rest: one more with each success, up
   * to this cap, and half as many with each failure, down to one. So an endpoint that times
   * out or errors costs the others little and is not pressed with more requests than it
   * answers, while a healthy one reaches the cap after a dozen callbacks and keeps it.
   * @default no cap
   */
  maxInFlightPerGroup?: number;
  /** Longest sleep when the queue looks empty; writes from other processes are seen this late. */
  idleMs?: number;
  log: (message: string, error?: unknown) => void;
}

/**
 * What Lambda's SQS event source mapping does, in-process: receive, invoke the handler with
 * batches, delete the records it did not report in `batchItemFailures`. A failed record stays
 * in the queue and comes back when its visibility timeout (which the handler may have
 * changed) runs out; a handler that throws fails its whole batch.
 *
 * Receiving never waits for invocations to finish, only for room: an invocation stuck on a
 * hanging endpoint holds its own records' slots, not the poller.
 */
export class QueuePoller<T> {
  readonly wakeup = new Wakeup();
  readonly #options: PollerOptions<T>;
  readonly #invocations = new Set<Promise<void>>();
  readonly #inFlightByGroup = new Map<string, number>();
  /** Records admitted by a receive or a send whose write has not committed yet (see #admission). */
  readonly #pendingByGroup = new Map<string, number>();
  #pending = 0;
  /** Each group's current cap; a group not here starts with GROUP_START_SLOTS. */
  readonly #capByGroup = new Map<string, number>();
  /** Groups at their cap, not admitted again until half their slots are free. */
  readonly #full = new Set<string>();
  /** Records whose slots were freed before their invocation ended (see finished). */
  readonly #finished = new Set<string>();
  /** Groups with room again since the last receive: their records ended (see #release). */
  readonly #roomIn = new Set<string>();
  /** Whether the next receive looks at every group (new messages, a wake, an ungrouped record's end). */
  #receiveAll = true;
  /** When the next receive looks at every group, whatever happens. */
  #receiveAllAt = 0;
  #inFlight = 0;
  #running = false;
  #loop: Promise<void> = Promise.resolve();

  constructor(options: PollerOptions<T>) {
    this.#options = options;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loop = this.#receiveLoop();
  }

  /** Stops receiving and waits for the invocations in flight. */
  async stop(): Promise<void> {
    this.#running = false;
    this.wakeup.wake();
    await this.#loop;
    await Promise.all(this.#invocations);
  }

  /**
   * Receives while there is room. A receive looks at every group when there may be messages
   * the poller has not seen (new ones announced, a wake, a delay or visibility timeout run
   * out: at least every FULL_RECEIVE_EVERY_MS); in between, woken because records ended, it
   * receives only for their groups, the ones that have room again, which spares the look at
   * every group. Every other group is either at its cap or had nothing visible at the last
   * full receive.
   */
  async #receiveLoop(): Promise<void> {
    const { queue, idleMs = 1_000, batchSize, maxInFlight } = this.#options;
    // Busy, receive only once a batch's worth of slots is free: a receive per finished record
    // would spend more time in the queue's transactions than on the deliveries.
    const lowWater = Math.min(Math.max(batchSize, 8), maxInFlight);
    while (this.#running) {
      const free = maxInFlight - this.#inFlight - this.#pending;
      const room = this.#inFlight > 0 && free < lowWater ? 0 : free;
      let records: SQSRecord[] = [];
      const now = Date.now();
      const all =
        this.#receiveAll || this.#options.maxInFlightPerGroup === undefined || now >= this.#receiveAllAt;
      if (room > 0) {
        const groups = [...this.#roomIn];
        this.#roomIn.clear();
        if (all) {
          this.#receiveAll = false;
          this.#receiveAllAt = now + FULL_RECEIVE_EVERY_MS;
        }
        const max = Math.min(room, RECEIVE_MAX);
        try {
          records = await this.#admitted(async ({ admit }) => {
            if (all) return queue.receiveBatch(max, admit, [...this.#full]);
            return groups.length > 0 ? queue.receiveGroups(groups, max, admit) : [];
          });
        } catch (error) {
          this.#receiveAll = true;
          this.#options.log(`${this.#options.name}: receive failed`, error);
          await this.wakeup.sleep(idleMs);
          continue;
        }
        // Stopped at its limit: more may be waiting, in any group.
        if (records.length >= max) this.#receiveAll = true;
      }
      if (records.length === 0) {
        // Full, nothing receivable, or only messages of groups at their cap: sleep until an
        // invocation ends, new work is announced, or the next hidden message becomes visible
        // (after a full receive, which tells when that is; else until the next full receive).
        let wait = idleMs;
        if (room > 0 && all) {
          const next = queue.nextVisibleAt();
          const untilVisible = next === null ? idleMs : next.getTime() - Date.now();
          if (untilVisible > 0) wait = Math.min(idleMs, untilVisible);
          this.#receiveAllAt = Date.now() + wait;
        } else if (room > 0) {
          wait = Math.max(0, Math.min(idleMs, this.#receiveAllAt - Date.now()));
        }
        await this.wakeup.sleep(wait);
        continue;
      }
      this.#dispatch(records);
    }
  }

  /** Wakes the poller for messages it has not seen (a redrive): its next receive looks at every group. */
  wake(): void {
    this.#receiveAll = true;
    this.wakeup.wake();
  }

  /** Invokes the handler with the records, admitted and counted in flight already, in batches. */
  #dispatch(records: SQSRecord[]): void {
    const { batchSize } = this.#options;
    for (let i = 0; i < records.length; i += batchSize) {
      const invocation = this.#invoke(records.slice(i, i + batchSize)).finally(() => {
        this.#invocations.delete(invocation);
      });
      this.#invocations.add(invocation);
    }
  }

  /**
   * Sends messages to the queue and takes at once, in the same write, those this poller has
   * room for, as a receive right after the send would (SqliteQueue.sendReceiving): a message
   * sent for work to start now then costs no receive. Those it has no room for, or that are
   * delayed, or that would pass an older visible message of their group, stay in the queue
   * for the receive loop, which is woken for them.
   */
  async send(messages: OutgoingMessage<T>[]): Promise<void> {
    const { queue } = this.#options;
    if (!this.#running) {
      await queue.send(messages);
      this.announce(messages.map((m) => m.groupId));
      return;
    }
    const records = await this.#admitted(({ admit, mayAdmit }) =>
      queue.sendReceiving(messages, admit, mayAdmit),
    );
    this.#dispatch(records);
    if (records.length < messages.length) this.announce(messages.map((m) => m.groupId));
  }

  /**
   * Wakes the poller for messages just sent, unless every one of them belongs to a group at
   * its cap: a receive could not take them yet.
   */
  announce(groupIds: readonly (string | undefined)[]): void {
    if (groupIds.some((groupId) => groupId === undefined || !this.#full.has(groupId))) this.wake();
  }

  /** Takes records with `take` under one admission, settled as the take's write ends. */
  async #admitted(
    take: (admission: { admit: Admit; mayAdmit: Admit }) => Promise<SQSRecord[]>,
  ): Promise<SQSRecord[]> {
    const admission = this.#admission();
    try {
      const records = await take(admission);
      admission.settle(true);
      return records;
    } catch (error) {
      admission.settle(false);
      throw error;
    }
  }

  #capOf(groupId: string): number {
    const max = this.#options.maxInFlightPerGroup ?? Infinity;
    return this.#capByGroup.get(groupId) ?? Math.min(max, GROUP_START_SLOTS);
  }

  /**
   * The admission of one receive or send: `admit` is asked about each candidate's group and
   * passes over groups at their cap (and everything once the poller is full), counting what it
   * admits as pending, where the other admissions of the same turn see it; `settle` makes those
   * in flight once the write has committed, or drops them if it failed (it took nothing);
   * `mayAdmit` asks the same without counting, for a send to skip its reads for a full group. A
   * group that reached its cap stays full until half its slots are free again, so a busy group
   * costs a receive per few finished records rather than one per record.
   */
  #admission(): { admit: Admit; mayAdmit: Admit; settle: (committed: boolean) => void } {
    const capped = this.#options.maxInFlightPerGroup !== undefined;
    const taken = new Map<string, number>();
    let total = 0;
    const mayAdmit = (groupId: string | undefined): boolean => {
      if (this.#inFlight + this.#pending >= this.#options.maxInFlight) return false;
      if (!capped || groupId === undefined) return true;
      const count = (this.#inFlightByGroup.get(groupId) ?? 0) + (this.#pendingByGroup.get(groupId) ?? 0);
      return !this.#full.has(groupId) && count < this.#capOf(groupId);
    };
    return {
      mayAdmit,
      admit: (groupId) => {
        if (!mayAdmit(groupId)) return false;
        if (capped && groupId !== undefined) {
          taken.set(groupId, (taken.get(groupId) ?? 0) + 1);
          this.#pendingByGroup.set(groupId, (this.#pendingByGroup.get(groupId) ?? 0) + 1);
        }
        total++;
        this.#pending++;
        return true;
      },
      settle: (committed) => {
        this.#pending -= total;
        if (committed) this.#inFlight += total;
        for (const [groupId, n] of taken) {
          const pending = (this.#pendingByGroup.get(groupId) ?? 0) - n;
          if (pending > 0) this.#pendingByGroup.set(groupId, pending);
          else this.#pendingByGroup.delete(groupId);
          if (!committed) continue;
          const count = (this.#inFlightByGroup.get(groupId) ?? 0) + n;
          this.#inFlightByGroup.set(groupId, count);
          if (count >= this.#capOf(groupId)) this.#full.add(groupId);
        }
      },
    };
  }

  /** Frees the records' slots, and adjusts each group's cap by how its record fared (`failed`). */
  #release(records: SQSRecord[], failed: ReadonlySet<string>): void {
    const max = this.#options.maxInFlightPerGroup;
    this.#inFlight -= records.length;
    let roomForMore = false;
    for (const record of records) {
      const groupId = record.attributes.MessageGroupId;
      if (max === undefined || groupId === undefined) {
        roomForMore = true;
        this.#receiveAll = true;
        continue;
      }
      const count = (this.#inFlightByGroup.get(groupId) ?? 1) - 1;
      if (count > 0) this.#inFlightByGroup.set(groupId, count);
      else this.#inFlightByGroup.delete(groupId);
      const before = this.#capOf(groupId);
      const cap = failed.has(record.messageId)
        ? Math.max(1, Math.floor(before / 2))
        : Math.min(max, before + 1);
      this.#capByGroup.set(groupId, cap);
      if (this.#full.has(groupId) && count <= cap / 2) this.#full.delete(groupId);
      if (!this.#full.has(groupId)) {
        roomForMore = true;
        this.#roomIn.add(groupId);
      }
    }
    if (roomForMore) this.wakeup.wake();
    if (max !== undefined && this.#capByGroup.size > MAX_REMEMBERED_GROUPS) this.#forgetIdleGroups(max);
  }

  /** Forgets the groups at the cap with nothing in flight: back, they start over as new ones. */
  #forgetIdleGroups(max: number): void {
    for (const [groupId, cap] of this.#capByGroup) {
      if (cap >= max && !this.#inFlightByGroup.has(groupId)) this.#capByGroup.delete(groupId);
    }
  }

  /**
   * Frees a record's slot as soon as the handler is done with it, before the other records of
   * its batch end: a batch holds no slot for a record that has finished, so batching costs a
   * group nothing while another group's record in the same batch hangs. The message itself is
   * deleted with its batch, as the handler's answer says. `failed` counts the record as a
   * failure of its group even though it will be deleted: a try that failed and was queued
   * again as a message of its own.
   */
  finished(record: SQSRecord, failed: boolean): void {
    if (this.#finished.has(record.messageId)) return;
    this.#finished.add(record.messageId);
    this.#release([record], failed ? new Set([record.messageId]) : new Set());
  }

  async #invoke(records: SQSRecord[]): Promise<void> {
    const { queue, handler, name, log } = this.#options;
    let failed: ReadonlySet<string> = new Set(records.map((record) => record.messageId));
    try {
      const response = await handler({ Records: records }, lambdaContext(name));
      failed = new Set((response?.batchItemFailures ?? []).map((f) => f.itemIdentifier));
      await queue.deleteBatch(
        records.filter((record) => !failed.has(record.messageId)).map((record) => record.receiptHandle),
      );
    } catch (error) {
      log(`${name}: batch of ${records.length} failed`, error);
    } finally {
      const rest = records.filter((record) => !this.#finished.delete(record.messageId));
      if (rest.length > 0) this.#release(rest, failed);
    }
  }
}
