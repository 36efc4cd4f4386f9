import { describe, expect, it } from 'vitest';
import {
  checkRetrySchedule,
  DEFAULT_RETRY_SCHEDULE,
  MAX_RETRY_DELAY_SECONDS,
  parseRetrySchedule,
  retryAfterDelaySeconds,
  retryDelaySeconds,
} from '../../functions/core/retry.ts';

describe('DEFAULT_RETRY_SCHEDULE', () => {
  it('is the documented schedule: an immediate try, then backoff up to ten hours', () => {
    expect(DEFAULT_RETRY_SCHEDULE).toEqual([0, 5, 300, 1800, 7200, 18000, 36000, 36000, 36000]);
  });

  it('keeps every wait within the longest allowed', () => {
    expect(Math.max(...DEFAULT_RETRY_SCHEDULE)).toBeLessThanOrEqual(MAX_RETRY_DELAY_SECONDS);
  });
});

describe('parseRetrySchedule', () => {
  describe('valid input', () => {
    it('parses comma-separated seconds', () => {
      expect(parseRetrySchedule('0,5,300')).toEqual([0, 5, 300]);
    });

    it('tolerates whitespace around entries', () => {
      expect(parseRetrySchedule(' 0 , 5,\t300 \n')).toEqual([0, 5, 300]);
    });

    it('accepts a single entry and the 43200 s maximum', () => {
      expect(parseRetrySchedule('0')).toEqual([0]);
      expect(parseRetrySchedule('0,43200')).toEqual([0, 43200]);
    });

    it('round-trips the default schedule', () => {
      expect(parseRetrySchedule(DEFAULT_RETRY_SCHEDULE.join(','))).toEqual(DEFAULT_RETRY_SCHEDULE);
    });
  });

  describe('invalid input', () => {
    it.each(['', '   '])('rejects an empty list (%j)', (text) => {
      expect(() => parseRetrySchedule(text)).toThrow(/empty/);
    });

    it('rejects a first entry other than 0: the first try is made at once', () => {
      expect(() => parseRetrySchedule('60,300')).toThrow(/entry 1 \(60\) must be 0/);
    });

    it.each([
      ['0,-5', /entry 2 \("-5"\)/],
      ['0,5s', /entry 2 \("5s"\)/],
      ['1.5', /entry 1 \("1.5"\)/],
      ['0,,5', /entry 2 \(""\)/],
      ['0,5,', /entry 3 \(""\)/],
      ['abc', /entry 1 \("abc"\)/],
    ])('names the bad entry in %j', (text, message) => {
      expect(() => parseRetrySchedule(text)).toThrow(message);
    });

    it('rejects an entry over 43200 and says it is the longest wait', () => {
      expect(() => parseRetrySchedule('0,43201')).toThrow(
        /entry 2 \(43201\) exceeds 43200 seconds.*longest wait/,
      );
    });

    it('throws a plain Error', () => {
      expect(() => parseRetrySchedule('x')).toThrow(Error);
    });
  });
});

describe('checkRetrySchedule', () => {
  it('holds a schedule given as numbers to the same rules as parsed text', () => {
    expect(() => checkRetrySchedule([0, 5, 300])).not.toThrow();
    expect(() => checkRetrySchedule([])).toThrow(/1 to 1000 entries/);
    expect(() => checkRetrySchedule(Array(1001).fill(0))).toThrow(/1 to 1000 entries/);
    expect(() => checkRetrySchedule([60, 300])).toThrow(/entry 1 \(60\) must be 0/);
    expect(() => checkRetrySchedule([0, 1.5])).toThrow(/entry 2 \(1.5\)/);
    expect(() => checkRetrySchedule([0, 43_201])).toThrow(/entry 2 \(43201\) exceeds/);
  });
});

describe('retryDelaySeconds', () => {
  const top = () => 1;

  describe('schedule lookup', () => {
    it('waits at most the entry after the attempts made', () => {
      expect(retryDelaySeconds(DEFAULT_RETRY_SCHEDULE, 1, top)).toBe(5);
      expect(retryDelaySeconds(DEFAULT_RETRY_SCHEDULE, 2, top)).toBe(300);
      expect(retryDelaySeconds(DEFAULT_RETRY_SCHEDULE, 7, top)).toBe(36000);
    });

    it('is null once every attempt has been made (dead letter)', () => {
      expect(retryDelaySeconds(DEFAULT_RETRY_SCHEDULE, 8, top)).toBe(36000);
      expect(retryDelaySeconds(DEFAULT_RETRY_SCHEDULE, 9, top)).toBeNull();
      expect(retryDelaySeconds(DEFAULT_RETRY_SCHEDULE, 10, top)).toBeNull();
      expect(retryDelaySeconds([0], 1, top)).toBeNull();
    });

    it('rejects attemptsMade below 1 or fractional', () => {
      expect(() => retryDelaySeconds(DEFAULT_RETRY_SCHEDULE, 0)).toThrow(RangeError);
      expect(() => retryDelaySeconds(DEFAULT_RETRY_SCHEDULE, 1.5)).toThrow(RangeError);
    });
  });

  describe('jitter', () => {
    it('is 80% of the entry when random() is 0, 90% at 0.5, and the whole entry at 1', () => {
      expect(retryDelaySeconds([0, 300], 1, () => 0)).toBe(240);
      expect(retryDelaySeconds([0, 300], 1, () => 0.5)).toBe(270);
      expect(retryDelaySeconds([0, 300], 1, top)).toBe(300);
    });

    it('spreads over the whole range from 80% of the entry to the entry, never below', () => {
      const delays = Array.from({ length: 2000 }, () => retryDelaySeconds([0, 7200], 1) ?? Number.NaN);
      expect(Math.min(...delays)).toBeGreaterThanOrEqual(5760);
      expect(Math.max(...delays)).toBeLessThanOrEqual(7200);
      // Uniform: each quarter of the range gets a fair share (a bound no fair draw misses).
      for (let q = 0; q < 4; q++) {
        const share =
          delays.filter((d) => d >= 5760 + q * 360 && d < 5760 + (q + 1) * 360).length / delays.length;
        expect(share).toBeGreaterThan(0.15);
      }
    });

    it('keeps a zero wait at zero', () => {
      expect(retryDelaySeconds([0, 0], 1, top)).toBe(0);
    });

    it('never exceeds 43200 seconds', () => {
      expect(retryDelaySeconds([0, 43200], 1, () => 0.9999)).toBe(43199);
      expect(retryDelaySeconds([0, 43200], 1, top)).toBe(43200);
    });
  });
});

describe('retryAfterDelaySeconds', () => {
  it('honours the wait a receiver asked for within the schedule', () => {
    expect(retryAfterDelaySeconds(DEFAULT_RETRY_SCHEDULE, 120)).toBe(120);
  });

  it('never waits longer than the schedule’s longest wait', () => {
    expect(retryAfterDelaySeconds(DEFAULT_RETRY_SCHEDULE, 86_400)).toBe(36_000);
    expect(retryAfterDelaySeconds([0, 5, 60], 3600)).toBe(60);
  });

  it('waits at least a second, rounding a fraction up', () => {
    expect(retryAfterDelaySeconds(DEFAULT_RETRY_SCHEDULE, 0)).toBe(1);
    expect(retryAfterDelaySeconds(DEFAULT_RETRY_SCHEDULE, 2.2)).toBe(3);
  });
});
