/**
 * SqsOpsQueues against a mocked SQS (aws-sdk-client-mock): the dead-letter queues behind it are
 * small in-memory queues that answer receives, visibility changes, sends and deletes as SQS
 * does, so the adapter's requests are checked by what they do as well as by what they say.
 */
import 'aws-sdk-client-mock-vitest/extend';
import {
  CancelMessageMoveTaskCommand,
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ListMessageMoveTasksCommand,
  type Message,
  PurgeQueueCommand,
  PurgeQueueInProgress,
  ReceiveMessageCommand,
  ResourceNotFoundException,
  SendMessageBatchCommand,
  SQSClient,
  StartMessageMoveTaskCommand,
} from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AWS_OPS_QUEUES, type QueueAges, SqsOpsQueues } from '../../functions/adapters/aws/sqs-ops.ts';
import {
  PurgeInProgressError,
  QueueNotFoundError,
  RedriveInProgressError,
  RedriveNotFoundError,
} from '../../functions/core/errors.ts';

const sqs = mockClient(SQSClient);
const PREFIX = 'https://sqs.eu-west-1.amazonaws.com/123456789012/Dispatcher-';
const url = (name: string) => `${PREFIX}${name}`;
const arn = (name: string) => `arn:aws:sqs:eu-west-1:123456789012:Dispatcher-${name}`;

/** A queue as SQS keeps it: messages, each visible or hidden, with its receive count. */
class FakeQueue {
  readonly messages: {
    id: string;
    body: string;
    sentAt: number;
    receives: number;
    hidden: boolean;
    group?: string;
  }[] = [];
  #handles = 0;
  readonly #byHandle = new Map<string, string>();

  add(id: string, body: string, sentAt: number, receives = 0, group?: string): void {
    this.messages.push({
      id,
      body,
      sentAt,
      receives,
      hidden: false,
      ...(group === undefined ? {} : { group }),
    });
  }

  receive(max: number, visibilityTimeout: number): Message[] {
    const taken = this.messages.filter((m) => !m.hidden).slice(0, max);
    return taken.map((m) => {
      m.receives++;
      if (visibilityTimeout > 0) m.hidden = true;
      const handle = `h${++this.#handles}`;
      this.#byHandle.set(handle, m.id);
      return {
        MessageId: m.id,
        ReceiptHandle: handle,
        Body: m.body,
        Attributes: {
          SentTimestamp: String(m.sentAt),
          ApproximateReceiveCount: String(m.receives),
          ...(m.group === undefined ? {} : { MessageGroupId: m.group }),
        },
      };
    });
  }

