/**
 * Named errors of the domain. Each carries the HTTP status and problem type it maps to; the
 * mapping to a problem+json response happens in one place (functions/api/problem.ts).
 */
export interface FieldError {
  /**
   * The input field at fault, as the use case names it (`url`, `after`); the HTTP layer
   * qualifies it with where the request carried it (`body.url`, `query.after`).
   */
  field: string;
  message: string;
}

export abstract class DomainError extends Error {
  abstract readonly status: number;
  abstract readonly title: string;
  /** The fields at fault, when the error is about particular ones. */
  readonly errors: FieldError[];

  constructor(message: string, errors: FieldError[] = [], options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.errors = errors;
  }
}

export class ValidationError extends DomainError {
  readonly status = 400;
  readonly title = 'Invalid request';
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
    super(`partner ${id} not found`, [{ field: 'partnerId', message: 'no such partner' }]);
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

export class ConflictError extends DomainError {
  readonly status = 409;
  readonly title = 'Conflict';
}

/** A partner action that needs an active subscription, asked of a disabled one. */
export class SubscriptionDisabledError extends ConflictError {
  constructor(id: string) {
    super(`subscription ${id} is disabled: PATCH it with {"status":"active"} first`);
  }
}

/** An idempotency key sent again with a different event. */
export class IdempotencyKeyReusedError extends ConflictError {
  constructor(key: string, eventId: string) {
    super(
      `idempotency key ${key} was used for event ${eventId}, with another type, payload or ordering key`,
      [{ field: 'idempotencyKey', message: 'already used for a different event' }],
    );
  }
}

/** A conditional write found the item changed since it was read. */
export class StaleWriteError extends ConflictError {}

/** A transient overload: the client should try again shortly (503 with Retry-After). */
export class ServiceUnavailableError extends DomainError {
  readonly status = 503;
  readonly title = 'Service unavailable';
  readonly retryAfterSeconds: number = 1;
}

/**
 * Deliveries a partner asked for (redelivery, replay, test) whose queue messages could not all
 * be sent. Those not queued were ended `skipped` ('not queued'); the partner tries again.
 */
export class DeliveriesNotQueuedError extends ServiceUnavailableError {
  override readonly retryAfterSeconds: number;

  /** `retryAfterSeconds`: when asking again will be allowed (a replay's allowance is spent). */
  constructor(unsent: number, total: number, cause: unknown, retryAfterSeconds = 1) {
    super(`${unsent} of ${total} deliveries could not be queued; try again in ${retryAfterSeconds} s`, [], {
      cause,
    });
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** A partner at its cap of subscriptions asked for one more. */
export class SubscriptionLimitError extends DomainError {
  readonly status = 409;
  readonly title = 'Subscription limit reached';
  readonly limit: number;

  constructor(limit: number) {
    super(`a partner may have at most ${limit} subscriptions: delete one before creating another`);
    this.limit = limit;
  }
}

/** A transformation gave no body for the event (an error, a result too large, too long). */
export class TransformationFailedError extends DomainError {
  readonly status = 422;
  readonly title = 'Transformation failed';

  constructor(reason: string) {
    super(`the transformation gave no body: ${reason}`, [{ field: 'transformation', message: reason }]);
  }
}

export class ApiKeyNotFoundError extends NotFoundError {
  constructor(id: string) {
    super(`API key ${id} not found`);
  }
}

/** A partner at its cap of API keys asked for one more. */
export class ApiKeyLimitError extends DomainError {
  readonly status = 409;
  readonly title = 'API key limit reached';

  constructor(limit: number) {
    super(`a partner may have at most ${limit} API keys: revoke one before creating another`);
  }
}

/** A partner asked to revoke its only key, which would lock it out. */
export class LastApiKeyError extends ConflictError {
  constructor() {
    super('this is your only API key: create another before revoking it');
  }
}

export class ConsumerNotFoundError extends NotFoundError {
  constructor(name: string) {
    super(`consumer ${name} not found: PUT /v1/consumers/${name} to create it`);
  }
}

/** A partner at its cap of consumers asked for one more. */
export class ConsumerLimitError extends DomainError {
  readonly status = 409;
  readonly title = 'Consumer limit reached';

  constructor(limit: number) {
    super(`a partner may have at most ${limit} consumers: delete one before creating another`);
  }
}

/**
 * A consumer behind the retention: events after its position have expired, so reading on
 * would skip them unseen. The partner moves it (a seek) to go on.
 */
export class ConsumerPositionExpiredError extends DomainError {
  readonly status = 410;
  readonly title = 'Consumer position expired';

  constructor(name: string, eventId: string) {
    super(
      `consumer ${name} is at ${eventId}, and events after it have expired unread (older than the retention). ` +
        `Move it with PUT /v1/consumers/${name} and a start (earliest, latest or an event id).`,
    );
  }
}

/** A rate-limited action asked for too often (429 with Retry-After). */
export class TooManyRequestsError extends DomainError {
  readonly status = 429;
  readonly title = 'Too many requests';
  readonly retryAfterSeconds: number;

  constructor(message: string, retryAfterSeconds: number) {
    super(message);
    this.retryAfterSeconds = Math.max(1, Math.ceil(retryAfterSeconds));
  }
}

/** Some messages of a QueueSender.send were not sent; the others were. */
export class MessagesNotSentError extends Error {
  /** Positions, in the array given to `send`, of the messages not sent. */
  readonly unsent: readonly number[];

  constructor(message: string, unsent: readonly number[], options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.unsent = unsent;
  }
}

/** A queue name the deployment has no queue by (or no dead-letter queue, where one is needed). */
export class QueueNotFoundError extends NotFoundError {
  constructor(name: string, known: readonly string[]) {
    super(`no such queue: ${name} (the queues here: ${known.join(', ')})`, [
      { field: 'path.queue', message: `must be one of ${known.join(', ')}` },
    ]);
  }
}

/** A redrive of a queue asked for while another one of it is still running. */
export class RedriveInProgressError extends ConflictError {
  constructor(queue: string, taskId: string) {
    super(`a redrive of ${queue} is already running (${taskId}): wait for it, or cancel it`);
  }
}

/** A redrive asked to stop that is not running (finished, or unknown). */
export class RedriveNotFoundError extends NotFoundError {
  constructor(queue: string, taskId: string) {
    super(`no running redrive ${taskId} of ${queue}`);
  }
}

/** A purge of a queue asked for while the last one is still running: SQS allows one a minute per queue. */
export class PurgeInProgressError extends ConflictError {
  constructor(queue: string) {
    super(
      `${queue} was purged less than a minute ago: SQS allows one purge a minute per queue; try again shortly`,
    );
  }
}
