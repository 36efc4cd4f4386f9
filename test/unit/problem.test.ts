import { describe, expect, it } from 'vitest';
import { SequenceContentionError } from '../../functions/adapters/aws/events.ts';
import { toProblemResponse } from '../../functions/api/problem.ts';
import { CursorNotFoundError } from '../../functions/core/errors.ts';

describe('toProblemResponse', () => {
  it('answers a burst of appends that lost the race for the sequence with 503 and Retry-After', () => {
    const response = toProblemResponse(new SequenceContentionError('ptr_1', 40), '/v1/events');
    expect(response.statusCode).toBe(503);
    expect(response.headers).toMatchObject({
      'content-type': 'application/problem+json',
      'retry-after': '1',
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
