/**
 * DynamoEventLog.get reads eventually consistent first and consistently when that finds
 * nothing. DynamoDB Local is always consistent, so a replica that has not caught up yet is
 * played here by a mocked client (the contract suite runs the reads themselves on DynamoDB
 * Local).
 */
import 'aws-sdk-client-mock-vitest/extend';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { DynamoEventLog } from '../../functions/adapters/aws/events.ts';
import { id, makeEvent } from '../contract/fixtures.ts';

const documents = mockClient(DynamoDBDocumentClient);
const client = DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' }));
const partnerId = id('ptr');
const event = makeEvent(partnerId);
const stored = { ...event, payload: JSON.stringify(event.payload), kind: 'event', seq: 7, writtenAt: 1 };

beforeEach(() => documents.reset());

describe('DynamoEventLog.get', () => {
  it('takes an eventually consistent read when it finds the event: half the units', async () => {
    documents
      .on(GetCommand, { Key: { sk: `ID#${event.id}` } })
      .resolves({ Item: { seq: 7 } })
      .on(GetCommand, { Key: { pk: `${partnerId}#E3`, sk: 'E#000000000000007' } })
      .resolves({ Item: stored });
    const log = new DynamoEventLog(client, 'events');

    expect(await log.get(partnerId, event.id)).toEqual(event);
    expect(documents).toHaveReceivedCommandTimes(GetCommand, 2);
    expect(documents).not.toHaveReceivedCommandWith(GetCommand, { ConsistentRead: true });
  });

  it('reads again consistently when a replica has not got the pointer or the event yet', async () => {
    documents
      .on(GetCommand, { ConsistentRead: false })
      .resolves({})
      .on(GetCommand, {
        ConsistentRead: true,
        Key: { sk: `ID#${event.id}` },
      })
      .resolves({ Item: { seq: 7 } })
      .on(GetCommand, { ConsistentRead: true, Key: { pk: `${partnerId}#E3`, sk: 'E#000000000000007' } })
      .resolves({ Item: stored });
    const log = new DynamoEventLog(client, 'events');

    expect(await log.get(partnerId, event.id)).toEqual(event);
    expect(documents).toHaveReceivedCommandWith(GetCommand, { ConsistentRead: true });
  });

  it('takes no event at a stale place that holds another one or a hole', async () => {
    documents
      .on(GetCommand, { ConsistentRead: false, Key: { sk: `ID#${event.id}` } })
      .resolves({ Item: { seq: 7 } })
      .on(GetCommand, { ConsistentRead: false, Key: { pk: `${partnerId}#E3` } })
      .resolves({ Item: { kind: 'hole', seq: 7, writtenAt: 1 } })
      .on(GetCommand, { ConsistentRead: true, Key: { sk: `ID#${event.id}` } })
      .resolves({ Item: { seq: 8 } })
      .on(GetCommand, { ConsistentRead: true, Key: { pk: `${partnerId}#E0`, sk: 'E#000000000000008' } })
      .resolves({ Item: { ...stored, seq: 8 } });
    const log = new DynamoEventLog(client, 'events');

    expect(await log.get(partnerId, event.id)).toEqual(event);
  });
});
