/**
 * The partner client's `connections.listen` and `forwardTo` against a stand-in dispatcher
 * speaking the connection protocol (test/support/connect-server.ts) and real receivers, all on
 * 127.0.0.1: each delivery answered with the receiver's status, the body forwarded byte for byte
 * and verified as a URL callback would be, heartbeats, reconnects, and a clean stop.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type ConnectionDelivery,
  type DeliveryHandler,
  DispatcherClient,
  DispatcherError,
  forwardTo,
  ListenError,
  type ListenOptions,
  MAX_IN_FLIGHT,
  Webhook,
} from '@webhook-dispatcher/client';
import { afterEach, describe, expect, it } from 'vitest';
import {
  API_KEY,
  answers,
  type ConnectServer,
  type ConnectServerOptions,
  deliveryFrame,
  startConnectServer,
} from '../support/connect-server.ts';

async function eventually<T>(check: () => T | undefined, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

interface Received {
  body: Buffer;
  headers: IncomingHttpHeaders;
}

/** A receiver on 127.0.0.1 answering `status`, recording each request's raw body and headers. */
async function startReceiver(answer: (received: Received) => number) {
  const received: Received[] = [];
  const server: Server = createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const got = { body: Buffer.concat(chunks), headers: request.headers };
    received.push(got);
    response.writeHead(answer(got)).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks`, received };
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A stand-in dispatcher, and a listener on it that the test stops at its end. */
async function listening(
  onDelivery: DeliveryHandler,
  serverOptions: ConnectServerOptions = {},
  more: Partial<ListenOptions> = {},
) {
  const server = await startConnectServer(serverOptions);
  cleanups.push(() => server.close());
  const controller = new AbortController();
  const lines: string[] = [];
  const client = new DispatcherClient({ baseUrl: server.url, apiKey: API_KEY, maxTries: 1 });
  const done = client.connections.listen({
    onDelivery,
    signal: controller.signal,
    log: (line) => lines.push(line),
    initialBackoffMs: 10,
    maxBackoffMs: 50,
    ...more,
  });
  cleanups.push(async () => {
    controller.abort();
    await done.catch(() => {});
  });
  const first = await eventually(() => server.connections[0]);
  return { server, controller, done, lines, first };
}

const answerTo = (server: ConnectServer, n: number, connection = server.connections[0]) =>
  eventually(() => answers(connection).get(`dlv_${n}`));

describe('connections.listen', () => {
  it('finds the socket, opens it with the API key, and acks a delivery with the receiver’s status', async () => {
    const receiver = await startReceiver(() => 202);
    const { server, first, lines } = await listening(forwardTo(receiver.url));
    expect(server.requests).toContain('GET /v1/connect-info');
    expect(first.authorization).toBe(`Bearer ${API_KEY}`);
    expect(first.query.has('subscription')).toBe(false);

    first.socket.send('not json');
    first.send({ type: 'something-new', detail: 'a client ignores what it does not know' });
    first.send(deliveryFrame(1));
    expect(await answerTo(server, 1)).toEqual({ type: 'ack', deliveryId: 'dlv_1', attempt: 1, status: 202 });
    expect(receiver.received).toHaveLength(1);
    expect(await eventually(() => lines.find((line) => line.startsWith('dlv_1 ')))).toMatch(
      /^dlv_1 202 \d+ms$/,
    );
  });

  it('forwards the body byte for byte with its headers: the receiver verifies the signature', async () => {
    const secret = `whsec_${Buffer.from('a secret of at least some length').toString('base64')}`;
    const body = '{"type":"order.created",  "payload":{"note":"é ✓ 😀 \\u2028","total":1.50}}\n';
    const timestamp = new Date();
    const signature = new Webhook(secret).sign('msg_forwarded', timestamp, body);
    const verified: unknown[] = [];
    const receiver = await startReceiver(({ body: raw, headers }) => {
      const plain = Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, String(value)]));
      verified.push(new Webhook(secret).verify(raw.toString('utf8'), plain));
      return 204;
    });
    const { server, first } = await listening(forwardTo(receiver.url));

    first.send(
      deliveryFrame(2, body, {
        'webhook-id': 'msg_forwarded',
        'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)),
        'webhook-signature': signature,
      }),
    );
    expect(await answerTo(server, 2)).toMatchObject({ type: 'ack', status: 204 });
    const [got] = receiver.received;
    expect(got?.body.equals(Buffer.from(body, 'utf8'))).toBe(true);
    expect(got?.headers).toMatchObject({
      'content-type': 'application/json',
      'webhook-id': 'msg_forwarded',
      'webhook-signature': signature,
    });
    expect(verified).toEqual([JSON.parse(body)]);
  });

  it('nacks with the receiver’s status when it fails', async () => {
    const receiver = await startReceiver(() => 500);
    const { server, first, lines } = await listening(forwardTo(receiver.url));
    first.send(deliveryFrame(3));
    expect(await answerTo(server, 3)).toEqual({ type: 'nack', deliveryId: 'dlv_3', attempt: 1, status: 500 });
    expect(await eventually(() => lines.find((line) => line.startsWith('dlv_3 ')))).toMatch(
      /^dlv_3 500 \d+ms$/,
    );
  });

  it('nacks without a status when the receiver cannot be reached', async () => {
    const closed = await startReceiver(() => 200);
    await cleanups.pop()?.(); // its port is now closed
    const { server, first } = await listening(forwardTo(closed.url));
    first.send(deliveryFrame(4));
    const answer = await answerTo(server, 4);
    expect(answer).toMatchObject({ type: 'nack', deliveryId: 'dlv_4', attempt: 1 });
    expect(answer.status).toBeUndefined();
    expect(answer.error).toMatch(/ECONNREFUSED/);
  });

  it('nacks with 500 and the error’s message when the handler throws', async () => {
    const { server, first } = await listening(async () => {
      throw new Error('the database is down');
    });
    first.send(deliveryFrame(5));
    expect(await answerTo(server, 5)).toEqual({
      type: 'nack',
      deliveryId: 'dlv_5',
      attempt: 1,
      status: 500,
      error: 'the database is down',
    });
  });

  it('hands each delivery to an embedded handler, with what it needs to verify it', async () => {
    const seen: ConnectionDelivery[] = [];
    const { server, first } = await listening((delivery) => {
      seen.push(delivery);
      return delivery.deliveryId === 'dlv_6' ? 200 : { status: 410 };
    });
    first.send(deliveryFrame(6));
    first.send({ ...deliveryFrame(7), attempt: 3 });
    expect(await answerTo(server, 6)).toMatchObject({ type: 'ack', status: 200 });
    expect(await answerTo(server, 7)).toEqual({ type: 'nack', deliveryId: 'dlv_7', attempt: 3, status: 410 });
    expect(seen[0]).toMatchObject({
      deliveryId: 'dlv_6',
      attempt: 1,
      subscriptionId: 'sub_conn',
      body: '{"n":6}',
      headers: { 'webhook-id': 'dlv_6' },
    });
    expect(seen[0]?.signal.aborted).toBe(false);
  });

  it(`handles at most ${MAX_IN_FLIGHT} deliveries at once; the rest wait for an answer`, async () => {
    let open = 0;
    let most = 0;
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const { first } = await listening(async () => {
      most = Math.max(most, ++open);
      await gate;
      open--;
      return 200;
    });
    const count = MAX_IN_FLIGHT + 4;
    for (let n = 1; n <= count; n++) first.send(deliveryFrame(100 + n));
    await eventually(() => (open === MAX_IN_FLIGHT ? true : undefined));
    // A moment for the frames after the first sixteen: none of them starts.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(open).toBe(MAX_IN_FLIGHT);
    expect(answers(first).size).toBe(0);
    release();
    await eventually(() => (answers(first).size === count ? true : undefined));
    expect(most).toBe(MAX_IN_FLIGHT);
    expect([...answers(first).values()].every((frame) => frame.type === 'ack')).toBe(true);
  });

  it('pings every heartbeat, and stays on a connection that answers', async () => {
    const { server, first } = await listening(() => 200, { heartbeatSeconds: 0.05 });
    const pings = await eventually(() => {
      const sent = first.frames.filter((frame) => frame.type === 'ping');
      return sent.length >= 5 ? sent : undefined;
    });
    expect(pings.map((ping) => ping.id)).toEqual(['1', '2', '3', '4', '5']);
    expect(server.connections).toHaveLength(1);
  });

  it('reconnects when no pong comes for three heartbeats', async () => {
    const { server, first } = await listening(() => 200, { heartbeatSeconds: 0.02, pong: false });
    const second = await eventually(() => server.connections[1]);
    server.options.pong = true;
    expect(first.frames.filter((frame) => frame.type === 'ping')).toHaveLength(3);
    expect(await eventually(() => first.closeCode)).toBe(4000);
    second.send(deliveryFrame(8));
    expect(await answerTo(server, 8, second)).toMatchObject({ type: 'ack' });
  });

  it('reconnects after the server closes the connection, and goes on', async () => {
    const { server, first, lines } = await listening(() => 204);
    first.socket.close(1001, 'going away');
    const second = await eventually(() => server.connections[1]);
    second.send(deliveryFrame(9));
    expect(await answerTo(server, 9, second)).toMatchObject({ type: 'ack', status: 204 });
    expect(lines.some((line) => line.startsWith('closed 1001 going away; reconnecting in'))).toBe(true);
    expect(server.requests.filter((request) => request === 'GET /v1/connect-info')).toHaveLength(2);
  });

  it('keeps trying while the dispatcher cannot be reached', async () => {
    const server = await startConnectServer();
    const address = server.url;
    await server.close();
    const controller = new AbortController();
    const lines: string[] = [];
    const done = new DispatcherClient({ baseUrl: address, apiKey: API_KEY, maxTries: 1 }).connections.listen({
      onDelivery: () => 200,
      signal: controller.signal,
      log: (line) => lines.push(line),
      initialBackoffMs: 10,
      maxBackoffMs: 20,
    });
    await eventually(() => (lines.length >= 3 ? true : undefined));
    expect(lines[0]).toMatch(/^could not connect: .*ECONNREFUSED.*; reconnecting in/);
    controller.abort();
    await expect(done).resolves.toBeUndefined();
  });

  it('on abort, answers the deliveries in hand, closes the connection, and resolves', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let started = false;
    const { server, first, controller, done } = await listening(async () => {
      started = true;
      await gate;
      return 200;
    });
    first.send(deliveryFrame(10));
    await eventually(() => (started ? true : undefined));
    controller.abort();
    release();
    await expect(done).resolves.toBeUndefined();
    expect(answers(first).get('dlv_10')).toMatchObject({ type: 'ack', status: 200 });
    expect(await eventually(() => first.closeCode)).toBe(1000);
    expect(server.connections).toHaveLength(1);
  });

  it('takes one subscription’s deliveries when asked, and refuses one that is not a connection subscription', async () => {
    const { first } = await listening(() => 200, {}, { subscriptionId: 'sub_conn' });
    expect(first.query.get('subscription')).toBe('sub_conn');

    const server = await startConnectServer();
    cleanups.push(() => server.close());
    const client = new DispatcherClient({ baseUrl: server.url, apiKey: API_KEY, maxTries: 1 });
    await expect(
      client.connections.listen({ onDelivery: () => 200, subscriptionId: 'sub_url' }),
    ).rejects.toBeInstanceOf(ListenError);
    await expect(
      client.connections.listen({ onDelivery: () => 200, subscriptionId: 'sub_missing' }),
    ).rejects.toMatchObject({ status: 404 });
    expect(server.connections).toHaveLength(0);
  });

  it('stops with the API’s error when the key is refused', async () => {
    const server = await startConnectServer();
    cleanups.push(() => server.close());
    const client = new DispatcherClient({ baseUrl: server.url, apiKey: 'dk_wrong', maxTries: 1 });
    const refused = client.connections.listen({ onDelivery: () => 200 });
    await expect(refused).rejects.toBeInstanceOf(DispatcherError);
    await expect(refused).rejects.toMatchObject({ status: 401 });
  });
});

describe('connections.listen over https', () => {
  it('refuses an unencrypted socket offered for an https API: the key never travels in the clear', async () => {
    // The API answers as a TLS proxy with a misconfigured dispatcher behind it would.
    const fetchStub: typeof fetch = async () =>
      new Response(
        JSON.stringify({
          url: 'ws://dispatcher.example/v1/connect',
          heartbeatSeconds: 30,
          ackTimeoutSeconds: 10,
        }),
        {
          status: 200,
          headers: { 'content-type': 'application/json' },
        },
      );
    const client = new DispatcherClient({
      baseUrl: 'https://dispatcher.example',
      apiKey: API_KEY,
      fetch: fetchStub,
    });
    await expect(client.connections.listen({ onDelivery: () => 204 })).rejects.toThrow(ListenError);
    await expect(client.connections.listen({ onDelivery: () => 204 })).rejects.toThrow(/unencrypted socket/);
  });
});

describe('forwardTo', () => {
  it('takes only http and https URLs', () => {
    expect(() => forwardTo('ftp://127.0.0.1/webhooks')).toThrow(TypeError);
  });

  it('fails the try without a status when the receiver does not answer in time', async () => {
    const server = createServer(() => {}); // never answers
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const handler = forwardTo(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, {
      timeoutMs: 50,
    });
    const result = await handler({
      deliveryId: 'dlv_t',
      attempt: 1,
      subscriptionId: 'sub_conn',
      headers: { 'content-type': 'application/json' },
      body: '{}',
      signal: new AbortController().signal,
    });
    expect(result).toEqual({ error: 'timeout: the receiver did not answer in time' });
  });
});
