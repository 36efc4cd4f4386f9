/**
 * The partner client (clients/typescript) against a live local runtime: every call it makes is
 * answered as the OpenAPI document describes (its fetch checks each answer), its types are the
 * document's (generated, and current), and it verifies callbacks as Standard Webhooks says.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  type CallbackEvent,
  DispatcherClient,
  DispatcherError,
  verifyCallback,
  Webhook,
  WebhookVerificationError,
} from '@webhook-dispatcher/client';
import { describe, expect, it } from 'vitest';
import { generate } from '../../clients/typescript/scripts/generate-types.ts';
import { checkAgainstOpenApi, OPENAPI_PATH } from '../support/openapi-conformance.ts';
import { publish, withApiDispatcher } from './api-support.ts';
import { eventually, startTestDispatcher, type TestDispatcher } from './harness.ts';
import { startReceiver } from './receiver.ts';

/** fetch, with each answer checked against the OpenAPI document before the client reads it. */
const checkedFetch: typeof fetch = async (input, init) => {
  const response = await fetch(input, init);
  const text = await response.clone().text();
  let body: unknown = text;
  try {
    body = text === '' ? '' : JSON.parse(text);
  } catch {
    body = text;
  }
  checkAgainstOpenApi(init?.method ?? 'GET', String(input), {
    status: response.status,
    headers: response.headers,
    body,
  });
  return response;
};

