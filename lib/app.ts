import { type App, Duration, Tags, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { type DispatcherSettings, readSettings } from './settings.ts';
import { DataStack } from './stacks/data-stack.ts';
import { ServiceStack } from './stacks/service-stack.ts';

export interface DispatcherStacks {
  readonly data: DataStack;
  readonly service: ServiceStack;
}

/**
 * Adds the dispatcher's two stacks to `app` (a stateful one with the tables, a stateless one
 * with everything else) and the cdk-nag AwsSolutions checks, which fail synth on any finding
 * that is not acknowledged with a reason.
 */
export function defineDispatcherApp(
  app: App,
  settings: DispatcherSettings = readSettings(app.node),
): DispatcherStacks {
  const prefix = `WebhookDispatcher-${settings.stage}`;
  const data = new DataStack(app, `${prefix}-Data`, {
    description: `Webhook dispatcher (${settings.stage}): tables`,
  });
  const service = new ServiceStack(app, `${prefix}-Service`, {
    description: `Webhook dispatcher (${settings.stage}): API, event pipe, queues, functions, alarms`,
    tables: data.tables,
    secretsKey: data.secretsKey,
    retrySchedule: settings.retrySchedule,
    deliveryTimeout: Duration.millis(settings.deliveryTimeoutMs),
    dispatcherMaxConcurrency: settings.dispatcherMaxConcurrency,
    retentionDays: settings.retentionDays,
    requestLimits: {
      partnerPerSecond: settings.partnerRequestsPerSecond,
      producerPerSecond: settings.producerRequestsPerSecond,
    },
    ...(settings.alarmEmail === undefined ? {} : { alarmEmail: settings.alarmEmail }),
    staticEgress: settings.staticEgress,
  });
  Tags.of(app).add('project', 'webhook-dispatcher');
  Tags.of(app).add('stage', settings.stage);
  // The acknowledgements also go into the templates' Metadata (cdk_nag.rules_to_suppress), so
  // a reviewer of a deployed stack sees each one and its reason.
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { writeSuppressionsToCloudFormation: true }));
  return { data, service };
}
