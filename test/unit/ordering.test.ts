/**
 * Ordering per key, simulated on the real SQLite stores: events reach fan-out in any order and
 * more than once, every queue message may be delivered twice and in any order, and the receiver
 * fails at random. Whatever the order of handling, an ordered subscription receives each key's
 * events in key order, every event ends delivered or dead-lettered, and a subscription without
 * ordering gets every event too.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../functions/adapters/sqlite/database.ts';
import { SqliteDeliveryStore } from '../../functions/adapters/sqlite/deliveries.ts';
import { SqliteEventLog } from '../../functions/adapters/sqlite/events.ts';
import { SqliteOrderedLines } from '../../functions/adapters/sqlite/ordered-lines.ts';
import { SqliteSubscriptionStore } from '../../functions/adapters/sqlite/subscriptions.ts';
import { deliver } from '../../functions/core/delivery.ts';
import { fanOutEvent } from '../../functions/core/fanout.ts';
import { newId } from '../../functions/core/ids.ts';
import type { DeliveryMessage, EventRef, Subscription } from '../../functions/core/model.ts';
import {
  enterGate,
  entryMessage,
  type KeyedRef,
  leaveGate,
  takeLeaseMs,
  takeTurn,
} from '../../functions/core/ordering.ts';
import type { CallbackRequest, CallbackResult, OutgoingMessage } from '../../functions/core/ports.ts';
import { testCipher } from '../support/cipher.ts';
import { seededRandom } from '../support/seeded-random.ts';

const KEYS = ['a', 'b', 'c'];
const ORDERED_URL = 'https://ordered.example/hooks';
const PLAIN_URL = 'https://plain.example/hooks';

type Work = { kind: 'fanout'; ref: EventRef } | { kind: 'delivery'; message: DeliveryMessage };

/** The SQLite stores fan-out and the dispatcher use, in memory, and a partner's id. */
function stores() {
  const db = openDatabase(':memory:');
  return {
    db,
    log: new SqliteEventLog(db),
    subscriptions: new SqliteSubscriptionStore(db, testCipher()),
    deliveries: new SqliteDeliveryStore(db),
    lines: new SqliteOrderedLines(db),
    partnerId: newId('ptr'),
  };
}