  show(handle: string): void {
    const message = this.messages.find((m) => m.id === this.#byHandle.get(handle));
    if (message !== undefined) message.hidden = false;
  }

  delete(handle: string): void {
    const index = this.messages.findIndex((m) => m.id === this.#byHandle.get(handle));
    if (index >= 0) this.messages.splice(index, 1);
  }
}

let queues: Map<string, FakeQueue>;

/** Wires the mock to the fake queues, by URL; no move task has run. */
function serveQueues(): void {
  sqs.on(ListMessageMoveTasksCommand).resolves({ Results: [] });
  const of = (queueUrl: string | undefined) => {
    const name = (queueUrl ?? '').slice(PREFIX.length);
    let queue = queues.get(name);
    if (queue === undefined) {
      queue = new FakeQueue();
      queues.set(name, queue);
    }
    return queue;
  };
  sqs.on(GetQueueAttributesCommand).callsFake((input: { QueueUrl?: string }) => {
    const name = (input.QueueUrl ?? '').slice(PREFIX.length);
    const queue = of(input.QueueUrl);
    return {
      Attributes: {
        ApproximateNumberOfMessages: String(queue.messages.filter((m) => !m.hidden).length),
        ApproximateNumberOfMessagesNotVisible: String(queue.messages.filter((m) => m.hidden).length),
        ApproximateNumberOfMessagesDelayed: '0',
        QueueArn: arn(name),
      },
    };
  });
  sqs
    .on(ReceiveMessageCommand)
    .callsFake((input: { QueueUrl?: string; MaxNumberOfMessages?: number; VisibilityTimeout?: number }) => ({
      Messages: of(input.QueueUrl).receive(input.MaxNumberOfMessages ?? 1, input.VisibilityTimeout ?? 30),
    }));
  sqs
    .on(ChangeMessageVisibilityBatchCommand)
    .callsFake((input: { QueueUrl?: string; Entries?: { Id?: string; ReceiptHandle?: string }[] }) => {
      for (const entry of input.Entries ?? []) of(input.QueueUrl).show(entry.ReceiptHandle ?? '');
      return { Successful: (input.Entries ?? []).map((e) => ({ Id: e.Id })), Failed: [] };
    });
  sqs
    .on(DeleteMessageBatchCommand)
    .callsFake((input: { QueueUrl?: string; Entries?: { Id?: string; ReceiptHandle?: string }[] }) => {
      for (const entry of input.Entries ?? []) of(input.QueueUrl).delete(entry.ReceiptHandle ?? '');
      return { Successful: (input.Entries ?? []).map((e) => ({ Id: e.Id })), Failed: [] };
    });
  sqs
    .on(SendMessageBatchCommand)
    .callsFake(
      (input: {
        QueueUrl?: string;
        Entries?: { Id?: string; MessageBody?: string; MessageGroupId?: string }[];
      }) => {
        const queue = of(input.QueueUrl);
        for (const entry of input.Entries ?? []) {
          queue.add(
            `sent-${entry.Id}-${queue.messages.length}`,
            entry.MessageBody ?? '',
            0,
            0,
            entry.MessageGroupId,
          );
        }
        return { Successful: (input.Entries ?? []).map((e) => ({ Id: e.Id, MessageId: 'x' })), Failed: [] };
      },
    );
}

/** A clock that moves only when the adapter waits. */
function pacedTime() {
  let now = Date.parse('2026-12-03T10:00:00.000Z');
  const slept: number[] = [];
  return {
    clock: { now: () => new Date(now) },
    sleep: async (ms: number) => {
      slept.push(ms);
      now += ms;
    },
    slept,
  };
}

function opsQueues(
  options: { ages?: QueueAges; time?: ReturnType<typeof pacedTime>; moveBudgetMs?: number } = {},
) {
  const time = options.time ?? pacedTime();
  return new SqsOpsQueues(
    new SQSClient({ region: 'eu-west-1' }),
    AWS_OPS_QUEUES.map(({ key: _, ...queue }) => ({ ...queue, url: url(queue.name) })),
    {
      clock: time.clock,
      sleep: time.sleep,
      ...(options.ages === undefined ? {} : { ages: options.ages }),
      ...(options.moveBudgetMs === undefined ? {} : { moveBudgetMs: options.moveBudgetMs }),
    },
  );
}

beforeEach(() => {
  queues = new Map();
  serveQueues();
});

afterEach(() => {
  sqs.reset();
});

describe('SqsOpsQueues.describe', () => {
  it('lists every work queue followed by the dead-letter queue that redrives to it, with depths and ages', async () => {
    const dlq = new FakeQueue();
    dlq.add('m1', '{}', 1);
    dlq.add('m2', '{}', 2);
    queues.set('delivery-dlq', dlq);
    const ages: QueueAges = {
      async oldestAgeSeconds(names) {
        expect(names).toContain('Dispatcher-delivery-dlq');
        return new Map([
          ['Dispatcher-delivery-dlq', 3600],
          ['Dispatcher-fanout', 12],
        ]);
      },
    };

    const described = await opsQueues({ ages }).describe();

    expect(described.map((q) => [q.name, q.kind, q.redrivesTo])).toEqual([
      ['fanout', 'work', undefined],
      ['fanout-dlq', 'dead-letter', 'fanout'],
      ['delivery', 'work', undefined],
      ['delivery-dlq', 'dead-letter', 'delivery'],
      ['slow', 'work', undefined],
      ['slow-dlq', 'dead-letter', 'slow'],
      ['pipe-recovery', 'work', undefined],
      ['pipe-dlq', 'dead-letter', 'pipe-recovery'],
    ]);
    expect(described.find((q) => q.name === 'delivery-dlq')).toEqual({
      name: 'delivery-dlq',
      kind: 'dead-letter',
      redrivesTo: 'delivery',
      visible: 2,
      inFlight: 0,
      delayed: 0,
      oldestAgeSeconds: 3600,
    });
    // Empty: no age, whatever CloudWatch last said.
    expect(described.find((q) => q.name === 'fanout')?.oldestAgeSeconds).toBeNull();
    expect(sqs).toHaveReceivedCommandTimes(GetQueueAttributesCommand, 8);
  });

  it('still answers when the ages cannot be read: they are unknown', async () => {
    queues.set('fanout-dlq', new FakeQueue());
    queues.get('fanout-dlq')?.add('m1', '{}', 1);
    const failing: QueueAges = { oldestAgeSeconds: () => Promise.reject(new Error('AccessDenied')) };

    const described = await opsQueues({ ages: failing }).describe();

    expect(described.find((q) => q.name === 'fanout-dlq')).toMatchObject({
      visible: 1,
      oldestAgeSeconds: null,
    });
  });
});

describe('SqsOpsQueues.peek', () => {
  it('returns distinct messages oldest first, with the receives before this one, and leaves them visible', async () => {
    const dlq = new FakeQueue();
    for (let i = 0; i < 14; i++) dlq.add(`m${i}`, `{"n":${i}}`, 1_000 * (20 - i), i === 0 ? 10 : 0);
    queues.set('delivery-dlq', dlq);

    const letters = await opsQueues().peek('delivery-dlq', 12);

    expect(letters).toHaveLength(12);
    expect(letters.map((l) => l.sentAt.getTime())).toEqual(
      [...letters.map((l) => l.sentAt.getTime())].sort((a, b) => a - b),
    );
    const first = letters.find((l) => l.messageId === 'm0');
    expect(first).toEqual({ messageId: 'm0', body: '{"n":0}', sentAt: new Date(20_000), receiveCount: 10 });
    expect(letters.find((l) => l.messageId === 'm5')?.receiveCount).toBe(0);
    expect(sqs).toHaveReceivedCommandWith(ReceiveMessageCommand, {
      QueueUrl: url('delivery-dlq'),
      MessageSystemAttributeNames: ['All'],
    });
    // Visible again at once, all of them.
    expect(dlq.messages.every((m) => !m.hidden)).toBe(true);
    expect(sqs).toHaveReceivedCommandWith(ChangeMessageVisibilityBatchCommand, {
      QueueUrl: url('delivery-dlq'),
      Entries: expect.arrayContaining([expect.objectContaining({ VisibilityTimeout: 0 })]),
    });
  });

  it('stops at the first receive that finds nothing', async () => {
    const dlq = new FakeQueue();
    dlq.add('m1', '{}', 1);
    queues.set('fanout-dlq', dlq);

    expect(await opsQueues().peek('fanout-dlq', 100)).toHaveLength(1);
    expect(sqs).toHaveReceivedCommandTimes(ReceiveMessageCommand, 2);
  });

  it('refuses a queue that is not a dead-letter queue, naming those that are', async () => {
    await expect(opsQueues().peek('delivery', 1)).rejects.toThrow(QueueNotFoundError);
    await expect(opsQueues().peek('nope', 1)).rejects.toThrow(/delivery-dlq/);
    expect(sqs).not.toHaveReceivedCommand(ReceiveMessageCommand);
  });
});

describe('SqsOpsQueues.startRedrive', () => {
  it('starts a move task of the whole queue to the queue it redrives to, at the pace asked', async () => {
    const dlq = new FakeQueue();
    dlq.add('m1', '{}', 1);
    dlq.add('m2', '{}', 2);
    queues.set('delivery-dlq', dlq);
    sqs.on(ListMessageMoveTasksCommand).resolves({ Results: [{ Status: 'COMPLETED', StartedTimestamp: 1 }] });
    sqs.on(StartMessageMoveTaskCommand).resolves({ TaskHandle: 'handle-1' });

    const task = await opsQueues().startRedrive('delivery-dlq', { maxPerSecond: 50 });

    expect(sqs).toHaveReceivedCommandWith(StartMessageMoveTaskCommand, {
      SourceArn: arn('delivery-dlq'),
      DestinationArn: arn('delivery'),
      MaxNumberOfMessagesPerSecond: 50,
    });
    expect(sqs).toHaveReceivedCommandWith(ListMessageMoveTasksCommand, { SourceArn: arn('delivery-dlq') });
    expect(task).toMatchObject({
      id: 'handle-1',
      queue: 'delivery-dlq',
      destination: 'delivery',
      status: 'running',
      moved: 0,
      toMove: 2,
      maxPerSecond: 50,
    });
  });

  it('redrives the pipe DLQ to the recovery queue, whose function re-emits the batches’ events', async () => {
    sqs.on(ListMessageMoveTasksCommand).resolves({ Results: [] });
    sqs.on(StartMessageMoveTaskCommand).resolves({ TaskHandle: 'handle-2' });

    const task = await opsQueues().startRedrive('pipe-dlq', {});

    expect(sqs).toHaveReceivedCommandWith(StartMessageMoveTaskCommand, {
      SourceArn: arn('pipe-dlq'),
      DestinationArn: arn('pipe-recovery'),
    });
    expect(task.destination).toBe('pipe-recovery');
  });

  it('refuses a second move task while one of the queue runs', async () => {
    sqs
      .on(ListMessageMoveTasksCommand)
      .resolves({ Results: [{ Status: 'RUNNING', TaskHandle: 'running-1' }] });

    await expect(opsQueues().startRedrive('fanout-dlq', {})).rejects.toThrow(RedriveInProgressError);
    await expect(opsQueues().startRedrive('fanout-dlq', {})).rejects.toThrow(/running-1/);
    // Nor does a move by hand compete with it.
    await expect(opsQueues().startRedrive('fanout-dlq', { max: 5 })).rejects.toThrow(RedriveInProgressError);
    expect(sqs).not.toHaveReceivedCommand(StartMessageMoveTaskCommand);
    expect(sqs).not.toHaveReceivedCommand(ReceiveMessageCommand);
  });

  it('with max, moves that many by hand, oldest first, each body and message group as it was, and answers done', async () => {
    const dlq = new FakeQueue();
    for (let i = 0; i < 25; i++) dlq.add(`m${i}`, `{"n":${i}}`, i, 10, i % 2 === 0 ? 'sub_1' : undefined);
    queues.set('delivery-dlq', dlq);

    const task = await opsQueues().startRedrive('delivery-dlq', { max: 12 });

    expect(task).toMatchObject({
      queue: 'delivery-dlq',
      destination: 'delivery',
      status: 'completed',
      moved: 12,
      toMove: 12,
    });
    expect(task.id).toMatch(/^manual-/);
    expect(dlq.messages.map((m) => m.id)).toEqual(Array.from({ length: 13 }, (_, i) => `m${i + 12}`));
    const moved = queues.get('delivery')?.messages ?? [];
    expect(moved.map((m) => m.body)).toEqual(Array.from({ length: 12 }, (_, i) => `{"n":${i}}`));
    expect(moved.map((m) => m.group)).toEqual(
      Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? 'sub_1' : undefined)),
    );
    expect(sqs).not.toHaveReceivedCommand(StartMessageMoveTaskCommand);
  });

  it('with max and a pace, waits so no second moves more than the pace', async () => {
    const dlq = new FakeQueue();
    for (let i = 0; i < 10; i++) dlq.add(`m${i}`, '{}', i);
    queues.set('fanout-dlq', dlq);
    const time = pacedTime();

    const task = await opsQueues({ time }).startRedrive('fanout-dlq', { max: 6, maxPerSecond: 2 });

    expect(task).toMatchObject({ status: 'completed', moved: 6, maxPerSecond: 2 });
    // Two a receive, then a second's wait before the next two.
    const receives = sqs
      .commandCalls(ReceiveMessageCommand)
      .map((call) => call.args[0].input.MaxNumberOfMessages);
    expect(receives).toEqual([2, 2, 2]);
    expect(time.slept).toEqual([1000, 1000]);
  });

  it('with max, stops when its time is spent, having moved what it could', async () => {
    const dlq = new FakeQueue();
    for (let i = 0; i < 10; i++) dlq.add(`m${i}`, '{}', i);
    queues.set('fanout-dlq', dlq);

    const task = await opsQueues({ moveBudgetMs: 2_500 }).startRedrive('fanout-dlq', {
      max: 10,
      maxPerSecond: 1,
    });

    expect(task).toMatchObject({ status: 'completed', moved: 3, toMove: 10 });
    expect(dlq.messages).toHaveLength(7);
  });

  it('with max, stops at a send the destination refuses: deletes only what was sent, shows the rest again', async () => {
    const dlq = new FakeQueue();
    for (let i = 0; i < 3; i++) dlq.add(`m${i}`, `{"n":${i}}`, i);
    queues.set('fanout-dlq', dlq);
    sqs.on(SendMessageBatchCommand).resolves({
      Successful: [{ Id: '0', MessageId: 'x', MD5OfMessageBody: '' }],
      Failed: [
        { Id: '1', Code: 'InternalError', SenderFault: false },
        { Id: '2', Code: 'InternalError', SenderFault: false },
      ],
    });

    const task = await opsQueues().startRedrive('fanout-dlq', { max: 3 });

    expect(task).toMatchObject({ status: 'failed', moved: 1 });
    expect(task.failureReason).toMatch(/fanout refused 2 message\(s\): InternalError/);
    expect(dlq.messages.map((m) => [m.id, m.hidden])).toEqual([
      ['m1', false],
      ['m2', false],
    ]);
  });
});

