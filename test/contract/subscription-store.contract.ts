/** The SubscriptionStore contract: every adapter runs this suite (see sqlite.test.ts). */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SecretUnreadableError } from '../../functions/adapters/secrets/sealed.ts';
import { StaleWriteError, SubscriptionLimitError } from '../../functions/core/errors.ts';
import type { Subscription } from '../../functions/core/model.ts';
import type { ListQuery, SubscriptionStore } from '../../functions/core/ports.ts';
import { generateSigningKey } from '../../functions/core/signing.ts';
import { at, id, makeSubscription } from './fixtures.ts';

export interface SubscriptionStoreSubject {
  subscriptions: SubscriptionStore;
  /** The signing secrets as the store keeps them for a subscription: its list, as written. */
  storedSecrets(subscriptionId: string): Promise<unknown>;
  /** Writes the secrets as a store written before sealing kept them: in the clear. */
  storeClearSecrets(subscriptionId: string, secrets: Subscription['secrets']): Promise<void>;
  close(): Promise<void>;
}

export function subscriptionStoreContract(name: string, make: () => Promise<SubscriptionStoreSubject>): void {
  describe(`SubscriptionStore contract: ${name}`, () => {
    let subject: SubscriptionStoreSubject;
    let subscriptions: SubscriptionStore;
    const partnerId = id('ptr');
    const otherPartnerId = id('ptr');

    beforeEach(async () => {
      subject = await make();
      subscriptions = subject.subscriptions;
    });

    afterEach(async () => {
      await subject.close();
    });

    /** Subscriptions created one second apart, so their ids sort in creation order. */
    function series(count: number, owner = partnerId): Subscription[] {
      return Array.from({ length: count }, (_, i) =>
        makeSubscription(owner, { id: id('sub', Date.parse(at(i))), createdAt: at(i), updatedAt: at(i) }),
      );
    }

    async function putAll(items: Subscription[]): Promise<void> {
      for (const item of items) await subscriptions.put(item);
    }

    async function readAll(query: Omit<ListQuery, 'after'>): Promise<string[]> {
      const seen: string[] = [];
      let after: string | undefined;
      do {
        const page = await subscriptions.list(partnerId, after === undefined ? query : { ...query, after });
        seen.push(...page.items.map((s) => s.id));
        after = page.next ?? undefined;
      } while (after !== undefined);
      return seen;
    }

    describe('signing secrets at rest', () => {
      const secrets = [
        { secret: 'whsec_bmV3ZXN0LXNlY3JldC1vZi1hbGwtb2YtdGhlbQ', createdAt: at(10) },
        { secret: 'whsec_b2xkZXItc2VjcmV0LXN0aWxsLXNpZ25pbmc', createdAt: at(0), expiresAt: at(86_400) },
      ];

      it('keeps every secret sealed, whichever way the subscription was written', async () => {
        const created = makeSubscription(partnerId, { secrets });
        await subscriptions.create(created, { maxPerPartner: 10 });
        const put = makeSubscription(partnerId, { secrets });
        await subscriptions.put(put);
        await subscriptions.put({ ...put, updatedAt: at(5) }, { expectedUpdatedAt: put.updatedAt });
        for (const sub of [created, put]) {
          const stored = JSON.stringify(await subject.storedSecrets(sub.id));
          expect(stored).toContain('sealed.');
          for (const { secret } of secrets) expect(stored).not.toContain(secret.slice('whsec_'.length));
          expect((await subscriptions.get(sub.id))?.secrets).toEqual(secrets);
        }
      });

      it('lists a subscription whose secrets do not open with none, beside the others; get fails on it', async () => {
        const unreadable = makeSubscription(partnerId, { secrets });
        const fine = makeSubscription(partnerId, { secrets });
        await subscriptions.put(unreadable);
        await subscriptions.put(fine);
        // Sealed with a key the store's cipher does not hold.
        await subject.storeClearSecrets(unreadable.id, [
          { secret: 'sealed.local.k000000000000.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA', createdAt: at(0) },
        ]);
        const listed = await subscriptions.listActive(partnerId);
        expect(listed.find((s) => s.id === unreadable.id)?.secrets).toEqual([]);
        expect(listed.find((s) => s.id === fine.id)?.secrets).toEqual(secrets);
        await expect(subscriptions.get(unreadable.id)).rejects.toThrow(SecretUnreadableError);
      });

      it('reads secrets an older store kept in the clear, and seals them at the next write', async () => {
        const sub = makeSubscription(partnerId, { secrets });
        await subscriptions.put(sub);
        await subject.storeClearSecrets(sub.id, secrets);
        expect(JSON.stringify(await subject.storedSecrets(sub.id))).toContain(secrets[0]?.secret);
        const read = await subscriptions.get(sub.id);
        expect(read?.secrets).toEqual(secrets);
        if (read)
          await subscriptions.put({ ...read, updatedAt: at(7) }, { expectedUpdatedAt: read.updatedAt });
        expect(JSON.stringify(await subject.storedSecrets(sub.id))).not.toContain('whsec_');
      });
    });

    describe('put and get', () => {
      it('keeps a connection subscription: no url, its transport, through create, put, list and describe', async () => {
        const { url: _, ...withoutUrl } = makeSubscription(partnerId);
        const subscription: Subscription = { ...withoutUrl, transport: 'connection' };
        await subscriptions.create(subscription, { maxPerPartner: 10 });
        expect(await subscriptions.get(subscription.id)).toEqual(subscription);
        const changed = { ...subscription, description: 'behind the firewall', updatedAt: at(5) };
        await subscriptions.put(changed, { expectedUpdatedAt: subscription.updatedAt });
        expect(await subscriptions.get(subscription.id)).toEqual(changed);
        expect((await subscriptions.list(partnerId, { limit: 10 })).items).toEqual([changed]);
        const { secrets: __, ...record } = changed;
        expect(await subscriptions.describe(subscription.id)).toEqual(record);
      });

      it('keeps a payload filter exactly, through create, get, list and describe, and drops it when put without', async () => {
        const filter = {
          type: [{ prefix: 'order.' }],
          payload: {
            total: [{ numeric: ['>', 0.5, '<=', 1e21] }],
            note: [null, '', { 'anything-but': { 'equals-ignore-case': ['x', 'Y'] } }],
            $or: [{ vip: [true] }, { 'anything-but': [{ exists: false }] }],
          },
        };
        const subscription = makeSubscription(partnerId, { filter });
        await subscriptions.create(subscription, { maxPerPartner: 10 });
        expect((await subscriptions.get(subscription.id))?.filter).toEqual(filter);
        expect((await subscriptions.list(partnerId, { limit: 10 })).items[0]?.filter).toEqual(filter);
        expect((await subscriptions.describe(subscription.id))?.filter).toEqual(filter);
        const { filter: _, ...without } = subscription;
        await subscriptions.put(
          { ...without, updatedAt: at(5) },
          { expectedUpdatedAt: subscription.updatedAt },
        );
        expect((await subscriptions.get(subscription.id))?.filter).toBeUndefined();
      });

      it('keeps ordering and a transformation, through create, get, list and describe, and drops the transformation when put without', async () => {
        const transformation = { jsonata: '{"order": payload.orderId, "note": "a \\"quoted\\" ünïcode"}' };
        const subscription = makeSubscription(partnerId, { ordering: 'key', transformation });
        await subscriptions.create(subscription, { maxPerPartner: 10 });
        for (const read of [
          await subscriptions.get(subscription.id),
          (await subscriptions.list(partnerId, { limit: 10 })).items[0],
          await subscriptions.describe(subscription.id),
        ]) {
          expect(read?.ordering).toBe('key');
          expect(read?.transformation).toEqual(transformation);
        }
        const { transformation: _, ...without } = subscription;
        await subscriptions.put(
          { ...without, updatedAt: at(5) },
          { expectedUpdatedAt: subscription.updatedAt },
        );
        const after = await subscriptions.get(subscription.id);
        expect(after?.transformation).toBeUndefined();
        expect(after?.ordering).toBe('key');
      });

      it('keeps an ed25519 subscription: its scheme, and its signing keys sealed like secrets', async () => {
        const keys = [generateSigningKey(), generateSigningKey()];
        const subscription = makeSubscription(partnerId, {
          signature: 'ed25519',
          secrets: [
            { secret: keys[0] ?? '', createdAt: at(10) },
            { secret: keys[1] ?? '', createdAt: at(0), expiresAt: at(86_400) },
          ],
        });
        await subscriptions.create(subscription, { maxPerPartner: 10 });
        expect(await subscriptions.get(subscription.id)).toEqual(subscription);
        expect((await subscriptions.describe(subscription.id))?.signature).toBe('ed25519');
        expect(JSON.stringify(await subject.storedSecrets(subscription.id))).not.toContain('whsk_');
      });

      it("lists a partner's connection subscriptions only, without their secrets", async () => {
        const { url: _, ...withoutUrl } = makeSubscription(partnerId);
        const connection: Subscription = { ...withoutUrl, transport: 'connection' };
        const { url: __, ...otherWithoutUrl } = makeSubscription(id('ptr'));
        const othersConnection: Subscription = { ...otherWithoutUrl, transport: 'connection' };
        await subscriptions.create(makeSubscription(partnerId), { maxPerPartner: 10 });
        await subscriptions.create(connection, { maxPerPartner: 10 });
        await subscriptions.create(othersConnection, { maxPerPartner: 10 });
        const { secrets: ___, ...record } = connection;
        expect(await subscriptions.listConnections(partnerId)).toEqual([record]);
        expect(JSON.stringify(await subscriptions.listConnections(partnerId))).not.toContain('whsec_');
        expect(await subscriptions.listConnections(id('ptr'))).toEqual([]);
      });

      it('reads a subscription back unchanged, optional fields included', async () => {
        const subscription = makeSubscription(partnerId, {
          description: 'orders to the ERP',
          eventTypes: [],
          secrets: [
            { secret: 'whsec_bmV3ZXN0LXNlY3JldC1vZi1hbGwtb2YtdGhlbQ', createdAt: at(10) },
            { secret: 'whsec_b2xkZXItc2VjcmV0LXN0aWxsLXNpZ25pbmc', createdAt: at(0), expiresAt: at(86_400) },
          ],
        });
        await subscriptions.put(subscription);

        expect(await subscriptions.get(subscription.id)).toEqual(subscription);
      });

      it('reads back absent optional fields as absent', async () => {
        const subscription = makeSubscription(partnerId);
        await subscriptions.put(subscription);

        const stored = await subscriptions.get(subscription.id);
        expect(stored).toEqual(subscription);
        expect(stored).not.toHaveProperty('description');
        expect(stored).not.toHaveProperty('disabledReason');
      });

      it('replaces a subscription put again with the same id', async () => {
        const original = makeSubscription(partnerId, { description: 'first' });
        await subscriptions.put(original);
        const { description: _dropped, ...rest } = original;
        const replaced: Subscription = {
          ...rest,
          url: 'https://hooks.example.com/v2',
          status: 'disabled',
          disabledReason: 'failing since yesterday',
          updatedAt: at(3600),
        };

        await subscriptions.put(replaced);

        expect(await subscriptions.get(original.id)).toEqual(replaced);
      });

      it('gets nothing for an unknown id', async () => {
        expect(await subscriptions.get(id('sub'))).toBeUndefined();
      });
    });

    describe('list', () => {
      it('lists the partner’s subscriptions in id order, never another partner’s', async () => {
        const mine = series(3);
        await putAll([...series(2, otherPartnerId), ...mine.toReversed()]);

        const page = await subscriptions.list(partnerId, { limit: 10 });

        expect(page).toEqual({ items: mine, next: null });
      });

      it('pages with limit and next, visiting each subscription once and ending with next null', async () => {
        const items = series(5);
        await putAll(items);

        const first = await subscriptions.list(partnerId, { limit: 2 });
        expect(first.items.map((s) => s.id)).toEqual([items[0]?.id, items[1]?.id]);
        expect(first.next).toBe(items[1]?.id);
        expect(await readAll({ limit: 2 })).toEqual(items.map((s) => s.id));
      });

      it('returns next null when the last page is exactly full', async () => {
        await putAll(series(4));

        const first = await subscriptions.list(partnerId, { limit: 2 });
        const second = await subscriptions.list(partnerId, { limit: 2, after: first.next ?? '' });

        expect(second.items).toHaveLength(2);
        expect(second.next).toBeNull();
      });

      it('keeps paging when the cursor’s subscription was deleted in between', async () => {
        const items = series(4);
        await putAll(items);
        const first = await subscriptions.list(partnerId, { limit: 2 });
        await subscriptions.delete(first.next ?? '');

        const second = await subscriptions.list(partnerId, { limit: 2, after: first.next ?? '' });

        expect(second.items.map((s) => s.id)).toEqual([items[2]?.id, items[3]?.id]);
      });
    });

    describe('put with an expected version', () => {
      it('replaces the version read', async () => {
        const subscription = makeSubscription(partnerId, { updatedAt: at(1) });
        await subscriptions.put(subscription);
        const next = { ...subscription, description: 'new', updatedAt: at(2) };

        await subscriptions.put(next, { expectedUpdatedAt: at(1) });

        expect(await subscriptions.get(subscription.id)).toEqual(next);
      });

      it('refuses to overwrite a change written since, keeping that change', async () => {
        const subscription = makeSubscription(partnerId, { updatedAt: at(1) });
        await subscriptions.put(subscription);
        await subscriptions.updateHealth(subscription.id, { kind: 'disable', reason: 'gone', at: at(2) });

        await expect(
          subscriptions.put(
            { ...subscription, description: 'stale', updatedAt: at(3) },
            { expectedUpdatedAt: at(1) },
          ),
        ).rejects.toThrow(StaleWriteError);
        expect(await subscriptions.get(subscription.id)).toMatchObject({
          status: 'disabled',
          updatedAt: at(2),
        });
      });

      it('does not bring back a subscription deleted since', async () => {
        const subscription = makeSubscription(partnerId, { updatedAt: at(1) });
        await subscriptions.put(subscription);
        await subscriptions.delete(subscription.id);

        await expect(subscriptions.put(subscription, { expectedUpdatedAt: at(1) })).rejects.toThrow(
          StaleWriteError,
        );
        expect(await subscriptions.get(subscription.id)).toBeUndefined();
      });
    });

    describe('updateHealth', () => {
      it('marks a run of failures once, keeping when it began', async () => {
        const subscription = makeSubscription(partnerId, { description: 'kept' });
        await subscriptions.put(subscription);

        const first = await subscriptions.updateHealth(subscription.id, { kind: 'failing', since: at(1) });
        const second = await subscriptions.updateHealth(subscription.id, { kind: 'failing', since: at(2) });

        expect(first).toEqual({ subscription: { ...subscription, failingSince: at(1) }, changed: true });
        expect(second).toEqual({ subscription: { ...subscription, failingSince: at(1) }, changed: false });
      });

      it('ends a run of failures', async () => {
        const subscription = makeSubscription(partnerId, { failingSince: at(1) });
        await subscriptions.put(subscription);

        const { failingSince: _, ...healthy } = subscription;
        expect(await subscriptions.updateHealth(subscription.id, { kind: 'healthy' })).toEqual({
          subscription: healthy,
          changed: true,
        });
        expect(await subscriptions.updateHealth(subscription.id, { kind: 'healthy' })).toEqual({
          subscription: healthy,
          changed: false,
        });
      });

      it('disables an active subscription once: a second disabler sees no change', async () => {
        const subscription = makeSubscription(partnerId);
        await subscriptions.put(subscription);
        const change = { kind: 'disable', reason: 'the endpoint answered 410 Gone', at: at(5) } as const;

        const [a, b] = await Promise.all([
          subscriptions.updateHealth(subscription.id, change),
          subscriptions.updateHealth(subscription.id, change),
        ]);

        expect([a?.changed, b?.changed].sort()).toEqual([false, true]);
        expect(await subscriptions.get(subscription.id)).toEqual({
          ...subscription,
          status: 'disabled',
          disabledReason: 'the endpoint answered 410 Gone',
          updatedAt: at(5),
        });
      });

      it('writes only the health fields, never reverting a concurrent change', async () => {
        const subscription = makeSubscription(partnerId, { url: 'https://old.example/hooks' });
        await subscriptions.put(subscription);
        await subscriptions.put({ ...subscription, url: 'https://new.example/hooks' });

        await subscriptions.updateHealth(subscription.id, { kind: 'failing', since: at(1) });

        expect((await subscriptions.get(subscription.id))?.url).toBe('https://new.example/hooks');
      });

      it('answers undefined for a subscription that is gone', async () => {
        expect(
          await subscriptions.updateHealth(id('sub'), { kind: 'failing', since: at(1) }),
        ).toBeUndefined();
        expect(
          await subscriptions.updateHealth(id('sub'), { kind: 'disable', reason: 'x', at: at(1) }),
        ).toBeUndefined();
      });
    });

    describe('listByHealth', () => {
      /** Every id the listing gives, page by page, with pages of `limit`. */
      async function readHealth(health: 'disabled' | 'failing', limit: number): Promise<string[]> {
        const seen: string[] = [];
        let after: string | undefined;
        do {
          const page = await subscriptions.listByHealth(
            health,
            after === undefined ? { limit } : { limit, after },
          );
          expect(page.items.length).toBeLessThanOrEqual(limit);
          seen.push(...page.items.map((s) => s.id));
          after = page.next ?? undefined;
        } while (after !== undefined);
        return seen;
      }

      it('lists every partner’s disabled, and failing active, subscriptions, each once across pages', async () => {
        const disabled = [
          makeSubscription(partnerId, {
            status: 'disabled',
            disabledReason: 'the endpoint answered 410 Gone',
          }),
          makeSubscription(otherPartnerId, { status: 'disabled', disabledReason: 'disabled by the partner' }),
          // Disabled while failing: listed as disabled, not as failing.
          makeSubscription(partnerId, { status: 'disabled', disabledReason: 'x', failingSince: at(1) }),
        ];
        const failing = [
          makeSubscription(partnerId, { failingSince: at(2) }),
          makeSubscription(otherPartnerId, { failingSince: at(3) }),
          makeSubscription(otherPartnerId, { failingSince: at(4) }),
        ];
        await putAll([
          ...disabled,
          ...failing,
          makeSubscription(partnerId),
          makeSubscription(otherPartnerId),
        ]);

        expect((await readHealth('disabled', 2)).sort()).toEqual(disabled.map((s) => s.id).sort());
        expect((await readHealth('failing', 1)).sort()).toEqual(failing.map((s) => s.id).sort());
        const [first] = (await subscriptions.listByHealth('failing', { limit: 10 })).items.filter(
          (s) => s.id === failing[0]?.id,
        );
        expect(first?.failingSince).toBe(at(2));
      });

      it('describes a subscription without its secrets, and nothing for one that is gone', async () => {
        const subscription = makeSubscription(partnerId, { failingSince: at(3), description: 'orders' });
        await subscriptions.put(subscription);
        const { secrets: _, ...record } = subscription;
        expect(await subscriptions.describe(subscription.id)).toEqual(record);
        expect(await subscriptions.describe(id('sub'))).toBeUndefined();
      });

      it('follows health changes, and lists nothing when all are well', async () => {
        const subscription = makeSubscription(partnerId);
        await subscriptions.put(subscription);
        expect(await subscriptions.listByHealth('failing', { limit: 10 })).toEqual({ items: [], next: null });

        await subscriptions.updateHealth(subscription.id, { kind: 'failing', since: at(1) });
        expect(await readHealth('failing', 10)).toEqual([subscription.id]);

        await subscriptions.updateHealth(subscription.id, { kind: 'disable', reason: 'gone', at: at(2) });
        expect(await readHealth('failing', 10)).toEqual([]);
        expect(await readHealth('disabled', 10)).toEqual([subscription.id]);
      });
    });

    describe('listActive', () => {
      it('returns only the partner’s active subscriptions, whatever their event types', async () => {
        const active = makeSubscription(partnerId, { eventTypes: ['invoice.paid'] });
        const everything = makeSubscription(partnerId, { eventTypes: [] });
        await putAll([
          active,
          everything,
          makeSubscription(partnerId, { status: 'disabled', disabledReason: 'failing' }),
          makeSubscription(otherPartnerId),
        ]);

        const listed = await subscriptions.listActive(partnerId);

        expect(listed.map((s) => s.id).sort()).toEqual([active.id, everything.id].sort());
      });
    });

    describe('create', () => {
      it('creates a subscription that reads back unchanged', async () => {
        const subscription = makeSubscription(partnerId, { description: 'orders' });

        await subscriptions.create(subscription, { maxPerPartner: 3 });

        expect(await subscriptions.get(subscription.id)).toEqual(subscription);
      });

      it('refuses one more at the cap, counting disabled subscriptions, and writes nothing', async () => {
        await subscriptions.create(makeSubscription(partnerId), { maxPerPartner: 3 });
        await subscriptions.create(makeSubscription(partnerId, { status: 'disabled' }), { maxPerPartner: 3 });
        await subscriptions.create(makeSubscription(partnerId), { maxPerPartner: 3 });
        const refused = makeSubscription(partnerId);

        const error = await subscriptions.create(refused, { maxPerPartner: 3 }).catch((e: unknown) => e);

        expect(error).toBeInstanceOf(SubscriptionLimitError);
        expect(error).toMatchObject({ status: 409, limit: 3 });
        expect(await subscriptions.get(refused.id)).toBeUndefined();
        expect((await subscriptions.list(partnerId, { limit: 10 })).items).toHaveLength(3);
      });

      it('counts each partner on its own', async () => {
        await subscriptions.create(makeSubscription(otherPartnerId), { maxPerPartner: 1 });

        await subscriptions.create(makeSubscription(partnerId), { maxPerPartner: 1 });

        await expect(subscriptions.create(makeSubscription(partnerId), { maxPerPartner: 1 })).rejects.toThrow(
          SubscriptionLimitError,
        );
      });

      it('frees a place when a subscription is deleted, once however often it is deleted', async () => {
        const first = makeSubscription(partnerId);
        await subscriptions.create(first, { maxPerPartner: 2 });
        await subscriptions.create(makeSubscription(partnerId), { maxPerPartner: 2 });

        await Promise.all([subscriptions.delete(first.id), subscriptions.delete(first.id)]);

        await subscriptions.create(makeSubscription(partnerId), { maxPerPartner: 2 });
        await expect(subscriptions.create(makeSubscription(partnerId), { maxPerPartner: 2 })).rejects.toThrow(
          SubscriptionLimitError,
        );
      });

      it('counts subscriptions created by put, but not a put that replaces one', async () => {
        const put = makeSubscription(partnerId);
        await subscriptions.put(put);
        await subscriptions.put({ ...put, description: 'replaced' });

        await subscriptions.create(makeSubscription(partnerId), { maxPerPartner: 2 });

        await expect(subscriptions.create(makeSubscription(partnerId), { maxPerPartner: 2 })).rejects.toThrow(
          SubscriptionLimitError,
        );
      });

      it('admits exactly the cap when creates race', async () => {
        const results = await Promise.allSettled(
          Array.from({ length: 8 }, () =>
            subscriptions.create(makeSubscription(partnerId), { maxPerPartner: 5 }),
          ),
        );

        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(5);
        for (const r of results.filter((x) => x.status === 'rejected')) {
          expect(r.reason).toBeInstanceOf(SubscriptionLimitError);
        }
        expect((await subscriptions.list(partnerId, { limit: 10 })).items).toHaveLength(5);
      });

      it('refuses an id that exists', async () => {
        const subscription = makeSubscription(partnerId);
        await subscriptions.create(subscription, { maxPerPartner: 3 });

        await expect(
          subscriptions.create({ ...subscription, description: 'again' }, { maxPerPartner: 3 }),
        ).rejects.toThrow();
        expect(await subscriptions.get(subscription.id)).toEqual(subscription);
      });
    });

    describe('takeAllowance', () => {
      const T0 = Date.parse(at(0));
      const perMinute = { limit: 3, windowMs: 60_000 };

      async function stored(): Promise<Subscription> {
        const subscription = makeSubscription(partnerId);
        await subscriptions.put(subscription);
        return subscription;
      }

      it('allows `limit` uses in a window, then says how long until it closes', async () => {
        const { id: subscriptionId } = await stored();

        for (const offset of [0, 1_000, 2_000]) {
          expect(
            await subscriptions.takeAllowance(subscriptionId, 'test', perMinute, new Date(T0 + offset)),
          ).toEqual({ allowed: true });
        }

        expect(
          await subscriptions.takeAllowance(subscriptionId, 'test', perMinute, new Date(T0 + 45_000)),
        ).toEqual({
          allowed: false,
          retryAfterMs: 15_000,
        });
      });

      it('opens a new window once the last one has closed', async () => {
        const { id: subscriptionId } = await stored();
        for (let i = 0; i < 3; i++)
          await subscriptions.takeAllowance(subscriptionId, 'test', perMinute, new Date(T0));

        expect(
          await subscriptions.takeAllowance(subscriptionId, 'test', perMinute, new Date(T0 + 60_000)),
        ).toEqual({
          allowed: true,
        });
        expect(
          await subscriptions.takeAllowance(subscriptionId, 'test', perMinute, new Date(T0 + 60_001)),
        ).toEqual({ allowed: true });
      });

      it('keeps each action’s allowance apart', async () => {
        const { id: subscriptionId } = await stored();
        const once = { limit: 1, windowMs: 10_000 };
        await subscriptions.takeAllowance(subscriptionId, 'replay', once, new Date(T0));

        expect(await subscriptions.takeAllowance(subscriptionId, 'test', once, new Date(T0))).toEqual({
          allowed: true,
        });
        expect(await subscriptions.takeAllowance(subscriptionId, 'replay', once, new Date(T0 + 1))).toEqual({
          allowed: false,
          retryAfterMs: 9_999,
        });
      });

      it('counts concurrent callers exactly', async () => {
        const { id: subscriptionId } = await stored();

        const results = await Promise.all(
          Array.from({ length: 6 }, () =>
            subscriptions.takeAllowance(subscriptionId, 'test', perMinute, new Date(T0)),
          ),
        );

        expect(results.filter((r) => r?.allowed)).toHaveLength(3);
      });

      it('changes nothing else of the subscription, and survives its replacement', async () => {
        const subscription = await stored();
        const once = { limit: 1, windowMs: 10_000 };
        await subscriptions.takeAllowance(subscription.id, 'replay', once, new Date(T0));

        expect(await subscriptions.get(subscription.id)).toEqual(subscription);
        // A PATCH writes the subscription back: the allowance used stays used.
        await subscriptions.put(
          { ...subscription, description: 'patched', updatedAt: at(1) },
          { expectedUpdatedAt: subscription.updatedAt },
        );
        expect(
          await subscriptions.takeAllowance(subscription.id, 'replay', once, new Date(T0 + 1)),
        ).toMatchObject({
          allowed: false,
        });
      });

      it('answers undefined for a subscription that is gone, creating nothing', async () => {
        const ghost = id('sub');

        expect(await subscriptions.takeAllowance(ghost, 'test', perMinute, new Date(T0))).toBeUndefined();
        expect(await subscriptions.get(ghost)).toBeUndefined();
      });
    });

    describe('delete', () => {
      it('deletes and reports whether the subscription existed', async () => {
        const subscription = makeSubscription(partnerId);
        await subscriptions.put(subscription);

        expect(await subscriptions.delete(subscription.id)).toBe(true);
        expect(await subscriptions.get(subscription.id)).toBeUndefined();
        expect(await subscriptions.delete(subscription.id)).toBe(false);
      });
    });
  });
}
