/**
 * The bench's callback receiver, in a process of its own so that its CPU is not the
 * dispatcher's (nor the load generator's). It listens on two ports of 127.0.0.1:
 * - healthy: verifies each callback's Standard Webhooks signature with the secret registered
 *   for its path (functions/core/signing.ts, the receiver's side of the scheme) and answers
 *   204, or 401 when it does not verify;
 * - hang: reads the request and never answers, as an endpoint that stalls until the sender
 *   gives up (a separate origin, as a stalled partner's host would be).
 * A receipt counts once per `webhook-id`, only when verified, and only on a path of the current
 * run; a late callback of an earlier run (a retry) is verified and answered 204 but not
 * counted, so it neither inflates this run nor triggers more retries. Nothing goes over IPC
 * per callback: the runner asks for the tally (and waits for a count) when it needs it. Its
 * CPU (`cpu`, all its threads) is what receiving and verifying took.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { verifySignature } from '../functions/core/signing.ts';
import { nowMs, serve } from './rpc.ts';

export interface ReceiverInfo {
  healthyOrigin: string;
  hangOrigin: string;
}

/** What the receiver saw since the last reset. */
export interface Tally {
  /** Unique verified webhook-ids. */
  verified: number;
  /** Requests whose signature did not verify (answered 401). */
  unverified: number;
  /** Verified requests whose webhook-id had been seen already (retries, redeliveries). */
  duplicates: number;
  /** Verified callbacks for a path of an earlier run. */
  stale: number;
  /** Requests that arrived on the hang port. */
  hung: number;
  /** Receipt time of the first and last unique verified callback (ms, shared clock). */
  firstAt: number | null;
  lastAt: number | null;
  /** Whether `expected` was reached before the deadline (waitFor only). */
  complete: boolean;
}

const Reset = z.object({
  secrets: z.record(z.string(), z.string()),
  /** Read `payload.sentAt` from each body and keep receipt − sentAt. */
  latency: z.boolean().default(false),
});
const WaitFor = z.object({ expected: z.number().int().positive(), deadlineAt: z.number() });

/** Every path's secret since the start; the current run's paths are counted. */
const secrets = new Map<string, string>();
let counted = new Set<string>();
let trackLatency = false;
let seen = new Set<string>();
let latencies: number[] = [];
let unverified = 0;
let duplicates = 0;
let stale = 0;
let hung = 0;
let firstAt: number | null = null;
let lastAt: number | null = null;
const waiters = new Set<{ expected: number; done(): void }>();
const stalled = new Set<ServerResponse>();

function tally(complete: boolean): Tally {
  return { verified: seen.size, unverified, duplicates, stale, hung, firstAt, lastAt, complete };
}

function sentAtOf(body: string): number | undefined {
  const parsed: unknown = JSON.parse(body);
  if (typeof parsed !== 'object' || parsed === null || !('payload' in parsed)) return undefined;
  const payload = parsed.payload;
  if (typeof payload !== 'object' || payload === null || !('sentAt' in payload)) return undefined;
  return typeof payload.sentAt === 'number' ? payload.sentAt : undefined;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function onHealthy(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await readBody(req);
  const path = req.url ?? '';
  const secret = secrets.get(path);
  const headers: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(req.headers))
    headers[name] = Array.isArray(value) ? value[0] : value;
  if (secret === undefined || !verifySignature({ headers, body, secret })) {
    unverified++;
    res.writeHead(401).end();
    return;
  }
  const at = nowMs();
  const id = headers['webhook-id'] ?? '';
  if (!counted.has(path)) stale++;
  else if (seen.has(id)) duplicates++;
  else {
    seen.add(id);
    firstAt ??= at;
    lastAt = at;
    if (trackLatency) {
      const sentAt = sentAtOf(body);
      if (sentAt !== undefined) latencies.push(at - sentAt);
    }
    for (const waiter of waiters) if (seen.size >= waiter.expected) waiter.done();
  }
  res.writeHead(204).end();
}

function onHang(req: IncomingMessage, res: ServerResponse): void {
  hung++;
  stalled.add(res);
  res.on('close', () => stalled.delete(res));
  req.resume();
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const healthy = createServer((req, res) => {
  onHealthy(req, res).catch(() => {
    if (!res.headersSent) res.writeHead(400).end();
  });
});
healthy.keepAliveTimeout = 10_000;
const hang = createServer(onHang);
const info: ReceiverInfo = { healthyOrigin: await listen(healthy), hangOrigin: await listen(hang) };

serve({
  info: () => info,
  reset: (params) => {
    const p = Reset.parse(params);
    for (const res of stalled) res.destroy();
    for (const [path, secret] of Object.entries(p.secrets)) secrets.set(path, secret);
    counted = new Set(Object.keys(p.secrets));
    trackLatency = p.latency;
    seen = new Set();
    latencies = [];
    unverified = 0;
    duplicates = 0;
    stale = 0;
    hung = 0;
    firstAt = null;
    lastAt = null;
    return null;
  },
  /** Resolves once `expected` unique verified callbacks arrived, or at the deadline. */
  waitFor: (params) => {
    const p = WaitFor.parse(params);
    if (seen.size >= p.expected) return tally(true);
    return new Promise<Tally>((resolve) => {
      const waiter = {
        expected: p.expected,
        done: () => {
          clearTimeout(timer);
          waiters.delete(waiter);
          resolve(tally(seen.size >= p.expected));
        },
      };
      const timer = setTimeout(waiter.done, Math.max(0, p.deadlineAt - nowMs()));
      waiters.add(waiter);
    });
  },
  tally: () => tally(false),
  latencies: () => latencies,
  cpu: (): NodeJS.CpuUsage => process.cpuUsage(),
});
