import 'aws-sdk-client-mock-vitest/extend';
import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { QueueSendError, SqsQueue } from '../../functions/adapters/aws/sqs-queue.ts';
import { MessagesNotSentError } from '../../functions/core/errors.ts';

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

    it('names every message still not sent after the retries, by its position in the send, across batches', async () => {
      sqs.on(SendMessageBatchCommand).callsFake((input: { Entries?: { Id?: string }[] }) => {
        const ids = (input.Entries ?? []).map((e) => e.Id);
        // The second batch (messages 10-12) always loses its entry 2; the first sends whole.
        return ids.length <= 3 && ids.includes('2')
          ? { Failed: [{ Id: '2', Code: 'ServiceUnavailable', SenderFault: false }] }
          : { Failed: [] };
      });

      const error = await queue()
        .send(Array.from({ length: 13 }, (_, n) => ({ body: { n } })))
        .then(
          () => undefined,
          (e: unknown) => e,
        );

      expect(error).toBeInstanceOf(QueueSendError);
      expect(error).toBeInstanceOf(MessagesNotSentError);
      expect((error as QueueSendError).unsent).toEqual([12]);
      expect((error as QueueSendError).failed).toEqual([
        { Id: '2', Code: 'ServiceUnavailable', SenderFault: false },
      ]);
    });

    it('counts every entry of a batch whose request failed as not sent, and still sends the other batches', async () => {
      sqs
        .on(SendMessageBatchCommand)
        .resolvesOnce({ Failed: [] })
        .rejectsOnce(new Error('socket hang up'))
        .resolves({ Failed: [] });

      const error = await queue()
        .send(Array.from({ length: 25 }, (_, n) => ({ body: { n } })))
        .then(
          () => undefined,
          (e: unknown) => e,
        );

      expect(error).toBeInstanceOf(QueueSendError);
      expect((error as QueueSendError).unsent).toEqual([10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
      expect((error as Error).message).toContain('socket hang up');
      expect((error as Error).cause).toEqual(new Error('socket hang up'));
      expect(sqs).toHaveReceivedCommandTimes(SendMessageBatchCommand, 3);
    });

    it('retries the transient failures of a batch beside a sender fault, which is not retried', async () => {
      sqs
        .on(SendMessageBatchCommand)
        .resolvesOnce({
          Failed: [
            { Id: '0', Code: 'InvalidParameterValue', SenderFault: true },
            { Id: '1', Code: 'InternalError', SenderFault: false },
          ],
        })
        .resolves({ Failed: [] });

      const error = await queue()
        .send([{ body: { n: 0 } }, { body: { n: 1 } }, { body: { n: 2 } }])
        .then(
          () => undefined,
          (e: unknown) => e,
        );

      expect((error as QueueSendError).unsent).toEqual([0]);
      expect(sqs).toHaveReceivedNthCommandWith(SendMessageBatchCommand, 2, {
        QueueUrl: QUEUE_URL,
        Entries: [{ Id: '1', MessageBody: '{"n":1}' }],
      });
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
});
