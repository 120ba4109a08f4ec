import { spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

/** The repository root. */
export const ROOT = new URL('../../', import.meta.url).pathname;

/** Run the CLI from source in a child process, as a user would (exit code, stdout, stderr). */
export function cli(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/run.ts'), ...args], { encoding: 'utf8', cwd: ROOT });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

/**
 * Collect a child process's output lines (stderr prefixed) and resolve with the first value
 * `pick` finds in a stdout line; reject, with everything printed, if the process exits first.
 */
export function watchLines<T>(child: ChildProcess, pick: (line: string) => T | undefined, what: string): { lines: string[]; found: Promise<T> } {
  const lines: string[] = [];
  const found = new Promise<T>((res, rej) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const parts = buf.split('\n');
      buf = parts.pop()!;
      for (const l of parts) {
        lines.push(l);
        const v = pick(l);
        if (v !== undefined) res(v);
      }
    });
    child.stderr!.on('data', (d: Buffer) => lines.push(`stderr: ${d.toString()}`));
    child.once('exit', (code) => rej(new Error(`${what} exited (${code}) before it was ready: ${lines.join('\n')}`)));
  });
  return { lines, found };
}
