/**
 * `npm run capacity`: runs the scenarios through the model of the AWS pipeline and prints, for
 * each, its throughput, publish → callback p50/p99, peak messages in flight and what was
 * dead-lettered (docs/capacity.md explains the model).
 *
 *   npm run capacity                               the table, with the project's settings
 *   npm run capacity -- --json                     {scenarios: [{name, eventsPerSecond, …}]}
 *   npm run capacity -- --design=visibility        retries by visibility timeout, one queue
 *   npm run capacity -- --log=seq-counter          the log before it was spread: a counter transaction per append
 *   npm run capacity -- --stage-rate=5000:5000     another stage throttle (rate:burst)
 *   npm run capacity -- --set=dispatcherMaxConcurrency=200 --set=fanoutMaxConcurrency=40
 *   npm run capacity -- --producers=4 --events-per-request=100   more producers, the batch route
 *   npm run capacity -- --scenario=fleet,one-partner
 */
import { parseArgs } from 'node:util';
import { dispatcherTimeoutSeconds } from '../lib/constructs/timings.ts';
import {
  DELIVERY_DESIGNS,
  type DeliveryDesign,
  type EventLogDesign,
  type PipelineSettings,
  PROJECT_EVENT_LOG,
  simulate,
} from './model.ts';
import { formatTable, toJson } from './report.ts';
import { projectSettings, SCENARIOS, scenarioNamed } from './scenarios.ts';

/** The settings --set may change. */
const NUMERIC_SETTINGS = [
  'deliveryTimeoutMs',
  'dispatcherMaxConcurrency',
  'slowLaneMaxConcurrency',
  'fanoutMaxConcurrency',
  'dispatcherBatchSize',
  'fanoutBatchSize',
  'pipeBatchSize',
] as const;
type NumericSetting = (typeof NUMERIC_SETTINGS)[number];

const USAGE = `usage: npm run capacity -- [--json] [--design=scheduled|visibility] [--log=seq-counter|counter-add[:keys]|append-only[:keys]]
                            [--stage-rate=rate[:burst]] [--set=setting=value …] [--producers=n]
                            [--events-per-request=n] [--scenario=name[,name…]]
scenarios: ${SCENARIOS.map((s) => s.name).join(', ')}
settings: ${NUMERIC_SETTINGS.join(', ')}`;

function isDesign(value: string): value is DeliveryDesign {
  return (DELIVERY_DESIGNS as readonly string[]).includes(value);
}

function eventLog(value: string): EventLogDesign {
  const [kind, keys = '1'] = value.split(':');
  const keysPerPartner = Number(keys);
  if (
    (kind !== 'seq-counter' && kind !== 'counter-add' && kind !== 'append-only') ||
    !Number.isInteger(keysPerPartner) ||
    keysPerPartner < 1
  ) {
    throw new Error(`--log must be seq-counter, counter-add[:keys] or append-only[:keys], not ${value}`);
  }
  return { kind, keysPerPartner };
}

function stageThrottle(value: string): PipelineSettings['stageThrottle'] {
  const [rate = '', burst] = value.split(':');
  const rateLimit = Number(rate);
  const burstLimit = burst === undefined ? rateLimit * 2 : Number(burst);
  if (!(rateLimit > 0) || !(burstLimit > 0))
    throw new Error(`--stage-rate must be rate[:burst], not ${value}`);
  return { rateLimit, burstLimit };
}

function wholeNumber(option: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${option} takes a whole number, not ${text}`);
  return value;
}

function isNumericSetting(name: string): name is NumericSetting {
  return (NUMERIC_SETTINGS as readonly string[]).includes(name);
}

function withSet(settings: PipelineSettings, assignments: readonly string[]): PipelineSettings {
  let changed = settings;
  for (const assignment of assignments) {
    const [name = '', text = ''] = assignment.split('=');
    const value = Number(text);
    if (!isNumericSetting(name) || !Number.isInteger(value) || value < 1) {
      throw new Error(
        `--set takes setting=whole number, one of ${NUMERIC_SETTINGS.join(', ')}: not ${assignment}`,
      );
    }
    changed = { ...changed, [name]: value };
    if (name === 'deliveryTimeoutMs') {
      changed = { ...changed, dispatcherTimeoutSeconds: dispatcherTimeoutSeconds(value) };
    }
  }
  return changed;
}

/** Runs the CLI on `args` and returns what it prints. */
export function runCapacity(args: readonly string[]): string {
  const { values } = parseArgs({
    args: [...args],
    options: {
      json: { type: 'boolean', default: false },
      design: { type: 'string', default: 'scheduled' },
      log: { type: 'string' },
      'stage-rate': { type: 'string' },
      scenario: { type: 'string' },
      set: { type: 'string', multiple: true, default: [] },
      producers: { type: 'string' },
      'events-per-request': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) return `${USAGE}\n`;
  if (!isDesign(values.design)) throw new Error(`--design must be ${DELIVERY_DESIGNS.join(' or ')}`);
  const design = values.design;
  const log = values.log === undefined ? PROJECT_EVENT_LOG : eventLog(values.log);
  const base = projectSettings();
  const throttled =
    values['stage-rate'] === undefined
      ? base
      : { ...base, stageThrottle: stageThrottle(values['stage-rate']) };
  const settings = withSet(throttled, values.set);
  const chosen = values.scenario === undefined ? SCENARIOS : values.scenario.split(',').map(scenarioNamed);
  const producers = wholeNumber('--producers', values.producers);
  const eventsPerRequest = wholeNumber('--events-per-request', values['events-per-request']);
  const scenarios = chosen.map((scenario) => ({
    ...scenario,
    ...(producers === undefined ? {} : { producers }),
    ...(eventsPerRequest === undefined ? {} : { eventsPerRequest }),
  }));
  const results = scenarios.map((scenario) => simulate(scenario, { settings, design, eventLog: log }));
  return values.json ? `${JSON.stringify(toJson(results), null, 2)}\n` : formatTable(results, settings);
}

if (import.meta.main) {
  try {
    process.stdout.write(runCapacity(process.argv.slice(2)));
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n${USAGE}\n`);
    process.exitCode = 2;
  }
}