describe('SqsOpsQueues.redrives', () => {
  it('maps the move tasks SQS lists, newest first, naming their destination by its ops name', async () => {
    sqs.on(ListMessageMoveTasksCommand).resolves({
      Results: [
        {
          Status: 'COMPLETED',
          SourceArn: arn('delivery-dlq'),
          DestinationArn: arn('delivery'),
          ApproximateNumberOfMessagesMoved: 40,
          ApproximateNumberOfMessagesToMove: 40,
          StartedTimestamp: Date.parse('2026-12-03T09:00:00.000Z'),
        },
        {
          TaskHandle: 'handle-9',
          Status: 'RUNNING',
          SourceArn: arn('delivery-dlq'),
          DestinationArn: arn('delivery'),
          MaxNumberOfMessagesPerSecond: 10,
          ApproximateNumberOfMessagesMoved: 3,
          StartedTimestamp: Date.parse('2026-12-03T10:00:00.000Z'),
        },
        {
          Status: 'FAILED',
          SourceArn: arn('delivery-dlq'),
          FailureReason: 'AWS.SimpleQueueService.NonExistentQueue',
          StartedTimestamp: Date.parse('2026-12-03T08:00:00.000Z'),
        },
      ],
    });

    const tasks = await opsQueues().redrives('delivery-dlq');

    expect(tasks).toEqual([
      {
        id: 'handle-9',
        queue: 'delivery-dlq',
        destination: 'delivery',
        status: 'running',
        moved: 3,
        toMove: null,
        maxPerSecond: 10,
        startedAt: '2026-12-03T10:00:00.000Z',
      },
      {
        id: 'delivery-dlq@2026-12-03T09:00:00.000Z',
        queue: 'delivery-dlq',
        destination: 'delivery',
        status: 'completed',
        moved: 40,
        toMove: 40,
        startedAt: '2026-12-03T09:00:00.000Z',
      },
      {
        id: 'delivery-dlq@2026-12-03T08:00:00.000Z',
        queue: 'delivery-dlq',
        destination: 'delivery',
        status: 'failed',
        moved: 0,
        toMove: null,
        startedAt: '2026-12-03T08:00:00.000Z',
        failureReason: 'AWS.SimpleQueueService.NonExistentQueue',
      },
    ]);
  });

  it('keeps the handle a task was followed by once SQS no longer lists it', async () => {
    const startedAt = Date.parse('2026-12-03T10:00:00.000Z');
    sqs
      .on(ListMessageMoveTasksCommand)
      .resolvesOnce({ Results: [{ TaskHandle: 'handle-1', Status: 'RUNNING', StartedTimestamp: startedAt }] })
      .resolves({
        Results: [{ Status: 'COMPLETED', StartedTimestamp: startedAt, ApproximateNumberOfMessagesMoved: 5 }],
      });
    const ops = opsQueues();

    await ops.redrives('fanout-dlq');
    const [done] = await ops.redrives('fanout-dlq');

    expect(done).toMatchObject({ id: 'handle-1', status: 'completed', moved: 5 });
  });
});

