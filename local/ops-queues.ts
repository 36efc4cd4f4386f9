/**
 * Ops on the local runtime's queues (the OpsQueues port, as SqsOpsQueues is on AWS): depths,
 * a look into a dead-letter queue, redrives and purges. A redrive is a task as an SQS message
 * move task is: at once when no pace is asked for, otherwise a batch a second at that pace,
 * one at a time per queue, listed and cancellable while it runs.
 */
import { randomUUID } from 'node:crypto';
import type { SqliteQueue } from '../functions/adapters/sqlite/queues.ts';
import {
  QueueNotFoundError,
  RedriveInProgressError,
  RedriveNotFoundError,
} from '../functions/core/errors.ts';
import type {
  Clock,
  OpsQueues,
  QueueInfo,
  QueueLayout,
  RedriveTask,
  StoredDeadLetter,
} from '../functions/core/ports.ts';

/** Redrives kept per queue for listing, newest first. */
const KEPT_REDRIVES = 10;

/** A work queue, and the dead-letter queue its messages die into. */
export interface QueuePair {
  work: SqliteQueue<unknown>;
  deadLetters: SqliteQueue<unknown>;
}

interface Running {
  task: RedriveTask;
  timer: NodeJS.Timeout;
}

export class LocalOpsQueues implements OpsQueues {
  readonly #pairs: readonly QueuePair[];
  readonly #clock: Clock;
  readonly #moved: (queue: string) => void;
  readonly #tasks = new Map<string, RedriveTask[]>();
  readonly #running = new Map<string, Running>();

  /** `moved` is told of each move into a work queue, so its poller can wake. */
  constructor(pairs: readonly QueuePair[], clock: Clock, moved: (queue: string) => void = () => {}) {
    this.#pairs = pairs;
    this.#clock = clock;
    this.#moved = moved;
  }

  layout(): QueueLayout[] {
    return this.#pairs.flatMap((pair) => [
      { name: pair.work.name, kind: 'work' as const },
      { name: pair.deadLetters.name, kind: 'dead-letter' as const, redrivesTo: pair.work.name },
    ]);
  }

  async describe(): Promise<QueueInfo[]> {
    const now = this.#clock.now().getTime();
    const queues = this.#pairs.flatMap((pair) => [pair.work, pair.deadLetters]);
    return this.layout().map((layout, i) => {
      const queue = queues[i];
      if (queue === undefined) throw new Error(`no queue ${layout.name}`);
      const oldest = queue.oldestSentAt();
      return {
        ...layout,
        ...queue.stats(),
        oldestAgeSeconds: oldest === null ? null : Math.max(0, Math.floor((now - oldest.getTime()) / 1000)),
      };
    });
  }

  async peek(queue: string, limit: number): Promise<StoredDeadLetter[]> {
    const { deadLetters } = this.#pair(queue);
    return deadLetters.peek(limit).map((message) => ({
      messageId: message.messageId,
      body: message.body,
      sentAt: message.sentAt,
      // Never received here: when it came is when it became visible here.
      deadLetteredAt: message.visibleAt,
      receiveCount: message.receiveCount,
    }));
  }

  async startRedrive(queue: string, options: { max?: number; maxPerSecond?: number }): Promise<RedriveTask> {
    const pair = this.#pair(queue);
    const running = this.#running.get(queue);
    if (running !== undefined) throw new RedriveInProgressError(queue, running.task.id);
    const visible = pair.deadLetters.stats().visible;
    const task: RedriveTask = {
      id: `redrive_${randomUUID()}`,
      queue,
      destination: pair.work.name,
      status: 'running',
      moved: 0,
      toMove: options.max === undefined ? visible : Math.min(visible, options.max),
      ...(options.maxPerSecond === undefined ? {} : { maxPerSecond: options.maxPerSecond }),
      startedAt: this.#clock.now().toISOString(),
    };
    this.#remember(task);
    if (options.maxPerSecond === undefined) {
      await this.#step(pair, task, task.toMove ?? 0);
      return { ...task };
    }
    const perSecond = options.maxPerSecond;
    const tick = async () => {
      const current = this.#running.get(queue);
      if (current === undefined || current.task !== task) return;
      await this.#step(pair, task, perSecond);
      if (task.status === 'running') current.timer = setTimeout(() => void tick(), 1000).unref();
      else this.#running.delete(queue);
    };
    this.#running.set(queue, { task, timer: setTimeout(() => void tick(), 0).unref() });
    return { ...task };
  }

  async redrives(queue: string): Promise<RedriveTask[]> {
    this.#pair(queue);
    return (this.#tasks.get(queue) ?? []).map((task) => ({ ...task }));
  }

  async cancelRedrive(queue: string, taskId: string): Promise<RedriveTask> {
    this.#pair(queue);
    const running = this.#running.get(queue);
    if (running === undefined || running.task.id !== taskId) throw new RedriveNotFoundError(queue, taskId);
    clearTimeout(running.timer);
    this.#running.delete(queue);
    running.task.status = 'cancelled';
    return { ...running.task };
  }

  async purge(queue: string): Promise<{ purged: number }> {
    return { purged: await this.#pair(queue).deadLetters.purge() };
  }

  /** Stops every running redrive (the runtime is stopping); what moved stays moved. */
  stop(): void {
    for (const { task, timer } of this.#running.values()) {
      clearTimeout(timer);
      task.status = 'cancelled';
    }
    this.#running.clear();
  }

  /** Moves up to `count` more of the task's messages; ends it when all are moved or none is left. */
  async #step(pair: QueuePair, task: RedriveTask, count: number): Promise<void> {
    const left = (task.toMove ?? 0) - task.moved;
    const moved = left > 0 ? await pair.deadLetters.redrive(pair.work, Math.min(count, left)) : 0;
    task.moved += moved;
    if (moved > 0) this.#moved(pair.work.name);
    if (task.moved >= (task.toMove ?? 0) || moved === 0) task.status = 'completed';
  }

  #remember(task: RedriveTask): void {
    const tasks = [task, ...(this.#tasks.get(task.queue) ?? [])].slice(0, KEPT_REDRIVES);
    this.#tasks.set(task.queue, tasks);
  }

  #pair(queue: string): QueuePair {
    const pair = this.#pairs.find((p) => p.deadLetters.name === queue);
    if (pair === undefined) {
      throw new QueueNotFoundError(
        queue,
        this.#pairs.map((p) => p.deadLetters.name),
      );
    }
    return pair;
  }
}
