/**
 * Standard Webhooks signing (https://www.standardwebhooks.com): every callback carries
 * `webhook-id`, `webhook-timestamp` and `webhook-signature`, the last being one signature of
 * `id.timestamp.body` per active secret: `v1,<base64 HMAC-SHA256>` by a shared secret
 * (`whsec_`), or `v1a,<base64 Ed25519 signature>` by a signing key (`whsk_`, ours alone), which
 * a receiver verifies with its public key (`whpk_`, base64 of the raw 32-byte key) and no secret.
 */
import {
  createHmac,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign as signWith,
  timingSafeEqual,
  verify as verifyWith,
} from 'node:crypto';

const SECRET_PREFIX = 'whsec_';
/** A signing key: `whsk_` and the base64 of its 32-byte seed and then its 32-byte public key. */
export const SIGNING_KEY_PREFIX = 'whsk_';
/** A public key: `whpk_` and the base64 of the raw 32-byte Ed25519 key. */
export const PUBLIC_KEY_PREFIX = 'whpk_';
const DEFAULT_TOLERANCE_SECONDS = 300;

/** What a signature covers. */
export interface SignatureInput {
  /** The `webhook-id`: the delivery id, stable across retries so receivers can dedupe. */
  id: string;
  /** Unix seconds. */
  timestamp: number;
  /** The exact bytes sent, as text: re-serialising JSON would change the signature. */
  body: string;
  /** Every secret that signs; during a rotation both the new and the old one. */
  secrets: readonly string[];
}

/** A new signing secret: `whsec_` and the base64 of 24 random bytes (192 bits). */
export function generateSecret(): string {
  return SECRET_PREFIX + randomBytes(24).toString('base64');
}

/** A new Ed25519 signing key (`whsk_`); its public key is publicKeyOf's. */
export function generateSigningKey(): string {
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  if (jwk.d === undefined || jwk.x === undefined) throw new Error('an Ed25519 key without its parts');
  return (
    SIGNING_KEY_PREFIX +
    Buffer.concat([Buffer.from(jwk.d, 'base64url'), Buffer.from(jwk.x, 'base64url')]).toString('base64')
  );
}

/** Whether the secret is a signing key (`whsk_`, signing `v1a`) rather than a shared secret. */
export function isSigningKey(secret: string): boolean {
  return secret.startsWith(SIGNING_KEY_PREFIX);
}

function signingKeyParts(secret: string): { seed: Buffer; publicKey: Buffer } {
  const raw = Buffer.from(secret.slice(SIGNING_KEY_PREFIX.length), 'base64');
  if (raw.length !== 64) throw new Error('a signing key is 64 bytes: its seed and its public key');
  return { seed: raw.subarray(0, 32), publicKey: raw.subarray(32) };
}

/** The public key (`whpk_`) a receiver verifies a signing key's `v1a` signatures with. */
export function publicKeyOf(signingKey: string): string {
  return PUBLIC_KEY_PREFIX + signingKeyParts(signingKey).publicKey.toString('base64');
}

/** Key objects made from keys seen: making one costs more than signing with it. */
const keyObjects = new Map<string, KeyObject>();
const MAX_KEY_OBJECTS = 1000;

function keyObject(text: string, make: () => KeyObject): KeyObject {
  const known = keyObjects.get(text);
  if (known !== undefined) return known;
  const made = make();
  if (keyObjects.size >= MAX_KEY_OBJECTS) keyObjects.clear();
  keyObjects.set(text, made);
  return made;
}

function privateKeyOf(signingKey: string): KeyObject {
  return keyObject(signingKey, () => {
    const { seed, publicKey } = signingKeyParts(signingKey);
    return createPrivateKey({
      key: { kty: 'OKP', crv: 'Ed25519', d: seed.toString('base64url'), x: publicKey.toString('base64url') },
      format: 'jwk',
    });
  });
}

function publicKeyObjectOf(publicKey: string): KeyObject {
  return keyObject(publicKey, () => {
    const raw = Buffer.from(publicKey.slice(PUBLIC_KEY_PREFIX.length), 'base64');
    if (raw.length !== 32) throw new Error('a public key is 32 bytes');
    return createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') },
      format: 'jwk',
    });
  });
}

