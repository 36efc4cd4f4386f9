/**
 * Ordered subscriptions' gates and lines (functions/core/ordering.ts) on DynamoDB, in the
 * deliveries table (tables.ts):
 * - `KEY#<partnerId>#<orderingKey>` / `GATE`: the key's gate, `fanned` (the key's place fanned
 *   out through). It never expires: one small item per key, which the key's later events must
 *   find however long after they come;
 * - `KEY#<partnerId>#<orderingKey>` / `P#<keySeq, 15 digits>`: an event parked at the gate,
 *   its EventRef as JSON text (`ref`);
 * - `LINE#<subscriptionId>#<orderingKey>` / `E#<keySeq, 15 digits>`: a delivery waiting in the
 *   subscription's line for the key (`deliveryId`, `eventId`, `partnerId`), so a query of the
 *   line's partition gives its entries in key order;
 * - `LINE#<subscriptionId>#<orderingKey>` / `HEAD`: the line's head, the entry being tried
 *   (`seq` and the entry's attributes), with the try last taken for one message (`taken`, 0
 *   for none yet) and when (`takenAt`, epoch ms).
 * Ids have no `#`, so a key (which may hold one) cannot make two partitions meet. Parked
 * events, entries and heads expire with the deliveries (`expiresAt`, retentionDays after their
 * writing). Every read is consistent; every write is conditional or idempotent: a gate moves
 * only from the value given, a park, an entry and a head are put only if absent, a try is
 * taken only while no later one was (or its lease ran out) and given back only by its taker,
 * and a head is deleted only while it is the finished entry's.
 */
import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import * as z from 'zod';
import { type EventRef, FanoutMessage } from '../../core/model.ts';
import { lineOf } from '../../core/ordering.ts';
import type { Clock, LineEntry, LineHead, OrderedLines } from '../../core/ports.ts';
import { systemClock } from '../clock.ts';
import {
  attributeNames,
  backoff,
  cancellationCodes,
  expiresAt,
  hasConflict,
  type Item,
  isConditionFailure,
  putIfAbsent,
} from './dynamo.ts';

const SEQ_DIGITS = 15;
const GATE_SK = 'GATE';
const PARKED_PREFIX = 'P#';
const ENTRY_PREFIX = 'E#';
const HEAD_SK = 'HEAD';
/** Claims of a line tried while other transactions on it conflict, before the error is thrown. */
const CLAIM_TRIES = 8;

const Seq = z.number().int().positive();
const Gate = z.object({ fanned: z.number().int().nonnegative() });
const Parked = z.object({ ref: z.string() });
const EntryItem = z.object({
  seq: Seq,
  deliveryId: z.string(),
  eventId: z.string(),
  partnerId: z.string(),
});

const place = (seq: number) => String(seq).padStart(SEQ_DIGITS, '0');
const keyPk = (partnerId: string, key: string) => `KEY#${partnerId}#${key}`;
const linePk = (subscriptionId: string, key: string) => `LINE#${subscriptionId}#${key}`;
const gateKey = (partnerId: string, key: string) => ({ pk: keyPk(partnerId, key), sk: GATE_SK });
const parkedKey = (partnerId: string, key: string, seq: number) => ({
  pk: keyPk(partnerId, key),
  sk: `${PARKED_PREFIX}${place(seq)}`,
});
const entryKey = (subscriptionId: string, key: string, seq: number) => ({
  pk: linePk(subscriptionId, key),
  sk: `${ENTRY_PREFIX}${place(seq)}`,
});
const headKey = (subscriptionId: string, key: string) => ({ pk: linePk(subscriptionId, key), sk: HEAD_SK });

const HeadItem = EntryItem.extend({
  taken: z.number().int().nonnegative(),
  takenAt: z.number().int().nonnegative(),
});

function toHead(item: Item): LineHead {
  const { seq, deliveryId, eventId, partnerId, taken, takenAt } = HeadItem.parse(item);
  return { seq, deliveryId, eventId, partnerId, taken, takenAt };
}

