import { describe, expect, it } from 'vitest';
import {
  DEFAULT_RETRY_SCHEDULE,
  MAX_RETRY_DELAY_SECONDS,
  maxAttempts,
  parseRetrySchedule,
  retryDelaySeconds,
} from '../../functions/core/retry.ts';

describe('DEFAULT_RETRY_SCHEDULE', () => {
  it('is the documented schedule: an immediate try, then backoff up to ten hours', () => {
    expect(DEFAULT_RETRY_SCHEDULE).toEqual([0, 5, 300, 1800, 7200, 18000, 36000, 36000]);
  });

  it('keeps every wait within the SQS visibility timeout', () => {
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
      expect(parseRetrySchedule('43200')).toEqual([43200]);
    });

    it('round-trips the default schedule', () => {
      expect(parseRetrySchedule(DEFAULT_RETRY_SCHEDULE.join(','))).toEqual(DEFAULT_RETRY_SCHEDULE);
    });
  });

  describe('invalid input', () => {
    it.each(['', '   '])('rejects an empty list (%j)', (text) => {
      expect(() => parseRetrySchedule(text)).toThrow(/empty/);
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

    it('rejects an entry over 43200 and says it is the SQS limit', () => {
      expect(() => parseRetrySchedule('0,43201')).toThrow(/entry 2 \(43201\) exceeds 43200 seconds.*SQS/);
    });

    it('throws a plain Error', () => {
      expect(() => parseRetrySchedule('x')).toThrow(Error);
    });
  });
});

describe('maxAttempts', () => {
  it('is the length of the schedule', () => {
    expect(maxAttempts(DEFAULT_RETRY_SCHEDULE)).toBe(8);
    expect(maxAttempts([0])).toBe(1);
  });
});

describe('retryDelaySeconds', () => {
  const middle = () => 0.5;

  describe('schedule lookup', () => {
    it('waits the entry after the attempts made, with neutral jitter', () => {
      expect(retryDelaySeconds(DEFAULT_RETRY_SCHEDULE, 1, middle)).toBe(5);
      expect(retryDelaySeconds(DEFAULT_RETRY_SCHEDULE, 2, middle)).toBe(300);
      expect(retryDelaySeconds(DEFAULT_RETRY_SCHEDULE, 7, middle)).toBe(36000);
    });

    it('is null once every attempt has been made (dead letter)', () => {
      expect(retryDelaySeconds(DEFAULT_RETRY_SCHEDULE, 8, middle)).toBeNull();
      expect(retryDelaySeconds(DEFAULT_RETRY_SCHEDULE, 9, middle)).toBeNull();
      expect(retryDelaySeconds([0], 1, middle)).toBeNull();
    });

    it('rejects attemptsMade below 1 or fractional', () => {
      expect(() => retryDelaySeconds(DEFAULT_RETRY_SCHEDULE, 0)).toThrow(RangeError);
      expect(() => retryDelaySeconds(DEFAULT_RETRY_SCHEDULE, 1.5)).toThrow(RangeError);
    });
  });

  describe('jitter', () => {
    it('is at least 80 % of the entry when random() is 0', () => {
      expect(retryDelaySeconds([0, 300], 1, () => 0)).toBe(240);
      expect(retryDelaySeconds([0, 5], 1, () => 0)).toBe(4);
    });

    it('is just under 120 % of the entry when random() is 0.999', () => {
      expect(retryDelaySeconds([0, 300], 1, () => 0.999)).toBe(360);
      expect(retryDelaySeconds([0, 1800], 1, () => 0.999)).toBe(2159);
    });

    it('stays within ±20 % for any random value', () => {
      for (let i = 0; i < 1000; i++) {
        const delay = retryDelaySeconds([0, 7200], 1) ?? Number.NaN;
        expect(delay).toBeGreaterThanOrEqual(5760);
        expect(delay).toBeLessThanOrEqual(8640);
      }
    });

    it('keeps a zero wait at zero', () => {
      expect(retryDelaySeconds([0, 0], 1, () => 0.999)).toBe(0);
    });

    it('never exceeds 43200 seconds, even with jitter on the maximum entry', () => {
      expect(retryDelaySeconds([0, 43200], 1, () => 0.999)).toBe(43200);
      expect(retryDelaySeconds([0, 43200], 1, () => 0)).toBe(34560);
    });
  });
});
