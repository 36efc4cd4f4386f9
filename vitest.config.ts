import { defineConfig } from 'vitest/config';

/**
 * Four projects, which `npm test` runs together and `npm run test:<name>` one at a time:
 * - unit: pure code, in-memory SQLite and local HTTP; seconds, nothing to start;
 * - model: the capacity simulation of the AWS pipeline at scale (npm run capacity);
 * - contract: the adapters on SQLite files and on DynamoDB Local (one Java process for the
 *   run, started by the global setup; the DynamoDB suites are never skipped), and the AWS path
 *   from the events table's stream to fan-out;
 * - e2e: the local runtime driven over HTTP, with real receivers on 127.0.0.1;
 * - cdk: the synthesized stacks, their IAM and cdk-nag.
 */
const dynamodbLocal = ['test/dynamodb-local/global-setup.ts'];

export default defineConfig({
  test: {
    testTimeout: 20_000,
    hookTimeout: 30_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['test/unit/**/*.test.ts', 'test/http/**/*.test.ts'] },
      },
      { extends: true, test: { name: 'model', include: ['test/model/**/*.test.ts'] } },
      {
        extends: true,
        test: {
          name: 'contract',
          include: ['test/contract/**/*.test.ts', 'test/aws/**/*.test.ts'],
          globalSetup: dynamodbLocal,
        },
      },
      { extends: true, test: { name: 'e2e', include: ['test/e2e/**/*.test.ts'] } },
      { extends: true, test: { name: 'cdk', include: ['test/cdk/**/*.test.ts'] } },
    ],
  },
});
