import { createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import {
  generateSecret,
  generateSigningKey,
  publicKeyOf,
  signatureHeader,
  verifySignature,
  webhookHeaders,
} from '../../functions/core/signing.ts';

const body = JSON.stringify({ type: 'order.created', data: { id: 'ord_1', total: 12.5, note: 'naïve ✓' } });
const id = 'dlv_01J9ZQ4X8M5V3W2K7T6R1N0PAB';
const nowSeconds = () => Math.floor(Date.now() / 1000);

describe('generateSecret', () => {
  it('is whsec_ and the base64 of 24 random bytes', () => {
    const secret = generateSecret();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{32}$/);
    expect(Buffer.from(secret.slice('whsec_'.length), 'base64')).toHaveLength(24);
  });

  it('differs every time', () => {
    expect(generateSecret()).not.toBe(generateSecret());
  });
});

describe('signatureHeader', () => {
  it('matches the signature the standardwebhooks library computes', () => {
    const secret = generateSecret();
    const timestamp = nowSeconds();
    const ours = signatureHeader({ id, timestamp, body, secrets: [secret] });
    expect(ours).toBe(new Webhook(secret).sign(id, new Date(timestamp * 1000), body));
  });

  it('signs once per secret, space-separated, in the order given', () => {
    const [a, b] = [generateSecret(), generateSecret()];
    const timestamp = nowSeconds();
    const header = signatureHeader({ id, timestamp, body, secrets: [a, b] });
    const parts = header.split(' ');
    expect(parts).toHaveLength(2);
    expect(parts[0]).toBe(signatureHeader({ id, timestamp, body, secrets: [a] }));
    expect(parts[1]).toBe(signatureHeader({ id, timestamp, body, secrets: [b] }));
  });

  it('refuses no secrets, an empty secret and a fractional timestamp', () => {
    expect(() => signatureHeader({ id, timestamp: 1, body, secrets: [] })).toThrow(/at least one/);
    expect(() => signatureHeader({ id, timestamp: 1, body, secrets: ['whsec_'] })).toThrow(/empty/);
    expect(() => signatureHeader({ id, timestamp: 1.5, body, secrets: [generateSecret()] })).toThrow(
      /whole unix seconds/,
    );
  });
});

describe('webhookHeaders', () => {
  it('carries id, timestamp, signature and the JSON content type', () => {
    const secret = generateSecret();
    const headers = webhookHeaders({ id, timestamp: 1_700_000_000, body, secrets: [secret] });
    expect(headers).toEqual({
      'webhook-id': id,
      'webhook-timestamp': '1700000000',
      'webhook-signature': signatureHeader({ id, timestamp: 1_700_000_000, body, secrets: [secret] }),
      'content-type': 'application/json',
    });
  });

  describe('checked by the standardwebhooks library', () => {
    const oldSecret = generateSecret();
    const newSecret = generateSecret();
    const signed = () =>
      webhookHeaders({ id, timestamp: nowSeconds(), body, secrets: [newSecret, oldSecret] });

    it('verifies with either secret of a rotation', () => {
      const headers = signed();
      expect(new Webhook(newSecret).verify(body, headers)).toEqual(JSON.parse(body));
      expect(new Webhook(oldSecret).verify(body, headers)).toEqual(JSON.parse(body));
    });

    it('fails for a tampered body', () => {
      expect(() => new Webhook(newSecret).verify(body.replace('12.5', '125'), signed())).toThrow();
    });

    it('fails for a secret that did not sign', () => {
      expect(() => new Webhook(generateSecret()).verify(body, signed())).toThrow();
    });

    it('fails for a timestamp older than five minutes', () => {
      const headers = webhookHeaders({ id, timestamp: nowSeconds() - 600, body, secrets: [newSecret] });
      expect(() => new Webhook(newSecret).verify(body, headers)).toThrow(/too old/);
    });

    it('fails when the id was changed, since the id is signed too', () => {
      const headers = { ...signed(), 'webhook-id': 'dlv_other' };
      expect(() => new Webhook(newSecret).verify(body, headers)).toThrow();
    });
  });
});

