/**
 * The `dispatcher` command's ops commands: queues, dead letters (list, redrive, purge, follow
 * and cancel a redrive), subscription health, and partners and events for scripts and demos.
 * Each talks to the local runtime's admin API, or with `--aws --stack NAME` to an AWS stack.
 *
 * Exit codes: 0 done; 1 the deployment refused, could not be reached, or a redrive did not
 * complete; 2 the command line is wrong (commander's own errors, and a purge without --yes).
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { DeadLetterView } from '../../functions/core/ops.ts';
import type { QueueInfo, RedriveTask, SubscriptionHealth } from '../../functions/core/ports.ts';
import { BackendError, type OpsBackend } from './backend.ts';
import { httpBackend, localTarget } from './http.ts';
import { age, bar, type Output, printable, table } from './output.ts';

/** A failure the command reports in one line, with its exit code. */
export class CommandFailed extends Error {
  readonly exitCode: number;

  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = 'CommandFailed';
    this.exitCode = exitCode;
  }
}

export interface TargetOptions {
  url?: string;
  token?: string;
  aws?: boolean;
  stack?: string;
  region?: string;
}

/** The deployment the options name: an AWS stack with --aws, else a dispatcher's admin API. */
export async function backendFor(options: TargetOptions): Promise<OpsBackend> {
  if (options.aws) {
    if (options.stack === undefined)
      throw new CommandFailed('--aws needs --stack NAME: the service stack', 2);
    // Loaded only here: the local commands never load the AWS SDK.
    const { awsBackend } = await import('./aws.ts');
    return awsBackend({
      stack: options.stack,
      ...(options.region === undefined ? {} : { region: options.region }),
    });
  }
  return httpBackend(localTarget(options));
}

/** The options every ops command takes: where the deployment is. */
function targetOptions(command: Command): Command {
  return command
    .option('--url <url>', 'the dispatcher’s address (default: DISPATCHER_URL, else http://127.0.0.1:$PORT)')
    .option(
      '--token <token>',
      'the admin token (default: DISPATCHER_ADMIN_TOKEN, else the one in the data directory)',
    )
    .option('--aws', 'work on an AWS stack (standard AWS credential chain) instead of a local dispatcher')
    .option('--stack <name>', 'with --aws: the service stack, e.g. WebhookDispatcher-prod-Service')
    .option('--region <region>', 'with --aws: its region (default: the credential chain’s)');
}

function positiveInteger(max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > max)
      throw new InvalidArgumentError(`a whole number from 1 to ${max}`);
    return n;
  };
}

async function withBackend<T>(options: TargetOptions, use: (backend: OpsBackend) => Promise<T>): Promise<T> {
  let backend: OpsBackend | undefined;
  try {
    backend = await backendFor(options);
    return await use(backend);
  } catch (error) {
    if (error instanceof BackendError) throw new CommandFailed(error.message);
    throw error;
  } finally {
    await backend?.close();
  }
}

/**
 * The dead-letter queue a name means: a dead-letter queue's own name, or a work queue's
 * (`delivery` means `delivery-dlq`); every one holding messages when no name is given.
 */
function deadLetterQueues(queues: readonly QueueInfo[], name: string | undefined): QueueInfo[] {
  const dlqs = queues.filter((q) => q.kind === 'dead-letter');
  if (name === undefined) return dlqs.filter((q) => q.visible + q.inFlight + q.delayed > 0);
  const named = dlqs.find((q) => q.name === name) ?? dlqs.find((q) => q.redrivesTo === name);
  if (named === undefined) {
    throw new CommandFailed(
      `no dead-letter queue ${name}: these are ${dlqs.map((q) => q.name).join(', ')}`,
      2,
    );
  }
  return [named];
}

function printQueues(io: Output, queues: readonly QueueInfo[]): void {
  io.out(
    table(
      ['QUEUE', 'KIND', 'VISIBLE', 'IN FLIGHT', 'DELAYED', 'OLDEST', 'REDRIVES TO'],
      queues.map((q) => [
        q.name,
        q.kind,
        String(q.visible),
        String(q.inFlight),
        String(q.delayed),
        age(q.oldestAgeSeconds),
        q.redrivesTo ?? '',
      ]),
    ),
  );
}

