/** What ops read of CloudWatch, against a mocked CloudWatch (aws-sdk-client-mock). */
import 'aws-sdk-client-mock-vitest/extend';
import { CloudWatchClient, GetMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { CloudWatchDeliveryRates, CloudWatchQueueAges } from '../../functions/adapters/aws/cloudwatch.ts';
import { DELIVERY_METRICS } from '../../functions/adapters/delivery-metrics.ts';

const cloudWatch = mockClient(CloudWatchClient);
const client = () => new CloudWatchClient({ region: 'eu-west-1' });
const NOW = new Date('2026-12-03T10:07:30.000Z');
const clock = { now: () => NOW };
const at = (iso: string) => new Date(iso);

afterEach(() => {
  cloudWatch.reset();
});

describe('CloudWatchQueueAges', () => {
  it('reads every queue’s ApproximateAgeOfOldestMessage in one request, and takes each one’s newest minute', async () => {
    cloudWatch.on(GetMetricDataCommand).resolves({
      MetricDataResults: [
        {
          Id: 'q0',
          Timestamps: [at('2026-12-03T10:05:00Z'), at('2026-12-03T10:04:00Z')],
          Values: [420, 360],
        },
        // No data point: SQS publishes nothing for a queue idle for hours.
        { Id: 'q1', Timestamps: [], Values: [] },
      ],
    });

    const ages = await new CloudWatchQueueAges(client(), { clock }).oldestAgeSeconds([
      'Stack-delivery-dlq',
      'Stack-fanout',
    ]);

    expect(ages).toEqual(new Map([['Stack-delivery-dlq', 420]]));
    expect(cloudWatch).toHaveReceivedCommandTimes(GetMetricDataCommand, 1);
    expect(cloudWatch).toHaveReceivedCommandWith(GetMetricDataCommand, {
      StartTime: new Date(NOW.getTime() - 10 * 60_000),
      EndTime: NOW,
      MetricDataQueries: [
        {
          Id: 'q0',
          MetricStat: {
            Metric: {
              Namespace: 'AWS/SQS',
              MetricName: 'ApproximateAgeOfOldestMessage',
              Dimensions: [{ Name: 'QueueName', Value: 'Stack-delivery-dlq' }],
            },
            Period: 60,
            Stat: 'Maximum',
          },
          ReturnData: true,
        },
        expect.objectContaining({ Id: 'q1' }),
      ],
    });
  });

  it('follows the pages of a long answer', async () => {
    cloudWatch
      .on(GetMetricDataCommand)
      .resolvesOnce({
        MetricDataResults: [{ Id: 'q0', Timestamps: [at('2026-12-03T10:01:00Z')], Values: [60] }],
        NextToken: 'more',
      })
      .resolves({
        MetricDataResults: [{ Id: 'q0', Timestamps: [at('2026-12-03T10:06:00Z')], Values: [90] }],
      });

    const ages = await new CloudWatchQueueAges(client(), { clock }).oldestAgeSeconds(['q']);

    expect(ages.get('q')).toBe(90);
    expect(cloudWatch).toHaveReceivedNthCommandWith(GetMetricDataCommand, 2, { NextToken: 'more' });
  });

  it('asks nothing for no queues', async () => {
    expect(await new CloudWatchQueueAges(client(), { clock }).oldestAgeSeconds([])).toEqual(new Map());
    expect(cloudWatch).not.toHaveReceivedCommand(GetMetricDataCommand);
  });
});

describe('CloudWatchDeliveryRates', () => {
  it('gives every minute of the window, the current one included, oldest first, zeros where nothing was counted', async () => {
    cloudWatch.on(GetMetricDataCommand).resolves({
      MetricDataResults: [
        {
          Id: 'succeeded',
          Timestamps: [at('2026-12-03T10:05:00Z'), at('2026-12-03T10:07:00Z')],
          Values: [120, 7],
        },
        { Id: 'failed', Timestamps: [at('2026-12-03T10:05:00Z')], Values: [3] },
        { Id: 'dead', Timestamps: [], Values: [] },
        { Id: 'skipped', Timestamps: [at('2026-12-03T10:06:00Z')], Values: [1] },
      ],
    });

    const minutes = await new CloudWatchDeliveryRates(
      client(),
      'WebhookDispatcher-prod-Service',
      clock,
    ).lastMinutes(3);

    expect(minutes).toEqual([
      { minute: '2026-12-03T10:05:00.000Z', succeeded: 120, failed: 3, dead: 0, skipped: 0 },
      { minute: '2026-12-03T10:06:00.000Z', succeeded: 0, failed: 0, dead: 0, skipped: 1 },
      { minute: '2026-12-03T10:07:00.000Z', succeeded: 7, failed: 0, dead: 0, skipped: 0 },
    ]);
    expect(cloudWatch).toHaveReceivedCommandWith(GetMetricDataCommand, {
      StartTime: at('2026-12-03T10:05:00Z'),
      EndTime: at('2026-12-03T10:08:00Z'),
      ScanBy: 'TimestampAscending',
    });
    const queries = cloudWatch.commandCalls(GetMetricDataCommand)[0]?.args[0].input.MetricDataQueries ?? [];
    expect(queries.map((q) => q.MetricStat?.Metric?.MetricName)).toEqual([
      DELIVERY_METRICS.succeeded,
      DELIVERY_METRICS.failed,
      DELIVERY_METRICS.dead,
      DELIVERY_METRICS.skipped,
    ]);
    for (const query of queries) {
      expect(query.MetricStat).toMatchObject({
        Metric: {
          Namespace: 'WebhookDispatcher-prod-Service',
          Dimensions: [{ Name: 'service', Value: 'dispatcher' }],
        },
        Period: 60,
        Stat: 'Sum',
      });
    }
  });
});
