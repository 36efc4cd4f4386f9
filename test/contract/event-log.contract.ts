/** The EventLog contract: every adapter runs this suite (see sqlite.test.ts). */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CursorNotFoundError } from '../../functions/core/errors.ts';
import type { Event } from '../../functions/core/model.ts';
import type { EventListQuery, EventLog } from '../../functions/ports.ts';
import { at, id, makeEvent } from './fixtures.ts';

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

    async function appendAll(events: Event[]): Promise<void> {
      for (const event of events) await log.append(event);
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
        const event = makeEvent(partnerId, { idempotencyKey: 'order-1' });

        const result = await log.append(event);

        expect(result).toEqual({ event, created: true });
        expect(await log.get(partnerId, event.id)).toEqual(event);
      });

      it('round-trips any JSON payload and an absent idempotency key', async () => {
        const payloads = [{ nested: { list: [1, 'two', null, { deep: true }] } }, [1, 2], 'text', 42, null];
        for (const payload of payloads) {
          const event = makeEvent(partnerId, { payload });
          await log.append(event);
          const stored = await log.get(partnerId, event.id);
          expect(stored).toEqual(event);
          expect(stored).not.toHaveProperty('idempotencyKey');
        }
      });

      it('gets nothing for an unknown id', async () => {
        expect(await log.get(partnerId, id('evt'))).toBeUndefined();
      });

      it("never returns another partner's event from get", async () => {
        const event = makeEvent(otherPartnerId);
        await log.append(event);

        expect(await log.get(partnerId, event.id)).toBeUndefined();
      });
    });

    describe('idempotency key', () => {
      it('stores nothing for a repeated key and returns the first event with created false', async () => {
        const first = makeEvent(partnerId, { idempotencyKey: 'k-1', payload: { n: 1 } });
        const second = makeEvent(partnerId, { idempotencyKey: 'k-1', payload: { n: 2 } });
        await log.append(first);

        const result = await log.append(second);

        expect(result).toEqual({ event: first, created: false });
        expect(await log.get(partnerId, second.id)).toBeUndefined();
        expect((await log.list(partnerId, { limit: 10 })).items).toEqual([first]);
      });

      it('scopes keys to the partner', async () => {
        await log.append(makeEvent(otherPartnerId, { idempotencyKey: 'shared' }));
        const mine = makeEvent(partnerId, { idempotencyKey: 'shared' });

        expect(await log.append(mine)).toEqual({ event: mine, created: true });
      });

      it('never deduplicates events without a key', async () => {
        await appendAll([makeEvent(partnerId), makeEvent(partnerId)]);

        expect((await log.list(partnerId, { limit: 10 })).items).toHaveLength(2);
      });
    });

    describe('list', () => {
      it('returns the partner’s events in append order, never another partner’s', async () => {
        const [a, b, c] = [makeEvent(partnerId), makeEvent(partnerId), makeEvent(partnerId)] as const;
        await appendAll([a, makeEvent(otherPartnerId), b, c]);

        const page = await log.list(partnerId, { limit: 10 });

        expect(page.items).toEqual([a, b, c]);
      });

      it('returns only events created at or after `since`, still in append order', async () => {
        const events = [0, 10, 20, 30].map((seconds) => makeEvent(partnerId, { createdAt: at(seconds) }));
        await appendAll(events);

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
        const early = makeEvent(partnerId, { createdAt: '2025-01-01T00:00:09.999Z' });
        const exact = makeEvent(partnerId, { createdAt: '2025-01-01T00:00:10.000Z' });
        const later = makeEvent(partnerId, { createdAt: '2025-01-01T00:00:10.500Z' });
        for (const event of [early, exact, later]) await log.append(event);

        const page = await log.list(partnerId, { limit: 10, since });

        expect(page.items.map((e) => e.id)).toEqual([exact.id, later.id]);
      });

      it('pages with limit and next, visiting every event exactly once', async () => {
        const events = Array.from({ length: 7 }, () => makeEvent(partnerId));
        await appendAll(events);

        const first = await log.list(partnerId, { limit: 3 });
        expect(first.items.map((e) => e.id)).toEqual(events.slice(0, 3).map((e) => e.id));
        expect(first.next).toBe(events[2]?.id);
        expect(await readAll({ limit: 3 })).toEqual(events.map((e) => e.id));
      });

      it('sets next to the last returned id on a partial page, so a poller resumes there', async () => {
        const events = [makeEvent(partnerId), makeEvent(partnerId)];
        await appendAll(events);

        const page = await log.list(partnerId, { limit: 10 });

        expect(page.next).toBe(events[1]?.id);
      });

      it('echoes the cursor as next when nothing new has arrived, and then returns what arrives', async () => {
        const first = makeEvent(partnerId);
        await log.append(first);

        const empty = await log.list(partnerId, { after: first.id, limit: 10 });
        expect(empty).toEqual({ items: [], next: first.id });

        const later = makeEvent(partnerId);
        await log.append(later);
        const page = await log.list(partnerId, { after: empty.next ?? first.id, limit: 10 });
        expect(page).toEqual({ items: [later], next: later.id });
      });

      it('returns next null for an empty log without a cursor', async () => {
        expect(await log.list(partnerId, { limit: 10 })).toEqual({ items: [], next: null });
      });

      it('filters by types, across pages', async () => {
        const types = ['order.created', 'invoice.paid', 'order.created', 'order.shipped', 'invoice.paid'];
        const events = types.map((type) => makeEvent(partnerId, { type }));
        await appendAll(events);

        const wanted = events.filter((e) => e.type !== 'order.created').map((e) => e.id);
        expect(await readAll({ limit: 2, types: ['invoice.paid', 'order.shipped'] })).toEqual(wanted);
      });

      it('treats an empty types list as every type', async () => {
        await appendAll([makeEvent(partnerId, { type: 'a.b' }), makeEvent(partnerId, { type: 'c.d' })]);

        expect((await log.list(partnerId, { limit: 10, types: [] })).items).toHaveLength(2);
      });

      it('returns an event committed after the cursor even when its id sorts before it', async () => {
        const newer = makeEvent(partnerId, { id: id('evt', Date.parse(at(60))) });
        await log.append(newer);
        // Minted earlier (a slower writer), committed later.
        const older = makeEvent(partnerId, { id: id('evt', Date.parse(at(0))) });
        await log.append(older);

        const page = await log.list(partnerId, { after: newer.id, limit: 10 });

        expect(page.items).toEqual([older]);
      });

      it('rejects an unknown cursor with CursorNotFoundError', async () => {
        await log.append(makeEvent(partnerId));

        await expect(log.list(partnerId, { after: id('evt'), limit: 10 })).rejects.toBeInstanceOf(
          CursorNotFoundError,
        );
      });

      it("rejects another partner's event as cursor with CursorNotFoundError", async () => {
        const theirs = makeEvent(otherPartnerId);
        await log.append(theirs);

        await expect(log.list(partnerId, { after: theirs.id, limit: 10 })).rejects.toBeInstanceOf(
          CursorNotFoundError,
        );
      });
    });
  });
}
