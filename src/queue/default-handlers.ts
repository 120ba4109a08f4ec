/**
 * The job types a server and its workers know. Pipelines plug in here by name.
 * @module
 */
import { JobHandlerRegistry } from './handlers.js';
import { annotateHandler } from './handlers/annotate.js';
import { phantomsHandler } from './handlers/phantoms.js';
import { atlasHandler } from './handlers/atlas.js';
import { trainMaskHeadHandler } from './handlers/train-mask-head.js';
import { finetuneHandler } from './handlers/finetune.js';

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
  reg.register('atlas', atlasHandler);
  reg.register('train-mask-head', trainMaskHeadHandler);
  reg.register('finetune', finetuneHandler);
  return reg;
}
