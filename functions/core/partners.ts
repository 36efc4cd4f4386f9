import { createHash, randomBytes } from 'node:crypto';
import { UnauthorizedError } from './errors.ts';
import { newId } from './ids.ts';
import type { Partner } from './model.ts';
import type { Clock, PartnerStore } from './ports.ts';

const API_KEY_PREFIX = 'dk_';

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

export interface CreatedPartner {
  partner: Partner;
  /** Shown once; only its hash is stored. */
  apiKey: string;
}

/**
 * Registers a partner.
 * 1. Generate the partner id and an API key.
 * 2. Store the partner with the key's hash.
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
  const apiKey = generateApiKey();
  await deps.partners.create(partner, hashApiKey(apiKey));
  return { partner, apiKey };
}

/**
 * Finds the partner an API key belongs to.
 * 1. Reject anything that is not shaped like one of our keys without a lookup.
 * 2. Look the key's hash up.
 * @throws UnauthorizedError for an unknown key.
 */
export async function authenticateApiKey(deps: { partners: PartnerStore }, apiKey: string): Promise<Partner> {
  if (!apiKey.startsWith(API_KEY_PREFIX) || apiKey.length > 128) {
    throw new UnauthorizedError('invalid API key');
  }
  const partner = await deps.partners.findByApiKeyHash(hashApiKey(apiKey));
  if (!partner) throw new UnauthorizedError('invalid API key');
  return partner;
}