function printDeadLetters(io: Output, queue: string, letters: readonly DeadLetterView[]): void {
  io.out(`${queue}: ${letters.length} dead letter(s)${letters.length > 0 ? ', oldest first' : ''}`);
  if (letters.length === 0) return;
  io.out(
    table(
      ['DIED', 'EVENT', 'DELIVERY', 'SUBSCRIPTION', 'PARTNER', 'TRIES', 'LAST ERROR'],
      letters.map((l) => [
        l.deadAt,
        l.eventId ?? (l.window ? `written ${l.window.from} – ${l.window.to}` : '-'),
        l.deliveryId ?? '-',
        l.subscriptionId ?? '-',
        l.partnerId ?? '-',
        l.tries === undefined ? '-' : String(l.tries),
        l.reason,
      ]),
    ),
  );
}

/** Follows a running redrive until it ends, as a bar on a terminal or a line per change otherwise. */
async function follow(
  io: Output,
  backend: OpsBackend,
  started: RedriveTask,
  intervalMs: number,
): Promise<RedriveTask> {
  let task = started;
  let shown = -1;
  while (task.status === 'running' || task.status === 'cancelling') {
    if (io.tty) process.stdout.write(`\r${task.queue} → ${task.destination} ${bar(task.moved, task.toMove)}`);
    else if (task.moved !== shown)
      io.out(`${task.queue} → ${task.destination}: ${bar(task.moved, task.toMove)}`);
    shown = task.moved;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
    const current = (await backend.redrives(task.queue)).find((t) => t.id === task.id);
    if (current === undefined) break;
    task = current;
  }
  if (io.tty) process.stdout.write('\n');
  return task;
}

function redriveSummary(task: RedriveTask): string {
  return printable(summaryOf(task));
}

function summaryOf(task: RedriveTask): string {
  const what = `${task.moved} message(s) from ${task.queue} to ${task.destination}`;
  if (task.status === 'completed') return `moved ${what}`;
  if (task.status === 'running') return `redrive ${task.id} running: moved ${what} so far`;
  return `redrive ${task.status}${task.failureReason ? ` (${task.failureReason})` : ''}: moved ${what}`;
}

