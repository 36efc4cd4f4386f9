/** The push path's timing maths (lib/constructs/timings.ts), against the limits they must keep. */
import { describe, expect, it } from 'vitest';
import { SQS, SQS_EVENT_SOURCE } from '../../functions/aws-quotas.ts';
import { DELIVERY_TIMEOUT_MS } from '../../functions/config.ts';
import {
  DISPATCHER_TIMEOUT_MARGIN_SECONDS,
  dispatcherTimeoutSeconds,
  FANOUT_TIMEOUT_SECONDS,
  isEventSourceConcurrency,
  VISIBILITY_TIMEOUT_FACTOR,
  visibilityTimeoutSeconds,
} from '../../lib/constructs/timings.ts';

describe('dispatcherTimeoutSeconds', () => {
  it('outlasts a callback that takes its whole timeout, with the margin on top', () => {
    expect(dispatcherTimeoutSeconds(10_000)).toBe(10 + DISPATCHER_TIMEOUT_MARGIN_SECONDS);
    expect(dispatcherTimeoutSeconds(1_500)).toBe(2 + DISPATCHER_TIMEOUT_MARGIN_SECONDS);
    for (const ms of [DELIVERY_TIMEOUT_MS.min, 2_345, DELIVERY_TIMEOUT_MS.max]) {
      expect(dispatcherTimeoutSeconds(ms) * 1000).toBeGreaterThanOrEqual(
        ms + DISPATCHER_TIMEOUT_MARGIN_SECONDS * 1000,
      );
    }
  });

  it('stays within Lambda’s 15 minutes and SQS’s longest visibility for every delivery timeout allowed', () => {
    const longest = dispatcherTimeoutSeconds(DELIVERY_TIMEOUT_MS.max);
    expect(longest).toBeLessThanOrEqual(900);
    expect(visibilityTimeoutSeconds(longest)).toBeLessThanOrEqual(SQS.maxVisibilityTimeoutSeconds);
  });
});

describe('visibilityTimeoutSeconds', () => {
  it('is six function timeouts, as AWS advises for a queue a function consumes', () => {
    expect(VISIBILITY_TIMEOUT_FACTOR).toBe(6);
    expect(visibilityTimeoutSeconds(FANOUT_TIMEOUT_SECONDS)).toBe(180);
  });

  it('refuses a function timeout whose visibility SQS cannot hold', () => {
    expect(() => visibilityTimeoutSeconds(SQS.maxVisibilityTimeoutSeconds)).toThrow(RangeError);
  });
});

describe('isEventSourceConcurrency', () => {
  it('takes the whole numbers an SQS event source’s MaximumConcurrency takes', () => {
    expect(isEventSourceConcurrency(SQS_EVENT_SOURCE.minMaximumConcurrency)).toBe(true);
    expect(isEventSourceConcurrency(SQS_EVENT_SOURCE.maxMaximumConcurrency)).toBe(true);
    for (const value of [1, 1001, 2.5, Number.NaN]) expect(isEventSourceConcurrency(value)).toBe(false);
  });
});
