/** The constructs refuse bad props when built, before anything is synthesized. */
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { describe, expect, it } from 'vitest';
import {
  DELIVERIES_TABLE,
  EVENTS_TABLE,
  PARTNERS_TABLE,
  SUBSCRIPTIONS_TABLE,
} from '../../functions/adapters/aws/tables.ts';
import { LAMBDA_ENV } from '../../functions/config.ts';
import { DEFAULT_RETRY_SCHEDULE } from '../../functions/core/retry.ts';
import { DeliveryPipeline, type DeliveryPipelineProps } from '../../lib/constructs/delivery-pipeline.ts';
import { EventStream } from '../../lib/constructs/event-stream.ts';
import { DispatcherFunction } from '../../lib/constructs/function.ts';
import { DeadLetterQueue, QueueWithDeadLetter } from '../../lib/constructs/queues.ts';
import { DefinedTable } from '../../lib/constructs/table.ts';
import { getAtt } from './fixture.ts';

function stack(): Stack {
  // No bundling: these tests only build constructs.
  return new Stack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Test');
}

describe('QueueWithDeadLetter', () => {
  const valid = { queueName: 'q', visibilityTimeout: Duration.seconds(60), maxReceiveCount: 3 };

  it.each([
    ['a name SQS refuses', { ...valid, queueName: 'no spaces' }, /queueName/],
    ['no receives', { ...valid, maxReceiveCount: 0 }, /maxReceiveCount/],
    [
      'a visibility timeout over 12 hours',
      { ...valid, visibilityTimeout: Duration.hours(13) },
      /visibilityTimeout/,
    ],
    ['a retention as long as the DLQ', { ...valid, retentionPeriod: Duration.days(14) }, /retentionPeriod/],
  ])('refuses %s', (_, props, message) => {
    expect(() => new QueueWithDeadLetter(stack(), 'Q', props)).toThrow(message);
  });
});

describe('DeadLetterQueue', () => {
  it('needs to know what dead-letters into it: source queues or another source, not both', () => {
    const scope = stack();
    const source = new DeadLetterQueue(scope, 'Other', { otherSource: 'a pipe' });
    expect(() => new DeadLetterQueue(scope, 'Neither', {})).toThrow(/either sourceQueues or otherSource/);
    expect(
      () => new DeadLetterQueue(scope, 'Both', { sourceQueues: [source], otherSource: 'a pipe' }),
    ).toThrow(/either sourceQueues or otherSource/);
  });
});

describe('DispatcherFunction', () => {
  function fnIn(scope: Stack): DispatcherFunction {
    return new DispatcherFunction(scope, 'Fn', {
      entry: 'functions/authorizer/lambda.ts',
      description: 'test',
      serviceName: 'test',
      environment: { [LAMBDA_ENV.retentionDays]: '1' },
    });
  }

  it('refuses to bind one variable twice', () => {
    const scope = stack();
    const table = new DefinedTable(scope, 'Partners', { definition: PARTNERS_TABLE });
    const fn = fnIn(scope).useTable(table, LAMBDA_ENV.partnersTable, { table: ['dynamodb:GetItem'] });
    expect(() => fn.useTable(table, LAMBDA_ENV.partnersTable, { table: ['dynamodb:PutItem'] })).toThrow(
      /already bound/,
    );
  });

  it.each([
    ['no action at all', {}, /no actions granted on table/],
    ['an action listed twice', { table: ['dynamodb:GetItem', 'dynamodb:GetItem'] as const }, /listed twice/],
    ['an index the table does not have', { indexes: { byPartner: ['dynamodb:Query'] as const } }, /no index/],
    ['an index with no action', { indexes: { bySubscription: [] } }, /no actions granted on index/],
  ])('refuses a table grant of %s', (_, grant, message) => {
    const scope = stack();
    const table = new DefinedTable(scope, 'Deliveries', { definition: DELIVERIES_TABLE });
    expect(() => fnIn(scope).useTable(table, LAMBDA_ENV.deliveriesTable, grant)).toThrow(message);
  });

  it('refuses a queue grant of no action', () => {
    const scope = stack();
    const queue = new DeadLetterQueue(scope, 'Queue', { otherSource: 'a test' });
    expect(() => fnIn(scope).useQueue(queue, LAMBDA_ENV.deliveryQueueUrl, [])).toThrow(/no actions/);
  });

  it('grants table actions on the table and index actions on each index named, nothing else', () => {
    const scope = stack();
    const table = new DefinedTable(scope, 'Deliveries', { definition: DELIVERIES_TABLE });
    fnIn(scope).useTable(table, LAMBDA_ENV.deliveriesTable, {
      table: ['dynamodb:PutItem'],
      indexes: { byEvent: ['dynamodb:Query'] },
    });
    const tableArn = getAtt(table.table, 'Arn');
    Template.fromStack(scope).hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayEquals([
          Match.objectLike({ Action: ['logs:CreateLogStream', 'logs:PutLogEvents'] }),
          { Effect: 'Allow', Action: 'dynamodb:PutItem', Resource: tableArn },
          {
            Effect: 'Allow',
            Action: 'dynamodb:Query',
            Resource: { 'Fn::Join': ['', [tableArn, '/index/byEvent']] },
          },
        ]),
      },
    });
  });

  it('refuses an entry that does not exist', () => {
    expect(
      () =>
        new DispatcherFunction(stack(), 'Fn', {
          entry: 'functions/nope.ts',
          description: 'x',
          serviceName: 'x',
        }),
    ).toThrow(/does not exist/);
  });
});

