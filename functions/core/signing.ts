/**
 * Standard Webhooks signing (https://www.standardwebhooks.com): every callback carries
 * `webhook-id`, `webhook-timestamp` and `webhook-signature`, the last being
 * `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` once per active secret.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const SECRET_PREFIX = 'whsec_';
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

function secretKey(secret: string): Buffer {
  const encoded = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  const key = Buffer.from(encoded, 'base64');
  if (key.length === 0) throw new Error('signing secret is empty');
  return key;
}

function sign(key: Buffer, id: string, timestamp: number, body: string): string {
  return createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64');
}

/** The `webhook-signature` value: one space-separated `v1,<signature>` per secret. */
export function signatureHeader(input: SignatureInput): string {
  if (!Number.isInteger(input.timestamp)) {
    throw new Error(`webhook timestamp must be whole unix seconds, got ${input.timestamp}`);
  }
  if (input.secrets.length === 0) throw new Error('at least one signing secret is required');
  return input.secrets
    .map((secret) => `v1,${sign(secretKey(secret), input.id, input.timestamp, input.body)}`)
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

/** What a receiver checks: the request's headers and raw body against one secret. */
export interface VerifyInput {
  /** Header names in any case. */
  headers: Record<string, string | undefined>;
  body: string;
  secret: string;
  /** How far the timestamp may be from `now`, either way; replay protection. Default 300. */
  toleranceSeconds?: number;
  now?: Date;
}

/**
 * True when the headers carry a `v1` signature of the body by the secret and a timestamp within
 * the tolerance: the receiver's side of the scheme, next to the sender's so both follow one reading
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

  const expected = Buffer.from(sign(secretKey(input.secret), id, timestamp, input.body));
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
