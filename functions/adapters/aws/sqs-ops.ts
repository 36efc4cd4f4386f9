/**
 * The deployment's queues as ops handle them (OpsQueues), on SQS: their depths, a look at a
 * dead-letter queue's messages, redrives and purges.
 *
 * A redrive of a whole dead-letter queue is an SQS message move task (StartMessageMoveTask),
 * to the queue the table names as its `redrivesTo`, always given as the destination: the
 * delivery and pipe dead-letter queues hold messages sent to them directly (by the dispatcher,
 * by the pipe), which SQS cannot redrive "to their source". A redrive of at most `max`
 * messages, which a move task cannot do, moves them here, by hand (see #moveByHand).
 */
import { randomUUID } from 'node:crypto';
import {
  CancelMessageMoveTaskCommand,
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ListMessageMoveTasksCommand,
  type ListMessageMoveTasksResultEntry,
  type Message,
  PurgeQueueCommand,
  ReceiveMessageCommand,
  type ReceiveMessageCommandOutput,
  SendMessageBatchCommand,
  type SQSClient,
  StartMessageMoveTaskCommand,
} from '@aws-sdk/client-sqs';
import {
  PurgeInProgressError,
  QueueNotFoundError,
  RedriveInProgressError,
  RedriveNotFoundError,
  ValidationError,
} from '../../core/errors.ts';
import type {
  Clock,
  OpsQueues,
  QueueInfo,
  QueueKind,
  QueueLayout,
  RedriveStatus,
  RedriveTask,
  StoredDeadLetter,
} from '../../core/ports.ts';
import { systemClock } from '../clock.ts';

/** One queue of the deployment, as ops name it. */
export interface OpsQueue {
  /** The name ops use: `delivery`, `delivery-dlq`, `pipe-dlq`, … */
  name: string;
  kind: QueueKind;
  url: string;
  /** Its ARN; when not given, read once from the queue (GetQueueAttributes QueueArn). */
  arn?: string;
  /** A dead-letter queue's: the name of the queue its redrive sends messages to. */
  redrivesTo?: string;
}

/** The settings (LambdaConfig keys) that hold the URLs of the deployment's queues. */
export type OpsQueueUrls = Record<(typeof AWS_OPS_QUEUES)[number]['key'], string>;

/**
 * The queues of a deployment on AWS as ops name them, each with the setting that holds its
 * URL: the work queues in the order events flow through them, each with the dead-letter queue
 * that redrives to it. The pipe's dead-letter queue redrives to the recovery queue, whose
 * consumer queues its batches' events for fan-out again.
 */
export const AWS_OPS_QUEUES = [
  { key: 'fanoutQueueUrl', name: 'fanout', kind: 'work' },
  { key: 'fanoutDeadLetterQueueUrl', name: 'fanout-dlq', kind: 'dead-letter', redrivesTo: 'fanout' },
  { key: 'deliveryQueueUrl', name: 'delivery', kind: 'work' },
  { key: 'deliveryDeadLetterQueueUrl', name: 'delivery-dlq', kind: 'dead-letter', redrivesTo: 'delivery' },
  { key: 'slowLaneQueueUrl', name: 'slow', kind: 'work' },
  { key: 'slowLaneDeadLetterQueueUrl', name: 'slow-dlq', kind: 'dead-letter', redrivesTo: 'slow' },
  { key: 'pipeRecoveryQueueUrl', name: 'pipe-recovery', kind: 'work' },
  { key: 'pipeDeadLetterQueueUrl', name: 'pipe-dlq', kind: 'dead-letter', redrivesTo: 'pipe-recovery' },
] as const satisfies readonly (Omit<OpsQueue, 'url' | 'arn'> & { key: string })[];

/** The age of each queue's oldest message, by the queue's own (physical) name; unknown ones left out. */
export interface QueueAges {
  oldestAgeSeconds(queueNames: readonly string[]): Promise<ReadonlyMap<string, number>>;
}

export interface SqsOpsQueuesOptions {
  /** Where the oldest messages' ages come from. @default - none: `oldestAgeSeconds` is null */
  ages?: QueueAges;
  /**
   * How long the messages a peek receives stay hidden should making them visible again fail
   * (they are made visible at once otherwise). @default 30
   */
  peekVisibilitySeconds?: number;
  /**
   * The time a redrive of at most `max` messages may take: it moves what it can in this time
   * and answers. @default 15_000 (an API request's)
   */
  moveBudgetMs?: number;
  clock?: Clock;
  /** Waits, to keep a move to its pace. @default setTimeout */
  sleep?: (ms: number) => Promise<void>;
}

