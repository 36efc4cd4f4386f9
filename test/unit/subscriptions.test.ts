import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../functions/adapters/sqlite/database.ts';
import { SqliteSubscriptionStore } from '../../functions/adapters/sqlite/subscriptions.ts';
import { ForbiddenTargetError, StaleWriteError, ValidationError } from '../../functions/core/errors.ts';
import { newId } from '../../functions/core/ids.ts';
import type { Subscription } from '../../functions/core/model.ts';
import type { SubscriptionStore } from '../../functions/core/ports.ts';
import {
  assertTargetAllowed,
  createSubscription,
  MODIFY_TRIES,
  rotateSecret,
  SECRET_ROTATION_OVERLAP_MS,
  SubscriptionContentionError,
  signingSecrets,
  subscriptionWants,
  updateSubscription,
} from '../../functions/core/subscriptions.ts';
import { testCipher } from '../support/cipher.ts';

const resolverOf = (addresses: Record<string, string[]>) => ({
  async resolve(host: string) {
    const found = addresses[host];
    if (!found) throw new Error(`ENOTFOUND ${host}`);
    return found;
  },
});

describe('subscriptionWants', () => {
  it.each([
    [[], 'order.created', true],
    [['*'], 'order.created', true],
    [['order.created'], 'order.created', true],
    [['order.created'], 'order.updated', false],
    [['order.*'], 'order.created', true],
    [['order.*'], 'order.item.added', true],
    [['order.*'], 'orders.created', false],
    [['order.*'], 'order', false],
    [['invoice.paid', 'order.*'], 'invoice.paid', true],
  ] as const)('filter %j takes %s: %s', (eventTypes, type, wanted) => {
    expect(subscriptionWants({ eventTypes: [...eventTypes] }, type)).toBe(wanted);
  });
});

describe('secrets', () => {
  function deps(now: Date) {
    return {
      subscriptions: new SqliteSubscriptionStore(openDatabase(':memory:'), testCipher()),
      clock: { now: () => now },
      resolver: resolverOf({}),
      allowPrivateTargets: true,
    };
  }

  it('refuses a connection subscription where the deployment serves no connections, naming the field', async () => {
    const d = deps(new Date('2026-11-25T12:00:00.000Z'));
    const partnerId = newId('ptr');
    const refused = createSubscription(d, partnerId, { transport: 'connection' });
    await expect(refused).rejects.toThrow(ValidationError);
    await expect(refused).rejects.toMatchObject({ errors: [{ field: 'transport' }] });
    const { subscription } = await createSubscription({ ...d, connectionsEnabled: true }, partnerId, {
      transport: 'connection',
    });
    expect(subscription).toMatchObject({ transport: 'connection' });
    expect(subscription.url).toBeUndefined();
  });

  it('signs with the old secret beside the new one for the overlap after a rotation, then only the new', async () => {
    const now = new Date('2026-11-25T12:00:00.000Z');
    const d = deps(now);
    const partnerId = newId('ptr');
    const created = await createSubscription(d, partnerId, { url: 'https://partner.example/hooks' });
    const rotated = await rotateSecret(d, partnerId, created.subscription.id);

    expect(signingSecrets(rotated.subscription, now)).toEqual([rotated.secret, created.secret]);
    const later = new Date(now.getTime() + SECRET_ROTATION_OVERLAP_MS + 1);
    expect(signingSecrets(rotated.subscription, later)).toEqual([rotated.secret]);
  });

  it('keeps both secrets when two rotations race: neither caller is handed a secret that never signs', async () => {
    const now = new Date('2026-11-25T12:00:00.000Z');
    const d = deps(now);
    const partnerId = newId('ptr');
    const created = await createSubscription(d, partnerId, { url: 'https://partner.example/hooks' });

    const [a, b] = await Promise.all([
      rotateSecret(d, partnerId, created.subscription.id),
      rotateSecret(d, partnerId, created.subscription.id),
    ]);

    const stored = await d.subscriptions.get(created.subscription.id);
    const live = stored === undefined ? [] : signingSecrets(stored, now);
    expect(live).toEqual(expect.arrayContaining([a.secret, b.secret, created.secret]));
  });

  it('drops secrets already expired at the next rotation', async () => {
    const start = new Date('2026-11-25T12:00:00.000Z');
    let now = start;
    const d = { ...deps(start), clock: { now: () => now } };
    const partnerId = newId('ptr');
    const created = await createSubscription(d, partnerId, { url: 'https://partner.example/hooks' });
    await rotateSecret(d, partnerId, created.subscription.id);
    now = new Date(start.getTime() + 2 * SECRET_ROTATION_OVERLAP_MS);
    const third = await rotateSecret(d, partnerId, created.subscription.id);
    expect(third.subscription.secrets).toHaveLength(2);
    expect(third.subscription.secrets.map((s) => s.secret)).not.toContain(created.secret);
  });
});

