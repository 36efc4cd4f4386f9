/** PartnerApi on its own: who may call the admin routes. */
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { describe, expect, it } from 'vitest';
import {
  DELIVERIES_TABLE,
  EVENTS_TABLE,
  PARTNERS_TABLE,
  SUBSCRIPTIONS_TABLE,
} from '../../functions/adapters/aws/tables.ts';
import { PartnerApi } from '../../lib/constructs/partner-api.ts';
import { DefinedTable } from '../../lib/constructs/table.ts';

/** The `execute-api:Invoke` resources granted to the role, each joined into one string. */
function invokeResources(template: Template): string[] {
  const resources: string[] = [];
  for (const policy of Object.values(template.findResources('AWS::IAM::Policy'))) {
    const statements: { Action: unknown; Resource: unknown }[] = policy.Properties.PolicyDocument.Statement;
    for (const statement of statements) {
      if (statement.Action !== 'execute-api:Invoke') continue;
      for (const resource of [statement.Resource].flat()) resources.push(JSON.stringify(resource));
    }
  }
  return resources;
}

describe('PartnerApi.grantAdminInvoke', () => {
  it('lets a producer call POST /v1/events/batch, as it may call POST /v1/events', () => {
    // No bundling: only the templates matter here.
    const stack = new Stack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Test');
    const api = new PartnerApi(stack, 'Api', {
      eventsTable: new DefinedTable(stack, 'Events', { definition: EVENTS_TABLE }),
      partnersTable: new DefinedTable(stack, 'Partners', { definition: PARTNERS_TABLE }),
      subscriptionsTable: new DefinedTable(stack, 'Subscriptions', { definition: SUBSCRIPTIONS_TABLE }),
      deliveriesTable: new DefinedTable(stack, 'Deliveries', { definition: DELIVERIES_TABLE }),
      secretsKey: new kms.Key(stack, 'SecretsKey', { enableKeyRotation: true }),
      deliveryQueue: new sqs.Queue(stack, 'Delivery'),
      slowLaneQueue: new sqs.Queue(stack, 'SlowLane'),
      retentionDays: 30,
    });
    const producer = new iam.Role(stack, 'Producer', { assumedBy: new iam.AccountRootPrincipal() });

    api.grantAdminInvoke(producer);

    const resources = invokeResources(Template.fromStack(stack));
    expect(resources.filter((r) => r.includes('/POST/v1/events/batch"'))).toHaveLength(1);
    expect(resources.filter((r) => r.includes('/POST/v1/events"'))).toHaveLength(1);
    // Nothing of the partners' own routes.
    for (const partnerRoute of ['/GET/v1/events', '/v1/subscriptions', '/v1/keys']) {
      expect(resources.some((r) => r.includes(partnerRoute))).toBe(false);
    }
  });
});
