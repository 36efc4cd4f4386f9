/**
 * What the EventBridge Pipe from the events table's stream to the bus does, as data: the CDK
 * stack deploys exactly these values, and the tests apply them to real DynamoDB Local stream
 * records to check that what reaches the bus is what the fan-out handler (and the local
 * router's `toBusEnvelope`) expects.
 */
import { EVENT_SOURCE } from '../../core/patterns.ts';

/** Only inserts of event items: counters, pointers and idempotency items never leave the table. */
export const PIPE_FILTER_PATTERN = {
  eventName: ['INSERT'],
  dynamodb: { NewImage: { kind: { S: ['event'] } } },
} as const;

/** The bus event's detail: an EventRef (the dispatcher loads the payload itself). */
export const PIPE_INPUT_TEMPLATE =
  '{"id": "<$.dynamodb.NewImage.id.S>", "partnerId": "<$.dynamodb.NewImage.partnerId.S>", ' +
  '"type": "<$.dynamodb.NewImage.type.S>", "createdAt": "<$.dynamodb.NewImage.createdAt.S>"}';

/** The bus event's detail-type: the event type, a dynamic path into the stream record. */
export const PIPE_DETAIL_TYPE = '$.dynamodb.NewImage.type.S';

export const PIPE_SOURCE = EVENT_SOURCE;