export function addOpsCommands(program: Command, io: Output): void {
  targetOptions(program.command('queues'))
    .description('every queue and dead-letter queue: visible, in flight, delayed, oldest message')
    .option('--json', 'print JSON')
    .action(async (options: TargetOptions & { json?: boolean }) => {
      const queues = await withBackend(options, (backend) => backend.queues());
      if (options.json) io.out(JSON.stringify(queues, null, 2));
      else printQueues(io, queues);
    });

  const dlq = program
    .command('dlq')
    .description('dead letters: list them, redrive them, purge them')
    .addHelpText(
      'after',
      '\nA queue is named as `dispatcher queues` shows it (delivery-dlq), or by its work queue (delivery).',
    );

  targetOptions(dlq.command('list'))
    .argument('[queue]', 'a dead-letter queue (default: every one that holds messages)')
    .description('each dead letter: event, delivery, subscription, partner, tries, last error, when it died')
    .option('--limit <n>', 'most dead letters per queue, 1 to 100', positiveInteger(100), 20)
    .option('--json', 'print JSON')
    .action(async (name: string | undefined, options: TargetOptions & { limit: number; json?: boolean }) => {
      await withBackend(options, async (backend) => {
        const lists: { queue: string; deadLetters: DeadLetterView[] }[] = [];
        for (const queue of deadLetterQueues(await backend.queues(), name)) {
          lists.push({
            queue: queue.name,
            deadLetters: await backend.deadLetters(queue.name, options.limit),
          });
        }
        if (options.json)
          io.out(JSON.stringify(name === undefined ? lists : (lists[0]?.deadLetters ?? []), null, 2));
        else if (lists.length === 0) io.out('no dead letters');
        else for (const list of lists) printDeadLetters(io, list.queue, list.deadLetters);
      });
    });

  targetOptions(dlq.command('redrive'))
    .argument('[queue]', 'a dead-letter queue (default: every one that holds messages)')
    .description('move dead letters back to be handled again, and follow the move until it ends')
    .option('--max <n>', 'move at most this many, oldest first', positiveInteger(1_000_000))
    .option('--rate <r>', 'move at most this many a second (1 to 500)', positiveInteger(500))
    .option('--dry-run', 'only say what would move')
    .option('--no-wait', 'start the redrive and return at once')
    .option('--json', 'print JSON')
    .action(
      async (
        name: string | undefined,
        options: TargetOptions & {
          max?: number;
          rate?: number;
          dryRun?: boolean;
          wait: boolean;
          json?: boolean;
        },
      ) => {
        await withBackend(options, async (backend) => {
          const queues = deadLetterQueues(await backend.queues(), name);
          if (queues.length === 0 && !options.json) io.out('no dead letters to redrive');
          const results: unknown[] = [];
          let incomplete = 0;
          for (const queue of queues) {
            const result = await backend.redrive(queue.name, {
              ...(options.max === undefined ? {} : { max: options.max }),
              ...(options.rate === undefined ? {} : { maxPerSecond: options.rate }),
              ...(options.dryRun ? { dryRun: true } : {}),
            });
            if (result.dryRun) {
              results.push({ dryRun: true, ...result.plan });
              if (!options.json)
                io.out(
                  `would move ${result.plan.wouldMove} message(s) from ${result.plan.queue} to ${result.plan.destination}`,
                );
              continue;
            }
            const quiet: Output = { ...io, out: () => {}, tty: false };
            const task = options.wait
              ? await follow(options.json ? quiet : io, backend, result.task, 500)
              : result.task;
            results.push(task);
            if (task.status !== 'completed' && (options.wait || task.status !== 'running')) incomplete++;
            if (!options.json) io.out(redriveSummary(task));
          }
          if (options.json) io.out(JSON.stringify(name === undefined ? results : results[0], null, 2));
          if (incomplete > 0) throw new CommandFailed(`${incomplete} redrive(s) did not complete`);
        });
      },
    );

  targetOptions(dlq.command('redrives'))
    .argument('<queue>', 'a dead-letter queue')
    .description('the recent redrives of a dead-letter queue, newest first')
    .option('--json', 'print JSON')
    .action(async (name: string, options: TargetOptions & { json?: boolean }) => {
      await withBackend(options, async (backend) => {
        const [queue] = deadLetterQueues(await backend.queues(), name);
        const tasks = await backend.redrives(queue?.name ?? name);
        if (options.json) io.out(JSON.stringify(tasks, null, 2));
        else if (tasks.length === 0) io.out(`no redrives of ${queue?.name ?? name}`);
        else
          io.out(
            table(
              ['ID', 'STATUS', 'MOVED', 'TO MOVE', 'STARTED'],
              tasks.map((t) => [
                t.id,
                t.status,
                String(t.moved),
                t.toMove === null ? '-' : String(t.toMove),
                t.startedAt,
              ]),
            ),
          );
      });
    });

  targetOptions(dlq.command('cancel'))
    .argument('<queue>', 'a dead-letter queue')
    .argument('<redrive>', 'the redrive’s id, as `dispatcher dlq redrives` shows it')
    .description('stop a running redrive; what it moved stays moved')
    .action(async (name: string, id: string, options: TargetOptions) => {
      await withBackend(options, async (backend) => {
        const [queue] = deadLetterQueues(await backend.queues(), name);
        io.out(redriveSummary(await backend.cancelRedrive(queue?.name ?? name, id)));
      });
    });

  targetOptions(dlq.command('purge'))
    .argument('[queue]', 'a dead-letter queue (default: every one that holds messages)')
    .description('delete every message of a dead-letter queue, for good')
    .option('--yes', 'yes, delete them: required')
    .option('--json', 'print JSON')
    .action(async (name: string | undefined, options: TargetOptions & { yes?: boolean; json?: boolean }) => {
      if (!options.yes) {
        throw new CommandFailed(
          'purge deletes dead letters for good: look at them with `dispatcher dlq list`, then add --yes',
          2,
        );
      }
      await withBackend(options, async (backend) => {
        const results = [];
        for (const queue of deadLetterQueues(await backend.queues(), name)) {
          const result = await backend.purge(queue.name);
          results.push(result);
          if (!options.json) io.out(`purged ${result.purged ?? 'every'} message(s) from ${result.queue}`);
        }
        if (options.json) io.out(JSON.stringify(name === undefined ? results : results[0], null, 2));
        else if (results.length === 0) io.out('no dead letters to purge');
      });
    });

  targetOptions(program.command('subscriptions'))
    .description('every partner’s failing or disabled subscriptions')
    .addOption(
      new Option('--status <status>', 'failing (active, failing since their last success) or disabled')
        .choices(['failing', 'disabled'])
        .default('failing'),
    )
    .option('--json', 'print JSON')
    .action(async (options: TargetOptions & { status: SubscriptionHealth; json?: boolean }) => {
      await withBackend(options, async (backend) => {
        const items = [];
        let after: string | undefined;
        do {
          const page = await backend.subscriptions(options.status, {
            limit: 1000,
            ...(after ? { after } : {}),
          });
          items.push(...page.items);
          after = page.next ?? undefined;
        } while (after !== undefined);
        if (options.json) io.out(JSON.stringify(items, null, 2));
        else if (items.length === 0) io.out(`no ${options.status} subscriptions`);
        else
          io.out(
            table(
              ['SUBSCRIPTION', 'PARTNER', 'URL', options.status === 'failing' ? 'FAILING SINCE' : 'WHY'],
              items.map((s) => [
                s.id,
                s.partnerId,
                s.url ?? '(connection)',
                (options.status === 'failing' ? s.failingSince : s.disabledReason) ?? '-',
              ]),
            ),
          );
      });
    });

  const partners = program.command('partners').description('partners, for scripts and demos');
  targetOptions(partners.command('create'))
    .argument('<name>', 'the partner’s name')
    .description('register a partner; prints its id and its first API key (shown once)')
    .option('--json', 'print JSON')
    .action(async (name: string, options: TargetOptions & { json?: boolean }) => {
      const partner = await withBackend(options, (backend) => backend.createPartner(name));
      if (options.json) io.out(JSON.stringify(partner, null, 2));
      else
        io.out(`partner ${partner.id} (${partner.name})\napi key ${partner.apiKey}  (shown once: keep it)`);
    });

  const events = program.command('events').description('events, for scripts and demos');
  targetOptions(events.command('publish'))
    .description('publish an event to a partner')
    .requiredOption('--partner <id>', 'the partner it is for')
    .requiredOption('--type <type>', 'its type, e.g. order.created')
    .option('--payload <json>', 'its payload as JSON, or - to read it from stdin', '{}')
    .option('--idempotency-key <key>', 'publishing again with this key returns the first event')
    .option('--json', 'print JSON')
    .action(
      async (
        options: TargetOptions & {
          partner: string;
          type: string;
          payload: string;
          idempotencyKey?: string;
          json?: boolean;
        },
      ) => {
        const text = options.payload === '-' ? await readStdin() : options.payload;
        let payload: unknown;
        try {
          payload = JSON.parse(text);
        } catch (error) {
          throw new CommandFailed(`--payload is not JSON: ${(error as Error).message}`, 2);
        }
        const published = await withBackend(options, (backend) =>
          backend.publish({
            partnerId: options.partner,
            type: options.type,
            payload,
            ...(options.idempotencyKey === undefined ? {} : { idempotencyKey: options.idempotencyKey }),
          }),
        );
        if (options.json) io.out(JSON.stringify(published, null, 2));
        else io.out(`${published.created ? 'published' : 'already published'} ${published.id}`);
      },
    );
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
