import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';

/** A process started with its output collected as it comes, and a promise of its exit code. */
export interface Spawned {
  child: ChildProcess;
  out: { stdout: string; stderr: string };
  exited: Promise<number | null>;
}

/** Starts `command` with stdin closed, collecting stdout and stderr. */
export function spawnCollecting(command: string, args: readonly string[], options: SpawnOptions): Spawned {
  const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  child.stdout?.on('data', (chunk: Buffer) => {
    out.stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    out.stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
  return { child, out, exited };
}