describe('verifySignature', () => {
  const secret = generateSecret();

  describe('agreement with the standardwebhooks library', () => {
    it('accepts a signature the library made', () => {
      const timestamp = new Date();
      const headers = {
        'webhook-id': id,
        'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)),
        'webhook-signature': new Webhook(secret).sign(id, timestamp, body),
      };
      expect(() => new Webhook(secret).verify(body, headers)).not.toThrow();
      expect(verifySignature({ headers, body, secret })).toBe(true);
    });

    const cases: { name: string; headers: () => Record<string, string>; body: string; secret: string }[] = [
      { name: 'a good signature', headers: () => signedNow([secret]), body, secret },
      { name: 'a tampered body', headers: () => signedNow([secret]), body: `${body} `, secret },
      { name: 'a wrong secret', headers: () => signedNow([generateSecret()]), body, secret },
      {
        name: 'a stale timestamp',
        headers: () => webhookHeaders({ id, timestamp: nowSeconds() - 301, body, secrets: [secret] }),
        body,
        secret,
      },
      {
        name: 'a timestamp from the future',
        headers: () => webhookHeaders({ id, timestamp: nowSeconds() + 3600, body, secrets: [secret] }),
        body,
        secret,
      },
      {
        name: 'one matching signature among others',
        headers: () => signedNow([generateSecret(), secret]),
        body,
        secret,
      },
    ];

    it.each(cases)('agrees on $name', (c) => {
      const headers = c.headers();
      let libraryAccepts = true;
      try {
        new Webhook(c.secret).verify(c.body, headers);
      } catch {
        libraryAccepts = false;
      }
      expect(verifySignature({ headers, body: c.body, secret: c.secret })).toBe(libraryAccepts);
    });
  });

  describe('rejections', () => {
    it('rejects missing headers', () => {
      const { 'webhook-signature': _, ...headers } = signedNow([secret]);
      expect(verifySignature({ headers, body, secret })).toBe(false);
    });

    it('rejects a non-numeric timestamp', () => {
      const headers = { ...signedNow([secret]), 'webhook-timestamp': '12abc' };
      expect(verifySignature({ headers, body, secret })).toBe(false);
    });

    it('ignores signatures of versions other than v1', () => {
      const header = signatureHeader({ id, timestamp: nowSeconds(), body, secrets: [secret] });
      const headers = { ...signedNow([secret]), 'webhook-signature': header.replace('v1,', 'v1a,') };
      expect(verifySignature({ headers, body, secret })).toBe(false);
    });

    it('rejects a truncated signature without throwing', () => {
      const headers = signedNow([secret]);
      headers['webhook-signature'] = (headers['webhook-signature'] ?? '').slice(0, -4);
      expect(verifySignature({ headers, body, secret })).toBe(false);
    });
  });

  describe('tolerance', () => {
    const timestamp = 1_700_000_000;
    const headers = webhookHeaders({ id, timestamp, body, secrets: [secret] });

    it('accepts a timestamp exactly at the default 300 seconds', () => {
      const now = new Date((timestamp + 300) * 1000);
      expect(verifySignature({ headers, body, secret, now })).toBe(true);
    });

    it('rejects one second past it', () => {
      const now = new Date((timestamp + 301) * 1000);
      expect(verifySignature({ headers, body, secret, now })).toBe(false);
    });

    it('honours a custom tolerance', () => {
      const now = new Date((timestamp + 3600) * 1000);
      expect(verifySignature({ headers, body, secret, now, toleranceSeconds: 3600 })).toBe(true);
      expect(verifySignature({ headers, body, secret, now, toleranceSeconds: 60 })).toBe(false);
    });
  });

  it('reads header names in any case', () => {
    const headers = Object.fromEntries(
      Object.entries(signedNow([secret])).map(([name, value]) => [name.toUpperCase(), value]),
    );
    expect(verifySignature({ headers, body, secret })).toBe(true);
  });
});

