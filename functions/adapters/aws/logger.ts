/**
 * Structured JSON logs with Powertools: one logger per function, the Lambda context on every
 * line, and a correlation id (the API request id) on the lines of the API and its authorizer.
 */
import { Logger } from '@aws-lambda-powertools/logger';

/** A property path such as `requestContext.requestId`. */
const DOTTED_PATH = /^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*$/;

/**
 * Reads a correlation id at a dotted path, which every correlation path the functions use
 * is. Powertools' own `search` evaluates JMESPath for the same result, and importing its
 * engine costs every cold start several milliseconds. Any other expression is refused loudly
 * rather than leaving the correlation id out.
 */
export function searchDottedPath(expression: string, data: unknown): unknown {
  if (!DOTTED_PATH.test(expression))
    throw new Error(`correlation id path "${expression}": only dotted property paths are supported`);
  let value = data;
  for (const key of expression.split('.')) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

/**
 * Where an API Gateway HTTP API event carries its request id: Powertools'
 * `correlationPaths.API_GATEWAY_HTTP`, whose module would bring the JMESPath engine along.
 */
export const API_REQUEST_ID_PATH = 'requestContext.requestId';

export const logger = new Logger({ correlationIdSearchFn: searchDottedPath });

/** The `log` callback the handlers take, writing through the logger. */
export function logError(message: string, error: unknown): void {
  logger.error(message, error instanceof Error ? error : String(error));
}
