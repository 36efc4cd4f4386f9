/**
 * Signing secrets as the stores keep them: AES-256-GCM under a key that is not in the store,
 * bound to the subscription they belong to, so a sealed secret copied onto another
 * subscription does not open.
 *
 * A sealed secret is text: `sealed.<scheme>.<key>.<iv>.<ciphertext and tag>`, the last three
 * base64url. `scheme` says where the key lives (`local`: a key file, `kms`: a KMS data key)
 * and `key` names it (a local key's id, or the KMS-encrypted data key itself), so a store
 * can hold secrets sealed under several keys and each opens with its own.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

export type SealScheme = 'local' | 'kms';

const PREFIX = 'sealed';
const IV_BYTES = 12;
const TAG_BYTES = 16;
export const KEY_BYTES = 32;

/** The parts of a sealed secret. */
export interface SealedParts {
  scheme: SealScheme;
  key: string;
  iv: Buffer;
  /** The ciphertext followed by the 16-byte GCM tag. */
  box: Buffer;
}

/** Thrown when a sealed secret cannot be opened: another key, another subscription, or altered. */
export class SecretUnreadableError extends Error {}

/** True for text in the sealed form (of any scheme); a signing secret in the clear is not. */
export function isSealed(text: string): boolean {
  return text.startsWith(`${PREFIX}.`);
}

export function parseSealed(text: string): SealedParts {
  const [prefix, scheme, key, iv, box, ...rest] = text.split('.');
  if (
    prefix !== PREFIX ||
    (scheme !== 'local' && scheme !== 'kms') ||
    !key ||
    !iv ||
    !box ||
    rest.length > 0
  ) {
    throw new SecretUnreadableError('not a sealed secret');
  }
  return { scheme, key, iv: Buffer.from(iv, 'base64url'), box: Buffer.from(box, 'base64url') };
}

/** Encrypts with a fresh random IV; `context` (the subscription id) is authenticated, not stored. */
export function sealWith(
  scheme: SealScheme,
  keyRef: string,
  key: Buffer,
  secret: string,
  context: string,
): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(context, 'utf8'));
  const box = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final(), cipher.getAuthTag()]);
  return [PREFIX, scheme, keyRef, iv.toString('base64url'), box.toString('base64url')].join('.');
}

/** Decrypts and authenticates. @throws SecretUnreadableError */
export function openWith(parts: SealedParts, key: Buffer, context: string): string {
  if (parts.iv.length !== IV_BYTES || parts.box.length < TAG_BYTES) {
    throw new SecretUnreadableError('a sealed secret is truncated');
  }
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, parts.iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(context, 'utf8'));
    decipher.setAuthTag(parts.box.subarray(parts.box.length - TAG_BYTES));
    return Buffer.concat([
      decipher.update(parts.box.subarray(0, parts.box.length - TAG_BYTES)),
      decipher.final(),
    ]).toString('utf8');
  } catch {
    throw new SecretUnreadableError(
      `a signing secret of ${context} does not open with its key: altered, or sealed for another subscription`,
    );
  }
}
