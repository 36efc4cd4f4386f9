/** How the `dispatcher` command prints: tables aligned by their widest cell, ages, progress bars. */
import { describe, expect, it } from 'vitest';
import { age, bar, table } from '../../bin/cli/output.ts';

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
});