describe('SqsOpsQueues.cancelRedrive', () => {
  it('cancels the queue’s running task and answers it cancelling, with what it moved', async () => {
    sqs.on(ListMessageMoveTasksCommand).resolves({
      Results: [
        { TaskHandle: 'handle-1', Status: 'RUNNING', DestinationArn: arn('fanout'), StartedTimestamp: 5 },
      ],
    });
    sqs.on(CancelMessageMoveTaskCommand).resolves({ ApproximateNumberOfMessagesMoved: 7 });

    const task = await opsQueues().cancelRedrive('fanout-dlq', 'handle-1');

    expect(sqs).toHaveReceivedCommandWith(CancelMessageMoveTaskCommand, { TaskHandle: 'handle-1' });
    expect(task).toMatchObject({
      id: 'handle-1',
      queue: 'fanout-dlq',
      destination: 'fanout',
      status: 'cancelling',
      moved: 7,
    });
  });

  it('refuses a task that is not running on that queue, without asking SQS to cancel it', async () => {
    sqs.on(ListMessageMoveTasksCommand).resolves({ Results: [{ Status: 'COMPLETED', StartedTimestamp: 5 }] });

    await expect(opsQueues().cancelRedrive('fanout-dlq', 'handle-1')).rejects.toThrow(RedriveNotFoundError);
    expect(sqs).not.toHaveReceivedCommand(CancelMessageMoveTaskCommand);
  });

  it('answers 404 for a task that ended between the listing and the cancel', async () => {
    sqs
      .on(ListMessageMoveTasksCommand)
      .resolves({ Results: [{ TaskHandle: 'handle-1', Status: 'RUNNING' }] });
    sqs
      .on(CancelMessageMoveTaskCommand)
      .rejects(new ResourceNotFoundException({ message: 'no such task', $metadata: {} }));

    const error = await opsQueues()
      .cancelRedrive('fanout-dlq', 'handle-1')
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(RedriveNotFoundError);
    expect((error as RedriveNotFoundError).status).toBe(404);
  });
});

