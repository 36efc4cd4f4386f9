/**
 * `npm run cost`: what a callback costs on AWS, per service, for each scenario (a pushed
 * delivery is a callback down a connection), what polling costs a partner, long and short,
 * and what keeping an agent connected costs a month (docs/cost.md).
 * It synthesizes the CDK app, starts DynamoDB Local (as the test suite does), runs the
 * functions' own Lambda entries on it through each scenario, and prices what they did.
 *
 *   npm run cost                              the table
 *   npm run cost -- --json                    {scenarios: [{name, perMillionCallbacksUsd, …}], …}
 *   npm run cost -- --projections=definitions index projections as tables.ts defines them
 *   npm run cost -- --scenario=batched
 *   npm run cost -- --static-egress           with fixed egress addresses (-c staticEgress=true)
 */
import { parseArgs } from 'node:util';
import { ANSWER_POLL_MS } from '../functions/adapters/aws/connections.ts';
import { MAX_POLL_WAIT_SECONDS } from '../functions/core/events.ts';
import { ensureDynamoDbLocal } from '../test/dynamodb-local/install.ts';
import { startDynamoDbLocal } from '../test/dynamodb-local/server.ts';
import { type Deployment, synthesizeDeployment, withDefinitionProjections } from './deployment.ts';
import { Harness } from './harness.ts';
import { answerReads, priceConnectionMonth, priceIdleMonth, pricePolling, priceScenario } from './model.ts';
import { type CostReport, formatReport, toJson } from './report.ts';
import { ASSUMPTIONS, SCENARIOS, scenarioNamed, TARGET_USD_PER_MILLION_CALLBACKS } from './scenarios.ts';

const USAGE = `usage: npm run cost -- [--json] [--projections=template|definitions] [--scenario=name[,name…]] [--static-egress]
scenarios: ${SCENARIOS.map((s) => s.name).join(', ')}`;

export interface CostOptions {
  /** Index projections from the synthesized template (what deploys today) or from tables.ts. @default 'template' */
  readonly projections?: 'template' | 'definitions';
  /** @default every scenario */
  readonly scenarios?: readonly string[];
  /** The long poll measured waits this long. @default MAX_POLL_WAIT_SECONDS */
  readonly pollWaitSeconds?: number;
  /**
   * The deployment with fixed egress addresses (`-c staticEgress=true`): its NAT gateways and
   * their Elastic IPs are priced too. @default false
   */
  readonly staticEgress?: boolean;
}

/**
 * Measures every scenario on the DynamoDB Local at `endpoint` and prices it. Once per process:
 * the functions keep the tables they were imported with.
 */
export async function measureCost(endpoint: string, options: CostOptions = {}): Promise<CostReport> {
  const projections = options.projections ?? 'template';
  const staticEgress = options.staticEgress ?? false;
  const synthesized = synthesizeDeployment(staticEgress ? { staticEgress: 'true' } : {});
  const deployment: Deployment =
    projections === 'template' ? synthesized : withDefinitionProjections(synthesized);
  const scenarios = (options.scenarios ?? SCENARIOS.map((s) => s.name)).map(scenarioNamed);
  const agentAnswer = answerReads(ASSUMPTIONS.agentAnswerMs, ANSWER_POLL_MS, ASSUMPTIONS.awsRequestMs);
  const harness = await Harness.start({ endpoint, deployment, agentAnswerRead: agentAnswer.reads });
  try {
    const measured = [];
    for (const scenario of scenarios) measured.push(await harness.measure(scenario));
    const runs = await harness.measureSchedules();
    const wait = options.pollWaitSeconds ?? MAX_POLL_WAIT_SECONDS;
    const polling = pricePolling(
      await harness.measurePoll(wait),
      await harness.measurePoll(0),
      wait,
      deployment,
      ASSUMPTIONS,
    );
    const connection = priceConnectionMonth(await harness.measureConnection(), deployment, ASSUMPTIONS);
    const costs = measured.map((m) => priceScenario(m, deployment, ASSUMPTIONS));
    const idleMonth = priceIdleMonth(deployment, runs, ASSUMPTIONS);
    // The target is a URL callback's: pushed deliveries are not held to it.
    const target = costs.find((c) => c.name === 'batched') ?? costs.find((c) => c.pushBytes === undefined);
    return {
      region: 'us-east-1',
      pricing: 'on-demand',
      projections,
      ...(staticEgress ? { staticEgress } : {}),
      target: {
        scenario: target?.name ?? 'batched',
        usdPerMillionCallbacks: TARGET_USD_PER_MILLION_CALLBACKS,
        met: target !== undefined && target.perMillionCallbacksUsd <= TARGET_USD_PER_MILLION_CALLBACKS,
      },
      scenarios: costs,
      idleMonthUsd: idleMonth.reduce((sum, line) => sum + line.usd, 0),
      idleMonth,
      polling,
      connection,
      answerReads: agentAnswer,
      assumptions: ASSUMPTIONS,
    };
  } finally {
    await harness.stop();
  }
}

/** Runs the CLI on `args` and returns what it prints. */
export async function runCost(args: readonly string[]): Promise<string> {
  const { values } = parseArgs({
    args: [...args],
    options: {
      json: { type: 'boolean', default: false },
      projections: { type: 'string', default: 'template' },
      scenario: { type: 'string' },
      'static-egress': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) return `${USAGE}\n`;
  const projections = values.projections;
  if (projections !== 'template' && projections !== 'definitions') {
    throw new Error('--projections must be template or definitions');
  }
  const scenarios = values.scenario?.split(',');
  for (const name of scenarios ?? []) scenarioNamed(name);
  const server = await startDynamoDbLocal(await ensureDynamoDbLocal());
  try {
    const report = await measureCost(server.endpoint, {
      projections,
      staticEgress: values['static-egress'],
      ...(scenarios ? { scenarios } : {}),
    });
    return values.json ? toJson(report) : formatReport(report);
  } finally {
    await server.stop();
  }
}

if (import.meta.main) {
  try {
    process.stdout.write(await runCost(process.argv.slice(2)));
  } catch (error) {
    process.stderr.write(
      `${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n${USAGE}\n`,
    );
    process.exitCode = 1;
  }
}
