/**
 * The scenarios, and the project's settings read from its code: the deployment's defaults
 * (lib/settings.ts), the constants the CDK constructs build with, and the functions' own
 * constants. Nothing here restates a setting.
 */

import { DUE_SHARDS } from '../functions/adapters/aws/due-retries.ts';
import { SWEEP_BUDGET_MS } from '../functions/core/due-retries.ts';
import { MAX_BATCH_EVENTS } from '../functions/core/events.ts';
import { DEFAULT_DISABLE_AFTER_MS } from '../functions/core/health.ts';
import {
  DEFAULT_DELIVERY_RETENTION,
  DEFAULT_FANOUT_MAX_CONCURRENCY,
  DEFAULT_SLOW_LANE_MAX_CONCURRENCY,
  DISPATCHER_BATCH_SIZE,
  DUE_LOOKAHEAD_SECONDS,
  DUE_SWEEP_INTERVAL_SECONDS,
  FANOUT_BATCH_SIZE,
  VISIBILITY_TIMEOUT_FACTOR,
} from '../lib/constructs/delivery-pipeline.ts';
import { DEFAULT_PIPE_BATCH_SIZE, PIPE_PARALLELIZATION_FACTOR } from '../lib/constructs/event-stream.ts';
import { DEFAULT_STAGE_THROTTLE } from '../lib/constructs/partner-api.ts';
import { dispatcherTimeoutSeconds } from '../lib/constructs/timings.ts';
import { DEFAULT_SETTINGS, type DispatcherSettings } from '../lib/settings.ts';
import type { PipelineSettings, Scenario } from './model.ts';

/** The settings a deployment with `settings` (the defaults unless given) runs on. */
export function projectSettings(settings: DispatcherSettings = DEFAULT_SETTINGS): PipelineSettings {
  return {
    retrySchedule: settings.retrySchedule,
    deliveryTimeoutMs: settings.deliveryTimeoutMs,
    // As DeliveryPipeline derives it: the delivery timeout plus room for DNS, DynamoDB and SQS.
    dispatcherTimeoutSeconds: dispatcherTimeoutSeconds(settings.deliveryTimeoutMs),
    visibilityTimeoutFactor: VISIBILITY_TIMEOUT_FACTOR,
    dispatcherMaxConcurrency: settings.dispatcherMaxConcurrency,
    slowLaneMaxConcurrency: DEFAULT_SLOW_LANE_MAX_CONCURRENCY,
    fanoutMaxConcurrency: DEFAULT_FANOUT_MAX_CONCURRENCY,
    fanoutBatchSize: FANOUT_BATCH_SIZE,
    dispatcherBatchSize: DISPATCHER_BATCH_SIZE,
    dueSweepIntervalSeconds: DUE_SWEEP_INTERVAL_SECONDS,
    dueLookaheadSeconds: DUE_LOOKAHEAD_SECONDS,
    dueShards: DUE_SHARDS,
    sweepBudgetSeconds: SWEEP_BUDGET_MS / 1000,
    pipeBatchSize: DEFAULT_PIPE_BATCH_SIZE,
    stageThrottle: DEFAULT_STAGE_THROTTLE,
    producerRequestsPerSecond: settings.producerRequestsPerSecond,
    maxEventsPerRequest: MAX_BATCH_EVENTS,
    disableAfterSeconds: DEFAULT_DISABLE_AFTER_MS / 1000,
    deliveryRetentionSeconds: DEFAULT_DELIVERY_RETENTION.toSeconds(),
    pipeParallelizationFactor: PIPE_PARALLELIZATION_FACTOR,
  };
}

const HOUR = 3600;
const DAY = 24 * HOUR;

export const SCENARIOS: readonly Scenario[] = [
  {
    name: 'fleet',
    summary: '1,000 partners, one healthy subscription each, 5,000 events/s offered for an hour',
    offeredPerSecond: 5000,
    producers: 1,
    eventsPerRequest: MAX_BATCH_EVENTS,
    durationSeconds: HOUR,
    stepSeconds: 0.1,
    endpoints: { healthy: 1000, dead: 0, hanging: 0 },
    seed: 1,
  },
  {
    name: 'one-partner',
    summary: 'one partner, one healthy subscription, 2,000 events/s offered for an hour',
    offeredPerSecond: 2000,
    producers: 1,
    eventsPerRequest: MAX_BATCH_EVENTS,
    durationSeconds: HOUR,
    stepSeconds: 0.1,
    endpoints: { healthy: 1, dead: 0, hanging: 0 },
    seed: 2,
  },
  {
    name: 'dead-endpoints',
    summary: 'the fleet with 5% of its endpoints dead (fail fast) for five days',
    offeredPerSecond: 5000,
    producers: 1,
    eventsPerRequest: MAX_BATCH_EVENTS,
    durationSeconds: 5 * DAY,
    stepSeconds: 2,
    endpoints: { healthy: 950, dead: 50, hanging: 0 },
    seed: 3,
  },
  {
    name: 'hanging-endpoints',
    summary:
      '100 endpoints that hang (take the whole delivery timeout) beside 1,000 healthy ones, for an hour',
    offeredPerSecond: 5000,
    producers: 1,
    eventsPerRequest: MAX_BATCH_EVENTS,
    durationSeconds: HOUR,
    stepSeconds: 0.1,
    endpoints: { healthy: 1000, dead: 0, hanging: 100 },
    seed: 4,
  },
];

export function scenarioNamed(name: string): Scenario {
  const scenario = SCENARIOS.find((s) => s.name === name);
  if (scenario === undefined) {
    throw new Error(`no scenario named ${name}: ${SCENARIOS.map((s) => s.name).join(', ')}`);
  }
  return scenario;
}
