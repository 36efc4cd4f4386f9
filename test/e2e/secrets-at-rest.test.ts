/**
 * Signing secrets at rest in the local runtime: sealed in the database with a key from a key
 * file beside it, both files the owner's alone, a start without the key refused, secrets in the
 * clear from an older store sealed at start, and the key rotated with the dispatcher stopped.
 */
import { chmodSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { generateLocalKey, readKeyFile, writeKeyFile } from '../../functions/adapters/secrets/key-file.ts';
import { closeDatabase, openDatabase } from '../../functions/adapters/sqlite/database.ts';
import { secretsAtRest } from '../../functions/adapters/sqlite/subscriptions.ts';
import { DataDirectoryInUseError } from '../../local/data-lock.ts';
import { databasePath } from '../../local/runtime.ts';
import { DEFAULT_KEY_FILE, rotateDataDirSecretKey } from '../../local/secret-keys.ts';
import { eventually, startTestDispatcher, type TestDispatcher } from './harness.ts';
import { startReceiver, type TestReceiver } from './receiver.ts';

const running: { dispatchers: TestDispatcher[]; receivers: TestReceiver[] } = {
  dispatchers: [],
  receivers: [],
};

afterEach(async () => {
  for (const receiver of running.receivers.splice(0)) await receiver.close();
  // The latest first: a restarted dispatcher stops before its directory goes.
  for (const dispatcher of running.dispatchers.splice(0).reverse()) await dispatcher.cleanup();
});

async function start(env: Record<string, string> = {}, dataDir?: string): Promise<TestDispatcher> {
  const dispatcher = await startTestDispatcher(env, {}, ...(dataDir === undefined ? [] : [dataDir]));
  running.dispatchers.push(dispatcher);
  return dispatcher;
}

/** Every byte the database keeps: the file, and the WAL that holds the latest commits. */
function databaseBytes(dataDir: string): Buffer {
  const path = databasePath(dataDir);
  return Buffer.concat([path, `${path}-wal`].filter(existsSync).map((file) => readFileSync(file)));
}

const modeOf = (path: string) => statSync(path).mode & 0o777;

/** A partner with one subscription to a fresh receiver, which verifies with its secret. */
async function subscribed(d: TestDispatcher) {
  const receiver = await startReceiver();
  running.receivers.push(receiver);
  const partner = await d.createPartner();
  const created = await d.as<{ id: string; secret: string }>(partner.apiKey, 'POST', '/v1/subscriptions', {
    url: `${receiver.url}/hook`,
  });
  expect(created.status).toBe(201);
  receiver.secrets = [created.body.secret];
  return { partner, receiver, subscriptionId: created.body.id, secret: created.body.secret };
}

async function publishAndVerify(d: TestDispatcher, partnerId: string, receiver: TestReceiver): Promise<void> {
  const before = receiver.callbacks.length;
  const published = await d.admin('POST', '/v1/events', {
    partnerId,
    type: 'order.created',
    payload: { n: 1 },
  });
  expect(published.status).toBe(202);
  const callback = await eventually(() => receiver.callbacks[before]);
  expect(callback.verifiedBy).not.toEqual([]);
}

describe('signing secrets at rest', () => {
  it('keeps no secret in the clear in the database, and both files are the owner’s alone', async () => {
    const d = await start();
    const { partner, receiver, subscriptionId, secret } = await subscribed(d);
    const rotated = await d.as<{ secret: string }>(
      partner.apiKey,
      'POST',
      `/v1/subscriptions/${subscriptionId}/rotate-secret`,
    );
    expect(rotated.status).toBe(200);
    receiver.secrets = [rotated.body.secret];
    await publishAndVerify(d, partner.id, receiver);

    const bytes = databaseBytes(d.dataDir);
    expect(bytes.length).toBeGreaterThan(0);
    for (const s of [secret, rotated.body.secret]) {
      expect(bytes.includes(s)).toBe(false);
      // Nor the key material behind the prefix, in any encoding the store might use.
      expect(bytes.includes(s.slice('whsec_'.length))).toBe(false);
    }
    expect(bytes.includes('whsec_')).toBe(false);

    const keyFile = join(d.dataDir, DEFAULT_KEY_FILE);
    expect(modeOf(keyFile)).toBe(0o600);
    expect(modeOf(databasePath(d.dataDir))).toBe(0o600);
    for (const companion of ['-wal', '-shm']) {
      const path = `${databasePath(d.dataDir)}${companion}`;
      if (existsSync(path)) expect(modeOf(path)).toBe(0o600);
    }
    expect(readFileSync(keyFile, 'utf8').includes(secret)).toBe(false);
  });

  it('creates its data directory for its owner alone', async () => {
    const parent = await start();
    const d = await start({}, join(parent.dataDir, 'nested', 'data'));
    expect(modeOf(d.dataDir)).toBe(0o700);
    expect(modeOf(join(parent.dataDir, 'nested'))).toBe(0o700);
  });

  it('takes group and world access off a database file and key file that had it', async () => {
    const d = await start();
    await subscribed(d);
    await d.stop();
    const keyFile = join(d.dataDir, DEFAULT_KEY_FILE);
    chmodSync(databasePath(d.dataDir), 0o644);
    chmodSync(keyFile, 0o644);
    const again = await start({}, d.dataDir);
    expect(modeOf(databasePath(again.dataDir))).toBe(0o600);
    expect(modeOf(keyFile)).toBe(0o600);
  });

  it('refuses to start without the key file once secrets are sealed with it, and starts again when it is back', async () => {
    const d = await start();
    const { partner, receiver } = await subscribed(d);
    await d.stop();
    const keyFile = join(d.dataDir, DEFAULT_KEY_FILE);
    const saved = readFileSync(keyFile);
    rmSync(keyFile);
    await expect(start({}, d.dataDir)).rejects.toThrow(/secret key file .* is missing.*restore the file/);
    // Nothing was made in its place: a new key would have opened none of the secrets.
    expect(existsSync(keyFile)).toBe(false);

    writeFileSync(keyFile, saved, { mode: 0o600 });
    const again = await start({}, d.dataDir);
    await publishAndVerify(again, partner.id, receiver);
  });

  it('refuses to start with a key file that lacks a key the database uses, naming it', async () => {
    const d = await start();
    await subscribed(d);
    await d.stop();
    const keyFile = join(d.dataDir, DEFAULT_KEY_FILE);
    const [used] = readKeyFile(keyFile) ?? [];
    writeKeyFile(keyFile, [generateLocalKey()]);
    await expect(start({}, d.dataDir)).rejects.toThrow(new RegExp(`lacks ${used?.id}`));
  });

  it('reads its key file from DISPATCHER_SECRET_KEY_FILE, kept apart from the data directory', async () => {
    const elsewhere = await start();
    const keyFile = join(elsewhere.dataDir, 'kept-apart.json');
    const d = await start({ DISPATCHER_SECRET_KEY_FILE: keyFile });
    const { partner, receiver } = await subscribed(d);
    expect(existsSync(keyFile)).toBe(true);
    expect(existsSync(join(d.dataDir, DEFAULT_KEY_FILE))).toBe(false);
    await publishAndVerify(d, partner.id, receiver);
  });

  it('seals at start the secrets an older version kept in the clear, with a key file it makes, and still signs with them', async () => {
    const d = await start();
    const { partner, receiver, subscriptionId, secret } = await subscribed(d);
    await d.stop();
    // As a database written before secrets were sealed holds them.
    const db = openDatabase(databasePath(d.dataDir));
    db.prepare('UPDATE subscriptions SET secrets = ? WHERE id = ?').run(
      JSON.stringify([{ secret, createdAt: new Date().toISOString() }]),
      subscriptionId,
    );
    expect(secretsAtRest(db).clear).toBe(1);
    closeDatabase(db);
    // Nor had that version a key file: the first start makes one.
    rmSync(join(d.dataDir, DEFAULT_KEY_FILE));

    const again = await start({}, d.dataDir);
    expect(modeOf(join(d.dataDir, DEFAULT_KEY_FILE))).toBe(0o600);
    // Not even in the bytes the old rows left behind.
    expect(databaseBytes(d.dataDir).includes(secret.slice('whsec_'.length))).toBe(false);
    const check = openDatabase(databasePath(d.dataDir));
    try {
      expect(secretsAtRest(check).clear).toBe(0);
    } finally {
      closeDatabase(check);
    }
    await publishAndVerify(again, partner.id, receiver);
  });

  it('rotates the key with the dispatcher stopped: every secret sealed anew, the old key gone, callbacks still verify', async () => {
    const d = await start();
    const first = await subscribed(d);
    const second = await subscribed(d);
    await expect(rotateDataDirSecretKey(d.config)).rejects.toThrow(DataDirectoryInUseError);
    await d.stop();

    const keyFile = join(d.dataDir, DEFAULT_KEY_FILE);
    const [oldKey] = readKeyFile(keyFile) ?? [];
    const result = await rotateDataDirSecretKey(d.config);
    expect(result.resealed).toBe(2);
    expect(result.retired).toEqual([oldKey?.id]);
    expect(readKeyFile(keyFile)?.map((k) => k.id)).toEqual([result.keyId]);
    expect(modeOf(keyFile)).toBe(0o600);
    const db = openDatabase(databasePath(d.dataDir));
    try {
      expect(secretsAtRest(db)).toEqual({ clear: 0, sealedWith: [`local.${result.keyId}`] });
    } finally {
      closeDatabase(db);
    }

    const again = await start({}, d.dataDir);
    await publishAndVerify(again, first.partner.id, first.receiver);
    await publishAndVerify(again, second.partner.id, second.receiver);
  });
});
