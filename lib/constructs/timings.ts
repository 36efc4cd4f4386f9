/**
 * The timing maths of the push path, as pure functions: the stack (DeliveryPipeline) and the
 * capacity model (capacity/scenarios.ts) both take them from here, and test/unit/timings.test.ts
 * checks them against the limits they must keep.
 */
import { SQS, SQS_EVENT_SOURCE } from '../../functions/aws-quotas.ts';

/** AWS's advice for a queue a Lambda function consumes: at least six function timeouts. */
export const VISIBILITY_TIMEOUT_FACTOR = 6;

/** The fan-out function's timeout: a batch of ten events is a few DynamoDB and SQS requests. */
export const FANOUT_TIMEOUT_SECONDS = 30;

/** Room the dispatcher keeps beyond one callback's timeout: DNS, DynamoDB, queueing the next try. */
export const DISPATCHER_TIMEOUT_MARGIN_SECONDS = 20;

/**
 * The dispatcher function's timeout for callbacks of `deliveryTimeoutMs`: a batch's callbacks
 * run side by side, so the slowest bounds the invocation.
 */
export function dispatcherTimeoutSeconds(deliveryTimeoutMs: number): number {
  return Math.ceil(deliveryTimeoutMs / 1000) + DISPATCHER_TIMEOUT_MARGIN_SECONDS;
}

/**
 * The visibility timeout of a queue whose consumer times out after `functionTimeoutSeconds`.
 * @throws RangeError past SQS's longest visibility timeout.
 */
export function visibilityTimeoutSeconds(functionTimeoutSeconds: number): number {
  const seconds = functionTimeoutSeconds * VISIBILITY_TIMEOUT_FACTOR;
  if (seconds > SQS.maxVisibilityTimeoutSeconds) {
    throw new RangeError(
      `a function timeout of ${functionTimeoutSeconds} s needs a visibility timeout of ${seconds} s, past SQS's ${SQS.maxVisibilityTimeoutSeconds}`,
    );
  }
  return seconds;
}

/** Whether `value` is a MaximumConcurrency an SQS event source takes. */
export function isEventSourceConcurrency(value: number): boolean {
  return (
    Number.isInteger(value) &&
    value >= SQS_EVENT_SOURCE.minMaximumConcurrency &&
    value <= SQS_EVENT_SOURCE.maxMaximumConcurrency
  );
}
