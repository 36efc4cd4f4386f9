/** A sleep that another part of the process can cut short: pollers wait on it for new work. */
export class Wakeup {
  readonly #sleepers = new Set<() => void>();
  #signalled = false;

  /** Wakes every current sleeper, or else the next `sleep`. */
  wake(): void {
    if (this.#sleepers.size === 0) {
      this.#signalled = true;
      return;
    }
    for (const done of [...this.#sleepers]) done();
  }

  /** Resolves after `ms`, or as soon as `wake` is called (at once if it was called since the last sleep). */
  sleep(ms: number): Promise<void> {
    if (this.#signalled) {
      this.#signalled = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#sleepers.add(done);
    });
  }
}
