/**
 * What the HTTP API's end-to-end tests share: the views a partner reads, problem+json
 * assertions, raw requests, publishing and paging, and a dispatcher for a suite.
 */
import type { Problem } from '@webhook-dispatcher/client';
import { afterAll, beforeAll, expect } from 'vitest';
import { checkedAnswer } from '../support/openapi-conformance.ts';
import { type ApiResult, startTestDispatcher, type TestDispatcher } from './harness.ts';

/** A problem+json body, as the OpenAPI document describes it. */
export type { Problem };

export interface CreatedPartner {
  id: string;
  name: string;
  createdAt: string;
  apiKey: string;
}

export interface Published {
  id: string;
  created: boolean;
}

export interface EventView {
  id: string;
  type: string;
  payload: unknown;
  createdAt: string;
}

export interface Page<T> {
  data: T[];
  next: string | null;
}

export interface SubscriptionView {
  id: string;
  url: string;
  eventTypes: string[];
  description?: string;
  status: string;
  disabledReason?: string;
  createdAt: string;
  updatedAt: string;
  secret?: string;
}

export interface AttemptView {
  id: string;
  number: number;
  statusCode?: number;
  error?: string;
  errorMessage?: string;
}

export interface DeliveryView {
  id: string;
  eventId: string;
  eventType: string;
  status: string;
  attemptCount: number;
  attempts: AttemptView[];
}

/** MAX_SUBSCRIPTIONS_PER_PARTNER, as a partner reads it in the documentation. */
export const MAX_SUBSCRIPTIONS = 100;

export const ULID = '[0-9A-HJKMNP-TV-Z]{26}';
export const PARTNER_ID = new RegExp(`^ptr_${ULID}$`);
export const EVENT_ID = new RegExp(`^evt_${ULID}$`);
export const SUBSCRIPTION_ID = new RegExp(`^sub_${ULID}$`);
/** Well-formed, but no event or subscription has it. */
export const UNKNOWN_EVENT_ID = 'evt_00000000000000000000000000';
export const UNKNOWN_PARTNER_ID = 'ptr_00000000000000000000000000';
export const UNKNOWN_SUBSCRIPTION_ID = 'sub_00000000000000000000000000';

/** Asserts an RFC 9457 problem+json response with this status, optionally naming `field`. */
export function expectProblem(res: ApiResult<unknown>, status: number, field?: string): Problem {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json\b/);
  const problem = res.body as Problem;
  expect(problem).toMatchObject({
    type: expect.any(String),
    title: expect.any(String),
    status,
    detail: expect.any(String),
  });
  expect(problem.type).not.toBe('');
  expect(problem.title).not.toBe('');
  expect(problem.detail).not.toBe('');
  if (field !== undefined) {
    expect(problem.errors?.map((e) => e.field)).toContain(field);
  }
  return problem;
}

/** An HTTP request with full control of headers and body, for what the harness does not send. */
export async function raw(
  url: string,
  method: string,
  headers: Record<string, string>,
  body?: string | Buffer,
): Promise<ApiResult<unknown>> {
  const response = await fetch(url, { method, headers, ...(body === undefined ? {} : { body }) });
  const answer = await checkedAnswer(method, url, response);
  return { status: answer.status, headers: answer.headers, body: answer.body === '' ? {} : answer.body };
}

export async function publish(
  d: TestDispatcher,
  partnerId: string,
  type: string,
  payload: unknown = { n: 1 },
  idempotencyKey?: string,
): Promise<string> {
  const res = await d.admin<Published>('POST', '/v1/events', {
    partnerId,
    type,
    payload,
    ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
  });
  expect(res.status).toBe(202);
  return res.body.id;
}

/** Pages through GET `path` with `limit`, following `next` until a page comes back short. */
export async function pageThrough<T extends { id: string }>(
  d: TestDispatcher,
  apiKey: string,
  path: string,
  limit: number,
): Promise<{ items: T[]; pages: number }> {
  const items: T[] = [];
  let after: string | null = null;
  let pages = 0;
  for (;;) {
    const sep = path.includes('?') ? '&' : '?';
    const cursor: string = after === null ? '' : `&after=${encodeURIComponent(after)}`;
    const res: ApiResult<Page<T>> = await d.as<Page<T>>(
      apiKey,
      'GET',
      `${path}${sep}limit=${limit}${cursor}`,
    );
    expect(res.status).toBe(200);
    pages += 1;
    items.push(...res.body.data);
    if (res.body.data.length < limit || res.body.next === null) return { items, pages };
    after = res.body.next;
    if (pages > 100) throw new Error('paging did not end');
  }
}

/**
 * A dispatcher for a suite that makes many requests a second from one partner (the limits
 * have tests of their own).
 */
export function startApiDispatcher(): Promise<TestDispatcher> {
  return startTestDispatcher({ DISPATCHER_PARTNER_REQUESTS_PER_SECOND: '10000' });
}

/**
 * Starts an API dispatcher before the enclosing suite's tests and cleans it up after them;
 * `use` receives it once started.
 */
export function withApiDispatcher(use: (d: TestDispatcher) => void): void {
  let started: TestDispatcher | undefined;
  beforeAll(async () => {
    started = await startApiDispatcher();
    use(started);
  });
  afterAll(async () => {
    await started?.cleanup();
  });
}

/** Creates a subscription as the partner and returns it (201 asserted). */
export async function createSubscriptionFor(
  d: TestDispatcher,
  apiKey: string,
  body: Record<string, unknown> = { url: 'https://hooks.example.com/callback' },
): Promise<SubscriptionView> {
  const res = await d.as<SubscriptionView>(apiKey, 'POST', '/v1/subscriptions', body);
  expect(res.status).toBe(201);
  return res.body;
}
