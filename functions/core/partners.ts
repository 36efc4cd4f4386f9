import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  ApiKeyLimitError,
  ApiKeyNotFoundError,
  LastApiKeyError,
  PartnerNotFoundError,
  UnauthorizedError,
  ValidationError,
} from './errors.ts';
import { newId } from './ids.ts';
import type { ApiKeyRecord, Page, Partner } from './model.ts';
import type { Clock, ListQuery, PartnerStore } from './ports.ts';

const API_KEY_PREFIX = 'dk_';

/** Keys a partner may hold at once: enough to rotate each of its services' keys on its own. */
export const MAX_API_KEYS_PER_PARTNER = 20;

/**
 * How fresh a key's "last used" is: it is written when it is this much older than a request
 * the key authorised, so a key in constant use costs one write in this time, not one a request.
 */
export const API_KEY_LAST_USED_PRECISION_MS = 5 * 60 * 1000;

/** The characters of a key shown in listings, to tell keys apart: `dk_` and 8 more. */
const SHOWN_PREFIX_LENGTH = API_KEY_PREFIX.length + 8;

/** A new API key: 32 random bytes, base64url, with a prefix that secret scanners can match. */
export function generateApiKey(): string {
  return API_KEY_PREFIX + randomBytes(32).toString('base64url');
}

/**
 * SHA-256 of the key. Keys are 256 random bits, so a fast hash is enough: there is nothing to
 * brute-force that a slow hash would protect.
 */
export function hashApiKey(apiKey: string): string {
  return createHash('sha256').update(apiKey).digest('hex');
}

/** A key's id, from its hash (see ApiKeyId). */
export function apiKeyIdOf(apiKeyHash: string): string {
  return `key_${apiKeyHash.slice(0, 24)}`;
}

/** What a partner sees of a key: never the key, nor its hash. */
export interface ApiKeyView {
  id: string;
  name: string;
  prefix: string;
  createdAt: string;
  lastUsedAt: string | null;
}

export function toApiKeyView(key: ApiKeyRecord): ApiKeyView {
  return {
    id: key.id,
    name: key.name,
    prefix: key.prefix,
    createdAt: key.createdAt,
    lastUsedAt: key.lastUsedAt ?? null,
  };
}

/** A new key for the partner, with the record to store (its hash, never the key). */
function newApiKey(
  partnerId: string,
  name: string,
  createdAt: string,
): { apiKey: string; record: ApiKeyRecord } {
  const apiKey = generateApiKey();
  const hash = hashApiKey(apiKey);
  return {
    apiKey,
    record: {
      id: apiKeyIdOf(hash),
      partnerId,
      hash,
      name,
      prefix: apiKey.slice(0, SHOWN_PREFIX_LENGTH),
      createdAt,
    },
  };
}

export interface CreatedPartner {
  partner: Partner;
  /** Shown once; only its hash is stored. */
  apiKey: string;
  key: ApiKeyView;
}

/**
 * Registers a partner.
 * 1. Generate the partner id and its first API key.
 * 2. Store the partner with the key's record.
 * 3. Return the key, which is never retrievable again.
 */
export async function createPartner(
  deps: { partners: PartnerStore; clock: Clock },
  input: { name: string },
): Promise<CreatedPartner> {
  const now = deps.clock.now();
  const partner: Partner = {
    id: newId('ptr', now.getTime()),
    name: input.name,
    createdAt: now.toISOString(),
  };
  const { apiKey, record } = newApiKey(partner.id, 'first key', partner.createdAt);
  await deps.partners.create(partner, record);
  return { partner, apiKey, key: toApiKeyView(record) };
}

export interface CreatedApiKey {
  key: ApiKeyView;
  /** Shown once; only its hash is stored. */
  apiKey: string;
}

/**
 * Who manages a partner's keys: the admin, or the partner, with the key it called with (absent:
 * none known, which is refused).
 */
export type KeyManager = { kind: 'admin' } | { kind: 'partner'; keyId: string | undefined };

/**
 * Issues another key to a partner.
 * 1. A partner must call with a key it still has (requireLiveKey).
 * 2. Add the key's record within the cap.
 * @throws UnauthorizedError, PartnerNotFoundError, ApiKeyLimitError at MAX_API_KEYS_PER_PARTNER keys
 */
