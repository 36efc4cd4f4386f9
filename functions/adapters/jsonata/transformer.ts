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

interface Pending {
  resolve: (answer: Answer) => void;
  timer: NodeJS.Timeout;
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
  readonly #pending = new Map<number, Pending>();
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

  /** Stops the worker thread; requests under way fail. The next request starts another. */
  async close(): Promise<void> {
    this.#stop('the dispatcher is stopping');
  }

  async #ask(request: WorkerRequest): Promise<Answer> {
    const started = this.#running();
    const worker = await started.ready;
    if (worker === undefined) return { id: request.id, failed: started.failure() };
    return new Promise((resolve) => {
      // Timed from the thread being ready: starting one is not the expression's time.
      const timer = setTimeout(
        () => this.#stop(`took longer than ${this.#hardTimeoutMs} ms`),
        this.#hardTimeoutMs,
      );
      this.#pending.set(request.id, { resolve, timer });
      worker.postMessage(request);
    });
  }

  #running(): Started {
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
      if (!reply.success) return;
      const pending = this.#pending.get(reply.data.id);
      if (pending === undefined) return;
      this.#pending.delete(reply.data.id);
      clearTimeout(pending.timer);
      pending.resolve(reply.data);
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

  /** Ends the worker (the given one, if it is still the current) and fails what it held. */
  #stop(reason: string, which: Started | undefined = this.#started): void {
    if (which === undefined || which !== this.#started) return;
    this.#started = undefined;
    void which.worker.terminate();
    for (const [id, pending] of this.#pending) {
      clearTimeout(pending.timer);
      pending.resolve({ id, failed: reason });
      this.#pending.delete(id);
    }
  }
}
