/**
 * Ordering per key: a subscription with `ordering: "key"` receives the events of one ordering
 * key one at a time, in the order the log stored them, while its other keys keep flowing.
 *
 * Two things keep the order, both in OrderedLines (a port; DynamoDB and SQLite adapters):
 *
 * 1. **The gate** (per partner and key). Events reach fan-out in any order (on AWS the
 *    stream's shards are read side by side). Each keyed event has its place among the key's
 *    events (`keySeq`, no gaps), and fan-out takes a key's events one after the other: the
 *    event at place n is fanned out once n − 1 has been; one that comes early is parked, and
 *    the fan-out of its predecessor queues it again. So each line below is appended to in key
 *    order.
 * 2. **The lines** (per subscription and key). Fan-out stores an ordered subscription's
 *    delivery as usual but queues nothing for it: it puts it into the line. Only the line's
 *    head is tried. A head's retries wait as any delivery's do (a delayed message, or a due
 *    item), holding the line; once it ends (succeeded, dead-lettered, skipped), the next
 *    entry is queued. A dead-lettered head leaves the line for good: redriven, it is sent on
 *    its own, after the deliveries that went on in its place.
 *
 * The queue messages only start tries; the head item decides which try may run. A line is
 * started by sending its first entry's message and then claiming the head (only if that entry
 * is still in the line); the dispatcher tries an ordered message only while its entry is the
 * head (claiming an idle line's first entry itself), and only as the one message that took
 * that try: a copy within the take's lease comes back when the lease ends, and tries then if
 * the taker died. So a message lost between two writes, a copy, or a crash in between leaves
 * at worst a line that the next message for it starts again, or a try made a lease later;
 * never two of a key's deliveries in flight, nor one out of order.
 */
import type { DeliveryMessage, EventRef } from './model.ts';
import type { LineEntry, LineHead, OrderedLines, OutgoingMessage, QueueSender } from './ports.ts';

/** An event with its ordering key and its place among the key's events. */
export type KeyedRef = EventRef & { orderingKey: string; keySeq: number };

export function isKeyed(ref: EventRef): ref is KeyedRef {
  return ref.orderingKey !== undefined && ref.keySeq !== undefined;
}

/**
 * What the gate says of a keyed event: fan it out `now` (`parked`: it had been parked, and is
 * to be unparked once fanned out), `wait` (parked until its predecessor is fanned out), or
 * `done` (fanned out already: this is a copy).
 */
export type GateCall = { kind: 'now'; parked: boolean } | { kind: 'wait' } | { kind: 'done' };

/** Whether fan-out may fan the event out now (the gate, point 1 above). */
export async function enterGate(lines: OrderedLines, ref: KeyedRef): Promise<GateCall> {
  const through = await lines.fannedThrough(ref.partnerId, ref.orderingKey);
  if (through >= ref.keySeq) return { kind: 'done' };
  if (through === ref.keySeq - 1) return { kind: 'now', parked: false };
  await lines.park(ref);
  // Its predecessor may have passed the gate while this one parked, and looked for a parked
  // successor before the park was written: look at the gate once more.
  const now = await lines.fannedThrough(ref.partnerId, ref.orderingKey);
  if (now >= ref.keySeq) return { kind: 'done' };
  return now === ref.keySeq - 1 ? { kind: 'now', parked: true } : { kind: 'wait' };
}

/**
 * After the event's deliveries are stored and its lines started: moves the gate past it, and
 * queues the key's next event again if it came early and was parked (sent first, then
 * unparked, so a crash in between queues it twice rather than never; fan-out of a copy is
 * `done` at the gate).
 */
export async function leaveGate(
  lines: OrderedLines,
  fanout: QueueSender<EventRef>,
  ref: KeyedRef,
  call: { parked: boolean },
): Promise<void> {
  const { partnerId, orderingKey: key, keySeq } = ref;
  // False when a copy of this fan-out moved it first: the same place either way.
  await lines.advanceGate(partnerId, key, keySeq - 1, keySeq);
  if (call.parked) await lines.unpark(partnerId, key, keySeq);
  const next = await lines.parked(partnerId, key, keySeq + 1);
  if (next === undefined) return;
  await fanout.send([{ body: next }]);
  await lines.unpark(partnerId, key, keySeq + 1);
}

/** The message of a line entry's first try. */
export function entryMessage(
  subscriptionId: string,
  key: string,
  entry: LineEntry,
): OutgoingMessage<DeliveryMessage> {
  return {
    body: {
      deliveryId: entry.deliveryId,
      eventId: entry.eventId,
      subscriptionId,
      partnerId: entry.partnerId,
      attempt: 1,
      step: 0,
      line: { key, seq: entry.seq },
    },
    groupId: subscriptionId,
  };
}

/** A line to start: its first entry's message, sent before the entry is claimed as head. */
export interface LineStart {
  subscriptionId: string;
  key: string;
  entry: LineEntry;
  message: OutgoingMessage<DeliveryMessage>;
}

