/**
 * Sweeper: run on a schedule, it moves the delivery tries that come due soon out of the due
 * store (waits longer than SQS can delay a message) into the delivery queues.
 */
import middy from '@middy/core';
import { type SweepDeps, type SweepOptions, sweepDueRetries } from '../core/due-retries.ts';

export function createSweeperHandler(deps: SweepDeps, options: SweepOptions) {
  return middy<unknown, { queued: number }>().handler(async () => ({
    queued: await sweepDueRetries(deps, options),
  }));
}

export type SweeperHandler = ReturnType<typeof createSweeperHandler>;
