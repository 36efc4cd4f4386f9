/**
 * Writes docs/ops.png, the README's picture of the ops page: a local dispatcher on a temp
 * dir with an hour of deliveries behind it, then /ops in headless Chromium at 1280×900.
 *
 * The hour is made in a few seconds: the dispatcher's clock runs behind the real one by an
 * offset that shrinks in steps, and callbacks go to a sender in this script that answers as
 * four partners' receivers would: two healthy (one with the odd 503), one that started
 * failing a quarter of an hour ago (its dead letters and a failing subscription) and one
 * that answered 410 Gone (a subscription the dispatcher disabled).
 *
 *   node scripts/ops-screenshot.ts            (CHROMIUM_PATH if chromium is not /usr/bin/chromium)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteOutbox } from '../functions/adapters/sqlite/outbox.ts';
import { parseLocalConfig } from '../functions/config.ts';
import type { CallbackRequest, CallbackResult } from '../functions/core/ports.ts';
import { type LocalDispatcher, startLocalDispatcher } from '../local/runtime.ts';
import { launchChromium } from './chromium.ts';

const OUT = new URL('../docs/ops.png', import.meta.url);
const MINUTE_MS = 60_000;

/** The dispatcher's clock: real time, less `offset`. */
let offset = 0;
const clock = { now: () => new Date(Date.now() - offset) };

/** Whether Initech's receiver is down. */
let initechDown = false;
const answeredOnce = new Set<string>();

/** Answers as the partners' receivers would, by host. */
async function answerCallback(request: CallbackRequest): Promise<CallbackResult> {
  const host = new URL(request.url).hostname;
  const id = request.headers['webhook-id'] ?? '';
  if (host === 'hooks.initech.example' && initechDown) {
    return { statusCode: 500, durationMs: 212, responseExcerpt: '{"error":"ledger database unavailable"}' };
  }
  if (host === 'notify.umbrella.example')
    return { statusCode: 410, durationMs: 35, responseExcerpt: 'endpoint retired' };
  // Globex's load balancer turns away one first try in five.
  if (host === 'api.globex.example' && !answeredOnce.has(id)) {
    answeredOnce.add(id);
    if (id.charCodeAt(id.length - 1) % 5 === 0)
      return { statusCode: 503, durationMs: 8, responseExcerpt: 'busy' };
  }
  return { statusCode: 204, durationMs: 40 + (id.length % 7) * 11 };
}

async function call<T>(d: LocalDispatcher, token: string, method: string, path: string, body?: unknown) {
  const response = await fetch(`${d.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return JSON.parse(text) as T;
}

/** Waits until nothing is left to fan out or deliver (retries included). */
async function settled(d: LocalDispatcher): Promise<void> {
  const outbox = new SqliteOutbox(d.db);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const busy = [d.queues.fanout.stats(), d.queues.delivery.stats()].some(
      (s) => s.visible + s.inFlight + s.delayed > 0,
    );
    if (!busy && outbox.peek(1).length === 0) return;
    if (Date.now() > deadline) throw new Error('the dispatcher did not settle within 30 s');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const dataDir = mkdtempSync(join(tmpdir(), 'ops-screenshot-'));
const d = await startLocalDispatcher(
  parseLocalConfig({
    PORT: '0',
    DISPATCHER_DATA_DIR: dataDir,
    DISPATCHER_ADMIN_TOKEN: 'ops-screenshot-admin-token-0123456789',
    DISPATCHER_RETRY_SCHEDULE: '0,1,2',
  }),
  {
    log: () => {},
    idleMs: 100,
    clock,
    resolver: { resolve: async () => ['203.0.113.10'] },
    sender: { send: answerCallback },
  },
);
const browser = await launchChromium();
try {
  const admin = d.adminToken;
  const partners = new Map<string, string>();
  const subscribe = async (name: string, url: string, eventTypes: string[]) => {
    const partner = await call<{ id: string; apiKey: string }>(d, admin, 'POST', '/v1/partners', { name });
    partners.set(name, partner.id);
    await call(d, partner.apiKey, 'POST', '/v1/subscriptions', { url, eventTypes });
  };
  await subscribe('Acme', 'https://hooks.acme.example/dispatcher/events', ['order.*', 'invoice.*']);
  await subscribe('Globex', 'https://api.globex.example/v2/webhooks', ['order.*']);
  await subscribe('Initech', 'https://hooks.initech.example/ledger/callbacks', ['invoice.*']);
  await subscribe('Umbrella', 'https://notify.umbrella.example/hooks/orders', ['order.created']);
  const publish = (partner: string, type: string, payload: unknown) =>
    call(d, admin, 'POST', '/v1/events', { partnerId: partners.get(partner), type, payload });

  // An hour, a few minutes at a time: busy, then quieter, Initech failing for the last 14 minutes.
  let order = 1000;
  for (let ago = 58; ago >= 1; ago -= 3) {
    offset = ago * MINUTE_MS;
    if (ago === 16) initechDown = true;
    const orders = 4 + ((ago * 7) % 9);
    for (let i = 0; i < orders; i++) {
      order += 1;
      await publish(i % 2 === 0 ? 'Acme' : 'Globex', 'order.created', {
        orderId: `ord_${order}`,
        total: 4200 + i,
      });
    }
    if (ago % 9 === 1) await publish('Acme', 'invoice.finalized', { invoiceId: `inv_${order}` });
    if ([13, 7, 4, 1].includes(ago)) {
      await publish('Initech', 'invoice.finalized', { invoiceId: `inv_${order}`, amount: 1299 });
    }
    if (ago === 10) await publish('Umbrella', 'order.created', { orderId: `ord_${order}` });
    await settled(d);
  }
  offset = 0;

  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(15_000);
  await page.goto(`${d.url}/ops`);
  await page.getByLabel('Admin token').fill(admin);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#dlq-delivery-dlq table.dead-letters').waitFor();
  await page.locator('#failing table').waitFor();
  await page.locator('#disabled table').waitFor();
  await page.locator('#rates-chart svg rect.succeeded').first().waitFor();
  await page.screenshot({ path: OUT.pathname, fullPage: true });
  console.log(`wrote ${OUT.pathname}`);
} finally {
  await browser.close();
  await d.stop();
  rmSync(dataDir, { recursive: true, force: true });
}
