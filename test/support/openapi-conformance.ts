/**
 * Checks an answer of the HTTP API against the published OpenAPI document (docs/openapi.json):
 * its status is one the operation describes, its body matches the schema described for that
 * status and media type, and it carries the request id header. The end-to-end harness runs
 * this on every answer, so an answer the document does not describe fails the test that got it.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { matchRoute } from '../../functions/api/routes.ts';

type Json = Record<string, unknown>;

export const OPENAPI_PATH = resolve(import.meta.dirname, '../../docs/openapi.json');

const document = JSON.parse(readFileSync(OPENAPI_PATH, 'utf8')) as {
  paths: Record<string, Record<string, { responses: Record<string, Json> }>>;
  components: { responses: Record<string, Json>; schemas: Json };
};

const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats.default(ajv);
ajv.addSchema({ $id: 'openapi', components: { schemas: document.components.schemas } });

const validators = new Map<string, ValidateFunction>();

function validatorFor(schema: Json): ValidateFunction {
  const key = JSON.stringify(schema);
  let validate = validators.get(key);
  if (validate === undefined) {
    // A reference into the document resolves against it.
    const rooted =
      typeof schema.$ref === 'string' ? { $ref: `openapi${schema.$ref}` } : { ...schema, $id: undefined };
    validate = ajv.compile(rooted);
    validators.set(key, validate);
  }
  return validate;
}

function resolveResponse(response: Json): Json {
  const ref = response.$ref;
  if (typeof ref !== 'string') return response;
  const name = ref.replace('#/components/responses/', '');
  const found = document.components.responses[name];
  if (found === undefined) throw new Error(`the document has no response ${ref}`);
  return found;
}

export interface Answer {
  status: number;
  headers: Headers;
  /** The body as parsed JSON, or the raw text when it is not JSON; '' when empty. */
  body: unknown;
}

/**
 * Throws when `answer` to `method path` is not what the document describes. A path no route
 * takes, and a method a route does not, are answered by the API as the document's generic
 * 404/405 would be, and are not checked here.
 */
export function checkAgainstOpenApi(method: string, url: string, answer: Answer): void {
  // A path as the handler got it (in-process), or a URL as fetch sent it (dot segments resolved).
  const path = url.startsWith('/') ? (url.split('?')[0] ?? url) : new URL(url).pathname;
  const match = matchRoute(method, path);
  if (match.kind !== 'found') return;
  const where = `${method} ${path} → ${answer.status}`;
  const operation = document.paths[match.route.path]?.[match.route.method.toLowerCase()];
  if (operation === undefined)
    throw new Error(`${where}: the document has no ${match.route.method} ${match.route.path}`);
  const described = operation.responses[String(answer.status)];
  if (described === undefined) {
    throw new Error(
      `${where}: status ${answer.status} is not described for ${match.route.operation} ` +
        `(it describes ${Object.keys(operation.responses).join(', ')}); body ${JSON.stringify(answer.body)}`,
    );
  }
  if (!answer.headers.get('x-request-id')) throw new Error(`${where}: no x-request-id header`);
  const response = resolveResponse(described);
  const content = response.content as Record<string, { schema: Json }> | undefined;
  if (content === undefined) {
    if (answer.body !== '')
      throw new Error(`${where}: the document describes no body, got ${JSON.stringify(answer.body)}`);
    return;
  }
  const mediaType = (answer.headers.get('content-type') ?? '').split(';')[0]?.trim() ?? '';
  const schema = content[mediaType]?.schema;
  if (schema === undefined) {
    throw new Error(
      `${where}: media type ${mediaType} is not described (${Object.keys(content).join(', ')})`,
    );
  }
  const validate = validatorFor(schema);
  if (!validate(answer.body)) {
    throw new Error(
      `${where}: the body does not match the document: ${ajv.errorsText(validate.errors)}; ` +
        `body ${JSON.stringify(answer.body).slice(0, 500)}`,
    );
  }
}

/** Reads a fetch response as the check wants it, and checks it. */
export async function checkedAnswer(method: string, url: string, response: Response): Promise<Answer> {
  const text = await response.text();
  let body: unknown = text;
  if (text !== '') {
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
  }
  const answer = { status: response.status, headers: response.headers, body };
  checkAgainstOpenApi(method, url, answer);
  return answer;
}
