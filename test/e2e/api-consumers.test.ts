/**
 * Consumers end to end: cursors the dispatcher keeps for a partner's readers. Read the page
 * after the position, acknowledge its last event, read on; what is not acknowledged comes
 * again; a position past the retention is a 410 until the consumer is moved.
 */
import type { Consumer } from '@webhook-dispatcher/client';
import { describe, expect, it } from 'vitest';
import { startRetentionSweep } from '../../local/retention.ts';
import { type EventView, expectProblem, type Page, publish, withApiDispatcher } from './api-support.ts';
import { startTestDispatcher, type TestDispatcher } from './harness.ts';

describe('HTTP API: consumers', () => {
  let d: TestDispatcher;
  withApiDispatcher((started) => {
    d = started;
  });

  const read = (apiKey: string, name: string, query = '') =>
    d.as<Page<EventView>>(apiKey, 'GET', `/v1/consumers/${name}/events${query}`);
  const ack = (apiKey: string, name: string, eventId: string) =>
    d.as<Consumer>(apiKey, 'POST', `/v1/consumers/${name}/ack`, { eventId });

  it('reads page after page, each again until it is acknowledged, from the oldest event by default', async () => {
    const partner = await d.createPartner();
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await publish(d, partner.id, 'order.created', { i }));

    const created = await d.as<Consumer>(partner.apiKey, 'PUT', '/v1/consumers/billing');
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      name: 'billing',
      types: [],
      position: null,
      positionAt: null,
      lag: 5,
    });

    const first = await read(partner.apiKey, 'billing', '?limit=2');
    expect(first.body.data.map((e) => e.id)).toEqual(ids.slice(0, 2));
    // Not acknowledged: the same page again.
    expect((await read(partner.apiKey, 'billing', '?limit=2')).body).toEqual(first.body);

    const acked = await ack(partner.apiKey, 'billing', ids[1] ?? '');
    expect(acked.status).toBe(200);
    expect(acked.body).toMatchObject({ position: ids[1], lag: 3 });
    expect((await read(partner.apiKey, 'billing', '?limit=2')).body.data.map((e) => e.id)).toEqual(
      ids.slice(2, 4),
    );

    await ack(partner.apiKey, 'billing', ids[4] ?? '');
    expect((await read(partner.apiKey, 'billing')).body).toEqual({ data: [], next: ids[4] });
    const got = await d.as<Consumer>(partner.apiKey, 'GET', '/v1/consumers/billing');
    expect(got.body).toMatchObject({ position: ids[4], lag: 0 });
  });

  it('starts at the latest event, or after a given one, and delivers only its types', async () => {
    const partner = await d.createPartner();
    const old = await publish(d, partner.id, 'order.created');
    const invoice = await publish(d, partner.id, 'invoice.paid');

    await d.as(partner.apiKey, 'PUT', '/v1/consumers/live', { start: 'latest' });
    await d.as(partner.apiKey, 'PUT', '/v1/consumers/from-old', { start: old });
    await d.as(partner.apiKey, 'PUT', '/v1/consumers/orders', { types: ['order.created'] });
    const fresh = await publish(d, partner.id, 'order.created');

    expect((await read(partner.apiKey, 'live')).body.data.map((e) => e.id)).toEqual([fresh]);
    expect((await read(partner.apiKey, 'from-old')).body.data.map((e) => e.id)).toEqual([invoice, fresh]);
    expect((await read(partner.apiKey, 'orders')).body.data.map((e) => e.id)).toEqual([old, fresh]);
  });

  it('keeps its position when changed without a start, and moves when given one (a seek)', async () => {
    const partner = await d.createPartner();
    const first = await publish(d, partner.id, 'order.created');
    const second = await publish(d, partner.id, 'invoice.paid');
    await d.as(partner.apiKey, 'PUT', '/v1/consumers/c');
    await ack(partner.apiKey, 'c', first);

    const changed = await d.as<Consumer>(partner.apiKey, 'PUT', '/v1/consumers/c', {
      types: ['invoice.paid'],
    });
    expect(changed.status).toBe(200);
    expect(changed.body).toMatchObject({ position: first, types: ['invoice.paid'] });
    expect((await read(partner.apiKey, 'c')).body.data.map((e) => e.id)).toEqual([second]);

    const rewound = await d.as<Consumer>(partner.apiKey, 'PUT', '/v1/consumers/c', { start: 'earliest' });
    expect(rewound.body).toMatchObject({
      position: null,
      types: ['invoice.paid'],
      createdAt: changed.body.createdAt,
    });
  });

  it('answers a long poll as soon as an event for the consumer is published', async () => {
    const partner = await d.createPartner();
    await d.as(partner.apiKey, 'PUT', '/v1/consumers/waiter', { start: 'latest' });
    const poll = read(partner.apiKey, 'waiter', '?wait=20');
    const id = await publish(d, partner.id, 'order.created');
    expect((await poll).body.data.map((e) => e.id)).toEqual([id]);
  });

  it('lists consumers by name with their lag, page after page', async () => {
    const partner = await d.createPartner();
    await publish(d, partner.id, 'order.created');
    for (const name of ['b', 'a', 'c']) await d.as(partner.apiKey, 'PUT', `/v1/consumers/${name}`);
    await d.as(partner.apiKey, 'PUT', '/v1/consumers/d', { start: 'latest' });
    const page = await d.as<Page<Consumer>>(partner.apiKey, 'GET', '/v1/consumers?limit=3');
    expect(page.body.data.map((c) => [c.name, c.lag])).toEqual([
      ['a', 1],
      ['b', 1],
      ['c', 1],
    ]);
    const rest = await d.as<Page<Consumer>>(
      partner.apiKey,
      'GET',
      `/v1/consumers?limit=3&after=${page.body.next}`,
    );
    expect(rest.body).toEqual({ data: [expect.objectContaining({ name: 'd', lag: 0 })], next: null });
  });

  it('deletes a consumer, after which it is not found', async () => {
    const partner = await d.createPartner();
    await d.as(partner.apiKey, 'PUT', '/v1/consumers/gone');
    expect((await d.as(partner.apiKey, 'DELETE', '/v1/consumers/gone')).status).toBe(204);
    expectProblem(await d.as(partner.apiKey, 'GET', '/v1/consumers/gone'), 404);
    expectProblem(await read(partner.apiKey, 'gone'), 404);
    expectProblem(await d.as(partner.apiKey, 'DELETE', '/v1/consumers/gone'), 404);
  });

  it('refuses what is not well formed, naming the field', async () => {
    const partner = await d.createPartner();
    expectProblem(await d.as(partner.apiKey, 'PUT', '/v1/consumers/has%20space'), 400, 'path.name');
    expectProblem(
      await d.as(partner.apiKey, 'PUT', '/v1/consumers/c', { start: 'yesterday' }),
      400,
      'body.start',
    );
    expectProblem(
      await d.as(partner.apiKey, 'PUT', '/v1/consumers/c', { types: ['Not A Type'] }),
      400,
      'body.types[0]',
    );
    expectProblem(await d.as(partner.apiKey, 'PUT', '/v1/consumers/c', { from: 'earliest' }), 400);
    await d.as(partner.apiKey, 'PUT', '/v1/consumers/c');
    expectProblem(await read(partner.apiKey, 'c', '?limit=1001'), 400, 'query.limit');
    expectProblem(await read(partner.apiKey, 'c', '?wait=21'), 400, 'query.wait');
    expectProblem(await d.as(partner.apiKey, 'POST', '/v1/consumers/c/ack', {}), 400, 'body.eventId');
    expectProblem(await ack(partner.apiKey, 'c', 'evt_00000000000000000000000000'), 400, 'body.eventId');
    expectProblem(await ack(partner.apiKey, 'nobody', 'evt_00000000000000000000000000'), 404);
  });

  it('holds at most 50 consumers per partner', async () => {
    const partner = await d.createPartner();
    for (let i = 0; i < 50; i++)
      expect((await d.as(partner.apiKey, 'PUT', `/v1/consumers/c${i}`)).status).toBe(201);
    const refused = expectProblem(await d.as(partner.apiKey, 'PUT', '/v1/consumers/one-more'), 409);
    expect(refused.detail).toMatch(/at most 50 consumers/);
    // Changing one is not creating one.
    expect((await d.as(partner.apiKey, 'PUT', '/v1/consumers/c0', { types: ['a.b'] })).status).toBe(200);
  });

  describe('between partners', () => {
    it("neither reads, moves, lists nor deletes another partner's consumer, nor acknowledges its events", async () => {
      const acme = await d.createPartner('acme');
      const globex = await d.createPartner('globex');
      const acmeEvent = await publish(d, acme.id, 'order.created');
      await d.as(acme.apiKey, 'PUT', '/v1/consumers/shared-name');

      expectProblem(await d.as(globex.apiKey, 'GET', '/v1/consumers/shared-name'), 404);
      expectProblem(await read(globex.apiKey, 'shared-name'), 404);
      expectProblem(await ack(globex.apiKey, 'shared-name', acmeEvent), 404);
      expectProblem(await d.as(globex.apiKey, 'DELETE', '/v1/consumers/shared-name'), 404);
      expect((await d.as<Page<Consumer>>(globex.apiKey, 'GET', '/v1/consumers')).body.data).toEqual([]);

      // Its own consumer of the same name reads its own log, and takes none of acme's events.
      await d.as(globex.apiKey, 'PUT', '/v1/consumers/shared-name');
      expect((await read(globex.apiKey, 'shared-name')).body.data).toEqual([]);
      expectProblem(await ack(globex.apiKey, 'shared-name', acmeEvent), 400, 'body.eventId');
      expectProblem(
        await d.as(globex.apiKey, 'PUT', '/v1/consumers/x', { start: acmeEvent }),
        400,
        'body.start',
      );
      expect((await read(acme.apiKey, 'shared-name')).body.data.map((e) => e.id)).toEqual([acmeEvent]);
    });
  });
});

