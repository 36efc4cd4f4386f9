/**
 * The local runtime's secret key file (adapters/secrets/key-file.ts): where it is, creating it
 * at the first start, refusing to start without it once secrets are sealed with it, and
 * rotating it.
 */
import { join, resolve } from 'node:path';
import { restrictToOwner } from '../functions/adapters/owner-only.ts';
import {
  generateLocalKey,
  KeyFileCipher,
  KeyFileError,
  readKeyFile,
  writeKeyFile,
} from '../functions/adapters/secrets/key-file.ts';
import {
  closeDatabase,
  DATABASE_FILE,
  openDatabase,
  type SqliteDatabase,
} from '../functions/adapters/sqlite/database.ts';
import {
  type SecretsAtRest,
  SqliteSubscriptionStore,
  secretsAtRest,
} from '../functions/adapters/sqlite/subscriptions.ts';
import type { LocalConfig } from '../functions/config.ts';
import { lockDataDir } from './data-lock.ts';

export const DEFAULT_KEY_FILE = 'secret-keys.json';

/** Where the key file is: DISPATCHER_SECRET_KEY_FILE, or beside the database. */
export function secretKeyPath(config: Pick<LocalConfig, 'secretKeyFile'>, dataDir: string): string {
  return resolve(config.secretKeyFile ?? join(dataDir, DEFAULT_KEY_FILE));
}

/**
 * The cipher of the key file at `path`, for a database whose secrets are kept as `atRest`
 * says (secretsAtRest). Without a file, a first key is made, unless the database already
 * holds secrets sealed with a key file: a new key would not open them, so
 * the file must be found, not replaced.
 * @throws KeyFileError
 */
export function loadSecretKeys(
  path: string,
  atRest: SecretsAtRest,
  log: (message: string) => void,
): KeyFileCipher {
  const keys = readKeyFile(path);
  if (keys) {
    if (restrictToOwner(path)) log(`${path} was readable by other users; it is now the owner's alone (0600)`);
    const held = new Set(keys.map((k) => `local.${k.id}`));
    const missing = atRest.sealedWith.filter((key) => !held.has(key));
    if (missing.length > 0) {
      throw new KeyFileError(
        `the secret key file ${path} lacks ${missing.map((key) => key.replace(/^local\./, '')).join(', ')}, ` +
          'which seal signing secrets in the database: restore the file that belongs to this data directory',
      );
    }
    return new KeyFileCipher(keys);
  }
  if (atRest.sealedWith.length > 0) {
    throw new KeyFileError(
      `the secret key file ${path} is missing, and the database holds signing secrets sealed with it: ` +
        'restore the file from a backup, or set DISPATCHER_SECRET_KEY_FILE to where it is',
    );
  }
  const first = generateLocalKey();
  writeKeyFile(path, [first]);
  log(`created the secret key file ${path} (keep it with backups of the database, apart from them)`);
  return new KeyFileCipher([first]);
}

/**
 * Rotates the key file: a new key is added first in the file, every secret is sealed again
 * with it, and then the file keeps only the new key. Interrupted, it leaves the file holding
 * both keys, which open everything; running it again finishes the job.
 * @returns the new key's id and how many subscriptions were sealed again
 */
export async function rotateSecretKey(
  path: string,
  db: SqliteDatabase,
): Promise<{ keyId: string; resealed: number; retired: string[] }> {
  const keys = readKeyFile(path);
  if (!keys) throw new KeyFileError(`the secret key file ${path} is missing`);
  const next = generateLocalKey();
  writeKeyFile(path, [next, ...keys]);
  const store = new SqliteSubscriptionStore(db, new KeyFileCipher([next, ...keys]));
  const resealed = await store.resealAll();
  const left = secretsAtRest(db);
  if (left.clear > 0 || left.sealedWith.some((key) => key !== `local.${next.id}`)) {
    // Written meanwhile by a process that still had the old keys: they stay in the file.
    throw new KeyFileError(
      `some secrets are still sealed with an older key (${left.sealedWith.join(', ')}); ` +
        'the key file keeps every key: stop every dispatcher on this data directory and rotate again',
    );
  }
  // The re-sealed rows on disk (synchronous=NORMAL does not sync each commit) before the old
  // key leaves the file.
  db.exec('PRAGMA wal_checkpoint(FULL)');
  writeKeyFile(path, [next]);
  return { keyId: next.id, resealed, retired: keys.map((k) => k.id) };
}

/**
 * Rotates the key file of a data directory no dispatcher is running on (`dispatcher
 * rotate-secret-key`): the directory's lock keeps one from starting meanwhile.
 * @throws DataDirectoryInUseError while a dispatcher runs on it; KeyFileError
 */
export async function rotateDataDirSecretKey(
  config: Pick<LocalConfig, 'dataDir' | 'secretKeyFile'>,
): Promise<{ keyId: string; resealed: number; retired: string[]; path: string }> {
  const dataDir = resolve(config.dataDir);
  const lock = lockDataDir(dataDir);
  try {
    const db = openDatabase(join(dataDir, DATABASE_FILE));
    try {
      const path = secretKeyPath(config, dataDir);
      return { ...(await rotateSecretKey(path, db)), path };
    } finally {
      closeDatabase(db);
    }
  } finally {
    lock.release();
  }
}
