/**
 * Writes src/openapi-types.ts from the API's OpenAPI document (docs/openapi.json, or the path
 * given): one TypeScript type per schema of its components, so the client's types are the
 * document's. Run by the repository's `npm run openapi`; a test fails when the file is stale.
 *
 *   node clients/typescript/scripts/generate-types.ts [openapi.json] [out.ts]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

type Schema = {
  $ref?: string;
  type?: string | string[];
  enum?: unknown[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  additionalProperties?: Schema | boolean;
  description?: string;
};

const here = dirname(fileURLToPath(import.meta.url));

function comment(text: string | undefined, indent: string): string {
  if (text === undefined) return '';
  return `${indent}/** ${text.replaceAll('*/', '*\\/')} */\n`;
}

/** A schema as a TypeScript type, `indent` deep. */
export function typeOf(schema: Schema, indent = ''): string {
  if (schema.$ref !== undefined) return schema.$ref.replace('#/components/schemas/', '');
  const union = schema.anyOf ?? schema.oneOf;
  if (union !== undefined) return union.map((s) => typeOf(s, indent)).join(' | ');
  if (schema.enum !== undefined) return schema.enum.map((v) => JSON.stringify(v)).join(' | ');
  const types = Array.isArray(schema.type) ? schema.type : schema.type === undefined ? [] : [schema.type];
  if (types.length > 1) return types.map((type) => typeOf({ ...schema, type }, indent)).join(' | ');
  switch (types[0]) {
    case 'string':
      return 'string';
    case 'integer':
    case 'number':
      return 'number';
    case 'boolean':
      return 'boolean';
    case 'null':
      return 'null';
    case 'array':
      return `${wrap(typeOf(schema.items ?? {}, indent))}[]`;
    case 'object':
      return objectType(schema, indent);
    default:
      return 'unknown';
  }
}

function wrap(type: string): string {
  return /[|&]/.test(type) ? `(${type})` : type;
}

function objectType(schema: Schema, indent: string): string {
  const inner = `${indent}  `;
  const lines: string[] = [];
  const required = new Set(schema.required ?? []);
  for (const [name, property] of Object.entries(schema.properties ?? {})) {
    const key = /^[A-Za-z_$][\w$]*$/.test(name) ? name : JSON.stringify(name);
    lines.push(
      `${comment(property.description, inner)}${inner}${key}${required.has(name) ? '' : '?'}: ${typeOf(property, inner)};`,
    );
  }
  const extra = schema.additionalProperties;
  if (typeof extra === 'object' && schema.properties === undefined) {
    lines.push(`${inner}[key: string]: ${typeOf(extra, inner)};`);
  }
  return lines.length === 0 ? 'Record<string, never>' : `{\n${lines.join('\n')}\n${indent}}`;
}

export function generate(document: { components: { schemas: Record<string, Schema> } }): string {
  const out = ['// Generated from docs/openapi.json by scripts/generate-types.ts: do not edit by hand.', ''];
  for (const [name, schema] of Object.entries(document.components.schemas)) {
    const body = typeOf(schema);
    out.push(
      `${comment(schema.description, '')}export ${body.startsWith('{') ? `interface ${name} ${body}` : `type ${name} = ${body};`}`,
      '',
    );
  }
  return out.join('\n');
}

if (import.meta.main) {
  const [input = join(here, '../../../docs/openapi.json'), output = join(here, '../src/openapi-types.ts')] =
    process.argv.slice(2);
  writeFileSync(output, generate(JSON.parse(readFileSync(input, 'utf8'))));
  console.log(`wrote ${output}`);
}
