import 'aws-sdk-client-mock-vitest/extend';
import { ChangeMessageVisibilityCommand, SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { QueueSendError, SqsQueue } from '../../functions/adapters/aws/sqs-queue.ts';

const QUEUE_URL = 'https://sqs.eu-west-1.amazonaws.com/123456789012/delivery';
const sqs = mockClient(SQSClient);

afterEach(() => {
  sqs.reset();
});

function queue() {
  return new SqsQueue<{ n: number }>(new SQSClient({ region: 'eu-west-1' }), QUEUE_URL, { backoffMs: 1 });
}

describe('SqsQueue', () => {
  describe('send', () => {
    it('sends in batches of ten, each body as JSON with its delay', async () => {
      sqs.on(SendMessageBatchCommand).resolves({ Successful: [], Failed: [] });

      await queue().send(
        Array.from({ length: 23 }, (_, n) => ({ body: { n }, ...(n === 0 ? { delaySeconds: 5 } : {}) })),
      );

      expect(sqs).toHaveReceivedCommandTimes(SendMessageBatchCommand, 3);
      expect(sqs).toHaveReceivedNthCommandWith(SendMessageBatchCommand, 1, {
        QueueUrl: QUEUE_URL,
        Entries: expect.arrayContaining([
          { Id: '0', MessageBody: '{"n":0}', DelaySeconds: 5 },
          { Id: '9', MessageBody: '{"n":9}' },
        ]),
      });
      const sizes = sqs
        .commandCalls(SendMessageBatchCommand)
        .map((call) => call.args[0].input.Entries?.length);
      expect(sizes).toEqual([10, 10, 3]);
    });

    it('puts a message in its group, making the standard queue a fair queue', async () => {
      sqs.on(SendMessageBatchCommand).resolves({ Failed: [] });

      await queue().send([{ body: { n: 1 }, groupId: 'sub_1' }]);

      expect(sqs).toHaveReceivedCommandWith(SendMessageBatchCommand, {
        QueueUrl: QUEUE_URL,
        Entries: [{ Id: '0', MessageBody: '{"n":1}', MessageGroupId: 'sub_1' }],
      });
    });

    it('sends nothing for no messages', async () => {
      await queue().send([]);
      expect(sqs).not.toHaveReceivedCommand(SendMessageBatchCommand);
    });

    it('retries only the entries SQS reported as failed', async () => {
      sqs
        .on(SendMessageBatchCommand)
        .resolvesOnce({ Failed: [{ Id: '1', Code: 'InternalError', SenderFault: false }] })
        .resolves({ Failed: [] });

      await queue().send([{ body: { n: 0 } }, { body: { n: 1 } }, { body: { n: 2 } }]);

      expect(sqs).toHaveReceivedCommandTimes(SendMessageBatchCommand, 2);
      expect(sqs).toHaveReceivedNthCommandWith(SendMessageBatchCommand, 2, {
        QueueUrl: QUEUE_URL,
        Entries: [{ Id: '1', MessageBody: '{"n":1}' }],
      });
    });

    it('gives up after its tries with an error naming the failures', async () => {
      sqs
        .on(SendMessageBatchCommand)
        .resolves({ Failed: [{ Id: '0', Code: 'ServiceUnavailable', SenderFault: false }] });

      await expect(queue().send([{ body: { n: 0 } }])).rejects.toThrow(QueueSendError);
      expect(sqs).toHaveReceivedCommandTimes(SendMessageBatchCommand, 4);
    });

    it('does not retry a sender fault, which would fail again', async () => {
      sqs.on(SendMessageBatchCommand).resolves({
        Failed: [{ Id: '0', Code: 'InvalidParameterValue', Message: 'body too long', SenderFault: true }],
      });

      await expect(queue().send([{ body: { n: 0 } }])).rejects.toThrow(
        /InvalidParameterValue \(body too long\)/,
      );
      expect(sqs).toHaveReceivedCommandTimes(SendMessageBatchCommand, 1);
    });
  });

  describe('changeVisibility', () => {
    it('hides the received message for the given seconds', async () => {
      sqs.on(ChangeMessageVisibilityCommand).resolves({});

      await queue().changeVisibility('handle-1', 300);

      expect(sqs).toHaveReceivedCommandWith(ChangeMessageVisibilityCommand, {
        QueueUrl: QUEUE_URL,
        ReceiptHandle: 'handle-1',
        VisibilityTimeout: 300,
      });
    });
  });
});
