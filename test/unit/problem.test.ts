import { describe, expect, it } from 'vitest';
import { IdempotencyKeyInProgressError } from '../../functions/adapters/aws/events.ts';
import { toProblemResponse } from '../../functions/api/problem.ts';
import {
  CursorNotFoundError,
  DeliveriesNotQueuedError,
  SubscriptionLimitError,
  TooManyRequestsError,
} from '../../functions/core/errors.ts';

describe('toProblemResponse', () => {
  it('answers a publish whose idempotency key another publish is still writing with 503 and Retry-After', () => {
    const response = toProblemResponse(
      new IdempotencyKeyInProgressError('order-42'),
      '/v1/events',
      undefined,
      () => {},
    );
    expect(response.statusCode).toBe(503);
    expect(response.headers).toMatchObject({
      'content-type': 'application/problem+json',
      'retry-after': '1',
    });
  });

  it('answers deliveries that could not be queued with 503 and Retry-After, logging the cause', () => {
    const logged: unknown[] = [];
    const cause = new Error('queue unreachable');
    const response = toProblemResponse(
      new DeliveriesNotQueuedError(2, 5, cause),
      '/v1/subscriptions/sub_1/replay',
      undefined,
      (_message, error) => logged.push(error),
    );
    expect(logged).toMatchObject([{ cause }]);
    expect(response.statusCode).toBe(503);
    expect(response.headers).toMatchObject({ 'retry-after': '1' });
    expect(JSON.parse(String(response.body)).detail).toBe(
      '2 of 5 deliveries could not be queued; try again in 1 s',
    );
  });

  it('asks a replay that could not be queued to come back once its allowance reopens', () => {
    const response = toProblemResponse(
      new DeliveriesNotQueuedError(1, 1, new Error('queue unreachable'), 10),
      '/v1/subscriptions/sub_1/replay',
      undefined,
      () => {},
    );
    expect(response.statusCode).toBe(503);
    expect(response.headers).toMatchObject({ 'retry-after': '10' });
  });

  it('answers a rate-limited action asked too often with 429 and Retry-After', () => {
    const response = toProblemResponse(
      new TooManyRequestsError('replay is allowed once per 10 s', 7.2),
      '/v1/subscriptions/sub_1/replay',
    );
    expect(response.statusCode).toBe(429);
    expect(response.headers).toMatchObject({
      'content-type': 'application/problem+json',
      'retry-after': '8',
    });
    expect(JSON.parse(String(response.body))).toMatchObject({
      type: 'urn:webhook-dispatcher:problem:too-many-requests',
      status: 429,
    });
  });

  it('answers a partner at its cap of subscriptions with 409 naming the limit', () => {
    const response = toProblemResponse(new SubscriptionLimitError(100), '/v1/subscriptions');
    expect(response.statusCode).toBe(409);
    expect(JSON.parse(String(response.body))).toMatchObject({
      type: 'urn:webhook-dispatcher:problem:subscription-limit-reached',
      detail: expect.stringContaining('at most 100 subscriptions'),
    });
  });

  it('qualifies a use case’s field with where the request carried it', () => {
    const response = toProblemResponse(new CursorNotFoundError('evt_x'), '/v1/events', 'query');
    expect(JSON.parse(String(response.body)).errors).toEqual([
      { field: 'query.after', message: 'must be the id of one of your events' },
    ]);
  });

  it('logs an unknown error and answers 500 without its details', () => {
    const logged: unknown[] = [];
    const response = toProblemResponse(new Error('secret internals'), '/v1/events', undefined, (_m, e) =>
      logged.push(e),
    );
    expect(response.statusCode).toBe(500);
    expect(String(response.body)).not.toContain('secret internals');
    expect(logged).toHaveLength(1);
  });
});
