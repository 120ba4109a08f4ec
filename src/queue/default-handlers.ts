/**
 * The job types a server and its workers know. Pipelines plug in here by name.
 * @module
 */
import { JobHandlerRegistry } from './handlers.js';
import { annotateHandler } from './handlers/annotate.js';
import { phantomsHandler } from './handlers/phantoms.js';

/**
 * The built-in job handlers.
 * @returns a fresh registry (add your own handlers to it)
 * @example
 * const handlers = createDefaultHandlers();
 * handlers.register('my-job', myHandler);
 */
export function createDefaultHandlers(): JobHandlerRegistry {
  const reg = new JobHandlerRegistry();
  reg.register('phantoms', phantomsHandler);
  reg.register('annotate', annotateHandler);
  // ── Pipeline handlers ──────────────────────────────────────────────────────────────────────
  // `annotate` is registered above; `atlas` (the 3D workflow) registers here, one line, e.g.
  // reg.register('atlas', atlasHandler). Write results with the store's recordPrediction() so
  // retried jobs stay idempotent. Until then PLANNED_JOB_TYPES in handlers.ts makes it a clear 400.
  return reg;
}
