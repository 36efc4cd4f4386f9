/**
 * The partner client's `connections.listen` and `forwardTo` against a stand-in dispatcher
 * speaking the connection protocol (test/support/connect-server.ts) and real receivers, all on
 * 127.0.0.1: each delivery answered with the receiver's status, the body forwarded byte for byte
 * and verified as a URL callback would be, a large delivery put together from its parts,
 * heartbeats (the first before any hello), reconnects, and a clean stop.
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
import { WebSocketServer } from 'ws';
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
    const closeReceiver = cleanups.pop();
    // The connection's server binds first, while the receiver still holds its port, so it
    // cannot be given that port once the receiver closes.
    const { server, first } = await listening(forwardTo(closed.url));
    await closeReceiver?.(); // its port is now closed
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

/** A `delivery` frame whose body comes in `parts` frames, as the server sends a large one. */
function inParts(n: number, body: string, count: number, attempt = 1) {
  const { body: _whole, ...head } = deliveryFrame(n, body);
  const size = Math.ceil(body.length / count);
  const pieces = Array.from({ length: count }, (_, i) => body.slice(i * size, (i + 1) * size));
  return {
    head: { ...head, attempt, bodyParts: count },
    parts: pieces.map((data, part) => ({
      type: 'delivery-part',
      deliveryId: `dlv_${n}`,
      attempt,
      part,
      data,
    })),
  };
}

describe('connections.listen, a delivery in parts', () => {
  const body = `{"note":"${'é ✓ 😀 \\" quoted '.repeat(50)}","n":1}`;

  it('puts the parts together in order and handles the delivery as a whole one', async () => {
    const seen: ConnectionDelivery[] = [];
    const { server, first } = await listening((delivery) => {
      seen.push(delivery);
      return 200;
    });
    const { head, parts } = inParts(20, body, 3);
    first.send(head);
    for (const part of parts) first.send(part);
    expect(await answerTo(server, 20)).toEqual({
      type: 'ack',
      deliveryId: 'dlv_20',
      attempt: 1,
      status: 200,
    });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({
      deliveryId: 'dlv_20',
      attempt: 1,
      subscriptionId: 'sub_conn',
      headers: { 'webhook-id': 'dlv_20' },
      body,
    });
  });

  it('takes the parts in any order, among other frames, each part once; the body reaches a receiver byte for byte', async () => {
    const receiver = await startReceiver(() => 204);
    const { server, first } = await listening(forwardTo(receiver.url));
    const { head, parts } = inParts(21, body, 4);
    first.send(head);
    first.send(parts[2] ?? {});
    first.send(deliveryFrame(22)); // another delivery, whole, in between
    first.send(parts[0] ?? {});
    first.send({ ...parts[0], data: 'a second copy is ignored' });
    first.send(parts[3] ?? {});
    first.send({ type: 'pong' });
    first.send(parts[1] ?? {});
    expect(await answerTo(server, 21)).toMatchObject({ type: 'ack', status: 204 });
    expect(await answerTo(server, 22)).toMatchObject({ type: 'ack', status: 204 });
    const got = receiver.received.find((r) => r.headers['webhook-id'] === 'dlv_21');
    expect(got?.body.equals(Buffer.from(body, 'utf8'))).toBe(true);
    expect(receiver.received).toHaveLength(2);
  });

  it('drops, unanswered, a delivery whose parts do not all come within the ack timeout', async () => {
    const seen: string[] = [];
    const { server, first, lines } = await listening(
      (delivery) => {
        seen.push(`${delivery.deliveryId}#${delivery.attempt}`);
        return 200;
      },
      { ackTimeoutSeconds: 0.2 },
    );
    const late = inParts(23, body, 2);
    first.send(late.head);
    first.send(late.parts[0] ?? {});
    const dropped = await eventually(() => lines.find((line) => line.startsWith('dlv_23 ')));
    expect(dropped).toMatch(/^dlv_23 - \d+ms not answered: .*did not all come in time$/);
    // Its last part, too late: ignored, as a part of a delivery not held.
    first.send(late.parts[1] ?? {});
    // The server tries it again: the next attempt is taken as any.
    const again = inParts(23, body, 2, 2);
    first.send(again.head);
    for (const part of again.parts) first.send(part);
    expect(await answerTo(server, 23)).toMatchObject({ type: 'ack', attempt: 2 });
    expect(seen).toEqual(['dlv_23#2']);
    expect(answers(first).size).toBe(1);
  });

  it('drops, unanswered, a delivery whose parts add up to more than 1 MiB', async () => {
    const seen: string[] = [];
    const { server, first, lines } = await listening((delivery) => {
      seen.push(delivery.deliveryId);
      return 200;
    });
    const huge = inParts(24, 'x'.repeat(1024 * 1024 + 3), 3);
    first.send(huge.head);
    for (const part of huge.parts) first.send(part);
    first.send(deliveryFrame(25));
    expect(await answerTo(server, 25)).toMatchObject({ type: 'ack' });
    expect(await eventually(() => lines.find((line) => line.startsWith('dlv_24 ')))).toMatch(
      /^dlv_24 - \d+ms not answered: its body in parts is larger than 1048576 bytes$/,
    );
    expect(seen).toEqual(['dlv_25']);
    expect(answers(first).has('dlv_24')).toBe(false);
  });

  it('ignores a part of a delivery it does not hold', async () => {
    const seen: ConnectionDelivery[] = [];
    const { server, first } = await listening((delivery) => {
      seen.push(delivery);
      return 200;
    });
    first.send({ type: 'delivery-part', deliveryId: 'dlv_26', attempt: 1, part: 0, data: '{"n":26}' });
    // A part of a delivery held, but of another attempt, or past its count: ignored as well.
    const { head, parts } = inParts(27, body, 2);
    first.send(head);
    first.send({ ...parts[0], attempt: 2 });
    first.send({ ...parts[0], part: 2 });
    for (const part of parts) first.send(part);
    expect(await answerTo(server, 27)).toMatchObject({ type: 'ack' });
    expect(seen.map((delivery) => [delivery.deliveryId, delivery.body])).toEqual([['dlv_27', body]]);
    expect(answers(first).has('dlv_26')).toBe(false);
  });
});

