/**
 * The ciphers that seal signing secrets: AES-256-GCM bound to the subscription, under a key
 * file's keys (local) or KMS data keys (AWS; KMS itself is mocked, nothing local answers it).
 */
import 'aws-sdk-client-mock-vitest/extend';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DecryptCommand, GenerateDataKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DATA_KEY_MAX_AGE_MS,
  ENCRYPTION_CONTEXT,
  KmsSecretCipher,
  KmsUnavailableError,
} from '../../functions/adapters/aws/kms-cipher.ts';
import {
  generateLocalKey,
  KeyFileCipher,
  KeyFileError,
  readKeyFile,
  writeKeyFile,
} from '../../functions/adapters/secrets/key-file.ts';
import { RememberingCipher } from '../../functions/adapters/secrets/remembering-cipher.ts';
import { isSealed, parseSealed, SecretUnreadableError } from '../../functions/adapters/secrets/sealed.ts';
import { openSecrets, sealSecrets } from '../../functions/adapters/secrets/signing-secrets.ts';
import { generateSecret } from '../../functions/core/signing.ts';

const SUB = 'sub_01KEYTEST0000000000000000';
const OTHER = 'sub_01KEYTEST0000000000000001';

describe('KeyFileCipher', () => {
  it('seals a secret that opens again, and never the same text twice', async () => {
    const cipher = new KeyFileCipher([generateLocalKey()]);
    const secret = generateSecret();
    const a = await cipher.seal(secret, SUB);
    const b = await cipher.seal(secret, SUB);
    expect(isSealed(a)).toBe(true);
    expect(a).not.toContain(secret.slice('whsec_'.length));
    expect(a).not.toBe(b);
    expect(await cipher.open(a, SUB)).toBe(secret);
    expect(await cipher.open(b, SUB)).toBe(secret);
  });

  it('opens a secret only for the subscription it was sealed for', async () => {
    const cipher = new KeyFileCipher([generateLocalKey()]);
    const sealed = await cipher.seal(generateSecret(), SUB);
    await expect(cipher.open(sealed, OTHER)).rejects.toThrow(SecretUnreadableError);
  });

  it('refuses an altered secret, a truncated one and text that is not sealed', async () => {
    const cipher = new KeyFileCipher([generateLocalKey()]);
    const sealed = await cipher.seal(generateSecret(), SUB);
    const parts = sealed.split('.');
    const box = Buffer.from(parts[4] ?? '', 'base64url');
    box[0] = (box[0] ?? 0) ^ 1;
    const altered = [...parts.slice(0, 4), box.toString('base64url')].join('.');
    await expect(cipher.open(altered, SUB)).rejects.toThrow(SecretUnreadableError);
    await expect(cipher.open([...parts.slice(0, 4), 'AA'].join('.'), SUB)).rejects.toThrow(
      SecretUnreadableError,
    );
    await expect(cipher.open('whsec_abc', SUB)).rejects.toThrow(SecretUnreadableError);
    await expect(cipher.open('sealed.local.k1', SUB)).rejects.toThrow(SecretUnreadableError);
  });

  it('seals with its newest key and opens with any key it holds; a key it lacks is named', async () => {
    const older = generateLocalKey();
    const newer = generateLocalKey();
    const sealedOld = await new KeyFileCipher([older]).seal('whsec_old', SUB);
    const both = new KeyFileCipher([newer, older]);
    expect(parseSealed(await both.seal('whsec_new', SUB)).key).toBe(newer.id);
    expect(await both.open(sealedOld, SUB)).toBe('whsec_old');
    await expect(new KeyFileCipher([newer]).open(sealedOld, SUB)).rejects.toThrow(older.id);
  });
});

