import { createHash } from 'node:crypto';
import * as fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { eventIdAt, seqInId } from '../../functions/adapters/aws/events.ts';
import { eventTag, eventTagOf, fanoutDeliveryId, newDelivery } from '../../functions/core/fanout.ts';
import {
  composedId,
  createUlid,
  derivedId,
  hashTag,
  idParts,
  idTime,
  newId,
  ulid,
} from '../../functions/core/ids.ts';
import { AttemptId, DeliveryId, EventId, PartnerId, SubscriptionId } from '../../functions/core/model.ts';

const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;

describe('ulid', () => {
  describe('format', () => {
    it('is 26 Crockford base32 characters', () => {
      expect(ulid()).toMatch(ULID);
    });

    it('encodes the time in the first 10 characters', () => {
      expect(ulid(0).slice(0, 10)).toBe('0000000000');
      expect(ulid(2 ** 48 - 1).slice(0, 10)).toBe('7ZZZZZZZZZ');
    });

    it('rejects times outside 48 bits or not whole milliseconds', () => {
      expect(() => ulid(-1)).toThrow(RangeError);
      expect(() => ulid(2 ** 48)).toThrow(RangeError);
      expect(() => ulid(1.5)).toThrow(RangeError);
    });
  });

  describe('monotonicity', () => {
    it('sorts 10,000 ids made in a tight loop in creation order, with no duplicates', () => {
      const ids = Array.from({ length: 10_000 }, () => ulid());
      for (let i = 1; i < ids.length; i++) {
        expect((ids[i - 1] ?? '') < (ids[i] ?? '')).toBe(true);
      }
      expect(new Set(ids).size).toBe(ids.length);
    });

    it('increments the random part within one millisecond', () => {
      const next = createUlid(() => new Uint8Array(10));
      // 1000 ms is 31 * 32 + 8: "Z8" in base32.
      expect(next(1_000)).toBe(`00000000Z8${'0'.repeat(16)}`);
      expect(next(1_000)).toBe(`00000000Z8${'0'.repeat(15)}1`);
      expect(next(1_000)).toBe(`00000000Z8${'0'.repeat(15)}2`);
    });

    it('carries into the next character when incrementing', () => {
      const next = createUlid((size) =>
        Uint8Array.from({ length: size }, (_, i) => (i === size - 1 ? 0xff : 0)),
      );
      expect(next(0).slice(-2)).toBe('7Z');
      expect(next(0).slice(-2)).toBe('80');
    });

    it('draws a fresh random part in a new millisecond', () => {
      let fill = 0;
      const next = createUlid((size) => new Uint8Array(size).fill(fill++));
      const first = next(1_000);
      const second = next(1_001);
      expect(second.slice(10)).not.toBe(first.slice(10));
    });

    it('throws rather than wrap when the random part overflows', () => {
      const next = createUlid((size) => new Uint8Array(size).fill(0xff));
      expect(next(5)).toMatch(/Z{16}$/);
      expect(() => next(5)).toThrow(/overflow/);
    });
  });
});

describe('newId', () => {
  it('makes ids every id schema of the model accepts', () => {
    expect(EventId.parse(newId('evt'))).toMatch(/^evt_/);
    expect(PartnerId.parse(newId('ptr'))).toMatch(/^ptr_/);
    expect(SubscriptionId.parse(newId('sub'))).toMatch(/^sub_/);
    expect(DeliveryId.parse(newId('dlv'))).toMatch(/^dlv_/);
    expect(AttemptId.parse(newId('att'))).toMatch(/^att_/);
  });

  it('is not accepted by the schema of another prefix', () => {
    expect(EventId.safeParse(newId('sub')).success).toBe(false);
  });

  it('sorts by the time it was given', () => {
    expect(newId('evt', 1_000) < newId('evt', 1_001)).toBe(true);
  });
});

describe('idTime', () => {
  it('round-trips the time of a prefixed id', () => {
    const time = Date.UTC(2025, 0, 2, 3, 4, 5, 678);
    expect(idTime(newId('evt', time))).toBe(time);
  });

  it('round-trips the time of a bare ULID, including the extremes', () => {
    expect(idTime(ulid(0))).toBe(0);
    expect(idTime(ulid(2 ** 48 - 1))).toBe(2 ** 48 - 1);
  });

  it('reads ids made now as now', () => {
    const before = Date.now();
    const time = idTime(newId('dlv'));
    expect(time).toBeGreaterThanOrEqual(before);
    expect(time).toBeLessThanOrEqual(Date.now());
  });

  it('rejects text that is not a ULID', () => {
    expect(() => idTime('evt_short')).toThrow(/not a ULID/);
    expect(() => idTime(`evt_${'U'.repeat(26)}`)).toThrow(/bad character U/);
    expect(() => idTime(`8${'0'.repeat(25)}`)).toThrow(/48 bits/);
  });
});

describe('composedId and idParts', () => {
  it('round-trips any time and 80-bit random part, as a valid id', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 48 - 1 }),
        fc.bigInt({ min: 0n, max: (1n << 80n) - 1n }),
        (time, random) => {
          const made = composedId('evt', time, random);
          expect(EventId.safeParse(made).success).toBe(true);
          expect(idParts('evt', made)).toEqual({ time, random });
          expect(idTime(made)).toBe(time);
        },
      ),
    );
  });

  it('refuses parts that do not fit, and reads nothing from text that is not such an id', () => {
    expect(() => composedId('evt', -1, 0n)).toThrow(RangeError);
    expect(() => composedId('evt', 0, 1n << 80n)).toThrow(RangeError);
    expect(idParts('evt', newId('dlv'))).toBeUndefined();
    expect(idParts('evt', 'evt_short')).toBeUndefined();
    expect(idParts('evt', `evt_${'U'.repeat(26)}`)).toBeUndefined();
    expect(idParts('evt', `evt_8${'0'.repeat(25)}`)).toBeUndefined();
  });
});

