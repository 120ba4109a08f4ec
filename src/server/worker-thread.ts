/**
 * Starting one of the server's worker threads (decode-worker, slice-worker, regions-worker) from
 * the built `.js` or, run from source (tests, tsx), from its `.ts`: the thread then registers
 * tsx's loader before importing the module, since a worker does not inherit the parent's loader.
 * @module
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * A worker thread running `./<name>.js` (or `.ts` from source) beside this module.
 * @param name - the worker module's name in src/server, without extension
 * @param options - Worker options (e.g. resourceLimits)
 * @example
 * const w = serverWorker('slice-worker');
 */
export function serverWorker(name: 'decode-worker' | 'slice-worker' | 'regions-worker', options: WorkerOptions = {}): Worker {
  const fromSource = import.meta.url.endsWith('.ts');
  const url = new URL(`./${name}.${fromSource ? 'ts' : 'js'}`, import.meta.url);
  return fromSource
    ? new Worker(`(async () => { const { register } = await import('tsx/esm/api'); register(); await import(${JSON.stringify(url.href)}); })()`, { ...options, eval: true })
    : new Worker(url, options);
}