/**
 * A stand-in for a server that cannot send before the client has (AWS's WebSocket API): it
 * answers the connection's first frame with `hello` (a ping's after its `pong`), then sends a
 * delivery, and records every frame with what it had sent by then.
 */
async function startSilentServer() {
  const frames: { frame: Record<string, unknown>; serverHadSent: number }[] = [];
  let sent = 0;
  const server = createServer((request, response) => {
    const { port } = server.address() as AddressInfo;
    if (request.headers.authorization !== `Bearer ${API_KEY}`) return response.writeHead(401).end();
    response
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ url: `ws://127.0.0.1:${port}/v1`, heartbeatSeconds: 30, ackTimeoutSeconds: 10 }));
  });
  const sockets = new WebSocketServer({ server, path: '/v1' });
  sockets.on('connection', (ws) => {
    const send = (frame: Record<string, unknown>) => {
      sent++;
      ws.send(JSON.stringify(frame));
    };
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data)) as Record<string, unknown>;
      frames.push({ frame, serverHadSent: sent });
      if (frame.type === 'ping') send({ type: 'pong', id: frame.id });
      if (frames.length > 1) return;
      send({
        type: 'hello',
        connectionId: 'conn_aws',
        subscriptions: ['sub_conn'],
        heartbeatSeconds: 30,
        ackTimeoutSeconds: 10,
      });
      send(deliveryFrame(30));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    for (const client of sockets.clients) client.terminate();
    sockets.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, frames };
}

describe('connections.listen, speaking first', () => {
  it('pings as the socket opens, before any hello, and takes a hello that comes after its pong', async () => {
    const server = await startSilentServer();
    const controller = new AbortController();
    const hellos: string[] = [];
    const done = new DispatcherClient({
      baseUrl: server.url,
      apiKey: API_KEY,
      maxTries: 1,
    }).connections.listen({
      onDelivery: () => 200,
      onConnect: (hello) => hellos.push(hello.connectionId),
      signal: controller.signal,
    });
    cleanups.push(async () => {
      controller.abort();
      await done.catch(() => {});
    });
    // The heartbeat is 30 s: the first ping is the one sent at once, with nothing heard yet.
    const answered = await eventually(() => server.frames.find((f) => f.frame.type === 'ack'));
    expect(server.frames[0]).toEqual({ frame: { type: 'ping', id: '1' }, serverHadSent: 0 });
    expect(answered.frame).toEqual({ type: 'ack', deliveryId: 'dlv_30', attempt: 1, status: 200 });
    expect(hellos).toEqual(['conn_aws']);
  });
});
