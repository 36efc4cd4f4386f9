import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase, type SqliteDatabase } from '../../functions/adapters/sqlite/database.ts';
import { SqliteQueue } from '../../functions/adapters/sqlite/queues.ts';
import { QueuePoller } from '../../local/poller.ts';

interface Job {
  n: number;
}

/** A queue that counts its receives: of every group, and of named groups. */
class CountingQueue extends SqliteQueue<Job> {
  receives = 0;
  groupReceives = 0;

  override receiveBatch(...args: Parameters<SqliteQueue<Job>['receiveBatch']>) {
    this.receives++;
    return super.receiveBatch(...args);
  }

  override receiveGroups(...args: Parameters<SqliteQueue<Job>['receiveGroups']>) {
    this.groupReceives++;
    return super.receiveGroups(...args);
  }
}

/** A handler whose invocations end when the test says so. */
function heldHandler() {
  const started: number[] = [];
  const waiting: (() => void)[] = [];
  const handler = (event: SQSEvent): Promise<SQSBatchResponse> => {
    for (const record of event.Records) started.push((JSON.parse(record.body) as Job).n);
    return new Promise((resolve) => waiting.push(() => resolve({ batchItemFailures: [] })));
  };
  const releaseAll = () => {
    for (const release of waiting.splice(0)) release();
  };
  return { started, handler, releaseAll };
}

const settle = (ms = 30) => new Promise((resolve) => setTimeout(resolve, ms));

/** A poller of the queue "work", as the tests use it; `options` changes what they vary. */
function pollerOf(
  queue: SqliteQueue<Job>,
  handler: (event: SQSEvent) => Promise<SQSBatchResponse>,
  options: { batchSize?: number; maxInFlightPerGroup?: number; idleMs?: number } = {},
): QueuePoller<Job> {
  return new QueuePoller<Job>({
    name: 'work',
    queue,
    handler,
    batchSize: 1,
    maxInFlight: 100,
    maxInFlightPerGroup: 8,
    idleMs: 50,
    log: () => {},
    ...options,
  });
}

describe('QueuePoller.send', () => {
  let db: SqliteDatabase;
  let poller: QueuePoller<Job> | undefined;
  let release: (() => void) | undefined;

  afterEach(async () => {
    release?.();
    await poller?.stop();
    db.close();
  });

  function setUp(maxInFlightPerGroup = 8) {
    db = openDatabase(':memory:');
    const queue = new CountingQueue(db, { name: 'work', visibilityTimeoutSeconds: 30 });
    const held = heldHandler();
    release = held.releaseAll;
    poller = pollerOf(queue, held.handler, { maxInFlightPerGroup });
    return { queue, poller, held };
  }

  it('takes what it has room for in the same write, with no receive, and leaves the rest to its loop', async () => {
    const { queue, poller, held } = setUp();
    poller.start();
    await settle();
    const receivesBefore = queue.receives;

    // A new group starts with 4 slots.
    await poller.send([1, 2, 3, 4, 5, 6].map((n) => ({ body: { n }, groupId: 'a' })));
    expect(held.started).toEqual([1, 2, 3, 4]);
    expect(queue.stats()).toEqual({ visible: 2, inFlight: 4, delayed: 0 });
    expect(queue.receives).toBe(receivesBefore);

    // Slots free: the loop receives the two left, in order.
    held.releaseAll();
    await settle();
    expect(held.started).toEqual([1, 2, 3, 4, 5, 6]);
    held.releaseAll();
    await settle();
    expect(queue.stats()).toEqual({ visible: 0, inFlight: 0, delayed: 0 });
  });

  it('never takes more of a group than its cap, a receive and a send of the same turn together', async () => {
    const { queue, poller, held } = setUp();
    queue.sendNow([1, 2, 3].map((n) => ({ body: { n }, groupId: 'a' })));
    poller.start();
    // The loop's receive and this send are admitted in the same turn.
    await poller.send([4, 5, 6].map((n) => ({ body: { n }, groupId: 'a' })));
    await settle();
    expect(held.started).toHaveLength(4);
    expect(queue.stats()).toMatchObject({ visible: 2, inFlight: 4 });
  });

  it('before it starts, and for a delayed message, only sends', async () => {
    const { queue, poller, held } = setUp();
    await poller.send([{ body: { n: 1 }, groupId: 'a' }]);
    expect(held.started).toEqual([]);
    expect(queue.stats()).toEqual({ visible: 1, inFlight: 0, delayed: 0 });
    poller.start();
    await settle();
    expect(held.started).toEqual([1]);
    await poller.send([{ body: { n: 2 }, groupId: 'b', delaySeconds: 60 }]);
    expect(held.started).toEqual([1]);
    expect(queue.stats()).toMatchObject({ delayed: 1 });
  });
});

