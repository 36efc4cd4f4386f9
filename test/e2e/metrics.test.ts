/**
 * GET /metrics on the local runtime: Prometheus' text format, behind the admin token, with
 * deliveries by outcome, the publish → callback latency, and every queue's depth.
 */
import { describe, expect, it } from 'vitest';
import { createSubscriptionFor, publish, raw, withApiDispatcher } from './api-support.ts';
import { eventually, type TestDispatcher } from './harness.ts';
import { answer, startReceiver } from './receiver.ts';

/** A sample's value in Prometheus text: `name{labels} value`. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('GET /metrics', () => {
  let d: TestDispatcher;
  withApiDispatcher((started) => {
    d = started;
  });

  const scrape = async () => {
    const res = await fetch(`${d.dispatcher.url}/metrics`, {
      headers: { authorization: `Bearer ${d.dispatcher.adminToken}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(res.headers.get('x-request-id')).toBeTruthy();
    return res.text();
  };

  it('counts deliveries by outcome, times callbacks, and shows every queue', async () => {
    const healthy = await startReceiver(answer(204));
    const failing = await startReceiver(answer(500));
    try {
      const partner = await d.createPartner();
      await createSubscriptionFor(d, partner.apiKey, { url: `${healthy.url}/hooks` });
      await createSubscriptionFor(d, partner.apiKey, { url: `${failing.url}/hooks` });
      const before = await scrape();
      for (let i = 0; i < 3; i++) await publish(d, partner.id, 'order.created', { i });
      await eventually(() =>
        healthy.callbacks.length === 3 && failing.callbacks.length >= 3 ? true : undefined,
      );

      // A try's outcome is counted once its answer is handled, a moment after the receiver has it.
      const after = await eventually(async () => {
        const text = await scrape();
        const succeeded = sample(text, 'dispatcher_deliveries_total{outcome="succeeded"}') ?? 0;
        const failed = sample(text, 'dispatcher_deliveries_total{outcome="failed"}') ?? 0;
        return succeeded - (sample(before, 'dispatcher_deliveries_total{outcome="succeeded"}') ?? 0) >= 3 &&
          failed >= 3
          ? text
          : undefined;
      });
      expect(sample(after, 'dispatcher_deliveries_total{outcome="failed"}')).toBeGreaterThanOrEqual(3);
      expect(sample(after, 'dispatcher_deliveries_total{outcome="dead"}')).toBe(0);
      expect(sample(after, 'dispatcher_callback_latency_seconds_count')).toBeGreaterThanOrEqual(3);
      for (const queue of ['fanout', 'fanout-dlq', 'delivery', 'delivery-dlq']) {
        expect(
          sample(after, `dispatcher_queue_messages{queue="${queue}",state="visible"}`),
        ).toBeGreaterThanOrEqual(0);
      }
      // The failing subscription's retries wait in the delivery queue.
      expect(
        sample(after, 'dispatcher_queue_messages{queue="delivery",state="delayed"}'),
      ).toBeGreaterThanOrEqual(3);
      expect(sample(after, 'dispatcher_dead_letters{queue="delivery-dlq"}')).toBe(0);
      expect(after).toMatch(/^dispatcher_process_resident_memory_bytes \d+/m);
    } finally {
      await healthy.close();
      await failing.close();
    }
  });

  it('needs the admin token', async () => {
    const partner = await d.createPartner();
    const attempts: Record<string, string>[] = [
      {},
      { authorization: 'Bearer wrong' },
      { authorization: `Bearer ${partner.apiKey}` },
    ];
    for (const headers of attempts) {
      const res = await raw(`${d.dispatcher.url}/metrics`, 'GET', headers);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
    }
  });
});