function signedNow(secrets: string[]): Record<string, string> {
  return webhookHeaders({ id, timestamp: nowSeconds(), body, secrets });
}

describe('ed25519 signatures (Standard Webhooks v1a)', () => {
  const id = 'msg_p5jXN8AQM9LWM0D4loKWxJek';
  const timestamp = 1614265330;
  const body = '{"test": 2432232314}';

  it("signs `v1a,<base64 of the 64-byte Ed25519 signature of id.timestamp.body>`, which node:crypto verifies with the `whpk_` key's raw bytes", () => {
    const signingKey = generateSigningKey();
    expect(signingKey).toMatch(/^whsk_[A-Za-z0-9+/]{86}==$/);
    const publicKey = publicKeyOf(signingKey);
    expect(publicKey).toMatch(/^whpk_[A-Za-z0-9+/]{43}=$/);
    const raw = Buffer.from(publicKey.slice('whpk_'.length), 'base64');
    expect(raw).toHaveLength(32);

    const header = signatureHeader({ id, timestamp, body, secrets: [signingKey] });
    const [version, signature = ''] = header.split(',');
    expect(version).toBe('v1a');
    const bytes = Buffer.from(signature, 'base64');
    expect(bytes).toHaveLength(64);
    // The raw key as SPKI DER (RFC 8410: the Ed25519 prefix, then the 32 bytes), as any library takes it.
    const spki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), raw]);
    const key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
    expect(cryptoVerify(null, Buffer.from(`${id}.${timestamp}.${body}`), key, bytes)).toBe(true);
    expect(cryptoVerify(null, Buffer.from(`${id}.${timestamp}.${body} `), key, bytes)).toBe(false);
  });

  it('checks the timestamp as its header has it: a signature of another text does not verify', () => {
    const signingKey = generateSigningKey();
    const now = new Date(timestamp * 1000);
    const headers = webhookHeaders({
      id,
      timestamp,
      body,
      secrets: [signingKey, 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'],
    });
    const padded = { ...headers, 'webhook-timestamp': `0${timestamp}` };
    expect(verifySignature({ headers: padded, body, secret: publicKeyOf(signingKey), now })).toBe(false);
    expect(
      verifySignature({ headers: padded, body, secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', now }),
    ).toBe(false);
    expect(verifySignature({ headers, body, secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', now })).toBe(
      true,
    );
  });

  it('verifies with the public key, not with another, and not a v1 signature', () => {
    const signingKey = generateSigningKey();
    const now = new Date(timestamp * 1000);
    const headers = webhookHeaders({ id, timestamp, body, secrets: [signingKey] });
    expect(verifySignature({ headers, body, secret: publicKeyOf(signingKey), now })).toBe(true);
    expect(verifySignature({ headers, body, secret: publicKeyOf(generateSigningKey()), now })).toBe(false);
    expect(verifySignature({ headers, body: `${body} `, secret: publicKeyOf(signingKey), now })).toBe(false);
    const hmac = webhookHeaders({ id, timestamp, body, secrets: ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'] });
    expect(verifySignature({ headers: hmac, body, secret: publicKeyOf(signingKey), now })).toBe(false);
  });

  it('during a rotation carries a signature by each key, and either public key verifies', () => {
    const [newer, older] = [generateSigningKey(), generateSigningKey()];
    const now = new Date(timestamp * 1000);
    const headers = webhookHeaders({ id, timestamp, body, secrets: [newer, older] });
    expect(headers['webhook-signature']?.split(' ').map((s) => s.slice(0, 4))).toEqual(['v1a,', 'v1a,']);
    for (const key of [newer, older])
      expect(verifySignature({ headers, body, secret: publicKeyOf(key), now })).toBe(true);
  });
});
