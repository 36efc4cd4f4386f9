/**
 * The local runtime's secret keys: a small JSON file, mode 0600, kept apart from the database
 * (beside it by default), holding one or more AES-256 keys, newest first. The newest seals;
 * every key in the file opens what it sealed, which is what lets a key be rotated.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import * as z from 'zod';
import type { SecretCipher } from '../../core/ports.ts';
import { isSealed, KEY_BYTES, openWith, parseSealed, SecretUnreadableError, sealWith } from './sealed.ts';

export interface LocalKey {
  /** Derived from the key (a hash prefix), so it names the key without revealing it. */
  id: string;
  key: Buffer;
  createdAt: string;
}

const KeyFile = z.object({
  keys: z
    .array(
      z.object({
        id: z.string().min(1),
        key: z.base64url(),
        createdAt: z.string(),
      }),
    )
    .min(1),
});

function keyId(key: Buffer): string {
  return `k${createHash('sha256').update(key).digest('hex').slice(0, 12)}`;
}

/** A key of the given bytes, named by them. */
export function localKey(key: Buffer, createdAt: Date): LocalKey {
  if (key.length !== KEY_BYTES) throw new Error(`a key is ${KEY_BYTES} bytes`);
  return { id: keyId(key), key, createdAt: createdAt.toISOString() };
}

export function generateLocalKey(now: Date = new Date()): LocalKey {
  return localKey(randomBytes(KEY_BYTES), now);
}

/** Thrown when the key file is there but cannot be used; the message says what is wrong. */
export class KeyFileError extends Error {}

/** The keys in the file, newest first, or undefined when there is no file. @throws KeyFileError */
export function readKeyFile(path: string): LocalKey[] | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  let parsed: z.infer<typeof KeyFile>;
  try {
    parsed = KeyFile.parse(JSON.parse(text));
  } catch {
    throw new KeyFileError(`${path} is not a secret key file ({"keys": [{"id", "key", "createdAt"}]})`);
  }
  return parsed.keys.map(({ id, key, createdAt }) => {
    const bytes = Buffer.from(key, 'base64url');
    if (bytes.length !== KEY_BYTES || keyId(bytes) !== id) {
      throw new KeyFileError(`${path}: key ${id} is not a ${KEY_BYTES}-byte key with that id`);
    }
    return { id, key: bytes, createdAt };
  });
}

/**
 * Writes the keys, newest first, to a new file (mode 0600) that then replaces the old one, so
 * a crash leaves either file whole, never half of one.
 */
export function writeKeyFile(path: string, keys: readonly LocalKey[]): void {
  const text = `${JSON.stringify(
    { keys: keys.map(({ id, key, createdAt }) => ({ id, key: key.toString('base64url'), createdAt })) },
    null,
    2,
  )}\n`;
  // A new file of its own ('wx': never one that is there, nor a link), removed if it fails.
  const temporary = `${path}.${randomBytes(8).toString('hex')}.tmp`;
  const fd = openSync(temporary, 'wx', 0o600);
  try {
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
  // The rename itself is on disk only once the directory is.
  const dir = openSync(dirname(path), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

/** Seals with the newest key; opens with whichever key of the file sealed it. */
export class KeyFileCipher implements SecretCipher {
  readonly #keys: readonly LocalKey[];

  constructor(keys: readonly LocalKey[]) {
    if (keys.length === 0) throw new Error('at least one key is needed');
    this.#keys = keys;
  }

  async seal(secret: string, context: string): Promise<string> {
    const { id, key } = this.#current();
    return sealWith('local', id, key, secret, context);
  }

  async open(sealed: string, context: string): Promise<string> {
    if (!isSealed(sealed)) throw new SecretUnreadableError(`a signing secret of ${context} is not sealed`);
    const parts = parseSealed(sealed);
    if (parts.scheme !== 'local') {
      throw new SecretUnreadableError(
        `a signing secret of ${context} is sealed with ${parts.scheme}, not a key file`,
      );
    }
    const found = this.#keys.find((k) => k.id === parts.key);
    if (!found) {
      throw new SecretUnreadableError(
        `a signing secret of ${context} is sealed with key ${parts.key}, which the key file does not hold`,
      );
    }
    return openWith(parts, found.key, context);
  }

  #current(): LocalKey {
    const [current] = this.#keys;
    if (!current) throw new Error('no key');
    return current;
  }
}
