/**
 * A subscription's signing secrets as its store keeps them: the same list, each `secret`
 * sealed by the cipher for that subscription. A secret still in the clear (`whsec_…`, as
 * stores written before sealing hold them) is read as it is and sealed at its next write.
 */
import * as z from 'zod';
import { SigningSecret } from '../../core/model.ts';
import type { SecretCipher } from '../../ports.ts';
import { isSealed } from './sealed.ts';

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
