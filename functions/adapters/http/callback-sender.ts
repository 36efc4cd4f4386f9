/**
 * Outbound callbacks over Node's own http and https, one keep-alive agent per scheme. The
 * target policy is enforced on the connection itself: the agents' DNS lookup checks every
 * address it resolves and the socket connects to an address that was checked, so a host cannot
 * pass the check and then re-resolve to a private address (DNS rebinding). Redirects are not
 * followed (Node's http client never follows them).
 */
import { lookup as dnsLookup } from 'node:dns';
import type { Agent as HttpAgent, IncomingMessage } from 'node:http';
import type { LookupFunction } from 'node:net';
import type { AttemptErrorKind } from '../../core/model.ts';
import type { CallbackRequest, CallbackResult, CallbackSender } from '../../core/ports.ts';
import { checkResolvedAddress, checkTargetUrl } from '../../core/target-policy.ts';

// Not an ESM import, whose facade reads every export and lazy getter: ~20 ms more cold start.
const http = process.getBuiltinModule('node:http');
const https = process.getBuiltinModule('node:https');

/** Bytes of a response body read at most; the rest is not read and the connection is dropped. */
export const MAX_RESPONSE_BYTES = 64 * 1024;
/** Bytes of a response body kept in the attempt log. */
export const RESPONSE_EXCERPT_BYTES = 1024;
/**
 * How long an idle pooled connection is kept for the next callback to the same origin: well
 * within the idle timeout of a NAT gateway, which the connections cross with fixed egress
 * addresses (test/unit/quotas.test.ts).
 */
export const KEEP_ALIVE_TIMEOUT_MS = 4_000;

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

export interface HttpSenderOptions {
  allowPrivateTargets: boolean;
  /** Sockets per origin. @default 64 */
  connectionsPerOrigin?: number;
  /** The resolver connections use. @default node:dns lookup (the system's, as getaddrinfo) */
  lookup?: typeof dnsLookup;
}

export class HttpCallbackSender implements CallbackSender {
  readonly #http: HttpAgent;
  readonly #https: HttpAgent;
  readonly #allowPrivate: boolean;

  constructor(options: HttpSenderOptions) {
    this.#allowPrivate = options.allowPrivateTargets;
    const agentOptions = {
      keepAlive: true,
      maxSockets: options.connectionsPerOrigin ?? 64,
      // The idle timeout of pooled sockets; a request in flight is bounded by its own timeout.
      timeout: KEEP_ALIVE_TIMEOUT_MS,
      lookup: checkedLookup(options.allowPrivateTargets, options.lookup),
    };
    this.#http = new http.Agent(agentOptions);
    this.#https = new https.Agent(agentOptions);
  }

  async send(req: CallbackRequest): Promise<CallbackResult> {
    const started = performance.now();
    const elapsed = () => Math.round((performance.now() - started) * 10) / 10;
    // IP literals never reach the lookup, so the policy checks them here.
    const checked = checkTargetUrl(req.url, { allowPrivate: this.#allowPrivate });
    if (!checked.ok)
      return { error: 'forbidden_target', errorMessage: checked.reason, durationMs: elapsed() };
    // One deadline for the whole exchange: connecting, the response head and the body.
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), req.timeoutMs);
    try {
      const response = await this.#post(checked.url, req, deadline.signal);
      const { excerpt, truncated } = await readBounded(response);
      const statusCode = response.statusCode ?? 0;
      const retryAfter =
        statusCode === 429 || statusCode === 503
          ? parseRetryAfter(response.headers['retry-after'], Date.now())
          : undefined;
      return {
        statusCode,
        ...(retryAfter === undefined ? {} : { retryAfterSeconds: retryAfter }),
        ...(excerpt === '' ? {} : { responseExcerpt: excerpt }),
        ...(truncated ? { errorMessage: `response body over ${MAX_RESPONSE_BYTES} bytes was not read` } : {}),
        durationMs: elapsed(),
      };
    } catch (error) {
      // Past the deadline the error is whatever the destroyed socket reported; it was a timeout.
      const timedOut = deadline.signal.aborted;
      return {
        error: timedOut ? 'timeout' : classify(error),
        errorMessage: timedOut
          ? `no complete response within ${req.timeoutMs} ms`
          : error instanceof Error
            ? error.message
            : String(error),
        durationMs: elapsed(),
      };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Resolves with the response once its head has arrived; aborting destroys the socket. */
  #post(url: URL, req: CallbackRequest, signal: AbortSignal): Promise<IncomingMessage> {
    const secure = url.protocol === 'https:';
    return new Promise((resolve, reject) => {
      const request = (secure ? https : http).request(
        url,
        { method: 'POST', headers: req.headers, agent: secure ? this.#https : this.#http, signal },
        resolve,
      );
      request.on('error', reject);
      request.end(req.body);
    });
  }

  /** Destroys every socket, pooled or in use. */
  async close(): Promise<void> {
    this.#http.destroy();
    this.#https.destroy();
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

/**
 * Reads at most MAX_RESPONSE_BYTES, keeping an excerpt; a larger body is abandoned and its
 * socket destroyed. A body read to its end leaves the socket to the pool.
 */
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
