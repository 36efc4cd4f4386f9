/**
 * What the EventBridge Pipe from the events table's stream to the fan-out queue does, as data:
 * the CDK stack deploys exactly these values, and the tests apply them to real DynamoDB Local
 * stream records to check that each message the queue gets is the EventRef the fan-out
 * handler reads (the same the local router sends).
 */

/**
 * Only inserts of event items: counters (the partner's and its ordering keys'), pointers and
 * idempotency items never leave the table.
 */
export const PIPE_FILTER_PATTERN = {
  eventName: ['INSERT'],
  dynamodb: { NewImage: { kind: { S: ['event'] } } },
} as const;

/**
 * Each message's body: an EventRef (the dispatcher loads the payload itself). A template
 * cannot leave out a field an item lacks, so the ordering key and its place come as one text
 * every event item has, `ordering` (`<keySeq>/<orderingKey>`, or empty), which FanoutMessage
 * reads into `orderingKey` and `keySeq`.
 */
export const PIPE_INPUT_TEMPLATE =
  '{"id": "<$.dynamodb.NewImage.id.S>", "partnerId": "<$.dynamodb.NewImage.partnerId.S>", ' +
  '"type": "<$.dynamodb.NewImage.type.S>", "createdAt": "<$.dynamodb.NewImage.createdAt.S>", ' +
  '"ordering": "<$.dynamodb.NewImage.ordering.S>"}';
