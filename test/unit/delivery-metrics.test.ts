/** The dispatcher's outcomes as CloudWatch metrics: the mapping, and the EMF Powertools writes from it. */
import { Metrics } from '@aws-lambda-powertools/metrics';
import type { SQSRecord } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { DELIVERY_METRICS, deliveryMetrics } from '../../functions/adapters/delivery-metrics.ts';
import type { DeliverOutcome } from '../../functions/core/delivery.ts';
import { newId } from '../../functions/core/ids.ts';
import type { DeliveryMessage } from '../../functions/core/model.ts';

const CREATED = Date.parse('2026-12-01T10:00:00.000Z');
const eventId = newId('evt', CREATED);

/** The message of a try, and the SQS record that carried it. */
function delivered(attempt: number): [SQSRecord, DeliveryMessage] {
  const message: DeliveryMessage = {
    deliveryId: `${newId('dlv')}ABCDEF`,
    eventId,
    subscriptionId: newId('sub'),
    partnerId: newId('ptr'),
    attempt,
    step: attempt - 1,
  };
  return [{ body: JSON.stringify(message) } as SQSRecord, message];
}

function recorded(outcome: DeliverOutcome, attempt = 1): [string, string, number][] {
  const added: [string, string, number][] = [];
  const [record, message] = delivered(attempt);
  deliveryMetrics({ addMetric: (name, unit, value) => added.push([name, unit, value]) }, () => CREATED + 250)(
    record,
    outcome,
    message,
  );
  return added;
}

describe('deliveryMetrics', () => {
  it('counts a success, and times a first try’s from the event’s creation', () => {
    expect(recorded({ kind: 'done', reason: 'succeeded' })).toEqual([
      [DELIVERY_METRICS.succeeded, 'Count', 1],
      [DELIVERY_METRICS.latency, 'Milliseconds', 250],
    ]);
    // A later try's success waited for its schedule: not publish → callback latency.
    expect(recorded({ kind: 'done', reason: 'succeeded' }, 3)).toEqual([
      [DELIVERY_METRICS.succeeded, 'Count', 1],
    ]);
  });

  it('counts a failed try, a dead letter and a delivery not sent', () => {
    expect(recorded({ kind: 'retry', delaySeconds: 5 })).toEqual([[DELIVERY_METRICS.failed, 'Count', 1]]);
    expect(recorded({ kind: 'dead' })).toEqual([[DELIVERY_METRICS.dead, 'Count', 1]]);
    for (const reason of ['disabled', 'gone', 'endpoint-gone'] as const) {
      expect(recorded({ kind: 'done', reason })).toEqual([[DELIVERY_METRICS.skipped, 'Count', 1]]);
    }
  });

  it('counts nothing for a stale copy, a success already recorded, or a move to the slow lane', () => {
    expect(recorded({ kind: 'done', reason: 'stale' })).toEqual([]);
    expect(recorded({ kind: 'done', reason: 'already-succeeded' })).toEqual([]);
    expect(recorded({ kind: 'moved' })).toEqual([]);
  });

  it('gives Powertools Metrics what it writes as one EMF document per invocation', () => {
    const metrics = new Metrics({ namespace: 'WebhookDispatcher-test-Service', serviceName: 'dispatcher' });
    const observe = deliveryMetrics(metrics, () => CREATED + 40);
    const [record, message] = delivered(1);
    observe(record, { kind: 'done', reason: 'succeeded' }, message);
    observe(record, { kind: 'done', reason: 'succeeded' }, message);
    observe(record, { kind: 'retry', delaySeconds: 5 }, message);

    const emf = metrics.serializeMetrics();

    const [directive] = emf._aws.CloudWatchMetrics;
    expect(directive?.Namespace).toBe('WebhookDispatcher-test-Service');
    expect(directive?.Dimensions).toEqual([['service']]);
    expect(directive?.Metrics).toEqual(
      expect.arrayContaining([
        { Name: DELIVERY_METRICS.succeeded, Unit: 'Count' },
        { Name: DELIVERY_METRICS.failed, Unit: 'Count' },
        { Name: DELIVERY_METRICS.latency, Unit: 'Milliseconds' },
      ]),
    );
    expect(emf).toMatchObject({
      service: 'dispatcher',
      [DELIVERY_METRICS.succeeded]: [1, 1],
      [DELIVERY_METRICS.latency]: [40, 40],
    });
  });
});
