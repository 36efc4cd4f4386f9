/** The PartnerStore contract: every adapter runs this suite (see sqlite.test.ts). */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PartnerStore } from '../../functions/core/ports.ts';
import { at, id, makeApiKey, makePartner } from './fixtures.ts';

export interface PartnerStoreSubject {
  partners: PartnerStore;
  close(): Promise<void>;
}

export function partnerStoreContract(name: string, make: () => Promise<PartnerStoreSubject>): void {
  describe(`PartnerStore contract: ${name}`, () => {
    let subject: PartnerStoreSubject;
    let partners: PartnerStore;

    beforeEach(async () => {
      subject = await make();
      partners = subject.partners;
    });

    afterEach(async () => {
      await subject.close();
    });

    describe('create and get', () => {
      it('reads a created partner back unchanged, with its first key', async () => {
        const partner = makePartner();
        const key = makeApiKey(partner.id);
        await partners.create(partner, key);

        expect(await partners.get(partner.id)).toEqual(partner);
        expect(await partners.listApiKeys(partner.id)).toEqual([key]);
      });

      it('gets nothing for an unknown id', async () => {
        expect(await partners.get(id('ptr'))).toBeUndefined();
        expect(await partners.listApiKeys(id('ptr'))).toEqual([]);
      });
    });

    describe('findApiKey', () => {
      it("finds the key's record by its hash, and only that one", async () => {
        const acme = makePartner({ name: 'Acme' });
        const globex = makePartner({ name: 'Globex' });
        const acmeKey = makeApiKey(acme.id);
        const globexKey = makeApiKey(globex.id);
        await partners.create(acme, acmeKey);
        await partners.create(globex, globexKey);

        expect(await partners.findApiKey(globexKey.hash)).toEqual(globexKey);
        expect(await partners.findApiKey(acmeKey.hash)).toEqual(acmeKey);
      });

      it('finds nothing for an unknown hash', async () => {
        await partners.create(makePartner(), makeApiKey(id('ptr')));

        expect(await partners.findApiKey(makeApiKey(id('ptr')).hash)).toBeUndefined();
      });

      it('rejects a second partner with the same hash, so a key identifies one partner', async () => {
        const first = makePartner();
        const key = makeApiKey(first.id);
        await partners.create(first, key);
        const second = makePartner();

        await expect(partners.create(second, { ...key, partnerId: second.id })).rejects.toThrow();
        expect(await partners.findApiKey(key.hash)).toEqual(key);
        expect(await partners.get(second.id)).toBeUndefined();
      });
    });

    describe('addApiKey, listApiKeys and removeApiKey', () => {
      it('adds keys up to the cap, lists them oldest first, and finds each', async () => {
        const partner = makePartner();
        const first = makeApiKey(partner.id, { createdAt: at(0) });
        await partners.create(partner, first);
        const second = makeApiKey(partner.id, { name: 'billing', createdAt: at(2) });
        const third = makeApiKey(partner.id, { name: 'reports', createdAt: at(1) });

        expect(await partners.addApiKey(second, { maxPerPartner: 3 })).toBe('done');
        expect(await partners.addApiKey(third, { maxPerPartner: 3 })).toBe('done');
        expect(await partners.addApiKey(makeApiKey(partner.id), { maxPerPartner: 3 })).toBe('limit');

        expect(await partners.listApiKeys(partner.id)).toEqual([first, third, second]);
        expect(await partners.findApiKey(second.hash)).toEqual(second);
      });

      it('adds no key to a partner that does not exist', async () => {
        const key = makeApiKey(id('ptr'));
        expect(await partners.addApiKey(key, { maxPerPartner: 5 })).toBe('no-partner');
        expect(await partners.findApiKey(key.hash)).toBeUndefined();
      });

      it('holds the cap under concurrent adds', async () => {
        const partner = makePartner();
        await partners.create(partner, makeApiKey(partner.id));
        const results = await Promise.all(
          Array.from({ length: 6 }, () => partners.addApiKey(makeApiKey(partner.id), { maxPerPartner: 4 })),
        );

        expect(results.filter((r) => r === 'done')).toHaveLength(3);
        expect(await partners.listApiKeys(partner.id)).toHaveLength(4);
      });

      it('removes a key: it is found no more, and the others stay', async () => {
        const partner = makePartner();
        const first = makeApiKey(partner.id);
        const second = makeApiKey(partner.id, { createdAt: at(1) });
        await partners.create(partner, first);
        await partners.addApiKey(second, { maxPerPartner: 5 });

        expect(await partners.removeApiKey(partner.id, first.id, { keepLast: true })).toBe('done');
        expect(await partners.findApiKey(first.hash)).toBeUndefined();
        expect(await partners.listApiKeys(partner.id)).toEqual([second]);
      });

      it('keeps the last key when asked to, and removes it when not', async () => {
        const partner = makePartner();
        const key = makeApiKey(partner.id);
        await partners.create(partner, key);

        expect(await partners.removeApiKey(partner.id, key.id, { keepLast: true })).toBe('last');
        expect(await partners.findApiKey(key.hash)).toEqual(key);
        expect(await partners.removeApiKey(partner.id, key.id, { keepLast: false })).toBe('done');
        expect(await partners.listApiKeys(partner.id)).toEqual([]);
        // A partner with no key can be given one again.
        const next = makeApiKey(partner.id);
        expect(await partners.addApiKey(next, { maxPerPartner: 5 })).toBe('done');
        expect(await partners.listApiKeys(partner.id)).toEqual([next]);
      });

      it("removes nothing of another partner's, nor a key it does not have", async () => {
        const acme = makePartner();
        const globex = makePartner();
        const acmeKey = makeApiKey(acme.id);
        await partners.create(acme, acmeKey);
        await partners.create(globex, makeApiKey(globex.id));
        await partners.addApiKey(makeApiKey(globex.id), { maxPerPartner: 5 });

        expect(await partners.removeApiKey(globex.id, acmeKey.id, { keepLast: false })).toBe('not-found');
        expect(await partners.removeApiKey(acme.id, makeApiKey(acme.id).id, { keepLast: false })).toBe(
          'not-found',
        );
        expect(await partners.findApiKey(acmeKey.hash)).toEqual(acmeKey);
      });
    });

    describe('touchApiKey', () => {
      it('records the last use once per precision, never going back', async () => {
        const partner = makePartner();
        const key = makeApiKey(partner.id);
        await partners.create(partner, key);

        await partners.touchApiKey(key, at(600), at(300));
        expect((await partners.findApiKey(key.hash))?.lastUsedAt).toBe(at(600));
        // Still fresh: a use 100 s later, with "stale" meaning before 400 s, writes nothing.
        await partners.touchApiKey(key, at(700), at(400));
        expect((await partners.findApiKey(key.hash))?.lastUsedAt).toBe(at(600));
        // Stale now.
        await partners.touchApiKey(key, at(1000), at(700));
        expect((await partners.listApiKeys(partner.id))[0]?.lastUsedAt).toBe(at(1000));
      });

      it('leaves a revoked key revoked', async () => {
        const partner = makePartner();
        const key = makeApiKey(partner.id);
        await partners.create(partner, key);
        await partners.removeApiKey(partner.id, key.id, { keepLast: false });

        await partners.touchApiKey(key, at(600), at(300));
        expect(await partners.findApiKey(key.hash)).toBeUndefined();
      });
    });
  });
}
