/**
 * The local runtime's metrics in Prometheus' text format (GET /metrics, with the admin token):
 * what became of each delivery and how long a callback took after its event was published
 * (the same figures, by the same rules, as the dispatcher's CloudWatch metrics on AWS), the
 * depth of every queue and dead-letter queue, and the process's own (CPU, memory, event loop).
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { DELIVERY_METRICS, deliveryMetrics } from '../functions/adapters/delivery-metrics.ts';
import type { QueueStats } from '../functions/adapters/sqlite/queues.ts';
import type { DeliveryRateMinute, DeliveryRateSource } from '../functions/core/ports.ts';

/** What a queue shows of itself: its name and its messages by state. */
export interface MeasuredQueue {
  readonly name: string;
  stats(): QueueStats;
}

/** Outcome labels, by the dispatcher's metric names. */
const OUTCOMES: Record<string, Outcome> = {
  [DELIVERY_METRICS.succeeded]: 'succeeded',
  [DELIVERY_METRICS.failed]: 'failed',
  [DELIVERY_METRICS.dead]: 'dead',
  [DELIVERY_METRICS.skipped]: 'skipped',
};

export interface LocalMetrics {
  /** The dispatcher's outcome observer: counts each outcome, times each first success. */
  readonly observe: ReturnType<typeof deliveryMetrics>;
  /** The same outcomes a minute at a time, for the last MINUTES_KEPT minutes (since the start). */
  readonly rates: DeliveryRateSource;
  /** The text a Prometheus scrape gets, and its content type. */
  scrape(): Promise<{ contentType: string; body: string }>;
}

/** Minutes of outcome counts kept for GET /v1/admin/delivery-rates. */
export const MINUTES_KEPT = 180;
const MINUTE_MS = 60_000;

type Outcome = Exclude<keyof DeliveryRateMinute, 'minute'>;

/** Outcome counts by minute, in memory: the last MINUTES_KEPT minutes. */
function minuteCounts(now: () => number) {
  const minutes = new Map<number, Record<Outcome, number>>();
  return {
    add(outcome: Outcome, value: number): void {
      const minute = Math.floor(now() / MINUTE_MS) * MINUTE_MS;
      let counts = minutes.get(minute);
      if (counts === undefined) {
        counts = { succeeded: 0, failed: 0, dead: 0, skipped: 0 };
        minutes.set(minute, counts);
        for (const old of minutes.keys()) if (old <= minute - MINUTES_KEPT * MINUTE_MS) minutes.delete(old);
      }
      counts[outcome] += value;
    },
    async lastMinutes(count: number): Promise<DeliveryRateMinute[]> {
      const current = Math.floor(now() / MINUTE_MS) * MINUTE_MS;
      const span = Math.min(Math.max(1, count), MINUTES_KEPT);
      return Array.from({ length: span }, (_, i) => {
        const minute = current - (span - 1 - i) * MINUTE_MS;
        const counts = minutes.get(minute) ?? { succeeded: 0, failed: 0, dead: 0, skipped: 0 };
        return { minute: new Date(minute).toISOString(), ...counts };
      });
    },
  };
}

export function createLocalMetrics(
  queues: readonly MeasuredQueue[],
  now: () => number = Date.now,
): LocalMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'dispatcher_' });
  const deliveries = new Counter({
    name: 'dispatcher_deliveries_total',
    help: 'Delivery messages by what became of them: succeeded (2xx), failed (another try queued), dead (tries used up), skipped (not sent).',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  for (const outcome of Object.values(OUTCOMES)) deliveries.inc({ outcome }, 0);
  const latency = new Histogram({
    name: 'dispatcher_callback_latency_seconds',
    help: "From an event's publishing to its first try's 2xx.",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  new Gauge({
    name: 'dispatcher_queue_messages',
    help: 'Messages in each queue, dead-letter queues included, by state: visible, in flight, delayed.',
    labelNames: ['queue', 'state'] as const,
    registers: [registry],
    collect() {
      for (const queue of queues) {
        const stats = queue.stats();
        this.set({ queue: queue.name, state: 'visible' }, stats.visible);
        this.set({ queue: queue.name, state: 'in_flight' }, stats.inFlight);
        this.set({ queue: queue.name, state: 'delayed' }, stats.delayed);
      }
    },
  });
  new Gauge({
    name: 'dispatcher_dead_letters',
    help: 'Messages in each dead-letter queue: what ops redrive.',
    labelNames: ['queue'] as const,
    registers: [registry],
    collect() {
      for (const queue of queues.filter((q) => q.name.endsWith('-dlq'))) {
        const stats = queue.stats();
        this.set({ queue: queue.name }, stats.visible + stats.inFlight + stats.delayed);
      }
    },
  });
  const rates = minuteCounts(now);
  const observe = deliveryMetrics(
    {
      addMetric(name, unit, value) {
        if (name === DELIVERY_METRICS.latency && unit === 'Milliseconds') latency.observe(value / 1000);
        const outcome = OUTCOMES[name];
        if (outcome !== undefined) {
          deliveries.inc({ outcome }, value);
          rates.add(outcome, value);
        }
      },
    },
    now,
  );
  return {
    observe,
    rates,
    async scrape() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
