/**
 * DynamoEventLog.get reads the place an event's id says, eventually consistent first and
 * consistently when that finds nothing. DynamoDB Local is always consistent, so a replica that has not caught up yet is
 * played here by a mocked client (the contract suite runs the reads themselves on DynamoDB
 * Local).
 */
import 'aws-sdk-client-mock-vitest/extend';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { DynamoEventLog, eventIdAt } from '../../functions/adapters/aws/events.ts';
import { id, makeEvent, newEvent } from '../contract/fixtures.ts';

const documents = mockClient(DynamoDBDocumentClient);
const client = DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' }));
const partnerId = id('ptr');
const draft = newEvent(partnerId);
const time = Date.parse(draft.createdAt);
const event = { ...draft, id: eventIdAt(partnerId, 7, time) };
const stored = { ...event, payload: JSON.stringify(event.payload), kind: 'event', seq: 7, writtenAt: 1 };
const place = { pk: `${partnerId}#E3`, sk: 'E#000000000000007' };

beforeEach(() => documents.reset());

describe('DynamoEventLog.get', () => {
  it('reads the event at the place its id says, eventually consistent: one read of half the units', async () => {
    documents.on(GetCommand, { Key: place }).resolves({ Item: stored });
    const log = new DynamoEventLog(client, 'events');

    expect(await log.get(partnerId, event.id)).toEqual(event);
    expect(documents).toHaveReceivedCommandTimes(GetCommand, 1);
    expect(documents).not.toHaveReceivedCommandWith(GetCommand, { ConsistentRead: true });
  });

  it('reads again consistently when a replica has not got the event yet', async () => {
    documents
      .on(GetCommand, { ConsistentRead: false })
      .resolves({})
      .on(GetCommand, { ConsistentRead: true, Key: place })
      .resolves({ Item: stored });
    const log = new DynamoEventLog(client, 'events');

    expect(await log.get(partnerId, event.id)).toEqual(event);
    expect(documents).toHaveReceivedCommandTimes(GetCommand, 2);
  });

  it('takes no event from a place that holds another one or a hole', async () => {
    documents
      .on(GetCommand, { ConsistentRead: false, Key: place })
      .resolves({ Item: { kind: 'hole', seq: 7, writtenAt: 1 } })
      .on(GetCommand, { ConsistentRead: true, Key: place })
      .resolves({ Item: { ...stored, id: eventIdAt(partnerId, 7, time + 1) } });
    const log = new DynamoEventLog(client, 'events');

    expect(await log.get(partnerId, event.id)).toBeUndefined();
  });

  it('reads an id from before ids said their seq through its pointer, eventually consistent first', async () => {
    const old = makeEvent(partnerId);
    documents
      .on(GetCommand, { Key: { sk: `ID#${old.id}` } })
      .resolves({ Item: { seq: 8 } })
      .on(GetCommand, { Key: { pk: `${partnerId}#E0`, sk: 'E#000000000000008' } })
      .resolves({
        Item: { ...old, payload: JSON.stringify(old.payload), kind: 'event', seq: 8, writtenAt: 1 },
      });
    const log = new DynamoEventLog(client, 'events');

    expect(await log.get(partnerId, old.id)).toEqual(old);
    expect(documents).toHaveReceivedCommandTimes(GetCommand, 2);
    expect(documents).not.toHaveReceivedCommandWith(GetCommand, { ConsistentRead: true });
  });
});
