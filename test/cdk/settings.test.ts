import { Match } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { LAMBDA_ENV } from '../../functions/config.ts';
import { DELIVERY_MAX_RECEIVES } from '../../functions/core/delivery.ts';
import { DEFAULT_RETRY_SCHEDULE } from '../../functions/core/retry.ts';
import { DEFAULT_SETTINGS, parseSettings, SettingsError } from '../../lib/settings.ts';
import { getAtt, ref, type Synthesized, synthesize } from './fixture.ts';

describe('parseSettings', () => {
  it('takes the defaults when the context says nothing (or gives empty strings)', () => {
    expect(parseSettings({})).toEqual(DEFAULT_SETTINGS);
    expect(parseSettings({ stage: '', alarmEmail: '' })).toEqual(DEFAULT_SETTINGS);
    expect(DEFAULT_SETTINGS.retrySchedule).toEqual(DEFAULT_RETRY_SCHEDULE);
  });

  it('reads -c strings and cdk.json values alike', () => {
    const fromCli = parseSettings({
      stage: 'prod',
      retrySchedule: '0, 60,600',
      deliveryTimeoutMs: '5000',
      dispatcherMaxConcurrency: '25',
      retentionDays: '90',
      partnerRequestsPerSecond: '20',
      producerRequestsPerSecond: '800',
      alarmEmail: 'ops@example.com',
      staticEgress: 'true',
    });
    expect(fromCli).toEqual({
      stage: 'prod',
      retrySchedule: [0, 60, 600],
      deliveryTimeoutMs: 5000,
      dispatcherMaxConcurrency: 25,
      retentionDays: 90,
      partnerRequestsPerSecond: 20,
      producerRequestsPerSecond: 800,
      alarmEmail: 'ops@example.com',
      staticEgress: true,
    });
    expect(
      parseSettings({ retrySchedule: [0, 60, 600], deliveryTimeoutMs: 5000, staticEgress: false }),
    ).toMatchObject({
      retrySchedule: [0, 60, 600],
      deliveryTimeoutMs: 5000,
      staticEgress: false,
    });
    expect(parseSettings({ staticEgress: true }).staticEgress).toBe(true);
    expect(parseSettings({ staticEgress: 'false' }).staticEgress).toBe(false);
  });

  it('names every bad value at once', () => {
    const bad = () =>
      parseSettings({
        stage: 'Prod_1',
        retrySchedule: '0,50000',
        deliveryTimeoutMs: '10',
        dispatcherMaxConcurrency: '1',
        retentionDays: 'a month',
        partnerRequestsPerSecond: '0',
        alarmEmail: 'ops',
        staticEgress: 'yes',
      });
    expect(bad).toThrow(SettingsError);
    expect(bad).toThrow(
      /stage:[\s\S]*retrySchedule:.*43200[\s\S]*deliveryTimeoutMs:[\s\S]*dispatcherMaxConcurrency:/,
    );
    expect(bad).toThrow(
      /retentionDays:[\s\S]*partnerRequestsPerSecond:[\s\S]*alarmEmail: must be an e-mail address/,
    );
    expect(bad).toThrow(/staticEgress: must be true or false/);
  });
});

describe('settings from context reach the stacks', () => {
  let synth: Synthesized;
  beforeAll(() => {
    synth = synthesize({
      context: {
        stage: 'prod',
        retrySchedule: '0,60,600',
        deliveryTimeoutMs: '20000',
        dispatcherMaxConcurrency: '25',
        retentionDays: '90',
        partnerRequestsPerSecond: '20',
        producerRequestsPerSecond: '800',
        alarmEmail: 'ops@example.com',
      },
    });
  });

  it('names the stacks after the stage', () => {
    expect(synth.stacks.data.stackName).toBe('WebhookDispatcher-prod-Data');
    expect(synth.stacks.service.stackName).toBe('WebhookDispatcher-prod-Service');
  });

  it('gives the dispatcher the retry schedule, whose length no longer sets the queue’s max receives', () => {
    synth.service.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ [LAMBDA_ENV.retrySchedule]: '0,60,600' }) },
    });
    synth.service.hasResourceProperties('AWS::SQS::Queue', {
      QueueName: 'WebhookDispatcher-prod-Service-delivery',
      RedrivePolicy: {
        deadLetterTargetArn: getAtt(synth.stacks.service.pipeline.delivery.deadLetterQueue, 'Arn'),
        maxReceiveCount: DELIVERY_MAX_RECEIVES,
      },
    });
  });

  it('derives the dispatcher timeout from the delivery timeout, and the visibility timeout from that', () => {
    synth.service.hasResourceProperties('AWS::Lambda::Function', {
      Timeout: 40,
      Environment: {
        Variables: {
          [LAMBDA_ENV.retrySchedule]: '0,60,600',
          [LAMBDA_ENV.deliveryTimeoutMs]: '20000',
          [LAMBDA_ENV.allowPrivateTargets]: 'false',
        },
      },
    });
    synth.service.hasResourceProperties('AWS::SQS::Queue', {
      QueueName: 'WebhookDispatcher-prod-Service-delivery',
      VisibilityTimeout: 240,
    });
  });

  it('caps the dispatcher at the configured concurrency', () => {
    synth.service.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      FunctionName: ref(synth.stacks.service.pipeline.dispatcherFunction),
      ScalingConfig: { MaximumConcurrency: 25 },
    });
  });

  it('gives the API function each caller’s limit', () => {
    synth.service.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({
          [LAMBDA_ENV.partnerRequestsPerSecond]: '20',
          [LAMBDA_ENV.producerRequestsPerSecond]: '800',
        }),
      },
    });
  });

  it('keeps events, and their deliveries, for the retention period', () => {
    synth.service.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: { [LAMBDA_ENV.retentionDays]: '90' } },
    });
  });

  it('subscribes the alarm e-mail to the alarm topic', () => {
    synth.service.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'ops@example.com',
      TopicArn: ref(synth.stacks.service.monitoring.topic),
    });
  });
});
