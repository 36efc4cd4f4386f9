/** Errors only HTTP knows: a path no route takes, a method a route does not, a body's media type. */
import { DomainError } from '../core/errors.ts';

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
