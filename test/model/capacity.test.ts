import { beforeAll, describe, expect, it } from 'vitest';
import {
  ASSUMPTIONS,
  type DeliveryDesign,
  type Ledger,
  type ModelOptions,
  PROJECT_EVENT_LOG,
  type Scenario,
  type ScenarioResult,
  SEQ_COUNTER_EVENT_LOG,
  simulate,
} from '../../capacity/model.ts';
import { projectSettings, SCENARIOS, scenarioNamed } from '../../capacity/scenarios.ts';
import { PIPES, SQS } from '../../functions/aws-quotas.ts';
import {
  DEFAULT_SLOW_LANE_MAX_CONCURRENCY,
  DISPATCHER_BATCH_SIZE,
  DUE_SWEEP_INTERVAL_SECONDS,
} from '../../lib/constructs/delivery-pipeline.ts';
import { DEFAULT_PIPE_BATCH_SIZE, PIPE_PARALLELIZATION_FACTOR } from '../../lib/constructs/event-stream.ts';
import { DEFAULT_SETTINGS } from '../../lib/settings.ts';

const settings = projectSettings();
const DAY = 24 * 3600;
/**
 * Events a second the default dispatcher keeps up with, whatever the API admits: the retry and
 * lane tests load the pipeline with this much, so what they see comes from the retries.
 */
const LOAD = 100;
const run = (scenario: Scenario, design: DeliveryDesign, options: Partial<ModelOptions> = {}) =>
  simulate(scenario, { settings, design, eventLog: PROJECT_EVENT_LOG, ...options });

/** Where every offered event and every delivery is: nothing is created or lost on the way. */
function expectBalanced(l: Ledger): void {
  expect(l.offered).toBe(l.throttled + l.rejected + l.publishing + l.accepted);
  expect(l.accepted).toBe(l.upstream + l.expiredEvents + l.notDelivered + l.deliveries);
  expect(l.deliveries).toBe(l.succeeded + l.deadLettered + l.skipped + l.expired + l.pending);
  for (const value of Object.values(l)) expect(Number.isInteger(value) && value >= 0).toBe(true);
}

describe('projectSettings', () => {
  it("reads the deployment's defaults and the constructs' constants", () => {
    expect(settings.retrySchedule).toBe(DEFAULT_SETTINGS.retrySchedule);
    expect(settings.dispatcherMaxConcurrency).toBe(DEFAULT_SETTINGS.dispatcherMaxConcurrency);
    expect(settings.deliveryTimeoutMs).toBe(DEFAULT_SETTINGS.deliveryTimeoutMs);
    expect(settings.dispatcherTimeoutSeconds).toBe(Math.ceil(DEFAULT_SETTINGS.deliveryTimeoutMs / 1000) + 20);
    expect(settings.slowLaneMaxConcurrency).toBe(DEFAULT_SLOW_LANE_MAX_CONCURRENCY);
    expect(settings.dispatcherBatchSize).toBe(DISPATCHER_BATCH_SIZE);
    expect(settings.dueSweepIntervalSeconds).toBe(DUE_SWEEP_INTERVAL_SECONDS);
    expect(settings.pipeBatchSize).toBe(DEFAULT_PIPE_BATCH_SIZE);
    expect(settings.pipeParallelizationFactor).toBe(PIPE_PARALLELIZATION_FACTOR);
  });

  it("keeps the pipe's batch within what an SQS queue target takes", () => {
    expect(PIPES.sqsTargetMaxBatch).toBe(SQS.maxBatchEntries);
    expect(settings.pipeBatchSize).toBeLessThanOrEqual(PIPES.sqsTargetMaxBatch);
  });
});