describe('SqsOpsQueues.purge', () => {
  it('counts what the queue holds, then purges it', async () => {
    const dlq = new FakeQueue();
    dlq.add('m1', '{}', 1);
    dlq.add('m2', '{}', 2);
    queues.set('slow-dlq', dlq);
    sqs.on(PurgeQueueCommand).resolves({});

    expect(await opsQueues().purge('slow-dlq')).toEqual({ purged: 2 });
    expect(sqs).toHaveReceivedCommandWith(PurgeQueueCommand, { QueueUrl: url('slow-dlq') });
  });

  it('answers 409 while the last purge of the queue runs: SQS allows one a minute', async () => {
    sqs.on(PurgeQueueCommand).rejects(
      new PurgeQueueInProgress({
        message: 'Only one PurgeQueue operation is allowed every 60 seconds.',
        $metadata: {},
      }),
    );

    const error = await opsQueues()
      .purge('slow-dlq')
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(PurgeInProgressError);
    expect((error as PurgeInProgressError).status).toBe(409);
    expect((error as Error).message).toMatch(/one purge a minute/);
  });

  it('purges dead-letter queues only', async () => {
    await expect(opsQueues().purge('delivery')).rejects.toThrow(QueueNotFoundError);
    expect(sqs).not.toHaveReceivedCommand(PurgeQueueCommand);
  });
});