describe('EventStream', () => {
  it('needs a table with a stream', () => {
    const scope = stack();
    const partners = new DefinedTable(scope, 'Partners', { definition: PARTNERS_TABLE });
    const fanoutQueue = new sqs.Queue(scope, 'Fanout');
    expect(
      () => new EventStream(scope, 'Stream', { eventsTable: partners, fanoutQueue, queueNamePrefix: 'test' }),
    ).toThrow(/has no stream/);
  });

  it('sends at most ten events a batch: an SQS target takes no more', () => {
    const scope = stack();
    const events = new DefinedTable(scope, 'Events', { definition: EVENTS_TABLE });
    const fanoutQueue = new sqs.Queue(scope, 'Fanout');
    expect(
      () =>
        new EventStream(scope, 'Stream', {
          eventsTable: events,
          fanoutQueue,
          queueNamePrefix: 'test',
          batchSize: 11,
        }),
    ).toThrow(/batchSize must be a whole number from 1 to 10/);
  });
});

describe('DeliveryPipeline', () => {
  function props(scope: Stack, overrides: Partial<DeliveryPipelineProps>): DeliveryPipelineProps {
    return {
      eventsTable: new DefinedTable(scope, 'Events', { definition: EVENTS_TABLE }),
      subscriptionsTable: new DefinedTable(scope, 'Subscriptions', { definition: SUBSCRIPTIONS_TABLE }),
      deliveriesTable: new DefinedTable(scope, 'Deliveries', { definition: DELIVERIES_TABLE }),
      secretsKey: new kms.Key(scope, 'SecretsKey', { enableKeyRotation: true }),
      queueNamePrefix: 'test',
      metricsNamespace: 'test',
      retrySchedule: DEFAULT_RETRY_SCHEDULE,
      deliveryTimeout: Duration.seconds(10),
      dispatcherMaxConcurrency: 10,
      retentionDays: 30,
      ...overrides,
    };
  }

  it('takes a schedule of long waits: they wait as due retries, not in the queue', () => {
    const scope = stack();
    const long = [0, ...Array.from({ length: 7 }, () => 43_200)];
    expect(() => new DeliveryPipeline(scope, 'P', props(scope, { retrySchedule: long }))).not.toThrow();
  });

  it.each([
    ['an empty retry schedule', { retrySchedule: [] }, /retrySchedule/],
    ['a wait over 12 hours', { retrySchedule: [0, 50_000] }, /entry 2/],
    ['a slow-lane concurrency below 2', { slowLaneMaxConcurrency: 1 }, /slowLaneMaxConcurrency/],
    ['a delivery timeout over a minute', { deliveryTimeout: Duration.minutes(2) }, /deliveryTimeout/],
    ['a dispatcher concurrency below 2', { dispatcherMaxConcurrency: 1 }, /dispatcherMaxConcurrency/],
  ] as const)('refuses %s', (_, overrides, message) => {
    const scope = stack();
    expect(() => new DeliveryPipeline(scope, 'P', props(scope, overrides))).toThrow(message);
  });
});
