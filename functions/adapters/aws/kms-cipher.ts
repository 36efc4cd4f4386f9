/**
 * Signing secrets sealed with KMS envelope encryption: each Lambda container asks KMS for a
 * data key (GenerateDataKey) the first time it seals, and seals with it in memory for up to an
 * hour; the data key, encrypted by the KMS key, travels inside every sealed secret. Opening
 * asks KMS to decrypt that data key once per container and keeps it, so a warm dispatcher
 * opens secrets without calling KMS. Data keys are bound to an encryption context that names
 * their purpose, and each secret to its subscription (AES-GCM additional data).
 *
 * KMS rotates the key's material itself (automatic rotation, on in the CDK stack) and keeps
 * every earlier version, so secrets sealed before a rotation keep opening.
 */
import { DecryptCommand, GenerateDataKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { ServiceUnavailableError } from '../../core/errors.ts';
import type { SecretCipher } from '../../core/ports.ts';
import { setBounded } from '../bounded-map.ts';
import { RememberingCipher } from '../secrets/remembering-cipher.ts';
import {
  isSealed,
  KEY_BYTES,
  openWith,
  parseSealed,
  SecretUnreadableError,
  sealWith,
} from '../secrets/sealed.ts';

/** Bound to every data key: KMS decrypts one only for the same context. */
export const ENCRYPTION_CONTEXT = { purpose: 'webhook-signing-secrets' } as const;
/** How long a container seals with one data key before it asks for a new one. */
export const DATA_KEY_MAX_AGE_MS = 3_600_000;
/** Seals with one data key at most (random 96-bit IVs stay far from collision below 2^32). */
export const DATA_KEY_MAX_USES = 2 ** 24;
/** Opened data keys a container keeps; the oldest is dropped past this. */
export const OPENED_KEYS_KEPT = 256;

/** KMS errors that say the data key itself is bad: the secret cannot be opened, ever. */
const UNREADABLE = new Set(['InvalidCiphertextException', 'IncorrectKeyException']);
/** KMS errors of a deployment set up wrong (a key or grant missing): left as they are, for ops. */
const MISCONFIGURED = new Set(['AccessDeniedException', 'NotFoundException', 'InvalidKeyUsageException']);

/** KMS did not answer as it should: nothing was read or written, the caller tries again (503). */
export class KmsUnavailableError extends ServiceUnavailableError {}

interface DataKey {
  plaintext: Buffer;
  /** The KMS-encrypted data key, base64url: what a sealed secret carries. */
  encrypted: string;
  createdAt: number;
  uses: number;
}

/**
 * A KMS error as the caller should see it: a bad data key as unreadable, a deployment set up
 * wrong as it is, and anything else (throttling, a disabled or unavailable key, a timeout, the
 * network) as a 503 to try again.
 */
function kmsFailure(error: unknown): never {
  const name = error instanceof Error ? error.name : '';
  if (UNREADABLE.has(name)) {
    throw new SecretUnreadableError(`KMS cannot decrypt a signing secret's data key (${name})`);
  }
  if (MISCONFIGURED.has(name)) throw error;
  throw new KmsUnavailableError('the signing secrets cannot be read just now; try again', [], {
    cause: error,
  });
}

export class KmsSecretCipher implements SecretCipher {
  readonly #client: KMSClient;
  readonly #keyId: string;
  readonly #now: () => number;
  #dataKey: Promise<DataKey> | undefined;
  readonly #opened = new Map<string, Promise<Buffer>>();

  constructor(client: KMSClient, keyId: string, options: { now?: () => number } = {}) {
    this.#client = client;
    this.#keyId = keyId;
    this.#now = options.now ?? Date.now;
  }

  async seal(secret: string, context: string): Promise<string> {
    const dataKey = await this.#currentDataKey();
    dataKey.uses += 1;
    return sealWith('kms', dataKey.encrypted, dataKey.plaintext, secret, context);
  }

  async open(sealed: string, context: string): Promise<string> {
    if (!isSealed(sealed)) throw new SecretUnreadableError(`a signing secret of ${context} is not sealed`);
    const parts = parseSealed(sealed);
    if (parts.scheme !== 'kms') {
      throw new SecretUnreadableError(
        `a signing secret of ${context} is sealed with ${parts.scheme}, not KMS`,
      );
    }
    return openWith(parts, await this.#openDataKey(parts.key), context);
  }

  /** The data key to seal with; concurrent callers share one fetch, and an old or worn key is replaced once. */
  async #currentDataKey(): Promise<DataKey> {
    for (;;) {
      const pending = this.#dataKey ?? this.#newDataKey();
      const key = await pending;
      if (this.#now() - key.createdAt < DATA_KEY_MAX_AGE_MS && key.uses < DATA_KEY_MAX_USES) return key;
      if (this.#dataKey === pending) this.#newDataKey();
    }
  }

  #newDataKey(): Promise<DataKey> {
    const fetched = this.#client
      .send(
        new GenerateDataKeyCommand({
          KeyId: this.#keyId,
          KeySpec: 'AES_256',
          EncryptionContext: ENCRYPTION_CONTEXT,
        }),
      )
      .then((out) => {
        if (!out.Plaintext || !out.CiphertextBlob || out.Plaintext.length !== KEY_BYTES) {
          throw new Error('KMS returned no data key');
        }
        const encrypted = Buffer.from(out.CiphertextBlob).toString('base64url');
        const plaintext = Buffer.from(out.Plaintext);
        // What this container sealed it opens without asking KMS.
        this.#remember(encrypted, Promise.resolve(plaintext));
        return { plaintext, encrypted, createdAt: this.#now(), uses: 0 };
      }, kmsFailure);
    this.#dataKey = fetched;
    // A failed fetch is not kept: the next seal asks again.
    fetched.catch(() => {
      if (this.#dataKey === fetched) this.#dataKey = undefined;
    });
    return fetched;
  }

  #openDataKey(encrypted: string): Promise<Buffer> {
    const known = this.#opened.get(encrypted);
    if (known) return known;
    const opened = this.#client
      .send(
        new DecryptCommand({
          CiphertextBlob: Buffer.from(encrypted, 'base64url'),
          KeyId: this.#keyId,
          EncryptionContext: ENCRYPTION_CONTEXT,
        }),
      )
      .then((out) => {
        if (!out.Plaintext || out.Plaintext.length !== KEY_BYTES) throw new Error('KMS returned no data key');
        return Buffer.from(out.Plaintext);
      }, kmsFailure);
    this.#remember(encrypted, opened);
    opened.catch(() => {
      if (this.#opened.get(encrypted) === opened) this.#opened.delete(encrypted);
    });
    return opened;
  }

  #remember(encrypted: string, key: Promise<Buffer>): void {
    setBounded(this.#opened, encrypted, key, OPENED_KEYS_KEPT);
  }
}

/**
 * The cipher of the Lambda entries' subscription stores: KMS data keys, with the secrets an
 * instance has opened remembered (each delivery reads its subscription again).
 */
export function rememberingKmsCipher(kms: KMSClient, keyArn: string): SecretCipher {
  return new RememberingCipher(new KmsSecretCipher(kms, keyArn));
}
