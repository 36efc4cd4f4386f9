/** The ConsumerStore contract: every adapter runs this suite (see sqlite.test.ts). */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Consumer } from '../../functions/core/model.ts';
import type { ConsumerStore } from '../../functions/core/ports.ts';
import { at, id } from './fixtures.ts';

export interface ConsumerStoreSubject {
  consumers: ConsumerStore;
  close(): Promise<void>;
}

function makeConsumer(partnerId: string, name: string, overrides: Partial<Consumer> = {}): Consumer {
  return { partnerId, name, types: [], createdAt: at(), updatedAt: at(), ...overrides };
}

export function consumerStoreContract(name: string, make: () => Promise<ConsumerStoreSubject>): void {
  describe(`ConsumerStore contract: ${name}`, () => {
    let subject: ConsumerStoreSubject;
    let consumers: ConsumerStore;
    const partnerId = id('ptr');
    const otherPartnerId = id('ptr');

    beforeEach(async () => {
      subject = await make();
      consumers = subject.consumers;
    });

    afterEach(async () => {
      await subject.close();
    });

    it('creates a consumer, reads it back, then replaces it in place', async () => {
      const consumer = makeConsumer(partnerId, 'billing', { types: ['order.created'] });
      expect(await consumers.save(consumer, { maxPerPartner: 5 })).toBe('created');
      expect(await consumers.get(partnerId, 'billing')).toEqual(consumer);

      const moved = {
        ...consumer,
        types: [],
        position: { eventId: id('evt'), createdAt: at(5) },
        updatedAt: at(6),
      };
      expect(await consumers.save(moved, { maxPerPartner: 5 })).toBe('replaced');
      expect(await consumers.get(partnerId, 'billing')).toEqual(moved);
    });

    it('changes only the types of a consumer saved keeping its position, so a commit made meanwhile stands', async () => {
      const consumer = makeConsumer(partnerId, 'billing');
      await consumers.save(consumer, { maxPerPartner: 5 });
      const position = { eventId: id('evt'), createdAt: at(3) };
      await consumers.commit(partnerId, 'billing', position, at(4));
      // Saved from a copy read before the commit, without its position.
      expect(
        await consumers.save(
          { ...consumer, types: ['a.b'], updatedAt: at(5) },
          { maxPerPartner: 5, keepPosition: true },
        ),
      ).toBe('replaced');
      expect(await consumers.get(partnerId, 'billing')).toEqual({
        ...consumer,
        types: ['a.b'],
        position,
        updatedAt: at(5),
      });
    });

    it("keeps partners apart: the same name is another partner's consumer", async () => {
      await consumers.save(makeConsumer(partnerId, 'billing'), { maxPerPartner: 5 });
      expect(await consumers.get(otherPartnerId, 'billing')).toBeUndefined();
      expect(await consumers.save(makeConsumer(otherPartnerId, 'billing'), { maxPerPartner: 5 })).toBe(
        'created',
      );
      expect(
        await consumers.commit(otherPartnerId, 'nope', { eventId: id('evt'), createdAt: at() }, at()),
      ).toBe(false);
      expect(await consumers.delete(otherPartnerId, 'billing')).toBe(true);
      expect(await consumers.get(partnerId, 'billing')).toBeDefined();
    });

    it('commits a position, and only to a consumer that exists', async () => {
      await consumers.save(makeConsumer(partnerId, 'search'), { maxPerPartner: 5 });
      const position = { eventId: id('evt'), createdAt: at(9) };
      expect(await consumers.commit(partnerId, 'search', position, at(10))).toBe(true);
      expect(await consumers.get(partnerId, 'search')).toMatchObject({ position, updatedAt: at(10) });
      expect(await consumers.commit(partnerId, 'other', position, at(10))).toBe(false);
      expect(await consumers.get(partnerId, 'other')).toBeUndefined();
    });

    it('lists by name, page after page', async () => {
      for (const n of ['c', 'a', 'e', 'b', 'd'])
        await consumers.save(makeConsumer(partnerId, n), { maxPerPartner: 10 });
      await consumers.save(makeConsumer(otherPartnerId, 'z'), { maxPerPartner: 10 });
      const first = await consumers.list(partnerId, { limit: 2 });
      expect(first.items.map((c) => c.name)).toEqual(['a', 'b']);
      expect(first.next).toBe('b');
      const second = await consumers.list(partnerId, { limit: 2, after: 'b' });
      expect(second.items.map((c) => c.name)).toEqual(['c', 'd']);
      const last = await consumers.list(partnerId, { limit: 2, after: 'd' });
      expect(last).toEqual({ items: [expect.objectContaining({ name: 'e' })], next: null });
    });

    it('holds the cap on new consumers, concurrent saves included, while replacing stays possible', async () => {
      const results = await Promise.all(
        ['a', 'b', 'c', 'd', 'e', 'f'].map((n) =>
          consumers.save(makeConsumer(partnerId, n), { maxPerPartner: 4 }),
        ),
      );
      expect(results.filter((r) => r === 'created')).toHaveLength(4);
      expect(results.filter((r) => r === 'limit')).toHaveLength(2);
      const [kept] = (await consumers.list(partnerId, { limit: 10 })).items;
      expect(await consumers.save({ ...(kept as Consumer), types: ['x.y'] }, { maxPerPartner: 4 })).toBe(
        'replaced',
      );
      expect(await consumers.delete(partnerId, kept?.name ?? '')).toBe(true);
      expect(await consumers.save(makeConsumer(partnerId, 'g'), { maxPerPartner: 4 })).toBe('created');
      expect((await consumers.list(partnerId, { limit: 10 })).items).toHaveLength(4);
    });

    it('deletes a consumer once', async () => {
      await consumers.save(makeConsumer(partnerId, 'billing'), { maxPerPartner: 5 });
      expect(await consumers.delete(partnerId, 'billing')).toBe(true);
      expect(await consumers.delete(partnerId, 'billing')).toBe(false);
      expect(await consumers.get(partnerId, 'billing')).toBeUndefined();
    });
  });
}