function toEntry(item: Item): LineEntry {
  const { seq, deliveryId, eventId, partnerId } = EntryItem.parse(item);
  return { seq, deliveryId, eventId, partnerId };
}

export interface DynamoOrderedLinesOptions {
  /** Days after their writing when TTL deletes parked events, entries and heads. @default 30 */
  retentionDays?: number;
  /** @default systemClock */
  clock?: Clock;
}

export class DynamoOrderedLines implements OrderedLines {
  readonly tableName: string;
  readonly #client: DynamoDBDocumentClient;
  readonly #retentionDays: number;
  readonly #clock: Clock;

  constructor(client: DynamoDBDocumentClient, tableName: string, options: DynamoOrderedLinesOptions = {}) {
    const retentionDays = options.retentionDays ?? 30;
    if (!(retentionDays > 0)) throw new RangeError(`retentionDays must be positive, got ${retentionDays}`);
    this.#client = client;
    this.tableName = tableName;
    this.#retentionDays = retentionDays;
    this.#clock = options.clock ?? systemClock;
  }

  async fannedThrough(partnerId: string, key: string): Promise<number> {
    const result = await this.#client.send(
      new GetCommand({ TableName: this.tableName, Key: gateKey(partnerId, key), ConsistentRead: true }),
    );
    return result.Item === undefined ? 0 : Gate.parse(result.Item).fanned;
  }

  /** One update, on the condition that the gate is at `from` (or, for 0, not there yet). */
  async advanceGate(partnerId: string, key: string, from: number, to: number): Promise<boolean> {
    try {
      await this.#client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: gateKey(partnerId, key),
          UpdateExpression: 'SET #fanned = :to',
          ConditionExpression: from === 0 ? 'attribute_not_exists(pk) OR #fanned = :from' : '#fanned = :from',
          ExpressionAttributeNames: attributeNames('fanned'),
          ExpressionAttributeValues: { ':to': to, ':from': from },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  async park(ref: EventRef & { orderingKey: string; keySeq: number }): Promise<void> {
    await putIfAbsent(this.#client, this.tableName, {
      ...parkedKey(ref.partnerId, ref.orderingKey, ref.keySeq),
      ref: JSON.stringify(ref),
      expiresAt: this.#expiresAt(),
    });
  }

  async parked(partnerId: string, key: string, seq: number): Promise<EventRef | undefined> {
    const result = await this.#client.send(
      new GetCommand({
        TableName: this.tableName,
        Key: parkedKey(partnerId, key, seq),
        ConsistentRead: true,
      }),
    );
    if (result.Item === undefined) return undefined;
    return FanoutMessage.parse(JSON.parse(Parked.parse(result.Item).ref));
  }

  async unpark(partnerId: string, key: string, seq: number): Promise<void> {
    await this.#client.send(
      new DeleteCommand({ TableName: this.tableName, Key: parkedKey(partnerId, key, seq) }),
    );
  }

  async append(subscriptionId: string, key: string, entry: LineEntry): Promise<void> {
    await putIfAbsent(this.#client, this.tableName, {
      ...entryKey(subscriptionId, key, entry.seq),
      ...this.#entryAttributes(entry),
    });
  }

  /**
   * The head (a get), then the first entry (a query of one item). In that order, the first
   * entry is never one that had finished before the head was read: a finish deletes the entry
   * before the head, so an idle line is never shown with an entry that has had its turn.
   */
  async head(subscriptionId: string, key: string): Promise<LineHead | undefined> {
    const head = await this.#client.send(
      new GetCommand({ TableName: this.tableName, Key: headKey(subscriptionId, key), ConsistentRead: true }),
    );
    return head.Item === undefined ? undefined : toHead(head.Item);
  }

  async first(subscriptionId: string, key: string): Promise<LineEntry | undefined> {
    const entries = await this.#client.send(
      new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :entry)',
        ExpressionAttributeNames: attributeNames('pk', 'sk'),
        ExpressionAttributeValues: { ':pk': linePk(subscriptionId, key), ':entry': ENTRY_PREFIX },
        Limit: 1,
        ConsistentRead: true,
      }),
    );
    const first = entries.Items?.[0];
    return first === undefined ? undefined : toEntry(first);
  }

  async line(subscriptionId: string, key: string): Promise<{ head?: LineHead; first?: LineEntry }> {
    return lineOf(this, subscriptionId, key);
  }

  /**
   * One transaction: the entry is still in the line (a condition check), and the head is put
   * only if absent. A conflict with another transaction on the line (a claim, a finish) is
   * tried again: the next try sees what that one did.
   */
  async claim(subscriptionId: string, key: string, entry: LineEntry): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#client.send(
          new TransactWriteCommand({
            TransactItems: [
              {
                ConditionCheck: {
                  TableName: this.tableName,
                  Key: entryKey(subscriptionId, key, entry.seq),
                  ConditionExpression: 'attribute_exists(pk)',
                },
              },
              {
                Put: {
                  TableName: this.tableName,
                  Item: {
                    ...headKey(subscriptionId, key),
                    ...this.#entryAttributes(entry),
                    taken: 0,
                    takenAt: 0,
                  },
                  ConditionExpression: 'attribute_not_exists(pk)',
                },
              },
            ],
          }),
        );
        return true;
      } catch (error) {
        const codes = cancellationCodes(error);
        if (codes === undefined) throw error;
        if (!hasConflict(codes)) return false;
        if (attempt + 1 >= CLAIM_TRIES) throw error;
        await backoff(attempt, 10, 200);
      }
    }
  }

  /**
   * One update of the head, on the condition that it is the entry at `seq` and that no try
   * from `attempt` on has been taken, or this one was taken before its lease ran out.
   */
  async take(
    subscriptionId: string,
    key: string,
    seq: number,
    attempt: number,
    at: Date,
    leaseMs: number,
  ): Promise<boolean> {
    const now = at.getTime();
    try {
      await this.#client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: headKey(subscriptionId, key),
          UpdateExpression: 'SET #taken = :attempt, #takenAt = :now',
          ConditionExpression:
            '#seq = :seq AND (#taken < :attempt OR (#taken = :attempt AND #takenAt < :expired))',
          ExpressionAttributeNames: attributeNames('seq', 'taken', 'takenAt'),
          ExpressionAttributeValues: {
            ':seq': seq,
            ':attempt': attempt,
            ':now': now,
            ':expired': now - leaseMs,
          },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  /** One update of the head, on the condition that it is the entry at `seq` with `attempt` taken. */
  async untake(subscriptionId: string, key: string, seq: number, attempt: number): Promise<void> {
    try {
      await this.#client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: headKey(subscriptionId, key),
          UpdateExpression: 'SET #taken = :before, #takenAt = :never',
          ConditionExpression: '#seq = :seq AND #taken = :attempt',
          ExpressionAttributeNames: attributeNames('seq', 'taken', 'takenAt'),
          ExpressionAttributeValues: {
            ':seq': seq,
            ':attempt': attempt,
            ':before': attempt - 1,
            ':never': 0,
          },
        }),
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
    }
  }

  /**
   * Deletes the entry, then the head on the condition that it is the entry's: a head of
   * another entry (or none) is left as it is. Repeated, it deletes nothing more.
   */
  async finish(subscriptionId: string, key: string, seq: number): Promise<void> {
    await this.#client.send(
      new DeleteCommand({ TableName: this.tableName, Key: entryKey(subscriptionId, key, seq) }),
    );
    try {
      await this.#client.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: headKey(subscriptionId, key),
          ConditionExpression: '#seq = :seq',
          ExpressionAttributeNames: attributeNames('seq'),
          ExpressionAttributeValues: { ':seq': seq },
        }),
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
    }
  }

  /** An entry's attributes, as an entry item and a head both hold them. */
  #entryAttributes(entry: LineEntry): Item {
    return {
      seq: Seq.parse(entry.seq),
      deliveryId: entry.deliveryId,
      eventId: entry.eventId,
      partnerId: entry.partnerId,
      expiresAt: this.#expiresAt(),
    };
  }

  /** The TTL of an item written now. */
  #expiresAt(): number {
    return expiresAt(this.#clock, this.#retentionDays);
  }
}
