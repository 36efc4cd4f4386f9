/** How the `dispatcher` command prints: tables aligned by their widest cell, ages, progress bars. */
import { describe, expect, it } from 'vitest';
import { age, bar, printable, table } from '../../bin/cli/output.ts';

describe('the command’s output', () => {
  it('aligns each column on its widest cell and leaves no trailing spaces', () => {
    expect(
      table(
        ['QUEUE', 'VISIBLE', 'REDRIVES TO'],
        [
          ['delivery', '0', ''],
          ['delivery-dlq', '12', 'delivery'],
        ],
      ),
    ).toBe(
      ['QUEUE         VISIBLE  REDRIVES TO', 'delivery      0', 'delivery-dlq  12       delivery'].join('\n'),
    );
  });

  it('says an age in its largest whole unit', () => {
    expect([null, 0, 59, 60, 3599, 3600, 86_399, 86_400, 200_000].map(age)).toEqual([
      '-',
      '0s',
      '59s',
      '1m',
      '59m',
      '1h',
      '23h',
      '1d',
      '2d',
    ]);
  });

  it('fills a bar in proportion, never past its width, and counts when the total is unknown', () => {
    expect(bar(0, 4, 8)).toBe('[--------] 0/4');
    expect(bar(2, 4, 8)).toBe('[####----] 2/4');
    expect(bar(5, 4, 8)).toBe('[########] 5/4');
    expect(bar(7, null)).toBe('7 moved');
  });

  it('shows the control characters a receiver or an agent could send, never sends them to the terminal', () => {
    const hostile = 'HTTP 500: \u001b[31mRED\u001b]0;pwned\u0007\nline2\u009b';
    expect(printable(hostile)).toBe('HTTP 500: \uFFFD[31mRED\uFFFD]0;pwned\uFFFD\uFFFDline2\uFFFD');
    const lines = table(['REASON'], [[hostile]]).split('\n');
    expect(lines).toHaveLength(2);
    for (const line of lines) expect(printable(line)).toBe(line);
  });
});
