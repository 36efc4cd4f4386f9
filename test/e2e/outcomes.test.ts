/**
 * The README's "How a delivery ends" table, row by row: each row's outcome is made to happen
 * against the local runtime, with real receivers on 127.0.0.1, and the delivery's final state,
 * as the partner reads it through the API, is checked against what the row says. Every row
 * needs a driver below and every driver a row, so a row that is removed or reworded fails,
 * and so does an outcome that behaves otherwise.
 */
import type { lookup as dnsLookup, LookupAddress } from 'node:dns';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpCallbackSender } from '../../functions/adapters/http/callback-sender.ts';
import { write } from '../../functions/adapters/sqlite/database.ts';
import { SqliteEventLog } from '../../functions/adapters/sqlite/events.ts';
import type { DeliveryView } from '../../functions/core/attempt-log.ts';
import { AttemptErrorKind, DeliveryStatus, SkippedReason } from '../../functions/core/model.ts';
import type { Clock } from '../../functions/core/ports.ts';
import { startRetentionSweep } from '../../local/retention.ts';
import type { LocalRuntimeOptions } from '../../local/runtime.ts';
import { closedPort, startTestDispatcher, type TestDispatcher } from './harness.ts';
import { answer, type Responder, startReceiver, type TestReceiver } from './receiver.ts';

const HEADING = '### How a delivery ends';
const HEADER = ['what happens', 'final `status`', "`skippedReason` / each try's `error`", 'tries spent'];

/** One row of the table, read. */
interface Row {
  outcome: string;
  /** `deleted`: the row says the delivery is gone (no status at all). */
  status: DeliveryStatus | 'deleted';
  skippedReason?: SkippedReason;
  /** What every try's `error` is. */
  error?: AttemptErrorKind;
  tries: 1 | 'all' | 'before';
}

function cellsOf(line: string): string[] {
  return line
    .trim()
    .replace(/^\|/, '')
    .replace(/\|$/, '')
    .split('|')
    .map((cell) => cell.trim());
}

/** The `code` spans of a cell. */
function codeIn(cell: string): string[] {
  return [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1] ?? '');
}

function only<T extends string>(values: readonly T[], cell: string, what: string): T | undefined {
  const found = codeIn(cell).filter((v): v is T => (values as readonly string[]).includes(v));
  if (found.length > 1) throw new Error(`more than one ${what} in "${cell}"`);
  return found[0];
}

function readRow(cells: string[]): Row {
  const [outcome = '', statusCell = '', reasonCell = '', triesCell = ''] = cells;
  const status = statusCell.startsWith('none')
    ? 'deleted'
    : only(DeliveryStatus.options, statusCell, 'status');
  if (status === undefined) throw new Error(`no status in the row "${outcome}"`);
  const skippedReason = only(SkippedReason.options, reasonCell, 'skippedReason');
  const error = only(AttemptErrorKind.options, reasonCell, 'error');
  if (skippedReason === undefined && error === undefined && reasonCell !== 'none') {
    throw new Error(`the row "${outcome}" names no skippedReason or error, and does not say none`);
  }
  const tries = ({ '1': 1, all: 'all', 'those made before': 'before' } as const)[triesCell];
  if (tries === undefined) throw new Error(`tries spent "${triesCell}" in the row "${outcome}" is not known`);
  return {
    outcome,
    status,
    ...(skippedReason === undefined ? {} : { skippedReason }),
    ...(error === undefined ? {} : { error }),
    tries,
  };
}

/** The table under HEADING: its header, and its rows read. */
function readTable(): { header: string[]; rows: Row[] } {
  const lines = readFileSync(new URL('../../README.md', import.meta.url), 'utf8').split('\n');
  const start = lines.indexOf(HEADING);
  if (start < 0) throw new Error(`README.md has no "${HEADING}"`);
  let i = start + 1;
  while (i < lines.length && !lines[i]?.startsWith('|')) {
    if (lines[i]?.startsWith('#')) throw new Error(`no table under "${HEADING}"`);
    i += 1;
  }
  const table: string[][] = [];
  for (; lines[i]?.startsWith('|'); i++) table.push(cellsOf(lines[i] ?? ''));
  const [header = [], _separator, ...body] = table;
  return { header, rows: body.map(readRow) };
}

