/**
 * The ops page at /ops, driven in headless Chromium: sign in with the admin token, watch a
 * broken receiver's deliveries arrive in the delivery DLQ with why they died, fix the receiver,
 * redrive from the page and see every event delivered; follow and cancel a paced redrive;
 * purge through the page's confirm step; the failing subscriptions and the delivery-rate
 * chart. Needs Debian's chromium (or CHROMIUM_PATH); without it the browser test is skipped,
 * or fails on CI.
 */
import { existsSync } from 'node:fs';
import type { Browser, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPS_PAGE_CSP } from '../../local/ops-page.ts';
import { CHROMIUM_PATH, launchChromium } from '../../scripts/chromium.ts';
import { createSubscriptionFor, publish } from './api-support.ts';
import { eventually, settled, startTestDispatcher } from './harness.ts';
import { answer, startReceiver, type TestReceiver } from './receiver.ts';

const CHROMIUM = CHROMIUM_PATH;
const haveChromium = existsSync(CHROMIUM);
const missing = `no Chromium at ${CHROMIUM}: apt-get install -y chromium, or set CHROMIUM_PATH`;
if (!haveChromium && !process.env.CI) {
  console.warn(`test/e2e/ops-page.test.ts: the browser test did not run (${missing})`);
}

/** Every wait in the browser is bounded by this; the dead letters take about a second to die. */
const WAIT_MS = 10_000;

/** Event ids of the callbacks the receiver verified, from `from` on. */
function delivered(receiver: TestReceiver, from: number): Set<string> {
  return new Set(
    receiver.callbacks
      .slice(from)
      .filter((c) => c.verifiedBy.length > 0)
      .map((c) => (JSON.parse(c.body) as { id: string }).id),
  );
}

const textOf = (locator: Locator) => () => locator.textContent({ timeout: WAIT_MS });
const poll = <T>(read: () => Promise<T>) => expect.poll(read, { timeout: WAIT_MS, interval: 100 });

describe('the ops page, served', () => {
  it('loads without a token, holds no data, and is sent with a strict policy', async () => {
    const d = await startTestDispatcher();
    try {
      for (const path of ['/ops', '/ops/app.js', '/ops/app.css', '/ops/icon.svg']) {
        const res = await fetch(`${d.dispatcher.url}${path}`);
        expect(res.status).toBe(200);
        expect(res.headers.get('content-security-policy')).toBe(OPS_PAGE_CSP);
        expect(res.headers.get('x-content-type-options')).toBe('nosniff');
        expect(res.headers.get('cache-control')).toBe('no-store');
        const body = await res.text();
        expect(body).not.toContain(d.dispatcher.adminToken);
      }
      expect(OPS_PAGE_CSP).toContain("default-src 'self'");
      expect(OPS_PAGE_CSP).not.toContain('unsafe-inline');
      const page = await fetch(`${d.dispatcher.url}/ops`);
      expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
      // Anything else under /ops is not the page's.
      expect((await fetch(`${d.dispatcher.url}/ops/nope.js`)).status).toBe(404);
      expect((await fetch(`${d.dispatcher.url}/ops`, { method: 'POST' })).status).toBe(404);
    } finally {
      await d.cleanup();
    }
  });
});

if (!haveChromium && process.env.CI) {
  it('runs the ops page in Chromium', () => {
    throw new Error(missing);
  });
}

