import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { systemClock } from '../../functions/adapters/clock.ts';
import { openDatabase } from '../../functions/adapters/sqlite/database.ts';
import { SqliteEventLog } from '../../functions/adapters/sqlite/events.ts';
import { listEvents, MAX_PAGE_BYTES } from '../../functions/core/events.ts';
import { newId } from '../../functions/core/ids.ts';

describe('listEvents', () => {
  it('ends a page before its JSON passes the response limit, resuming from there without a skip', async () => {
    const events = new SqliteEventLog(openDatabase(':memory:'));
    const partnerId = newId('ptr');
    const big = 'x'.repeat(250 * 1024);
    const ids: string[] = [];
    for (let i = 0; i < 25; i++) {
      const { event } = await events.append({
        partnerId,
        type: 'file.uploaded',
        payload: { big },
        createdAt: new Date().toISOString(),
      });
      ids.push(event.id);
    }

    const first = await listEvents({ events, clock: systemClock }, partnerId, { limit: 100 });
    expect(first.data.length).toBeLessThan(25);
    expect(Buffer.byteLength(JSON.stringify(first.data))).toBeLessThanOrEqual(MAX_PAGE_BYTES);
    expect(first.next).toBe(first.data.at(-1)?.id);

    const rest = await listEvents({ events, clock: systemClock }, partnerId, {
      limit: 100,
      after: first.next ?? '',
    });
    expect([...first.data, ...rest.data].map((e) => e.id)).toEqual(ids);
  });
});

describe('listEvents with a wait (long polling), on the SQLite log', () => {
  // Timers and the clock are the test's: nothing wakes a poll but an append, or time the test moves.
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const publish = (events: SqliteEventLog, partnerId: string, type = 'order.created') =>
    events.append({ partnerId, type, payload: {}, createdAt: new Date().toISOString() });

  it('answers at once when there is an event after the cursor', async () => {
    const events = new SqliteEventLog(openDatabase(':memory:'));
    const partnerId = newId('ptr');
    const { event } = await publish(events, partnerId);
    const page = await listEvents({ events, clock: systemClock }, partnerId, { limit: 10 }, 20);
    expect(page.data.map((e) => e.id)).toEqual([event.id]);
  });

  it('wakes with the first event appended while it waits, before any timer fires', async () => {
    const events = new SqliteEventLog(openDatabase(':memory:'));
    const partnerId = newId('ptr');
    const { event: seen } = await publish(events, partnerId);
    let answered = false;
    const poll = listEvents(
      { events, clock: systemClock },
      partnerId,
      { limit: 10, after: seen.id },
      20,
    ).finally(() => {
      answered = true;
    });
    await vi.advanceTimersByTimeAsync(0);
    expect(answered).toBe(false);

    await publish(events, newId('ptr')); // another partner's event does not answer it
    await Promise.resolve();
    expect(answered).toBe(false);
    const { event } = await publish(events, partnerId);
    const page = await poll;
    expect(page).toEqual({ data: [expect.objectContaining({ id: event.id })], next: event.id });
    expect(vi.getTimerCount()).toBe(0); // its timers are cleared
  });

  it('answers empty, with the cursor it was given, when the wait is up', async () => {
    const events = new SqliteEventLog(openDatabase(':memory:'));
    const partnerId = newId('ptr');
    const { event: seen } = await publish(events, partnerId);
    const poll = listEvents({ events, clock: systemClock }, partnerId, { limit: 10, after: seen.id }, 3);
    await vi.advanceTimersByTimeAsync(3000);
    expect(await poll).toEqual({ data: [], next: seen.id });
  });

  it('waits on past events its types filter out, and answers with the cursor moved past them', async () => {
    const events = new SqliteEventLog(openDatabase(':memory:'));
    const partnerId = newId('ptr');
    const poll = listEvents(
      { events, clock: systemClock },
      partnerId,
      { limit: 10, types: ['invoice.paid'] },
      20,
    );
    await vi.advanceTimersByTimeAsync(0);
    const { event: other } = await publish(events, partnerId, 'order.created');
    await vi.advanceTimersByTimeAsync(0);
    const { event: wanted } = await publish(events, partnerId, 'invoice.paid');
    const page = await poll;
    expect(page.data.map((e) => e.id)).toEqual([wanted.id]);
    expect(page.next).toBe(wanted.id);
    expect(other.id < wanted.id).toBe(true);
  });

  it("finds another process's appends to the same file within a second", async () => {
    const db = openDatabase(':memory:');
    const waiting = new SqliteEventLog(db);
    const writer = new SqliteEventLog(db); // another instance: its appends wake no one here
    const partnerId = newId('ptr');
    let answered = false;
    const poll = listEvents({ events: waiting, clock: systemClock }, partnerId, { limit: 10 }, 20).finally(
      () => {
        answered = true;
      },
    );
    const { event } = await publish(writer, partnerId);
    await vi.advanceTimersByTimeAsync(0);
    expect(answered).toBe(false);
    await vi.advanceTimersByTimeAsync(1000);
    expect((await poll).data.map((e) => e.id)).toEqual([event.id]);
  });
});