describe('event ids of the DynamoDB log', () => {
  it('say their seq to the partner they were made for, and to no other', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 ** 50 - 1 }),
        fc.integer({ min: 0, max: 2 ** 48 - 1 }),
        (seq, time) => {
          const partnerId = newId('ptr');
          const eventId = eventIdAt(partnerId, seq, time);
          expect(EventId.safeParse(eventId).success).toBe(true);
          expect(idTime(eventId)).toBe(time);
          expect(seqInId(partnerId, eventId)).toBe(seq);
          expect(seqInId(newId('ptr'), eventId)).toBeUndefined();
        },
      ),
    );
  });

  it('are told apart from plain ULIDs, which say no seq', () => {
    const partnerId = newId('ptr');
    // A plain ULID passes the 30-bit check about once in a billion; these never do.
    for (let i = 0; i < 1000; i++) expect(seqInId(partnerId, newId('evt'))).toBeUndefined();
    expect(seqInId(partnerId, 'not an id')).toBeUndefined();
  });

  it('differ for one seq at different times, and refuse a seq out of range', () => {
    const partnerId = newId('ptr');
    expect(eventIdAt(partnerId, 1, 1000)).not.toBe(eventIdAt(partnerId, 1, 1001));
    expect(() => eventIdAt(partnerId, 0, 0)).toThrow(RangeError);
    expect(() => eventIdAt(partnerId, 2 ** 50, 0)).toThrow(RangeError);
  });
});

describe('delivery ids', () => {
  it('end with their event’s tag, for fan-out and for a delivery a partner asked for', () => {
    const eventId = newId('evt');
    const subscriptionId = newId('sub');
    const event = { id: eventId, partnerId: newId('ptr'), type: 'order.created' };
    const now = new Date();
    const ids = [
      fanoutDeliveryId(eventId, subscriptionId),
      newDelivery(event, subscriptionId, 'replay', now).id,
      newDelivery(event, subscriptionId, 'fanout', now).id,
    ];
    for (const deliveryId of ids) {
      expect(DeliveryId.parse(deliveryId)).toBe(deliveryId);
      expect(deliveryId).toMatch(/^dlv_[0-9A-HJKMNP-TV-Z]{32}$/);
      expect(eventTagOf(deliveryId)).toBe(eventTag(eventId));
    }
    expect(idTime(ids[1] ?? '')).toBe(now.getTime());
    expect(idTime(ids[0] ?? '')).toBe(idTime(eventId));
  });

  it('are told apart from ids from before they had a tag, which stay valid', () => {
    const old = newId('dlv');
    expect(DeliveryId.parse(old)).toBe(old);
    expect(eventTagOf(old)).toBeUndefined();
    expect(DeliveryId.safeParse(`${old}ABC`).success).toBe(false);
  });

  it('tag different events differently, and one event always the same', () => {
    const tags = new Set(Array.from({ length: 100 }, () => eventTag(newId('evt'))));
    expect(tags.size).toBe(100);
    const eventId = newId('evt');
    expect(eventTag(eventId)).toBe(eventTag(eventId));
    expect(eventTag(eventId)).toMatch(/^[0-9A-HJKMNP-TV-Z]{6}$/);
  });
});

describe('id encodings, against a plain reading of the ULID spec', () => {
  const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
  /** The value's `length` base32 digits, most significant first, by big-integer arithmetic. */
  const base32 = (value: bigint, length: number) => {
    let text = '';
    let rest = value;
    for (let i = 0; i < length; i++) {
      text = ALPHABET.charAt(Number(rest & 31n)) + text;
      rest >>= 5n;
    }
    return text;
  };
  const bigOf = (bytes: Uint8Array) => bytes.reduce((value, byte) => (value << 8n) | BigInt(byte), 0n);
  const sha256 = (text: string) => createHash('sha256').update(text).digest();
  const time = fc.integer({ min: 0, max: 2 ** 48 - 1 });

  it('derivedId: the time, then the first 80 bits of the key’s SHA-256', () => {
    fc.assert(
      fc.property(time, fc.string(), (t, key) => {
        const expected = `dlv_${base32(BigInt(t), 10)}${base32(bigOf(sha256(key).subarray(0, 10)), 16)}`;
        expect(derivedId('dlv', t, key)).toBe(expected);
      }),
    );
  });

  it('hashTag: the first 30 bits of the text’s SHA-256', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        expect(hashTag(text)).toBe(base32(bigOf(sha256(text).subarray(0, 4)) >> 2n, 6));
      }),
    );
  });

  it('ulid: the time, then the random bytes as 80 bits', () => {
    fc.assert(
      fc.property(time, fc.uint8Array({ minLength: 10, maxLength: 10 }), (t, bytes) => {
        const next = createUlid(() => bytes);
        expect(next(t)).toBe(`${base32(BigInt(t), 10)}${base32(bigOf(bytes), 16)}`);
      }),
    );
  });
});