describe('the pipe', () => {
  const fleet = { ...scenarioNamed('fleet'), durationSeconds: 600 };
  const PIPE_LIMIT =
    /pipe: (\d+) stream shard\(s\) × (\d+) batch\(es\) of (\d+) at a time \((\d+) events\/s\)/;

  it('sends a shard ParallelizationFactor batches at a time, each one SendMessageBatch to the fan-out queue', () => {
    // SendMessageBatch taking a second makes the pipe the narrowest stage.
    const slow = run(fleet, 'scheduled', { assumptions: { ...ASSUMPTIONS, sendBatchSeconds: 1 } });
    const held = slow.limits.join().match(PIPE_LIMIT);
    expect(held).not.toBeNull();
    const [shards, factor, batch, rate] = (held ?? []).slice(1).map(Number);
    expect(factor).toBe(settings.pipeParallelizationFactor);
    expect(batch).toBe(settings.pipeBatchSize);
    expect(rate).toBe((shards ?? 0) * settings.pipeParallelizationFactor * settings.pipeBatchSize);
    // Fan-out gets the pipe's rate, no more; the rest waits upstream, none of it lost.
    const fannedOut = slow.ledger.deliveries / slow.durationSeconds;
    expect(fannedOut).toBeLessThanOrEqual(rate ?? 0);
    expect(fannedOut).toBeGreaterThan(0.95 * (rate ?? 0));
    expect(rate).toBeLessThan(fleet.offeredPerSecond);
    expect(slow.ledger.upstream).toBeGreaterThan(
      0.5 * (fleet.offeredPerSecond - (rate ?? 0)) * fleet.durationSeconds,
    );
    expect(slow.ledger.expiredEvents).toBe(0);
    expectBalanced(slow.ledger);
  });

  it("does not hold the project's settings back: the fan-out queue puts no rate on it", () => {
    const result = run(fleet, 'scheduled');
    expect(result.limits.join()).not.toMatch(PIPE_LIMIT);
    expect(result.ledger.upstream).toBeLessThan(fleet.offeredPerSecond);
  });

  it('refuses a batch bigger than an SQS queue target takes', () => {
    const big = { ...settings, pipeBatchSize: PIPES.sqsTargetMaxBatch + 1 };
    expect(() => run(fleet, 'scheduled', { settings: big })).toThrow(/pipeBatchSize must be from 1 to 10/);
  });
});

describe('the dead-endpoints scenario over its first day and a half', () => {
  // Long enough for the first dead deliveries to use up the schedule (30 hours at least).
  const firstDay = { ...scenarioNamed('dead-endpoints'), offeredPerSecond: LOAD, durationSeconds: 1.5 * DAY };
  let visibility: ScenarioResult;
  let scheduled: ScenarioResult;
  beforeAll(() => {
    visibility = run(firstDay, 'visibility');
    scheduled = run(firstDay, 'scheduled');
  }, 60_000);

  it('stalls with visibility-timeout retries: healthy callbacks collapse once in-flight reaches the quota', () => {
    const reached = visibility.inFlightQuotaReachedAt;
    expect(reached).not.toBeNull();
    expect(visibility.peakInFlight).toBeGreaterThanOrEqual(SQS.standardInFlight);
    const { healthyCreated, healthyCallbacks } = visibility.hourly;
    const stallHour = Math.floor((reached ?? 0) / 3600);
    // Before: every healthy delivery is called back within its hour.
    for (let hour = 0; hour < stallHour; hour++) {
      expect(healthyCallbacks[hour]).toBeGreaterThan(0.99 * (healthyCreated[hour] ?? 0));
    }
    // After: receives return nothing while the quota is held; dead retries, older sends, go first.
    const after = stallHour + 1;
    expect(healthyCallbacks[after]).toBeLessThan(0.25 * (healthyCreated[after] ?? 0));
    const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
    expect(sum(healthyCallbacks.slice(after))).toBeLessThan(0.6 * sum(healthyCreated.slice(after)));
    expect(visibility.healthy.p99Seconds).toBeGreaterThan(6 * 3600);
    expect(visibility.limits.join()).toContain('SQS in-flight quota');
  });

  it('does not stall with scheduled retries: failed tries leave the queue, waiting is not in flight', () => {
    expect(scheduled.inFlightQuotaReachedAt).toBeNull();
    expect(scheduled.peakInFlight).toBeLessThan(1000);
    const { healthyCreated, healthyCallbacks } = scheduled.hourly;
    healthyCreated.forEach((created, hour) => {
      expect(healthyCallbacks[hour]).toBeGreaterThan(0.99 * created);
    });
    expect(scheduled.healthy.p99Seconds).toBeLessThan(5);
    // A dead delivery is dead-lettered after its last try: at least 80% of the schedule's waits
    // (about 30 of 37.6 hours) with scheduled retries, about half of them with full jitter.
    const spanHours = settings.retrySchedule.reduce((a, b) => a + b, 0) / 3600;
    expect(spanHours * 0.8).toBeGreaterThanOrEqual(30);
    expect(spanHours * 0.8).toBeLessThan(36);
    expect(scheduled.ledger.deadLettered).toBeGreaterThan(0);
    expect(scheduled.ledger.deadLettered).toBeLessThan(visibility.ledger.deadLettered);
  });

  it('balances its books in both designs', () => {
    expectBalanced(visibility.ledger);
    expectBalanced(scheduled.ledger);
    expect(visibility.ledger.pending).toBeGreaterThan(1_000_000);
  });
});

