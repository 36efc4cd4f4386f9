/**
 * A page of deliveries with their attempts: read a few deliveries at a time, and cut short
 * before its JSON would pass what a Lambda function may answer, resuming where it stopped.
 */
import { describe, expect, it } from 'vitest';
import { MAX_DELIVERY_PAGE_BYTES, withAttempts } from '../../functions/core/attempt-log.ts';
import type { Attempt } from '../../functions/core/model.ts';
import { id, makeAttempt, makeDelivery, makeEvent } from '../contract/fixtures.ts';

describe('withAttempts', () => {
  it('reads 25 deliveries’ attempts at a time, and ends a page of a thousand before 5 MiB', async () => {
    const event = makeEvent(id('ptr'));
    const deliveries = Array.from({ length: 1000 }, () => makeDelivery(event, id('sub')));
    let reading = 0;
    let most = 0;
    const store = {
      async listAttempts(deliveryId: string): Promise<Attempt[]> {
        reading++;
        most = Math.max(most, reading);
        await new Promise((resolve) => setImmediate(resolve));
        reading--;
        const delivery = deliveries.find((d) => d.id === deliveryId);
        if (delivery === undefined) throw new Error('no such delivery');
        return Array.from({ length: 9 }, () => makeAttempt(delivery, { responseExcerpt: 'x'.repeat(1000) }));
      },
    };
    const page = await withAttempts(store, { items: deliveries, next: 'the-store-next' });

    expect(most).toBe(25);
    expect(page.items.length).toBeLessThan(1000);
    expect(Buffer.byteLength(JSON.stringify(page.items))).toBeLessThanOrEqual(MAX_DELIVERY_PAGE_BYTES);
    expect(page.next).toBe(page.items.at(-1)?.id);
    expect(page.items.map((d) => d.id)).toEqual(deliveries.slice(0, page.items.length).map((d) => d.id));

    const small = await withAttempts(store, { items: deliveries.slice(0, 3), next: null });
    expect(small).toEqual({ items: expect.any(Array), next: null });
    expect(small.items).toHaveLength(3);
  });
});
