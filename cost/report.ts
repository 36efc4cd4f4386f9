/** What `npm run cost` prints: a table per AWS service for every scenario, or the same as JSON. */
import type { ConnectionCost, CostLine, PollingCost, ScenarioCost } from './model.ts';
import { SERVICES } from './model.ts';
import type { Assumptions } from './scenarios.ts';

export interface CostReport {
  readonly region: 'us-east-1';
  readonly pricing: 'on-demand';
  /** Where the index projections come from: the synthesized templates, or the tables' definitions. */
  readonly projections: 'template' | 'definitions';
  /** Priced with fixed egress addresses (`-c staticEgress=true`). @default false */
  readonly staticEgress?: boolean;
  readonly target: {
    readonly scenario: string;
    readonly usdPerMillionCallbacks: number;
    readonly met: boolean;
  };
  readonly scenarios: readonly ScenarioCost[];
  /** What the deployment pays each month apart from its callbacks. */
  readonly idleMonthUsd: number;
  readonly idleMonth: readonly CostLine[];
  readonly polling: PollingCost;
  /** Keeping one agent connected to the WebSocket API, a month. */
  readonly connection: ConnectionCost;
  /**
   * A pushed try's answer: which of the dispatcher's reads sees it, and how long after the
   * frame went that read is answered (model.ts answerReads, with Assumptions.agentAnswerMs).
   */
  readonly answerReads: { readonly reads: number; readonly ms: number };
  readonly assumptions: Assumptions;
}

/** A quantity readably: small ones with two significant digits. */
export function quantity(value: number, unit: string): string {
  if (value === 0) return `0 ${unit}`;
  const text =
    value >= 100
      ? Math.round(value).toLocaleString('en-US')
      : value >= 0.01
        ? String(Number(value.toFixed(3)))
        : value.toExponential(1);
  return `${text} ${unit}`;
}

/** A small amount of dollars, to the millionth of a cent. */
function usd6(value: number): string {
  return `$${value.toFixed(8)}`;
}

export function usd(value: number): string {
  return `$${value < 10 ? value.toFixed(3) : value.toFixed(2)}`;
}