describe('updateSubscription', () => {
  it('keeps the reason a disabled subscription was disabled, and clears it on re-enabling', async () => {
    const now = new Date('2026-11-25T12:00:00.000Z');
    const subscriptions = new SqliteSubscriptionStore(openDatabase(':memory:'), testCipher());
    const d = {
      subscriptions,
      clock: { now: () => now },
      resolver: resolverOf({}),
      allowPrivateTargets: true,
    };
    const partnerId = newId('ptr');
    const sub: Subscription = {
      id: newId('sub'),
      partnerId,
      url: 'https://partner.example/hooks',
      eventTypes: [],
      status: 'disabled',
      disabledReason: 'no success for 5 days',
      secrets: [{ secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', createdAt: now.toISOString() }],
      createdAt: now.toISOString(),
      updatedAt: now.toISOString(),
    };
    await subscriptions.put(sub);

    const described = await updateSubscription(d, partnerId, sub.id, { description: 'orders' });
    expect(described.disabledReason).toBe('no success for 5 days');
    const enabled = await updateSubscription(d, partnerId, sub.id, { status: 'active' });
    expect(enabled.disabledReason).toBeUndefined();
    const disabled = await updateSubscription(d, partnerId, sub.id, { status: 'disabled' });
    expect(disabled.disabledReason).toBe('disabled by the partner');
  });
});

describe('concurrent changes of one subscription', () => {
  /** The store with its own `put` in place of the inner one's. */
  function withPut(inner: SubscriptionStore, put: SubscriptionStore['put']): SubscriptionStore {
    return {
      create: (s, options) => inner.create(s, options),
      put,
      get: (id) => inner.get(id),
      list: (partnerId, query) => inner.list(partnerId, query),
      listActive: (partnerId) => inner.listActive(partnerId),
      listByHealth: (health, query) => inner.listByHealth(health, query),
      describe: (id) => inner.describe(id),
      listConnections: (partnerId) => inner.listConnections(partnerId),
      delete: (id) => inner.delete(id),
      updateHealth: (id, change) => inner.updateHealth(id, change),
      takeAllowance: (id, action, allowance, now) => inner.takeAllowance(id, action, allowance, now),
    };
  }

  /** What the use cases take, with this store and a clock stopped at `now`. */
  function depsOf(subscriptions: SubscriptionStore, now: Date) {
    return { subscriptions, clock: { now: () => now }, resolver: resolverOf({}), allowPrivateTargets: true };
  }

  /** A store that counts the writes refused for a change written in between. */
  function counting(inner: SubscriptionStore) {
    const counted = { stale: 0 };
    const store = withPut(inner, async (subscription, options) => {
      try {
        await inner.put(subscription, options);
      } catch (error) {
        if (error instanceof StaleWriteError) counted.stale += 1;
        throw error;
      }
    });
    return { store, counted };
  }

  it('gives every concurrent PATCH and rotation its own success, however often they collide', async () => {
    const now = new Date('2026-11-25T12:00:00.000Z');
    const { store, counted } = counting(new SqliteSubscriptionStore(openDatabase(':memory:'), testCipher()));
    const d = depsOf(store, now);
    const partnerId = newId('ptr');
    const created = await createSubscription(d, partnerId, { url: 'https://partner.example/hooks' });
    const id = created.subscription.id;

    const patches = Array.from({ length: 24 }, (_, i) =>
      updateSubscription(d, partnerId, id, { description: `change ${i}` }),
    );
    const rotations = Array.from({ length: 8 }, () => rotateSecret(d, partnerId, id));
    const [patched, rotated] = await Promise.all([Promise.all(patches), Promise.all(rotations)]);

    // They did collide, and every one of them was written all the same.
    expect(counted.stale).toBeGreaterThan(0);
    expect(patched).toHaveLength(24);
    const stored = await d.subscriptions.get(id);
    const live = stored === undefined ? [] : signingSecrets(stored, now);
    expect(live).toEqual(expect.arrayContaining([created.secret, ...rotated.map((r) => r.secret)]));
    expect(patched.map((p) => p.description)).toContain(stored?.description);
  });

  it('answers 503 to try again, never 409, when the writes collide through every try', async () => {
    const now = new Date('2026-11-25T12:00:00.000Z');
    const inner = new SqliteSubscriptionStore(openDatabase(':memory:'), testCipher());
    let puts = 0;
    const store = withPut(inner, async (subscription, options) => {
      if (options?.expectedUpdatedAt === undefined) return inner.put(subscription, options);
      puts += 1;
      throw new StaleWriteError('changed meanwhile');
    });
    const d = depsOf(store, now);
    const partnerId = newId('ptr');
    const created = await createSubscription(d, partnerId, { url: 'https://partner.example/hooks' });

    const failure = updateSubscription(d, partnerId, created.subscription.id, { description: 'x' });
    await expect(failure).rejects.toThrow(SubscriptionContentionError);
    await expect(failure).rejects.toMatchObject({ status: 503 });
    expect(puts).toBe(MODIFY_TRIES);
  });
});

describe('assertTargetAllowed', () => {
  const strict = (addresses: Record<string, string[]>) => ({
    resolver: resolverOf(addresses),
    allowPrivateTargets: false,
  });

  it('accepts an https host whose every address is public', async () => {
    await expect(
      assertTargetAllowed(
        strict({ 'hooks.example': ['93.184.216.34', '2606:2800:220:1::1'] }),
        'https://hooks.example/x',
      ),
    ).resolves.toBeInstanceOf(URL);
  });

  it('refuses a host with any private address among its addresses', async () => {
    await expect(
      assertTargetAllowed(
        strict({ 'mixed.example': ['93.184.216.34', '10.1.2.3'] }),
        'https://mixed.example/x',
      ),
    ).rejects.toThrow(ForbiddenTargetError);
  });

  it('refuses a host that does not resolve', async () => {
    await expect(assertTargetAllowed(strict({}), 'https://nowhere.example/x')).rejects.toThrow(
      /does not resolve/,
    );
  });

  it('skips the lookup when private targets are allowed', async () => {
    await expect(
      assertTargetAllowed({ resolver: resolverOf({}), allowPrivateTargets: true }, 'http://127.0.0.1:4000/x'),
    ).resolves.toBeInstanceOf(URL);
  });
});