describe('the partner client', () => {
  let d: TestDispatcher;
  withApiDispatcher((started) => {
    d = started;
  });

  const clientFor = (apiKey: string) =>
    new DispatcherClient({ baseUrl: d.dispatcher.url, apiKey, fetch: checkedFetch });

  it('has the types of the OpenAPI document, generated from it and current', () => {
    const generated = generate(JSON.parse(readFileSync(OPENAPI_PATH, 'utf8')));
    const file = readFileSync(
      resolve(import.meta.dirname, '../../clients/typescript/src/openapi-types.ts'),
      'utf8',
    );
    expect(file).toBe(generated);
  });

  it('depends on nothing of the server at run time', () => {
    const src = resolve(import.meta.dirname, '../../clients/typescript/src');
    const imports = new Set(
      readdirSync(src).flatMap((file) =>
        [...readFileSync(resolve(src, file), 'utf8').matchAll(/from '([^']+)'/g)].map((m) => m[1]),
      ),
    );
    expect([...imports].sort()).toEqual(['./connections.ts', './openapi-types.ts', 'standardwebhooks']);
    const manifest = JSON.parse(
      readFileSync(resolve(import.meta.dirname, '../../clients/typescript/package.json'), 'utf8'),
    );
    expect(Object.keys(manifest.dependencies)).toEqual(['standardwebhooks']);
  });

  it('lists, gets and long-polls events, keeping the cursor', async () => {
    const partner = await d.createPartner();
    const client = clientFor(partner.apiKey);
    const first = await publish(d, partner.id, 'order.created', { n: 1 });
    const page = await client.events.list({ limit: 10 });
    expect(page.data.map((e) => e.id)).toEqual([first]);
    expect(await client.events.get(first)).toMatchObject({ id: first, payload: { n: 1 } });

    const stop = new AbortController();
    const seen: string[] = [];
    const polling = (async () => {
      for await (const event of client.events.poll({ signal: stop.signal })) {
        seen.push(event.id);
        if (seen.length === 2) stop.abort();
      }
    })();
    await eventually(() => (seen.length === 1 ? true : undefined));
    const second = await publish(d, partner.id, 'order.created', { n: 2 });
    await polling;
    expect(seen).toEqual([first, second]);
  });

  it('follows a consumer, acknowledging each page once handled', async () => {
    const partner = await d.createPartner();
    const client = clientFor(partner.apiKey);
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await publish(d, partner.id, 'order.created', { i }));
    await client.consumers.put('reader');
    const stop = new AbortController();
    const handled: string[] = [];
    await client.consumers.follow(
      'reader',
      (event) => {
        handled.push(event.id);
        if (handled.length === 5) stop.abort();
      },
      { limit: 2, signal: stop.signal },
    );
    expect(handled).toEqual(ids);
    expect(await client.consumers.get('reader')).toMatchObject({ position: ids[4], lag: 0 });
    expect((await client.consumers.list()).data.map((c) => c.name)).toEqual(['reader']);

    // A handler that fails leaves its page unacknowledged: it comes again.
    const more = await publish(d, partner.id, 'order.created', { i: 5 });
    await expect(
      client.consumers.follow('reader', () => {
        throw new Error('database down');
      }),
    ).rejects.toThrow('database down');
    expect((await client.consumers.read('reader')).data.map((e) => e.id)).toEqual([more]);
    await client.consumers.delete('reader');
    await expect(client.consumers.get('reader')).rejects.toMatchObject({ status: 404 });
  });

  it('manages subscriptions and receives verified callbacks', async () => {
    const partner = await d.createPartner();
    const client = clientFor(partner.apiKey);
    const received: CallbackEvent[] = [];
    let secret = '';
    const receiver = await startReceiver((callback, res) => {
      received.push(verifyCallback(secret, callback.body, callback.headers));
      res.writeHead(204).end();
    });
    try {
      const subscription = await client.subscriptions.create({
        url: `${receiver.url}/hooks`,
        eventTypes: ['order.*'],
      });
      secret = subscription.secret ?? '';
      expect(subscription.secret).toMatch(/^whsec_/);
      expect(subscription.signature).toBe('hmac');
      const id = await publish(d, partner.id, 'order.created', { orderId: 'o_9' });
      await eventually(() => (received.length === 1 ? true : undefined));
      expect(received[0]).toMatchObject({ id, type: 'order.created', payload: { orderId: 'o_9' } });

      const deliveries = await client.subscriptions.deliveries(subscription.id);
      expect(deliveries.data[0]).toMatchObject({ eventId: id, status: 'succeeded' });
      expect((await client.events.deliveries(id)).data).toHaveLength(1);
      const updated = await client.subscriptions.update(subscription.id, { description: 'orders' });
      expect(updated.description).toBe('orders');
      const preview = await client.subscriptions.previewTransformation(subscription.id, {
        event: { type: 'order.created', payload: { orderId: 'o_9' } },
        transformation: { jsonata: '{"order": payload.orderId}' },
      });
      expect(preview.body).toEqual({ order: 'o_9' });
      const rotated = await client.subscriptions.rotateSecret(subscription.id);
      expect(rotated.secret).not.toBe(subscription.secret);
      expect((await client.subscriptions.list()).data.map((s) => s.id)).toEqual([subscription.id]);
      await client.subscriptions.delete(subscription.id);
      await expect(client.subscriptions.get(subscription.id)).rejects.toBeInstanceOf(DispatcherError);
    } finally {
      await receiver.close();
    }
  });

  it('verifies an ed25519 subscription’s callbacks with its public key, through a rotation', async () => {
    const partner = await d.createPartner();
    const client = clientFor(partner.apiKey);
    const received: { event: CallbackEvent; signatures: string }[] = [];
    let publicKey = '';
    const refused: unknown[] = [];
    const receiver = await startReceiver((callback, res) => {
      try {
        received.push({
          event: verifyCallback(publicKey, callback.body, callback.headers),
          signatures: String(callback.headers['webhook-signature']),
        });
        res.writeHead(204).end();
      } catch (error) {
        refused.push(error);
        res.writeHead(401).end();
      }
    });
    try {
      const subscription = await client.subscriptions.create({
        url: `${receiver.url}/hooks`,
        signature: 'ed25519',
      });
      // No secret to keep: the public key verifies.
      expect(subscription.secret).toBeUndefined();
      expect(subscription.signature).toBe('ed25519');
      expect(subscription.publicKey).toMatch(/^whpk_[A-Za-z0-9+/]{43}=$/);
      expect((await client.subscriptions.get(subscription.id)).publicKey).toBe(subscription.publicKey);
      publicKey = subscription.publicKey ?? '';
      const first = await publish(d, partner.id, 'order.created', { orderId: 'o_1' });
      await eventually(() => (received.length === 1 ? true : undefined));
      expect(received[0]?.event).toMatchObject({ id: first, payload: { orderId: 'o_1' } });
      expect(received[0]?.signatures).toMatch(/^v1a,[A-Za-z0-9+/]{86}==$/);

      // A rotation: the old key still signs for 24 hours, so a receiver with either verifies.
      const rotated = await client.subscriptions.rotateSecret(subscription.id);
      expect(rotated.secret).toBeUndefined();
      expect(rotated.publicKey).toMatch(/^whpk_/);
      expect(rotated.publicKey).not.toBe(subscription.publicKey);
      await publish(d, partner.id, 'order.created', { orderId: 'o_2' });
      await eventually(() => (received.length === 2 ? true : undefined));
      expect(received[1]?.signatures.split(' ')).toHaveLength(2);
      publicKey = rotated.publicKey ?? '';
      await publish(d, partner.id, 'order.created', { orderId: 'o_3' });
      await eventually(() => (received.length === 3 ? true : undefined));
      // Another subscription's key does not verify: a tampered body neither.
      const other = await client.subscriptions.create({ url: `${receiver.url}/other`, signature: 'ed25519' });
      const callback = received[2];
      expect(() =>
        verifyCallback(other.publicKey ?? '', JSON.stringify(callback?.event), {
          'webhook-id': 'x',
          'webhook-timestamp': String(Math.floor(Date.now() / 1000)),
          'webhook-signature': callback?.signatures ?? '',
        }),
      ).toThrow();
      expect(refused).toEqual([]);
    } finally {
      await receiver.close();
    }
  });

  it('rotates its own API key without downtime', async () => {
    const partner = await d.createPartner();
    const old = clientFor(partner.apiKey);
    const created = await old.keys.create('rotated');
    const fresh = clientFor(created.apiKey);
    const [first] = (await fresh.keys.list()).data;
    await fresh.keys.revoke(first?.id ?? '');
    await expect(old.events.list()).rejects.toMatchObject({ status: 401 });
    expect((await fresh.keys.list()).data.map((k) => k.id)).toEqual([created.id]);
  });

  it('throws a DispatcherError with the problem and the request id', async () => {
    const partner = await d.createPartner();
    const error = await clientFor(partner.apiKey)
      .events.get('evt_00000000000000000000000000')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DispatcherError);
    expect(error).toMatchObject({
      status: 404,
      problem: { status: 404 },
      requestId: expect.stringMatching(/.+/),
    });
  });

  it('verifies the Standard Webhooks test vector, and refuses a changed body', () => {
    const headers = {
      'webhook-id': 'msg_p5jXN8AQM9LWM0D4loKWxJek',
      'webhook-timestamp': String(Math.floor(Date.now() / 1000)),
      'webhook-signature': '',
    };
    // The vector's signature is for its own timestamp, which verification rightly refuses as
    // stale; sign the same message at the current time with the library's own signer instead.
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    const body = '{"test": 2432232314}';
    headers['webhook-signature'] = signed(
      secret,
      headers['webhook-id'],
      Number(headers['webhook-timestamp']),
      body,
    );
    expect(verifyCallback(secret, body, headers)).toEqual({ test: 2432232314 });
    expect(() => verifyCallback(secret, '{"test": 1}', headers)).toThrow(WebhookVerificationError);
    expect(signed(secret, 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, body)).toBe(
      'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
    );
  });
});

