import * as fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  answerOf,
  closingRevokedConnections,
  deliveryFrames,
  MAX_CLIENT_FRAME_BYTES,
  MAX_NACK_ERROR_CHARS,
  MAX_SERVER_FRAME_BYTES,
  parseClientFrame,
  splitForFrames,
} from '../../functions/core/connection-protocol.ts';
import type { PartnerStore, PushRequest } from '../../functions/core/ports.ts';

const utf8 = (text: string) => Buffer.byteLength(text);

function request(body: string): PushRequest {
  return {
    partnerId: 'ptr_1',
    subscriptionId: 'sub_1',
    deliveryId: 'dlv_1',
    attempt: 2,
    headers: { 'content-type': 'application/json', 'webhook-id': 'dlv_1' },
    body,
    timeoutMs: 10_000,
  };
}

describe('splitForFrames', () => {
  it('cuts any text into pieces that join back to it, each within the bytes, never inside a surrogate pair', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary', maxLength: 400 }),
        fc.integer({ min: 14, max: 64 }),
        (text, max) => {
          const pieces = splitForFrames(text, max);
          expect(pieces.join('')).toBe(text);
          for (const piece of pieces) {
            expect(piece.length).toBeGreaterThan(0);
            expect(utf8(JSON.stringify(piece))).toBeLessThanOrEqual(max);
          }
          // No cut between a high surrogate and the low one after it.
          const high = (code: number) => code >= 0xd800 && code <= 0xdbff;
          const low = (code: number) => code >= 0xdc00 && code <= 0xdfff;
          for (let i = 1; i < pieces.length; i++) {
            const before = pieces[i - 1] ?? '';
            const after = pieces[i] ?? '';
            expect(high(before.charCodeAt(before.length - 1)) && low(after.charCodeAt(0))).toBe(false);
          }
        },
      ),
    );
  });

  it('keeps a surrogate pair whole at the cut', () => {
    const text = `${'a'.repeat(9)}😀${'b'.repeat(9)}`;
    const pieces = splitForFrames(text, 12); // 10 characters of JSON string content
    expect(pieces.join('')).toBe(text);
    expect(pieces.some((piece) => piece.includes('😀'))).toBe(true);
  });
});

describe('deliveryFrames', () => {
  it('sends a body that fits as one delivery frame', () => {
    const [frame, ...rest] = deliveryFrames(request('{"a":1}'));
    expect(rest).toEqual([]);
    expect(JSON.parse(frame ?? '')).toEqual({
      type: 'delivery',
      deliveryId: 'dlv_1',
      attempt: 2,
      subscriptionId: 'sub_1',
      headers: { 'content-type': 'application/json', 'webhook-id': 'dlv_1' },
      body: '{"a":1}',
    });
  });

  it('sends a larger body as a head and parts, each within the frame cap, joined in order', () => {
    const body = JSON.stringify({ text: '"\\é😀\u2028'.repeat(30_000) });
    const frames = deliveryFrames(request(body));
    for (const frame of frames) expect(utf8(frame)).toBeLessThanOrEqual(MAX_SERVER_FRAME_BYTES);
    const [head, ...parts] = frames.map((frame) => JSON.parse(frame));
    expect(head).toMatchObject({
      type: 'delivery',
      deliveryId: 'dlv_1',
      attempt: 2,
      bodyParts: parts.length,
    });
    expect(head.body).toBeUndefined();
    expect(parts.map((part) => part.part)).toEqual(parts.map((_, index) => index));
    expect(parts.every((part) => part.type === 'delivery-part' && part.deliveryId === 'dlv_1')).toBe(true);
    expect(parts.map((part) => part.data).join('')).toBe(body);
  });
});

describe('parseClientFrame', () => {
  it('reads acks, nacks and pings, and ignores anything else', () => {
    expect(parseClientFrame('{"type":"ack","deliveryId":"dlv_1","attempt":1,"status":204}')).toMatchObject({
      type: 'ack',
      status: 204,
    });
    expect(parseClientFrame('{"type":"ping","id":3,"extra":true}')).toMatchObject({ type: 'ping', id: 3 });
    for (const text of [
      'not json',
      '{"type":"ack","deliveryId":"dlv_1","attempt":1,"status":500}',
      '{"type":"nack","deliveryId":"dlv_1","attempt":0}',
      '{"type":"subscribe"}',
      JSON.stringify({ type: 'ping', id: 'x'.repeat(MAX_CLIENT_FRAME_BYTES) }),
    ]) {
      expect(parseClientFrame(text), text).toBeUndefined();
    }
  });
});

describe('answerOf', () => {
  it('makes an ack its status, and any nack a failure', () => {
    expect(answerOf({ type: 'ack', deliveryId: 'd', attempt: 1, status: 202 }, 5)).toEqual({
      statusCode: 202,
      durationMs: 5,
    });
    expect(answerOf({ type: 'nack', deliveryId: 'd', attempt: 1, status: 503, error: 'down' }, 5)).toEqual({
      statusCode: 503,
      durationMs: 5,
      responseExcerpt: 'down',
    });
    const twoHundred = answerOf({ type: 'nack', deliveryId: 'd', attempt: 1, status: 200 }, 5);
    expect(twoHundred).toMatchObject({ error: 'connection' });
    expect(twoHundred.statusCode).toBeUndefined();
    const long = answerOf({ type: 'nack', deliveryId: 'd', attempt: 1, error: 'e'.repeat(5000) }, 5);
    expect(long.errorMessage?.length).toBeLessThanOrEqual(MAX_NACK_ERROR_CHARS + 10);
  });
});

describe('closingRevokedConnections', () => {
  const partners = { removeApiKey: async () => 'done' } as unknown as PartnerStore;

  it("closes the removed key's connections", async () => {
    const closed: string[] = [];
    const store = closingRevokedConnections(partners, {
      closeKey: (partnerId, keyId) => void closed.push(`${partnerId}/${keyId}`),
    });
    expect(await store.removeApiKey('ptr_1', 'key_1', { keepLast: true })).toBe('done');
    expect(closed).toEqual(['ptr_1/key_1']);
  });

  it('with a reporter, a close that fails is reported and the revocation still succeeds', async () => {
    const failing = {
      closeKey: async () => {
        throw new Error('throttled');
      },
    };
    await expect(
      closingRevokedConnections(partners, failing).removeApiKey('p', 'k', { keepLast: true }),
    ).rejects.toThrow('throttled');
    const reported: unknown[] = [];
    const store = closingRevokedConnections(partners, failing, (error) => reported.push(error));
    expect(await store.removeApiKey('p', 'k', { keepLast: true })).toBe('done');
    expect(reported).toHaveLength(1);
  });
});
