#!/usr/bin/env node
/**
 * The `dispatcher` command: `start` runs the local dispatcher, `receive` a callback receiver
 * that verifies signatures (to try callbacks out on one machine), and the ops commands
 * (queues, dead letters, subscription health, partners, events) work on the local runtime or,
 * with `--aws --stack NAME`, on an AWS stack. `dispatcher --help`, and `--help` on each command.
 */
import { writeFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { KeyFileError } from '../functions/adapters/secrets/key-file.ts';
import { openApiDocument } from '../functions/api/openapi.ts';
import { ConfigError, type LocalConfig, loadLocalConfig } from '../functions/config.ts';
import { DataDirectoryInUseError } from '../local/data-lock.ts';
import { startReceiver } from '../local/receiver.ts';
import { startLocalDispatcher } from '../local/runtime.ts';
import { rotateDataDirSecretKey } from '../local/secret-keys.ts';
import { addListenCommand } from './cli/listen-command.ts';
import { addOpsCommands, CommandFailed } from './cli/ops-commands.ts';
import { processOutput } from './cli/output.ts';

const START_ENVIRONMENT = `
environment:
  PORT                              HTTP port (default 3000)
  HOST                              address to listen on (default 127.0.0.1)
  DISPATCHER_DATA_DIR               where the SQLite file lives (default .data)
  DISPATCHER_ADMIN_TOKEN            admin token (default: generated once, kept in the data dir)
  DISPATCHER_SECRET_KEY_FILE        the key file sealing signing secrets
                                    (default: secret-keys.json in the data dir, created once)
  DISPATCHER_RETRY_SCHEDULE         seconds between tries, comma-separated
                                    (default 0,5,300,1800,7200,18000,36000,36000,36000)
  DISPATCHER_DELIVERY_TIMEOUT_MS    per-callback timeout (default 10000)
  DISPATCHER_ALLOW_PRIVATE_TARGETS  allow http and private/loopback targets (default true)
  DISPATCHER_DISABLE_AFTER_HOURS    disable a subscription failing this long without a success
                                    (default 120)
  DISPATCHER_RETENTION_DAYS         days events, deliveries and attempts are kept (default 30)
  DISPATCHER_EGRESS_IPS             addresses callbacks leave from, for GET /v1/egress-ips
                                    (comma-separated; default none)`;

function quickStart(url: string, adminToken: string): string {
  return `Quick start, in another terminal:

  export DISPATCHER=${url} ADMIN_TOKEN=${adminToken}

  # 1. Register a partner; keep the apiKey it returns (shown once).
  curl -s -X POST $DISPATCHER/v1/partners -H "authorization: Bearer $ADMIN_TOKEN" \\
    -H 'content-type: application/json' -d '{"name":"acme"}'
  export API_KEY=dk_…  PARTNER_ID=ptr_…

  # 2. As the partner, subscribe a callback URL; keep the secret it returns (shown once).
  curl -s -X POST $DISPATCHER/v1/subscriptions -H "authorization: Bearer $API_KEY" \\
    -H 'content-type: application/json' -d '{"url":"http://127.0.0.1:4000/webhooks"}'

  # 3. In a third terminal, run a receiver that verifies signatures:
  npm run receiver -- --secret whsec_…

  # 4. Publish an event to the partner: the receiver prints it, verified.
  curl -s -X POST $DISPATCHER/v1/events -H "authorization: Bearer $ADMIN_TOKEN" \\
    -H 'content-type: application/json' \\
    -d '{"partnerId":"'$PARTNER_ID'","type":"order.created","payload":{"orderId":"o_1"}}'

  # 5. Or poll for it, as a partner behind a firewall would (wait=20: a long poll):
  curl -s "$DISPATCHER/v1/events?limit=10&wait=20" -H "authorization: Bearer $API_KEY"

The partner guide (docs/partners.md) goes on from here; the API's description is at
$DISPATCHER/openapi.json.
`;
}

function config(): LocalConfig {
  try {
    return loadLocalConfig();
  } catch (error) {
    if (error instanceof ConfigError) throw new CommandFailed(error.message, 2);
    throw error;
  }
}

async function start(): Promise<void> {
  const settings = config();
  let dispatcher: Awaited<ReturnType<typeof startLocalDispatcher>>;
  try {
    dispatcher = await startLocalDispatcher(settings);
  } catch (error) {
    // Said plainly, without a stack: the directory is another process's, or its key is missing.
    if (error instanceof DataDirectoryInUseError || error instanceof KeyFileError) {
      throw new CommandFailed(error.message);
    }
    throw error;
  }
  console.log(`webhook dispatcher listening on ${dispatcher.url}`);
  console.log(`data: ${dispatcher.dataDir}`);
  console.log(`ops page: ${dispatcher.url}/ops (sign in with the admin token)`);
  console.log(
    `admin token: ${dispatcher.adminToken}${dispatcher.adminTokenGenerated ? ' (generated, kept in the data dir; set DISPATCHER_ADMIN_TOKEN to choose one)' : ''}`,
  );
  if (settings.allowPrivateTargets) {
    console.warn(
      'warning: private targets are allowed (http and loopback/private addresses): fine on one machine, ' +
        'never in production. Set DISPATCHER_ALLOW_PRIVATE_TARGETS=false to refuse them.',
    );
  }
  console.log(`\n${quickStart(dispatcher.url, dispatcher.adminToken)}`);

  const shutdown = (signal: string) => {
    console.log(`${signal}: stopping; deliveries in flight finish first`);
    dispatcher.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error('stop failed', error);
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
}

async function receive(options: { secret: string; port: number }): Promise<void> {
  if (!options.secret.startsWith('whsec_') && !options.secret.startsWith('whpk_')) {
    throw new CommandFailed(
      'receive: --secret whsec_… (the secret returned when the subscription was created) or whpk_… (an ed25519 subscription’s public key) is required',
      2,
    );
  }
  const { url } = await startReceiver({
    port: options.port,
    secret: options.secret,
    onCallback: ({ webhookId, verified, body }) =>
      console.log(`${verified ? 'verified' : 'REJECTED (bad signature)'} ${webhookId} ${body}`),
  });
  console.log(`receiving callbacks on ${url}/webhooks`);
}

async function rotateKey(): Promise<void> {
  try {
    const { keyId, resealed, retired, path } = await rotateDataDirSecretKey(config());
    console.log(
      `${path}: signing secrets of ${resealed} subscription(s) sealed with the new key ${keyId}; ` +
        `retired ${retired.join(', ')}`,
    );
  } catch (error) {
    if (error instanceof DataDirectoryInUseError || error instanceof KeyFileError) {
      throw new CommandFailed(error.message);
    }
    throw error;
  }
}

function writeOpenApi(options: { out?: string }): void {
  const text = `${JSON.stringify(openApiDocument(), null, 2)}\n`;
  if (options.out === undefined) process.stdout.write(text);
  else {
    writeFileSync(options.out, text);
    console.log(`wrote ${options.out}`);
  }
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65_535)
    throw new InvalidArgumentError('a port number, 0 to 65535');
  return n;
}

const program = new Command('dispatcher')
  .description('the webhook dispatcher: run it locally, and operate it here or on AWS')
  .showHelpAfterError('(add --help for usage)')
  .exitOverride()
  .addHelpText(
    'after',
    '\nExit codes: 0 done; 1 failed (the deployment refused or could not be reached, or a redrive did not complete); 2 wrong usage.',
  );
program
  .command('start')
  .description('run the local dispatcher (HTTP API, fan-out, delivery) on SQLite')
  .addHelpText('after', START_ENVIRONMENT)
  .action(start);
program
  .command('receive')
  .description('run a callback receiver that verifies and prints each callback')
  .requiredOption(
    '--secret <key>',
    'the subscription’s signing secret, whsec_…, or an ed25519 subscription’s public key, whpk_…',
  )
  .option('--port <port>', 'the port to listen on', port, 4000)
  .action(receive);
program
  .command('rotate-secret-key')
  .description(
    'seal every signing secret with a new key, then drop the old key from the key file (with the dispatcher stopped)',
  )
  .action(rotateKey);
program
  .command('openapi')
  .description('write the API’s OpenAPI 3.1 document')
  .option('--out <file>', 'the file to write (default: stdout)')
  .action(writeOpenApi);
addOpsCommands(program, processOutput);
addListenCommand(program, processOutput);

try {
  await program.parseAsync();
} catch (error) {
  if (error instanceof CommanderError) {
    // Help and version end well; commander has already said what was wrong with the rest.
    process.exitCode = error.code === 'commander.helpDisplayed' || error.code === 'commander.version' ? 0 : 2;
  } else if (error instanceof CommandFailed) {
    console.error(`dispatcher: ${error.message}`);
    process.exitCode = error.exitCode;
  } else {
    throw error;
  }
}
