/**
 * Recovery of the pipe's dead letters: invoked by ops (console "Test", or
 * `aws lambda invoke --function-name <RecoveryFunctionName>`) once the cause of the pipe's
 * failures is fixed; it empties the pipe's dead-letter queue, sending the events its batches
 * held to the fan-out queue again, and answers what it did.
 */
import middy from '@middy/core';
import { type RecoveryDeps, type RecoveryReport, recoverPipeDeadLetters } from '../core/recovery.ts';

export function createRecoveryHandler(deps: RecoveryDeps, budgetMs: number) {
  return middy<unknown, RecoveryReport>().handler(() => recoverPipeDeadLetters(deps, budgetMs));
}
