/**
 * Payload filters end to end on the local runtime: a subscription with `filter` gets only the
 * events its pattern matches, a bad filter is refused naming the part at fault, and a filter is
 * changed and removed with PATCH.
 */
import { describe, expect, it } from 'vitest';
import { expectProblem, publish } from './api-support.ts';
import { eventually, settled, stoppedAfterEach, type TestDispatcher } from './harness.ts';
import type { TestReceiver } from './receiver.ts';

const { dispatcher, receiver } = stoppedAfterEach();

/** A partner with a subscription to `r` with `filter`, whose secret `r` verifies with. */
async function subscribed(d: TestDispatcher, r: TestReceiver, filter: unknown) {
  const partner = await d.createPartner();
  const sub = await d.as<{ id: string; secret: string; filter?: unknown }>(
    partner.apiKey,
    'POST',
    '/v1/subscriptions',
    { url: r.url, filter },
  );
  expect(sub.status).toBe(201);
  r.secrets.push(sub.body.secret);
  return { partner, subscription: sub.body };
}

const types = (r: TestReceiver) => r.callbacks.map((c) => JSON.parse(c.body).payload.orderId);

describe('payload filters', () => {
  it('delivers only the events the filter matches, verified, and says the filter back', async () => {
    const d = await dispatcher();
    const r = await receiver();
    const filter = {
      type: [{ prefix: 'order.' }],
      payload: {
        total: [{ numeric: ['>=', 100] }],
        country: [{ 'anything-but': ['FR', 'DE'] }],
        $or: [{ priority: ['high'] }, { vip: [true] }],
      },
    };
    const { partner, subscription } = await subscribed(d, r, filter);
    expect(subscription.filter).toEqual(filter);
    const got = await d.as<{ filter?: unknown }>(
      partner.apiKey,
      'GET',
      `/v1/subscriptions/${subscription.id}`,
    );
    expect(got.body.filter).toEqual(filter);

    const events: [string, Record<string, unknown>][] = [
      ['order.created', { orderId: 'yes-high', total: 150, country: 'US', priority: 'high' }],
      ['order.created', { orderId: 'no-small', total: 50, country: 'US', priority: 'high' }],
      ['order.created', { orderId: 'no-country', total: 500, country: 'FR', vip: true }],
      ['invoice.paid', { orderId: 'no-type', total: 500, country: 'US', vip: true }],
      ['order.shipped', { orderId: 'yes-vip', total: 100, country: 'JP', vip: true }],
      ['order.created', { orderId: 'no-or', total: 100, country: 'JP' }],
    ];
    for (const [type, payload] of events) await publish(d, partner.id, type, payload);
    await settled(d);
    await eventually(() => (r.callbacks.length >= 2 ? true : undefined));
    expect(types(r).sort()).toEqual(['yes-high', 'yes-vip']);
    expect(r.callbacks.every((c) => c.verifiedBy.length === 1)).toBe(true);
    // Events are all in the log: a filter decides what is pushed, not what may be polled.
    const polled = await d.as<{ data: unknown[] }>(partner.apiKey, 'GET', '/v1/events');
    expect(polled.body.data).toHaveLength(events.length);
  });

  it('refuses a bad filter with 400, naming the part at fault, and creates nothing', async () => {
    const d = await dispatcher();
    const r = await receiver();
    const partner = await d.createPartner();
    const cases: [unknown, string][] = [
      [{ payload: { total: [{ numeric: ['>>', 1] }] } }, 'body.filter.payload.total[0].numeric[0]'],
      [{ payload: { ip: [{ cidr: '10.0.0.0/8' }] } }, 'body.filter.payload.ip[0]'],
      [{ payload: { total: 5 } }, 'body.filter.payload.total'],
      [{ payload: { tags: [] } }, 'body.filter.payload.tags'],
      [{ source: ['x'] }, 'body.filter.source'],
      [{ payload: { $or: [{ a: [1] }] } }, 'body.filter.payload.$or'],
      [{ payload: { n: [{ numeric: ['>', 5, '<', 1] }] } }, 'body.filter.payload.n[0].numeric[3]'],
      [{ payload: { name: [{ wildcard: 'a\\b' }] } }, 'body.filter.payload.name[0].wildcard'],
      [{ payload: { name: ['x'.repeat(5000)] } }, 'body.filter'],
      ['order.*', 'body.filter'],
    ];
    for (const [filter, field] of cases) {
      const res = await d.as(partner.apiKey, 'POST', '/v1/subscriptions', { url: r.url, filter });
      expectProblem(res, 400, field);
    }
    const list = await d.as<{ data: unknown[] }>(partner.apiKey, 'GET', '/v1/subscriptions');
    expect(list.body.data).toEqual([]);
  });

  it('changes a filter with PATCH, refuses a bad one there too, and removes it with null', async () => {
    const d = await dispatcher();
    const r = await receiver();
    const { partner, subscription } = await subscribed(d, r, { payload: { orderId: ['first'] } });
    const path = `/v1/subscriptions/${subscription.id}`;
    await publish(d, partner.id, 'order.created', { orderId: 'first' });
    await publish(d, partner.id, 'order.created', { orderId: 'second' });
    await settled(d);
    await eventually(() => r.callbacks[0]);

    const bad = await d.as(partner.apiKey, 'PATCH', path, {
      filter: { payload: { orderId: [{ exists: 'yes' }] } },
    });
    expectProblem(bad, 400, 'body.filter.payload.orderId[0].exists');
    const changed = await d.as<{ filter?: unknown }>(partner.apiKey, 'PATCH', path, {
      filter: { payload: { orderId: [{ suffix: 'ird' }] } },
    });
    expect(changed.body.filter).toEqual({ payload: { orderId: [{ suffix: 'ird' }] } });
    await publish(d, partner.id, 'order.created', { orderId: 'third' });
    await publish(d, partner.id, 'order.created', { orderId: 'fourth' });
    await settled(d);

    const removed = await d.as<{ filter?: unknown }>(partner.apiKey, 'PATCH', path, { filter: null });
    expect(removed.status).toBe(200);
    expect(removed.body.filter).toBeUndefined();
    await publish(d, partner.id, 'order.created', { orderId: 'fifth' });
    await settled(d);
    await eventually(() => (r.callbacks.length >= 3 ? true : undefined));
    expect(types(r)).toEqual(['first', 'third', 'fifth']);
  });

  it('replays only the events the filter matches', async () => {
    const d = await dispatcher();
    const r = await receiver();
    const { partner, subscription } = await subscribed(d, r, { payload: { keep: [true] } });
    const since = new Date(Date.now() - 1000).toISOString();
    await publish(d, partner.id, 'order.created', { orderId: 'kept', keep: true });
    await publish(d, partner.id, 'order.created', { orderId: 'dropped', keep: false });
    await settled(d);
    await eventually(() => r.callbacks[0]);
    const replay = await d.as<{ queued: number }>(
      partner.apiKey,
      'POST',
      `/v1/subscriptions/${subscription.id}/replay`,
      { since },
    );
    expect(replay.status).toBe(202);
    expect(replay.body.queued).toBe(1);
    await settled(d);
    await eventually(() => (r.callbacks.length >= 2 ? true : undefined));
    expect(types(r)).toEqual(['kept', 'kept']);
  });
});
