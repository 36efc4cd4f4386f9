/**
 * Named errors of the domain. Each carries the HTTP status and problem type it maps to; the
 * mapping to a problem+json response happens in one place (functions/api/problem.ts).
 */
export abstract class DomainError extends Error {
  abstract readonly status: number;
  abstract readonly title: string;
  /** The request field at fault, when there is one. */
  readonly field: string | undefined;

  constructor(message: string, field?: string) {
    super(message);
    this.name = new.target.name;
    this.field = field;
  }
}

export class ValidationError extends DomainError {
  readonly status = 400;
  readonly title = 'Invalid request';
  readonly errors: { field: string; message: string }[];

  constructor(message: string, errors: { field: string; message: string }[] = []) {
    super(message, errors[0]?.field);
    this.errors = errors;
  }
}

export class UnauthorizedError extends DomainError {
  readonly status = 401;
  readonly title = 'Unauthorized';
}

export class NotFoundError extends DomainError {
  readonly status = 404;
  readonly title = 'Not found';
}

export class PartnerNotFoundError extends NotFoundError {
  constructor(id: string) {
    super(`partner ${id} not found`, 'partnerId');
  }
}

export class EventNotFoundError extends NotFoundError {
  constructor(id: string) {
    super(`event ${id} not found`);
  }
}

export class SubscriptionNotFoundError extends NotFoundError {
  constructor(id: string) {
    super(`subscription ${id} not found`);
  }
}

export class CursorNotFoundError extends ValidationError {
  constructor(cursor: string) {
    super(`cursor ${cursor} is not one of your events`, [
      { field: 'after', message: 'must be the id of one of your events' },
    ]);
  }
}

/** A callback URL the target policy forbids (scheme, or an address that is not public). */
export class ForbiddenTargetError extends ValidationError {
  constructor(reason: string, field = 'url') {
    super(`target not allowed: ${reason}`, [{ field, message: reason }]);
  }
}

export class PayloadTooLargeError extends DomainError {
  readonly status = 413;
  readonly title = 'Payload too large';
}

export class RouteNotFoundError extends DomainError {
  readonly status = 404;
  readonly title = 'Not found';
}

export class MethodNotAllowedError extends DomainError {
  readonly status = 405;
  readonly title = 'Method not allowed';
  readonly allowed: string[];

  constructor(method: string, path: string, allowed: string[]) {
    super(`${method} is not allowed on ${path}; allowed: ${allowed.join(', ')}`);
    this.allowed = allowed;
  }
}

export class UnsupportedMediaTypeError extends DomainError {
  readonly status = 415;
  readonly title = 'Unsupported media type';
}
