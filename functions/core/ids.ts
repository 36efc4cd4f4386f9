/**
 * Prefixed ULIDs (https://github.com/ulid/spec): 48 bits of milliseconds then 80 random bits,
 * in Crockford base32, so ids sort by creation time as plain strings.
 */
import { hash, randomBytes, randomFillSync } from 'node:crypto';
import type { IdPrefix } from './model.ts';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const TIME_CHARS = 10;
const RANDOM_CHARS = 16;
const RANDOM_BYTES = 10;
const MAX_TIME = 2 ** 48 - 1;
const MAX_RANDOM = (1n << 80n) - 1n;

function encode(value: bigint, length: number): string {
  let text = '';
  let rest = value;
  for (let i = 0; i < length; i++) {
    text = ALPHABET.charAt(Number(rest & 31n)) + text;
    rest >>= 5n;
  }
  return text;
}

/** A source of random bytes, like `crypto.randomBytes`. */
export type RandomSource = (size: number) => Uint8Array;

/** Bytes drawn from the system's generator at once by `pooledRandom`. */
const RANDOM_POOL_BYTES = 4096;

/**
 * Random bytes, like `crypto.randomBytes`, taken from a pool the system's generator fills
 * RANDOM_POOL_BYTES at a time: one call into it per few hundred ids rather than one per id,
 * which showed in a profile of the local runtime.
 */
function pooledRandom(): RandomSource {
  const pool = Buffer.alloc(RANDOM_POOL_BYTES);
  let used = pool.length;
  return (size) => {
    if (size > pool.length) return randomBytes(size);
    if (used + size > pool.length) {
      randomFillSync(pool);
      used = 0;
    }
    used += size;
    // A copy, as randomBytes gives: the pool is drawn again later.
    return new Uint8Array(pool.subarray(used - size, used));
  };
}

/** The number's `length` base32 digits, most significant first; exact up to 2^53. */
function encodeNumber(value: number, length: number): string {
  let text = '';
  let rest = value;
  for (let i = 0; i < length; i++) {
    text = ALPHABET.charAt(rest % 32) + text;
    rest = Math.floor(rest / 32);
  }
  return text;
}

/** Big-endian bytes as base32 digits (five bits each) into `digits`, which must hold them all. */
function toDigits(bytes: Uint8Array, digits: Uint8Array): void {
  let bits = 0;
  let value = 0;
  let at = 0;
  for (const byte of bytes) {
    value = ((value << 8) | byte) & 0xfff;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      digits[at++] = (value >> bits) & 31;
    }
  }
}

/**
 * Builds a ULID generator with its own monotonic state. `ulid` below is the process-wide one;
 * this exists so tests can drive the random part (e.g. to reach the overflow). The random part
 * is kept as its 16 base32 digits, so an id costs no big-integer arithmetic.
 */
export function createUlid(random: RandomSource = pooledRandom()): (time?: number) => string {
  let lastTime = -1;
  const digits = new Uint8Array(RANDOM_CHARS);
  return (time = Date.now()) => {
    checkTime(time);
    if (time === lastTime) {
      // Same millisecond: the spec's monotonic mode increments the random part, so ids made in
      // one tight loop still sort in creation order.
      let last = RANDOM_CHARS - 1;
      while (last >= 0 && digits[last] === 31) last--;
      if (last < 0) throw new Error('ULID random part overflowed within one millisecond');
      digits[last] = (digits[last] ?? 0) + 1;
      digits.fill(0, last + 1);
    } else {
      lastTime = time;
      toDigits(random(RANDOM_BYTES), digits);
    }
    return encodeNumber(time, TIME_CHARS) + digitText(digits);
  };
}

/** Base32 digits as text. */
function digitText(digits: Uint8Array): string {
  let text = '';
  for (const digit of digits) text += ALPHABET.charAt(digit);
  return text;
}

function checkTime(time: number): void {
  if (!Number.isInteger(time) || time < 0 || time > MAX_TIME) {
    throw new RangeError(`ULID time must be an integer from 0 to ${MAX_TIME}, got ${time}`);
  }
}