const table = readTable();

// ---------------------------------------------------------------------------------------------
// Driving a delivery

const SCHEDULE = [0, 0, 0];
/** Long enough that the first try fails and the next one waits until the test moves the clock. */
const LONG_WAIT_SECONDS = 3600;
const LONG_SCHEDULE = [0, LONG_WAIT_SECONDS];
const DAY_MS = 86_400_000;
const FINAL = new Set<string>(['succeeded', 'dead', 'skipped']);

/** What a driver made happen, for the common checks. */
interface Scenario extends Subscribed {
  eventId: string;
  /** Tries made before the change that ended the delivery ("those made before"). */
  triesBefore?: number;
  /** The receiver every try reaches: it must have had exactly the tries spent. */
  receiver?: TestReceiver;
  /** The row's own checks, once the delivery has ended. */
  check?(ended: DeliveryView | undefined): void | Promise<void>;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A clock the test can move forward; every part of the runtime reads it. */
function movableClock(): Clock & { advance(ms: number): void } {
  let offset = 0;
  return {
    now: () => new Date(Date.now() + offset),
    advance(ms) {
      offset += ms;
    },
  };
}

async function dispatcher(
  schedule: readonly number[],
  env: Record<string, string> = {},
  options: LocalRuntimeOptions = {},
): Promise<TestDispatcher> {
  const d = await startTestDispatcher(
    {
      DISPATCHER_RETRY_SCHEDULE: schedule.join(','),
      // Generous on a loaded machine: only the timeout row wants tries to time out.
      DISPATCHER_DELIVERY_TIMEOUT_MS: '10000',
      // The test polls the API; the partner's rate limit is not what it is about.
      DISPATCHER_PARTNER_REQUESTS_PER_SECOND: '10000',
      ...env,
    },
    options,
  );
  cleanups.push(() => d.cleanup());
  return d;
}

async function receiver(respond: Responder): Promise<TestReceiver> {
  const r = await startReceiver(respond);
  cleanups.push(() => r.close());
  return r;
}

interface Subscribed {
  d: TestDispatcher;
  partnerId: string;
  apiKey: string;
  subscriptionId: string;
  schedule: readonly number[];
}

/** A partner with one subscription to `url`; the receiver, when given, verifies with its secret. */
async function subscribe(
  d: TestDispatcher,
  url: string,
  to?: TestReceiver,
  fields: Record<string, unknown> = {},
): Promise<Subscribed> {
  const partner = await d.createPartner();
  const sub = await d.as<{ id: string; secret: string }>(partner.apiKey, 'POST', '/v1/subscriptions', {
    url,
    ...fields,
  });
  expect(sub.status).toBe(201);
  to?.secrets.push(sub.body.secret);
  return {
    d,
    partnerId: partner.id,
    apiKey: partner.apiKey,
    subscriptionId: sub.body.id,
    schedule: d.config.retrySchedule,
  };
}

async function publish(s: Subscribed): Promise<string> {
  const res = await s.d.admin<{ id: string }>('POST', '/v1/events', {
    partnerId: s.partnerId,
    type: 'order.created',
    payload: { orderId: 'o_1' },
  });
  expect(res.status).toBe(202);
  return res.body.id;
}

/** Subscribes to the receiver (or `url`) and publishes one event. */
async function deliverTo(
  d: TestDispatcher,
  to: TestReceiver | string,
  extra: Partial<Scenario> = {},
): Promise<Scenario> {
  const url = typeof to === 'string' ? to : to.url;
  const s = await subscribe(d, url, typeof to === 'string' ? undefined : to);
  const eventId = await publish(s);
  return { ...s, eventId, ...(typeof to === 'string' ? {} : { receiver: to }), ...extra };
}

/**
 * The delivery as the partner reads it: in the subscription's list, or in the event's once
 * the subscription is deleted; undefined when neither lists it.
 */
async function readDelivery(s: Scenario): Promise<DeliveryView | undefined> {
  const bySubscription = await s.d.as<{ data: DeliveryView[] }>(
    s.apiKey,
    'GET',
    `/v1/subscriptions/${s.subscriptionId}/deliveries`,
  );
  if (bySubscription.status === 200) return bySubscription.body.data.find((x) => x.eventId === s.eventId);
  expect(bySubscription.status).toBe(404);
  const byEvent = await s.d.as<{ data: DeliveryView[] }>(
    s.apiKey,
    'GET',
    `/v1/events/${s.eventId}/deliveries`,
  );
  if (byEvent.status === 404) return undefined;
  expect(byEvent.status).toBe(200);
  return byEvent.body.data.find((x) => x.subscriptionId === s.subscriptionId);
}

/** Polls `check` every 50 ms until it returns a value, or fails after `timeoutMs` saying what it saw last. */
async function until<T>(
  what: string,
  check: () => Promise<{ value?: T; seen: unknown }>,
  timeoutMs = 45_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { value, seen } = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline)
      throw new Error(`${what}: not within ${timeoutMs} ms; last seen ${JSON.stringify(seen)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function queued(d: TestDispatcher): number {
  const stats = d.dispatcher.queues.delivery.stats();
  return stats.visible + stats.inFlight + stats.delayed;
}

/**
 * Waits until nothing more will happen to the delivery: no message of it left to receive,
 * and the delivery final, or gone when the row says it is deleted.
 */
async function ended(s: Scenario, deleted: boolean): Promise<{ delivery: DeliveryView | undefined }> {
  return until<{ delivery: DeliveryView | undefined }>('the delivery to end', async () => {
    const messages = queued(s.d);
    const delivery = await readDelivery(s);
    const seen = { messages, delivery };
    if (messages > 0) return { seen };
    if (delivery === undefined) return deleted ? { value: { delivery }, seen } : { seen };
    return FINAL.has(delivery.status) ? { value: { delivery }, seen } : { seen };
  });
}

/** Waits for the first try to have failed, its next try waiting in the queue. */
async function firstTryFailed(s: Scenario): Promise<void> {
  await until('the first try to fail', async () => {
    const stats = s.d.dispatcher.queues.delivery.stats();
    const delivery = await readDelivery(s);
    const seen = { stats, delivery };
    const waiting = stats.delayed === 1 && stats.inFlight === 0 && stats.visible === 0;
    return delivery?.status === 'failed' && delivery.attemptCount === 1 && waiting
      ? { value: true, seen }
      : { seen };
  });
}

const statusCodes = (delivery: DeliveryView | undefined) => delivery?.attempts.map((a) => a.statusCode);

// ---------------------------------------------------------------------------------------------
// One driver per row, by the row's first cell

type Driver = () => Promise<Scenario>;

const drivers: Record<string, Driver> = {
  '2xx': async () => {
    const d = await dispatcher(SCHEDULE);
    const r = await receiver(answer(202));
    return deliverTo(d, r, {
      check: (delivery) => {
        expect(statusCodes(delivery)).toEqual([202]);
        expect(r.callbacks[0]?.verifiedBy).toEqual([0]);
      },
    });
  },

  '4xx other than 410 and 429': async () => {
    const d = await dispatcher(SCHEDULE);
    const r = await receiver(answer(400));
    return deliverTo(d, r, {
      check: (delivery) => expect(statusCodes(delivery)).toEqual([400, 400, 400]),
    });
  },

  '5xx': async () => {
    const d = await dispatcher(SCHEDULE);
    const r = await receiver(answer(500));
    return deliverTo(d, r, {
      check: (delivery) => expect(statusCodes(delivery)).toEqual([500, 500, 500]),
    });
  },

  '`410 Gone`: the subscription is disabled at once': async () => {
    const d = await dispatcher(SCHEDULE);
    const r = await receiver(answer(410));
    const s = await deliverTo(d, r);
    return {
      ...s,
      check: async (delivery) => {
        expect(statusCodes(delivery)).toEqual([410]);
        const sub = await d.as(s.apiKey, 'GET', `/v1/subscriptions/${s.subscriptionId}`);
        expect(sub.body).toMatchObject({
          status: 'disabled',
          disabledReason: 'the endpoint answered 410 Gone',
        });
      },
    };
  },

  "429 or 503 with `Retry-After`: each retry waits what it asks for, at least 1 s and at most the schedule's longest wait":
    async () => {
      const d = await dispatcher(SCHEDULE);
      let calls = 0;
      // Asks for two minutes: the schedule's longest wait caps it, here the 1 s floor.
      const r = await receiver((_callback, res) => {
        calls += 1;
        res.writeHead(calls % 2 === 1 ? 429 : 503, { 'retry-after': '120' }).end();
      });
      return deliverTo(d, r, {
        check: (delivery) => {
          expect(statusCodes(delivery)).toEqual([429, 503, 429]);
          // The schedule alone retries at once; each answer asked for a wait, of which at least 1 s is kept.
          const started = delivery?.attempts.map((a) => Date.parse(a.startedAt)) ?? [];
          for (let i = 1; i < started.length; i++) {
            expect((started[i] ?? 0) - (started[i - 1] ?? 0)).toBeGreaterThanOrEqual(1000);
          }
        },
      });
    },

  'no complete answer within `DISPATCHER_DELIVERY_TIMEOUT_MS`': async () => {
    const d = await dispatcher(SCHEDULE, { DISPATCHER_DELIVERY_TIMEOUT_MS: '500' });
    const r = await receiver(() => {}); // never answers
    const s = await deliverTo(d, r);
    // Not `receiver`: a try can time out before the receiver has read the request.
    const { receiver: _r, ...rest } = s;
    return {
      ...rest,
      check: (delivery) => {
        expect(statusCodes(delivery)).toEqual([undefined, undefined, undefined]);
        for (const attempt of delivery?.attempts ?? []) expect(attempt.errorMessage).toMatch(/500 ms/);
        expect(r.callbacks.length).toBeLessThanOrEqual(3);
      },
    };
  },

  'connection reset': async () => {
    const d = await dispatcher(SCHEDULE);
    const r = await receiver((_callback, _res, req) => {
      req.socket.resetAndDestroy();
    });
    return deliverTo(d, r, {
      check: (delivery) => expect(statusCodes(delivery)).toEqual([undefined, undefined, undefined]),
    });
  },

  'connection refused': async () => {
    const d = await dispatcher(SCHEDULE);
    const port = await closedPort();
    return deliverTo(d, `http://127.0.0.1:${port}/webhooks`, {
      check: (delivery) => expect(statusCodes(delivery)).toEqual([undefined, undefined, undefined]),
    });
  },

  '3xx redirect, not followed': async () => {
    const d = await dispatcher(SCHEDULE);
    const elsewhere = await receiver(answer(204));
    const r = await receiver((_callback, res) => {
      res.writeHead(302, { location: elsewhere.url }).end();
    });
    return deliverTo(d, r, {
      check: (delivery) => {
        expect(statusCodes(delivery)).toEqual([302, 302, 302]);
        expect(elsewhere.callbacks).toHaveLength(0);
      },
    });
  },

  "the subscription's transformation gives no body (an error, a result over 256 KiB, none, or more than its time or memory): nothing is sent, and the endpoint's health is untouched":
    async () => {
      const d = await dispatcher(SCHEDULE);
      const r = await receiver(answer(204)); // must never be reached
      // The event's orderId is not a number: every evaluation fails.
      const s = await subscribe(d, r.url, r, { transformation: { jsonata: '$number(payload.orderId)' } });
      const eventId = await publish(s);
      return {
        ...s,
        eventId,
        check: (delivery) => {
          expect(r.callbacks).toEqual([]);
          for (const attempt of delivery?.attempts ?? []) {
            expect(attempt.statusCode).toBeUndefined();
            expect(attempt.errorMessage).toMatch(/number/i);
          }
        },
      };
    },

  'forbidden target: at delivery the host resolves to a cloud-metadata address, or to a private or loopback one while `DISPATCHER_ALLOW_PRIVATE_TARGETS` is `false`; nothing is sent':
    async () => {
      const r = await receiver(answer(204)); // must never be reached
      const port = new URL(r.url).port;
      // hooks.example.test passes registration with a public address, then resolves to loopback
      // when the dispatcher connects (DNS rebinding); no lookup leaves the machine.
      const resolver = {
        async resolve(hostname: string) {
          if (hostname !== 'hooks.example.test') throw new Error(`ENOTFOUND ${hostname}`);
          return ['93.184.215.14'];
        },
      };
      const lookup = ((_host: string, _options: object, callback: (e: null, a: LookupAddress[]) => void) =>
        callback(null, [{ address: '127.0.0.1', family: 4 }])) as unknown as typeof dnsLookup;
      const sender = new HttpCallbackSender({ allowPrivateTargets: false, lookup });
      cleanups.push(() => sender.close());
      const d = await dispatcher(
        SCHEDULE,
        { DISPATCHER_ALLOW_PRIVATE_TARGETS: 'false' },
        { resolver, sender },
      );
      return deliverTo(d, `https://hooks.example.test:${port}/webhooks`, {
        check: (delivery) => {
          for (const attempt of delivery?.attempts ?? []) {
            expect(attempt.statusCode).toBeUndefined();
            expect(attempt.errorMessage).toMatch(/hooks\.example\.test.*127\.0\.0\.1/);
          }
          expect(r.callbacks).toHaveLength(0);
        },
      });
    },

  'subscription disabled before the next try': async () => {
    const d = await dispatcher(SCHEDULE);
    const r = await receiver(answer(500));
    const s = await subscribe(d, r.url, r);
    // The first try fails, and the partner disables the subscription before it is answered.
    r.respond = async (_callback, res) => {
      const path = `/v1/subscriptions/${s.subscriptionId}`;
      expect((await d.as(s.apiKey, 'PATCH', path, { status: 'disabled' })).status).toBe(200);
      res.writeHead(500).end();
    };
    const eventId = await publish(s);
    return {
      ...s,
      eventId,
      receiver: r,
      triesBefore: 1,
      check: (delivery) => {
        expect(delivery?.attempts.map((a) => [a.statusCode, a.error])).toEqual([[500, 'http_status']]);
      },
    };
  },

  'subscription deleted before the next try': async () => {
    const d = await dispatcher(SCHEDULE);
    const r = await receiver(answer(500));
    const s = await subscribe(d, r.url, r);
    const path = `/v1/subscriptions/${s.subscriptionId}`;
    r.respond = async (_callback, res) => {
      expect((await d.as(s.apiKey, 'DELETE', path)).status).toBe(204);
      res.writeHead(500).end();
    };
    const eventId = await publish(s);
    return {
      ...s,
      eventId,
      receiver: r,
      triesBefore: 1,
      check: async (delivery) => {
        expect(delivery?.attempts.map((a) => [a.statusCode, a.error])).toEqual([[500, 'http_status']]);
        expect((await d.as(s.apiKey, 'GET', `${path}/deliveries`)).status).toBe(404);
        const byEvent = await d.as<{ data: DeliveryView[] }>(
          s.apiKey,
          'GET',
          `/v1/events/${eventId}/deliveries`,
        );
        expect(byEvent.body.data.map((x) => x.id)).toEqual([delivery?.id]);
      },
    };
  },

  'event past retention (`DISPATCHER_RETENTION_DAYS`) before the next try': async () => {
    const clock = movableClock();
    const d = await dispatcher(LONG_SCHEDULE, {}, { clock });
    const r = await receiver(answer(500));
    const s = await deliverTo(d, r, { triesBefore: 1 });
    await firstTryFailed(s);
    // The runtime sweeps hourly; this is that sweep, run now as if the retention had gone by,
    // while the runtime's own clock still has the next try waiting.
    const later: Clock = {
      now: () => new Date(clock.now().getTime() + (d.config.retentionDays + 1) * DAY_MS),
    };
    const sweep = startRetentionSweep(d.dispatcher.db, {
      retentionDays: d.config.retentionDays,
      clock: later,
      intervalMs: DAY_MS,
      log: () => {},
    });
    const swept = await sweep.sweep();
    await sweep.stop();
    expect(swept).toMatchObject({ events: 1, deliveries: 1 });
    // The next try comes due.
    clock.advance(2 * LONG_WAIT_SECONDS * 1000);
    return {
      ...s,
      check: async () => {
        expect((await d.as(s.apiKey, 'GET', `/v1/events/${s.eventId}`)).status).toBe(404);
      },
    };
  },

  'event gone before its delivery (on AWS, TTL deletes each item in its own time)': async () => {
    const clock = movableClock();
    const d = await dispatcher(LONG_SCHEDULE, {}, { clock });
    const r = await receiver(answer(500));
    const s = await deliverTo(d, r, { triesBefore: 1 });
    await firstTryFailed(s);
    // The event alone is deleted, as DynamoDB's TTL may do before it deletes the delivery.
    const db = d.dispatcher.db;
    const log = new SqliteEventLog(db);
    const deleted = await write(db, () => {
      const found = log.expired(new Date(clock.now().getTime() + DAY_MS).toISOString(), 10);
      return log.deleteEvents(found.filter((e) => e.id === s.eventId).map((e) => e.seq));
    });
    expect(deleted).toBe(1);
    clock.advance(2 * LONG_WAIT_SECONDS * 1000);
    return {
      ...s,
      check: (delivery) => {
        expect(delivery?.attempts.map((a) => [a.statusCode, a.error])).toEqual([[500, 'http_status']]);
      },
    };
  },
};

