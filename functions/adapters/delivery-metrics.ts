/**
 * What became of each delivery message, as metrics, by one set of rules for both runtimes: on
 * AWS as CloudWatch metrics (Powertools Metrics: embedded metric format in the function's log,
 * one line per invocation, no API call), which the dashboard graphs; locally as Prometheus
 * metrics (local/metrics.ts). Names and units are here once, for the dispatcher and the stack.
 */
import type { SQSRecord } from 'aws-lambda';
import type { DeliverOutcome } from '../core/delivery.ts';
import { idTime } from '../core/ids.ts';
import type { DeliveryMessage } from '../core/model.ts';

/** The dispatcher's metric names. */
export const DELIVERY_METRICS = {
  /** A callback answered 2xx. */
  succeeded: 'DeliverySucceeded',
  /** A try failed and the next one is queued after its wait. */
  failed: 'DeliveryFailed',
  /** A try failed and the schedule is used up: the delivery is in the dead-letter queue. */
  dead: 'DeliveryDead',
  /** Not sent: the subscription is disabled or deleted, the event or the delivery is gone, or a 410. */
  skipped: 'DeliverySkipped',
  /**
   * From the event's creation to a first try's 2xx: publish → callback, in milliseconds (not
   * for a try that waited for a connection).
   */
  latency: 'CallbackLatency',
} as const;

/** The part of Powertools' Metrics this needs. */
export interface MetricSink {
  addMetric(name: string, unit: 'Count' | 'Milliseconds', value: number): unknown;
}

/**
 * An outcome observer for createDispatcherHandler: one count per outcome that says something
 * about callbacks (a stale copy or a move to the slow lane says nothing), and the latency of
 * every first try that succeeded.
 */
export function deliveryMetrics(sink: MetricSink, now: () => number = Date.now) {
  return (_record: SQSRecord, outcome: DeliverOutcome, message: DeliveryMessage): void => {
    if (outcome.kind === 'retry') sink.addMetric(DELIVERY_METRICS.failed, 'Count', 1);
    else if (outcome.kind === 'dead') sink.addMetric(DELIVERY_METRICS.dead, 'Count', 1);
    else if (outcome.kind === 'done') {
      if (outcome.reason === 'succeeded') {
        sink.addMetric(DELIVERY_METRICS.succeeded, 'Count', 1);
        // A try that waited for a partner's connection says nothing of how fast callbacks go.
        if ((message.attempt ?? 1) === 1 && message.waiting !== true) {
          sink.addMetric(
            DELIVERY_METRICS.latency,
            'Milliseconds',
            Math.max(0, now() - idTime(message.eventId)),
          );
        }
      } else if (
        outcome.reason === 'disabled' ||
        outcome.reason === 'gone' ||
        outcome.reason === 'endpoint-gone'
      ) {
        sink.addMetric(DELIVERY_METRICS.skipped, 'Count', 1);
      }
    }
  };
}
