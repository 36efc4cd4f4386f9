/**
 * What a callback costs once the stack builds the deliveries indexes as their definition asks
 * (keys only, functions/adapters/aws/tables.ts): the same measurement as dynamodb-cost.test.ts
 * on tables with those projections. A try then writes no index entry.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { CostReport } from '../../cost/report.ts';
import { measureCost } from '../../cost/run.ts';
import { localEndpoint } from '../dynamodb-local/tables.ts';

describe('the cost of a callback, with the indexes the table definitions ask for', () => {
  let report: CostReport;

  beforeAll(async () => {
    report = await measureCost(localEndpoint(), { projections: 'definitions', pollWaitSeconds: 1 });
  }, 180_000);

  it('writes the delivery once, when its first try stores it, and its one index entry: two units a callback in all', () => {
    for (const s of report.scenarios.filter((x) => x.name !== 'ordered')) {
      const writes = s.writeUnitsPerCallback;
      expect(writes.Deliveries, s.name).toBe(1);
      expect(writes['Deliveries/bySubscription'], s.name).toBe(1);
      // An event's deliveries are listed from their partition: the byEvent index is not written.
      expect(writes['Deliveries/byEvent'], s.name).toBeUndefined();
      expect(s.callbacks, s.name).toBe(100);
      expect(s.failedConditions + s.failedTransactions, s.name).toBe(0);
    }
  });

  it('writes eleven units a callback to the deliveries table for an ordered subscription, as docs/cost.md says', () => {
    const ordered = report.scenarios.find((s) => s.name === 'ordered');
    // Stored by fan-out, the gate moved, the entry put, the head claimed (a transaction with a
    // check of its entry: four), the try taken, the attempt recorded, the entry and the head
    // removed.
    expect(ordered?.writeUnitsPerCallback.Deliveries).toBe(11);
    expect(ordered?.writeUnitsPerCallback['Deliveries/bySubscription']).toBe(1);
    expect(ordered?.callbacks).toBe(100);
  });
});
