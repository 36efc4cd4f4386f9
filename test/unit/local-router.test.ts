import { beforeEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../../functions/adapters/sqlite/database.ts';
import { SqliteDeliveryStore } from '../../functions/adapters/sqlite/deliveries.ts';
import { SqliteEventLog } from '../../functions/adapters/sqlite/events.ts';
import { SqliteOrderedLines } from '../../functions/adapters/sqlite/ordered-lines.ts';
import { SqliteOutbox } from '../../functions/adapters/sqlite/outbox.ts';
import { SqliteQueue } from '../../functions/adapters/sqlite/queues.ts';
import { SqliteSubscriptionStore } from '../../functions/adapters/sqlite/subscriptions.ts';
import type { FanOutDeps } from '../../functions/core/fanout.ts';
import { newId } from '../../functions/core/ids.ts';
import type { DeliveryMessage, EventRef, Subscription } from '../../functions/core/model.ts';
import type { OutgoingMessage } from '../../functions/core/ports.ts';
import { OutboxRouter } from '../../local/router.ts';
import { testCipher } from '../support/cipher.ts';

const NOW = new Date('2026-12-03T10:00:00.000Z');
const RETRY_DELAY_SECONDS = 30;

/** Subscriptions whose listing fails for the partners `failFor` names. */
class FailingSubscriptions extends SqliteSubscriptionStore {
  failFor: (partnerId: string) => boolean = () => false;

  override listActive(partnerId: string): Promise<Subscription[]> {
    if (this.failFor(partnerId)) return Promise.reject(new Error('the subscriptions table is unreadable'));
    return super.listActive(partnerId);
  }
}

/** How the router's stream reads the events: the table alone, or also its log's appends (the runtime's). */
const MODES = [
  { name: 'reading the table', follow: false },
  { name: 'following the event log', follow: true },
];
let follow = false;

async function setUp(options: { failFor?: (partnerId: string) => boolean } = {}) {
  const db = openDatabase(':memory:');
  const events = new SqliteEventLog(db);
  const subscriptions = new FailingSubscriptions(db, testCipher());
  if (options.failFor) subscriptions.failFor = options.failFor;
  const outbox = new SqliteOutbox(db, follow ? { follow: events } : {});
  // Caught up before the first publish, as a runtime's router is: what follows comes from memory.
  if (follow) outbox.peek(1);
  const clock = { now: () => NOW };
  const fanout = new SqliteQueue<EventRef>(db, { name: 'fanout', visibilityTimeoutSeconds: 30, clock });
  const sent: OutgoingMessage<DeliveryMessage>[] = [];
  let sends = 0;
  const logged: string[] = [];
  const deps: FanOutDeps = {
    subscriptions,
    events,
    deliveries: new SqliteDeliveryStore(db),
    deliveryQueue: {
      send: async (messages) => {
        sends++;
        sent.push(...messages);
      },
    },
    clock,
    lines: new SqliteOrderedLines(db),
    fanoutQueue: { send: (messages) => fanout.send(messages) },
  };
  const router = new OutboxRouter(db, outbox, fanout, deps, {
    batchSize: 3,
    retryDelaySeconds: RETRY_DELAY_SECONDS,
    log: (message) => logged.push(message),
  });
  const subscribe = async (partnerId: string) => {
    const sub: Subscription = {
      id: newId('sub'),
      partnerId,
      url: 'https://partner.example/hooks',
      eventTypes: [],
      status: 'active',
      secrets: [{ secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', createdAt: NOW.toISOString() }],
      createdAt: NOW.toISOString(),
      updatedAt: NOW.toISOString(),
    };
    await subscriptions.put(sub);
    return sub;
  };
  const publish = async (partnerId: string) =>
    (await events.append({ partnerId, type: 'order.created', payload: {}, createdAt: NOW.toISOString() }))
      .event;
  return { db, deps, router, outbox, fanout, sent, sends: () => sends, logged, subscribe, publish };
}

describe.each(MODES)('the local router, its stream $name', (mode) => {
  beforeEach(() => {
    follow = mode.follow;
  });

  it('fans each event out as it takes it, a batch at a time, its deliveries queued in one send', async () => {
    const t = await setUp();
    const partnerId = newId('ptr');
    const sub = await t.subscribe(partnerId);
    const published = [];
    for (let i = 0; i < 5; i++) published.push(await t.publish(partnerId));

    expect(await t.router.routeBatch()).toBe(3);
    expect(t.sends()).toBe(1);
    expect(await t.router.routeBatch()).toBe(2);
    expect(await t.router.routeBatch()).toBe(0);

    expect(t.sent.map((m) => m.body.eventId)).toEqual(published.map((e) => e.id));
    expect(t.sent.every((m) => m.body.subscriptionId === sub.id && m.groupId === sub.id)).toBe(true);
    expect(t.outbox.peek(10)).toEqual([]);
    expect(t.fanout.stats()).toEqual({ visible: 0, inFlight: 0, delayed: 0 });
  });

  it('puts an event whose fan-out failed in the fan-out queue, hidden for its visibility timeout, and the rest go on', async () => {
    const failing = newId('ptr');
    const t = await setUp({ failFor: (partnerId) => partnerId === failing });
    const healthy = newId('ptr');
    await t.subscribe(healthy);
    await t.subscribe(failing);
    const first = await t.publish(healthy);
    const bad = await t.publish(failing);
    const last = await t.publish(healthy);

    expect(await t.router.routeBatch()).toBe(3);

    expect(t.sent.map((m) => m.body.eventId)).toEqual([first.id, last.id]);
    expect(t.outbox.peek(10)).toEqual([]);
    expect(t.fanout.stats()).toEqual({ visible: 0, inFlight: 0, delayed: 1 });
    const [queued] = t.fanout.list(10);
    expect(queued?.body).toMatchObject({ id: bad.id, partnerId: failing });
    expect(queued?.visibleAt.getTime()).toBe(NOW.getTime() + RETRY_DELAY_SECONDS * 1000);
    expect(t.logged).toEqual([expect.stringContaining(bad.id)]);
  });

  it('leaves the events to take when the stream cursor cannot be moved, and takes them again', async () => {
    const t = await setUp();
    const partnerId = newId('ptr');
    await t.subscribe(partnerId);
    const event = await t.publish(partnerId);
    // The database refuses the move: a write of the cursor fails.
    t.db.exec(
      `CREATE TRIGGER refuse BEFORE UPDATE ON stream_cursor BEGIN SELECT RAISE(ABORT, 'cursor is read-only'); END`,
    );
    await expect(t.router.routeBatch()).rejects.toThrow(/cursor is read-only/);
    expect(t.outbox.peek(10).map((e) => e.ref.id)).toEqual([event.id]);

    t.db.exec('DROP TRIGGER refuse');
    expect(await t.router.routeBatch()).toBe(1);
    expect(t.outbox.peek(10)).toEqual([]);
    // Fanned out twice: the second found the delivery the first made, and queued it again.
    expect(t.sent.map((m) => m.body.eventId)).toEqual([event.id, event.id]);
    expect(new Set(t.sent.map((m) => m.body.deliveryId)).size).toBe(1);
  });

  it('moves past an event only once its fan-out is through: a run that dies before leaves it to the next', async () => {
    const t = await setUp();
    const partnerId = newId('ptr');
    await t.subscribe(partnerId);
    const event = await t.publish(partnerId);
    // A run whose fan-out never gets its deliveries queued (it dies first).
    const dying = new OutboxRouter(
      t.db,
      t.outbox,
      t.fanout,
      { ...t.deps, deliveryQueue: { send: () => new Promise<void>(() => {}) } },
      { retryDelaySeconds: RETRY_DELAY_SECONDS, log: () => {} },
    );
    void dying.routeBatch();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(t.outbox.peek(10).map((e) => e.ref.id)).toEqual([event.id]);
    // The next run's router takes it.
    expect(await t.router.routeBatch()).toBe(1);
    expect(t.sent.map((m) => m.body.eventId)).toEqual([event.id]);
    expect(t.outbox.peek(10)).toEqual([]);
  });
});
