/**
 * The callback retry schedule. Entry k (0-based) is the wait in seconds before attempt k + 1,
 * counted from the previous try, so the schedule's length is the number of attempts. The
 * dispatcher queues each try as a message of its own, after its wait (see DeliveryQueue).
 */

/** The longest single wait: 12 hours. */
export const MAX_RETRY_DELAY_SECONDS = 43_200;

/**
 * The share of a wait that jitter may take off: each wait is drawn between 80% and 100% of
 * its schedule value, so deliveries that failed together spread out, and the schedule stays
 * a promise a receiver can plan an outage around.
 */
export const RETRY_JITTER = 0.2;

/**
 * 0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, 10 h: nine tries over 30 to 37.6 hours (each
 * wait at least 80% of its value), so a receiver that is down for a day loses nothing.
 */
export const DEFAULT_RETRY_SCHEDULE: readonly number[] = [0, 5, 300, 1800, 7200, 18000, 36000, 36000, 36000];

/**
 * Parses a schedule such as `0, 5, 300`: comma-separated whole seconds, each at most 43200.
 * @throws Error naming the first bad entry, or saying the list is empty.
 */
export function parseRetrySchedule(text: string): number[] {
  if (text.trim() === '') throw new Error('retry schedule is empty: give at least one delay in seconds');
  const schedule = text.split(',').map((raw, index) => {
    const entry = raw.trim();
    if (!/^\d+$/.test(entry)) {
      throw new Error(
        `retry schedule entry ${index + 1} ("${entry}") is not a whole, non-negative number of seconds`,
      );
    }
    return Number(entry);
  });
  checkRetrySchedule(schedule);
  return schedule;
}

/** Tries at most. */
export const MAX_RETRY_ATTEMPTS = 1000;

/**
 * Checks a schedule, however it was given (text, CDK context, construct props): 1 to 1000
 * entries of whole seconds, each at most 43200, the first 0.
 * @throws Error naming the first bad entry.
 */
export function checkRetrySchedule(schedule: readonly number[]): void {
  if (schedule.length === 0 || schedule.length > MAX_RETRY_ATTEMPTS) {
    throw new Error(`retry schedule must have 1 to ${MAX_RETRY_ATTEMPTS} entries, not ${schedule.length}`);
  }
  schedule.forEach((seconds, index) => {
    if (!Number.isInteger(seconds) || seconds < 0) {
      throw new Error(
        `retry schedule entry ${index + 1} (${seconds}) is not a whole, non-negative number of seconds`,
      );
    }
    if (seconds > MAX_RETRY_DELAY_SECONDS) {
      throw new Error(
        `retry schedule entry ${index + 1} (${seconds}) exceeds ${MAX_RETRY_DELAY_SECONDS} seconds (12 hours), ` +
          'the longest wait',
      );
    }
    // Fan-out queues a delivery at once: the first try has no wait to take from the schedule.
    if (index === 0 && seconds !== 0) {
      throw new Error(`retry schedule entry 1 (${seconds}) must be 0: the first try is made at once`);
    }
  });
}

/**
 * Seconds to wait after `attemptsMade` failed tries before the next one, with jitter (uniform
 * between 80% and 100% of the schedule's wait, see RETRY_JITTER) so deliveries that failed
 * together, in a receiver's outage, spread out instead of retrying in the same second; null
 * when the schedule has no tries left and the delivery goes to the dead-letter queue.
 * @param attemptsMade tries made so far, at least 1.
 * @param random a source in [0, 1), injectable for tests.
 */
export function retryDelaySeconds(
  schedule: readonly number[],
  attemptsMade: number,
  random: () => number = Math.random,
): number | null {
  if (!Number.isInteger(attemptsMade) || attemptsMade < 1) {
    throw new RangeError(`attemptsMade must be a whole number of at least 1, got ${attemptsMade}`);
  }
  const delay = schedule[attemptsMade];
  if (delay === undefined) return null;
  return Math.min(Math.round(delay * (1 - RETRY_JITTER + RETRY_JITTER * random())), MAX_RETRY_DELAY_SECONDS);
}

/**
 * The wait a receiver asked for with Retry-After, kept within the schedule's bounds: at least
 * a second, at most the schedule's longest wait, so a receiver can slow its retries down but
 * cannot park a delivery beyond what the schedule would.
 */
export function retryAfterDelaySeconds(schedule: readonly number[], retryAfterSeconds: number): number {
  const longest = Math.min(Math.max(1, ...schedule), MAX_RETRY_DELAY_SECONDS);
  return Math.min(Math.max(1, Math.ceil(retryAfterSeconds)), longest);
}
