/**
 * What a store wrote last, kept in memory for the reads that follow soon after (fan-out and
 * the first try read an event, and the try its delivery, within moments of their writes).
 * At most `limit` by weight, the oldest going first, and each for `forMs` of the clock after
 * it was kept; frozen, since every reader gets the same object. The store forgets what it
 * changes; it may keep only what nothing else writes.
 */
import type { Clock } from '../core/ports.ts';
import { deepFrozen } from './deep-frozen.ts';

export interface RecentlyWrittenOptions {
  /** The most kept at once, as a sum of weights. */
  limit: number;
  /** How long after it was kept a value is answered from memory. */
  forMs: number;
  clock: Clock;
}

export class RecentlyWritten<V> {
  readonly #options: RecentlyWrittenOptions;
  readonly #entries = new Map<string, { value: V; weight: number; at: number }>();
  #weight = 0;

  constructor(options: RecentlyWrittenOptions) {
    this.#options = options;
  }

  /** Keeps `value` under `key` (one heavier than the whole limit is not kept). */
  keep(key: string, value: V, weight = 1): void {
    const { limit, clock } = this.#options;
    this.forget(key);
    if (weight > limit) return;
    this.#entries.set(key, { value: deepFrozen(value), weight, at: clock.now().getTime() });
    this.#weight += weight;
    for (const [oldest, entry] of this.#entries) {
      if (this.#weight <= limit) break;
      this.#entries.delete(oldest);
      this.#weight -= entry.weight;
    }
  }

  /** The value kept under `key`, unless it was kept longer ago than `forMs`. */
  get(key: string): V | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (this.#options.clock.now().getTime() - entry.at <= this.#options.forMs) return entry.value;
    this.forget(key);
    return undefined;
  }

  forget(key: string): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    this.#entries.delete(key);
    this.#weight -= entry.weight;
  }

  clear(): void {
    this.#entries.clear();
    this.#weight = 0;
  }
}
