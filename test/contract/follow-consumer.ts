/**
 * A reader following a consumer while writers append, as a partner's would: read the page
 * after the consumer's position, keep its events, acknowledge its `next`; until a page read
 * after the writers finished comes back empty and moves the position no further.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ackConsumer, type ConsumerDeps, putConsumer, readConsumer } from '../../functions/core/consumers.ts';

export async function followConsumer(
  deps: ConsumerDeps,
  partnerId: string,
  options: { limit: number; writersDone: () => boolean; types?: string[] },
): Promise<{ seen: string[]; pagesWhileWriting: number }> {
  await putConsumer(deps, partnerId, 'follower', { start: 'earliest', types: options.types });
  const seen: string[] = [];
  let pagesWhileWriting = 0;
  let acked: string | undefined;
  for (;;) {
    const done = options.writersDone();
    const page = await readConsumer(deps, partnerId, 'follower', { limit: options.limit });
    if (page.data.length === 0) {
      // Past the events its types leave out, as a reader acknowledging `next` goes. A page that
      // moved the position on may have more after it: only one that moves nothing shows the end.
      if (page.next !== null && page.next !== acked) {
        await ackConsumer(deps, partnerId, 'follower', page.next);
        acked = page.next;
        continue;
      }
      if (done) return { seen, pagesWhileWriting };
      await sleep(2);
      continue;
    }
    if (!done) pagesWhileWriting++;
    seen.push(...page.data.map((e) => e.id));
    // Every other page is read twice before its ack: an unacknowledged page comes again, the same.
    if (seen.length % 2 === 0) {
      const again = await readConsumer(deps, partnerId, 'follower', { limit: options.limit });
      if (again.data[0]?.id !== page.data[0]?.id) throw new Error('an unacknowledged page moved');
    }
    await ackConsumer(deps, partnerId, 'follower', page.next ?? '');
    acked = page.next ?? undefined;
  }
}
