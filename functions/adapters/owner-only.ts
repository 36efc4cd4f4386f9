/**
 * Files only their owner may read: the local database and the secret key file hold what other
 * users of the machine must not see.
 */
import { chmodSync, closeSync, existsSync, openSync, statSync } from 'node:fs';

/** Takes group and world access off the file; true when it had any. */
export function restrictToOwner(path: string): boolean {
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) === 0) return false;
  chmodSync(path, mode & 0o700);
  return true;
}

/**
 * Creates the file empty with mode 0600 when it does not exist, and otherwise takes group and
 * world access off it (and off those of `companions` that exist).
 */
export function ownerOnly(path: string, companions: readonly string[] = []): void {
  try {
    closeSync(openSync(path, 'wx', 0o600));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    restrictToOwner(path);
  }
  for (const companion of companions) if (existsSync(companion)) restrictToOwner(companion);
}
