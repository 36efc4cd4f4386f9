/**
 * `dispatcher listen`: the agent a partner runs inside its own network to receive its
 * deliveries over a connection (docs/connection-protocol.md) and forward each one, byte for byte
 * with its signed headers, to a receiver the internet cannot reach. Each delivery is answered
 * with the receiver's status; one line per delivery says `<webhook-id> <status> <ms>`. It runs
 * until SIGINT or SIGTERM, answers what it is handling, closes the connection and exits 0.
 *
 * Exit codes: 0 stopped by a signal; 1 the dispatcher refused the key or the subscription;
 * 2 the command line is wrong.
 */
import type { Command } from 'commander';
// The client's sources, by path: `node bin/dispatcher.ts` runs without the `development`
// condition that maps `@webhook-dispatcher/client` to them, and the package is not built here.
import {
  DispatcherClient,
  DispatcherError,
  forwardTo,
  ListenError,
} from '../../clients/typescript/src/index.ts';
import { CommandFailed } from './ops-commands.ts';
import type { Output } from './output.ts';

interface ListenCommandOptions {
  url?: string;
  apiKey?: string;
  subscription?: string;
  forwardTo: string;
}

function httpUrl(value: string, option: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new CommandFailed(`${option} ${value} is not a URL`, 2);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new CommandFailed(`${option} needs an http or https URL, not ${value}`, 2);
  return url.toString();
}

async function listen(io: Output, options: ListenCommandOptions): Promise<void> {
  const url = options.url ?? process.env.DISPATCHER_URL;
  if (url === undefined || url === '')
    throw new CommandFailed('listen: --url is required (the dispatcher API’s address), or DISPATCHER_URL', 2);
  const apiKey = options.apiKey ?? process.env.DISPATCHER_API_KEY;
  if (apiKey === undefined || apiKey === '')
    throw new CommandFailed('listen: --api-key dk_… is required, or DISPATCHER_API_KEY', 2);
  const baseUrl = httpUrl(url, '--url');
  const target = httpUrl(options.forwardTo, '--forward-to');

  const stopping = new AbortController();
  const stop = (signal: NodeJS.Signals) => {
    io.out(`${signal}: answering the deliveries in hand, then closing`);
    stopping.abort();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  io.out(`forwarding deliveries from ${baseUrl} to ${target}`);
  try {
    await new DispatcherClient({ baseUrl, apiKey }).connections.listen({
      ...(options.subscription === undefined ? {} : { subscriptionId: options.subscription }),
      onDelivery: forwardTo(target),
      signal: stopping.signal,
      log: io.out,
    });
  } catch (error) {
    if (error instanceof DispatcherError || error instanceof ListenError)
      throw new CommandFailed(`listen: ${error.message}`);
    throw error;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
  io.out('stopped');
}

export function addListenCommand(program: Command, io: Output): void {
  program
    .command('listen')
    .description(
      'receive a partner’s deliveries over a connection and forward each to a local receiver (no public URL needed)',
    )
    .option('--url <url>', 'the dispatcher API’s address (default: DISPATCHER_URL)')
    .option('--api-key <key>', 'the partner’s API key, dk_… (default: DISPATCHER_API_KEY)')
    .option('--subscription <id>', 'only this connection subscription (default: every one of the partner’s)')
    .requiredOption(
      '--forward-to <url>',
      'where to POST each delivery, as the dispatcher would, e.g. http://internal-host/webhooks',
    )
    .addHelpText(
      'after',
      `
Each delivery is POSTed as the dispatcher would (the same body and signed webhook-* headers), and
answered with the receiver’s status: 2xx acknowledges it; anything else, or no answer, is a failed
try, retried on the subscription’s schedule. One line per delivery: <webhook-id> <status> <ms>.

Runs until SIGINT or SIGTERM, then exits 0. Exit codes: 1 the dispatcher refused the key or the
subscription; 2 a wrong command line.`,
    )
    .action((options: ListenCommandOptions) => listen(io, options));
}