describe('HTTP API: a consumer past the retention', () => {
  /** A dispatcher keeping events a day, whose clock the test moves, and a sweep it runs. */
  async function dayOldDispatcher() {
    let offsetMs = 0;
    const clock = { now: () => new Date(Date.now() + offsetMs) };
    const d = await startTestDispatcher(
      { DISPATCHER_PARTNER_REQUESTS_PER_SECOND: '10000', DISPATCHER_RETENTION_DAYS: '1' },
      { clock },
    );
    return {
      d,
      /** A day and an hour later, with the retention sweep run then. */
      async dayLater() {
        offsetMs += 25 * 3600 * 1000;
        const sweep = startRetentionSweep(d.dispatcher.db, { retentionDays: 1, clock, log: () => {} });
        await sweep.sweep();
        await sweep.stop();
      },
    };
  }

  it('is answered 410 when events after its position expired unseen, until it is moved', async () => {
    const { d, dayLater } = await dayOldDispatcher();
    try {
      const partner = await d.createPartner();
      const first = await publish(d, partner.id, 'order.created');
      await publish(d, partner.id, 'order.created'); // never read: it expires unseen
      await d.as(partner.apiKey, 'PUT', '/v1/consumers/slow');
      await d.as(partner.apiKey, 'POST', '/v1/consumers/slow/ack', { eventId: first });
      await dayLater();

      const gone = expectProblem(await d.as(partner.apiKey, 'GET', '/v1/consumers/slow/events'), 410);
      expect(gone.detail).toMatch(/have expired unread/);
      expect(gone.detail).toMatch(/PUT \/v1\/consumers\/slow/);

      const later = await publish(d, partner.id, 'order.created');
      await d.as(partner.apiKey, 'PUT', '/v1/consumers/slow', { start: 'earliest' });
      const page = await d.as<Page<EventView>>(partner.apiKey, 'GET', '/v1/consumers/slow/events');
      expect(page.body.data.map((e) => e.id)).toEqual([later]);
    } finally {
      await d.cleanup();
    }
  });

  it('reads on, with no 410, when it was caught up and nothing after its position expired', async () => {
    const { d, dayLater } = await dayOldDispatcher();
    try {
      const partner = await d.createPartner();
      const only = await publish(d, partner.id, 'order.created');
      await d.as(partner.apiKey, 'PUT', '/v1/consumers/caught-up');
      const page = await d.as<Page<EventView>>(partner.apiKey, 'GET', '/v1/consumers/caught-up/events');
      await d.as(partner.apiKey, 'POST', '/v1/consumers/caught-up/ack', { eventId: page.body.next });
      await dayLater(); // its position's own event expires, and nothing after it existed

      expect(
        (await d.as<Page<EventView>>(partner.apiKey, 'GET', '/v1/consumers/caught-up/events')).body.data,
      ).toEqual([]);
      const fresh = await publish(d, partner.id, 'order.created');
      const next = await d.as<Page<EventView>>(partner.apiKey, 'GET', '/v1/consumers/caught-up/events');
      expect(next.status).toBe(200);
      expect(next.body.data.map((e) => e.id)).toEqual([fresh]);
      expect(only).not.toBe(fresh);
    } finally {
      await d.cleanup();
    }
  });
});
