/**
 * Run in a fresh `node` per measurement: times `await import()` of one Lambda bundle (its
 * module-scope work: config parsing, SDK clients, the handler's factory) and prints one JSON
 * line. It imports nothing the bundle might need (no net, dns or http), so no module is
 * loaded for free before the clock starts. Sockets opened and HTTP requests started during
 * the import are seen on Node's diagnostics channels and reported: a cold start must not
 * touch the network.
 */
import { subscribe } from 'node:diagnostics_channel';
import { pathToFileURL } from 'node:url';

export interface ProbeResult {
  importMs: number;
  handler: string;
  networkAttempts: string[];
}

const bundle = process.argv[2];
if (!bundle) throw new Error('usage: node bench/import-probe.ts <bundle.mjs>');

const attempts: string[] = [];
subscribe('net.client.socket', () => attempts.push('socket'));
subscribe('http.client.request.start', () => attempts.push('http request'));
subscribe('undici:request:create', () => attempts.push('fetch/undici request'));

const started = performance.now();
const module: Record<string, unknown> = await import(pathToFileURL(bundle).href);
const importMs = performance.now() - started;

const result: ProbeResult = { importMs, handler: typeof module.handler, networkAttempts: attempts };
process.stdout.write(`${JSON.stringify(result)}\n`);
