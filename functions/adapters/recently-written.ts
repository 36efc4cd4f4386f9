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

interface Entry<V> {
  readonly key: string;
  /** Let go of once the entry is dropped, so that the queue holds only its key. */
  value: V | undefined;
  readonly weight: number;
  readonly at: number;
}

/**
 * Dropped entries the queue may hold before it is rebuilt without them, at the least; past
 * that, once they are half of it.
 */
const COMPACT_AFTER = 1024;

export class RecentlyWritten<V> {
  readonly #options: RecentlyWrittenOptions;
  /** The live entries: an entry of the queue is live while it is the one kept under its key. */
  readonly #entries = new Map<string, Entry<V>>();
  /**
   * Every entry kept, oldest first, from `#head` on: the next to go when the weight is over the
   * limit, or when its time is up. (Taking the oldest from the Map instead walks past every
   * entry deleted at its front, which once the store is full costs more than the write it
   * follows.) A forgotten entry stays until it reaches the front or the queue is rebuilt.
   */
  #order: Entry<V>[] = [];
  #head = 0;
  #weight = 0;

  constructor(options: RecentlyWrittenOptions) {
    this.#options = options;
  }

  /** Keeps `value` under `key` (one heavier than the whole limit is not kept). */
  keep(key: string, value: V, weight = 1): void {
    const { limit, forMs, clock } = this.#options;
    this.forget(key);
    if (weight > limit) return;
    const now = clock.now().getTime();
    const entry: Entry<V> = { key, value: deepFrozen(value), weight, at: now };
    this.#entries.set(key, entry);
    this.#order.push(entry);
    this.#weight += weight;
    // The oldest go while over the limit, and those past their time (nothing answers for them).
    while (this.#head < this.#order.length) {
      const oldest = this.#order[this.#head] as Entry<V>;
      const live = this.#entries.get(oldest.key) === oldest;
      if (live && this.#weight <= limit && now - oldest.at <= forMs) break;
      this.#head += 1;
      if (live) this.#drop(oldest);
    }
    this.#compact();
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
    this.#drop(entry);
    this.#compact();
  }

  clear(): void {
    this.#entries.clear();
    this.#order = [];
    this.#head = 0;
    this.#weight = 0;
  }

  /** How many entries the queue holds, forgotten ones included (for the tests of its bound). */
  get queued(): number {
    return this.#order.length - this.#head;
  }

  #drop(entry: Entry<V>): void {
    this.#entries.delete(entry.key);
    entry.value = undefined;
    this.#weight -= entry.weight;
  }

  /** Rebuilds the queue with its live entries alone once the dropped ones are half of it. */
  #compact(): void {
    const dropped = this.#order.length - this.#entries.size;
    if (dropped < COMPACT_AFTER || dropped * 2 < this.#order.length) return;
    this.#order = this.#order.filter((entry) => this.#entries.get(entry.key) === entry);
    this.#head = 0;
  }
}
