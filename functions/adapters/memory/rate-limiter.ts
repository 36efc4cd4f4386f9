/**
 * Request counts in this process's memory: exact where one process serves the whole API, as
 * the local runtime does.
 */
import { windowOf } from '../../core/limits.ts';
import type { Allowance, AllowanceResult, RateLimiter } from '../../core/ports.ts';

export class InMemoryRateLimiter implements RateLimiter {
  /** Per key, the window being counted and its count; older windows are dropped on the way. */
  readonly #windows = new Map<string, { start: number; count: number }>();

  async take(key: string, allowance: Allowance, now: Date): Promise<AllowanceResult> {
    const { start, remainingMs } = windowOf(allowance, now);
    const current = this.#windows.get(key);
    const count = current?.start === start ? current.count : 0;
    if (count >= allowance.limit) return { allowed: false, retryAfterMs: remainingMs };
    if (current === undefined && this.#windows.size > 100_000) this.#forgetBefore(start);
    this.#windows.set(key, { start, count: count + 1 });
    return { allowed: true };
  }

  #forgetBefore(start: number): void {
    for (const [key, window] of this.#windows) if (window.start < start) this.#windows.delete(key);
  }
}