async function simulate(seed: number, events: number) {
  const random = seededRandom(seed);
  const { db, log, subscriptions, deliveries, lines, partnerId } = stores();
  let now = Date.parse('2026-01-01T00:00:00Z');
  const clock = { now: () => new Date(now) };
  const sub = (ordering: boolean): Subscription => ({
    id: newId('sub'),
    partnerId,
    url: ordering ? ORDERED_URL : PLAIN_URL,
    eventTypes: [],
    ...(ordering ? { ordering: 'key' as const } : {}),
    status: 'active',
    secrets: [{ secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', createdAt: clock.now().toISOString() }],
    createdAt: clock.now().toISOString(),
    updatedAt: clock.now().toISOString(),
  });
  const ordered = sub(true);
  const plain = sub(false);
  await subscriptions.put(ordered);
  await subscriptions.put(plain);

  // Work waiting, taken in random order; each message sent is sometimes sent twice.
  const bag: Work[] = [];
  const add = (work: Work) => {
    bag.push(work);
    if (random() < 0.15) bag.push(work);
  };
  const refs: KeyedRef[] = [];
  for (let n = 0; n < events; n++) {
    const key = KEYS[Math.floor(random() * KEYS.length)] ?? 'a';
    const { event } = await log.append({
      partnerId,
      type: 'order.updated',
      payload: { n },
      createdAt: clock.now().toISOString(),
      orderingKey: key,
    });
    expect(event.keySeq).toBeDefined();
    refs.push({
      id: event.id,
      partnerId,
      type: event.type,
      createdAt: event.createdAt,
      orderingKey: key,
      keySeq: event.keySeq ?? 0,
    });
  }
  for (const ref of refs) add({ kind: 'fanout', ref });

  // Each callback sent, by subscription url, with its event's key and place; and how many
  // callbacks of one subscription's key were in flight at once, at most.
  const tried = new Map<string, { key: string; keySeq: number; ok: boolean }[]>();
  const inFlight = new Map<string, number>();
  const mostInFlight = new Map<string, number>();
  const keySeqOf = new Map(refs.map((r) => [r.id, r]));
  const sender = {
    async send(request: CallbackRequest): Promise<CallbackResult> {
      const ref = keySeqOf.get((JSON.parse(request.body) as { id: string }).id);
      if (ref === undefined) throw new Error('a callback of an unknown event');
      const ok = random() >= 0.3;
      const line = `${request.url} ${ref.orderingKey}`;
      inFlight.set(line, (inFlight.get(line) ?? 0) + 1);
      mostInFlight.set(line, Math.max(mostInFlight.get(line) ?? 0, inFlight.get(line) ?? 0));
      // The answer takes a few turns of the loop, while other work goes on.
      for (let turns = Math.floor(random() * 4); turns > 0; turns--) await new Promise(setImmediate);
      inFlight.set(line, (inFlight.get(line) ?? 1) - 1);
      tried.set(request.url, [
        ...(tried.get(request.url) ?? []),
        { key: ref.orderingKey, keySeq: ref.keySeq, ok },
      ]);
      return { statusCode: ok ? 204 : 500, durationMs: 1 };
    },
  };
  const dead: DeliveryMessage[] = [];
  const queue = {
    hasSlowLane: false,
    async send(messages: OutgoingMessage<DeliveryMessage>[]) {
      for (const m of messages) add({ kind: 'delivery', message: m.body });
    },
    async deadLetter(message: DeliveryMessage) {
      dead.push(message);
    },
  };
  const fanoutQueue = {
    async send(messages: OutgoingMessage<EventRef>[]) {
      for (const m of messages) add({ kind: 'fanout', ref: m.body });
    },
  };

  // Up to three pieces of work at a time, side by side, as pollers run them.
  const handle = async (work: Work) => {
    if (work.kind === 'fanout') {
      await fanOutEvent(
        { subscriptions, events: log, deliveries, deliveryQueue: queue, clock, lines, fanoutQueue },
        work.ref,
      );
      return;
    }
    await deliver(
      {
        events: log,
        subscriptions,
        deliveries,
        sender,
        queue,
        clock,
        retrySchedule: [0, 1, 1],
        deliveryTimeoutMs: 1000,
        disableAfterMs: 365 * 24 * 3600_000,
        lines,
      },
      work.message,
    );
  };
  for (let steps = 0; bag.length > 0; steps++) {
    if (steps > 20_000) throw new Error(`seed ${seed}: no end after ${steps} steps`);
    const batch = Array.from({ length: 1 + Math.floor(random() * 3) }, () =>
      bag.length === 0 ? undefined : bag.splice(Math.floor(random() * bag.length), 1)[0],
    ).filter((w) => w !== undefined);
    now += 1000;
    await Promise.all(batch.map(handle));
  }
  db.close();
  return { refs, ordered, plain, tried, dead, mostInFlight };
}

describe('ordering per key, simulated', () => {
  it('keeps each key in order, whatever the order and the copies of the messages', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 2 ** 31 - 1 }),
        fc.integer({ min: 1, max: 24 }),
        async (seed, events) => {
          const { refs, ordered, plain, tried, dead, mostInFlight } = await simulate(seed, events);
          const orderedTries = tried.get(ORDERED_URL) ?? [];
          // One callback of a key at a time.
          for (const key of KEYS)
            expect(mostInFlight.get(`${ORDERED_URL} ${key}`) ?? 0, `seed ${seed}`).toBeLessThanOrEqual(1);
          for (const key of KEYS) {
            const mine = orderedTries.filter((t) => t.key === key).map((t) => t.keySeq);
            // Never back to an earlier event of the key once a later one was tried.
            expect(mine, `seed ${seed}`).toEqual([...mine].sort((a, b) => a - b));
            // Each event of the key either succeeded or was dead-lettered (the key went on).
            const expected = refs.filter((r) => r.orderingKey === key).map((r) => r.keySeq);
            const succeeded = orderedTries.filter((t) => t.key === key && t.ok).map((t) => t.keySeq);
            const deadSeqs = dead
              .filter((m) => m.subscriptionId === ordered.id)
              .map((m) => refs.find((r) => r.id === m.eventId))
              .filter((r) => r?.orderingKey === key)
              .map((r) => r?.keySeq);
            expect(new Set([...succeeded, ...deadSeqs]), `seed ${seed}`).toEqual(new Set(expected));
            // A dead-lettered delivery leaves its line: the dead letter carries no line.
            expect(dead.every((m) => m.line === undefined)).toBe(true);
          }
          // The subscription without ordering gets every event too.
          const plainDone = new Set([
            ...(tried.get(PLAIN_URL) ?? []).filter((t) => t.ok).map((t) => `${t.key}/${t.keySeq}`),
            ...dead
              .filter((m) => m.subscriptionId === plain.id)
              .map((m) => refs.find((r) => r.id === m.eventId))
              .map((r) => `${r?.orderingKey}/${r?.keySeq}`),
          ]);
          expect(plainDone.size).toBe(refs.length);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('brings a copy of a try taken within its lease back later, and lets it try once the lease ends (its taker died)', async () => {
    const db = openDatabase(':memory:');
    const lines = new SqliteOrderedLines(db);
    const subscriptionId = newId('sub');
    const entry = { seq: 1, deliveryId: newId('dlv'), eventId: newId('evt'), partnerId: newId('ptr') };
    await lines.append(subscriptionId, 'k', entry);
    const { body: message } = entryMessage(subscriptionId, 'k', entry);
    const line = { key: 'k', seq: 1 };
    const noStart = {
      send: async () => {
        throw new Error('nothing to start: the line has its head');
      },
    };
    const t0 = Date.parse('2026-01-01T00:00:00Z');
    const leaseMs = takeLeaseMs(1000);
    const at = (ms: number) => ({ at: new Date(t0 + ms), leaseMs });

    expect(await takeTurn(lines, noStart, { ...message, line }, 1, at(0))).toEqual({ kind: 'go' });
    // A copy while the first may still be trying (or after its process was killed): later.
    expect(await takeTurn(lines, noStart, { ...message, line }, 1, at(2000))).toEqual({
      kind: 'later',
      delaySeconds: Math.ceil((leaseMs - 2000) / 1000),
    });
    expect(await takeTurn(lines, noStart, { ...message, line }, 1, at(leaseMs + 1))).toEqual({ kind: 'go' });
    // The next try taken: a copy of an earlier one has nothing left to do.
    expect(await takeTurn(lines, noStart, { ...message, line }, 2, at(leaseMs + 2))).toEqual({ kind: 'go' });
    expect(await takeTurn(lines, noStart, { ...message, line }, 1, at(leaseMs + 3))).toEqual({
      kind: 'none',
    });
    db.close();
  });

  it('makes no delivery from a copy of an event fanned out already, for a subscription ordered since', async () => {
    const { db, log, subscriptions, deliveries, lines, partnerId } = stores();
    const now = new Date('2026-01-01T00:00:00Z');
    const { event } = await log.append({
      partnerId,
      type: 'order.updated',
      payload: {},
      createdAt: now.toISOString(),
      orderingKey: 'k',
    });
    const ref: EventRef = {
      id: event.id,
      partnerId,
      type: event.type,
      createdAt: event.createdAt,
      orderingKey: 'k',
      keySeq: 1,
    };
    const sent: OutgoingMessage<DeliveryMessage>[] = [];
    const deps = {
      subscriptions,
      events: log,
      deliveries,
      deliveryQueue: { send: async (m: OutgoingMessage<DeliveryMessage>[]) => void sent.push(...m) },
      clock: { now: () => now },
      lines,
      fanoutQueue: {
        send: async () => {
          throw new Error('nothing is parked');
        },
      },
    };
    expect(await fanOutEvent(deps, ref)).toBe(0);
    const ordered: Subscription = {
      id: newId('sub'),
      partnerId,
      url: ORDERED_URL,
      eventTypes: [],
      ordering: 'key',
      status: 'active',
      secrets: [{ secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', createdAt: now.toISOString() }],
      createdAt: now.toISOString(),
      updatedAt: now.toISOString(),
    };
    await subscriptions.put(ordered);

    expect(await fanOutEvent(deps, ref)).toBe(0);
    expect(sent).toEqual([]);
    expect((await deliveries.listBySubscription(ordered.id, { limit: 10 })).items).toEqual([]);
    db.close();
  });

  it('fans a key out in key order: an event that comes early waits at the gate for its predecessor', async () => {
    const db = openDatabase(':memory:');
    const lines = new SqliteOrderedLines(db);
    const partnerId = newId('ptr');
    const ref = (keySeq: number): KeyedRef => ({
      id: newId('evt'),
      partnerId,
      type: 't',
      createdAt: '2026-01-01T00:00:00.000Z',
      orderingKey: 'k',
      keySeq,
    });
    const second = ref(2);
    const first = ref(1);
    expect(await enterGate(lines, second)).toEqual({ kind: 'wait' });
    expect(await lines.parked(partnerId, 'k', 2)).toEqual(second);
    expect(await enterGate(lines, first)).toEqual({ kind: 'now', parked: false });
    // Past the gate, the first queues the parked second again, and unparks it.
    const again: EventRef[] = [];
    await leaveGate(lines, { send: async (m) => void again.push(...m.map((x) => x.body)) }, first, {
      parked: false,
    });
    expect(again).toEqual([second]);
    expect(await lines.parked(partnerId, 'k', 2)).toBeUndefined();
    expect(await lines.fannedThrough(partnerId, 'k')).toBe(1);
    expect(await enterGate(lines, second)).toEqual({ kind: 'now', parked: false });
    // A copy of the first is done already.
    expect(await enterGate(lines, first)).toEqual({ kind: 'done' });
    db.close();
  });
});
