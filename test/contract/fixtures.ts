/** Builders for contract tests: valid domain objects with fresh ids, overridable field by field. */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fanoutDeliveryId } from '../../functions/core/fanout.ts';
import { newId } from '../../functions/core/ids.ts';
import type {
  ApiKeyRecord,
  Attempt,
  Delivery,
  Event,
  IdPrefix,
  Partner,
  Subscription,
} from '../../functions/core/model.ts';
import { apiKeyIdOf } from '../../functions/core/partners.ts';
import type { Clock, NewEvent } from '../../functions/core/ports.ts';

/** A fresh id; `time` (ms) pins its ordering when a test depends on it. */
export function id(prefix: IdPrefix, time?: number): string {
  return newId(prefix, time);
}

const T0 = Date.parse('2025-01-01T00:00:00.000Z');

/** An ISO timestamp `seconds` after a fixed instant. */
export function at(seconds = 0): string {
  return new Date(T0 + seconds * 1000).toISOString();
}

export function makePartner(overrides: Partial<Partner> = {}): Partner {
  return { id: id('ptr'), name: 'Acme', createdAt: at(), ...overrides };
}

/** A key's record for the partner, with a fresh hash (and the id it implies) unless given one. */
export function makeApiKey(partnerId: string, overrides: Partial<ApiKeyRecord> = {}): ApiKeyRecord {
  const hash = overrides.hash ?? randomBytes(32).toString('hex');
  return {
    id: apiKeyIdOf(hash),
    partnerId,
    hash,
    name: 'first key',
    prefix: 'dk_AbCdEfGh',
    createdAt: at(),
    ...overrides,
  };
}

/** An event as published, before a log gives it its id. */
export function newEvent(partnerId: string, overrides: Partial<NewEvent> = {}): NewEvent {
  const { id: _id, ...event } = makeEvent(partnerId);
  return { ...event, ...overrides };
}

export function makeEvent(partnerId: string, overrides: Partial<Event> = {}): Event {
  return {
    id: id('evt'),
    partnerId,
    type: 'order.created',
    payload: { orderId: 'o-1', lines: [{ sku: 'A', quantity: 2 }], paid: true, note: null },
    createdAt: at(),
    ...overrides,
  };
}

export function makeSubscription(partnerId: string, overrides: Partial<Subscription> = {}): Subscription {
  return {
    id: id('sub'),
    partnerId,
    url: 'https://hooks.example.com/orders',
    eventTypes: ['order.created', 'invoice.*'],
    status: 'active',
    secrets: [{ secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', createdAt: at() }],
    createdAt: at(),
    updatedAt: at(),
    ...overrides,
  };
}

export function makeDelivery(
  event: Pick<Event, 'id' | 'partnerId' | 'type'>,
  subscriptionId: string,
  overrides: Partial<Delivery> = {},
): Delivery {
  return {
    // A fan-out delivery's id is its pair's; a partner's redelivery gets a new one.
    id: (overrides.origin ?? 'fanout') === 'fanout' ? fanoutDeliveryId(event.id, subscriptionId) : id('dlv'),
    eventId: event.id,
    subscriptionId,
    partnerId: event.partnerId,
    eventType: event.type,
    origin: 'fanout',
    status: 'pending',
    attempts: 0,
    createdAt: at(),
    updatedAt: at(),
    ...overrides,
  };
}

export function makeAttempt(delivery: Delivery, overrides: Partial<Attempt> = {}): Attempt {
  return {
    id: id('att'),
    deliveryId: delivery.id,
    subscriptionId: delivery.subscriptionId,
    partnerId: delivery.partnerId,
    number: 1,
    startedAt: at(),
    durationMs: 12.5,
    statusCode: 200,
    ...overrides,
  };
}

/** A clock that moves only when told to. */
export class ManualClock implements Clock {
  #time: number;

  constructor(start: Date = new Date(T0)) {
    this.#time = start.getTime();
  }

  now(): Date {
    return new Date(this.#time);
  }

  advance(seconds: number): void {
    this.#time += seconds * 1000;
  }
}

/** A fresh temporary directory and a function removing it. */
export function tempDir(): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'webhook-dispatcher-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A stream batch's dead letter, as the pipe (a stream source) writes it. */
export function pipeDeadLetter(first: Date, last: Date): string {
  return JSON.stringify({
    version: '1.0',
    DDBStreamBatchInfo: {
      shardId: 'shardId-00000001',
      startSequenceNumber: '100',
      endSequenceNumber: '200',
      approximateArrivalOfFirstRecord: first.toISOString(),
      approximateArrivalOfLastRecord: last.toISOString(),
      batchSize: 10,
      streamArn: 'arn:aws:dynamodb:eu-west-1:123456789012:table/events/stream/2026',
    },
  });
}
