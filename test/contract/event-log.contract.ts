/** The EventLog contract: every adapter runs this suite (see sqlite.test.ts). */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CursorNotFoundError } from '../../functions/core/errors.ts';
import { idTime } from '../../functions/core/ids.ts';
import type { Event } from '../../functions/core/model.ts';
import type { EventListQuery, EventLog, NewEvent } from '../../functions/core/ports.ts';
import { at, id, newEvent } from './fixtures.ts';

export interface EventLogSubject {
  log: EventLog;
  close(): Promise<void>;
}

export function eventLogContract(name: string, make: () => Promise<EventLogSubject>): void {
  describe(`EventLog contract: ${name}`, () => {
    let subject: EventLogSubject;
    let log: EventLog;
    const partnerId = id('ptr');
    const otherPartnerId = id('ptr');

    beforeEach(async () => {
      subject = await make();
      log = subject.log;
    });

    afterEach(async () => {
      await subject.close();
    });

    /** Appends one by one; the events as stored, with the ids the log gave them. */
    async function appendAll(drafts: NewEvent[]): Promise<Event[]> {
      const stored: Event[] = [];
      for (const draft of drafts) stored.push((await log.append(draft)).event);
      return stored;
    }

    async function append(draft: NewEvent): Promise<Event> {
      return (await log.append(draft)).event;
    }

    /** Follows `next` from the start until a page comes back empty. */
    async function readAll(query: Omit<EventListQuery, 'after'>): Promise<string[]> {
      const seen: string[] = [];
      let after: string | undefined;
      for (;;) {
        const page = await log.list(partnerId, after === undefined ? query : { ...query, after });
        if (page.items.length === 0) return seen;
        seen.push(...page.items.map((e) => e.id));
        after = page.next ?? undefined;
      }
    }

    describe('append and get', () => {
      it('returns the stored event with created true, and get reads it back unchanged', async () => {
        const draft = newEvent(partnerId, { idempotencyKey: 'order-1' });

        const result = await log.append(draft);

        expect(result).toEqual({ event: { ...draft, id: expect.any(String) }, created: true });
        expect(await log.get(partnerId, result.event.id)).toEqual(result.event);
      });

      it('gives each event a new id: a ULID of its createdAt', async () => {
        const createdAt = at(42);
        const [a, b] = await appendAll([
          newEvent(partnerId, { createdAt }),
          newEvent(partnerId, { createdAt }),
        ]);

        expect(a?.id).toMatch(/^evt_[0-9A-HJKMNP-TV-Z]{26}$/);
        expect(a?.id).not.toBe(b?.id);
        expect(idTime(a?.id ?? '')).toBe(Date.parse(createdAt));
      });

      it('round-trips any JSON payload and an absent idempotency key', async () => {
        const payloads = [{ nested: { list: [1, 'two', null, { deep: true }] } }, [1, 2], 'text', 42, null];
        for (const payload of payloads) {
          const event = await append(newEvent(partnerId, { payload }));
          const stored = await log.get(partnerId, event.id);
          expect(stored).toEqual(event);
          expect(stored).not.toHaveProperty('idempotencyKey');
        }
      });

      it('gets nothing for an unknown id', async () => {
        expect(await log.get(partnerId, id('evt'))).toBeUndefined();
      });

      it("never returns another partner's event from get", async () => {
        const event = await append(newEvent(otherPartnerId));

        expect(await log.get(partnerId, event.id)).toBeUndefined();
      });
    });

    describe('idempotency key', () => {
      it('stores nothing for a repeated key and returns the first event with created false', async () => {
        const first = await append(newEvent(partnerId, { idempotencyKey: 'k-1', payload: { n: 1 } }));

        const result = await log.append(newEvent(partnerId, { idempotencyKey: 'k-1', payload: { n: 2 } }));

        expect(result).toEqual({ event: first, created: false });
        expect((await log.list(partnerId, { limit: 10 })).items).toEqual([first]);
      });

      it('scopes keys to the partner', async () => {
        const theirs = await append(newEvent(otherPartnerId, { idempotencyKey: 'shared' }));
        const mine = newEvent(partnerId, { idempotencyKey: 'shared' });

        const result = await log.append(mine);
        expect(result).toEqual({ event: { ...mine, id: expect.any(String) }, created: true });
        expect(result.event.id).not.toBe(theirs.id);
      });

      it('never deduplicates events without a key', async () => {
        await appendAll([newEvent(partnerId), newEvent(partnerId)]);

        expect((await log.list(partnerId, { limit: 10 })).items).toHaveLength(2);
      });
    });

    describe('ordering key', () => {
      /** The keySeq of each event, in the order given. */
      const keySeqs = (events: readonly Event[]) => events.map((event) => event.keySeq);

      it('gives the first event of a key keySeq 1, and each later one of the key the next place', async () => {
        const events = await appendAll(
          [1, 2, 3].map((n) => newEvent(partnerId, { orderingKey: 'order-1', payload: { n } })),
        );

        expect(keySeqs(events)).toEqual([1, 2, 3]);
        for (const event of events) expect(event.orderingKey).toBe('order-1');
      });

      it('counts each key, and each partner’s same key, on its own', async () => {
        const events = await appendAll([
          newEvent(partnerId, { orderingKey: 'a' }),
          newEvent(partnerId, { orderingKey: 'b' }),
          newEvent(otherPartnerId, { orderingKey: 'a' }),
          newEvent(partnerId, { orderingKey: 'a' }),
          newEvent(partnerId),
          newEvent(otherPartnerId, { orderingKey: 'a' }),
          newEvent(partnerId, { orderingKey: 'b' }),
        ]);

        expect(events.map((event) => [event.partnerId, event.orderingKey, event.keySeq])).toEqual([
          [partnerId, 'a', 1],
          [partnerId, 'b', 1],
          [otherPartnerId, 'a', 1],
          [partnerId, 'a', 2],
          [partnerId, undefined, undefined],
          [otherPartnerId, 'a', 2],
          [partnerId, 'b', 2],
        ]);
      });

      it('gives an event without a key neither field, as appended, by get and by list', async () => {
        const event = await append(newEvent(partnerId));

        expect(event).not.toHaveProperty('orderingKey');
        expect(event).not.toHaveProperty('keySeq');
        expect(await log.get(partnerId, event.id)).toEqual(event);
        expect(await log.get(partnerId, event.id)).not.toHaveProperty('keySeq');
        expect((await log.list(partnerId, { limit: 10 })).items).toEqual([event]);
      });

      it('returns both fields by get and by list, in the partner’s order', async () => {
        const events = await appendAll([
          newEvent(partnerId, { orderingKey: 'k' }),
          newEvent(partnerId),
          newEvent(partnerId, { orderingKey: 'k' }),
        ]);

        for (const event of events) expect(await log.get(partnerId, event.id)).toEqual(event);
        expect((await log.list(partnerId, { limit: 10 })).items).toEqual(events);
        expect(events[2]).toMatchObject({ orderingKey: 'k', keySeq: 2 });
      });

      it('keeps the place the log gives, whatever keySeq the draft says', async () => {
        const event = await append(newEvent(partnerId, { orderingKey: 'k', keySeq: 7 }));

        expect(event.keySeq).toBe(1);
        expect(await log.get(partnerId, event.id)).toEqual(event);
      });

      it('takes keys of every allowed character, each its own', async () => {
        const keys = ['order#1', 'order/1', 'order:1', 'a#b/c:d@e+f=g.h_i-j', 'order'];
        const events = await appendAll(keys.map((orderingKey) => newEvent(partnerId, { orderingKey })));
        const again = await appendAll(keys.map((orderingKey) => newEvent(partnerId, { orderingKey })));

        expect(keySeqs(events)).toEqual(keys.map(() => 1));
        expect(keySeqs(again)).toEqual(keys.map(() => 2));
        for (const event of [...events, ...again]) expect(await log.get(partnerId, event.id)).toEqual(event);
      });

      it('returns the first event, with its keySeq, for a repeated idempotency key, and takes no place for it', async () => {
        const first = await append(newEvent(partnerId, { orderingKey: 'k', idempotencyKey: 'i-1' }));

        const repeat = await log.append(newEvent(partnerId, { orderingKey: 'k', idempotencyKey: 'i-1' }));
        const next = await append(newEvent(partnerId, { orderingKey: 'k' }));

        expect(repeat).toEqual({ event: first, created: false });
        expect(first.keySeq).toBe(1);
        expect(next.keySeq).toBe(2);
      });

      it('gives appends of one key made together the places 1 to 20, each once', async () => {
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, n) =>
            log.append(newEvent(partnerId, { orderingKey: 'k', payload: { n } })),
          ),
        );

        expect(results.map((result) => result.event.keySeq).toSorted((a = 0, b = 0) => a - b)).toEqual(
          Array.from({ length: 20 }, (_, i) => i + 1),
        );
        const listed = (await log.list(partnerId, { limit: 50 })).items;
        expect(listed.map((event) => event.keySeq).toSorted((a = 0, b = 0) => a - b)).toEqual(
          Array.from({ length: 20 }, (_, i) => i + 1),
        );
      });

      it('gives appends of one key made together their places in the order they were made', async () => {
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, n) =>
            log.append(newEvent(partnerId, { orderingKey: 'k', payload: { n } })),
          ),
        );

        expect(results.map((result) => result.event.keySeq)).toEqual(
          Array.from({ length: 20 }, (_, i) => i + 1),
        );
      });

      it('counts the keys of appends made together on their own', async () => {
        const results = await Promise.all(
          Array.from({ length: 12 }, (_, n) =>
            log.append(newEvent(partnerId, { orderingKey: `k${n % 3}`, payload: { n } })),
          ),
        );

        for (const key of ['k0', 'k1', 'k2']) {
          const seqs = results
            .filter((result) => result.event.orderingKey === key)
            .map((result) => result.event.keySeq);
          expect(seqs, key).toEqual([1, 2, 3, 4]);
        }
      });
    });

    describe('list', () => {
      it('returns the partner’s events in append order, never another partner’s', async () => {
        const [a, , b, c] = await appendAll([
          newEvent(partnerId),
          newEvent(otherPartnerId),
          newEvent(partnerId),
          newEvent(partnerId),
        ]);

        const page = await log.list(partnerId, { limit: 10 });

        expect(page.items).toEqual([a, b, c]);
      });

      it('returns only events created at or after `since`, still in append order', async () => {
        const events = await appendAll(
          [0, 10, 20, 30].map((seconds) => newEvent(partnerId, { createdAt: at(seconds) })),
        );

        const page = await log.list(partnerId, { limit: 10, since: at(10) });

        expect(page.items.map((e) => e.id)).toEqual(events.slice(1).map((e) => e.id));
        expect((await log.list(partnerId, { limit: 1, since: at(15) })).items).toEqual([events[2]]);
      });

      it.each([
        ['whole seconds', '2025-01-01T00:00:10Z'],
        ['milliseconds', '2025-01-01T00:00:10.000Z'],
        ['microseconds', '2025-01-01T00:00:10.000000Z'],
        ['an offset', '2025-01-01T02:00:10+02:00'],
        ['a negative offset with fractions', '2024-12-31T19:30:10.0-04:30'],
      ])('compares `since` as an instant, given with %s', async (_, since) => {
        // 10.5 s sorts before "10Z" as text ('.' < 'Z'): only a comparison of instants keeps it.
        const [, exact, later] = await appendAll([
          newEvent(partnerId, { createdAt: '2025-01-01T00:00:09.999Z' }),
          newEvent(partnerId, { createdAt: '2025-01-01T00:00:10.000Z' }),
          newEvent(partnerId, { createdAt: '2025-01-01T00:00:10.500Z' }),
        ]);

        const page = await log.list(partnerId, { limit: 10, since });

        expect(page.items.map((e) => e.id)).toEqual([exact?.id, later?.id]);
      });

      it('pages with limit and next, visiting every event exactly once', async () => {
        const events = await appendAll(Array.from({ length: 7 }, () => newEvent(partnerId)));

        const first = await log.list(partnerId, { limit: 3 });
        expect(first.items.map((e) => e.id)).toEqual(events.slice(0, 3).map((e) => e.id));
        expect(first.next).toBe(events[2]?.id);
        expect(await readAll({ limit: 3 })).toEqual(events.map((e) => e.id));
      });

      it('sets next to the last returned id on a partial page, so a poller resumes there', async () => {
        const events = await appendAll([newEvent(partnerId), newEvent(partnerId)]);

        const page = await log.list(partnerId, { limit: 10 });

        expect(page.next).toBe(events[1]?.id);
      });

      it('echoes the cursor as next when nothing new has arrived, and then returns what arrives', async () => {
        const first = await append(newEvent(partnerId));

        const empty = await log.list(partnerId, { after: first.id, limit: 10 });
        expect(empty).toEqual({ items: [], next: first.id });

        const later = await append(newEvent(partnerId));
        const page = await log.list(partnerId, { after: empty.next ?? first.id, limit: 10 });
        expect(page).toEqual({ items: [later], next: later.id });
      });

      it('returns next null for an empty log without a cursor', async () => {
        expect(await log.list(partnerId, { limit: 10 })).toEqual({ items: [], next: null });
      });

      it('filters by types, across pages', async () => {
        const types = ['order.created', 'invoice.paid', 'order.created', 'order.shipped', 'invoice.paid'];
        const events = await appendAll(types.map((type) => newEvent(partnerId, { type })));

        const wanted = events.filter((e) => e.type !== 'order.created').map((e) => e.id);
        expect(await readAll({ limit: 2, types: ['invoice.paid', 'order.shipped'] })).toEqual(wanted);
      });

      it('treats an empty types list as every type', async () => {
        await appendAll([newEvent(partnerId, { type: 'a.b' }), newEvent(partnerId, { type: 'c.d' })]);

        expect((await log.list(partnerId, { limit: 10, types: [] })).items).toHaveLength(2);
      });

      it('returns an event committed after the cursor even when its id sorts before it', async () => {
        const newer = await append(newEvent(partnerId, { createdAt: at(60) }));
        // Created earlier (a slower writer), committed later.
        const older = await append(newEvent(partnerId, { createdAt: at(0) }));
        expect(older.id < newer.id).toBe(true);

        const page = await log.list(partnerId, { after: newer.id, limit: 10 });

        expect(page.items).toEqual([older]);
      });

      it('rejects an unknown cursor with CursorNotFoundError', async () => {
        await log.append(newEvent(partnerId));

        await expect(log.list(partnerId, { after: id('evt'), limit: 10 })).rejects.toBeInstanceOf(
          CursorNotFoundError,
        );
      });

      it("rejects another partner's event as cursor with CursorNotFoundError", async () => {
        const theirs = await append(newEvent(otherPartnerId));

        await expect(log.list(partnerId, { after: theirs.id, limit: 10 })).rejects.toBeInstanceOf(
          CursorNotFoundError,
        );
      });
    });

    describe('latestCursor and countAfter', () => {
      it('has no latest cursor, and nothing to count, for an empty log', async () => {
        await append(newEvent(otherPartnerId));
        expect(await log.latestCursor(partnerId)).toBeNull();
        expect(await log.countAfter(partnerId, null)).toBe(0);
      });

      it('puts the latest cursor after every event so far: only later ones are listed after it', async () => {
        await appendAll([newEvent(partnerId), newEvent(partnerId)]);
        const cursor = await log.latestCursor(partnerId);
        expect(cursor).not.toBeNull();
        expect((await log.list(partnerId, { after: cursor ?? '', limit: 10 })).items).toEqual([]);
        expect(await log.countAfter(partnerId, cursor)).toBe(0);
        const later = await append(newEvent(partnerId));
        expect((await log.list(partnerId, { after: cursor ?? '', limit: 10 })).items).toEqual([later]);
        expect(await log.countAfter(partnerId, cursor)).toBe(1);
      });

      it("counts the partner's events after a cursor, of every type, and none of another partner's", async () => {
        const [first] = await appendAll([
          newEvent(partnerId, { type: 'order.created' }),
          newEvent(partnerId, { type: 'invoice.paid' }),
          newEvent(otherPartnerId),
          newEvent(partnerId, { type: 'order.created' }),
        ]);
        expect(await log.countAfter(partnerId, null)).toBe(3);
        expect(await log.countAfter(partnerId, first?.id ?? null)).toBe(2);
        await expect(log.countAfter(partnerId, id('evt'))).rejects.toBeInstanceOf(CursorNotFoundError);
      });
    });
  });
}
