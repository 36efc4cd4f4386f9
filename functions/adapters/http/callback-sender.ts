/**
 * Outbound callbacks over a keep-alive undici pool. The target policy is enforced on the
 * connection itself: the pool's DNS lookup checks every address it resolves and the socket
 * connects to an address that was checked, so a host cannot pass the check and then
 * re-resolve to a private address (DNS rebinding). Redirects are not followed (undici's
 * default without the redirect interceptor).
 */
import { lookup as dnsLookup } from 'node:dns';
import type { LookupFunction } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Agent, request } from 'undici';
import type { AttemptErrorKind } from '../../core/model.ts';
import { checkResolvedAddress, checkTargetUrl } from '../../core/target-policy.ts';
import type { CallbackRequest, CallbackResult, CallbackSender } from '../../ports.ts';

/** Bytes of a response body read at most; the rest is not read and the connection is dropped. */
export const MAX_RESPONSE_BYTES = 64 * 1024;
/** Bytes of a response body kept in the attempt log. */
export const RESPONSE_EXCERPT_BYTES = 1024;

const FORBIDDEN = 'EFORBIDDENTARGET';

/** A `lookup` for net/tls.connect that refuses addresses the target policy forbids. */
export function checkedLookup(allowPrivate: boolean, lookup: typeof dnsLookup = dnsLookup): LookupFunction {
  return (hostname, options, callback) => {
    lookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, []);
      for (const { address } of addresses) {
        const reason = checkResolvedAddress(address, { allowPrivate });
        if (reason) {
          const forbidden: NodeJS.ErrnoException = new Error(`${hostname}: ${reason}`);
          forbidden.code = FORBIDDEN;
          return callback(forbidden, []);
        }
      }
      const first = addresses[0];
      if (options.all || !first) return callback(null, addresses);
      callback(null, first.address, first.family);
    });
  };
}

function codesOf(error: unknown): string[] {
  const codes: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current instanceof Error && depth < 5; depth++) {
    const code = (current as NodeJS.ErrnoException).code;
    codes.push(current.name, ...(code ? [code] : []));
    if (current instanceof AggregateError) codes.push(...current.errors.flatMap(codesOf));
    current = current.cause;
  }
  return codes;
}

function classify(error: unknown): AttemptErrorKind {
  const codes = codesOf(error);
  if (codes.includes(FORBIDDEN)) return 'forbidden_target';
  if (codes.some((c) => c === 'TimeoutError' || c === 'AbortError' || /TIMEOUT/.test(c))) return 'timeout';
  if (codes.some((c) => c === 'ENOTFOUND' || c === 'EAI_AGAIN' || c === 'EAI_NONAME')) return 'dns';
  return 'connection';
}

export interface UndiciSenderOptions {
  allowPrivateTargets: boolean;
  /** Sockets per origin. @default 64 */
  connectionsPerOrigin?: number;
  /** The resolver connections use. @default node:dns lookup (the system's, as getaddrinfo) */
  lookup?: typeof dnsLookup;
}

export class UndiciCallbackSender implements CallbackSender {
  readonly #agent: Agent;
  readonly #allowPrivate: boolean;

  constructor(options: UndiciSenderOptions) {
    this.#allowPrivate = options.allowPrivateTargets;
    this.#agent = new Agent({
      connections: options.connectionsPerOrigin ?? 64,
      keepAliveTimeout: 4_000,
      connect: { lookup: checkedLookup(options.allowPrivateTargets, options.lookup) },
    });
  }

  async send(req: CallbackRequest): Promise<CallbackResult> {
    const started = performance.now();
    const elapsed = () => Math.round((performance.now() - started) * 10) / 10;
    // IP literals never reach the lookup, so the policy checks them here.
    const checked = checkTargetUrl(req.url, { allowPrivate: this.#allowPrivate });
    if (!checked.ok)
      return { error: 'forbidden_target', errorMessage: checked.reason, durationMs: elapsed() };
    try {
      const response = await request(checked.url, {
        method: 'POST',
        headers: req.headers,
        body: req.body,
        dispatcher: this.#agent,
        signal: AbortSignal.timeout(req.timeoutMs),
        headersTimeout: req.timeoutMs,
        bodyTimeout: req.timeoutMs,
      });
      const { excerpt, truncated } = await readBounded(response.body);
      const retryAfter =
        response.statusCode === 429 || response.statusCode === 503
          ? parseRetryAfter(response.headers['retry-after'], Date.now())
          : undefined;
      return {
        statusCode: response.statusCode,
        ...(retryAfter === undefined ? {} : { retryAfterSeconds: retryAfter }),
        ...(excerpt === '' ? {} : { responseExcerpt: excerpt }),
        ...(truncated ? { errorMessage: `response body over ${MAX_RESPONSE_BYTES} bytes was not read` } : {}),
        durationMs: elapsed(),
      };
    } catch (error) {
      return {
        error: classify(error),
        errorMessage: error instanceof Error ? error.message : String(error),
        durationMs: elapsed(),
      };
    }
  }

  close(): Promise<void> {
    return this.#agent.close();
  }
}

/**
 * Retry-After as seconds: either delta-seconds or an HTTP date (RFC 9110 §10.2.3); undefined
 * when absent or unreadable.
 */
export function parseRetryAfter(value: string | string[] | undefined, now: number): number | undefined {
  const text = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!text) return undefined;
  if (/^\d+$/.test(text)) return Number(text);
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - now) / 1000);
}

/** Reads at most MAX_RESPONSE_BYTES, keeping an excerpt; a larger body is abandoned. */
async function readBounded(body: AsyncIterable<Buffer> & { destroy(): unknown }) {
  const kept: Buffer[] = [];
  let keptBytes = 0;
  let total = 0;
  for await (const chunk of body) {
    total += chunk.length;
    if (keptBytes < RESPONSE_EXCERPT_BYTES) {
      kept.push(chunk.subarray(0, RESPONSE_EXCERPT_BYTES - keptBytes));
      keptBytes += Math.min(chunk.length, RESPONSE_EXCERPT_BYTES - keptBytes);
    }
    if (total > MAX_RESPONSE_BYTES) {
      body.destroy();
      return { excerpt: Buffer.concat(kept).toString('utf8'), truncated: true };
    }
  }
  return { excerpt: Buffer.concat(kept).toString('utf8'), truncated: false };
}