export async function createApiKey(
  deps: { partners: PartnerStore; clock: Clock },
  partnerId: string,
  input: { name?: string | undefined },
  by: KeyManager,
): Promise<CreatedApiKey> {
  if (by.kind === 'partner') await requireLiveKey(deps, partnerId, by.keyId);
  const { apiKey, record } = newApiKey(partnerId, input.name ?? 'unnamed', deps.clock.now().toISOString());
  const result = await deps.partners.addApiKey(record, { maxPerPartner: MAX_API_KEYS_PER_PARTNER });
  if (result === 'no-partner') throw new PartnerNotFoundError(partnerId);
  if (result === 'limit') throw new ApiKeyLimitError(MAX_API_KEYS_PER_PARTNER);
  return { key: toApiKeyView(record), apiKey };
}

/**
 * A page of the partner's keys, oldest first.
 * @throws PartnerNotFoundError (for the admin's listing; a partner's own always exists)
 */
export async function listApiKeys(
  deps: { partners: PartnerStore },
  partnerId: string,
  query: ListQuery,
): Promise<Page<ApiKeyView>> {
  if ((await deps.partners.get(partnerId)) === undefined) throw new PartnerNotFoundError(partnerId);
  const keys = await deps.partners.listApiKeys(partnerId);
  let start = 0;
  if (query.after !== undefined) {
    const at = keys.findIndex((key) => key.id === query.after);
    if (at < 0) {
      throw new ValidationError(`after: ${query.after} is not one of your keys (revoked since?)`, [
        { field: 'after', message: 'must be the `next` of the last page: the id of one of your keys' },
      ]);
    }
    start = at + 1;
  }
  const page = keys.slice(start, start + query.limit);
  const more = start + query.limit < keys.length;
  return { items: page.map(toApiKeyView), next: more ? (page.at(-1)?.id ?? null) : null };
}

/**
 * Revokes one of the partner's keys. A partner must call with a key it still has, and may not
 * revoke its last key (it would lock itself out); the admin may.
 * @throws UnauthorizedError, ApiKeyNotFoundError, LastApiKeyError
 */
export async function revokeApiKey(
  deps: { partners: PartnerStore },
  partnerId: string,
  keyId: string,
  by: KeyManager,
): Promise<void> {
  if (by.kind === 'partner') await requireLiveKey(deps, partnerId, by.keyId);
  const result = await deps.partners.removeApiKey(partnerId, keyId, { keepLast: by.kind === 'partner' });
  if (result === 'not-found' || result === 'no-partner') throw new ApiKeyNotFoundError(keyId);
  if (result === 'last') throw new LastApiKeyError();
}

function sameHash(stored: string, given: string): boolean {
  const a = Buffer.from(stored);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Refuses a key revoked while the authorizer's cached answer still lets it in (on AWS, up to
 * the cache time): managing keys with it would let whoever holds a revoked key mint itself a
 * new one. One read of the partner's keys.
 * @throws UnauthorizedError when `keyId` is no longer one of the partner's keys
 */
async function requireLiveKey(
  deps: { partners: PartnerStore },
  partnerId: string,
  keyId: string | undefined,
): Promise<void> {
  const keys = await deps.partners.listApiKeys(partnerId);
  if (keyId === undefined || !keys.some((key) => key.id === keyId)) {
    throw new UnauthorizedError('this API key has been revoked');
  }
}

/** Who a request's API key speaks for. */
export interface Authenticated {
  partnerId: string;
  keyId: string;
}

/**
 * Finds the partner an API key belongs to.
 * 1. Reject anything that is not shaped like one of our keys without a lookup.
 * 2. Look the key's hash up, and compare the stored hash with it in constant time.
 * 3. Record its use, when the record's "last used" is older than the precision.
 * @throws UnauthorizedError for an unknown or revoked key.
 */
export async function authenticateApiKey(
  deps: { partners: PartnerStore; clock: Clock },
  apiKey: string,
): Promise<Authenticated> {
  if (!apiKey.startsWith(API_KEY_PREFIX) || apiKey.length > 128) {
    throw new UnauthorizedError('invalid API key');
  }
  const hash = hashApiKey(apiKey);
  const key = await deps.partners.findApiKey(hash);
  if (!key || !sameHash(key.hash, hash)) throw new UnauthorizedError('invalid API key');
  const now = deps.clock.now();
  const staleBefore = new Date(now.getTime() - API_KEY_LAST_USED_PRECISION_MS).toISOString();
  if (key.lastUsedAt === undefined || key.lastUsedAt < staleBefore) {
    try {
      await deps.partners.touchApiKey(key, now.toISOString(), staleBefore);
    } catch {
      // "Last used" is a hint for the partner: a write that fails must not refuse the request,
      // and the next request after it tries again.
    }
  }
  return { partnerId: key.partnerId, keyId: key.id };
}
