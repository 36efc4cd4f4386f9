/** PartnerApi on its own: who may call the admin routes. */
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { describe, expect, it } from 'vitest';
import {
  DELIVERIES_TABLE,
  EVENTS_TABLE,
  PARTNERS_TABLE,
  SUBSCRIPTIONS_TABLE,
} from '../../functions/adapters/aws/tables.ts';
import { ROUTES } from '../../functions/api/routes.ts';
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

function partnerApi(stack: Stack, withOps = true): PartnerApi {
  return new PartnerApi(stack, 'Api', {
    eventsTable: new DefinedTable(stack, 'Events', { definition: EVENTS_TABLE }),
    partnersTable: new DefinedTable(stack, 'Partners', { definition: PARTNERS_TABLE }),
    subscriptionsTable: new DefinedTable(stack, 'Subscriptions', { definition: SUBSCRIPTIONS_TABLE }),
    deliveriesTable: new DefinedTable(stack, 'Deliveries', { definition: DELIVERIES_TABLE }),
    secretsKey: new kms.Key(stack, 'SecretsKey', { enableKeyRotation: true }),
    deliveryQueue: new sqs.Queue(stack, 'Delivery'),
    slowLaneQueue: new sqs.Queue(stack, 'SlowLane'),
    retentionDays: 30,
    ...(withOps
      ? {
          opsFunction: new lambda.Function(stack, 'Ops', {
            runtime: lambda.Runtime.NODEJS_24_X,
            handler: 'index.handler',
            code: lambda.Code.fromInline('export const handler = async () => ({});'),
          }),
        }
      : {}),
  });
}

/** No bundling: only the templates matter here. */
function testStack(): Stack {
  return new Stack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Test');
}

describe('PartnerApi.grantAdminInvoke', () => {
  it('lets a producer call POST /v1/events/batch, as it may call POST /v1/events', () => {
    const stack = testStack();
    const api = partnerApi(stack);
    const producer = new iam.Role(stack, 'Producer', { assumedBy: new iam.AccountRootPrincipal() });

    api.grantAdminInvoke(producer);

    const resources = invokeResources(Template.fromStack(stack));
    expect(resources.filter((r) => r.includes('/POST/v1/events/batch"'))).toHaveLength(1);
    expect(resources.filter((r) => r.includes('/POST/v1/events"'))).toHaveLength(1);
    // Nothing of the partners' own routes.
    for (const partnerRoute of ['/GET/v1/events', '/v1/subscriptions', '/v1/keys']) {
      expect(resources.some((r) => r.includes(partnerRoute))).toBe(false);
    }
    // Nor the ops routes, which move and purge dead letters.
    expect(resources.some((r) => r.includes('/v1/admin/'))).toBe(false);
  });
});

describe('PartnerApi.grantOpsInvoke', () => {
  it('lets an operator call the ops routes, and no other', () => {
    const stack = testStack();
    const api = partnerApi(stack);
    const operator = new iam.Role(stack, 'Operator', { assumedBy: new iam.AccountRootPrincipal() });

    api.grantOpsInvoke(operator);

    const resources = invokeResources(Template.fromStack(stack));
    const opsRoutes = ROUTES.filter((route) => 'lambda' in route && route.lambda === 'ops');
    expect(resources.length).toBeGreaterThan(0);
    // As API Gateway's grants name a route: its path up to its first parameter, then `*`.
    for (const route of opsRoutes) {
      const granted = `/${route.method}${route.path.replace(/\{.*?\}.*/, '*')}"`;
      expect(
        resources.some((r) => r.includes(granted)),
        granted,
      ).toBe(true);
    }
    for (const resource of resources) expect(resource).toContain('/v1/admin/');
  });

  it('needs the ops function when the routes have ops routes', () => {
    expect(() => partnerApi(testStack(), false)).toThrow(/need an opsFunction/);
  });
});
