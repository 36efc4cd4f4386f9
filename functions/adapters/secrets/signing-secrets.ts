/**
 * A subscription's signing secrets as its store keeps them: the same list, each `secret`
 * sealed by the cipher for that subscription. A secret still in the clear (`whsec_…`, as
 * stores written before sealing hold them) is read as it is and sealed at its next write.
 */
import * as z from 'zod';
import { SigningSecret } from '../../core/model.ts';
import type { SecretCipher } from '../../core/ports.ts';
import { isSealed, SecretUnreadableError } from './sealed.ts';

export const StoredSecrets = z.array(SigningSecret.extend({ secret: z.string().min(1) })).min(1);
export type StoredSecrets = z.infer<typeof StoredSecrets>;

export function sealSecrets(
  cipher: SecretCipher,
  subscriptionId: string,
  secrets: readonly SigningSecret[],
): Promise<StoredSecrets> {
  return Promise.all(
    secrets.map(async (s) => ({ ...s, secret: await cipher.seal(s.secret, subscriptionId) })),
  );
}

/** @throws SecretUnreadableError when one does not open; a ZodError when the list is malformed */
export async function openSecrets(
  cipher: SecretCipher,
  subscriptionId: string,
  stored: unknown,
): Promise<SigningSecret[]> {
  const secrets = StoredSecrets.parse(stored);
  return Promise.all(
    secrets.map(async (s) =>
      SigningSecret.parse({
        ...s,
        secret: isSealed(s.secret) ? await cipher.open(s.secret, subscriptionId) : s.secret,
      }),
    ),
  );
}

/**
 * The secrets for a listing that does not sign (fan-out, redelivery): those of a subscription
 * whose secrets do not open are left out (an empty list), so one unreadable subscription does
 * not stop its partner's others; the dispatcher's read of it, which signs, still fails.
 * Any other error (KMS not answering) is thrown: the listing as a whole is tried again.
 */
export async function openSecretsForListing(
  cipher: SecretCipher,
  subscriptionId: string,
  stored: unknown,
): Promise<SigningSecret[]> {
  try {
    return await openSecrets(cipher, subscriptionId, stored);
  } catch (error) {
    if (error instanceof SecretUnreadableError) return [];
    throw error;
  }
}
