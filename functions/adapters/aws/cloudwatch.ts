/**
 * What ops read of CloudWatch (GetMetricData only; nothing here writes a metric): the age of
 * each queue's oldest message, and the dispatcher's callbacks by outcome, a minute at a time.
 */
import {
  type CloudWatchClient,
  GetMetricDataCommand,
  type MetricDataQuery,
  type MetricDataResult,
} from '@aws-sdk/client-cloudwatch';
import type { Clock, DeliveryRateMinute, DeliveryRateSource } from '../../core/ports.ts';
import { systemClock } from '../clock.ts';
import { DELIVERY_METRICS } from '../delivery-metrics.ts';
import type { QueueAges } from './sqs-ops.ts';

const MINUTE_MS = 60_000;

/** Every query's data points over [start, end), each result's pages joined, by query id. */
async function metricData(
  client: CloudWatchClient,
  queries: MetricDataQuery[],
  start: Date,
  end: Date,
  scanBy: 'TimestampAscending' | 'TimestampDescending',
): Promise<Map<string, { timestamps: Date[]; values: number[] }>> {
  const byId = new Map<string, { timestamps: Date[]; values: number[] }>();
  let nextToken: string | undefined;
  do {
    const page = await client.send(
      new GetMetricDataCommand({
        MetricDataQueries: queries,
        StartTime: start,
        EndTime: end,
        ScanBy: scanBy,
        ...(nextToken === undefined ? {} : { NextToken: nextToken }),
      }),
    );
    for (const result of page.MetricDataResults ?? []) collect(byId, result);
    nextToken = page.NextToken;
  } while (nextToken !== undefined);
  return byId;
}

function collect(
  byId: Map<string, { timestamps: Date[]; values: number[] }>,
  result: MetricDataResult,
): void {
  if (result.Id === undefined) return;
  const series = byId.get(result.Id) ?? { timestamps: [], values: [] };
  const timestamps = result.Timestamps ?? [];
  const values = result.Values ?? [];
  for (let i = 0; i < Math.min(timestamps.length, values.length); i++) {
    const timestamp = timestamps[i];
    const value = values[i];
    if (timestamp === undefined || value === undefined) continue;
    series.timestamps.push(timestamp);
    series.values.push(value);
  }
  byId.set(result.Id, series);
}

export interface CloudWatchQueueAgesOptions {
  /**
   * How far back to look for each queue's latest ApproximateAgeOfOldestMessage: SQS publishes
   * it every minute, a few minutes late. @default 10
   */
  lookbackMinutes?: number;
  clock?: Clock;
}

/**
 * The queues' ApproximateAgeOfOldestMessage (AWS/SQS, by QueueName), the latest minute of each,
 * all in one GetMetricData request. A queue with no data point in the lookback (SQS stops
 * publishing for a queue left idle for hours) is left out.
 */
export class CloudWatchQueueAges implements QueueAges {
  readonly #client: CloudWatchClient;
  readonly #lookbackMs: number;
  readonly #clock: Clock;

  constructor(client: CloudWatchClient, options: CloudWatchQueueAgesOptions = {}) {
    this.#client = client;
    this.#lookbackMs = (options.lookbackMinutes ?? 10) * MINUTE_MS;
    this.#clock = options.clock ?? systemClock;
  }

  async oldestAgeSeconds(queueNames: readonly string[]): Promise<ReadonlyMap<string, number>> {
    if (queueNames.length === 0) return new Map();
    const end = this.#clock.now();
    const queries = queueNames.map(
      (queueName, i): MetricDataQuery => ({
        Id: `q${i}`,
        MetricStat: {
          Metric: {
            Namespace: 'AWS/SQS',
            MetricName: 'ApproximateAgeOfOldestMessage',
            Dimensions: [{ Name: 'QueueName', Value: queueName }],
          },
          Period: 60,
          Stat: 'Maximum',
        },
        ReturnData: true,
      }),
    );
    const series = await metricData(
      this.#client,
      queries,
      new Date(end.getTime() - this.#lookbackMs),
      end,
      'TimestampDescending',
    );
    const ages = new Map<string, number>();
    queueNames.forEach((queueName, i) => {
      const found = series.get(`q${i}`);
      if (found === undefined) return;
      // The newest data point (pages are joined, so it is looked for rather than assumed first).
      let newest: { at: number; age: number } | undefined;
      for (let k = 0; k < found.timestamps.length; k++) {
        const at = found.timestamps[k]?.getTime();
        const age = found.values[k];
        if (at === undefined || age === undefined) continue;
        if (newest === undefined || at > newest.at) newest = { at, age };
      }
      if (newest !== undefined) ages.set(queueName, newest.age);
    });
    return ages;
  }
}

/** The outcomes of DeliveryRateMinute, each with the dispatcher's metric that counts it. */
const OUTCOMES = [
  ['succeeded', DELIVERY_METRICS.succeeded],
  ['failed', DELIVERY_METRICS.failed],
  ['dead', DELIVERY_METRICS.dead],
  ['skipped', DELIVERY_METRICS.skipped],
] as const;

/**
 * The dispatcher's outcome counts from its CloudWatch metrics (written by Powertools Metrics
 * into its log, in `namespace`, with the dimension `service` = `dispatcher`): one GetMetricData
 * request of the four counts' sums at a period of a minute; a minute with no data point is zeros.
 */
export class CloudWatchDeliveryRates implements DeliveryRateSource {
  readonly #client: CloudWatchClient;
  readonly #namespace: string;
  readonly #clock: Clock;

  constructor(client: CloudWatchClient, namespace: string, clock: Clock = systemClock) {
    this.#client = client;
    this.#namespace = namespace;
    this.#clock = clock;
  }

  async lastMinutes(minutes: number): Promise<DeliveryRateMinute[]> {
    if (!Number.isInteger(minutes) || minutes < 1)
      throw new Error(`minutes must be a whole number, at least 1`);
    const end = Math.floor(this.#clock.now().getTime() / MINUTE_MS) * MINUTE_MS + MINUTE_MS;
    const start = end - minutes * MINUTE_MS;
    const queries = OUTCOMES.map(
      ([id, metricName]): MetricDataQuery => ({
        Id: id,
        MetricStat: {
          Metric: {
            Namespace: this.#namespace,
            MetricName: metricName,
            // Powertools' default dimension: the dispatcher's service name.
            Dimensions: [{ Name: 'service', Value: 'dispatcher' }],
          },
          Period: 60,
          Stat: 'Sum',
        },
        ReturnData: true,
      }),
    );
    const series = await metricData(
      this.#client,
      queries,
      new Date(start),
      new Date(end),
      'TimestampAscending',
    );
    const rows: DeliveryRateMinute[] = [];
    const byMinute = new Map<number, DeliveryRateMinute>();
    for (let minute = start; minute < end; minute += MINUTE_MS) {
      const row = { minute: new Date(minute).toISOString(), succeeded: 0, failed: 0, dead: 0, skipped: 0 };
      rows.push(row);
      byMinute.set(minute, row);
    }
    for (const [id] of OUTCOMES) {
      const found = series.get(id);
      if (found === undefined) continue;
      found.timestamps.forEach((timestamp, i) => {
        const row = byMinute.get(Math.floor(timestamp.getTime() / MINUTE_MS) * MINUTE_MS);
        const value = found.values[i];
        if (row !== undefined && value !== undefined) row[id] += value;
      });
    }
    return rows;
  }
}
