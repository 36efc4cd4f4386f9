/**
 * The local runtime, alone in its own process, as `npm start` runs it (same config module,
 * same defaults; only the port, the data directory, the admin token and, for the isolation
 * run, the delivery timeout come from the runner's environment). Its own process so that its
 * memory can be measured and the load generator does not share its event loop.
 *
 * Memory: VmHWM (the kernel's peak resident set) of this process, and the resident set sampled
 * every 20 ms since the last `resetPeak` (the event loop may sample late under load; VmHWM
 * never misses a peak). CPU: the process's own, all its threads (`cpu`).
 */
import { readFileSync } from 'node:fs';
import { loadLocalConfig } from '../functions/config.ts';
import { startLocalDispatcher } from '../local/runtime.ts';
import { serve } from './rpc.ts';

export interface DispatcherInfo {
  url: string;
  adminToken: string;
}

export interface DispatcherMemory {
  /** Resident set now, bytes. */
  rss: number;
  /** Highest sampled resident set since the last resetPeak, bytes. */
  sampledPeak: number;
  /** VmHWM: the peak resident set of the process's whole life, bytes. */
  vmHwm: number | null;
  /** V8 heap now and its highest sampled size, and memory outside the heap (buffers, SQLite), bytes. */
  heapUsed: number;
  heapTotal: number;
  heapTotalPeak: number;
  external: number;
  /** Lines the runtime logged (errors of batches, of the router), and the first few. */
  logged: number;
  firstLogs: string[];
}

function vmHwm(): number | null {
  try {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return match?.[1] === undefined ? null : Number(match[1]) * 1024;
  } catch {
    return null;
  }
}

let logged = 0;
const firstLogs: string[] = [];
const log = (message: string, error?: unknown) => {
  logged++;
  if (firstLogs.length < 5)
    firstLogs.push(error instanceof Error ? `${message}: ${error.message}` : String(message));
};

const dispatcher = await startLocalDispatcher(loadLocalConfig(), { log });

let sampledPeak = process.memoryUsage.rss();
let heapTotalPeak = process.memoryUsage().heapTotal;
const sampler = setInterval(() => {
  const usage = process.memoryUsage();
  sampledPeak = Math.max(sampledPeak, usage.rss);
  heapTotalPeak = Math.max(heapTotalPeak, usage.heapTotal);
}, 20);

let stopping: Promise<void> | undefined;
const stop = () => {
  stopping ??= (async () => {
    clearInterval(sampler);
    await dispatcher.stop();
  })();
  return stopping;
};
process.on('SIGTERM', () => {
  stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});

serve({
  info: (): DispatcherInfo => ({ url: dispatcher.url, adminToken: dispatcher.adminToken }),
  memory: (): DispatcherMemory => {
    const usage = process.memoryUsage();
    return {
      rss: usage.rss,
      sampledPeak: Math.max(sampledPeak, usage.rss),
      vmHwm: vmHwm(),
      heapUsed: usage.heapUsed,
      heapTotal: usage.heapTotal,
      heapTotalPeak: Math.max(heapTotalPeak, usage.heapTotal),
      external: usage.external,
      logged,
      firstLogs,
    };
  },
  resetPeak: () => {
    sampledPeak = process.memoryUsage.rss();
    heapTotalPeak = process.memoryUsage().heapTotal;
    return null;
  },
  /** CPU time of the whole process (every thread), microseconds, user and system. */
  cpu: (): NodeJS.CpuUsage => process.cpuUsage(),
  queues: () => ({
    fanout: dispatcher.queues.fanout.stats(),
    delivery: dispatcher.queues.delivery.stats(),
    deliveryDlq: dispatcher.queues.deliveryDlq.stats(),
  }),
  stop: () => stop(),
});
