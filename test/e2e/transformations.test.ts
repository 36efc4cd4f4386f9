/**
 * Transformations end to end on the local runtime: a subscription's JSONata expression makes
 * the callback body, signed as sent; a preview answers what a receiver would get; a bad
 * expression is refused naming it; a transformation that fails is a recorded failed try,
 * never an untransformed body.
 */
import { describe, expect, it } from 'vitest';
import { type DeliveryView, expectProblem, publish } from './api-support.ts';
import { eventually, settled, stoppedAfterEach } from './harness.ts';

const { dispatcher, receiver } = stoppedAfterEach();

const SLIM = '{"order": payload.orderId, "amount": payload.total / 100, "kind": type, "event": id}';

describe('transformations', () => {
  it('sends the transformed body, signed as sent, and says the transformation back', async () => {
    const d = await dispatcher();
    const r = await receiver();
    const partner = await d.createPartner();
    const sub = await d.as<{ id: string; secret: string; transformation?: unknown }>(
      partner.apiKey,
      'POST',
      '/v1/subscriptions',
      { url: r.url, transformation: { jsonata: SLIM } },
    );
    expect(sub.status).toBe(201);
    expect(sub.body.transformation).toEqual({ jsonata: SLIM });
    r.secrets.push(sub.body.secret);

    const eventId = await publish(d, partner.id, 'order.created', {
      orderId: 'o_7',
      total: 1999,
      secret: 'x',
    });
    await eventually(() => (r.callbacks.length === 1 ? true : undefined));
    const [callback] = r.callbacks;
    expect(JSON.parse(callback?.body ?? '')).toEqual({
      order: 'o_7',
      amount: 19.99,
      kind: 'order.created',
      event: eventId,
    });
    // The standardwebhooks library verifies the body as it arrived: the signature covers it.
    expect(callback?.verifiedBy).toEqual([0]);
    // Polling still gives the event itself.
    const polled = await d.as<{ payload: unknown }>(partner.apiKey, 'GET', `/v1/events/${eventId}`);
    expect(polled.body.payload).toEqual({ orderId: 'o_7', total: 1999, secret: 'x' });
  });

  it('previews what a receiver would get, with the subscription’s expression or one to try', async () => {
    const d = await dispatcher();
    const partner = await d.createPartner();
    const sub = await d.as<{ id: string }>(partner.apiKey, 'POST', '/v1/subscriptions', {
      url: 'https://example.com/hook',
      transformation: { jsonata: SLIM },
    });
    const path = `/v1/subscriptions/${sub.body.id}/transform-preview`;
    const event = { type: 'order.created', payload: { orderId: 'o_1', total: 250 } };

    const preview = await d.as<{ body: Record<string, unknown> }>(partner.apiKey, 'POST', path, { event });
    expect(preview.status).toBe(200);
    expect(preview.body.body).toMatchObject({ order: 'o_1', amount: 2.5, kind: 'order.created' });
    expect(preview.body.body.event).toMatch(/^evt_/);

    const tried = await d.as<{ body: unknown }>(partner.apiKey, 'POST', path, {
      event,
      transformation: { jsonata: '$uppercase(payload.orderId)' },
    });
    expect(tried.body.body).toBe('O_1');

    // Without a transformation, the event as a poll gives it.
    const plain = await d.as<{ id: string }>(partner.apiKey, 'POST', '/v1/subscriptions', {
      url: 'https://example.com/hook',
    });
    const untouched = await d.as<{ body: Record<string, unknown> }>(
      partner.apiKey,
      'POST',
      `/v1/subscriptions/${plain.body.id}/transform-preview`,
      { event },
    );
    expect(untouched.body.body).toMatchObject({ type: 'order.created', payload: event.payload });

    const failing = await d.as(partner.apiKey, 'POST', path, {
      event,
      transformation: { jsonata: '$number(payload.orderId)' },
    });
    expect(expectProblem(failing, 422, 'body.transformation').detail).toMatch(/transformation gave no body/);
    expectProblem(await d.as(partner.apiKey, 'POST', path, {}), 400, 'body.event');
    expectProblem(
      await d.as(
        partner.apiKey,
        'POST',
        '/v1/subscriptions/sub_00000000000000000000000000/transform-preview',
        {
          event,
        },
      ),
      404,
    );
  });

  it('refuses a bad expression naming it, and changes or removes one with PATCH', async () => {
    const d = await dispatcher();
    const partner = await d.createPartner();
    const create = (jsonata: string) =>
      d.as(partner.apiKey, 'POST', '/v1/subscriptions', {
        url: 'https://example.com/hook',
        transformation: { jsonata },
      });
    expect(expectProblem(await create('{"a": payload.'), 400, 'body.transformation.jsonata').detail).toMatch(
      /at character/,
    );
    expect(
      expectProblem(await create('$match(payload.a, /x+/)'), 400, 'body.transformation.jsonata').detail,
    ).toMatch(/regular expressions/);
    expectProblem(await create('$eval("1")'), 400, 'body.transformation.jsonata');
    expectProblem(await create('x'.repeat(4097)), 400, 'body.transformation.jsonata');
    expectProblem(await create(''), 400, 'body.transformation.jsonata');

    const made = await d.as<{ id: string }>(partner.apiKey, 'POST', '/v1/subscriptions', {
      url: 'https://example.com/hook',
    });
    const path = `/v1/subscriptions/${made.body.id}`;
    const set = await d.as<{ transformation?: unknown }>(partner.apiKey, 'PATCH', path, {
      transformation: { jsonata: 'payload' },
    });
    expect(set.body.transformation).toEqual({ jsonata: 'payload' });
    expectProblem(
      await d.as(partner.apiKey, 'PATCH', path, { transformation: { jsonata: '(' } }),
      400,
      'body.transformation.jsonata',
    );
    const removed = await d.as<{ transformation?: unknown }>(partner.apiKey, 'PATCH', path, {
      transformation: null,
    });
    expect(removed.body.transformation).toBeUndefined();
  });

  it('records a transformation that fails as a failed try, sends nothing, and leaves the endpoint healthy', async () => {
    const d = await dispatcher({ DISPATCHER_RETRY_SCHEDULE: '0,1' });
    const r = await receiver();
    const partner = await d.createPartner();
    const sub = await d.as<{ id: string }>(partner.apiKey, 'POST', '/v1/subscriptions', {
      url: r.url,
      transformation: { jsonata: '$number(payload.orderId)' },
    });
    await publish(d, partner.id, 'order.created', { orderId: 'o_1' });
    const dead = await eventually(async () => {
      const list = await d.as<{ data: DeliveryView[] }>(
        partner.apiKey,
        'GET',
        `/v1/subscriptions/${sub.body.id}/deliveries`,
      );
      const [delivery] = list.body.data;
      return delivery?.status === 'dead' ? delivery : undefined;
    });
    await settled(d);
    expect(r.callbacks).toEqual([]);
    expect(dead.attempts).toHaveLength(2);
    for (const attempt of dead.attempts) {
      expect(attempt.error).toBe('transformation');
      expect(attempt.errorMessage).toMatch(/number/i);
      expect(attempt.statusCode).toBeUndefined();
    }
    // The endpoint was never called: its health is untouched.
    const after = await d.as<{ status: string }>(partner.apiKey, 'GET', `/v1/subscriptions/${sub.body.id}`);
    expect(after.body.status).toBe('active');
    const failing = await d.admin<{ data: unknown[] }>('GET', '/v1/admin/subscriptions?status=failing');
    expect(failing.status).toBe(200);
    expect(failing.body.data).toEqual([]);
  });
});