function table(header: readonly string[], rows: readonly (readonly string[])[], rightFrom: number): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    `| ${cells.map((c, i) => (i >= rightFrom ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i >= rightFrom ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

/** The per-callback table: one row per billed item, grouped by service, every scenario side by side. */
export function formatReport(report: CostReport): string {
  const [first] = report.scenarios;
  if (first === undefined) return 'no scenarios\n';
  const header = [
    'service',
    'item',
    ...report.scenarios.flatMap((s) => [`${s.name}: per callback`, `${s.name}: per 1M`]),
  ];
  const rows: string[][] = [];
  for (const service of SERVICES) {
    const items = [
      ...new Set(
        report.scenarios.flatMap((s) => s.lines.filter((l) => l.service === service).map((l) => l.item)),
      ),
    ];
    if (items.length === 0) continue;
    for (const item of items) {
      rows.push([
        service,
        item,
        ...report.scenarios.flatMap((s) => {
          const line = s.lines.find((l) => l.service === service && l.item === item);
          return line === undefined ? ['—', '—'] : [quantity(line.quantity, line.unit), usd(line.usd)];
        }),
      ]);
    }
    rows.push([
      `**${service}**`,
      '',
      ...report.scenarios.flatMap((s) => ['', `**${usd(s.byService[service])}**`]),
    ]);
  }
  rows.push([
    '**total**',
    '',
    ...report.scenarios.flatMap((s) => ['', `**${usd(s.perMillionCallbacksUsd)}**`]),
  ]);

  const target = report.scenarios.find((s) => s.name === report.target.scenario);
  const verdict =
    target === undefined
      ? ''
      : `Target: at most ${usd(report.target.usdPerMillionCallbacks)} per million callbacks (${target.name}): ` +
        (report.target.met
          ? `met, ${usd(target.perMillionCallbacksUsd)}.`
          : `**NO, missed**: ${usd(target.perMillionCallbacksUsd)}, ${usd(target.perMillionCallbacksUsd - report.target.usdPerMillionCallbacks)} over.`);
  const writes = report.scenarios
    .map(
      (s) =>
        `${s.name}: ${Object.entries(s.writeUnitsPerCallback)
          .map(([table, units]) => `${table} ${Number(units.toFixed(3))}`)
          .join(', ')} (${Number(
          Object.values(s.writeUnitsPerCallback)
            .reduce((a, b) => a + b, 0)
            .toFixed(3),
        )} in all)`,
    )
    .join('\n  ');
  const idle = table(
    ['service', 'item', 'per month', 'cost'],
    report.idleMonth.map((l) => [l.service, l.item, quantity(l.quantity, l.unit), usd(l.usd)]),
    2,
  );
  const p = report.polling;
  const polls = table(
    ['service', 'item', `idle long poll (${p.waitSeconds} s)`, 'cost', 'poll answered at once', 'cost'],
    [...new Set([...p.idleLongPoll, ...p.shortPoll].map((l) => `${l.service}\t${l.item}`))].map((key) => {
      const [service = '', item = ''] = key.split('\t');
      const cells = (lines: readonly CostLine[]) => {
        const found = lines.find((l) => l.service === service && l.item === item);
        return found === undefined ? ['—', '—'] : [quantity(found.quantity, found.unit), usd6(found.usd)];
      };
      return [service, item, ...cells(p.idleLongPoll), ...cells(p.shortPoll)];
    }),
    2,
  );
  const a = report.assumptions;
  const c = report.connection;
  const stepNames: Record<string, string> = {
    connectInfo: 'GET /v1/connect-info',
    connect: '$connect',
    firstPing: 'first ping',
    ping: 'ping',
    disconnect: '$disconnect',
  };
  const minutes = c.month.find((l) => l.unit === 'minutes');
  const storage = c.month.filter((l) => l.unit === 'GB-month');
  const connectionTable = table(
    ['step', 'what it does', 'a month', 'once', 'a month'],
    [
      ...(minutes === undefined
        ? []
        : [
            [
              'connection minutes',
              'one connection open all month',
              quantity(minutes.quantity, 'minutes'),
              '',
              usd6(minutes.usd),
            ],
          ]),
      ...c.steps.map((step) => [
        stepNames[step.step] ?? step.step,
        step.description,
        quantity(step.perMonth, 'times'),
        usd6(step.onceUsd),
        usd6(step.monthUsd),
      ]),
      [
        'storage',
        "the connection's items, with point-in-time recovery",
        '',
        '',
        usd6(storage.reduce((t, l) => t + l.usd, 0)),
      ],
      ['**in all**', '', '', '', `**${usd6(c.monthUsd)}**`],
    ],
    2,
  );
  const stepDetail = table(
    ['step', 'service', 'item', 'once', 'cost'],
    c.steps.flatMap((step) =>
      step.once.map((l) => [
        stepNames[step.step] ?? step.step,
        l.service,
        l.item,
        quantity(l.quantity, l.unit),
        usd6(l.usd),
      ]),
    ),
    3,
  );
  const pushed = report.scenarios.filter((s) => s.pushBytes !== undefined);
  const connectionText = [
    `Keeping one agent connected (a connection subscription's), per connection a month: ${usd(c.monthUsd)} ` +
      `(${SERVICES.filter((service) => c.byService[service] > 0)
        .map((service) => `${service} ${usd(c.byService[service])}`)
        .join(', ')}): ` +
      `${quantity(c.minutesPerMonth, 'connection minutes')}, ${quantity(c.pingsPerMonth, 'pings')} (one every ${Math.round((c.minutesPerMonth * 60) / c.pingsPerMonth)} s), ` +
      `${quantity(c.connectionsPerMonth, 'connections')} (API Gateway closes each after ${Math.round((c.minutesPerMonth * 60) / c.connectionsPerMonth / 3600)} hours).`,
    '',
    connectionTable,
    '',
    stepDetail,
    '',
    ...(pushed.length === 0
      ? []
      : [
          `A pushed delivery's answer is read ${report.answerReads.reads} times (the agent answering within ${a.agentAnswerMs} ms; reads after pauses of ANSWER_POLL_MS): ` +
            `the dispatcher waits ${report.answerReads.ms} ms from the frame to the read that sees it, billed as it waits for a callback.`,
          '',
        ]),
  ];
  const egressMonth = report.idleMonth.filter((l) => l.service === 'VPC');
  const egress = report.staticEgress
    ? [
        `Fixed egress addresses: ${usd(egressMonth.reduce((total, l) => total + l.usd, 0))} a month for the NAT gateways and their Elastic IPs (in the monthly table), ` +
          `and per million callbacks what the NAT gateways process (VPC above). ` +
          `A callback's HTTP request and response, measured: ${[...new Set(report.scenarios.filter((s) => s.pushBytes === undefined).map((s) => `${Math.round(s.callbackBytes.request)} + ${Math.round(s.callbackBytes.response)} bytes`))].join(' or ')}; ` +
          `its TLS and TCP/IP, assumed: ${a.callbackOverheadBytes} bytes.` +
          pushed
            .map(
              (s) =>
                ` ${s.name}: a PostToConnection's request, as the SDK builds it, ${Math.round(s.pushBytes?.request ?? 0)} bytes (its frame ${Math.round(s.pushBytes?.frame ?? 0)}); ` +
                `the session token and API Gateway's answer, assumed: ${a.postOverheadBytes} bytes.`,
            )
            .join(''),
        `Data transfer out to the receivers, billed with or without fixed addresses and in neither figure: ${report.scenarios.map((s) => `${s.name} ${usd(s.dataTransferOutUsdPerMillion)}`).join(', ')} per million callbacks.`,
        '',
      ]
    : [];
  return [
    `Cost per million callbacks, us-east-1 on-demand prices (functions/aws-prices.ts); index projections from the ${report.projections === 'template' ? 'synthesized template' : "tables' definitions (functions/adapters/aws/tables.ts)"}${report.staticEgress ? '; with fixed egress addresses (-c staticEgress=true)' : ''}.`,
    ...report.scenarios.map(
      (s) => `- ${s.name}: one subscription, 1 KB events, ${s.description}, first try succeeds`,
    ),
    '',
    table(header, rows, 2),
    '',
    verdict,
    '',
    ...egress,
    `DynamoDB write units per callback:\n  ${writes}`,
    '',
    `Each month, apart from the callbacks (not in the figures above): ${usd(report.idleMonthUsd)}`,
    '',
    idle,
    '',
    `Polling, per partner: an idle long poll of ${p.waitSeconds} s costs ${usd6(p.idleLongPollUsd)}, a poll answered at once ${usd6(p.shortPollUsd)}. ` +
      `A month of long polling back to back with nothing to wait for: ${usd(p.longPollingMonthUsd)}; of polling once a second instead: ${usd(p.pollingEverySecondMonthUsd)}.`,
    '',
    polls,
    '',
    ...connectionText,
    `Assumed: an AWS request waited for takes ${a.awsRequestMs} ms, a callback ${a.callbackMs} ms, an agent's answer ${a.agentAnswerMs} ms, each invocation ${a.invocationOverheadMs} ms of its own; ` +
      `${a.streamShards} stream shard; free tiers left out.`,
    '',
  ].join('\n');
}

export function toJson(report: CostReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}