describe('the partner client and answers API Gateway gives itself, on AWS', () => {
  it('reports a refused key as the gateway said it, with the gateway’s request id', async () => {
    const gateway: typeof fetch = async () =>
      new Response('{"message":"Forbidden"}', {
        status: 403,
        headers: { 'content-type': 'application/json', 'apigw-requestid': 'Abc123=' },
      });
    const client = new DispatcherClient({
      baseUrl: 'https://api.example.com',
      apiKey: 'dk_revoked',
      fetch: gateway,
    });
    const error = await client.events.list().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DispatcherError);
    expect(error).toMatchObject({
      status: 403,
      problem: undefined,
      requestId: 'Abc123=',
      message: 'HTTP 403: Forbidden',
    });
  });
});

describe('the partner client over its limit', () => {
  it('waits out a 429 as Retry-After says, and then succeeds', async () => {
    const d = await startTestDispatcher({ DISPATCHER_PARTNER_REQUESTS_PER_SECOND: '1' });
    try {
      const partner = await d.createPartner();
      const client = new DispatcherClient({
        baseUrl: d.dispatcher.url,
        apiKey: partner.apiKey,
        fetch: checkedFetch,
      });
      const answers = await Promise.all([client.events.list(), client.events.list()]);
      expect(answers.map((a) => a.data)).toEqual([[], []]);
      const impatient = new DispatcherClient({
        baseUrl: d.dispatcher.url,
        apiKey: partner.apiKey,
        maxTries: 1,
      });
      // One request a second: of a few made at once, one is refused (a window may end between two).
      let refused: unknown;
      for (let i = 0; i < 5 && !(refused instanceof DispatcherError); i++) {
        refused = await impatient.events.list().catch((e: unknown) => e);
      }
      expect(refused).toMatchObject({ status: 429, retryAfterSeconds: expect.any(Number) });
    } finally {
      await d.cleanup();
    }
  });
});

/** A Standard Webhooks signature, by the library the client re-exports. */
function signed(secret: string, id: string, timestamp: number, body: string): string {
  return new Webhook(secret).sign(id, new Date(timestamp * 1000), body);
}