/**
 * A line's head and first entry, the head read first: an entry that finished between the two
 * reads is gone from both, so an idle line never shows one.
 */
export async function lineOf(
  lines: Pick<OrderedLines, 'head' | 'first'>,
  subscriptionId: string,
  key: string,
): Promise<{ head?: LineHead; first?: LineEntry }> {
  const head = await lines.head(subscriptionId, key);
  const first = await lines.first(subscriptionId, key);
  return { ...(head === undefined ? {} : { head }), ...(first === undefined ? {} : { first }) };
}

/**
 * The start of the line if it is idle (no head) and has an entry waiting. A line with a head
 * (the usual case while a key is busy) costs one read.
 */
export async function idleLineStart(
  lines: OrderedLines,
  subscriptionId: string,
  key: string,
): Promise<LineStart | undefined> {
  if ((await lines.head(subscriptionId, key)) !== undefined) return undefined;
  const first = await lines.first(subscriptionId, key);
  if (first === undefined) return undefined;
  return { subscriptionId, key, entry: first, message: entryMessage(subscriptionId, key, first) };
}

/**
 * Claims the started lines' heads, once their messages are sent. A claim lost to another
 * start of the same line leaves a copy of the message, which the dispatcher drops (its entry
 * is the head, tried once) or tries as the head it claims.
 */
export async function claimStarts(lines: OrderedLines, starts: readonly LineStart[]): Promise<void> {
  await Promise.all(starts.map((s) => lines.claim(s.subscriptionId, s.key, s.entry)));
}

/** Starts the line if it is idle: its first entry's message is queued, then claimed as head. */
export async function startLine(
  lines: OrderedLines,
  queue: QueueSender<DeliveryMessage>,
  subscriptionId: string,
  key: string,
): Promise<void> {
  const start = await idleLineStart(lines, subscriptionId, key);
  if (start === undefined) return;
  await queue.send([start.message]);
  await claimStarts(lines, [start]);
}

/**
 * How long a try taken by one message keeps another copy of it from being tried: longer than a
 * try can take (its callback, a transformation, a connection's answer). A copy that comes
 * within it (its taker may still be trying) is queued again for when it ends, not dropped: if
 * the taker died (a crash, the process killed), that copy makes the try.
 */
export function takeLeaseMs(deliveryTimeoutMs: number): number {
  return 2 * deliveryTimeoutMs + 10_000;
}

/** What an ordered message may do: try now, come back later (its try is held), or nothing. */
export type Turn = { kind: 'go' } | { kind: 'later'; delaySeconds: number } | { kind: 'none' };

/**
 * Whether an ordered try may run now: only as its line's head, and only one message per try
 * (a start may be queued twice, and a queue may deliver a message twice). An idle line whose
 * first entry is this one is claimed here; an idle line whose first entry is another is
 * started (a start that was lost), and this message is dropped: its entry's turn brings a
 * message of its own, or it has had its turn already. A try another message took within its
 * lease is `later`: this message comes back once the lease has run out.
 */
export async function takeTurn(
  lines: OrderedLines,
  queue: QueueSender<DeliveryMessage>,
  message: DeliveryMessage & { line: NonNullable<DeliveryMessage['line']> },
  attempt: number,
  lease: { at: Date; leaseMs: number },
): Promise<Turn> {
  const { key, seq } = message.line;
  const { subscriptionId } = message;
  // The head alone while the line is busy (every try but a line's first): one read.
  const head = await lines.head(subscriptionId, key);
  if (head === undefined) {
    const first = await lines.first(subscriptionId, key);
    if (first === undefined) return { kind: 'none' };
    if (first.seq !== seq) {
      await queue.send([entryMessage(subscriptionId, key, first)]);
      await lines.claim(subscriptionId, key, first);
      return { kind: 'none' };
    }
    // Claimed by this message, or by a start under way: the take decides which message tries.
    await lines.claim(subscriptionId, key, first);
  } else if (head.seq !== seq) {
    return { kind: 'none' };
  }
  if (await lines.take(subscriptionId, key, seq, attempt, lease.at, lease.leaseMs)) return { kind: 'go' };
  const now = await lines.head(subscriptionId, key);
  if (now?.seq !== seq || now.taken !== attempt) return { kind: 'none' };
  const left = now.takenAt + lease.leaseMs - lease.at.getTime();
  return { kind: 'later', delaySeconds: Math.max(1, Math.ceil(left / 1000)) };
}

/** After an ordered delivery has ended: out of its line, and the key's next delivery queued. */
export async function endTurn(
  lines: OrderedLines,
  queue: QueueSender<DeliveryMessage>,
  subscriptionId: string,
  line: { key: string; seq: number },
): Promise<void> {
  await lines.finish(subscriptionId, line.key, line.seq);
  await startLine(lines, queue, subscriptionId, line.key);
}
