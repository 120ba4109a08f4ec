/**
 * Jobs: one queue interface with an in-process and a BullMQ implementation, handlers by name,
 * and the runner that executes a job from its database row.
 * @module
 */
export { backoffDelay, messageKey, type JobQueue, type QueueMessage, type FlowSpec, type Consumer, type DeliveryInfo, type RetryOptions } from './queue.js';
export { reconcileOnce, startReconciler, type ReconcileOptions, type ReconcileResult } from './reconcile.js';
export { isTransientError, waitForDatabase, withOutageRetry } from './outage.js';
export { InProcessQueue } from './in-process.js';
export { BullmqQueue, type BullmqQueueOptions } from './bullmq.js';
export { JobHandlerRegistry, PLANNED_JOB_TYPES, JOB_FORMAT, type JobHandler, type JobContext, type FanOut, type PlannedTask, type SettledTask, type TaskContext, type SubmitContext } from './handlers.js';
export { createJobProcessor, defaultWorkerId, type JobProcessorOptions, type RunnerEvent } from './runner.js';
export { createDefaultHandlers } from './default-handlers.js';
export { phantomsHandler, type PhantomsJobInput } from './handlers/phantoms.js';

import { MedmaskError } from '../core/errors.js';
import { BullmqQueue } from './bullmq.js';
import { InProcessQueue } from './in-process.js';
import type { JobQueue, RetryOptions } from './queue.js';

/**
 * A queue from a URL: `redis://…` (or `rediss://`) → BullMQ, `inline` / empty → in-process.
 * @example
 * const q = createQueue(process.env.MEDMASK_QUEUE ?? 'inline');
 */
export function createQueue(url: string | undefined, opts: RetryOptions & { name?: string; lockDurationMs?: number; maxStalledCount?: number; log?: (line: string) => void } = {}): JobQueue {
  if (!url || url === 'inline' || url === 'in-process') return new InProcessQueue({ ...(opts.attempts ? { attempts: opts.attempts } : {}), ...(opts.backoffMs ? { backoffMs: opts.backoffMs } : {}) });
  if (/^rediss?:\/\//.test(url)) return new BullmqQueue({ url, ...opts });
  throw new MedmaskError('USAGE', `queue "${url}" is neither "inline" nor a redis:// URL`, { hint: '--queue inline (default) or --queue redis://host:6379' });
}
