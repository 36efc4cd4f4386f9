/**
 * Builds the CDK app the way `cdk synth` does (cdk.json's feature flags, lib/app.ts, the
 * cdk-nag checks) into a temporary directory. Each test file synthesizes once, in beforeAll.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, CfnElement, Stack, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { CloudAssembly } from 'aws-cdk-lib/cx-api';
import type { IConstruct } from 'constructs';
import { type DispatcherStacks, defineDispatcherApp } from '../../lib/app.ts';
import { PROJECT_ROOT } from '../../lib/constructs/function.ts';

export interface Synthesized {
  readonly app: App;
  readonly stacks: DispatcherStacks;
  readonly assembly: CloudAssembly;
  readonly data: Template;
  readonly service: Template;
}

export interface SynthOptions {
  /**
   * Synthesize exactly as `cdk synth` does: esbuild bundles every function, and CDK's built-in
   * CloudFormation validation checks the templates. Off, the templates are the same but for
   * asset hashes, and a synth takes a few seconds instead of fifteen or more.
   * @default false
   */
  readonly full?: boolean;
  /** Extra context, as `-c key=value` would give. @default - none */
  readonly context?: Readonly<Record<string, unknown>>;
}

function cdkJsonContext(): Record<string, unknown> {
  const cdkJson: unknown = JSON.parse(readFileSync(join(PROJECT_ROOT, 'cdk.json'), 'utf8'));
  if (typeof cdkJson !== 'object' || cdkJson === null || !('context' in cdkJson)) {
    throw new Error('cdk.json has no context');
  }
  const { context } = cdkJson;
  if (typeof context !== 'object' || context === null) throw new Error('cdk.json context is not an object');
  return { ...context };
}

/** Synthesizes the whole app; throws, as `cdk synth` fails, on an unacknowledged cdk-nag finding. */
export function synthesize(options: SynthOptions = {}): Synthesized {
  const full = options.full ?? false;
  const app = new App({
    outdir: mkdtempSync(join(tmpdir(), 'cdk-test-')),
    builtinCloudFormationValidation: full,
    context: {
      ...cdkJsonContext(),
      ...(full ? {} : { 'aws:cdk:bundling-stacks': [] }),
      ...options.context,
    },
  });
  const stacks = defineDispatcherApp(app);
  const assembly = app.synth();
  return {
    app,
    stacks,
    assembly,
    data: Template.fromStack(stacks.data),
    service: Template.fromStack(stacks.service),
  };
}

/** A template's resources of one type, as [logical id, properties] (ids only to look things up). */
export function resourcesOfType(template: Template, type: string): [string, Record<string, unknown>][] {
  return Object.entries(template.findResources(type)).map(([id, resource]: [string, unknown]) => {
    const properties =
      typeof resource === 'object' && resource !== null && 'Properties' in resource
        ? resource.Properties
        : {};
    return [id, typeof properties === 'object' && properties !== null ? { ...properties } : {}];
  });
}

/** The logical id CloudFormation knows a construct's resource by, taken from the construct. */
export function logicalIdOf(construct: IConstruct): string {
  const resource = CfnElement.isCfnElement(construct) ? construct : construct.node.defaultChild;
  if (resource === undefined || !CfnElement.isCfnElement(resource)) {
    throw new Error(`${construct.node.path} has no CloudFormation resource`);
  }
  return Stack.of(resource).getLogicalId(resource);
}

/** `{ "Fn::GetAtt": [<construct's resource>, attribute] }` */
export function getAtt(construct: IConstruct, attribute: string): { 'Fn::GetAtt': [string, string] } {
  return { 'Fn::GetAtt': [logicalIdOf(construct), attribute] };
}

/** `{ "Ref": <construct's resource> }` */
export function ref(construct: IConstruct): { Ref: string } {
  return { Ref: logicalIdOf(construct) };
}

/** The properties of a construct's resource in a template. */
export function propertiesOf(template: Template, construct: IConstruct): Record<string, unknown> {
  const id = logicalIdOf(construct);
  const found = Object.entries(template.toJSON().Resources ?? {}).find(([logicalId]) => logicalId === id);
  const resource: unknown = found?.[1];
  if (typeof resource !== 'object' || resource === null) throw new Error(`${id} is not in the template`);
  const properties = 'Properties' in resource ? resource.Properties : {};
  return typeof properties === 'object' && properties !== null ? { ...properties } : {};
}

/** Every acknowledgement in the app: construct path (below the stack) and rule id → reason. */
export function acknowledgements(root: IConstruct): { path: string; id: string; reason: string }[] {
  return root.node.findAll().flatMap((construct) =>
    construct.node.metadata
      .filter((entry) => entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .flatMap((entry) =>
        Object.entries(entry.data as Record<string, string>).map(([id, reason]) => ({
          path: construct.node.path.split('/').slice(1).join('/'),
          id: id.replace(/^annotation::/i, ''),
          reason,
        })),
      ),
  );
}
