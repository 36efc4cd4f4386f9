/** The model's results as the CLI prints them: a table for people, JSON for programs. */
import type { PipelineSettings, ScenarioResult } from './model.ts';

/** One scenario in `npm run capacity -- --json`. */
export interface ScenarioSummary {
  readonly name: string;
  /** Events the log accepted per second, over the run. */
  readonly eventsPerSecond: number;
  /** Callbacks to healthy subscriptions per second, over the run. */
  readonly healthyCallbacksPerSecond: number;
  /** Publish → callback percentiles of the healthy subscriptions' callbacks. */
  readonly p50Seconds: number;
  readonly p99Seconds: number;
  /** Most messages in flight in one delivery queue. */
  readonly peakInFlight: number;
  /** Deliveries put in the delivery dead-letter queue. */
  readonly deadLettered: number;
}

export interface CapacityReport {
  readonly scenarios: readonly ScenarioSummary[];
}

const significant = (x: number) => Number(x.toPrecision(3));

export function summarize(result: ScenarioResult): ScenarioSummary {
  return {
    name: result.name,
    eventsPerSecond: significant(result.ledger.accepted / result.durationSeconds),
    healthyCallbacksPerSecond: significant(result.healthy.callbacks / result.durationSeconds),
    p50Seconds: significant(result.healthy.p50Seconds),
    p99Seconds: significant(result.healthy.p99Seconds),
    peakInFlight: Math.round(result.peakInFlight),
    deadLettered: result.ledger.deadLettered,
  };
}

export function toJson(results: readonly ScenarioResult[]): CapacityReport {
  return { scenarios: results.map(summarize) };
}

/** 0.65 s, 4.8 s, 2.1 min, 29 h. */
export function duration(seconds: number): string {
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(2) : seconds.toFixed(0)} s`;
  if (seconds < 3600) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(seconds < 36_000 ? 1 : 0)} h`;
}

const count = (n: number) => Math.round(n).toLocaleString('en-US');

function rate(n: number): string {
  return n >= 100 ? count(n) : n.toFixed(1);
}

function row(cells: readonly string[], widths: readonly number[]): string {
  return `| ${cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join(' | ')} |`;
}

/** The table, then what held each scenario back. */
export function formatTable(results: readonly ScenarioResult[], settings: PipelineSettings): string {
  const first = results[0];
  if (first === undefined) return 'no scenarios\n';
  const header = [
    'scenario',
    'offered/s',
    'accepted/s',
    'healthy callbacks/s',
    'p50',
    'p99',
    'p99 settled',
    'peak in flight',
    'dead-lettered',
  ];
  const rows = results.map((r) => {
    const s = summarize(r);
    return [
      r.name,
      rate(r.offeredPerSecond),
      rate(s.eventsPerSecond),
      rate(s.healthyCallbacksPerSecond),
      duration(r.healthy.p50Seconds),
      duration(r.healthy.p99Seconds),
      r.healthy.settledP99Seconds === null ? '—' : duration(r.healthy.settledP99Seconds),
      count(s.peakInFlight),
      count(s.deadLettered),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((cells) => (cells[i] ?? '').length)));
  const lines = [
    `design: ${first.design === 'scheduled' ? 'scheduled retries + slow lane' : 'visibility-timeout retries, one queue'}; ` +
      `event log: ${first.eventLog.kind}, ${first.eventLog.keysPerPartner} key(s) per partner`,
    `settings: retry schedule ${settings.retrySchedule.join(',')} s; delivery timeout ${settings.deliveryTimeoutMs} ms; ` +
      `dispatcher MaximumConcurrency ${settings.dispatcherMaxConcurrency}` +
      (first.design === 'scheduled' ? `, slow lane ${settings.slowLaneMaxConcurrency}` : '') +
      `; stage throttle ${settings.stageThrottle.rateLimit} rps (burst ${settings.stageThrottle.burstLimit})`,
    '',
    row(header, widths),
    `|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`,
    ...rows.map((cells) => row(cells, widths)),
    '',
    'p50/p99: publish → callback of the healthy subscriptions; p99 settled: of the events published after the first',
    'tenth of the run. Peak in flight: one delivery queue (SQS quota ~120,000).',
    '',
  ];
  for (const r of results) {
    const l = r.ledger;
    const facts = [
      `${count(l.throttled)} answered 429, ${count(l.rejected)} 503/500`,
      `${count(l.pending + l.upstream)} pending at the end`,
      ...(r.healthy.withoutCallback > 0.01 * (r.healthy.callbacks + r.healthy.withoutCallback)
        ? [
            `${count(r.healthy.withoutCallback)} healthy events without a callback yet (p50/p99 are of those called back)`,
          ]
        : []),
      ...(l.expired + l.expiredEvents > 0
        ? [`${count(l.expired + l.expiredEvents)} dropped by the queues' retention`]
        : []),
      ...(l.skipped + l.notDelivered > 0 ? [`${count(l.skipped + l.notDelivered)} skipped (disabled)`] : []),
      ...(r.inFlightQuotaReachedAt === null
        ? []
        : [`in-flight quota reached after ${duration(r.inFlightQuotaReachedAt)}`]),
      `one partner's log takes ${r.partnerLogCeiling.toFixed(0)} events/s`,
      `peak Lambda concurrency ${count(r.peakLambdaConcurrency)}`,
    ];
    lines.push(`${r.name}: ${facts.join('; ')}.`);
    lines.push(`  held back by: ${r.limits.length === 0 ? 'nothing' : r.limits.join('; ')}.`);
  }
  return `${lines.join('\n')}\n`;
}
