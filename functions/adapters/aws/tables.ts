/**
 * The DynamoDB tables, described once: the CDK stack creates them from this, and the tests
 * create the same tables in DynamoDB Local. Every key is a string attribute.
 *
 * events       pk = partnerId
 *              sk = `E#<seq, 15 digits>`  an event (kind 'event'): the stream carries these
 *                   `SEQ`                 the partner's sequence counter (attribute seq)
 *                   `ID#<eventId>`        eventId → seq, for get and for the `after` cursor
 *                   `IDEM#<key>`          idempotency key → eventId
 *              The counter, the event and its pointers are written in one transaction whose
 *              condition is the counter's previous value, so seq order is commit order.
 * partners     pk = `PARTNER#<id>` (the partner) | `KEY#<sha256 of API key>` (→ partnerId)
 * subscriptions pk = id; GSI byPartner (partnerId, id)
 * deliveries   pk = `DLV#<deliveryId>`, sk = `DELIVERY` (the delivery) | `ATTEMPT#<nnnnnn>#<attemptId>`
 *              (a fan-out delivery's id is derived from its event and subscription, so a put
 *              only if absent makes fan-out idempotent);
 *              pk = `DUE#<shard>`, sk = `<dueAt>#<deliveryId>#<attempt>`: a try waiting longer
 *              than SQS can delay a message (due-retries.ts); GSIs bySubscription (subscriptionId, deliveryId) and
 *              byEvent (eventId, deliveryId) over delivery items only (sparse indexes: only
 *              they carry `gsiSubscriptionId` and `gsiEventId`)
 * Items that expire carry `expiresAt` (epoch seconds), the tables' TTL attribute.
 */
export interface KeyAttribute {
  readonly name: string;
  readonly type: 'S' | 'N';
}

export interface GlobalIndex {
  readonly indexName: string;
  readonly partitionKey: KeyAttribute;
  readonly sortKey?: KeyAttribute;
}

export interface TableDefinition {
  /** Logical name: the construct id in CDK, the table name prefix in tests. */
  readonly name: string;
  readonly partitionKey: KeyAttribute;
  readonly sortKey?: KeyAttribute;
  readonly globalIndexes: readonly GlobalIndex[];
  /** Whether the table has a stream of new images (the events table feeds the pipe). */
  readonly stream: boolean;
  readonly ttlAttribute: string;
}

const pk: KeyAttribute = { name: 'pk', type: 'S' };
const sk: KeyAttribute = { name: 'sk', type: 'S' };
export const TTL_ATTRIBUTE = 'expiresAt';

export const EVENTS_TABLE: TableDefinition = {
  name: 'Events',
  partitionKey: pk,
  sortKey: sk,
  globalIndexes: [],
  stream: true,
  ttlAttribute: TTL_ATTRIBUTE,
};

export const PARTNERS_TABLE: TableDefinition = {
  name: 'Partners',
  partitionKey: pk,
  globalIndexes: [],
  stream: false,
  ttlAttribute: TTL_ATTRIBUTE,
};

export const SUBSCRIPTIONS_TABLE: TableDefinition = {
  name: 'Subscriptions',
  partitionKey: { name: 'id', type: 'S' },
  globalIndexes: [
    {
      indexName: 'byPartner',
      partitionKey: { name: 'partnerId', type: 'S' },
      sortKey: { name: 'id', type: 'S' },
    },
  ],
  stream: false,
  ttlAttribute: TTL_ATTRIBUTE,
};

export const DELIVERIES_TABLE: TableDefinition = {
  name: 'Deliveries',
  partitionKey: pk,
  sortKey: sk,
  globalIndexes: [
    {
      indexName: 'bySubscription',
      partitionKey: { name: 'gsiSubscriptionId', type: 'S' },
      sortKey: { name: 'id', type: 'S' },
    },
    {
      indexName: 'byEvent',
      partitionKey: { name: 'gsiEventId', type: 'S' },
      sortKey: { name: 'id', type: 'S' },
    },
  ],
  stream: false,
  ttlAttribute: TTL_ATTRIBUTE,
};

export const TABLES = [EVENTS_TABLE, PARTNERS_TABLE, SUBSCRIPTIONS_TABLE, DELIVERIES_TABLE] as const;
