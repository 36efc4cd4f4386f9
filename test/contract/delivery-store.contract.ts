/** The DeliveryStore contract: every adapter runs this suite (see sqlite.test.ts). */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { eventTag } from '../../functions/core/fanout.ts';
import type { Delivery } from '../../functions/core/model.ts';
import type { DeliveryStore } from '../../functions/core/ports.ts';
import { at, id, makeAttempt, makeDelivery, makeEvent } from './fixtures.ts';

export interface DeliveryStoreSubject {
  deliveries: DeliveryStore;
  close(): Promise<void>;
}

export function deliveryStoreContract(name: string, make: () => Promise<DeliveryStoreSubject>): void {
  describe(`DeliveryStore contract: ${name}`, () => {
    let subject: DeliveryStoreSubject;
    let deliveries: DeliveryStore;
    const partnerId = id('ptr');
    const subscriptionId = id('sub');
    const otherSubscriptionId = id('sub');

    beforeEach(async () => {
      subject = await make();
      deliveries = subject.deliveries;
    });

    afterEach(async () => {
      await subject.close();
    });

    /** One delivery per event for `subscriptionId`, created a second apart (ids sort likewise). */
    function series(count: number): Delivery[] {
      return Array.from({ length: count }, (_, i) =>
        // A fan-out delivery's id carries its event's time.
        makeDelivery(makeEvent(partnerId, { id: id('evt', Date.parse(at(i))) }), subscriptionId, {
          createdAt: at(i),
          updatedAt: at(i),
        }),
      );
    }

    /** The port takes one event's deliveries per call. */
    async function createEach(items: Delivery[]): Promise<void> {
      for (const item of items) await deliveries.createForEvent([item]);
    }

    describe('createForEvent', () => {
      it('creates every delivery and returns them as stored', async () => {
        const event = makeEvent(partnerId);
        const batch = [makeDelivery(event, subscriptionId), makeDelivery(event, otherSubscriptionId)];

        expect(await deliveries.createForEvent(batch)).toEqual(batch);
        for (const delivery of batch) expect(await deliveries.get(delivery.id)).toEqual(delivery);
      });

      it('creates no duplicate for an (event, subscription) pair, returning the existing one unchanged', async () => {
        const event = makeEvent(partnerId);
        const original = makeDelivery(event, subscriptionId);
        await deliveries.createForEvent([original]);
        await deliveries.recordAttempt(makeAttempt(original, { statusCode: 500 }), {
          ...original,
          status: 'failed',
          attempts: 1,
          updatedAt: at(5),
          lastAttemptAt: at(5),
          nextAttemptAt: at(10),
        });
        const stored = await deliveries.get(original.id);

        // A retried fan-out makes the same pairs again, at a later time.
        const retried = [
          makeDelivery(event, subscriptionId, { createdAt: at(60), updatedAt: at(60) }),
          makeDelivery(event, otherSubscriptionId),
        ];
        const result = await deliveries.createForEvent(retried);

        expect(result).toEqual([stored, retried[1]]);
        expect(await deliveries.get(original.id)).toEqual(stored);
      });

      it('accepts an empty batch', async () => {
        expect(await deliveries.createForEvent([])).toEqual([]);
      });
    });

    describe('get', () => {
      it('gets nothing for an unknown id', async () => {
        expect(await deliveries.get(id('dlv'))).toBeUndefined();
      });
    });

    describe('recordAttempt and listAttempts', () => {
      it('stores the attempt and the delivery’s new state together', async () => {
        const delivery = makeDelivery(makeEvent(partnerId), subscriptionId);
        await deliveries.createForEvent([delivery]);
        const attempt = makeAttempt(delivery, {
          statusCode: 503,
          error: 'http_status',
          errorMessage: 'Service Unavailable',
          responseExcerpt: '<html>busy</html>',
        });
        const next: Delivery = {
          ...delivery,
          status: 'failed',
          attempts: 1,
          updatedAt: at(1),
          lastAttemptAt: at(1),
          nextAttemptAt: at(6),
        };

        await deliveries.recordAttempt(attempt, next);

        expect(await deliveries.get(delivery.id)).toEqual(next);
        expect(await deliveries.listAttempts(delivery.id)).toEqual([attempt]);
      });

      it('counts a try made by two copies once, and never lets a stale copy’s failure overwrite a success', async () => {
        const delivery = makeDelivery(makeEvent(partnerId), subscriptionId);
        await deliveries.createForEvent([delivery]);
        // Two copies of one message, both read the delivery before either wrote.
        const success = {
          ...delivery,
          status: 'succeeded' as const,
          attempts: 1,
          updatedAt: at(1),
          lastAttemptAt: at(1),
        };
        const failure = {
          ...delivery,
          status: 'failed' as const,
          attempts: 1,
          updatedAt: at(2),
          lastAttemptAt: at(2),
          nextAttemptAt: at(7),
        };

        await deliveries.recordAttempt(makeAttempt(delivery, { statusCode: 200 }), success);
        await deliveries.recordAttempt(makeAttempt(delivery, { statusCode: 503 }), failure);

        const stored = await deliveries.get(delivery.id);
        expect(stored).toMatchObject({ status: 'succeeded', attempts: 1, lastAttemptAt: at(1) });
        expect(stored?.nextAttemptAt).toBeUndefined();
        expect(await deliveries.listAttempts(delivery.id)).toHaveLength(2);
      });

      it('lets a copy’s success win over the failure recorded for the same try', async () => {
        const delivery = makeDelivery(makeEvent(partnerId), subscriptionId);
        await deliveries.createForEvent([delivery]);
        await deliveries.recordAttempt(makeAttempt(delivery, { statusCode: 503 }), {
          ...delivery,
          status: 'failed',
          attempts: 1,
          updatedAt: at(1),
          lastAttemptAt: at(1),
          nextAttemptAt: at(6),
        });
        await deliveries.recordAttempt(makeAttempt(delivery, { statusCode: 200 }), {
          ...delivery,
          status: 'succeeded',
          attempts: 1,
          updatedAt: at(2),
          lastAttemptAt: at(2),
        });

        const stored = await deliveries.get(delivery.id);
        expect(stored).toMatchObject({ status: 'succeeded', attempts: 1, lastAttemptAt: at(2) });
        expect(stored?.nextAttemptAt).toBeUndefined();
      });

      it('stores a try that ended the delivery skipped with its reason', async () => {
        const delivery = makeDelivery(makeEvent(partnerId), subscriptionId);
        await deliveries.createForEvent([delivery]);
        const gone: Delivery = {
          ...delivery,
          status: 'skipped',
          skippedReason: 'subscription disabled',
          attempts: 1,
          updatedAt: at(1),
          lastAttemptAt: at(1),
        };

        await deliveries.recordAttempt(makeAttempt(delivery, { statusCode: 410 }), gone);

        expect(await deliveries.get(delivery.id)).toEqual(gone);
        expect(await deliveries.listAttempts(delivery.id)).toMatchObject([{ number: 1, statusCode: 410 }]);
      });

      it('keeps the state of a later try when a stale copy records an earlier one', async () => {
        const delivery = makeDelivery(makeEvent(partnerId), subscriptionId);
        await deliveries.createForEvent([delivery]);
        const second: Delivery = {
          ...delivery,
          status: 'failed',
          attempts: 2,
          updatedAt: at(10),
          lastAttemptAt: at(10),
          nextAttemptAt: at(310),
        };
        await deliveries.recordAttempt(makeAttempt(delivery, { number: 2, statusCode: 500 }), second);
        await deliveries.recordAttempt(makeAttempt(delivery, { number: 1, statusCode: 500 }), {
          ...delivery,
          status: 'failed',
          attempts: 1,
          updatedAt: at(11),
          lastAttemptAt: at(11),
          nextAttemptAt: at(16),
        });

        expect(await deliveries.get(delivery.id)).toEqual(second);
        expect((await deliveries.listAttempts(delivery.id)).map((a) => a.number)).toEqual([1, 2]);
      });

      it('lists attempts oldest first, without other deliveries’ attempts', async () => {
        const event = makeEvent(partnerId);
        const delivery = makeDelivery(event, subscriptionId);
        const other = makeDelivery(event, otherSubscriptionId);
        await deliveries.createForEvent([delivery, other]);
        const attempts = [1, 2, 3].map((number) =>
          makeAttempt(delivery, {
            number,
            startedAt: at(number * 10),
            ...(number < 3 ? { statusCode: undefined, error: 'timeout' as const } : {}),
          }),
        );
        for (const [i, attempt] of attempts.entries()) {
          await deliveries.recordAttempt(attempt, {
            ...delivery,
            status: i === 2 ? 'succeeded' : 'failed',
            attempts: attempt.number,
            updatedAt: attempt.startedAt,
            lastAttemptAt: attempt.startedAt,
          });
          await deliveries.recordAttempt(makeAttempt(other, { number: attempt.number }), other);
        }

        const listed = await deliveries.listAttempts(delivery.id);

        expect(listed.map((a) => a.id)).toEqual(attempts.map((a) => a.id));
        expect(listed[0]).not.toHaveProperty('statusCode');
        expect(listed[0]?.error).toBe('timeout');
        expect((await deliveries.get(delivery.id))?.status).toBe('succeeded');
      });

      it('rejects an attempt for an unknown delivery and stores nothing', async () => {
        const ghost = makeDelivery(makeEvent(partnerId), subscriptionId);

        await expect(deliveries.recordAttempt(makeAttempt(ghost), ghost)).rejects.toThrow();
        expect(await deliveries.listAttempts(ghost.id)).toEqual([]);
        expect(await deliveries.get(ghost.id)).toBeUndefined();
      });

      it('keeps both attempts when two copies of one message were tried with the same number', async () => {
        const delivery = makeDelivery(makeEvent(partnerId), subscriptionId);
        await deliveries.createForEvent([delivery]);
        const first = makeAttempt(delivery, { number: 1, statusCode: 500 });
        const second = makeAttempt(delivery, { number: 1, statusCode: 200 });

        await deliveries.recordAttempt(first, { ...delivery, attempts: 1, status: 'failed' });
        await deliveries.recordAttempt(second, { ...delivery, attempts: 1, status: 'succeeded' });

        const stored = await deliveries.listAttempts(delivery.id);
        expect(stored.map((a) => a.id).sort()).toEqual([first.id, second.id].sort());
      });

      it('lists no attempts for a delivery never tried', async () => {
        const delivery = makeDelivery(makeEvent(partnerId), subscriptionId);
        await deliveries.createForEvent([delivery]);

        expect(await deliveries.listAttempts(delivery.id)).toEqual([]);
      });
    });

    describe('createWithAttempt', () => {
      /** A fan-out delivery after its first try, and that try. */
      function triedOnce(status: Delivery['status'], statusCode: number) {
        const delivery = makeDelivery(makeEvent(partnerId), subscriptionId);
        const attempt = makeAttempt(delivery, { statusCode, startedAt: at(1) });
        const next: Delivery = { ...delivery, status, attempts: 1, updatedAt: at(1), lastAttemptAt: at(1) };
        return { delivery, attempt, next };
      }

      it('stores a delivery no one stored, as its first try left it, with that try', async () => {
        const { attempt, next } = triedOnce('succeeded', 204);

        await deliveries.createWithAttempt(attempt, next);

        expect(await deliveries.get(next.id)).toEqual(next);
        expect(await deliveries.listAttempts(next.id)).toEqual([attempt]);
        expect((await deliveries.listByEvent(partnerId, next.eventId, { limit: 10 })).items).toEqual([next]);
        expect((await deliveries.listBySubscription(subscriptionId, { limit: 10 })).items).toEqual([next]);
      });

      it('records the try against a delivery stored already, as recordAttempt does', async () => {
        const { delivery, attempt, next } = triedOnce('failed', 500);
        await deliveries.createForEvent([delivery]);

        await deliveries.createWithAttempt(attempt, next);

        expect(await deliveries.get(next.id)).toEqual(next);
        expect(await deliveries.listAttempts(next.id)).toEqual([attempt]);
      });

      it('counts a try made by two copies once, and lets neither copy undo a success', async () => {
        const { delivery, attempt: success, next } = triedOnce('succeeded', 200);
        const failure = makeAttempt(delivery, { statusCode: 500, startedAt: at(1) });

        await deliveries.createWithAttempt(success, next);
        await deliveries.createWithAttempt(failure, { ...next, status: 'failed', nextAttemptAt: at(9) });

        expect(await deliveries.get(next.id)).toEqual(next);
        const stored = await deliveries.listAttempts(next.id);
        expect(stored.map((a) => a.id).sort()).toEqual([success.id, failure.id].sort());
      });

      it('lets a success win when two copies store the delivery at the same time', async () => {
        const { delivery, attempt: success, next } = triedOnce('succeeded', 200);
        const failure = makeAttempt(delivery, { statusCode: 500, startedAt: at(1) });

        await Promise.all([
          deliveries.createWithAttempt(failure, { ...next, status: 'failed', nextAttemptAt: at(9) }),
          deliveries.createWithAttempt(success, next),
        ]);

        expect(await deliveries.get(next.id)).toMatchObject({ status: 'succeeded', attempts: 1 });
        expect(await deliveries.listAttempts(next.id)).toHaveLength(2);
      });

      it('refuses a delivery a partner asked for, which is stored when asked', async () => {
        const { attempt, next } = triedOnce('succeeded', 200);
        const redelivery: Delivery = { ...next, id: id('dlv'), origin: 'redelivery' };

        await expect(
          deliveries.createWithAttempt({ ...attempt, deliveryId: redelivery.id }, redelivery),
        ).rejects.toThrow();
        expect(await deliveries.get(redelivery.id)).toBeUndefined();
      });
    });

    describe('skip', () => {
      it('ends a delivery never tried as skipped, with the reason and no next try', async () => {
        const delivery = makeDelivery(makeEvent(partnerId), subscriptionId);
        await deliveries.createForEvent([delivery]);

        expect(await deliveries.skip(delivery.id, 'subscription disabled', at(9))).toBe(true);

        expect(await deliveries.get(delivery.id)).toEqual({
          ...delivery,
          status: 'skipped',
          skippedReason: 'subscription disabled',
          updatedAt: at(9),
        });
      });

      it('ends a failed delivery waiting for its next try, keeping its attempts', async () => {
        const delivery = makeDelivery(makeEvent(partnerId), subscriptionId);
        await deliveries.createForEvent([delivery]);
        const attempt = makeAttempt(delivery, { statusCode: 500, error: 'http_status' });
        await deliveries.recordAttempt(attempt, {
          ...delivery,
          status: 'failed',
          attempts: 1,
          updatedAt: at(1),
          lastAttemptAt: at(1),
          nextAttemptAt: at(6),
        });

        expect(await deliveries.skip(delivery.id, 'subscription deleted', at(6))).toBe(true);

        const stored = await deliveries.get(delivery.id);
        expect(stored).toMatchObject({
          status: 'skipped',
          skippedReason: 'subscription deleted',
          attempts: 1,
          lastAttemptAt: at(1),
          updatedAt: at(6),
        });
        expect(stored).not.toHaveProperty('nextAttemptAt');
        expect(await deliveries.listAttempts(delivery.id)).toEqual([attempt]);
      });

      it('never undoes a success: a stale copy’s skip leaves it succeeded', async () => {
        const delivery = makeDelivery(makeEvent(partnerId), subscriptionId);
        await deliveries.createForEvent([delivery]);
        const succeeded: Delivery = {
          ...delivery,
          status: 'succeeded',
          attempts: 1,
          updatedAt: at(1),
          lastAttemptAt: at(1),
        };
        await deliveries.recordAttempt(makeAttempt(delivery), succeeded);

        expect(await deliveries.skip(delivery.id, 'event expired', at(2))).toBe(false);

        expect(await deliveries.get(delivery.id)).toEqual(succeeded);
      });

      it('answers false for an unknown delivery and creates nothing', async () => {
        const ghost = id('dlv');

        expect(await deliveries.skip(ghost, 'not queued', at(1))).toBe(false);
        expect(await deliveries.get(ghost)).toBeUndefined();
      });

      it('is skipped no more once a copy of its message is tried after all', async () => {
        const delivery = makeDelivery(makeEvent(partnerId), subscriptionId);
        await deliveries.createForEvent([delivery]);
        await deliveries.skip(delivery.id, 'not queued', at(1));
        const { skippedReason: _, ...tried }: Delivery = {
          ...delivery,
          status: 'succeeded',
          attempts: 1,
          updatedAt: at(2),
          lastAttemptAt: at(2),
        };

        await deliveries.recordAttempt(makeAttempt(delivery), tried);

        expect(await deliveries.get(delivery.id)).toEqual(tried);
      });
    });

    describe('create', () => {
      it('adds a partner’s redeliveries beside the fan-out delivery of the same pair', async () => {
        const event = makeEvent(partnerId);
        const original = makeDelivery(event, subscriptionId);
        await deliveries.createForEvent([original]);
        const again = [
          makeDelivery(event, subscriptionId, { origin: 'redelivery' }),
          makeDelivery(event, subscriptionId, { origin: 'replay' }),
        ];

        await deliveries.create(again);

        for (const d of again) expect(await deliveries.get(d.id)).toEqual(d);
        // Fan-out still finds its own delivery, not a redelivery.
        const retried = await deliveries.createForEvent([makeDelivery(event, subscriptionId)]);
        expect(retried).toEqual([original]);
      });

      it('refuses fan-out deliveries, which only createForEvent may create', async () => {
        await expect(
          deliveries.create([makeDelivery(makeEvent(partnerId), subscriptionId)]),
        ).rejects.toThrow();
      });
    });

    describe('listByEvent', () => {
      it('lists every delivery of the event newest first, never another event’s, in pages', async () => {
        const event = makeEvent(partnerId, { id: id('evt', Date.parse(at(0))) });
        // Fan-out deliveries carry the event's time; their pairs' hashes order them.
        const [older, newer] = [
          makeDelivery(event, subscriptionId),
          makeDelivery(event, otherSubscriptionId),
        ].sort((a, b) => a.id.localeCompare(b.id));
        if (!older || !newer) throw new Error('two deliveries expected');
        // A redelivery's id is new, and ends with its event's tag as every delivery id does.
        const redelivery = makeDelivery(event, subscriptionId, {
          id: `${id('dlv', Date.parse(at(3)))}${eventTag(event.id)}`,
          origin: 'redelivery',
        });
        await deliveries.createForEvent([older, newer]);
        await deliveries.create([redelivery]);
        await deliveries.createForEvent([makeDelivery(makeEvent(partnerId), subscriptionId)]);

        const page1 = await deliveries.listByEvent(partnerId, event.id, { limit: 2 });
        expect(page1.items.map((d) => d.id)).toEqual([redelivery.id, newer.id]);
        const page2 = await deliveries.listByEvent(partnerId, event.id, {
          limit: 2,
          after: page1.next ?? '',
        });
        expect(page2).toEqual({ items: [older], next: null });
      });

      it('lists only the partner’s deliveries, were another partner’s event to have the same id', async () => {
        const event = makeEvent(partnerId);
        const mine = makeDelivery(event, subscriptionId);
        const theirs = makeDelivery({ ...event, partnerId: id('ptr') }, otherSubscriptionId);
        await deliveries.createForEvent([mine]);
        await deliveries.createForEvent([theirs]);

        expect(await deliveries.listByEvent(partnerId, event.id, { limit: 10 })).toEqual({
          items: [mine],
          next: null,
        });
      });
    });

    describe('listBySubscription', () => {
      it('lists the subscription’s deliveries newest first, never another subscription’s', async () => {
        const items = series(3);
        await createEach(items);
        await deliveries.createForEvent([makeDelivery(makeEvent(partnerId), otherSubscriptionId)]);

        const page = await deliveries.listBySubscription(subscriptionId, { limit: 10 });

        expect(page).toEqual({ items: items.toReversed(), next: null });
      });

      it('pages newest first with limit and next, visiting each delivery once and ending with next null', async () => {
        const items = series(5);
        await createEach(items);

        const seen: string[] = [];
        let after: string | undefined;
        let pages = 0;
        do {
          const page = await deliveries.listBySubscription(
            subscriptionId,
            after === undefined ? { limit: 2 } : { limit: 2, after },
          );
          seen.push(...page.items.map((d) => d.id));
          after = page.next ?? undefined;
          pages++;
        } while (after !== undefined);

        expect(seen).toEqual(items.toReversed().map((d) => d.id));
        expect(pages).toBe(3);
      });

      it('returns next null when the last page is exactly full', async () => {
        await createEach(series(2));

        expect((await deliveries.listBySubscription(subscriptionId, { limit: 2 })).next).toBeNull();
      });
    });
  });
}
