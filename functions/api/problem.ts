/**
 * The one place where errors become HTTP responses: RFC 9457 problem+json, naming the field at
 * fault. Unknown errors are logged and answered with a 500 that says so, never an empty body.
 */
import type { MiddlewareObj } from '@middy/core';
import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import type { z } from 'zod';
import {
  DomainError,
  ServiceUnavailableError,
  TooManyRequestsError,
  ValidationError,
} from '../core/errors.ts';
import { MethodNotAllowedError } from './errors.ts';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  errors?: { field: string; message: string }[];
}

function slug(title: string): string {
  return title.toLowerCase().replace(/[^a-z0-9]+/g, '-');
}

export function problemResponse(
  problem: Problem,
  headers: Record<string, string> = {},
): APIGatewayProxyStructuredResultV2 {
  return {
    statusCode: problem.status,
    headers: { 'content-type': PROBLEM_CONTENT_TYPE, ...headers },
    body: JSON.stringify(problem),
  };
}

/** Turns zod issues into a ValidationError naming each field, prefixed by where it was (body, query). */
export function validationErrorFrom(error: z.ZodError, where: string): ValidationError {
  // An index as JavaScript writes it: `body.events[1].type`, `body.filter.amount[0]`.
  const named = (path: readonly PropertyKey[]) =>
    where + path.map((part) => (typeof part === 'number' ? `[${part}]` : `.${String(part)}`)).join('');
  const errors = error.issues.flatMap((issue) =>
    // A field the request may not carry is named itself, not the object around it.
    issue.code === 'unrecognized_keys'
      ? issue.keys.map((key) => ({
          field: named([...issue.path, key]),
          message: 'is not a field of this request',
        }))
      : [{ field: named(issue.path), message: issue.message }],
  );
  const first = errors[0];
  const detail = first ? `${first.field}: ${first.message}` : `invalid ${where}`;
  return new ValidationError(
    errors.length > 1 ? `${detail} (and ${errors.length - 1} more)` : detail,
    errors,
  );
}

/** Where a request carried its input: a field named by a use case is qualified with it. */
export type InputLocation = 'body' | 'query';

/**
 * `where` is an input location, or a place inside one (`body.events[3]` for an entry of a
 * batch); a field already named from the request's top (`body.…`, `query.…`, `path.…`) stays as it is.
 */
function qualify(field: string, where: string | undefined): string {
  if (where === undefined || /^(body|query|path)(\.|\[|$)/.test(field)) return field;
  return `${where}.${field}`;
}

type Log = (message: string, error: unknown) => void;

const logToConsole: Log = (message, error) => console.error(message, error);

/**
 * Maps any thrown value to a problem and the headers that go with it (Allow, Retry-After);
 * errors of the server's side (5xx) are logged.
 */
export function toProblem(
  error: unknown,
  instance: string | undefined,
  where?: string,
  log: Log = logToConsole,
): { problem: Problem; headers: Record<string, string> } {
  if (error instanceof DomainError) {
    // The client is told to try again, but the cause (a queue or table failing) is ops' to see.
    if (error.status >= 500) log(`${error.title}: ${error.message}`, error);
    const errors = error.errors.map((e) => ({ field: qualify(e.field, where), message: e.message }));
    const problem: Problem = {
      type: `urn:webhook-dispatcher:problem:${slug(error.title)}`,
      title: error.title,
      status: error.status,
      detail: error.message,
      ...(instance === undefined ? {} : { instance }),
      ...(errors.length > 0 ? { errors } : {}),
    };
    const headers: Record<string, string> =
      error instanceof MethodNotAllowedError
        ? { allow: error.allowed.join(', ') }
        : error instanceof ServiceUnavailableError || error instanceof TooManyRequestsError
          ? { 'retry-after': String(error.retryAfterSeconds) }
          : {};
    return { problem, headers };
  }
  log('unhandled error', error);
  const problem: Problem = {
    type: 'urn:webhook-dispatcher:problem:internal-error',
    title: 'Internal error',
    status: 500,
    detail: 'the request could not be completed; it has been logged',
    ...(instance === undefined ? {} : { instance }),
  };
  return { problem, headers: {} };
}

/** Maps any thrown value to a problem response. */
export function toProblemResponse(
  error: unknown,
  instance: string | undefined,
  where?: InputLocation,
  log: Log = logToConsole,
): APIGatewayProxyStructuredResultV2 {
  const { problem, headers } = toProblem(error, instance, where, log);
  return problemResponse(problem, headers);
}

interface HttpEventLike {
  rawPath?: string;
  requestContext?: { http?: { method?: string }; requestId?: string };
}

/** Middy middleware: every error thrown by the handler leaves as problem+json; unknown ones are logged. */
export function problemJson(log?: Log): MiddlewareObj<HttpEventLike, APIGatewayProxyStructuredResultV2> {
  return {
    name: 'problemJson',
    onError: (request) => {
      const method = request.event.requestContext?.http?.method ?? 'GET';
      const where = method === 'GET' || method === 'DELETE' ? 'query' : 'body';
      const requestId = request.event.requestContext?.requestId;
      // The log line names the request, as the answer's x-request-id header does.
      const logged: Log = (message, error) =>
        (log ?? logToConsole)(requestId === undefined ? message : `${message} (request ${requestId})`, error);
      request.response = toProblemResponse(request.error, request.event.rawPath, where, logged);
    },
  };
}
