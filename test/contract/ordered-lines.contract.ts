/** The OrderedLines contract: every adapter runs this suite (see sqlite.test.ts and dynamodb.test.ts). */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EventRef } from '../../functions/core/model.ts';
import type { LineEntry, LineHead, OrderedLines } from '../../functions/core/ports.ts';
import { at, id } from './fixtures.ts';

export interface OrderedLinesSubject {
  lines: OrderedLines;
  close(): Promise<void>;
}

type KeyedRef = EventRef & { orderingKey: string; keySeq: number };

export function orderedLinesContract(name: string, make: () => Promise<OrderedLinesSubject>): void {
  describe(`OrderedLines contract: ${name}`, () => {
    let subject: OrderedLinesSubject;
    let lines: OrderedLines;
    const partnerId = id('ptr');
    const otherPartnerId = id('ptr');
    const subscriptionId = id('sub');
    const otherSubscriptionId = id('sub');

    beforeEach(async () => {
      subject = await make();
      lines = subject.lines;
    });

    afterEach(async () => {
      await subject.close();
    });

    /** The ref of the key's event at `keySeq`. */
    function keyedRef(key: string, keySeq: number, partner = partnerId): KeyedRef {
      return {
        id: id('evt', Date.parse(at(keySeq))),
        partnerId: partner,
        type: 'order.created',
        createdAt: at(keySeq),
        orderingKey: key,
        keySeq,
      };
    }

    /** A line's head as `line` gives it: its entry, with the try taken (0: none) and when. */
    function headOf(e: LineEntry, taken = 0, takenAt = 0): LineHead {
      return { ...e, taken, takenAt };
    }

    /** The line entry of a delivery of the key's event at `seq`. */
    function entry(seq: number, partner = partnerId): LineEntry {
      return { seq, deliveryId: id('dlv'), eventId: id('evt'), partnerId: partner };
    }

    describe('the gate', () => {
      it('starts at 0 for a key never fanned out', async () => {
        expect(await lines.fannedThrough(partnerId, 'order-1')).toBe(0);
      });

      it('advances from 0, then only from the place it is at', async () => {
        expect(await lines.advanceGate(partnerId, 'k', 0, 1)).toBe(true);
        expect(await lines.fannedThrough(partnerId, 'k')).toBe(1);

        expect(await lines.advanceGate(partnerId, 'k', 0, 1)).toBe(false);
        expect(await lines.advanceGate(partnerId, 'k', 2, 3)).toBe(false);
        expect(await lines.fannedThrough(partnerId, 'k')).toBe(1);

        expect(await lines.advanceGate(partnerId, 'k', 1, 2)).toBe(true);
        expect(await lines.advanceGate(partnerId, 'k', 2, 3)).toBe(true);
        expect(await lines.fannedThrough(partnerId, 'k')).toBe(3);
      });

      it('refuses an advance from a place it has moved past (a copy of an earlier fan-out)', async () => {
        for (let place = 0; place < 4; place++) await lines.advanceGate(partnerId, 'k', place, place + 1);

        expect(await lines.advanceGate(partnerId, 'k', 2, 3)).toBe(false);
        expect(await lines.advanceGate(partnerId, 'k', 0, 1)).toBe(false);
        expect(await lines.fannedThrough(partnerId, 'k')).toBe(4);
      });

      it('lets exactly one of concurrent advances from the same place win', async () => {
        const first = await Promise.all(
          Array.from({ length: 8 }, () => lines.advanceGate(partnerId, 'k', 0, 1)),
        );
        expect(first.filter(Boolean)).toHaveLength(1);

        const later = await Promise.all(
          Array.from({ length: 8 }, () => lines.advanceGate(partnerId, 'k', 1, 2)),
        );
        expect(later.filter(Boolean)).toHaveLength(1);
        expect(await lines.fannedThrough(partnerId, 'k')).toBe(2);
      });

      it('keeps each partner’s and each key’s gate on its own', async () => {
        await lines.advanceGate(partnerId, 'a', 0, 1);
        await lines.advanceGate(partnerId, 'a', 1, 2);
        await lines.advanceGate(otherPartnerId, 'a', 0, 1);

        expect(await lines.fannedThrough(partnerId, 'a')).toBe(2);
        expect(await lines.fannedThrough(otherPartnerId, 'a')).toBe(1);
        expect(await lines.fannedThrough(partnerId, 'b')).toBe(0);
        expect(await lines.advanceGate(partnerId, 'b', 0, 1)).toBe(true);
        expect(await lines.fannedThrough(partnerId, 'a')).toBe(2);
      });
    });

    describe('parked events', () => {
      it('finds nothing parked at a place nothing was parked at', async () => {
        expect(await lines.parked(partnerId, 'k', 1)).toBeUndefined();
      });

      it('parks an event at its key’s place, where parked finds it, until unparked', async () => {
        const ref = keyedRef('k', 3);

        await lines.park(ref);

        expect(await lines.parked(partnerId, 'k', 3)).toEqual(ref);
        expect(await lines.parked(partnerId, 'k', 2)).toBeUndefined();
        expect(await lines.parked(partnerId, 'k', 4)).toBeUndefined();
        await lines.unpark(partnerId, 'k', 3);
        expect(await lines.parked(partnerId, 'k', 3)).toBeUndefined();
      });

      it('keeps the first park of a place: a second is a no-op', async () => {
        const ref = keyedRef('k', 2);
        await lines.park(ref);

        await lines.park(ref);
        await lines.park({ ...ref, createdAt: at(99) });

        expect(await lines.parked(partnerId, 'k', 2)).toEqual(ref);
      });

      it('unparks what is not parked, or twice, without an error', async () => {
        await lines.unpark(partnerId, 'k', 5);
        await lines.park(keyedRef('k', 5));
        await lines.unpark(partnerId, 'k', 5);
        await lines.unpark(partnerId, 'k', 5);

        expect(await lines.parked(partnerId, 'k', 5)).toBeUndefined();
      });

      it('keeps each partner’s and each key’s parked events apart, and apart from the gate', async () => {
        const mine = keyedRef('a', 2);
        const theirs = keyedRef('a', 2, otherPartnerId);
        await lines.park(mine);
        await lines.park(theirs);

        expect(await lines.parked(partnerId, 'a', 2)).toEqual(mine);
        expect(await lines.parked(otherPartnerId, 'a', 2)).toEqual(theirs);
        expect(await lines.parked(partnerId, 'b', 2)).toBeUndefined();
        expect(await lines.fannedThrough(partnerId, 'a')).toBe(0);
        await lines.unpark(partnerId, 'a', 2);
        expect(await lines.parked(otherPartnerId, 'a', 2)).toEqual(theirs);
      });
    });

    describe('lines', () => {
      it('has neither head nor entry for a line nothing was appended to', async () => {
        expect(await lines.line(subscriptionId, 'k')).toEqual({});
      });

      it('gives the entry of the lowest place first, whatever order they were appended in, and no head until one is claimed', async () => {
        const [one, two, three] = [entry(1), entry(2), entry(3)];
        for (const appended of [three, one, two]) await lines.append(subscriptionId, 'k', appended);

        expect(await lines.line(subscriptionId, 'k')).toEqual({ first: one });
      });

      it('orders places by number, not by their digits as text', async () => {
        const [nine, ten] = [entry(9), entry(10)];
        await lines.append(subscriptionId, 'k', ten);
        await lines.append(subscriptionId, 'k', nine);

        expect((await lines.line(subscriptionId, 'k')).first).toEqual(nine);
      });

      it('keeps the first append of a place: a second is a no-op', async () => {
        const first = entry(1);
        await lines.append(subscriptionId, 'k', first);

        await lines.append(subscriptionId, 'k', first);
        await lines.append(subscriptionId, 'k', { ...entry(1), deliveryId: id('dlv') });

        expect(await lines.line(subscriptionId, 'k')).toEqual({ first });
        await lines.finish(subscriptionId, 'k', 1);
        expect(await lines.line(subscriptionId, 'k')).toEqual({});
      });

      it('claims the head for one entry only, until it finishes', async () => {
        const [one, two] = [entry(1), entry(2)];
        await lines.append(subscriptionId, 'k', one);
        await lines.append(subscriptionId, 'k', two);

        expect(await lines.claim(subscriptionId, 'k', one)).toBe(true);
        expect(await lines.claim(subscriptionId, 'k', one)).toBe(false);
        expect(await lines.claim(subscriptionId, 'k', two)).toBe(false);
        expect(await lines.line(subscriptionId, 'k')).toEqual({ head: headOf(one), first: one });
      });

      it('lets exactly one of concurrent claims win', async () => {
        const [one, two, three] = [entry(1), entry(2), entry(3)];
        for (const appended of [one, two, three]) await lines.append(subscriptionId, 'k', appended);
        // As starts read them from the line, several at once.
        const candidates = [one, one, two, one, three, one];

        const claims = await Promise.all(
          candidates.map((candidate) => lines.claim(subscriptionId, 'k', candidate)),
        );

        expect(claims.filter(Boolean)).toHaveLength(1);
        const winner = candidates[claims.indexOf(true)];
        expect((await lines.line(subscriptionId, 'k')).head).toEqual(
          winner === undefined ? undefined : headOf(winner),
        );
      });

      it('finishes the head’s entry: out of the line, the head with it, and the next entry first', async () => {
        const [one, two] = [entry(1), entry(2)];
        await lines.append(subscriptionId, 'k', one);
        await lines.append(subscriptionId, 'k', two);
        await lines.claim(subscriptionId, 'k', one);

        await lines.finish(subscriptionId, 'k', 1);

        expect(await lines.line(subscriptionId, 'k')).toEqual({ first: two });
        expect(await lines.claim(subscriptionId, 'k', two)).toBe(true);
        expect(await lines.line(subscriptionId, 'k')).toEqual({ head: headOf(two), first: two });
      });

      it('leaves the head alone when the entry finished is not its own', async () => {
        const [one, two, three] = [entry(1), entry(2), entry(3)];
        for (const appended of [one, two, three]) await lines.append(subscriptionId, 'k', appended);
        await lines.claim(subscriptionId, 'k', one);

        await lines.finish(subscriptionId, 'k', 2);

        expect(await lines.line(subscriptionId, 'k')).toEqual({ head: headOf(one), first: one });
        await lines.finish(subscriptionId, 'k', 1);
        expect(await lines.line(subscriptionId, 'k')).toEqual({ first: three });
      });

      it('finishes an entry that was never the head, and one not in the line, without an error', async () => {
        await lines.append(subscriptionId, 'k', entry(1));

        await lines.finish(subscriptionId, 'k', 1);
        await lines.finish(subscriptionId, 'k', 7);

        expect(await lines.line(subscriptionId, 'k')).toEqual({});
      });

      it('does no harm when a finish is repeated, even after the next entry became the head', async () => {
        const [one, two] = [entry(1), entry(2)];
        await lines.append(subscriptionId, 'k', one);
        await lines.append(subscriptionId, 'k', two);
        await lines.claim(subscriptionId, 'k', one);
        await lines.finish(subscriptionId, 'k', 1);
        await lines.claim(subscriptionId, 'k', two);

        await lines.finish(subscriptionId, 'k', 1);

        expect(await lines.line(subscriptionId, 'k')).toEqual({ head: headOf(two), first: two });
      });

      it('keeps each subscription’s and each key’s line on its own', async () => {
        const mine = entry(1);
        const theirs = entry(1);
        const otherKey = entry(4);
        await lines.append(subscriptionId, 'a', mine);
        await lines.append(otherSubscriptionId, 'a', theirs);
        await lines.append(subscriptionId, 'b', otherKey);
        await lines.claim(subscriptionId, 'a', mine);

        expect(await lines.line(subscriptionId, 'a')).toEqual({ head: headOf(mine), first: mine });
        expect(await lines.line(otherSubscriptionId, 'a')).toEqual({ first: theirs });
        expect(await lines.line(subscriptionId, 'b')).toEqual({ first: otherKey });
        expect(await lines.claim(otherSubscriptionId, 'a', theirs)).toBe(true);
        expect(await lines.claim(subscriptionId, 'b', otherKey)).toBe(true);

        await lines.finish(subscriptionId, 'a', 1);
        expect(await lines.line(subscriptionId, 'a')).toEqual({});
        expect(await lines.line(otherSubscriptionId, 'a')).toEqual({ head: headOf(theirs), first: theirs });
        expect(await lines.line(subscriptionId, 'b')).toEqual({ head: headOf(otherKey), first: otherKey });
      });
    });

    describe('tries of the head', () => {
      const LEASE_MS = 30_000;
      const t0 = new Date(Date.parse(at(0)));
      /** `ms` after t0. */
      const later = (ms: number) => new Date(t0.getTime() + ms);

      /** A line whose head is the entry at place 1, and an entry at 2 behind it. */
      async function headed(): Promise<void> {
        const one = entry(1);
        await lines.append(subscriptionId, 'k', one);
        await lines.append(subscriptionId, 'k', entry(2));
        await lines.claim(subscriptionId, 'k', one);
      }

      it('takes nothing on a line without a head, nor for an entry that is not the head', async () => {
        await lines.append(subscriptionId, 'k', entry(1));
        expect(await lines.take(subscriptionId, 'k', 1, 1, t0, LEASE_MS)).toBe(false);

        await headed();
        expect(await lines.take(subscriptionId, 'k', 2, 1, t0, LEASE_MS)).toBe(false);
        expect(await lines.take(otherSubscriptionId, 'k', 1, 1, t0, LEASE_MS)).toBe(false);
        expect(await lines.take(subscriptionId, 'other', 1, 1, t0, LEASE_MS)).toBe(false);
      });

      it('takes each try of the head once: a copy of its message, or an earlier try, is refused', async () => {
        await headed();

        expect(await lines.take(subscriptionId, 'k', 1, 1, t0, LEASE_MS)).toBe(true);
        expect(await lines.take(subscriptionId, 'k', 1, 1, later(1000), LEASE_MS)).toBe(false);
        expect(await lines.take(subscriptionId, 'k', 1, 3, later(2000), LEASE_MS)).toBe(true);
        expect(await lines.take(subscriptionId, 'k', 1, 2, later(3000), LEASE_MS)).toBe(false);
        expect(await lines.take(subscriptionId, 'k', 1, 3, later(4000), LEASE_MS)).toBe(false);
        expect(await lines.line(subscriptionId, 'k')).toMatchObject({ head: { seq: 1 } });
      });

      it('takes a try again once its lease has run out (its taker died), and then leases it anew', async () => {
        await headed();
        await lines.take(subscriptionId, 'k', 1, 1, t0, LEASE_MS);

        expect(await lines.take(subscriptionId, 'k', 1, 1, later(LEASE_MS - 1), LEASE_MS)).toBe(false);
        expect(await lines.take(subscriptionId, 'k', 1, 1, later(LEASE_MS + 1), LEASE_MS)).toBe(true);
        expect(await lines.take(subscriptionId, 'k', 1, 1, later(LEASE_MS + 2), LEASE_MS)).toBe(false);
      });

      it('lets exactly one of concurrent takes of a try win', async () => {
        await headed();

        const takes = await Promise.all(
          Array.from({ length: 8 }, () => lines.take(subscriptionId, 'k', 1, 1, t0, LEASE_MS)),
        );

        expect(takes.filter(Boolean)).toHaveLength(1);
      });

      it('gives back a try taken and not made, which may then be taken again', async () => {
        await headed();
        await lines.take(subscriptionId, 'k', 1, 2, t0, LEASE_MS);

        await lines.untake(subscriptionId, 'k', 1, 2);

        expect(await lines.take(subscriptionId, 'k', 1, 2, later(1000), LEASE_MS)).toBe(true);
        expect(await lines.take(subscriptionId, 'k', 1, 2, later(2000), LEASE_MS)).toBe(false);
      });

      it('gives back only the try named, and only on the head of the place named', async () => {
        await headed();
        await lines.take(subscriptionId, 'k', 1, 2, t0, LEASE_MS);

        await lines.untake(subscriptionId, 'k', 1, 1);
        await lines.untake(subscriptionId, 'k', 2, 2);
        await lines.untake(otherSubscriptionId, 'k', 1, 2);
        await lines.untake(subscriptionId, 'other', 1, 2);

        expect(await lines.take(subscriptionId, 'k', 1, 2, later(1000), LEASE_MS)).toBe(false);
      });

      it('starts the next head with no try taken', async () => {
        await headed();
        await lines.take(subscriptionId, 'k', 1, 4, t0, LEASE_MS);
        await lines.finish(subscriptionId, 'k', 1);
        const { first } = await lines.line(subscriptionId, 'k');
        if (first === undefined) throw new Error('the line lost its second entry');
        await lines.claim(subscriptionId, 'k', first);

        expect(await lines.take(subscriptionId, 'k', 1, 5, later(1000), LEASE_MS)).toBe(false);
        expect(await lines.take(subscriptionId, 'k', 2, 1, later(1000), LEASE_MS)).toBe(true);
      });

      it('claims nothing for an entry that has left the line: a start that comes after its turn', async () => {
        const one = entry(1);
        await lines.append(subscriptionId, 'k', one);
        await lines.claim(subscriptionId, 'k', one);
        await lines.take(subscriptionId, 'k', 1, 3, t0, LEASE_MS);
        await lines.finish(subscriptionId, 'k', 1);

        expect(await lines.claim(subscriptionId, 'k', one)).toBe(false);
        expect(await lines.line(subscriptionId, 'k')).toEqual({});
        expect(await lines.take(subscriptionId, 'k', 1, 1, later(1000), LEASE_MS)).toBe(false);
      });

      it('says which try the head has taken, and when', async () => {
        await headed();
        await lines.take(subscriptionId, 'k', 1, 2, t0, LEASE_MS);

        expect((await lines.line(subscriptionId, 'k')).head).toMatchObject({
          seq: 1,
          taken: 2,
          takenAt: t0.getTime(),
        });
        await lines.untake(subscriptionId, 'k', 1, 2);
        expect((await lines.line(subscriptionId, 'k')).head).toMatchObject({ seq: 1, taken: 1 });
      });

      it('gives back a try on a line without a head without an error', async () => {
        await lines.untake(subscriptionId, 'k', 1, 1);

        expect(await lines.line(subscriptionId, 'k')).toEqual({});
      });
    });

    describe('keys with #, / and :', () => {
      const keys = ['a#b', 'a', 'a#', 'a/b', 'a:b', 'a#b#c', 'x/y:z#w@v+u=t.s_r-q'];

      it('keeps a gate and parked events per key, none meeting another key’s', async () => {
        const refs = keys.map((key, i) => keyedRef(key, i + 3));
        for (const [i, key] of keys.entries()) {
          for (let place = 0; place <= i; place++) await lines.advanceGate(partnerId, key, place, place + 1);
          await lines.park(refs[i] ?? keyedRef(key, i + 3));
        }

        for (const [i, key] of keys.entries()) {
          expect(await lines.fannedThrough(partnerId, key), key).toBe(i + 1);
          expect(await lines.parked(partnerId, key, i + 3), key).toEqual(refs[i]);
          for (const [j, other] of keys.entries()) {
            if (j !== i)
              expect(await lines.parked(partnerId, other, i + 3), `${key} in ${other}`).toBeUndefined();
          }
        }
      });

      it('keeps a line per key, none meeting another key’s', async () => {
        const appended = new Map(keys.map((key, i) => [key, entry(i + 1)]));
        for (const [key, line] of appended) await lines.append(subscriptionId, key, line);
        await lines.claim(subscriptionId, 'a#b', appended.get('a#b') ?? entry(1));

        for (const [key, line] of appended) {
          expect(await lines.line(subscriptionId, key), key).toEqual(
            key === 'a#b' ? { head: headOf(line), first: line } : { first: line },
          );
        }
        await lines.finish(subscriptionId, 'a#b', 1);
        expect(await lines.line(subscriptionId, 'a#b')).toEqual({});
        expect(await lines.line(subscriptionId, 'a')).toEqual({ first: appended.get('a') });
        expect(await lines.line(subscriptionId, 'a#b#c')).toEqual({ first: appended.get('a#b#c') });
      });
    });
  });
}
