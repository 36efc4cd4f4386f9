/**
 * The app as `cdk synth` builds it (functions bundled, templates validated by CDK's built-in
 * CloudFormation checks): cdk-nag's AwsSolutions pack finds nothing that is not acknowledged,
 * every acknowledgement is one we meant, and every bundle is the ESM, source-mapped build the
 * functions are configured for.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { BUNDLED_WORKER_FILE } from '../../functions/adapters/jsonata/limits.ts';
import { acknowledgements, logicalIdOf, resourcesOfType, type Synthesized, synthesize } from './fixture.ts';

let synth: Synthesized;
beforeAll(() => {
  synth = synthesize({ full: true });
}, 120_000);

describe('cdk-nag AwsSolutions', () => {
  it('reports no unacknowledged error or warning', () => {
    const report = new AwsSolutionsChecks().validateScope(synth.app);
    expect(report.violations.map((violation) => violation.ruleName)).toEqual([]);
    expect(report.success).toBe(true);
  });

  it('leaves nothing in the report synth writes: no cdk-nag or CloudFormation validation finding', () => {
    const file = join(synth.assembly.directory, 'validation-report.json');
    const reports: unknown = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')).pluginReports : [];
    expect(reports).toEqual([]);
  });

  it('acknowledges only the findings we reviewed, each where it arises, with a reason', () => {
    const found = acknowledgements(synth.app);
    // ManageConnections on the WebSocket API's connections, whose ids no policy can name.
    const api = logicalIdOf(synth.stacks.service.connections.api);
    const manage = (role: string, method: 'POST' | 'DELETE') =>
      `${role}/DefaultPolicy/Resource AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:` +
      `<AWS::Region>:<AWS::AccountId>:<${api}>/v1/${method}/@connections/*]`;
    expect(found.map(({ path, id }) => `${path} ${id}`).sort()).toEqual(
      [
        'Api/HttpApi/DefaultRoute/Resource AwsSolutions-APIG4',
        'Api/HttpApi/GET--openapi.json/Resource AwsSolutions-APIG4',
        'EventStream/Role/DefaultPolicy/Resource AwsSolutions-IAM5[Resource::*]',
        'OpsFunctionRole/DefaultPolicy/Resource AwsSolutions-IAM5[Resource::*]',
        // No API Gateway authorizer: $connect checks the API key itself, the others cannot have one.
        'Connections/WebSocketApi/$connect-Route/Resource AwsSolutions-APIG4',
        'Connections/WebSocketApi/$disconnect-Route/Resource AwsSolutions-APIG4',
        'Connections/WebSocketApi/$default-Route/Resource AwsSolutions-APIG4',
        'Connections/WebSocketApi/ack-Route/Resource AwsSolutions-APIG4',
        'Connections/WebSocketApi/nack-Route/Resource AwsSolutions-APIG4',
        'Connections/WebSocketApi/ping-Route/Resource AwsSolutions-APIG4',
        // The Region's API Gateway logging role, with the managed policy AWS documents for it.
        'Connections/ApiGatewayCloudWatchRole/Resource AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]',
        manage('Connections/ConnectionsFunctionRole', 'POST'),
        manage('Connections/ConnectionsFunctionRole', 'DELETE'),
        manage('Delivery/DispatcherFunctionRole', 'POST'),
        manage('Delivery/DispatcherFunctionRole', 'DELETE'),
        // The API function only closes connections (a revoked key's).
        manage('Api/ApiFunctionRole', 'DELETE'),
      ].sort(),
    );
    for (const { path, reason } of found) expect(reason.length, path).toBeGreaterThan(150);
  });

  it('leaves no warning or error annotation on either stack', () => {
    for (const stack of [synth.stacks.data, synth.stacks.service]) {
      expect(Annotations.fromStack(stack).findError('*', Match.anyValue())).toEqual([]);
      expect(Annotations.fromStack(stack).findWarning('*', Match.anyValue())).toEqual([]);
    }
  });
});

describe('function bundles', () => {
  it('are ESM with a require shim and a linked source map, exporting handler', () => {
    const functions = resourcesOfType(synth.service, 'AWS::Lambda::Function');
    expect(functions).toHaveLength(9);
    for (const [id, properties] of functions) {
      const key = (properties.Code as { S3Key: string }).S3Key;
      const dir = join(synth.assembly.directory, `asset.${key.replace(/\.zip$/, '')}`);
      expect(properties.Handler, id).toBe('index.handler');
      const bundle = readFileSync(join(dir, 'index.mjs'), 'utf8');
      expect(bundle.startsWith("import { createRequire } from 'node:module';"), id).toBe(true);
      expect(bundle, id).toMatch(/export\s*\{[^}]*\bhandler\b[^}]*\}/);
      expect(bundle.trimEnd().endsWith('//# sourceMappingURL=index.mjs.map'), id).toBe(true);
      expect(existsSync(join(dir, 'index.mjs.map')), id).toBe(true);
    }
  });

  it('carry the JSONata worker where transformations are evaluated (the API and the dispatcher), and it runs', async () => {
    const functions = resourcesOfType(synth.service, 'AWS::Lambda::Function');
    const withWorker = functions.filter(([, properties]) => {
      const key = (properties.Code as { S3Key: string }).S3Key;
      return existsSync(
        join(synth.assembly.directory, `asset.${key.replace(/\.zip$/, '')}`, BUNDLED_WORKER_FILE),
      );
    });
    expect(withWorker.map(([id]) => id.replace(/[0-9A-F]{8}$/, '')).sort()).toEqual([
      'ApiApiFunction',
      'DeliveryDispatcherFunction',
    ]);
    // The bundled worker evaluates on its own, as the Lambda's transformer starts it.
    const dispatcher = withWorker[1]?.[1];
    if (dispatcher === undefined) throw new Error('no dispatcher function');
    const key = (dispatcher.Code as { S3Key: string }).S3Key;
    const file = join(synth.assembly.directory, `asset.${key.replace(/\.zip$/, '')}`, BUNDLED_WORKER_FILE);
    const worker = new Worker(file);
    try {
      const answer = new Promise<unknown>((resolve) =>
        worker.on('message', (m: unknown) => {
          if (m !== 'ready') resolve(m);
        }),
      );
      worker.postMessage({
        kind: 'evaluate',
        id: 1,
        expression: '{"n": payload.n + 1}',
        input: { payload: { n: 41 } },
      });
      expect(await answer).toEqual({ id: 1, body: '{"n":42}' });
    } finally {
      await worker.terminate();
    }
  });
});
