import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { runCapacity } from '../../capacity/run.ts';

const RUN = fileURLToPath(new URL('../../capacity/run.ts', import.meta.url));
const KEYS = [
  'name',
  'eventsPerSecond',
  'healthyCallbacksPerSecond',
  'p50Seconds',
  'p99Seconds',
  'peakInFlight',
  'deadLettered',
];

function scenariosOf(output: string): Record<string, unknown>[] {
  const parsed: unknown = JSON.parse(output);
  expect(Object.keys(parsed as object)).toEqual(['scenarios']);
  const { scenarios } = parsed as { scenarios: unknown };
  expect(Array.isArray(scenarios)).toBe(true);
  return scenarios as Record<string, unknown>[];
}

describe('npm run capacity', () => {
  it('prints {scenarios: [{name, eventsPerSecond, …}]} with --json, exactly those names', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [RUN, '--json', '--scenario=fleet']);
    const [fleet, ...rest] = scenariosOf(stdout);
    expect(rest).toEqual([]);
    expect(Object.keys(fleet ?? {})).toEqual(KEYS);
    expect(fleet?.name).toBe('fleet');
    for (const key of KEYS.slice(1)) expect(typeof fleet?.[key]).toBe('number');
  });

  it('reports each scenario asked for, in order, with figures that follow from the model', () => {
    const scenarios = scenariosOf(runCapacity(['--json', '--scenario=one-partner,hanging-endpoints']));
    expect(scenarios.map((s) => s.name)).toEqual(['one-partner', 'hanging-endpoints']);
    const [onePartner, hanging] = scenarios;
    // One partner's 2,000 events a second, in batches, all get through; beside hanging
    // endpoints the healthy ones are called back, the hanging ones not.
    expect(onePartner?.eventsPerSecond).toBeGreaterThanOrEqual(1000);
    expect(onePartner?.healthyCallbacksPerSecond).toBeGreaterThanOrEqual(1000);
    expect(hanging?.healthyCallbacksPerSecond).toBeLessThan(Number(hanging?.eventsPerSecond));
  });

  it('prints a table with every scenario and what held it back', () => {
    const table = runCapacity(['--scenario=fleet']);
    expect(table).toMatch(/\| fleet +\|/);
    expect(table).toMatch(/^ {2}held back by: .+\.$/m);
  });

  it('takes another stage throttle, log and request size: a higher throttle admits more', () => {
    const at = (rate: number) =>
      scenariosOf(
        runCapacity([
          '--json',
          '--scenario=one-partner',
          `--stage-rate=${rate}`,
          '--log=append-only:4',
          '--events-per-request=10',
        ]),
      )[0]?.eventsPerSecond;
    expect(at(5)).toBeLessThan(60);
    expect(at(5000)).toBeGreaterThan(1000);
  });

  it('sets numeric settings with --set, and the producers with --producers', () => {
    const callbacks = (concurrency: number) =>
      scenariosOf(
        runCapacity([
          '--json',
          '--scenario=fleet',
          '--stage-rate=5000',
          '--producers=5',
          `--set=fanoutMaxConcurrency=${concurrency}`,
          `--set=dispatcherMaxConcurrency=${concurrency * 4}`,
        ]),
      )[0]?.healthyCallbacksPerSecond;
    expect(Number(callbacks(50))).toBeGreaterThan(2 * Number(callbacks(5)));
  });

  it('refuses an unknown design, scenario or setting, and a pipe batch an SQS target does not take', () => {
    expect(() => runCapacity(['--design=fifo'])).toThrow(/--design/);
    expect(() => runCapacity(['--scenario=nope'])).toThrow(/no scenario named nope/);
    expect(() => runCapacity(['--set=colour=3'])).toThrow(/--set/);
    expect(() => runCapacity(['--set=pipeBatchSize=11', '--scenario=fleet'])).toThrow(/pipeBatchSize/);
    expect(() => runCapacity(['--producers=0'])).toThrow(/--producers/);
    expect(() => runCapacity(['--events-per-request=101', '--scenario=fleet'])).toThrow(/eventsPerRequest/);
  });
});