/**
 * The shared secret's key, made once per secret: an HMAC keyed by a KeyObject skips the checks
 * of what kind of key a Buffer is, which cost Node 24 several times the HMAC of a callback.
 */
function secretKey(secret: string): KeyObject {
  return keyObject(secret, () => {
    const encoded = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
    const key = Buffer.from(encoded, 'base64');
    if (key.length === 0) throw new Error('signing secret is empty');
    return createSecretKey(key);
  });
}

function sign(key: KeyObject, id: string, timestamp: number | string, body: string): string {
  return createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64');
}

/** The `webhook-signature` value: one space-separated `v1,<signature>` per secret. */
export function signatureHeader(input: SignatureInput): string {
  if (!Number.isInteger(input.timestamp)) {
    throw new Error(`webhook timestamp must be whole unix seconds, got ${input.timestamp}`);
  }
  if (input.secrets.length === 0) throw new Error('at least one signing secret is required');
  return input.secrets
    .map((secret) =>
      isSigningKey(secret)
        ? `v1a,${signWith(null, Buffer.from(`${input.id}.${input.timestamp}.${input.body}`), privateKeyOf(secret)).toString('base64')}`
        : `v1,${sign(secretKey(secret), input.id, input.timestamp, input.body)}`,
    )
    .join(' ');
}

/** The headers of a signed callback, content type included. */
export function webhookHeaders(input: SignatureInput): Record<string, string> {
  return {
    'webhook-id': input.id,
    'webhook-timestamp': String(input.timestamp),
    'webhook-signature': signatureHeader(input),
    'content-type': 'application/json',
  };
}

/** What a receiver checks: the request's headers and raw body against one secret or public key. */
export interface VerifyInput {
  /** Header names in any case. */
  headers: Record<string, string | undefined>;
  body: string;
  /** A shared secret (`whsec_`: `v1` signatures), or a public key (`whpk_`: `v1a` ones). */
  secret: string;
  /** How far the timestamp may be from `now`, either way; replay protection. Default 300. */
  toleranceSeconds?: number;
  now?: Date;
}

/**
 * True when the headers carry a signature of the body by the secret (`v1`) or by the key whose
 * public key is given (`v1a`), and a timestamp within the tolerance: the receiver's side of the scheme, next to the sender's so both follow one reading
 * of the spec.
 */
export function verifySignature(input: VerifyInput): boolean {
  const headers = new Map<string, string>();
  for (const [name, value] of Object.entries(input.headers)) {
    if (value !== undefined) headers.set(name.toLowerCase(), value);
  }
  const id = headers.get('webhook-id');
  const timestampText = headers.get('webhook-timestamp');
  const signatures = headers.get('webhook-signature');
  if (!id || !timestampText || !signatures || !/^\d+$/.test(timestampText)) return false;

  const timestamp = Number(timestampText);
  const now = Math.floor((input.now ?? new Date()).getTime() / 1000);
  if (Math.abs(now - timestamp) > (input.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS)) return false;

  if (input.secret.startsWith(PUBLIC_KEY_PREFIX)) {
    const key = publicKeyObjectOf(input.secret);
    const signed = Buffer.from(`${id}.${timestampText}.${input.body}`);
    return signatures.split(' ').some((entry) => {
      const comma = entry.indexOf(',');
      if (comma < 0 || entry.slice(0, comma) !== 'v1a') return false;
      const signature = Buffer.from(entry.slice(comma + 1), 'base64');
      return signature.length === 64 && verifyWith(null, signed, key, signature);
    });
  }
  // The timestamp as the header has it: the signature covers the text sent.
  const expected = Buffer.from(sign(secretKey(input.secret), id, timestampText, input.body));
  // Check every entry, without stopping at the first match, so timing says nothing about which one matched.
  let matched = false;
  for (const entry of signatures.split(' ')) {
    const comma = entry.indexOf(',');
    if (comma < 0 || entry.slice(0, comma) !== 'v1') continue;
    const candidate = Buffer.from(entry.slice(comma + 1));
    if (candidate.length === expected.length && timingSafeEqual(candidate, expected)) matched = true;
  }
  return matched;
}
