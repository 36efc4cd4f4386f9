/**
 * Authenticating with an API key: a lookup by hash, "last used" kept to within its precision
 * with at most one write in that time however many requests the key makes, and a failed write
 * of it never refusing a request.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { closeDatabase, openDatabase } from '../../functions/adapters/sqlite/database.ts';
import { SqlitePartnerStore } from '../../functions/adapters/sqlite/partners.ts';
import { createApiHandler } from '../../functions/api/handler.ts';
import { UnauthorizedError } from '../../functions/core/errors.ts';
import {
  API_KEY_LAST_USED_PRECISION_MS,
  authenticateApiKey,
  createApiKey,
  createPartner,
  revokeApiKey,
} from '../../functions/core/partners.ts';
import type { PartnerStore } from '../../functions/core/ports.ts';
import { lambdaContext } from '../../local/lambda-context.ts';
import { ManualClock } from '../contract/fixtures.ts';
import { apiRequest, sqliteApiDeps } from '../support/api-deps.ts';

const db = openDatabase(':memory:');
afterEach(() => db.exec('DELETE FROM api_keys; DELETE FROM partners;'));

/** The SQLite store, counting the writes of "last used" and the lookups. */
function counted(failTouches = false) {
  const store = new SqlitePartnerStore(db);
  const counts = { touches: 0, lookups: 0 };
  const partners: PartnerStore = {
    create: (partner, key) => store.create(partner, key),
    get: (id) => store.get(id),
    findApiKey: (hash) => {
      counts.lookups += 1;
      return store.findApiKey(hash);
    },
    addApiKey: (key, options) => store.addApiKey(key, options),
    listApiKeys: (id) => store.listApiKeys(id),
    removeApiKey: (id, keyId, options) => store.removeApiKey(id, keyId, options),
    touchApiKey: async (key, at, staleBefore) => {
      counts.touches += 1;
      if (failTouches) throw new Error('the table is throttled');
      return store.touchApiKey(key, at, staleBefore);
    },
  };
  return { partners, counts };
}

describe('authenticateApiKey', () => {
  it('writes "last used" once per precision however many requests the key makes', async () => {
    const clock = new ManualClock();
    const { partners, counts } = counted();
    const { partner, apiKey } = await createPartner({ partners, clock }, { name: 'acme' });

    for (let i = 0; i < 200; i++) {
      expect(await authenticateApiKey({ partners, clock }, apiKey)).toMatchObject({ partnerId: partner.id });
      clock.advance(1);
    }
    // 200 s of requests, one a second: the first one writes, and nothing more within 5 minutes.
    expect(counts.touches).toBe(1);
    clock.advance(API_KEY_LAST_USED_PRECISION_MS / 1000);
    await authenticateApiKey({ partners, clock }, apiKey);
    expect(counts.touches).toBe(2);
    const [key] = await partners.listApiKeys(partner.id);
    expect(key?.lastUsedAt).toBe(clock.now().toISOString());
  });

  it('refuses what is not shaped like a key without a lookup, and an unknown or revoked key after one', async () => {
    const clock = new ManualClock();
    const { partners, counts } = counted();
    const { partner, apiKey } = await createPartner({ partners, clock }, { name: 'acme' });
    const second = await createApiKey({ partners, clock }, partner.id, { name: 'spare' }, { kind: 'admin' });

    for (const bad of ['', 'Bearer x', 'sk_live_123', `dk_${'a'.repeat(200)}`]) {
      await expect(authenticateApiKey({ partners, clock }, bad)).rejects.toBeInstanceOf(UnauthorizedError);
    }
    expect(counts.lookups).toBe(0);
    await expect(authenticateApiKey({ partners, clock }, `${apiKey}x`)).rejects.toBeInstanceOf(
      UnauthorizedError,
    );

    await revokeApiKey({ partners }, partner.id, second.key.id, { kind: 'admin' });
    await expect(authenticateApiKey({ partners, clock }, second.apiKey)).rejects.toBeInstanceOf(
      UnauthorizedError,
    );
    expect(await authenticateApiKey({ partners, clock }, apiKey)).toEqual({
      partnerId: partner.id,
      keyId: (await partners.listApiKeys(partner.id))[0]?.id,
    });
  });

  it('lets the request through when "last used" cannot be written', async () => {
    const clock = new ManualClock();
    const { partners, counts } = counted(true);
    const { partner, apiKey } = await createPartner({ partners, clock }, { name: 'acme' });

    expect(await authenticateApiKey({ partners, clock }, apiKey)).toMatchObject({ partnerId: partner.id });
    expect(counts.touches).toBe(1);
  });
});

describe('managing keys with a key revoked while a cached authorizer answer still lets it in', () => {
  it('is refused 401, so a revoked key cannot mint itself a new one', async () => {
    const deps = sqliteApiDeps(db);
    const handler = createApiHandler(deps, () => {});
    const { partner, key } = await createPartner(deps, { name: 'acme' });
    const other = await createApiKey(deps, partner.id, { name: 'spare' }, { kind: 'admin' });
    await revokeApiKey(deps, partner.id, key.id, { kind: 'admin' });
    // API Gateway's cache still answers for the revoked key: its context reaches the API.
    const asRevoked = { lambda: { partnerId: partner.id, keyId: key.id } };
    for (const request of [
      apiRequest({ method: 'POST', path: '/v1/keys', authorizer: asRevoked }),
      apiRequest({ method: 'DELETE', path: `/v1/keys/${other.key.id}`, authorizer: asRevoked }),
    ]) {
      const answer = await handler(request, lambdaContext('api'));
      expect(answer.statusCode).toBe(401);
      expect(answer.body).toMatch(/revoked/);
    }
    expect((await deps.partners.listApiKeys(partner.id)).map((k) => k.id)).toEqual([other.key.id]);
  });
});

afterAll(() => closeDatabase(db));
