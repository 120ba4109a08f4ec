/**
 * Flagged regions computed off the event loop, in one lazily started worker thread
 * (regions-worker.ts); where no worker can start, in this thread.
 * @module
 */
import { Worker } from 'node:worker_threads';
import { flaggedRegions, type FlaggedRegion, type FlaggedRegionOptions } from '../core/viewer/regions.js';

let worker: Worker | null = null;
let broken = false;
let next = 0;
const waiting = new Map<number, { resolve(r: FlaggedRegion[]): void; reject(e: Error): void }>();

function start(): Worker | null {
  if (worker || broken) return worker;
  try {
    const fromSource = import.meta.url.endsWith('.ts');
    const url = new URL(`./regions-worker.${fromSource ? 'ts' : 'js'}`, import.meta.url);
    // Run from source (tests, tsx): the worker registers tsx's loader before importing the module.
    worker = fromSource
      ? new Worker(`(async () => { const { register } = await import('tsx/esm/api'); register(); await import(${JSON.stringify(url.href)}); })()`, { eval: true })
      : new Worker(url);
    worker.on('message', (m: { id: number; regions?: FlaggedRegion[]; error?: string }) => {
      const w = waiting.get(m.id);
      if (!w) return;
      waiting.delete(m.id);
      if (!waiting.size) worker?.unref(); // idle: do not keep the process alive
      if (m.error) w.reject(new Error(m.error));
      else w.resolve(m.regions!);
    });
    worker.on('error', (e) => {
      broken = true;
      worker = null;
      for (const w of waiting.values()) w.reject(e);
      waiting.clear();
    });
    worker.unref(); // after the listeners: attaching one refs the worker again
    return worker;
  } catch {
    broken = true;
    return null;
  }
}

/**
 * `flaggedRegions` in the worker thread (the map is copied to it).
 * @example
 * const regions = await regionsOffThread(attentionU8, [512, 512, 200], { threshold: 128 });
 */
export async function regionsOffThread(map: Uint8Array, grid: [number, number, number], opts: FlaggedRegionOptions): Promise<FlaggedRegion[]> {
  const w = start();
  if (!w) return flaggedRegions(map, grid, opts);
  const id = ++next;
  try {
    return await new Promise<FlaggedRegion[]>((resolve, reject) => {
      waiting.set(id, { resolve, reject });
      w.ref(); // a caller is waiting
      w.postMessage({ id, map, grid, opts });
    });
  } catch (e) {
    if (broken) return flaggedRegions(map, grid, opts);
    throw e;
  }
}
