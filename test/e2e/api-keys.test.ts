/**
 * API keys end to end: a partner holds several, rotates one without downtime, and revokes the
 * old one, which stops working at once (the local server asks the authorizer every request);
 * the admin issues and revokes any partner's keys; no partner learns or touches another's.
 */
import { describe, expect, it } from 'vitest';
import { expectProblem, type Page, UNKNOWN_PARTNER_ID, withApiDispatcher } from './api-support.ts';
import type { TestDispatcher } from './harness.ts';

interface ApiKeyView {
  id: string;
  name: string;
  prefix: string;
  createdAt: string;
  lastUsedAt: string | null;
}

interface CreatedKey extends ApiKeyView {
  apiKey: string;
}

const KEY_ID = /^key_[0-9a-f]{24}$/;

describe('HTTP API: API keys', () => {
  let d: TestDispatcher;
  withApiDispatcher((started) => {
    d = started;
  });

  async function newKey(apiKey: string, body?: unknown): Promise<CreatedKey> {
    const res = await d.as<CreatedKey>(apiKey, 'POST', '/v1/keys', body);
    expect(res.status).toBe(201);
    return res.body;
  }

  const keysOf = async (apiKey: string) =>
    (await d.as<Page<ApiKeyView>>(apiKey, 'GET', '/v1/keys')).body.data;
  const works = async (apiKey: string) => (await d.as(apiKey, 'GET', '/v1/events')).status === 200;

  it("answers a partner's creation with its first key's id", async () => {
    const res = await d.admin<{ apiKey: string; apiKeyId: string }>('POST', '/v1/partners', { name: 'acme' });
    expect(res.status).toBe(201);
    expect(res.body.apiKeyId).toMatch(KEY_ID);
    expect((await keysOf(res.body.apiKey)).map((k) => k.id)).toEqual([res.body.apiKeyId]);
  });

  it('rotates a key without downtime: a second key works beside the first, then the first is revoked', async () => {
    const partner = await d.createPartner();
    const [first] = await keysOf(partner.apiKey);
    const second = await newKey(partner.apiKey, { name: 'billing service' });

    expect(second.apiKey).toMatch(/^dk_/);
    expect(second.apiKey.startsWith(second.prefix)).toBe(true);
    expect(second).toMatchObject({
      id: expect.stringMatching(KEY_ID),
      name: 'billing service',
      lastUsedAt: null,
    });
    expect(await works(partner.apiKey)).toBe(true);
    expect(await works(second.apiKey)).toBe(true);

    const listed = await keysOf(second.apiKey);
    expect(listed.map((k) => k.id)).toEqual([first?.id, second.id]);
    // Both have been used, and the listing never holds a key or its hash.
    for (const key of listed) expect(key.lastUsedAt).not.toBeNull();
    const text = JSON.stringify(listed);
    expect(text).not.toContain(partner.apiKey);
    expect(text).not.toContain(second.apiKey);
    expect(Object.keys(listed[0] ?? {}).sort()).toEqual(['createdAt', 'id', 'lastUsedAt', 'name', 'prefix']);

    const revoked = await d.as(second.apiKey, 'DELETE', `/v1/keys/${first?.id}`);
    expect(revoked.status).toBe(204);
    expectProblem(await d.as(partner.apiKey, 'GET', '/v1/events'), 401);
    expect(await works(second.apiKey)).toBe(true);
    expect((await keysOf(second.apiKey)).map((k) => k.id)).toEqual([second.id]);
  });

  it('names a new key "unnamed" without a body, and refuses a bad name naming body.name', async () => {
    const partner = await d.createPartner();
    expect((await newKey(partner.apiKey)).name).toBe('unnamed');
    expectProblem(await d.as(partner.apiKey, 'POST', '/v1/keys', { name: '' }), 400, 'body.name');
    expectProblem(
      await d.as(partner.apiKey, 'POST', '/v1/keys', { name: 'x'.repeat(101) }),
      400,
      'body.name',
    );
    expectProblem(await d.as(partner.apiKey, 'POST', '/v1/keys', { label: 'x' }), 400);
  });

  it('refuses to revoke your only key (409), and a key that is not yours or not a key (404)', async () => {
    const partner = await d.createPartner();
    const [only] = await keysOf(partner.apiKey);
    const problem = expectProblem(await d.as(partner.apiKey, 'DELETE', `/v1/keys/${only?.id}`), 409);
    expect(problem.detail).toMatch(/only API key/);
    expect(await works(partner.apiKey)).toBe(true);

    expectProblem(await d.as(partner.apiKey, 'DELETE', `/v1/keys/key_${'0'.repeat(24)}`), 404);
    expectProblem(await d.as(partner.apiKey, 'DELETE', '/v1/keys/not-a-key'), 404);
  });

  it('holds at most 20 keys per partner: one more is a 409; a revoke makes room', async () => {
    const partner = await d.createPartner();
    const created: CreatedKey[] = [];
    for (let i = 1; i < 20; i++) created.push(await newKey(partner.apiKey, { name: `key ${i}` }));
    const refused = expectProblem(await d.as(partner.apiKey, 'POST', '/v1/keys'), 409);
    expect(refused.detail).toMatch(/at most 20 API keys/);

    const page = await d.as<Page<ApiKeyView>>(partner.apiKey, 'GET', '/v1/keys?limit=15');
    expect(page.body.data).toHaveLength(15);
    const rest = await d.as<Page<ApiKeyView>>(
      partner.apiKey,
      'GET',
      `/v1/keys?limit=15&after=${page.body.next}`,
    );
    expect(rest.body.data).toHaveLength(5);
    expect(rest.body.next).toBeNull();

    expect((await d.as(partner.apiKey, 'DELETE', `/v1/keys/${created[0]?.id}`)).status).toBe(204);
    await newKey(partner.apiKey);
  });

  describe('between partners', () => {
    it("neither lists nor revokes another partner's keys", async () => {
      const acme = await d.createPartner('acme');
      const globex = await d.createPartner('globex');
      await newKey(acme.apiKey);
      const acmeKeys = await keysOf(acme.apiKey);
      const globexKeys = await keysOf(globex.apiKey);

      expect(globexKeys).toHaveLength(1);
      expect(globexKeys.map((k) => k.id)).not.toContain(acmeKeys[0]?.id);
      for (const key of acmeKeys) {
        expectProblem(await d.as(globex.apiKey, 'DELETE', `/v1/keys/${key.id}`), 404);
      }
      expect((await keysOf(acme.apiKey)).map((k) => k.id)).toEqual(acmeKeys.map((k) => k.id));
      expect(await works(acme.apiKey)).toBe(true);
    });

    it("refuses another partner's key id as a cursor, naming query.after, and shows nothing of it", async () => {
      const acme = await d.createPartner('acme');
      const globex = await d.createPartner('globex');
      const [acmeKey] = await keysOf(acme.apiKey);
      const problem = expectProblem(
        await d.as(globex.apiKey, 'GET', `/v1/keys?after=${acmeKey?.id}`),
        400,
        'query.after',
      );
      expect(JSON.stringify(problem)).not.toContain(acme.id);
    });
  });

  describe('the admin', () => {
    it('issues a key to a partner, lists its keys, and revokes any of them, the last included', async () => {
      const partner = await d.createPartner();
      const issued = await d.admin<CreatedKey>('POST', `/v1/partners/${partner.id}/keys`, {
        name: 'support',
      });
      expect(issued.status).toBe(201);
      expect(await works(issued.body.apiKey)).toBe(true);

      const listed = await d.admin<Page<ApiKeyView>>('GET', `/v1/partners/${partner.id}/keys`);
      expect(listed.body.data.map((k) => k.name)).toEqual(['first key', 'support']);

      for (const key of listed.body.data) {
        expect((await d.admin('DELETE', `/v1/partners/${partner.id}/keys/${key.id}`)).status).toBe(204);
      }
      expectProblem(await d.as(issued.body.apiKey, 'GET', '/v1/events'), 401);
      expectProblem(await d.as(partner.apiKey, 'GET', '/v1/events'), 401);

      // A partner left with no key gets one from the admin again.
      const again = await d.admin<CreatedKey>('POST', `/v1/partners/${partner.id}/keys`);
      expect(await works(again.body.apiKey)).toBe(true);
    });

    it("answers 404 for a partner that does not exist, or a key of another partner's", async () => {
      expectProblem(await d.admin('POST', `/v1/partners/${UNKNOWN_PARTNER_ID}/keys`), 404);
      expectProblem(await d.admin('GET', `/v1/partners/${UNKNOWN_PARTNER_ID}/keys`), 404);
      const acme = await d.createPartner('acme');
      const globex = await d.createPartner('globex');
      const [acmeKey] = await keysOf(acme.apiKey);
      expectProblem(await d.admin('DELETE', `/v1/partners/${globex.id}/keys/${acmeKey?.id}`), 404);
      expect(await works(acme.apiKey)).toBe(true);
    });

    it("keeps the admin's routes and the partners' apart", async () => {
      const partner = await d.createPartner();
      expectProblem(await d.as(partner.apiKey, 'POST', `/v1/partners/${partner.id}/keys`), 401);
      expectProblem(await d.as(partner.apiKey, 'GET', `/v1/partners/${partner.id}/keys`), 401);
      expectProblem(await d.admin('GET', '/v1/keys'), 401);
    });
  });
});
