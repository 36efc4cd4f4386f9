/**
 * Transformations of callback bodies by partners' JSONata expressions (the Transformer port).
 *
 * Both checking and evaluating happen on one worker thread (worker.ts), so JSONata itself is
 * loaded there only: an expression is checked where it comes in (at most MAX_EXPRESSION_CHARS,
 * JSONata's syntax, no regular expression or `$eval`) and evaluated under JSONata's guards on
 * time, depth and sequence length, in a small heap. A request that still takes longer than the
 * hard timeout has the thread terminated (the requests it held fail with it), and the next one
 * starts a new thread. A result is at most the largest payload.
 *
 * The worker is `worker.ts` beside this file, or, in a Lambda bundle, `jsonata-worker.mjs`
 * beside the bundle (lib/constructs/function.ts builds it).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ServiceUnavailableError } from '../../core/errors.ts';
import type { ExpressionIssue, Transformer, TransformResult } from '../../core/ports.ts';
import {
  BUNDLED_WORKER_FILE,
  EVALUATION_LIMITS,
  READY,
  type WorkerReply,
  WorkerReply as WorkerReplySchema,
  type WorkerRequest,
} from './limits.ts';

export { MAX_EXPRESSION_CHARS } from './limits.ts';

function workerUrl(): URL {
  const bundled = new URL(`./${BUNDLED_WORKER_FILE}`, import.meta.url);
  return existsSync(fileURLToPath(bundled)) ? bundled : new URL('./worker.ts', import.meta.url);
}

/** A request's answer, or why the thread gave none. */
type Answer = WorkerReply | { id: number; failed: string };

/** A request waiting its turn on the thread, or the one it runs. */
interface Queued {
  request: WorkerRequest;
  resolve: (answer: Answer) => void;
}

/** A worker thread being started: `ready` gives it once it listens, or undefined if it died first. */
interface Started {
  worker: Worker;
  ready: Promise<Worker | undefined>;
  failure: () => string;
}

export interface JsonataTransformerOptions {
  /** @default EVALUATION_LIMITS.hardTimeoutMs */
  hardTimeoutMs?: number;
}

export class JsonataTransformer implements Transformer {
  #started: Started | undefined;
  /** Requests run one at a time, in order: a slow one delays the next, and fails alone. */
  readonly #queue: Queued[] = [];
  #running: { queued: Queued; timer: NodeJS.Timeout } | undefined;
  readonly #hardTimeoutMs: number;
  #nextId = 0;

  constructor(options: JsonataTransformerOptions = {}) {
    this.#hardTimeoutMs = options.hardTimeoutMs ?? EVALUATION_LIMITS.hardTimeoutMs;
  }

  async check(expression: string): Promise<ExpressionIssue | undefined> {
    const answer = await this.#ask({ kind: 'check', id: ++this.#nextId, expression });
    if ('allowed' in answer) return undefined;
    if ('issue' in answer)
      return {
        message: answer.issue,
        ...(answer.position === undefined ? {} : { position: answer.position }),
      };
    // The thread failed, not the expression: say so as a fault to try again after.
    throw new ServiceUnavailableError(
      `the expression could not be checked (${'failed' in answer ? answer.failed : 'no answer'}); try again`,
    );
  }

  async apply(expression: string, input: unknown): Promise<TransformResult> {
    const answer = await this.#ask({ kind: 'evaluate', id: ++this.#nextId, expression, input });
    if ('body' in answer) return { body: answer.body };
    if ('error' in answer) return { error: answer.error };
    return { error: 'failed' in answer ? answer.failed : 'the expression gave no result' };
  }

  /** Stops the worker thread; requests under way or waiting fail. The next request starts another. */
  async close(): Promise<void> {
    const waiting = this.#queue.splice(0);
    this.#stop('the dispatcher is stopping');
    for (const queued of waiting)
      queued.resolve({ id: queued.request.id, failed: 'the dispatcher is stopping' });
  }

  #ask(request: WorkerRequest): Promise<Answer> {
    return new Promise((resolve) => {
      this.#queue.push({ request, resolve });
      void this.#next();
    });
  }

  /** Sends the next request waiting, once none is running; timed from being sent. */
  async #next(): Promise<void> {
    if (this.#running !== undefined) return;
    const queued = this.#queue.shift();
    if (queued === undefined) return;
    const timer = setTimeout(
      () => this.#stop(`took longer than ${this.#hardTimeoutMs} ms`),
      this.#hardTimeoutMs,
    );
    this.#running = { queued, timer };
    const started = this.#thread();
    const worker = await started.ready;
    // Timed from the thread being ready: starting one is not the expression's time.
    if (this.#running?.queued !== queued) return;
    if (worker === undefined) {
      this.#finish({ id: queued.request.id, failed: started.failure() });
      return;
    }
    timer.refresh();
    worker.postMessage(queued.request);
  }

  /** Answers the running request and sends the next. */
  #finish(answer: Answer): void {
    const running = this.#running;
    if (running === undefined || running.queued.request.id !== answer.id) return;
    clearTimeout(running.timer);
    this.#running = undefined;
    running.queued.resolve(answer);
    void this.#next();
  }

  #thread(): Started {
    if (this.#started !== undefined) return this.#started;
    const worker = new Worker(workerUrl(), {
      resourceLimits: {
        maxOldGenerationSizeMb: EVALUATION_LIMITS.heapMb,
        maxYoungGenerationSizeMb: 16,
        stackSizeMb: 4,
      },
    });
    // Requests keep the process alive through their timers, not the thread.
    worker.unref();
    let failure = 'the evaluation thread did not start';
    const ready = Promise.withResolvers<Worker | undefined>();
    const started: Started = { worker, ready: ready.promise, failure: () => failure };
    worker.on('message', (message: unknown) => {
      if (message === READY) {
        ready.resolve(worker);
        return;
      }
      const reply = WorkerReplySchema.safeParse(message);
      if (reply.success) this.#finish(reply.data);
    });
    const end = (reason: string) => {
      failure = reason;
      ready.resolve(undefined);
      this.#stop(reason, started);
    };
    worker.on('error', (error) =>
      end(
        'code' in error && error.code === 'ERR_WORKER_OUT_OF_MEMORY'
          ? `used more than ${EVALUATION_LIMITS.heapMb} MB`
          : error.message,
      ),
    );
    worker.on('exit', () => end('the evaluation stopped'));
    this.#started = started;
    return started;
  }

  /**
   * Ends the worker (the given one, if it is still the current) and fails the request it was
   * running; those waiting go to the next thread.
   */
  #stop(reason: string, which: Started | undefined = this.#started): void {
    // An old thread's exit, after a newer one took over, ends nothing of the newer one's.
    if (which !== this.#started) return;
    if (which !== undefined) {
      this.#started = undefined;
      void which.worker.terminate();
    }
    const running = this.#running;
    if (running !== undefined) this.#finish({ id: running.queued.request.id, failed: reason });
  }
}