describe('the key file', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'key-file-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('is written whole with mode 0600, and read back key for key', () => {
    const path = join(dir, 'keys.json');
    const keys = [generateLocalKey(), generateLocalKey()];
    writeKeyFile(path, keys);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readKeyFile(path)).toEqual(keys);
    expect(readKeyFile(join(dir, 'absent.json'))).toBeUndefined();
  });

  it('is refused when it is not a key file, or a key does not match its id', () => {
    const path = join(dir, 'keys.json');
    writeFileSync(path, 'not json');
    expect(() => readKeyFile(path)).toThrow(KeyFileError);
    const [key] = [generateLocalKey()];
    writeFileSync(
      path,
      JSON.stringify({ keys: [{ id: 'k000000000000', key: key?.key.toString('base64url'), createdAt: '' }] }),
    );
    expect(() => readKeyFile(path)).toThrow(/not a 32-byte key with that id/);
    writeFileSync(path, JSON.stringify({ keys: [] }));
    expect(() => readKeyFile(path)).toThrow(KeyFileError);
  });
});

describe('stored signing secrets', () => {
  it('seals every secret of the list and opens them again; a secret in the clear reads as it is', async () => {
    const cipher = new KeyFileCipher([generateLocalKey()]);
    const secrets = [
      { secret: generateSecret(), createdAt: '2026-12-01T00:00:00.000Z' },
      {
        secret: generateSecret(),
        createdAt: '2026-11-01T00:00:00.000Z',
        expiresAt: '2026-12-02T00:00:00.000Z',
      },
    ];
    const stored = await sealSecrets(cipher, SUB, secrets);
    expect(stored.every((s) => isSealed(s.secret))).toBe(true);
    expect(stored.map(({ createdAt, expiresAt }) => ({ createdAt, expiresAt }))).toEqual(
      secrets.map(({ createdAt, expiresAt }) => ({ createdAt, expiresAt })),
    );
    expect(await openSecrets(cipher, SUB, stored)).toEqual(secrets);
    expect(await openSecrets(cipher, SUB, secrets)).toEqual(secrets);
  });

  it('fails on a list that is not one, rather than reading no secret', async () => {
    const cipher = new KeyFileCipher([generateLocalKey()]);
    await expect(openSecrets(cipher, SUB, [])).rejects.toThrow();
    await expect(openSecrets(cipher, SUB, [{ secret: 'plain text' }])).rejects.toThrow();
  });
});

