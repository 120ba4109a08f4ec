/**
 * Merging keys into a JSON file that several benchmarks share — `bench/out/loop.json`, where
 * `loop.bench.ts` keeps its per-seed `loop_runs` (hours of runs each) beside the 2D keys of
 * `loop-mask-head.bench.ts`, and the harness (`run.ts`) its record of the `loop` bench. One
 * merge for all of them:
 * - the other writers' keys stay (read, merge, write);
 * - the write is atomic (a temporary file beside it, then a rename: `src/io/atomic.ts`), so a
 *   crash or a failed write never leaves a half-written file;
 * - an existing file that cannot be read as a JSON object (truncated, hand-edited) is never
 *   dropped silently: it is moved aside to `<file>.corrupt-<time>` beside it, a warning names that
 *   copy, and the merge starts afresh (the benchmark's new figures are kept too). Refusing instead
 *   would throw away the figures of the run that just ended; the copy keeps the old bytes for
 *   repair by hand.
 * @module
 */
import { readFile, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { MedmaskError } from '../src/core/errors.js';
import { atomicWrite } from '../src/io/atomic.js';

/** The figures file the loop benchmarks share. */
export const LOOP_JSON = join(new URL('..', import.meta.url).pathname, 'bench/out/loop.json');

/** Options of {@link mergeJsonFile}. */
export interface MergeJsonOptions {
  /** Where the warning about a corrupt file goes (default: stderr). */
  warn?: (line: string) => void;
  /** The time in the backup's name (default: now). */
  now?: Date;
  /** Keys of the existing file not to keep (e.g. the harness's record of an earlier run). */
  drop?: readonly string[];
}

/** The keys to write, or a function of the keys already there (e.g. to add one entry to a map). */
export type JsonUpdate = Record<string, unknown> | ((prev: Record<string, unknown>) => Record<string, unknown>);

/**
 * Merge keys into a JSON object file (made when missing): `{ ...prev, ...update }` (less the
 * `drop` keys of `prev`), written atomically; a corrupt file is moved aside to a named backup with a warning (module doc).
 * @returns the object written, and the backup's path when one was made
 * @example
 * await mergeJsonFile(LOOP_JSON, (prev) => ({ loop_runs: { ...(prev.loop_runs as object), '31': run } }));
 */
export async function mergeJsonFile(file: string, update: JsonUpdate, o: MergeJsonOptions = {}): Promise<{ written: Record<string, unknown>; backup?: string }> {
  let prev: Record<string, unknown> = {};
  let backup: string | undefined;
  let text: string | undefined;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new MedmaskError('ENVIRONMENT', `cannot read ${file} to merge figures into it: ${(e as Error).message}`, { cause: e, hint: 'make the file readable (or move it away) and run the benchmark again' });
    }
  }
  if (text !== undefined) {
    const parsed = parseObject(text);
    if (parsed) prev = parsed;
    else {
      backup = await moveAside(file, o.now ?? new Date());
      (o.warn ?? ((l: string) => console.warn(l)))(`warning: ${file} is not a readable JSON object (truncated or edited by hand?); its bytes were moved to ${backup} and a new file is started with this run's figures — merge the old keys (e.g. loop_runs) back by hand if you need them`);
    }
  }
  const kept = o.drop?.length ? Object.fromEntries(Object.entries(prev).filter(([k]) => !o.drop!.includes(k))) : prev;
  const written = { ...kept, ...(typeof update === 'function' ? update(prev) : update) };
  await atomicWrite(file, JSON.stringify(written, null, 1) + '\n');
  return backup ? { written, backup } : { written };
}

/** Merge keys into `bench/out/loop.json` ({@link mergeJsonFile}). */
export function mergeLoopJson(update: JsonUpdate, o: MergeJsonOptions = {}): Promise<{ written: Record<string, unknown>; backup?: string }> {
  return mergeJsonFile(LOOP_JSON, update, o);
}

function parseObject(text: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** Rename `file` to `<file>.corrupt-<time>` (a free name: `-2`, `-3` … when taken). */
async function moveAside(file: string, now: Date): Promise<string> {
  const base = `${file}.corrupt-${now.toISOString().replace(/[:.]/g, '-')}`;
  for (let i = 1; ; i++) {
    const name = i === 1 ? base : `${base}-${i}`;
    if (await stat(name).then(() => true, () => false)) continue;
    await rename(file, name);
    return name;
  }
}