describe('QueuePoller receives', () => {
  it('while busy, only for the groups whose records ended; a message another way visible, at the next full receive', async () => {
    const db = openDatabase(':memory:');
    const queue = new CountingQueue(db, { name: 'work', visibilityTimeoutSeconds: 30 });
    const held = heldHandler();
    const poller = pollerOf(queue, held.handler, { idleMs: 5_000 });
    try {
      queue.sendNow([1, 2, 3, 4, 5, 6, 7, 8].map((n) => ({ body: { n }, groupId: 'a' })));
      poller.start();
      await settle();
      // The first receive looks at every group; a new group has 4 slots.
      expect(held.started).toEqual([1, 2, 3, 4]);
      const full = queue.receives;

      held.releaseAll();
      await settle();
      expect(held.started).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      expect(queue.groupReceives).toBeGreaterThan(0);
      expect(queue.receives).toBe(full);

      // A message of another group that becomes visible by itself (here: sent behind the
      // poller's back) is received at the next full receive, though the poller sleeps long.
      queue.sendNow([{ body: { n: 9 }, groupId: 'b' }]);
      held.releaseAll();
      await settle(300);
      expect(held.started).toContain(9);
      expect(queue.receives).toBeGreaterThan(full);
    } finally {
      held.releaseAll();
      await poller.stop();
      db.close();
    }
  });
});

describe('QueuePoller.finished', () => {
  it('frees a finished record’s slot while its batch runs on, and deletes its message with the batch', async () => {
    const db = openDatabase(':memory:');
    const queue = new SqliteQueue<Job>(db, { name: 'work', visibilityTimeoutSeconds: 30 });
    const started: number[] = [];
    let endBatch: (() => void) | undefined;
    let poller: QueuePoller<Job> | undefined;
    // Each record of a batch finishes at once, but for n = 0, which hangs until the test ends
    // it, holding its batch open.
    const handler = (event: SQSEvent): Promise<SQSBatchResponse> => {
      for (const record of event.Records) {
        const { n } = JSON.parse(record.body) as Job;
        started.push(n);
        if (n !== 0) poller?.finished(record, n === 2);
      }
      const hangs = event.Records.some((record) => (JSON.parse(record.body) as Job).n === 0);
      if (!hangs) return Promise.resolve({ batchItemFailures: [] });
      return new Promise((resolve) => {
        endBatch = () => resolve({ batchItemFailures: [] });
      });
    };
    poller = pollerOf(queue, handler, { batchSize: 10 });
    try {
      // Group a starts with 4 slots: its first 4 records share a batch with the hanging one.
      queue.sendNow([{ body: { n: 0 }, groupId: 'hang' }]);
      queue.sendNow([1, 2, 3, 4, 5, 6, 7].map((n) => ({ body: { n }, groupId: 'a' })));
      poller.start();
      await settle();
      // Their slots came back as each finished, so a's other records ran meanwhile.
      expect(started).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      // The hanging batch's finished messages wait for it to end to be deleted.
      expect(queue.stats()).toEqual({ visible: 0, inFlight: 5, delayed: 0 });
      endBatch?.();
      await settle();
      expect(queue.stats()).toEqual({ visible: 0, inFlight: 0, delayed: 0 });
    } finally {
      endBatch?.();
      await poller.stop();
      db.close();
    }
  });
});
