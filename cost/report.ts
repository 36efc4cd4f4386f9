/** What `npm run cost` prints: a table per AWS service for every scenario, or the same as JSON. */
import type { CostLine, PollingCost, ScenarioCost } from './model.ts';
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
  const egressMonth = report.idleMonth.filter((l) => l.service === 'VPC');
  const egress = report.staticEgress
    ? [
        `Fixed egress addresses: ${usd(egressMonth.reduce((total, l) => total + l.usd, 0))} a month for the NAT gateways and their Elastic IPs (in the monthly table), ` +
          `and per million callbacks what the NAT gateways process (VPC above). ` +
          `A callback's HTTP request and response, measured: ${[...new Set(report.scenarios.map((s) => `${Math.round(s.callbackBytes.request)} + ${Math.round(s.callbackBytes.response)} bytes`))].join(' or ')}; ` +
          `its TLS and TCP/IP, assumed: ${a.callbackOverheadBytes} bytes.`,
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
    `Assumed: an AWS request waited for takes ${a.awsRequestMs} ms, a callback ${a.callbackMs} ms, each invocation ${a.invocationOverheadMs} ms of its own; ` +
      `${a.streamShards} stream shard; free tiers left out.`,
    '',
  ].join('\n');
}

export function toJson(report: CostReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}