// ---------------------------------------------------------------------------------------------

describe(`README "${HEADING.replace(/^#+ /, '')}"`, () => {
  it('is a table of what happens, the final status, the reason or error, and the tries spent', () => {
    expect(table.header).toEqual(HEADER);
    expect(table.rows.length).toBeGreaterThan(0);
  });

  it('has a row for every driver here, and a driver for every row', () => {
    expect(table.rows.map((row) => row.outcome).sort()).toEqual(Object.keys(drivers).sort());
  });

  for (const row of table.rows) {
    it(`ends as the row says: ${row.outcome}`, { timeout: 60_000 }, async () => {
      const drive = drivers[row.outcome];
      if (!drive) throw new Error(`no driver for the README row "${row.outcome}"`);
      const s = await drive();
      const { delivery } = await ended(s, row.status === 'deleted');
      const tries =
        row.tries === 1 ? 1 : row.tries === 'all' ? s.schedule.length : (s.triesBefore ?? Number.NaN);

      if (row.status === 'deleted') {
        expect(delivery).toBeUndefined();
      } else {
        expect(delivery).toMatchObject({ status: row.status, attemptCount: tries });
        expect(delivery?.skippedReason).toBe(row.skippedReason);
        expect(delivery).not.toHaveProperty('nextAttemptAt');
        expect(delivery?.attempts).toHaveLength(tries);
        if (row.error !== undefined) {
          expect(delivery?.attempts.map((a) => a.error)).toEqual(Array(tries).fill(row.error));
        }
        if (row.status === 'succeeded') {
          expect(delivery?.attempts.map((a) => a.error)).toEqual(Array(tries).fill(undefined));
        }
      }
      // Only a dead delivery leaves a dead letter, to be redriven.
      expect(s.d.dispatcher.queues.deliveryDlq.stats().visible).toBe(row.status === 'dead' ? 1 : 0);
      if (s.receiver) expect(s.receiver.callbacks).toHaveLength(tries);
      await s.check?.(delivery);
    });
  }
});