describe('the hanging-endpoints scenario', () => {
  const hanging = { ...scenarioNamed('hanging-endpoints'), offeredPerSecond: LOAD, eventsPerRequest: 1 };
  // Few dispatchers, so that what hanging callbacks hold shows: the default concurrency would
  // hide it at this load.
  const few = { ...settings, dispatcherMaxConcurrency: 10, slowLaneMaxConcurrency: 5 };
  let oneLane: ScenarioResult;
  let slowLane: ScenarioResult;
  let allHealthy: ScenarioResult;
  beforeAll(() => {
    oneLane = run(hanging, 'visibility', { settings: few });
    slowLane = run(hanging, 'scheduled', { settings: few });
    allHealthy = run({ ...hanging, endpoints: { healthy: 1100, dead: 0, hanging: 0 } }, 'scheduled', {
      settings: few,
    });
  }, 60_000);

  it("hurts the healthy subscriptions' p99 with one lane: a hanging callback holds its whole batch", () => {
    expect(oneLane.healthy.settledP99Seconds).toBeGreaterThan(600);
    expect(oneLane.healthy.callbacks).toBeLessThan(0.5 * oneLane.healthy.deliveries);
  });

  it('leaves them alone with the slow lane, once each hanging endpoint has failed once', () => {
    expect(slowLane.healthy.settledP99Seconds).toBeLessThan(1.5 * allHealthy.healthy.p99Seconds);
    expect(slowLane.healthy.withoutCallback).toBeLessThan(0.001 * slowLane.healthy.callbacks);
    expect(slowLane.healthy.p99Seconds).toBeLessThan(oneLane.healthy.p99Seconds / 10);
    expect(slowLane.healthy.callbacks).toBeGreaterThan(0.99 * slowLane.healthy.deliveries);
  });

  it('balances its books', () => {
    expectBalanced(oneLane.ledger);
    expectBalanced(slowLane.ledger);
  });
});

describe('the API', () => {
  it('holds each producer to its limit, its counts spread over items no partition cannot take', () => {
    const fleet = {
      ...scenarioNamed('fleet'),
      offeredPerSecond: 3000,
      eventsPerRequest: 1,
      durationSeconds: 120,
    };
    const tight = { ...settings, producerRequestsPerSecond: 1000 };
    const one = run(fleet, 'scheduled', { settings: tight });
    expect(one.ledger.accepted / one.durationSeconds).toBeLessThanOrEqual(1000);
    expect(one.limits.join()).toContain('per-producer limit');
    const generous = run(fleet, 'scheduled', { settings: { ...settings, producerRequestsPerSecond: 5000 } });
    expect(generous.ledger.accepted / generous.durationSeconds).toBeGreaterThan(2900);
    expectBalanced(one.ledger);
  });
});

