import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

/** The repository root. */
export const ROOT = new URL('../../', import.meta.url).pathname;

/** Run the CLI from source in a child process, as a user would (exit code, stdout, stderr). */
export function cli(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/run.ts'), ...args], { encoding: 'utf8', cwd: ROOT });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}
