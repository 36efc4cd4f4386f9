/**
 * What the EventBridge Pipe does to a DynamoDB stream record, evaluated here from the very
 * strings the stack deploys (pipe.ts), so a test can feed real DynamoDB Local stream records
 * through it and check that the fan-out queue's message is what the fan-out expects.
 *
 * Only what the deployed values use is implemented: `<$.a.b>` placeholders of dot paths in
 * the input template. Anything else throws, so a change to pipe.ts that needs more fails
 * loudly here instead of being evaluated differently from AWS.
 */
import { PIPE_FILTER_PATTERN, PIPE_INPUT_TEMPLATE } from '../../functions/adapters/aws/pipe.ts';
import { type EventRef, FanoutMessage } from '../../functions/core/model.ts';
import { type EventPattern, matchesPattern } from '../../functions/core/patterns.ts';

const PLACEHOLDER = /<(\$[^<>]*)>/g;
const DOT_PATH = /^\$(\.[A-Za-z0-9_@-]+)+$/;

/** The value at a JSONPath of the form `$.a.b.c`; undefined when any step is missing. */
export function valueAtPath(document: unknown, path: string): unknown {
  if (!DOT_PATH.test(path)) throw new Error(`only dot paths like $.a.b are supported, got ${path}`);
  let value: unknown = document;
  for (const step of path.slice(2).split('.')) {
    if (typeof value !== 'object' || value === null || Array.isArray(value) || !Object.hasOwn(value, step)) {
      return undefined;
    }
    value = Reflect.get(value, step);
  }
  return value;
}

function requireValue(record: unknown, path: string): unknown {
  const value = valueAtPath(record, path);
  if (value === undefined) throw new Error(`the stream record has nothing at ${path}`);
  return value;
}

/**
 * Fills the template's placeholders from the record. As in Pipes, a placeholder inside a JSON
 * string ("<$.x>") takes the value's text, escaped for that string; one standing on its own
 * takes the value as JSON.
 */
export function renderInputTemplate(template: string, record: unknown): string {
  return template.replace(PLACEHOLDER, (match: string, path: string, offset: number) => {
    const value = requireValue(record, path);
    const quoted = template[offset - 1] === '"' && template[offset + match.length] === '"';
    if (!quoted) return JSON.stringify(value);
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    return JSON.stringify(text).slice(1, -1);
  });
}

/** The pipe's filter: true for the stream records it passes on (inserts of event items). */
export function pipeAccepts(record: unknown): boolean {
  // The filter is declared `as const`, so its arrays are readonly tuples: still an EventPattern.
  const pattern: EventPattern = PIPE_FILTER_PATTERN;
  return matchesPattern(pattern, record);
}

/**
 * The body of the message the pipe sends to the fan-out queue for one stream record (as Lambda
 * and Pipes see it: `eventName`, `dynamodb.NewImage` in attribute-value JSON) that passed the
 * filter: the rendered PIPE_INPUT_TEMPLATE, as the queue holds it.
 */
export function pipeMessageBody(record: unknown): string {
  return renderInputTemplate(PIPE_INPUT_TEMPLATE, record);
}

/** The EventRef the fan-out reads from that body (FanoutMessage, as its handler parses it). */
export function applyPipeTransform(record: unknown): EventRef {
  return FanoutMessage.parse(JSON.parse(pipeMessageBody(record)));
}
