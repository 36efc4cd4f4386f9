#!/usr/bin/env node
/**
 * The `dispatcher` command: `start` runs the local dispatcher, `receive` a callback receiver
 * that verifies signatures (to try callbacks out on one machine).
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { KeyFileError } from '../functions/adapters/secrets/key-file.ts';
import { openDatabase } from '../functions/adapters/sqlite/database.ts';
import { openApiDocument } from '../functions/api/openapi.ts';
import { ConfigError, type LocalConfig, loadLocalConfig } from '../functions/config.ts';
import { DataDirectoryInUseError } from '../local/data-lock.ts';
import { startReceiver } from '../local/receiver.ts';
import { databasePath, openLocalQueues, startLocalDispatcher } from '../local/runtime.ts';
import { rotateDataDirSecretKey } from '../local/secret-keys.ts';

const USAGE = `usage: dispatcher <command>

commands:
  start                          run the local dispatcher (HTTP API, fan-out, delivery) on SQLite
  receive --secret whsec_… [--port 4000]
                                 run a callback receiver that verifies and prints each callback
  queues                         show the local queues: visible, in flight, delayed
  redrive <fanout|delivery>      move the dead letters of a queue back to it, to be tried again
  rotate-secret-key              seal every signing secret with a new key, then drop the old
                                 key from the key file (with the dispatcher stopped)
  openapi [--out FILE]           write the API's OpenAPI 3.1 document (default: to stdout)
  help                           show this

environment (start):
  PORT                              HTTP port (default 3000)
  DISPATCHER_DATA_DIR               where the SQLite file lives (default .data)
  DISPATCHER_ADMIN_TOKEN            admin token (default: generated once, kept in the data dir)
  DISPATCHER_SECRET_KEY_FILE        the key file sealing signing secrets
                                    (default: secret-keys.json in the data dir, created once)
  DISPATCHER_RETRY_SCHEDULE         seconds between tries, comma-separated
                                    (default 0,5,300,1800,7200,18000,36000,36000,36000)
  DISPATCHER_DELIVERY_TIMEOUT_MS    per-callback timeout (default 10000)
  DISPATCHER_ALLOW_PRIVATE_TARGETS  allow http and private/loopback targets (default true)
  DISPATCHER_DISABLE_AFTER_HOURS    disable a subscription failing this long without a success
                                    (default 120)`;

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
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(2);
    }
    throw error;
  }
}

/** Opens the data dir's queues beside a running dispatcher (SQLite allows both). */
function localQueues() {
  const settings = config();
  return openLocalQueues(openDatabase(databasePath(settings.dataDir)), settings);
}

function showQueues(): void {
  const queues = localQueues();
  console.table(Object.fromEntries(Object.values(queues).map((queue) => [queue.name, queue.stats()])));
}

function redrive(args: string[]): void {
  const queues = localQueues();
  const [name] = args;
  if (name !== 'fanout' && name !== 'delivery') {
    console.error('redrive: name the queue whose dead letters to move back: fanout or delivery');
    process.exit(2);
  }
  const moved =
    name === 'fanout'
      ? queues.fanoutDlq.redriveTo(queues.fanout)
      : queues.deliveryDlq.redriveTo(queues.delivery);
  console.log(`moved ${moved} message(s) from ${name}-dlq back to ${name}`);
}

async function start(): Promise<void> {
  const settings = config();
  let dispatcher: Awaited<ReturnType<typeof startLocalDispatcher>>;
  try {
    dispatcher = await startLocalDispatcher(settings);
  } catch (error) {
    // Said plainly, without a stack: the directory is another process's, or its key is missing.
    if (error instanceof DataDirectoryInUseError || error instanceof KeyFileError) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }
  console.log(`webhook dispatcher listening on ${dispatcher.url}`);
  console.log(`data: ${dispatcher.dataDir}`);
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

async function receive(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { secret: { type: 'string' }, port: { type: 'string', default: '4000' } },
  });
  if (!values.secret?.startsWith('whsec_')) {
    console.error(
      'receive: --secret whsec_… is required (the secret returned when the subscription was created)',
    );
    process.exit(2);
  }
  const { url } = await startReceiver({
    port: Number(values.port),
    secret: values.secret,
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
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }
}

function writeOpenApi(args: string[]): void {
  const { values } = parseArgs({ args, options: { out: { type: 'string' } } });
  const text = `${JSON.stringify(openApiDocument(), null, 2)}\n`;
  if (values.out === undefined) process.stdout.write(text);
  else {
    writeFileSync(values.out, text);
    console.log(`wrote ${values.out}`);
  }
}

const [command = 'help', ...rest] = process.argv.slice(2);
switch (command) {
  case 'start':
    await start();
    break;
  case 'receive':
    await receive(rest);
    break;
  case 'queues':
    showQueues();
    break;
  case 'redrive':
    redrive(rest);
    break;
  case 'rotate-secret-key':
    await rotateKey();
    break;
  case 'openapi':
    writeOpenApi(rest);
    break;
  case 'help':
  case '--help':
  case '-h':
    console.log(USAGE);
    break;
  default:
    console.error(`unknown command: ${command}\n\n${USAGE}`);
    process.exit(2);
}
