/** How the `dispatcher` command prints: aligned tables for people, JSON for scripts, progress. */

export interface Output {
  out(text: string): void;
  err(text: string): void;
  /** Whether stdout is a terminal: progress is then a bar redrawn in place. */
  readonly tty: boolean;
}

export const processOutput: Output = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
  tty: process.stdout.isTTY === true,
};

/**
 * Text from the deployment made safe for a terminal: control characters (escape sequences,
 * line breaks, bells) that a receiver's answer or an agent's nack could carry are shown as
 * `\uFFFD`, so they can neither restyle the terminal nor fake a line.
 */
export function printable(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point.
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, '\uFFFD');
}

/** Rows under their headings, each column as wide as its widest cell, every cell printable. */
export function table(headings: readonly string[], cells: readonly (readonly string[])[]): string {
  const rows = cells.map((row) => row.map(printable));
  const widths = headings.map((heading, i) =>
    Math.max(heading.length, ...rows.map((row) => (row[i] ?? '').length)),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headings), ...rows.map(line)].join('\n');
}

/** A duration in seconds, as a person reads it: `42s`, `5m`, `3h`, `2d`. */
export function age(seconds: number | null): string {
  if (seconds === null) return '-';
  if (seconds < 60) return `${Math.floor(seconds)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86_400)}d`;
}

/** `[########------------] 40/100`: a bar of `width` cells. */
export function bar(done: number, total: number | null, width = 30): string {
  if (total === null || total === 0) return `${done} moved`;
  const filled = Math.min(width, Math.round((done / total) * width));
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${total}`;
}
