/**
 * The DynamoDB tables, described once: the CDK stack creates them from this, and the tests
 * create the same tables in DynamoDB Local. Every key is a string attribute.
 *
 * events       pk = partnerId, sk = `SEQ`: the partner's counter (attribute seq), moved by ADD
 *              pk = `<partnerId>#E<seq mod 4>`, sk = `E#<seq, 15 digits>`: an event (kind
 *                   'event': the stream carries these) or a hole (a place taken, never written)
 *              pk = `<partnerId>#K<h>`, sk = `IDEM#<key>`: idempotency key → eventId
 *              pk = `<partnerId>#I<h>`, sk = `ID#<eventId>`: eventId → seq, only for events
 *                   appended before ids said their seq (read, never written)
 *              pk = `<partnerId>#O<h>`, sk = `OKEY#<orderingKey>`: the ordering key's counter
 *                   (attribute keySeq, the place of the key's last event), moved in one
 *                   transaction with the put of the key's next event; no kind, never expires.
 *                   An event item carries its `orderingKey` and `keySeq`, and every event item
 *                   `ordering` (`<keySeq>/<orderingKey>`, or empty) for the pipe
 *              pk = `<partnerId>#C`, sk = `C#<name>`: a consumer (a server-kept cursor), and
 *                   sk = `COUNT`: how many the partner has (consumers.ts)
 *              (h: a hash mod 4). A partner's writes spread over these partitions; see events.ts
 *              for how seq order stays the order a poller may read without skipping, and how
 *              an event's id says its seq.
 * partners     pk = `PARTNER#<id>` (the partner, with the map of its keys' ids to hashes)
 *              | `KEY#<sha256 of API key>` (the key's record: partner, name, prefix, last used)
 *              | the rate limiter's counts (rate-limiter.ts)
 * subscriptions pk = id; GSI byPartner (partnerId, id)
 * deliveries   pk = `EVD#<event tag>`, sk = `<deliveryId>` (the delivery, with its first attempt)
 *              | `<deliveryId>#A#<nnnnnn>#<attemptId>` (its other attempts): a delivery id ends
 *              with its event's tag, so an event's deliveries share a partition and one is read
 *              by its id alone (a fan-out delivery's id is derived from its event and
 *              subscription, so a put only if absent makes fan-out idempotent);
 *              pk = `DLV#<deliveryId>`, sk = `DELIVERY` | `ATTEMPT#…`: a delivery whose id has
 *              no tag (stored before ids had one; the service makes no such id now);
 *              pk = `DUE#<shard>`, sk = `<dueAt>#<deliveryId>#<attempt>`: a try waiting longer
 *              than SQS can delay a message (due-retries.ts);
 *              pk = `PARK#<subscriptionId>`, sk = `<deliveryId>#<attempt>`: a connection
 *              subscription's try waiting for a connection (connections.ts);
 *              pk = `KEY#<partnerId>#<orderingKey>`, sk = `GATE` (the key's place fanned out
 *              through, `fanned`; never expires) | `P#<keySeq, 15 digits>` (an event parked at
 *              the gate, its EventRef as JSON text); pk = `LINE#<subscriptionId>#<orderingKey>`,
 *              sk = `E#<keySeq, 15 digits>` (a delivery waiting in an ordered subscription's line)
 *              | `HEAD` (the entry being tried, with the try taken and when): ordered-lines.ts.
 *              GSI bySubscription (gsiSubscriptionId, deliveryId) over delivery items only (a
 *              sparse index: only they carry `gsiSubscriptionId`), keys only: a try changes no
 *              key, so it writes no index entry, and listings read the deliveries by key. GSI
 *              byEvent (gsiEventId, deliveryId) holds only deliveries stored before ids had a
 *              tag; nothing writes it any more, and it empties as they expire
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
  /**
   * What the index holds besides the keys: every attribute, or nothing (an update that
   * changes no key then writes nothing to the index). @default 'ALL'
   */
  readonly projection?: 'ALL' | 'KEYS_ONLY';
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
      projection: 'KEYS_ONLY',
    },
    {
      indexName: 'byEvent',
      partitionKey: { name: 'gsiEventId', type: 'S' },
      sortKey: { name: 'id', type: 'S' },
      projection: 'KEYS_ONLY',
    },
  ],
  stream: false,
  ttlAttribute: TTL_ATTRIBUTE,
};

export const TABLES = [EVENTS_TABLE, PARTNERS_TABLE, SUBSCRIPTIONS_TABLE, DELIVERIES_TABLE] as const;

/**
 * The partners' open connections (connection subscriptions, on API Gateway's WebSocket API) and
 * the answers they send; connections.ts says which items. It holds nothing that outlives a
 * connection (tries waiting for one are parked in the deliveries table), so it belongs to the
 * service stack, not to TABLES: deleting it only closes the connections, which agents reopen.
 */
export const CONNECTIONS_TABLE: TableDefinition = {
  name: 'Connections',
  partitionKey: pk,
  sortKey: sk,
  globalIndexes: [],
  stream: false,
  ttlAttribute: TTL_ATTRIBUTE,
};
