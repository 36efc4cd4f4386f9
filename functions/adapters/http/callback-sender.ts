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
    const secure = checked.url.protocol === 'https:';
    return new Promise<CallbackResult>((resolve) => {
      let settled = false;
      const settle = (result: CallbackResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        resolve(result);
      };
      const fail = (error: unknown) =>
        settle({
          error: classify(error),
          errorMessage: error instanceof Error ? error.message : String(error),
          durationMs: elapsed(),
        });
      const request = (secure ? https : http).request(
        checked.url,
        { method: 'POST', headers: req.headers, agent: secure ? this.#https : this.#http },
        (response) => {
          const body = new BoundedBody();
          response.on('data', (chunk: Buffer) => {
            if (!body.add(chunk)) {
              // Abandoned: its socket is destroyed rather than returned to the pool.
              settle(resultOf(response, body, elapsed()));
              response.destroy();
            }
          });
          response.on('end', () => settle(resultOf(response, body, elapsed())));
          response.on('error', fail);
          response.on('close', () => {
            if (!response.complete) fail(new Error('the connection closed before the response ended'));
          });
        },
      );
      // One deadline for the whole exchange: connecting, the response head and the body. It
      // settles the try itself: whatever the destroyed socket reports afterwards is ignored.
      const deadline = setTimeout(() => {
        settle({
          error: 'timeout',
          errorMessage: `no complete response within ${req.timeoutMs} ms`,
          durationMs: elapsed(),
        });
        request.destroy();
      }, req.timeoutMs);
      request.on('error', fail);
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
 * A response body read up to MAX_RESPONSE_BYTES, keeping an excerpt of RESPONSE_EXCERPT_BYTES;
 * `add` says false once the body is over the limit (the rest is not to be read).
 */
class BoundedBody {
  readonly #kept: Buffer[] = [];
  #keptBytes = 0;
  #total = 0;

  add(chunk: Buffer): boolean {
    this.#total += chunk.length;
    if (this.#keptBytes < RESPONSE_EXCERPT_BYTES) {
      const part = chunk.subarray(0, RESPONSE_EXCERPT_BYTES - this.#keptBytes);
      this.#kept.push(part);
      this.#keptBytes += part.length;
    }
    return !this.truncated;
  }

  get truncated(): boolean {
    return this.#total > MAX_RESPONSE_BYTES;
  }

  get excerpt(): string {
    return this.#kept.length === 0 ? '' : Buffer.concat(this.#kept).toString('utf8');
  }
}

/** The result of a try that got a response: its status, its Retry-After, the excerpt. */
function resultOf(response: IncomingMessage, body: BoundedBody, durationMs: number): CallbackResult {
  const statusCode = response.statusCode ?? 0;
  const retryAfter =
    statusCode === 429 || statusCode === 503
      ? parseRetryAfter(response.headers['retry-after'], Date.now())
      : undefined;
  const { excerpt } = body;
  return {
    statusCode,
    ...(retryAfter === undefined ? {} : { retryAfterSeconds: retryAfter }),
    ...(excerpt === '' ? {} : { responseExcerpt: excerpt }),
    ...(body.truncated
      ? { errorMessage: `response body over ${MAX_RESPONSE_BYTES} bytes was not read` }
      : {}),
    durationMs,
  };
}
