import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { SQSRecord } from 'aws-lambda';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, type SqliteDatabase, transaction } from '../../functions/adapters/sqlite/database.ts';
import { ReceiptHandleIsInvalidError, SqliteQueue } from '../../functions/adapters/sqlite/queues.ts';
import { ManualClock, tempDir } from './fixtures.ts';

interface Job {
  n: number;
}

const jobs = (...ns: number[]) => ns.map((n) => ({ body: { n } }));
const bodies = (records: { body: string }[]) => records.map((r) => JSON.parse(r.body));

describe('SqliteQueue', () => {
  let db: SqliteDatabase;
  let clock: ManualClock;
  let dlq: SqliteQueue<Job>;
  let queue: SqliteQueue<Job>;

  function queues(database: SqliteDatabase): { queue: SqliteQueue<Job>; dlq: SqliteQueue<Job> } {
    const deadLetters = new SqliteQueue<Job>(database, {
      name: 'work-dlq',
      visibilityTimeoutSeconds: 30,
      clock,
    });
    return {
      dlq: deadLetters,
      queue: new SqliteQueue<Job>(database, {
        name: 'work',
        visibilityTimeoutSeconds: 30,
        maxReceiveCount: 3,
        deadLetterQueue: deadLetters,
        clock,
      }),
    };
  }

  beforeEach(() => {
    db = openDatabase(':memory:');
    clock = new ManualClock();
    ({ queue, dlq } = queues(db));
  });

  afterEach(() => {
    if (db.isOpen) db.close();
  });

  describe('receive', () => {
    it('returns SQS-shaped records', () => {
      queue.sendNow(jobs(1));
      const sentAt = String(clock.now().getTime());
      clock.advance(2);

      const [record] = queue.receive(10);

      const body = JSON.stringify({ n: 1 });
      expect(record).toEqual({
        messageId: expect.stringMatching(/^[0-9a-f-]{36}$/),
        receiptHandle: expect.any(String),
        body,
        attributes: {
          ApproximateReceiveCount: '1',
          SentTimestamp: sentAt,
          SenderId: 'local',
          ApproximateFirstReceiveTimestamp: String(clock.now().getTime()),
        },
        messageAttributes: {},
        md5OfBody: createHash('md5').update(body).digest('hex'),
        eventSource: 'aws:sqs',
        eventSourceARN: 'arn:aws:sqs:local:000000000000:work',
        awsRegion: 'local',
      });
    });

    it('returns up to max messages, oldest first', () => {
      queue.sendNow(jobs(1, 2, 3));

      expect(bodies(queue.receive(2))).toEqual([{ n: 1 }, { n: 2 }]);
      expect(bodies(queue.receive(2))).toEqual([{ n: 3 }]);
      expect(queue.receive(2)).toEqual([]);
    });

    it('never returns a message of another queue', () => {
      queue.sendNow(jobs(1));

      expect(dlq.receive(10)).toEqual([]);
    });

    it('returns a message once per receive even with a zero visibility timeout', () => {
      const eager = new SqliteQueue<Job>(db, { name: 'eager', visibilityTimeoutSeconds: 0, clock });
      eager.sendNow(jobs(1));

      expect(eager.receive(10)).toHaveLength(1);
      expect(eager.receive(10)).toHaveLength(1);
    });

    it('returns each message once per receive with a zero visibility timeout, over several pages', () => {
      const eager = new SqliteQueue<Job>(db, { name: 'eager', visibilityTimeoutSeconds: 0, clock });
      const n = Array.from({ length: 100 }, (_, i) => i);
      eager.sendNow([
        ...jobs(...n.slice(0, 50)),
        ...n.slice(50).map((i) => ({ body: { n: i }, groupId: 'g' })),
      ]);
      clock.advance(1); // received now, they become visible again later than they were sent

      const records = eager.receive(500);

      expect(
        bodies(records)
          .map((b: Job) => b.n)
          .sort((a: number, b: number) => a - b),
      ).toEqual(n);
      expect(records.every((r) => r.attributes.ApproximateReceiveCount === '1')).toBe(true);
    });

    it('rejects a max below one', () => {
      expect(() => queue.receive(0)).toThrow(RangeError);
    });
  });

  describe('message groups', () => {
    it('carries a message’s group as MessageGroupId, also through the DLQ and a redrive', () => {
      queue.sendNow([{ body: { n: 1 }, groupId: 'sub_a' }, { body: { n: 2 } }]);
      const records = queue.receive(10);
      expect(records.map((r) => r.attributes.MessageGroupId)).toEqual(['sub_a', undefined]);

      for (let i = 0; i < 3; i++) {
        clock.advance(30);
        queue.receive(10);
      }
      expect(dlq.receive(10).map((r) => r.attributes.MessageGroupId)).toEqual(['sub_a', undefined]);
      clock.advance(30);
      dlq.redriveTo(queue);
      expect(queue.receive(10).map((r) => r.attributes.MessageGroupId)).toEqual(['sub_a', undefined]);
    });

    it('does not receive the groups it is told to exclude', () => {
      queue.sendNow([
        { body: { n: 1 }, groupId: 'full' },
        { body: { n: 2 }, groupId: 'open' },
      ]);
      expect(bodies(queue.receive(10, undefined, ['full']))).toEqual([{ n: 2 }]);
      expect(bodies(queue.receive(10))).toEqual([{ n: 1 }]);
    });

    it('passes over what admit refuses, leaving it visible and its receive count untouched', () => {
      queue.sendNow([
        { body: { n: 1 }, groupId: 'slow' },
        { body: { n: 2 }, groupId: 'slow' },
        { body: { n: 3 }, groupId: 'fast' },
        { body: { n: 4 } },
      ]);
      let slowTaken = 0;
      const admit = (group: string | undefined) => group !== 'slow' || slowTaken++ < 1;

      expect(bodies(queue.receive(10, admit))).toEqual([{ n: 1 }, { n: 3 }, { n: 4 }]);

      const [left] = queue.receive(10);
      expect(bodies(left === undefined ? [] : [left])).toEqual([{ n: 2 }]);
      expect(left?.attributes.ApproximateReceiveCount).toBe('1');
    });
  });

  describe('sendReceiving', () => {
    it('sends every message and receives at once those taken, as a receive would return them', async () => {
      const records = await queue.sendReceiving(
        [
          { body: { n: 1 }, groupId: 'a' },
          { body: { n: 2 }, groupId: 'b' },
        ],
        (group) => group === 'a',
      );
      expect(bodies(records)).toEqual([{ n: 1 }]);
      const [taken] = records;
      expect(taken?.attributes).toMatchObject({ ApproximateReceiveCount: '1', MessageGroupId: 'a' });
      expect(taken?.md5OfBody).toBe(
        createHash('md5')
          .update(taken?.body ?? '')
          .digest('hex'),
      );
      // The other waits for a receive; the taken one is in flight, hidden for the timeout.
      expect(queue.stats()).toEqual({ visible: 1, inFlight: 1, delayed: 0 });
      const [other] = queue.receive(10);
      expect(bodies(other === undefined ? [] : [other])).toEqual([{ n: 2 }]);
      queue.delete(other?.receiptHandle ?? '');
      clock.advance(30);
      const again = queue.receive(10);
      expect(bodies(again)).toEqual([{ n: 1 }]);
      expect(again[0]?.attributes.ApproximateReceiveCount).toBe('2');
      // Its first receipt handle is no longer current; the new one deletes it.
      expect(queue.delete(taken?.receiptHandle ?? '')).toBe(false);
      expect(queue.delete(again[0]?.receiptHandle ?? '')).toBe(true);
    });

    it('asks take nothing of a group mayTake turns down, and leaves its messages visible', async () => {
      const asked: (string | undefined)[] = [];
      const records = await queue.sendReceiving(
        [
          { body: { n: 1 }, groupId: 'full' },
          { body: { n: 2 }, groupId: 'open' },
        ],
        (group) => {
          asked.push(group);
          return true;
        },
        (group) => group !== 'full',
      );
      expect(bodies(records)).toEqual([{ n: 2 }]);
      expect(asked).toEqual(['open']);
      expect(queue.stats()).toEqual({ visible: 1, inFlight: 1, delayed: 0 });
    });

    it('takes no delayed message, and none that would pass an older visible one of its group', async () => {
      queue.sendNow([{ body: { n: 1 }, groupId: 'a' }]);
      const offered: (string | undefined)[] = [];
      const records = await queue.sendReceiving(
        [
          { body: { n: 2 }, groupId: 'a' },
          { body: { n: 3 }, groupId: 'b', delaySeconds: 5 },
          { body: { n: 4 }, groupId: 'c' },
          { body: { n: 5 }, groupId: 'c' },
        ],
        (group) => {
          offered.push(group);
          return true;
        },
      );
      expect(offered).toEqual(['c', 'c']);
      expect(bodies(records)).toEqual([{ n: 4 }, { n: 5 }]);
      expect(bodies(queue.receive(10))).toEqual([{ n: 1 }, { n: 2 }]);
      clock.advance(5);
      expect(bodies(queue.receive(10))).toEqual([{ n: 3 }]);
    });

    it('once one of a group is left visible, leaves the rest of that group after it', async () => {
      let first = true;
      const records = await queue.sendReceiving(
        [
          { body: { n: 1 }, groupId: 'a' },
          { body: { n: 2 }, groupId: 'a' },
        ],
        () => {
          const take = !first;
          first = false;
          return take;
        },
      );
      expect(records).toEqual([]);
      expect(bodies(queue.receive(10))).toEqual([{ n: 1 }, { n: 2 }]);
    });

    it('sends nothing, and takes nothing, when a delay is out of range', async () => {
      await expect(
        queue.sendReceiving([{ body: { n: 1 } }, { body: { n: 2 }, delaySeconds: 901 }], () => true),
      ).rejects.toThrow(RangeError);
      expect(queue.stats()).toEqual({ visible: 0, inFlight: 0, delayed: 0 });
    });
  });

  describe('receive order and admission', () => {
    it('returns the messages visible longest first, so a retry due earlier goes before newer ones', () => {
      queue.sendNow(jobs(1));
      queue.receive(10); // hidden for 30 s
      clock.advance(1);
      queue.sendNow(jobs(2)); // visible from t = 1 s
      clock.advance(40); // 1 is visible again from t = 30 s

      expect(bodies(queue.receive(10))).toEqual([{ n: 2 }, { n: 1 }]);
    });

    it('asks admit about a group it turned down only once, and still finds the other groups behind it', () => {
      queue.sendNow([
        ...Array.from({ length: 80 }, (_, n) => ({ body: { n }, groupId: 'slow' })),
        { body: { n: 80 }, groupId: 'fast' },
      ]);
      const asked: (string | undefined)[] = [];
      const admit = (group: string | undefined) => {
        asked.push(group);
        return group !== 'slow';
      };

      expect(bodies(queue.receive(10, admit))).toEqual([{ n: 80 }]);
      expect(asked).toEqual(['slow', 'fast']);
      expect(queue.stats()).toEqual({ visible: 80, inFlight: 1, delayed: 0 });
    });
  });

  describe('batched with other writes', () => {
    it('receives and deletes through the shared commit, as SQS’s batch calls', async () => {
      queue.sendNow(jobs(1, 2, 3));
      const records = await queue.receiveBatch(2);
      expect(bodies(records)).toEqual([{ n: 1 }, { n: 2 }]);

      const [first] = records;
      queue.receive(10); // 3, and nothing else: 1 and 2 are in flight
      clock.advance(31);
      const again = queue.receive(1); // 1 again, with a new handle: the first one is stale
      expect(again[0]?.messageId).toBe(first?.messageId);

      const handles = [...records.map((r) => r.receiptHandle), ...again.map((r) => r.receiptHandle)];
      expect(await queue.deleteBatch(handles)).toBe(2); // 2 and the new handle of 1
      expect(queue.stats()).toEqual({ visible: 1, inFlight: 0, delayed: 0 });
    });
  });

  describe('visibility timeout', () => {
    it('hides a received message until the timeout ends, then shows it again', () => {
      queue.sendNow(jobs(1));
      queue.receive(10);

      clock.advance(29);
      expect(queue.receive(10)).toEqual([]);

      clock.advance(1);
      expect(bodies(queue.receive(10))).toEqual([{ n: 1 }]);
    });

    it('increments the receive count and keeps the first receive time on every receive', () => {
      queue.sendNow(jobs(1));
      const first = queue.receive(1)[0];
      clock.advance(30);

      const second = queue.receive(1)[0];

      expect(second?.messageId).toBe(first?.messageId);
      expect(second?.attributes.ApproximateReceiveCount).toBe('2');
      expect(second?.attributes.ApproximateFirstReceiveTimestamp).toBe(
        first?.attributes.ApproximateFirstReceiveTimestamp,
      );
      expect(second?.receiptHandle).not.toBe(first?.receiptHandle);
    });
  });

  describe('delete', () => {
    it('deletes a received message with its current receipt handle', () => {
      queue.sendNow(jobs(1));
      const [record] = queue.receive(1);

      expect(queue.delete(record?.receiptHandle ?? '')).toBe(true);
      clock.advance(30);
      expect(queue.receive(10)).toEqual([]);
    });

    it('deletes nothing with a handle that names another message, or none', () => {
      queue.sendNow(jobs(1, 2));
      const [first, second] = queue.receive(2);
      const token = (first?.receiptHandle ?? '').split('.')[1];
      const seqOfSecond = (second?.receiptHandle ?? '').split('.')[0];
      // The first receive's token with the second message's seq: neither goes.
      for (const forged of [`${seqOfSecond}.${token}`, 'nope', '0.x', '-1.x', '.x', `${seqOfSecond}.`])
        expect(queue.delete(forged)).toBe(false);
      expect(queue.stats()).toEqual({ visible: 0, inFlight: 2, delayed: 0 });
      expect(queue.delete(first?.receiptHandle ?? '')).toBe(true);
      expect(queue.delete(second?.receiptHandle ?? '')).toBe(true);
    });

    it('ignores a stale receipt handle, as SQS does, and keeps the message', () => {
      queue.sendNow(jobs(1));
      const stale = queue.receive(1)[0]?.receiptHandle ?? '';
      clock.advance(30);
      queue.receive(1);

      expect(queue.delete(stale)).toBe(false);
      expect(queue.stats()).toEqual({ visible: 0, inFlight: 1, delayed: 0 });
    });
  });

  describe('changeVisibility', () => {
    it('hides the message for the new timeout from now', async () => {
      queue.sendNow(jobs(1));
      const [record] = queue.receive(1);

      await queue.changeVisibility(record?.receiptHandle ?? '', 300);

      clock.advance(299);
      expect(queue.receive(10)).toEqual([]);
      clock.advance(1);
      expect(queue.receive(10)).toHaveLength(1);
    });

    it('makes the message visible at once with a zero timeout', async () => {
      queue.sendNow(jobs(1));
      const [record] = queue.receive(1);

      await queue.changeVisibility(record?.receiptHandle ?? '', 0);

      expect(queue.receive(10)).toHaveLength(1);
    });

    it('rejects a receipt handle replaced by a later receive with ReceiptHandleIsInvalidError', async () => {
      queue.sendNow(jobs(1));
      const stale = queue.receive(1)[0]?.receiptHandle ?? '';
      clock.advance(30);
      queue.receive(1);

      await expect(queue.changeVisibility(stale, 60)).rejects.toBeInstanceOf(ReceiptHandleIsInvalidError);
    });

    it('rejects an unknown receipt handle with ReceiptHandleIsInvalidError', async () => {
      await expect(queue.changeVisibility('nope', 60)).rejects.toBeInstanceOf(ReceiptHandleIsInvalidError);
    });

    it('rejects a timeout beyond SQS’s twelve hours', async () => {
      queue.sendNow(jobs(1));
      const [record] = queue.receive(1);

      await expect(queue.changeVisibility(record?.receiptHandle ?? '', 43_201)).rejects.toThrow(RangeError);
    });
  });

  describe('delay', () => {
    it('keeps a delayed message hidden until its delay ends', async () => {
      await queue.send([{ body: { n: 1 }, delaySeconds: 20 }, { body: { n: 2 } }]);

      expect(bodies(queue.receive(10))).toEqual([{ n: 2 }]);
      expect(queue.stats()).toEqual({ visible: 0, inFlight: 1, delayed: 1 });
      clock.advance(19);
      expect(queue.receive(10)).toEqual([]);
      clock.advance(1);
      expect(bodies(queue.receive(10))).toEqual([{ n: 1 }]);
    });

    it('rejects a delay beyond SQS’s 900 seconds and sends none of the batch', () => {
      expect(() => queue.sendNow([{ body: { n: 1 } }, { body: { n: 2 }, delaySeconds: 901 }])).toThrow(
        RangeError,
      );
      expect(queue.list(10)).toEqual([]);
    });
  });

  describe('dead-letter queue', () => {
    it('moves a message received maxReceiveCount times to the DLQ at the next receive', () => {
      queue.sendNow(jobs(1));
      const received: SQSRecord[] = [];
      for (let i = 0; i < 3; i++) {
        received.push(...queue.receive(10));
        clock.advance(30);
      }

      expect(received.map((r) => r.attributes.ApproximateReceiveCount)).toEqual(['1', '2', '3']);
      expect(queue.receive(10)).toEqual([]);
      expect(queue.stats()).toEqual({ visible: 0, inFlight: 0, delayed: 0 });

      const [dead] = dlq.receive(10);
      expect(dead?.messageId).toBe(received[0]?.messageId);
      expect(dead?.body).toBe(received[0]?.body);
      expect(dead?.attributes.DeadLetterQueueSourceArn).toBe(queue.arn);
      expect(dead?.eventSourceARN).toBe(dlq.arn);
    });

    it('still returns the other messages of a receive that dead-letters one', () => {
      queue.sendNow(jobs(1));
      for (let i = 0; i < 3; i++) {
        queue.receive(1);
        clock.advance(30);
      }
      queue.sendNow(jobs(2, 3));

      expect(bodies(queue.receive(2))).toEqual([{ n: 2 }, { n: 3 }]);
      expect(dlq.stats().visible).toBe(1);
    });

    it('requires maxReceiveCount and deadLetterQueue together', () => {
      expect(
        () => new SqliteQueue<Job>(db, { name: 'x', visibilityTimeoutSeconds: 30, maxReceiveCount: 3 }),
      ).toThrow(/together/);
    });
  });

  describe('redriveTo', () => {
    function deadLetter(...ns: number[]): void {
      queue.sendNow(jobs(...ns));
      for (let i = 0; i < 4; i++) {
        queue.receive(10);
        clock.advance(30);
      }
    }

    it('moves dead letters back to the source with their receive count reset', () => {
      deadLetter(1, 2);

      expect(dlq.redriveTo(queue)).toBe(2);

      expect(dlq.stats()).toEqual({ visible: 0, inFlight: 0, delayed: 0 });
      const records = queue.receive(10);
      expect(bodies(records)).toEqual([{ n: 1 }, { n: 2 }]);
      expect(records.map((r) => r.attributes.ApproximateReceiveCount)).toEqual(['1', '1']);
      expect(records[0]?.attributes.DeadLetterQueueSourceArn).toBeUndefined();
    });

    it('moves at most max messages, oldest first', () => {
      deadLetter(1, 2, 3);

      expect(dlq.redriveTo(queue, 2)).toBe(2);

      expect(bodies(queue.receive(10))).toEqual([{ n: 1 }, { n: 2 }]);
      expect(dlq.stats().visible).toBe(1);
    });

    it('leaves messages in flight in the DLQ where they are', () => {
      deadLetter(1);
      dlq.receive(10);

      expect(dlq.redriveTo(queue)).toBe(0);
    });
  });

  describe('stats, nextVisibleAt and list', () => {
    it('counts visible, in-flight and delayed messages', () => {
      queue.sendNow([...jobs(1, 2, 3), { body: { n: 4 }, delaySeconds: 10 }]);
      queue.receive(1);

      expect(queue.stats()).toEqual({ visible: 2, inFlight: 1, delayed: 1 });
    });

    it('tells when the earliest message becomes visible, null when the queue is empty', () => {
      expect(queue.nextVisibleAt()).toBeNull();
      const start = clock.now().getTime();
      queue.sendNow([
        { body: { n: 1 }, delaySeconds: 20 },
        { body: { n: 2 }, delaySeconds: 5 },
      ]);

      expect(queue.nextVisibleAt()).toEqual(new Date(start + 5000));
      queue.receive(10);
      clock.advance(5);
      queue.receive(10);
      expect(queue.nextVisibleAt()).toEqual(new Date(start + 20_000));
    });

    it('lists messages in send order whatever their visibility, with parsed bodies', () => {
      const start = clock.now().getTime();
      queue.sendNow(jobs(1, 2));
      queue.receive(1);

      expect(queue.list(10)).toEqual([
        {
          messageId: expect.any(String),
          body: { n: 1 },
          receiveCount: 1,
          sentAt: new Date(start),
          visibleAt: new Date(start + 30_000),
        },
        {
          messageId: expect.any(String),
          body: { n: 2 },
          receiveCount: 0,
          sentAt: new Date(start),
          visibleAt: new Date(start),
        },
      ]);
    });
  });

  describe('transactions', () => {
    it('undoes a sendNow with the transaction it ran in', () => {
      expect(() =>
        transaction(db, () => {
          queue.sendNow(jobs(1));
          throw new Error('rolled back');
        }),
      ).toThrow();

      expect(queue.list(10)).toEqual([]);
    });
  });

  describe('restart', () => {
    it('keeps every message in the file, and in-flight ones reappear when their visibility ends', () => {
      const tmp = tempDir();
      try {
        const path = join(tmp.dir, 'local.db');
        const before = openDatabase(path);
        const { queue: q1 } = queues(before);
        q1.sendNow(jobs(1, 2, 3));
        const [inFlight] = q1.receive(1);
        before.close();

        const after = openDatabase(path);
        const { queue: q2 } = queues(after);
        expect(q2.stats()).toEqual({ visible: 2, inFlight: 1, delayed: 0 });
        expect(bodies(q2.receive(10))).toEqual([{ n: 2 }, { n: 3 }]);

        clock.advance(30);
        const [again] = q2.receive(10);
        expect(again?.messageId).toBe(inFlight?.messageId);
        expect(again?.attributes.ApproximateReceiveCount).toBe('2');
        after.close();
      } finally {
        tmp.remove();
      }
    });
  });
});
