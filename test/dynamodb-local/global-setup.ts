/**
 * Vitest global setup: one DynamoDB Local for the whole run, its endpoint handed to the tests
 * through `inject('dynamodbLocalEndpoint')`. It always runs, so the DynamoDB suites are never
 * skipped: without Java or without the jar, the run fails and says why.
 */
import type { TestProject } from 'vitest/node';
import { ensureDynamoDbLocal } from './install.ts';
import { startDynamoDbLocal } from './server.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** http://127.0.0.1:<port> of the run's DynamoDB Local. */
    dynamodbLocalEndpoint: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const emulatorDir = await ensureDynamoDbLocal();
  const server = await startDynamoDbLocal(emulatorDir);
  project.provide('dynamodbLocalEndpoint', server.endpoint);
  return () => server.stop();
}
