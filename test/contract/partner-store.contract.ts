/** The PartnerStore contract: every adapter runs this suite (see sqlite.test.ts). */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PartnerStore } from '../../functions/core/ports.ts';
import { id, makePartner } from './fixtures.ts';

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
      it('reads a created partner back unchanged', async () => {
        const partner = makePartner();
        await partners.create(partner, 'hash-1');

        expect(await partners.get(partner.id)).toEqual(partner);
      });

      it('gets nothing for an unknown id', async () => {
        expect(await partners.get(id('ptr'))).toBeUndefined();
      });
    });

    describe('findByApiKeyHash', () => {
      it('finds the partner owning the hash, and only that one', async () => {
        const acme = makePartner({ name: 'Acme' });
        const globex = makePartner({ name: 'Globex' });
        await partners.create(acme, 'hash-acme');
        await partners.create(globex, 'hash-globex');

        expect(await partners.findByApiKeyHash('hash-globex')).toEqual(globex);
        expect(await partners.findByApiKeyHash('hash-acme')).toEqual(acme);
      });

      it('finds nothing for an unknown hash', async () => {
        await partners.create(makePartner(), 'hash-1');

        expect(await partners.findByApiKeyHash('hash-2')).toBeUndefined();
      });

      it('rejects a second partner with the same hash, so a key identifies one partner', async () => {
        const first = makePartner();
        await partners.create(first, 'hash-1');

        await expect(partners.create(makePartner(), 'hash-1')).rejects.toThrow();
        expect(await partners.findByApiKeyHash('hash-1')).toEqual(first);
      });
    });
  });
}
