/**
 * Structured JSON logs with Powertools: one logger per function, the Lambda context and a
 * correlation id (the API request id, or the SQS message id) on every line.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { search } from '@aws-lambda-powertools/logger/correlationId';

export const logger = new Logger({ correlationIdSearchFn: search });

/** The `log` callback the handlers take, writing through the logger. */
export function logError(message: string, error: unknown): void {
  logger.error(message, error instanceof Error ? error : String(error));
}
