/**
 * The `dispatcher` command against a running local runtime, as ops would use it: dead letters
 * listed, redriven once the receiver recovers, every event delivered once, the DLQ empty after;
 * its JSON for scripts, its exit codes, partners and events for demos.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeadLetterView } from '../../functions/core/ops.ts';
import type { QueueInfo, RedriveTask } from '../../functions/core/ports.ts';
import { createSubscriptionFor } from './api-support.ts';
import { eventually, settled, startTestDispatcher, type TestDispatcher } from './harness.ts';
import { answer, startReceiver, type TestReceiver } from './receiver.ts';

const BIN = join(import.meta.dirname, '../../bin/dispatcher.ts');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `dispatcher …` in a process of its own, with only the environment given. */
function run(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 30_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

describe('the dispatcher command against the local runtime', () => {
  let d: TestDispatcher;
  let receiver: TestReceiver;
  let partnerId: string;
  let target: string[];

  const json = async <T>(args: readonly string[]): Promise<T> => {
    const result = await run([...args, ...target, '--json']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    return JSON.parse(result.stdout) as T;
  };
  const dlqDepth = async () =>
    (await json<QueueInfo[]>(['queues'])).find((q) => q.name === 'delivery-dlq')?.visible ?? -1;

  /** Publishes `count` events with the command and waits for each one's dead letter. */
  async function deadLetters(count: number): Promise<string[]> {
    const ids: string[] = [];
    const before = await dlqDepth();
    for (let i = 0; i < count; i++) {
      const published = await json<{ id: string }>([
        'events',
        'publish',
        '--partner',
        partnerId,
        '--type',
        'order.created',
        '--payload',
        JSON.stringify({ i }),
      ]);
      ids.push(published.id);
    }
    await eventually(async () => ((await dlqDepth()) >= before + count ? true : undefined), 20_000);
    await settled(d);
    return ids;
  }

  beforeAll(async () => {
    d = await startTestDispatcher({ DISPATCHER_RETRY_SCHEDULE: '0,1' });
    target = ['--url', d.dispatcher.url, '--token', d.dispatcher.adminToken];
    receiver = await startReceiver(answer(500));
    const partner = await json<{ id: string; apiKey: string }>(['partners', 'create', 'acme']);
    partnerId = partner.id;
    const subscription = await createSubscriptionFor(d, partner.apiKey, { url: `${receiver.url}/hooks` });
    receiver.secrets.push(subscription.secret ?? '');
  });

  afterAll(async () => {
    await receiver.close();
    await d.cleanup();
  });

  it('lists dead letters, redrives them once the receiver recovers, and every event arrives once', async () => {
    receiver.respond = answer(500);
    const events = await deadLetters(3);

    const table = await run(['queues', ...target]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^QUEUE\s+KIND\s+VISIBLE\s+IN FLIGHT\s+DELAYED\s+OLDEST\s+REDRIVES TO$/m);
    expect(table.stdout).toMatch(/^delivery-dlq\s+dead-letter\s+3\s+0\s+0\s+\S+\s+delivery$/m);

    const listed = await json<{ queue: string; deadLetters: DeadLetterView[] }[]>(['dlq', 'list']);
    expect(listed.map((l) => l.queue)).toEqual(['delivery-dlq']);
    expect(listed[0]?.deadLetters.map((l) => l.eventId).sort()).toEqual([...events].sort());
    const text = await run(['dlq', 'list', 'delivery', ...target]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('delivery-dlq: 3 dead letter(s), oldest first');
    for (const id of events) expect(text.stdout).toMatch(new RegExp(`${id}.*HTTP 500`));

    const dry = await run(['dlq', 'redrive', '--dry-run', ...target]);
    expect(dry.stdout.trim()).toBe('would move 3 message(s) from delivery-dlq to delivery');
    expect(await dlqDepth()).toBe(3);

    receiver.respond = answer(204);
    const from = receiver.callbacks.length;
    const redrive = await run(['dlq', 'redrive', 'delivery-dlq', ...target]);
    expect(redrive.stderr).toBe('');
    expect(redrive.code).toBe(0);
    expect(redrive.stdout).toContain('moved 3 message(s) from delivery-dlq to delivery');

    const delivered = () =>
      receiver.callbacks
        .slice(from)
        .filter((c) => c.verifiedBy.length > 0)
        .map((c) => (JSON.parse(c.body) as { id: string }).id);
    await eventually(() => (delivered().length >= 3 ? true : undefined), 15_000);
    await settled(d);
    expect(delivered().sort()).toEqual([...events].sort());
    expect(await dlqDepth()).toBe(0);
    expect((await run(['dlq', 'list', ...target])).stdout.trim()).toBe('no dead letters');
  });

  it('follows a paced redrive with a line per step, and purges only with --yes', async () => {
    receiver.respond = answer(500);
    await deadLetters(2);

    const paced = await run(['dlq', 'redrive', 'delivery', '--rate', '1', ...target]);
    expect(paced.code).toBe(0);
    expect(paced.stdout).toMatch(/^delivery-dlq → delivery: \[-+\] 0\/2$/m);
    expect(paced.stdout).toContain('moved 2 message(s) from delivery-dlq to delivery');
    const [task] = await json<RedriveTask[]>(['dlq', 'redrives', 'delivery-dlq']);
    expect(task).toMatchObject({ status: 'completed', moved: 2, maxPerSecond: 1 });

    // The receiver still fails: they die again, and are purged.
    await eventually(async () => ((await dlqDepth()) === 2 ? true : undefined), 20_000);
    const refused = await run(['dlq', 'purge', 'delivery-dlq', ...target]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('--yes');
    expect(await dlqDepth()).toBe(2);
    const purged = await json<{ queue: string; purged: number }>(['dlq', 'purge', 'delivery-dlq', '--yes']);
    expect(purged).toEqual({ queue: 'delivery-dlq', purged: 2 });
    expect(await dlqDepth()).toBe(0);
  });

  it('says what is wrong, with exit codes a script can trust', async () => {
    const unknownQueue = await run(['dlq', 'list', 'nope', ...target]);
    expect(unknownQueue.code).toBe(2);
    expect(unknownQueue.stderr).toContain('no dead-letter queue nope: these are fanout-dlq, delivery-dlq');

    const badFlag = await run(['dlq', 'redrive', '--rate', 'fast', ...target]);
    expect(badFlag.code).toBe(2);
    expect(badFlag.stderr).toContain('a whole number from 1 to 500');

    const badPayload = await run([
      'events',
      'publish',
      '--partner',
      partnerId,
      '--type',
      'x.y',
      '--payload',
      '{',
      ...target,
    ]);
    expect(badPayload.code).toBe(2);
    expect(badPayload.stderr).toContain('--payload is not JSON');

    const unknownPartner = await run([
      'events',
      'publish',
      '--partner',
      'ptr_00000000000000000000000000',
      '--type',
      'x.y',
      ...target,
    ]);
    expect(unknownPartner.code).toBe(1);
    expect(unknownPartner.stderr).toMatch(/404: partner ptr_0+ not found/);

    const wrongToken = await run(['queues', '--url', d.dispatcher.url, '--token', 'wrong']);
    expect(wrongToken.code).toBe(1);
    expect(wrongToken.stderr).toContain('401');

    const nobody = await run(['queues', '--url', 'http://127.0.0.1:9', '--token', 'x']);
    expect(nobody.code).toBe(1);
    expect(nobody.stderr).toContain('no dispatcher answers at http://127.0.0.1:9');

    const help = await run(['dlq', 'redrive', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--dry-run');
  });

  it('finds the local runtime from the environment: its address, and the token its data directory keeps', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'dispatcher-cli-'));
    try {
      writeFileSync(join(dataDir, 'admin-token'), `${d.dispatcher.adminToken}\n`);
      const port = new URL(d.dispatcher.url).port;
      const found = await run(['queues', '--json'], { PORT: port, DISPATCHER_DATA_DIR: dataDir });
      expect(found.stderr).toBe('');
      expect(JSON.parse(found.stdout)).toHaveLength(4);
      const byEnv = await run(['queues', '--json'], {
        DISPATCHER_URL: d.dispatcher.url,
        DISPATCHER_ADMIN_TOKEN: d.dispatcher.adminToken,
      });
      expect(byEnv.code).toBe(0);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