describe.skipIf(!haveChromium)('the ops page, in a browser', () => {
  let browser: Browser;

  beforeAll(async () => {
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
  });

  /** A fresh page; whatever the page logs as an error (a CSP violation, say) is collected. */
  async function openPage(): Promise<{ page: Page; errors: string[] }> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT_MS);
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    page.on('console', (message) => {
      // The wrong token's 401 is logged by the browser as a failed resource: that one is expected.
      if (message.type() === 'error' && !message.text().includes('401')) errors.push(message.text());
    });
    return { page, errors };
  }

  // A few of the page's 2-second refreshes are waited for: more time than the suite's default.
  it('signs in, shows the dead letters and why, redrives them, purges through a confirm step', {
    timeout: 30_000,
  }, async () => {
    const d = await startTestDispatcher({ DISPATCHER_RETRY_SCHEDULE: '0,1' });
    const receiver = await startReceiver(answer(500));
    const { page, errors } = await openPage();
    try {
      const partner = await d.createPartner();
      const subscription = await createSubscriptionFor(d, partner.apiKey, { url: `${receiver.url}/hooks` });
      receiver.secrets.push(subscription.secret ?? '');

      const response = await page.goto(`${d.dispatcher.url}/ops`);
      expect(response?.headers()['content-security-policy']).toBe(OPS_PAGE_CSP);

      // A wrong token: the 401's detail, and the form again.
      await page.getByLabel('Admin token').fill('not-the-admin-token');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await poll(textOf(page.getByRole('alert'))).toContain('this route needs the admin token');
      await page.getByLabel('Admin token').waitFor();
      expect(await page.evaluate<number>('sessionStorage.length')).toBe(0);

      await page.getByLabel('Admin token').fill(d.dispatcher.adminToken);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { name: 'Queues' }).waitFor();
      await page.getByRole('button', { name: 'Sign out' }).waitFor();
      expect(await page.getByLabel('Admin token').isVisible()).toBe(false);

      // A broken receiver's deliveries die; the page shows them as they arrive.
      const events: string[] = [];
      for (let i = 0; i < 3; i++) events.push(await publish(d, partner.id, 'order.created', { i }));
      const dlq = page.locator('#dlq-delivery-dlq');
      const letters = dlq.locator('table.dead-letters tbody tr');
      await poll(() => letters.count()).toBe(3);
      const table = await dlq.locator('table.dead-letters').textContent();
      for (const id of events) expect(table).toContain(id);
      expect(table).toContain(subscription.id);
      expect(table).toContain(partner.id);
      expect(table).toContain(`${receiver.url}/hooks`);
      expect(await letters.locator('td.reason').allTextContents()).toEqual(
        Array(3).fill('HTTP 500 (try 2, the schedule used up)'),
      );
      const dlqRow = page.locator('#queues tr[data-queue="delivery-dlq"]');
      await poll(textOf(dlqRow.locator('td.visible'))).toBe('3');
      expect(await dlqRow.getAttribute('class')).toBe('attention');

      // The subscription is failing; the chart shows the hour's tries.
      await poll(textOf(page.locator('#failing'))).toContain(subscription.id);
      await poll(textOf(page.locator('#rates-summary'))).toBe('Last hour: 0 succeeded, 3 failed, 3 dead.');
      expect(await page.locator('#rates-chart svg rect.dead').count()).toBeGreaterThan(0);
      expect(await page.locator('#rates-table table tbody tr').count()).toBeGreaterThan(0);

      // Fixed, redriven from the page: every event is delivered and the DLQ empties.
      receiver.respond = answer(204);
      const before = receiver.callbacks.length;
      await page.getByRole('button', { name: 'Redrive delivery-dlq', exact: true }).click();
      await poll(textOf(dlq.getByRole('status'))).toBe('Moved 3 messages from delivery-dlq to delivery.');
      await poll(textOf(dlqRow.locator('td.visible'))).toBe('0');
      await eventually(() => (delivered(receiver, before).size === 3 ? true : undefined), WAIT_MS);
      expect([...delivered(receiver, before)].sort()).toEqual([...events].sort());
      await poll(textOf(dlq)).toContain('No dead letters in delivery-dlq.');
      await poll(textOf(page.locator('#failing'))).toBe('No failing subscriptions.');
      await poll(textOf(page.locator('#rates-summary'))).toBe('Last hour: 3 succeeded, 3 failed, 3 dead.');

      // Broken again: more dead letters. A paced redrive started elsewhere shows its progress
      // here (the page, reloaded, is still signed in) and is cancelled from the page.
      receiver.respond = answer(500);
      const doomed: string[] = [];
      for (let i = 0; i < 6; i++) doomed.push(await publish(d, partner.id, 'order.created', { i: 3 + i }));
      await poll(() => letters.count()).toBe(6);
      const again = await dlq.locator('table.dead-letters').textContent();
      for (const id of doomed) expect(again).toContain(id);
      const paced = await d.admin('POST', '/v1/admin/dlq/delivery-dlq/redrive', { maxPerSecond: 1 });
      expect(paced.status).toBe(202);
      await page.reload();
      const progress = dlq.getByRole('progressbar', { name: 'Redrive progress' });
      await progress.waitFor();
      await poll(textOf(dlq.locator('.progress'))).toMatch(/\d of 6 moved to delivery, at most 1 a second/);
      await dlq.getByRole('button', { name: 'Cancel the redrive of delivery-dlq', exact: true }).click();
      await poll(textOf(dlq.getByRole('status'))).toMatch(
        /^Redrive of delivery-dlq cancelled after moving [0-5] messages? to delivery\.$/,
      );
      await progress.waitFor({ state: 'hidden' });

      // What it moved dies again; then all six are purged: the first ask is called off, the second confirmed.
      await settled(d);
      await poll(textOf(dlqRow.locator('td.visible'))).toBe('6');
      const purge = page.getByRole('button', { name: 'Purge delivery-dlq', exact: true });
      const confirm = page.getByRole('button', { name: 'Yes, purge delivery-dlq', exact: true });
      await purge.click();
      await poll(textOf(page.getByRole('group'))).toContain('Purge 6 messages from delivery-dlq?');
      // The confirm step takes the focus, on its safe choice.
      expect(await page.evaluate<string>('document.activeElement.textContent')).toBe('Cancel');
      await page.keyboard.press('Enter');
      await poll(textOf(dlq.getByRole('status'))).toBe('Purge cancelled; nothing was deleted.');
      expect(await confirm.isVisible()).toBe(false);
      expect(await textOf(dlqRow.locator('td.visible'))()).toBe('6');

      await purge.click();
      await confirm.click();
      await poll(textOf(dlq.getByRole('status'))).toBe('Purged 6 messages from delivery-dlq.');
      await poll(textOf(dlqRow.locator('td.visible'))).toBe('0');
      const queues = await d.admin<{ data: { name: string; visible: number }[] }>('GET', '/v1/admin/queues');
      expect(queues.body.data.find((q) => q.name === 'delivery-dlq')?.visible).toBe(0);

      // Narrow and dark: nothing wider than the screen but the tables' own scrolling.
      await page.setViewportSize({ width: 360, height: 800 });
      await page.emulateMedia({ colorScheme: 'dark' });
      expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(360);
      expect(await page.evaluate<string>('getComputedStyle(document.documentElement).backgroundColor')).toBe(
        'rgb(13, 17, 23)',
      );

      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByLabel('Admin token').waitFor();
      expect(await page.evaluate<number>('sessionStorage.length')).toBe(0);
      expect(await page.locator('#dead-letter-queues').textContent()).toBe('');
      expect(errors).toEqual([]);
    } finally {
      await page.context().close();
      await receiver.close();
      await d.cleanup();
    }
  });
});
