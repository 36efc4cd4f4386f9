import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../functions/adapters/sqlite/database.ts';
import { SqliteEventLog } from '../../functions/adapters/sqlite/events.ts';
import { listEvents, MAX_PAGE_BYTES } from '../../functions/core/events.ts';
import { newId } from '../../functions/core/ids.ts';

describe('listEvents', () => {
  it('ends a page before its JSON passes the response limit, resuming from there without a skip', async () => {
    const events = new SqliteEventLog(openDatabase(':memory:'));
    const partnerId = newId('ptr');
    const big = 'x'.repeat(250 * 1024);
    const ids: string[] = [];
    for (let i = 0; i < 25; i++) {
      const { event } = await events.append({
        partnerId,
        type: 'file.uploaded',
        payload: { big },
        createdAt: new Date().toISOString(),
      });
      ids.push(event.id);
    }

    const first = await listEvents({ events }, partnerId, { limit: 100 });
    expect(first.data.length).toBeLessThan(25);
    expect(Buffer.byteLength(JSON.stringify(first.data))).toBeLessThanOrEqual(MAX_PAGE_BYTES);
    expect(first.next).toBe(first.data.at(-1)?.id);

    const rest = await listEvents({ events }, partnerId, { limit: 100, after: first.next ?? '' });
    expect([...first.data, ...rest.data].map((e) => e.id)).toEqual(ids);
  });
});