/** SQS's largest batch: of a receive, a send, a delete or a change of visibility. */
const BATCH = 10;
/** Seconds a message being moved by hand stays hidden: longer than one receive, send and delete take. */
const MOVE_VISIBILITY_SECONDS = 60;
/** A move task's fastest pace, and the most a pace may ask (SQS API reference, StartMessageMoveTask). */
const MAX_MOVE_PER_SECOND = 500;

const STATUSES: Readonly<Record<string, RedriveStatus>> = {
  RUNNING: 'running',
  COMPLETED: 'completed',
  CANCELLING: 'cancelling',
  CANCELLED: 'cancelled',
  FAILED: 'failed',
};

interface Depths {
  visible: number;
  inFlight: number;
  delayed: number;
}

function count(value: string | undefined): number {
  const n = Number(value ?? 0);
  return Number.isFinite(n) && n > 0 ? n : 0;
}

/** The queue's own name: the last segment of its URL (and of its ARN). */
function physicalName(urlOrArn: string): string {
  const tail = urlOrArn.split(/[/:]/).at(-1);
  if (tail === undefined || tail === '') throw new Error(`no queue name in ${urlOrArn}`);
  return tail;
}

function isNamed(error: unknown, ...names: string[]): boolean {
  return error instanceof Error && names.includes(error.name);
}