/** A 26-character ULID for `time` (ms since the epoch), monotonic within a millisecond in this process. */
export const ulid: (time?: number) => string = createUlid();

/** A new id such as `evt_01J9Z…`: the prefix, an underscore, a ULID. */
export function newId(prefix: IdPrefix, time?: number): string {
  return `${prefix}_${ulid(time)}`;
}

/**
 * An id that is the same every time for the same `key`: a ULID whose time is `time` and whose
 * random part is the first 80 bits of the key's SHA-256. It sorts among ids made at that time
 * like any other, and lets a write that is repeated (a retried fan-out, an event emitted
 * again) find the first one by its key alone.
 */
export function derivedId(prefix: IdPrefix, time: number, key: string): string {
  checkTime(time);
  const digits = new Uint8Array(RANDOM_CHARS);
  toDigits(hash('sha256', key, 'buffer').subarray(0, RANDOM_BYTES), digits);
  return `${prefix}_${encodeNumber(time, TIME_CHARS)}${digitText(digits)}`;
}

/**
 * An id whose ULID has time `time` and the 80-bit `random` part given: for a store that
 * encodes where it keeps something in the id it gives it (see the DynamoDB event log).
 */
export function composedId(prefix: IdPrefix, time: number, random: bigint): string {
  checkTime(time);
  if (random < 0n || random > MAX_RANDOM) throw new RangeError('the random part of a ULID has 80 bits');
  return `${prefix}_${encodeNumber(time, TIME_CHARS)}${encode(random, RANDOM_CHARS)}`;
}

/**
 * The time and the 80-bit random part of an id with this prefix, or undefined when the text
 * is not such an id.
 */
export function idParts(prefix: IdPrefix, id: string): { time: number; random: bigint } | undefined {
  if (!id.startsWith(`${prefix}_`)) return undefined;
  const bare = id.slice(prefix.length + 1);
  if (bare.length !== TIME_CHARS + RANDOM_CHARS) return undefined;
  let time = 0n;
  let random = 0n;
  for (const [i, char] of [...bare].entries()) {
    const digit = ALPHABET.indexOf(char);
    if (digit < 0) return undefined;
    if (i < TIME_CHARS) time = (time << 5n) | BigInt(digit);
    else random = (random << 5n) | BigInt(digit);
  }
  if (time > BigInt(MAX_TIME)) return undefined;
  return { time: Number(time), random };
}

/** Characters of the tag an id may carry after its ULID (a delivery id's names its event). */
export const TAG_CHARS = 6;

/** TAG_CHARS characters (30 bits) of SHA-256 over `text`, in the ULID alphabet. */
export function hashTag(text: string): string {
  // The first TAG_CHARS * 5 bits of the digest, most significant first (30 of its first 32).
  const digest = hash('sha256', text, 'buffer');
  return encodeNumber(digest.readUInt32BE(0) >>> (32 - TAG_CHARS * 5), TAG_CHARS);
}

/**
 * The millisecond timestamp a ULID encodes, for a bare ULID or a prefixed id, with or without
 * a tag after the ULID.
 * @throws Error when the text is not a ULID.
 */
export function idTime(id: string): number {
  const bare = id.slice(id.lastIndexOf('_') + 1).toUpperCase();
  const ulidChars = TIME_CHARS + RANDOM_CHARS;
  if (bare.length !== ulidChars && bare.length !== ulidChars + TAG_CHARS) {
    throw new Error(
      `${id} is not a ULID: expected 26 characters after the prefix (and a tag of ${TAG_CHARS})`,
    );
  }
  for (const char of bare) {
    if (!ALPHABET.includes(char)) throw new Error(`${id} is not a ULID: bad character ${char}`);
  }
  let time = 0;
  for (const char of bare.slice(0, TIME_CHARS)) time = time * 32 + ALPHABET.indexOf(char);
  if (time > MAX_TIME) throw new Error(`${id} is not a ULID: its time exceeds 48 bits`);
  return time;
}
