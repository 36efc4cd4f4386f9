/**
 * The recovery function's handler on the AWS adapters: the events table on DynamoDB Local, the
 * queues on a mocked SQS (aws-sdk-client-mock). Its SQS path takes the pipe's dead letters as
 * ops redrive them to the recovery queue; its direct invocation still empties the DLQ itself.
 */
import 'aws-sdk-client-mock-vitest/extend';
import {
  DeleteMessageCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  type SendMessageBatchRequestEntry,
  SQSClient,
} from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DynamoEventLog } from '../../functions/adapters/aws/events.ts';
import { SqsDeadLetterSource, SqsQueue } from '../../functions/adapters/aws/sqs-queue.ts';
import { EVENTS_TABLE } from '../../functions/adapters/aws/tables.ts';
import type { Event, EventRef } from '../../functions/core/model.ts';
import { RECOVERY_MARGIN_MS, type RecoveryReport } from '../../functions/core/recovery.ts';
import { createRecoveryHandler } from '../../functions/recovery/handler.ts';
import { lambdaContext } from '../../local/lambda-context.ts';
import { tablesPerTest } from '../dynamodb-local/tables.ts';
import { id, ManualClock, newEvent, pipeDeadLetter } from './fixtures.ts';

const local = tablesPerTest('recovery-handler');
const sqs = mockClient(SQSClient);
const FANOUT_URL = 'https://sqs.eu-west-1.amazonaws.com/123456789012/Stack-fanout';
const DLQ_URL = 'https://sqs.eu-west-1.amazonaws.com/123456789012/Stack-pipe-dlq';
const RECOVERY_ARN = 'arn:aws:sqs:eu-west-1:123456789012:Stack-pipe-recovery';

/** A letter as the recovery queue's event source hands it to the function. */
function record(messageId: string, body: string): SQSRecord {
  return {
    messageId,
    receiptHandle: `handle-${messageId}`,
    body,
    attributes: {
      ApproximateReceiveCount: '1',
      SentTimestamp: String(Date.now()),
      SenderId: 'sqs.amazonaws.com',
      ApproximateFirstReceiveTimestamp: String(Date.now()),
    },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: RECOVERY_ARN,
    awsRegion: 'eu-west-1',
  };
}

/** The EventRefs the fan-out queue was sent, in order. */
function sentToFanout(): EventRef[] {
  return sqs
    .commandCalls(SendMessageBatchCommand)
    .filter((call) => call.args[0].input.QueueUrl === FANOUT_URL)
    .flatMap((call) => call.args[0].input.Entries ?? [])
    .map((entry: SendMessageBatchRequestEntry) => JSON.parse(entry.MessageBody ?? '') as EventRef);
}

const refOf = (event: Event): EventRef => ({
  id: event.id,
  partnerId: event.partnerId,
  type: event.type,
  createdAt: event.createdAt,
});

describe('the recovery handler', () => {
  let clock: ManualClock;
  let log: DynamoEventLog;
  let inSpan: Event[];
  let outside: Event;
  let now: number;

  beforeEach(async () => {
    sqs.on(SendMessageBatchCommand).resolves({ Failed: [] });
    now = Date.now();
    clock = new ManualClock(new Date(now));
    log = new DynamoEventLog(local.client, await local.table(EVENTS_TABLE), { clock });
    const partnerId = id('ptr');
    inSpan = [(await log.append(newEvent(partnerId))).event, (await log.append(newEvent(partnerId))).event];
    clock.advance((3 * RECOVERY_MARGIN_MS) / 1000);
    outside = (await log.append(newEvent(partnerId))).event;
  });

  afterEach(() => {
    sqs.reset();
  });

  function handler() {
    const sqsClient = new SQSClient({ region: 'eu-west-1' });
    const logged: unknown[] = [];
    const handle = createRecoveryHandler(
      {
        events: log,
        fanout: new SqsQueue<EventRef>(sqsClient, FANOUT_URL, { backoffMs: 1 }),
        deadLetters: new SqsDeadLetterSource(sqsClient, DLQ_URL),
        clock,
      },
      60_000,
      (_message, error) => logged.push(error),
    );
    return { handle, logged };
  }

  it('queues the events written in a redriven letter’s span for fan-out, and reports the letters it cannot read', async () => {
    const { handle, logged } = handler();
    const batch: SQSEvent = {
      Records: [
        record('good', pipeDeadLetter(new Date(now), new Date(now + 1000))),
        record('bad', '{"not":"a stream batch"}'),
      ],
    };

    const response = (await handle(batch, lambdaContext('recovery'))) as SQSBatchResponse;

    // The bad one fails alone: after the queue's receives it returns to the pipe DLQ.
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: 'bad' }] });
    expect(logged).toHaveLength(1);
    expect(sentToFanout().sort((a, b) => a.id.localeCompare(b.id))).toEqual(inSpan.map(refOf));
    expect(sentToFanout().map((ref) => ref.id)).not.toContain(outside.id);
    // The event source deletes what succeeded: the handler deletes nothing itself.
    expect(sqs).not.toHaveReceivedCommand(DeleteMessageCommand);
    expect(sqs).not.toHaveReceivedCommand(ReceiveMessageCommand);
  });

  it('fails a letter whose events could not be queued, so it is tried again', async () => {
    sqs.on(SendMessageBatchCommand).rejects(new Error('ServiceUnavailable'));
    const { handle } = handler();

    const response = await handle(
      { Records: [record('letter', pipeDeadLetter(new Date(now), new Date(now + 1000)))] },
      lambdaContext('recovery'),
    );

    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: 'letter' }] });
  });

  it('invoked directly, still empties the pipe DLQ itself, leaving what it cannot read', async () => {
    sqs
      .on(ReceiveMessageCommand, { QueueUrl: DLQ_URL })
      .resolvesOnce({
        Messages: [
          { MessageId: 'm1', ReceiptHandle: 'r1', Body: pipeDeadLetter(new Date(now), new Date(now + 1000)) },
          { MessageId: 'm2', ReceiptHandle: 'r2', Body: 'unreadable' },
        ],
      })
      .resolves({ Messages: [{ MessageId: 'm2', ReceiptHandle: 'r2b', Body: 'unreadable' }] });
    sqs.on(DeleteMessageCommand).resolves({});
    const { handle } = handler();

    const report = (await handle({}, lambdaContext('recovery'))) as RecoveryReport;

    expect(report).toEqual({ batches: 1, events: 2, left: 1 });
    expect(sqs).toHaveReceivedCommandTimes(DeleteMessageCommand, 1);
    expect(sqs).toHaveReceivedCommandWith(DeleteMessageCommand, { QueueUrl: DLQ_URL, ReceiptHandle: 'r1' });
    expect(
      sentToFanout()
        .map((ref) => ref.id)
        .sort(),
    ).toEqual(inSpan.map((e) => e.id).sort());
  });
});