function reasonOf(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

export class SqsOpsQueues implements OpsQueues {
  readonly #client: SQSClient;
  /** Work queues first, each followed by the dead-letter queues that redrive to it. */
  readonly #queues: readonly OpsQueue[];
  readonly #byName: ReadonlyMap<string, OpsQueue>;
  /** Ops names by the queues' own names, to name a move task's destination. */
  readonly #byPhysicalName: ReadonlyMap<string, string>;
  readonly #arns = new Map<string, string>();
  /**
   * The handles of move tasks seen running, by source ARN and start time: SQS lists a task's
   * handle only while it runs, and a finished task keeps the id it was followed by.
   */
  readonly #handles = new Map<string, string>();
  readonly #ages: QueueAges | undefined;
  readonly #peekVisibilitySeconds: number;
  readonly #moveBudgetMs: number;
  readonly #clock: Clock;
  readonly #sleep: (ms: number) => Promise<void>;

  constructor(client: SQSClient, queues: readonly OpsQueue[], options: SqsOpsQueuesOptions = {}) {
    this.#client = client;
    const names = queues.map((q) => q.name);
    if (new Set(names).size !== names.length)
      throw new Error(`queue names must be unique: ${names.join(', ')}`);
    const byName = new Map(queues.map((q) => [q.name, q]));
    for (const q of queues) {
      if (q.kind === 'dead-letter' && (q.redrivesTo === undefined || !byName.has(q.redrivesTo))) {
        throw new Error(`dead-letter queue ${q.name} must redrive to one of the queues given`);
      }
      if (q.arn !== undefined) this.#arns.set(q.name, q.arn);
    }
    const work = queues.filter((q) => q.kind === 'work');
    const ordered = work.flatMap((w) => [
      w,
      ...queues.filter((q) => q.kind === 'dead-letter' && q.redrivesTo === w.name),
    ]);
    this.#queues = [...ordered, ...queues.filter((q) => !ordered.includes(q))];
    this.#byName = byName;
    this.#byPhysicalName = new Map(queues.map((q) => [physicalName(q.url), q.name]));
    this.#ages = options.ages;
    this.#peekVisibilitySeconds = options.peekVisibilitySeconds ?? 30;
    this.#moveBudgetMs = options.moveBudgetMs ?? 15_000;
    this.#clock = options.clock ?? systemClock;
    this.#sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  layout(): QueueLayout[] {
    return this.#queues.map((q) => ({
      name: q.name,
      kind: q.kind,
      ...(q.redrivesTo === undefined ? {} : { redrivesTo: q.redrivesTo }),
    }));
  }

  /** Every queue's depths, side by side, and their oldest messages' ages in one request (unknown if that fails). */
  async describe(): Promise<QueueInfo[]> {
    const ages = this.#ages;
    const [depths, oldest] = await Promise.all([
      Promise.all(this.#queues.map((q) => this.#depths(q))),
      ages === undefined
        ? new Map<string, number>()
        : ages
            .oldestAgeSeconds(this.#queues.map((q) => physicalName(q.url)))
            .catch(() => new Map<string, number>()),
    ]);
    return this.#queues.map((q, i) => {
      const d = depths[i] ?? { visible: 0, inFlight: 0, delayed: 0 };
      const empty = d.visible + d.inFlight + d.delayed === 0;
      return {
        name: q.name,
        kind: q.kind,
        ...(q.redrivesTo === undefined ? {} : { redrivesTo: q.redrivesTo }),
        visible: d.visible,
        inFlight: d.inFlight,
        delayed: d.delayed,
        oldestAgeSeconds: empty ? null : (oldest.get(physicalName(q.url)) ?? null),
      };
    });
  }

  /**
   * Receives up to `limit` messages, ten a receive, until it has that many or a receive finds
   * none, then makes every one visible again at once (each receive counts towards the
   * message's ApproximateReceiveCount, which the receive count reported leaves out: only this
   * peek's, not earlier peeks'). Oldest first, by the time each was first sent.
   */
  async peek(name: string, limit: number): Promise<StoredDeadLetter[]> {
    const queue = this.#deadLetterQueue(name);
    const received = new Map<string, Message>();
    const handles: string[] = [];
    try {
      while (received.size < limit) {
        const result = await this.#client.send(
          new ReceiveMessageCommand({
            QueueUrl: queue.url,
            MaxNumberOfMessages: Math.min(BATCH, limit - received.size),
            VisibilityTimeout: this.#peekVisibilitySeconds,
            // A second: every SQS server is asked, so a queue of a few messages answers them.
            WaitTimeSeconds: 1,
            MessageSystemAttributeNames: ['All'],
          }),
        );
        const messages = result.Messages ?? [];
        if (messages.length === 0) break;
        for (const message of messages) {
          if (message.ReceiptHandle !== undefined) handles.push(message.ReceiptHandle);
          if (message.MessageId !== undefined && !received.has(message.MessageId)) {
            received.set(message.MessageId, message);
          }
        }
      }
    } finally {
      await this.#makeVisible(queue.url, handles);
    }
    return [...received.values()]
      .map((message): StoredDeadLetter => {
        const attributes = message.Attributes ?? {};
        return {
          messageId: message.MessageId ?? '',
          body: message.Body ?? '',
          sentAt: new Date(count(attributes.SentTimestamp)),
          receiveCount: Math.max(0, count(attributes.ApproximateReceiveCount) - 1),
        };
      })
      .sort((a, b) => a.sentAt.getTime() - b.sentAt.getTime())
      .slice(0, limit);
  }

  /**
   * Without `max`: a move task of every message to the queue's `redrivesTo`. With `max`: moved
   * by hand, now (see #moveByHand). Either is refused while a move task of the queue runs.
   */
  async startRedrive(name: string, options: { max?: number; maxPerSecond?: number }): Promise<RedriveTask> {
    const queue = this.#deadLetterQueue(name);
    const destination = this.#destinationOf(queue);
    const { max, maxPerSecond } = options;
    if (
      maxPerSecond !== undefined &&
      (!Number.isInteger(maxPerSecond) || maxPerSecond < 1 || maxPerSecond > MAX_MOVE_PER_SECOND)
    ) {
      throw new ValidationError(`maxPerSecond must be a whole number from 1 to ${MAX_MOVE_PER_SECOND}`, [
        { field: 'maxPerSecond', message: `must be from 1 to ${MAX_MOVE_PER_SECOND}` },
      ]);
    }
    if (max !== undefined && (!Number.isInteger(max) || max < 1)) {
      throw new ValidationError('max must be a whole number, at least 1', [
        { field: 'max', message: 'must be at least 1' },
      ]);
    }
    const sourceArn = await this.#arn(queue);
    const running = (await this.#tasks(sourceArn)).find((task) => task.Status === 'RUNNING');
    if (running !== undefined) throw new RedriveInProgressError(name, running.TaskHandle ?? 'a move task');
    if (max !== undefined) return this.#moveByHand(queue, destination, max, maxPerSecond);

    const [depths, destinationArn] = await Promise.all([this.#depths(queue), this.#arn(destination)]);
    const started = await this.#client.send(
      new StartMessageMoveTaskCommand({
        SourceArn: sourceArn,
        DestinationArn: destinationArn,
        ...(maxPerSecond === undefined ? {} : { MaxNumberOfMessagesPerSecond: maxPerSecond }),
      }),
    );
    if (started.TaskHandle === undefined)
      throw new Error(`SQS started a move task of ${name} without a handle`);
    return {
      id: started.TaskHandle,
      queue: name,
      destination: destination.name,
      status: 'running',
      moved: 0,
      toMove: depths.visible,
      ...(maxPerSecond === undefined ? {} : { maxPerSecond }),
      startedAt: this.#clock.now().toISOString(),
    };
  }

  /**
   * The queue's move tasks SQS remembers (its ten latest), newest first. SQS gives a task's
   * handle only while it runs: a finished one keeps the handle this instance saw it run with,
   * else its id is the queue's name and its start time. Redrives of at most `max` messages,
   * moved by hand, are not among them.
   */
  async redrives(name: string): Promise<RedriveTask[]> {
    const queue = this.#deadLetterQueue(name);
    const sourceArn = await this.#arn(queue);
    const tasks = await this.#tasks(sourceArn);
    return tasks
      .sort((a, b) => (b.StartedTimestamp ?? 0) - (a.StartedTimestamp ?? 0))
      .map((task) => {
        const key = `${sourceArn}@${task.StartedTimestamp ?? 0}`;
        if (task.TaskHandle !== undefined) this.#handles.set(key, task.TaskHandle);
        const handle = task.TaskHandle ?? this.#handles.get(key);
        return this.#taskOf(queue, handle === undefined ? task : { ...task, TaskHandle: handle });
      });
  }

  /** Cancels the queue's running move task with that handle; what it moved stays moved. */
  async cancelRedrive(name: string, taskId: string): Promise<RedriveTask> {
    const queue = this.#deadLetterQueue(name);
    const running = (await this.#tasks(await this.#arn(queue))).find(
      (task) => task.Status === 'RUNNING' && task.TaskHandle === taskId,
    );
    if (running === undefined) throw new RedriveNotFoundError(name, taskId);
    let moved: number | undefined;
    try {
      const result = await this.#client.send(new CancelMessageMoveTaskCommand({ TaskHandle: taskId }));
      moved = result.ApproximateNumberOfMessagesMoved;
    } catch (error) {
      // Finished between the listing and the cancel.
      if (isNamed(error, 'ResourceNotFoundException')) throw new RedriveNotFoundError(name, taskId);
      throw error;
    }
    const task = this.#taskOf(queue, running);
    return { ...task, status: 'cancelling', moved: moved ?? task.moved };
  }

  /** Counts what the queue holds, then purges it: SQS allows one purge a minute per queue. */
  async purge(name: string): Promise<{ purged: number | null }> {
    const queue = this.#deadLetterQueue(name);
    const depths = await this.#depths(queue);
    try {
      await this.#client.send(new PurgeQueueCommand({ QueueUrl: queue.url }));
    } catch (error) {
      if (isNamed(error, 'PurgeQueueInProgress')) throw new PurgeInProgressError(name);
      throw error;
    }
    return { purged: depths.visible + depths.inFlight + depths.delayed };
  }

  /**
   * Moves up to `max` messages to `destination` by hand, at most `maxPerSecond` a second, for at
   * most the move budget: receive (ten at a time, hidden while they move), send each body to
   * the destination as it is (with its message group, where it has one), then delete what was
   * sent. At least once: a message sent but not deleted (a failed delete) stays in the
   * dead-letter queue too, and a later redrive moves it again; receivers and the handlers
   * downstream take copies (fan-out makes one delivery per event and subscription, the
   * dispatcher drops a try already recorded). It stops at the first failure, with the reason,
   * and what it received and did not send is made visible again.
   */
  async #moveByHand(
    queue: OpsQueue,
    destination: OpsQueue,
    max: number,
    maxPerSecond?: number,
  ): Promise<RedriveTask> {
    const started = this.#clock.now().getTime();
    const deadline = started + this.#moveBudgetMs;
    const { visible } = await this.#depths(queue);
    let moved = 0;
    let failureReason: string | undefined;
    while (moved < max && this.#clock.now().getTime() < deadline) {
      const want = Math.min(BATCH, max - moved, maxPerSecond ?? BATCH);
      let received: ReceiveMessageCommandOutput;
      try {
        received = await this.#client.send(
          new ReceiveMessageCommand({
            QueueUrl: queue.url,
            MaxNumberOfMessages: want,
            VisibilityTimeout: MOVE_VISIBILITY_SECONDS,
            WaitTimeSeconds: 1,
            MessageSystemAttributeNames: ['MessageGroupId'],
            MessageAttributeNames: ['All'],
          }),
        );
      } catch (error) {
        failureReason = `receiving from ${queue.name}: ${reasonOf(error)}`;
        break;
      }
      const messages = (received.Messages ?? []).filter(
        (m): m is Message & { ReceiptHandle: string } => m.ReceiptHandle !== undefined,
      );
      if (messages.length === 0) break;
      const outcome = await this.#sendAndDelete(queue, destination, messages);
      moved += outcome.moved;
      if (outcome.failureReason !== undefined) {
        failureReason = outcome.failureReason;
        break;
      }
      if (maxPerSecond !== undefined && moved < max) {
        const due = started + (moved / maxPerSecond) * 1000;
        const now = this.#clock.now().getTime();
        if (due >= deadline) break;
        if (due > now) await this.#sleep(due - now);
      }
    }
    return {
      id: `manual-${randomUUID()}`,
      queue: queue.name,
      destination: destination.name,
      status: failureReason === undefined ? 'completed' : 'failed',
      moved,
      toMove: Math.min(max, visible),
      ...(maxPerSecond === undefined ? {} : { maxPerSecond }),
      startedAt: new Date(started).toISOString(),
      ...(failureReason === undefined ? {} : { failureReason }),
    };
  }

  /** One received batch: sent to the destination, then deleted from the dead-letter queue. */
  async #sendAndDelete(
    queue: OpsQueue,
    destination: OpsQueue,
    messages: (Message & { ReceiptHandle: string })[],
  ): Promise<{ moved: number; failureReason?: string }> {
    let sentIds: Set<string>;
    let failureReason: string | undefined;
    try {
      const result = await this.#client.send(
        new SendMessageBatchCommand({
          QueueUrl: destination.url,
          Entries: messages.map((m, i) => {
            const group = m.Attributes?.MessageGroupId;
            return {
              Id: String(i),
              MessageBody: m.Body ?? '',
              ...(m.MessageAttributes === undefined || Object.keys(m.MessageAttributes).length === 0
                ? {}
                : { MessageAttributes: m.MessageAttributes }),
              ...(group === undefined ? {} : { MessageGroupId: group }),
            };
          }),
        }),
      );
      sentIds = new Set(
        (result.Successful ?? []).flatMap((entry) => (entry.Id === undefined ? [] : [entry.Id])),
      );
      const refused = result.Failed ?? [];
      if (refused.length > 0) {
        failureReason = `${destination.name} refused ${refused.length} message(s): ${refused
          .map((f) => `${f.Code ?? 'error'}${f.Message ? ` (${f.Message})` : ''}`)
          .join(', ')}`;
      }
    } catch (error) {
      sentIds = new Set();
      failureReason = `sending to ${destination.name}: ${reasonOf(error)}`;
    }
    const sent = messages.filter((_, i) => sentIds.has(String(i)));
    const unsent = messages.filter((_, i) => !sentIds.has(String(i)));
    await this.#makeVisible(
      queue.url,
      unsent.map((m) => m.ReceiptHandle),
    );
    if (sent.length === 0) return { moved: 0, ...(failureReason === undefined ? {} : { failureReason }) };
    try {
      const deleted = await this.#client.send(
        new DeleteMessageBatchCommand({
          QueueUrl: queue.url,
          Entries: sent.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
        }),
      );
      const kept = deleted.Failed ?? [];
      if (kept.length > 0) {
        failureReason ??= `${kept.length} message(s) sent to ${destination.name} stay in ${queue.name} too (their delete failed): a later redrive moves them again`;
      }
    } catch (error) {
      failureReason ??= `${sent.length} message(s) sent to ${destination.name} stay in ${queue.name} too (${reasonOf(error)}): a later redrive moves them again`;
    }
    return { moved: sent.length, ...(failureReason === undefined ? {} : { failureReason }) };
  }

  /** Makes received messages visible again at once; one that stays hidden reappears after its timeout. */
  async #makeVisible(queueUrl: string, handles: readonly string[]): Promise<void> {
    const batches: string[][] = [];
    for (let i = 0; i < handles.length; i += BATCH) batches.push(handles.slice(i, i + BATCH));
    await Promise.all(
      batches.map(async (batch) => {
        try {
          await this.#client.send(
            new ChangeMessageVisibilityBatchCommand({
              QueueUrl: queueUrl,
              Entries: batch.map((handle, i) => ({
                Id: String(i),
                ReceiptHandle: handle,
                VisibilityTimeout: 0,
              })),
            }),
          );
        } catch {
          // They reappear after their visibility timeout.
        }
      }),
    );
  }

  async #depths(queue: OpsQueue): Promise<Depths> {
    const result = await this.#client.send(
      new GetQueueAttributesCommand({
        QueueUrl: queue.url,
        AttributeNames: [
          'ApproximateNumberOfMessages',
          'ApproximateNumberOfMessagesNotVisible',
          'ApproximateNumberOfMessagesDelayed',
          'QueueArn',
        ],
      }),
    );
    const attributes = result.Attributes ?? {};
    if (attributes.QueueArn !== undefined) this.#arns.set(queue.name, attributes.QueueArn);
    return {
      visible: count(attributes.ApproximateNumberOfMessages),
      inFlight: count(attributes.ApproximateNumberOfMessagesNotVisible),
      delayed: count(attributes.ApproximateNumberOfMessagesDelayed),
    };
  }

  async #arn(queue: OpsQueue): Promise<string> {
    const known = this.#arns.get(queue.name);
    if (known !== undefined) return known;
    const result = await this.#client.send(
      new GetQueueAttributesCommand({ QueueUrl: queue.url, AttributeNames: ['QueueArn'] }),
    );
    const arn = result.Attributes?.QueueArn;
    if (arn === undefined) throw new Error(`SQS gave no ARN of ${queue.name}`);
    this.#arns.set(queue.name, arn);
    return arn;
  }

  async #tasks(sourceArn: string): Promise<ListMessageMoveTasksResultEntry[]> {
    const result = await this.#client.send(
      new ListMessageMoveTasksCommand({ SourceArn: sourceArn, MaxResults: 10 }),
    );
    return [...(result.Results ?? [])];
  }

  #taskOf(queue: OpsQueue, task: ListMessageMoveTasksResultEntry): RedriveTask {
    const startedAt = new Date(task.StartedTimestamp ?? 0).toISOString();
    const status = STATUSES[task.Status ?? ''] ?? 'failed';
    const destination =
      task.DestinationArn === undefined
        ? (queue.redrivesTo ?? queue.name)
        : (this.#byPhysicalName.get(physicalName(task.DestinationArn)) ?? physicalName(task.DestinationArn));
    const failureReason =
      task.FailureReason ??
      (STATUSES[task.Status ?? ''] === undefined ? `unknown status ${task.Status}` : undefined);
    return {
      id: task.TaskHandle ?? `${queue.name}@${startedAt}`,
      queue: queue.name,
      destination,
      status,
      moved: task.ApproximateNumberOfMessagesMoved ?? 0,
      toMove: task.ApproximateNumberOfMessagesToMove ?? null,
      ...(task.MaxNumberOfMessagesPerSecond === undefined
        ? {}
        : { maxPerSecond: task.MaxNumberOfMessagesPerSecond }),
      startedAt,
      ...(failureReason === undefined ? {} : { failureReason }),
    };
  }

  #deadLetterQueue(name: string): OpsQueue {
    const queue = this.#byName.get(name);
    if (queue === undefined || queue.kind !== 'dead-letter') {
      throw new QueueNotFoundError(
        name,
        this.#queues.filter((q) => q.kind === 'dead-letter').map((q) => q.name),
      );
    }
    return queue;
  }

  #destinationOf(queue: OpsQueue): OpsQueue {
    const destination = queue.redrivesTo === undefined ? undefined : this.#byName.get(queue.redrivesTo);
    if (destination === undefined) throw new Error(`${queue.name} has no queue to redrive to`);
    return destination;
  }
}