describe('KmsSecretCipher', () => {
  const kms = mockClient(KMSClient);
  const KEY = 'arn:aws:kms:us-east-1:111122223333:key/secrets';
  let now = 1_000_000;
  let issued = 0;

  beforeEach(() => {
    kms.reset();
    now = 1_000_000;
    issued = 0;
    // A stand-in for KMS: each data key is random, its "encrypted" copy names it.
    const keys = new Map<string, Uint8Array>();
    kms.on(GenerateDataKeyCommand).callsFake(async () => {
      issued += 1;
      const plaintext = new Uint8Array(generateLocalKey().key);
      const blob = new Uint8Array(Buffer.from(`data-key-${issued}`));
      keys.set(Buffer.from(blob).toString(), plaintext);
      return { Plaintext: plaintext, CiphertextBlob: blob, KeyId: KEY };
    });
    kms.on(DecryptCommand).callsFake(async (input: { CiphertextBlob: Uint8Array }) => {
      const plaintext = keys.get(Buffer.from(input.CiphertextBlob).toString());
      if (!plaintext) throw Object.assign(new Error('bad'), { name: 'InvalidCiphertextException' });
      return { Plaintext: plaintext, KeyId: KEY };
    });
  });

  const cipher = () => new KmsSecretCipher(new KMSClient({}), KEY, { now: () => now });

  it('asks KMS for one data key for many seals, with the key and the encryption context', async () => {
    const c = cipher();
    const sealed = await Promise.all([1, 2, 3].map((n) => c.seal(`whsec_${n}`, SUB)));
    expect(kms).toHaveReceivedCommandTimes(GenerateDataKeyCommand, 1);
    expect(kms).toHaveReceivedCommandWith(GenerateDataKeyCommand, {
      KeyId: KEY,
      KeySpec: 'AES_256',
      EncryptionContext: ENCRYPTION_CONTEXT,
    });
    // What a container sealed it opens without KMS.
    expect(await c.open(sealed[1] ?? '', SUB)).toBe('whsec_2');
    expect(kms).toHaveReceivedCommandTimes(DecryptCommand, 0);
  });

  it('opens another container’s secrets with one Decrypt per data key, then from memory', async () => {
    const sealed = await cipher().seal('whsec_a', SUB);
    const other = cipher();
    expect(await other.open(sealed, SUB)).toBe('whsec_a');
    expect(await other.open(sealed, SUB)).toBe('whsec_a');
    expect(kms).toHaveReceivedCommandTimes(DecryptCommand, 1);
    expect(kms).toHaveReceivedCommandWith(DecryptCommand, {
      KeyId: KEY,
      EncryptionContext: ENCRYPTION_CONTEXT,
    });
    await expect(other.open(sealed, OTHER)).rejects.toThrow(SecretUnreadableError);
  });

  it('takes a new data key once the one it seals with is an hour old', async () => {
    const c = cipher();
    const first = parseSealed(await c.seal('whsec_a', SUB)).key;
    now += DATA_KEY_MAX_AGE_MS - 1;
    expect(parseSealed(await c.seal('whsec_b', SUB)).key).toBe(first);
    now += 1;
    expect(parseSealed(await c.seal('whsec_c', SUB)).key).not.toBe(first);
    expect(kms).toHaveReceivedCommandTimes(GenerateDataKeyCommand, 2);
  });

  it('passes a throttled KMS on as unavailable (a 503), and asks again next time', async () => {
    const sealed = await cipher().seal('whsec_a', SUB);
    const c = cipher();
    kms
      .on(DecryptCommand)
      .rejectsOnce(Object.assign(new Error('slow down'), { name: 'ThrottlingException' }))
      .resolves({ Plaintext: undefined });
    await expect(c.open(sealed, SUB)).rejects.toThrow(KmsUnavailableError);
    await expect(c.open(sealed, SUB)).rejects.toThrow(/no data key/);
    expect(kms).toHaveReceivedCommandTimes(DecryptCommand, 2);
  });

  it.each([
    ['a timeout', 'TimeoutError', KmsUnavailableError],
    ['a reset connection', 'ECONNRESET', KmsUnavailableError],
    ['a disabled key', 'DisabledException', KmsUnavailableError],
    ['a missing grant', 'AccessDeniedException', Error],
  ] as const)('passes %s on as %s', async (_, name, kind) => {
    const sealed = await cipher().seal('whsec_a', SUB);
    kms.on(DecryptCommand).rejects(Object.assign(new Error('failed'), { name }));
    const failure = cipher().open(sealed, SUB);
    await expect(failure).rejects.toThrow(kind);
    if (kind === Error) await expect(failure).rejects.not.toThrow(KmsUnavailableError);
  });

  it('reads a data key KMS will not decrypt as unreadable, and a local key’s secret as not its own', async () => {
    const c = cipher();
    const forged = `sealed.kms.${Buffer.from('never-issued').toString('base64url')}.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAA`;
    await expect(c.open(forged, SUB)).rejects.toThrow(SecretUnreadableError);
    const local = await new KeyFileCipher([generateLocalKey()]).seal('whsec_a', SUB);
    await expect(c.open(local, SUB)).rejects.toThrow(/sealed with local, not KMS/);
  });
});

describe('RememberingCipher', () => {
  it('opens each sealed secret once, keeps the subscription part of the key, and forgets the oldest past its bound', async () => {
    const inner = new KeyFileCipher([generateLocalKey()]);
    let opened = 0;
    const counting = {
      seal: (secret: string, context: string) => inner.seal(secret, context),
      open: (sealed: string, context: string) => {
        opened += 1;
        return inner.open(sealed, context);
      },
    };
    const cipher = new RememberingCipher(counting, 2);
    const a = await cipher.seal('whsec_a', SUB);
    const b = await cipher.seal('whsec_b', SUB);
    expect(await cipher.open(a, SUB)).toBe('whsec_a');
    expect(await cipher.open(a, SUB)).toBe('whsec_a');
    expect(opened).toBe(1);
    // Under another subscription it is opened (and refused) again, never served from memory.
    await expect(cipher.open(a, OTHER)).rejects.toThrow(SecretUnreadableError);
    expect(await cipher.open(b, SUB)).toBe('whsec_b');
    const c = await cipher.seal('whsec_c', SUB);
    await cipher.open(c, SUB);
    opened = 0;
    await cipher.open(a, SUB);
    expect(opened).toBe(1);
  });
});
