/**
 * What a partner's JSONata expression may take, and the messages between the transformer and
 * its worker thread (transformer.ts, worker.ts).
 */
import * as z from 'zod';

export const EVALUATION_LIMITS = {
  /** JSONata's own check of the time an evaluation has run, between its steps. */
  timeoutMs: 100,
  /** JSONata's own bound on the depth of nested evaluation (recursion). */
  stackDepth: 200,
  /** JSONata's own bound on the length of a sequence an expression builds. */
  sequenceLength: 100_000,
  /**
   * How long an evaluation may take before its worker thread is terminated: the bound on one
   * step JSONata cannot interrupt (a builtin given a huge argument).
   */
  hardTimeoutMs: 1000,
  /** The worker thread's heap: an expression that builds a huge value runs out of it. */
  heapMb: 64,
  /** The result's JSON, at most: what an event's payload may be. */
  maxOutputBytes: 256 * 1024,
} as const;

/** The worker's source, from the project's root; in a Lambda bundle it is this file beside the entry. */
export const JSONATA_WORKER_SOURCE = 'functions/adapters/jsonata/worker.ts';
export const BUNDLED_WORKER_FILE = 'jsonata-worker.mjs';

/** What the worker says once it listens. */
export const READY = 'ready';

/** An expression to check (`check`), or to evaluate over an input. */
export const WorkerRequest = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('check'), id: z.number().int(), expression: z.string() }),
  z.object({ kind: z.literal('evaluate'), id: z.number().int(), expression: z.string(), input: z.unknown() }),
]);
export type WorkerRequest = z.infer<typeof WorkerRequest>;

/**
 * A check's answer (`issue`, with its character offset if known; neither when the expression
 * may be used), or an evaluation's (`body`, or `error`).
 */
export const WorkerReply = z.union([
  z.object({ id: z.number().int(), body: z.string() }),
  z.object({ id: z.number().int(), error: z.string() }),
  z.object({ id: z.number().int(), issue: z.string(), position: z.number().optional() }),
  z.object({ id: z.number().int(), allowed: z.literal(true) }),
]);
export type WorkerReply = z.infer<typeof WorkerReply>;

/** An error's message, at most: an expression can make one as long as it likes (`$error`). */
export const MAX_MESSAGE_CHARS = 1024;

/** An expression's length, at most. */
export const MAX_EXPRESSION_CHARS = 4096;
