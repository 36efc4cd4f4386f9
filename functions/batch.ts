import type { SQSBatchResponse, SQSRecord } from 'aws-lambda';

export type Log = (message: string, error: unknown) => void;

/**
 * Runs `process` on every record of an SQS batch concurrently and reports partial failures:
 * a record fails when `process` throws or returns false, and only failed records are retried.
 */
export async function processBatch(
  records: readonly SQSRecord[],
  process: (record: SQSRecord) => Promise<boolean>,
  log: Log,
): Promise<SQSBatchResponse> {
  const results = await Promise.allSettled(records.map(process));
  const batchItemFailures: SQSBatchResponse['batchItemFailures'] = [];
  results.forEach((result, i) => {
    const record = records[i];
    if (!record) return;
    if (result.status === 'rejected') log(`message ${record.messageId} failed`, result.reason);
    if (result.status === 'rejected' || !result.value)
      batchItemFailures.push({ itemIdentifier: record.messageId });
  });
  return { batchItemFailures };
}
