/**
 * The worker thread that checks and evaluates partners' JSONata expressions (transformer.ts
 * starts it; in a Lambda bundle it is a bundle of its own, so JSONata is in no function's main
 * bundle). It runs beside the event loop with its own small heap: an expression that loops,
 * recurses or builds a huge value is stopped by JSONata's own guards (time, depth, sequence
 * length), and failing those by the thread's memory limit or by the transformer terminating it.
 *
 * A check refuses what could run unbounded inside one step, where JSONata's time guard cannot
 * look: a regular expression (backtracking) and `$eval` (an expression made at run time).
 */
import { parentPort } from 'node:worker_threads';
import jsonata from 'jsonata';
import {
  EVALUATION_LIMITS,
  MAX_EXPRESSION_CHARS,
  MAX_MESSAGE_CHARS,
  READY,
  type WorkerReply,
  WorkerRequest,
} from './limits.ts';

const port = parentPort;
if (port === null) throw new Error('worker.ts runs as a worker thread');

/** Compiled expressions, the most recent last (a subscription's expression is used over and over). */
const compiled = new Map<string, jsonata.Expression>();
const MAX_COMPILED = 200;

function compile(expression: string): jsonata.Expression {
  const known = compiled.get(expression);
  if (known !== undefined) {
    compiled.delete(expression);
    compiled.set(expression, known);
    return known;
  }
  const made = jsonata(expression, {
    timeout: EVALUATION_LIMITS.timeoutMs,
    stack: EVALUATION_LIMITS.stackDepth,
    sequence: EVALUATION_LIMITS.sequenceLength,
  });
  compiled.set(expression, made);
  if (compiled.size > MAX_COMPILED) compiled.delete(compiled.keys().next().value ?? '');
  return made;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/** An error's message, cut short: an expression can make one as long as it likes (`$error`). */
function messageOf(error: unknown): string {
  const message = isRecord(error) && typeof error.message === 'string' ? error.message : String(error);
  return message.length <= MAX_MESSAGE_CHARS ? message : `${message.slice(0, MAX_MESSAGE_CHARS)}…`;
}

/** The first part of a parsed expression that is refused, depth first. */
function refusedPart(node: unknown): { issue: string; position?: number } | undefined {
  if (Array.isArray(node)) {
    for (const child of node) {
      const found = refusedPart(child);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (!isRecord(node)) return undefined;
  const position = typeof node.position === 'number' ? { position: node.position } : {};
  if (node.type === 'regex')
    return { issue: 'regular expressions are not allowed: match with strings instead', ...position };
  if (node.type === 'variable' && node.value === 'eval')
    return { issue: '$eval is not allowed: write the expression itself', ...position };
  for (const [key, value] of Object.entries(node)) {
    if (key === 'position' || key === 'value') continue;
    const found = refusedPart(value);
    if (found !== undefined) return found;
  }
  return undefined;
}

function check(id: number, expression: string): WorkerReply {
  if (expression.length > MAX_EXPRESSION_CHARS)
    return { id, issue: `at most ${MAX_EXPRESSION_CHARS} characters` };
  try {
    const refused = refusedPart(compile(expression).ast());
    return refused === undefined ? { id, allowed: true } : { id, ...refused };
  } catch (error) {
    const position =
      isRecord(error) && typeof error.position === 'number' ? { position: error.position } : {};
    return { id, issue: messageOf(error), ...position };
  }
}

async function evaluate(id: number, expression: string, input: unknown): Promise<WorkerReply> {
  try {
    const result: unknown = await compile(expression).evaluate(input);
    if (result === undefined) return { id, error: 'the expression gave no result' };
    // A JSONata function is an object marked _jsonata_lambda (or a native function).
    if (typeof result === 'function' || (isRecord(result) && '_jsonata_lambda' in result))
      return { id, error: 'the expression gave a function, not JSON' };
    let body: string;
    try {
      body = JSON.stringify(result);
    } catch {
      return { id, error: 'the result is not JSON (it holds a function or refers to itself)' };
    }
    const bytes = Buffer.byteLength(body);
    if (bytes > EVALUATION_LIMITS.maxOutputBytes)
      return {
        id,
        error: `the result is ${bytes} bytes; at most ${EVALUATION_LIMITS.maxOutputBytes} are allowed`,
      };
    return { id, body };
  } catch (error) {
    return { id, error: messageOf(error) };
  }
}

port.on('message', (message: unknown) => {
  const request = WorkerRequest.safeParse(message);
  if (!request.success) return;
  const { data } = request;
  if (data.kind === 'check') port.postMessage(check(data.id, data.expression));
  else void evaluate(data.id, data.expression, data.input).then((reply) => port.postMessage(reply));
});
port.postMessage(READY);
