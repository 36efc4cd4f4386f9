/**
 * One local runtime per data directory: a lock file holding the owner's pid. A second process
 * started on the same directory is refused with a message saying which process has it; a
 * lock left by a process that died (kill -9) is taken over. Owning the directory is what lets
 * a starting runtime release what the last one had in flight at once (see runtime.ts).
 */
import { closeSync, openSync, readFileSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export class DataDirectoryInUseError extends Error {
  constructor(dataDir: string, pid: number) {
    super(
      `the data directory ${dataDir} is in use by process ${pid}: stop that dispatcher first, ` +
        'or start this one with another DISPATCHER_DATA_DIR',
    );
    this.name = 'DataDirectoryInUseError';
  }
}

export interface DataLock {
  release(): void;
}

/** Whether a process with this pid is running (one we may not signal is running too). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error instanceof Error && 'code' in error && error.code === 'EPERM';
  }
}

/** The directories this process holds, by lock file: a second runtime in it is refused too. */
const held = new Set<string>();

/**
 * Takes the data directory's lock.
 * @throws DataDirectoryInUseError when a running process (this one included) holds it
 */
export function lockDataDir(dataDir: string): DataLock {
  const file = join(dataDir, 'dispatcher.lock');
  const mine = String(process.pid);
  if (held.has(file)) throw new DataDirectoryInUseError(dataDir, process.pid);
  try {
    const fd = openSync(file, 'wx', 0o600);
    writeSync(fd, mine);
    closeSync(fd);
  } catch (error) {
    if (!(error instanceof Error && 'code' in error && error.code === 'EEXIST')) throw error;
    const holder = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
    if (Number.isInteger(holder) && holder !== process.pid && alive(holder)) {
      throw new DataDirectoryInUseError(dataDir, holder);
    }
    // Left by a process that is gone (or by this one, from a runtime that failed to start):
    // this one takes the directory over.
    writeFileSync(file, mine, { mode: 0o600 });
  }
  held.add(file);
  return {
    release() {
      held.delete(file);
      try {
        if (readFileSync(file, 'utf8').trim() === mine) unlinkSync(file);
      } catch {
        // Already gone.
      }
    },
  };
}