describe('the event log', () => {
  const onePartner = { ...scenarioNamed('one-partner'), durationSeconds: 600 };
  const unthrottled = { ...settings, stageThrottle: { rateLimit: 5000, burstLimit: 5000 } };

  it('says one partner could not reach 1,000 events/s with a counter transaction per append, whatever the API lets through', () => {
    const result = run({ ...onePartner, eventsPerRequest: 10 }, 'scheduled', {
      settings: unthrottled,
      eventLog: SEQ_COUNTER_EVENT_LOG,
    });
    expect(result.ledger.accepted / result.durationSeconds).toBeLessThan(100);
    expect(result.partnerLogCeiling).toBeLessThan(1000);
    expect(result.limits.join()).toContain('SEQ counter');
    expect(result.ledger.rejected).toBeGreaterThan(0);
    expectBalanced(result.ledger);
  });

  it('lets one partner publish 2,000 a second with the log as built: one ADD per request, events over four keys', () => {
    const result = run({ ...onePartner, eventsPerRequest: 10 }, 'scheduled', { settings: unthrottled });
    expect(PROJECT_EVENT_LOG).toEqual({ kind: 'counter-add', keysPerPartner: 4 });
    expect(result.partnerLogCeiling).toBeGreaterThanOrEqual(2000);
    expect(result.ledger.accepted / result.durationSeconds).toBeGreaterThan(1900);
    expectBalanced(result.ledger);
  });

  it('caps single-event publishes of one partner at its counter item: one ADD each', () => {
    const result = run({ ...onePartner, eventsPerRequest: 1 }, 'scheduled', { settings: unthrottled });
    expect(result.partnerLogCeiling).toBe(1000);
    expectBalanced(result.ledger);
  });

  it('is a parameter: an append-only log over several keys takes more', () => {
    // Batches of 10 events, so the producer's 1,000 requests a second are not what holds it back.
    const result = run({ ...onePartner, eventsPerRequest: 10 }, 'scheduled', {
      settings: unthrottled,
      eventLog: { kind: 'append-only', keysPerPartner: 4 },
    });
    expect(result.ledger.accepted / result.durationSeconds).toBeGreaterThan(1000);
    expectBalanced(result.ledger);
  });
});

describe('simulate', () => {
  const short = { ...scenarioNamed('hanging-endpoints'), offeredPerSecond: LOAD, durationSeconds: 900 };

  it('is deterministic: the same seed gives the same result', () => {
    expect(run(short, 'visibility')).toEqual(run(short, 'visibility'));
  });

  it('draws its jitter from the seed', () => {
    expect(run({ ...short, seed: 99 }, 'visibility')).not.toEqual(run(short, 'visibility'));
  });

  it('balances its books when subscriptions are disabled and deliveries skipped', () => {
    const quick = { ...settings, disableAfterSeconds: 1800 };
    const dead = { ...scenarioNamed('dead-endpoints'), offeredPerSecond: LOAD, durationSeconds: 3 * 3600 };
    const result = run(dead, 'scheduled', { settings: quick });
    expect(result.ledger.notDelivered + result.ledger.skipped).toBeGreaterThan(0);
    expectBalanced(result.ledger);
  });

  it("carries every scenario's load: all offered accepted, every healthy delivery called back, no stall", () => {
    for (const scenario of SCENARIOS) {
      const result = run(scenario, 'scheduled');
      const l = result.ledger;
      expectBalanced(l);
      expect(l.throttled + l.rejected).toBe(0);
      expect(l.accepted).toBeGreaterThan(0.999 * scenario.offeredPerSecond * scenario.durationSeconds);
      // Less than a second's events between the log and fan-out at the end, none dropped.
      expect(l.upstream).toBeLessThan(scenario.offeredPerSecond);
      expect(l.expiredEvents + l.expired).toBe(0);
      const e = scenario.endpoints;
      const healthyShare = e.healthy / (e.healthy + e.dead + e.hanging);
      expect(result.healthy.callbacks).toBeGreaterThan(0.99 * healthyShare * l.accepted);
      expect(result.inFlightQuotaReachedAt).toBeNull();
      expect(result.limits.join()).not.toMatch(/pipe|fan-out|Lambda account/);
    }
  }, 60_000);
});
