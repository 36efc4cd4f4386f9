/**
 * The HTTP API end to end, subscriptions and their deliveries: the real local runtime on 127.0.0.1,
 * called over real HTTP as the platform admin (admin token) and as partners (API keys) would.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createSubscriptionFor,
  type DeliveryView,
  expectProblem,
  type Page,
  pageThrough,
  publish,
  SUBSCRIPTION_ID,
  type SubscriptionView,
  UNKNOWN_SUBSCRIPTION_ID,
  withApiDispatcher,
} from './api-support.ts';
import { eventually, request, type TestDispatcher } from './harness.ts';

describe('HTTP API: subscriptions', () => {
  let d: TestDispatcher;
  withApiDispatcher((started) => {
    d = started;
  });

  const createSubscription = (apiKey: string, body?: Record<string, unknown>) =>
    createSubscriptionFor(d, apiKey, body);

  describe('POST /v1/subscriptions', () => {
    it('creates an active subscription and shows its whsec_ secret once', async () => {
      const partner = await d.createPartner();
      const res = await d.as<SubscriptionView>(partner.apiKey, 'POST', '/v1/subscriptions', {
        url: 'https://hooks.example.com/orders',
        eventTypes: ['order.created'],
        description: 'orders',
      });
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({
        url: 'https://hooks.example.com/orders',
        eventTypes: ['order.created'],
        description: 'orders',
        status: 'active',
      });
      expect(res.body.id).toMatch(SUBSCRIPTION_ID);
      expect(res.body.secret).toMatch(/^whsec_.+/);
    });

    it('takes every event type when eventTypes is left out', async () => {
      const partner = await d.createPartner();
      const sub = await createSubscription(partner.apiKey);
      expect(sub.eventTypes).toEqual([]);
    });

    it("accepts a family filter 'order.*' and the wildcard '*'", async () => {
      const partner = await d.createPartner();
      const sub = await createSubscription(partner.apiKey, {
        url: 'https://hooks.example.com/all',
        eventTypes: ['order.*', '*'],
      });
      expect(sub.eventTypes).toEqual(['order.*', '*']);
    });

    it('rejects a URL that is not a URL, or not http(s), with a 400 naming body.url', async () => {
      const partner = await d.createPartner();
      for (const url of ['not a url', 'ftp://files.example.com/in', 'javascript:alert(1)', '']) {
        const res = await d.as(partner.apiKey, 'POST', '/v1/subscriptions', { url });
        expectProblem(res, 400, 'body.url');
      }
    });

    it('rejects a missing url with a 400 naming body.url', async () => {
      const partner = await d.createPartner();
      expectProblem(await d.as(partner.apiKey, 'POST', '/v1/subscriptions', {}), 400, 'body.url');
    });

    it('rejects a bad eventTypes entry with a 400 naming it', async () => {
      const partner = await d.createPartner();
      for (const eventTypes of [['Order Created'], ['order.created', 'order.**'], 'order.created']) {
        const res = await d.as(partner.apiKey, 'POST', '/v1/subscriptions', {
          url: 'https://hooks.example.com/x',
          eventTypes,
        });
        const problem = expectProblem(res, 400);
        expect(problem.errors?.some((e) => e.field.startsWith('body.eventTypes'))).toBe(true);
      }
    });

    it('rejects an unknown field with a 400', async () => {
      const partner = await d.createPartner();
      const res = await d.as(partner.apiKey, 'POST', '/v1/subscriptions', {
        url: 'https://hooks.example.com/x',
        secret: 'whsec_mine',
      });
      expectProblem(res, 400);
    });

    it('answers 401 without an API key', async () => {
      const res = await request(`${d.dispatcher.url}/v1/subscriptions`, 'POST', undefined, {
        url: 'https://hooks.example.com/x',
      });
      expectProblem(res, 401);
    });
  });

  describe('GET /v1/subscriptions', () => {
    it("lists the partner's subscriptions without their secrets", async () => {
      const partner = await d.createPartner();
      const sub = await createSubscription(partner.apiKey);
      const res = await d.as<Page<SubscriptionView>>(partner.apiKey, 'GET', '/v1/subscriptions');
      expect(res.status).toBe(200);
      expect(res.body.data.map((s) => s.id)).toEqual([sub.id]);
      expect(res.body.next).toBeNull();
      expect(JSON.stringify(res.body)).not.toContain('whsec_');
    });

    it('returns every subscription exactly once when paging with limit and after=next', async () => {
      const partner = await d.createPartner();
      const created: string[] = [];
      for (let i = 0; i < 5; i++) {
        created.push(
          (await createSubscription(partner.apiKey, { url: `https://hooks.example.com/${i}` })).id,
        );
      }
      const { items, pages } = await pageThrough<SubscriptionView>(d, partner.apiKey, '/v1/subscriptions', 2);
      expect(items.map((s) => s.id)).toEqual(created);
      expect(pages).toBe(3);
    });

    it('returns next: null on the last page', async () => {
      const partner = await d.createPartner();
      await createSubscription(partner.apiKey);
      await createSubscription(partner.apiKey);
      const first = await d.as<Page<SubscriptionView>>(partner.apiKey, 'GET', '/v1/subscriptions?limit=1');
      expect(first.body.next).toBe(first.body.data[0]?.id);
      const last = await d.as<Page<SubscriptionView>>(
        partner.apiKey,
        'GET',
        `/v1/subscriptions?limit=1&after=${first.body.next ?? ''}`,
      );
      expect(last.body.data).toHaveLength(1);
      expect(last.body.next).toBeNull();
    });

    it("never lists another partner's subscriptions", async () => {
      const a = await d.createPartner();
      const b = await d.createPartner();
      await createSubscription(b.apiKey);
      const res = await d.as<Page<SubscriptionView>>(a.apiKey, 'GET', '/v1/subscriptions');
      expect(res.body.data).toEqual([]);
    });

    it('rejects a bad limit with a 400 naming query.limit', async () => {
      const partner = await d.createPartner();
      for (const limit of ['0', '1001', 'x']) {
        expectProblem(
          await d.as(partner.apiKey, 'GET', `/v1/subscriptions?limit=${limit}`),
          400,
          'query.limit',
        );
      }
    });
  });

  describe('GET /v1/subscriptions/{id}', () => {
    it('returns the subscription without its secret', async () => {
      const partner = await d.createPartner();
      const sub = await createSubscription(partner.apiKey, {
        url: 'https://hooks.example.com/one',
        eventTypes: ['order.*'],
        description: 'one',
      });
      const res = await d.as<SubscriptionView>(partner.apiKey, 'GET', `/v1/subscriptions/${sub.id}`);
      expect(res.status).toBe(200);
      const { secret: _secret, ...view } = sub;
      expect(res.body).toEqual(view);
      expect(JSON.stringify(res.body)).not.toContain('whsec_');
    });

    it('answers 404 for an unknown or malformed id', async () => {
      const partner = await d.createPartner();
      expectProblem(await d.as(partner.apiKey, 'GET', `/v1/subscriptions/${UNKNOWN_SUBSCRIPTION_ID}`), 404);
      expectProblem(await d.as(partner.apiKey, 'GET', '/v1/subscriptions/nope'), 404);
    });
  });

  describe('PATCH /v1/subscriptions/{id}', () => {
    it('changes url, eventTypes and description and keeps the rest', async () => {
      const partner = await d.createPartner();
      const sub = await createSubscription(partner.apiKey);
      const res = await d.as<SubscriptionView>(partner.apiKey, 'PATCH', `/v1/subscriptions/${sub.id}`, {
        url: 'https://hooks.example.com/v2',
        eventTypes: ['invoice.paid', 'order.*'],
        description: 'second version',
      });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({
        id: sub.id,
        url: 'https://hooks.example.com/v2',
        eventTypes: ['invoice.paid', 'order.*'],
        description: 'second version',
        status: 'active',
        createdAt: sub.createdAt,
      });
      expect(JSON.stringify(res.body)).not.toContain('whsec_');
      const read = await d.as<SubscriptionView>(partner.apiKey, 'GET', `/v1/subscriptions/${sub.id}`);
      expect(read.body).toEqual(res.body);
    });

    it('disables and re-enables a subscription through status', async () => {
      const partner = await d.createPartner();
      const sub = await createSubscription(partner.apiKey);
      const path = `/v1/subscriptions/${sub.id}`;
      const disabled = await d.as<SubscriptionView>(partner.apiKey, 'PATCH', path, { status: 'disabled' });
      expect(disabled.status).toBe(200);
      expect(disabled.body.status).toBe('disabled');
      const enabled = await d.as<SubscriptionView>(partner.apiKey, 'PATCH', path, { status: 'active' });
      expect(enabled.status).toBe(200);
      expect(enabled.body.status).toBe('active');
      expect(enabled.body.disabledReason).toBeUndefined();
    });

    it('rejects an empty change with a 400', async () => {
      const partner = await d.createPartner();
      const sub = await createSubscription(partner.apiKey);
      expectProblem(await d.as(partner.apiKey, 'PATCH', `/v1/subscriptions/${sub.id}`, {}), 400);
    });

    it("rejects status 'paused' with a 400 naming body.status", async () => {
      const partner = await d.createPartner();
      const sub = await createSubscription(partner.apiKey);
      const res = await d.as(partner.apiKey, 'PATCH', `/v1/subscriptions/${sub.id}`, { status: 'paused' });
      expectProblem(res, 400, 'body.status');
    });

    it('rejects a bad url with a 400 naming body.url and leaves the subscription unchanged', async () => {
      const partner = await d.createPartner();
      const sub = await createSubscription(partner.apiKey);
      const res = await d.as(partner.apiKey, 'PATCH', `/v1/subscriptions/${sub.id}`, {
        url: 'ftp://x.example',
      });
      expectProblem(res, 400, 'body.url');
      const read = await d.as<SubscriptionView>(partner.apiKey, 'GET', `/v1/subscriptions/${sub.id}`);
      expect(read.body.url).toBe(sub.url);
    });

    it('answers 404 for an unknown id', async () => {
      const partner = await d.createPartner();
      const res = await d.as(partner.apiKey, 'PATCH', `/v1/subscriptions/${UNKNOWN_SUBSCRIPTION_ID}`, {
        description: 'x',
      });
      expectProblem(res, 404);
    });
  });

  describe('DELETE /v1/subscriptions/{id}', () => {
    it('deletes with 204 and an empty body, after which GET answers 404', async () => {
      const partner = await d.createPartner();
      const sub = await createSubscription(partner.apiKey);
      const res = await d.as(partner.apiKey, 'DELETE', `/v1/subscriptions/${sub.id}`);
      expect(res.status).toBe(204);
      expect(res.body).toEqual({});
      expectProblem(await d.as(partner.apiKey, 'GET', `/v1/subscriptions/${sub.id}`), 404);
      expectProblem(await d.as(partner.apiKey, 'DELETE', `/v1/subscriptions/${sub.id}`), 404);
      const list = await d.as<Page<SubscriptionView>>(partner.apiKey, 'GET', '/v1/subscriptions');
      expect(list.body.data).toEqual([]);
    });
  });

  describe('POST /v1/subscriptions/{id}/rotate-secret', () => {
    it('returns a new whsec_ secret, different from the first, and keeps the subscription', async () => {
      const partner = await d.createPartner();
      const sub = await createSubscription(partner.apiKey);
      const res = await d.as<SubscriptionView>(
        partner.apiKey,
        'POST',
        `/v1/subscriptions/${sub.id}/rotate-secret`,
      );
      expect(res.status).toBe(200);
      expect(res.body.id).toBe(sub.id);
      expect(res.body.url).toBe(sub.url);
      expect(res.body.secret).toMatch(/^whsec_.+/);
      expect(res.body.secret).not.toBe(sub.secret);
      const again = await d.as<SubscriptionView>(
        partner.apiKey,
        'POST',
        `/v1/subscriptions/${sub.id}/rotate-secret`,
      );
      expect(again.body.secret).not.toBe(res.body.secret);
      const read = await d.as(partner.apiKey, 'GET', `/v1/subscriptions/${sub.id}`);
      expect(JSON.stringify(read.body)).not.toContain('whsec_');
    });

    it('answers 404 for an unknown id', async () => {
      const partner = await d.createPartner();
      const res = await d.as(
        partner.apiKey,
        'POST',
        `/v1/subscriptions/${UNKNOWN_SUBSCRIPTION_ID}/rotate-secret`,
      );
      expectProblem(res, 404);
    });
  });

  describe('GET /v1/subscriptions/{id}/deliveries', () => {
    it('is an empty page for a new subscription', async () => {
      const partner = await d.createPartner();
      const sub = await createSubscription(partner.apiKey);
      const res = await d.as<Page<DeliveryView>>(
        partner.apiKey,
        'GET',
        `/v1/subscriptions/${sub.id}/deliveries`,
      );
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ data: [], next: null });
    });

    it('rejects a bad limit with a 400 naming query.limit', async () => {
      const partner = await d.createPartner();
      const sub = await createSubscription(partner.apiKey);
      const res = await d.as(partner.apiKey, 'GET', `/v1/subscriptions/${sub.id}/deliveries?limit=0`);
      expectProblem(res, 400, 'query.limit');
    });

    describe('with a real receiver answering 204', () => {
      let receiver: Server;
      let receiverUrl: string;
      const received: { webhookId: string | undefined; body: string }[] = [];

      beforeAll(async () => {
        receiver = createServer(async (req, res) => {
          const chunks: Buffer[] = [];
          for await (const chunk of req) chunks.push(chunk as Buffer);
          const id = req.headers['webhook-id'];
          received.push({
            webhookId: Array.isArray(id) ? id[0] : id,
            body: Buffer.concat(chunks).toString('utf8'),
          });
          res.writeHead(204).end();
        });
        await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
        const address = receiver.address() as AddressInfo;
        receiverUrl = `http://127.0.0.1:${address.port}/hooks`;
      });

      afterAll(async () => {
        receiver.closeAllConnections();
        await new Promise<void>((resolve) => receiver.close(() => resolve()));
      });

      it('records one succeeded delivery with one attempt answered 204', async () => {
        const partner = await d.createPartner();
        const sub = await createSubscription(partner.apiKey, { url: receiverUrl, eventTypes: ['order.*'] });
        const eventId = await publish(d, partner.id, 'order.shipped', { orderId: 'o-9' });
        const path = `/v1/subscriptions/${sub.id}/deliveries`;

        const delivery = await eventually(async () => {
          const res = await d.as<Page<DeliveryView>>(partner.apiKey, 'GET', path);
          const first = res.body.data[0];
          return first?.status === 'succeeded' ? res.body : undefined;
        });
        expect(delivery.data).toHaveLength(1);
        const [only] = delivery.data;
        expect(only).toMatchObject({
          eventId,
          eventType: 'order.shipped',
          status: 'succeeded',
          attemptCount: 1,
        });
        expect(only?.attempts).toHaveLength(1);
        expect(only?.attempts[0]).toMatchObject({ number: 1, statusCode: 204 });
        expect(delivery.next).toBeNull();

        const callback = received.find((r) => r.body.includes(eventId));
        expect(callback?.webhookId).toBe(only?.id);
        expect(JSON.parse(callback?.body ?? '{}')).toMatchObject({
          id: eventId,
          type: 'order.shipped',
          payload: { orderId: 'o-9' },
        });
      });
    });
  });
});
