/**
 * Clean-up of what crashed processes leave behind: temporary uploads, job scratch folders, blob
 * spool files. Each such entry carries its writer's process id in its name; an entry whose process
 * is gone is removed, one of a live process (this one, or another server or worker on the machine)
 * stays.
 * @module
 */
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

/** What to do with entries whose name carries no process id. */
export interface DeadEntryPolicy {
  /** 'keep' (folders that also hold other things) or 'remove' (folders only this code writes). */
  unnamed: 'keep' | 'remove';
}

/** Whether a process runs (EPERM: it runs under another account). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Remove the entries of `dir` (files or folders, recursively) whose writer process is gone.
 * @param pidOf - the process id in an entry's name, or null when it has none
 * @returns how many entries were removed (0 when `dir` does not exist)
 * @example
 * await removeDeadEntries('data/tmp', (n) => Number(/^[a-z]+-(\d+)-/.exec(n)?.[1]) || null, { unnamed: 'keep' });
 */
export async function removeDeadEntries(dir: string, pidOf: (name: string) => number | null, policy: DeadEntryPolicy): Promise<number> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  let n = 0;
  for (const name of names) {
    const pid = pidOf(name);
    if (pid === null ? policy.unnamed === 'keep' : pid === process.pid || isAlive(pid)) continue;
    await rm(join(dir, name), { recursive: true, force: true });
    n++;
  }
  return n;
}
