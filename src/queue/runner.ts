/**
 * The job runner: what a worker does with a queue message. It claims the job row (a job already
 * done is skipped, so duplicate deliveries run nothing), runs the handler named by the job's type,
 * throttles progress into the database, and records the result or the error. Bad input
 * (a MedmaskError with a 4xx status) fails the job at once; anything else is retried by the queue
 * while tries remain.
 * @module
 */
import { mkdir, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { isMedmaskError } from '../core/errors.js';
import type { BlobStore } from '../store/blob-store.js';
import type { Store } from '../store/db.js';
import { claimJob, completeJob, failJob, setJobProgress } from '../store/jobs.js';
import { parseJson } from '../store/util.js';
import type { JobHandlerRegistry } from './handlers.js';
import type { Consumer } from './queue.js';

/** Options for {@link createJobProcessor}. */
export interface JobProcessorOptions {
  store: Store;
  blobs: BlobStore;
  handlers: JobHandlerRegistry;
  /** Scratch space; each job gets a subfolder. */
  workDir: string;
  /** Written on the job row (default host:pid). */
  workerId?: string;
  /** Minimum interval between progress writes (default 200 ms). */
  progressIntervalMs?: number;
  /** Called for each event (logging). */
  log?: (event: { jobId: string; event: 'start' | 'done' | 'retry' | 'failed' | 'skipped'; attempt: number; error?: string }) => void;
}

/** A default worker id: host and process id. */
export function defaultWorkerId(): string {
  return `${hostname()}:${process.pid}`;
}

/**
 * Build the consumer a queue runs.
 * @example
 * await queue.consume(createJobProcessor({ store, blobs, handlers, workDir: 'data/work' }));
 */
export function createJobProcessor(o: JobProcessorOptions): Consumer {
  const workerId = o.workerId ?? defaultWorkerId();
  const every = o.progressIntervalMs ?? 200;
  return async (msg, info) => {
    const job = await claimJob(o.store.db, msg.jobId, workerId);
    if (!job) {
      o.log?.({ jobId: msg.jobId, event: 'skipped', attempt: info.attempt });
      return;
    }
    o.log?.({ jobId: job.id, event: 'start', attempt: info.attempt });
    const workDir = join(o.workDir, `job-${job.id}-${process.pid}`);
    let last = 0;
    try {
      const handler = o.handlers.get(job.type);
      const input = handler.validate(parseJson(job.input));
      await mkdir(workDir, { recursive: true });
      const result = await handler.run({
        jobId: job.id,
        type: job.type,
        input,
        attempt: info.attempt,
        store: o.store,
        blobs: o.blobs,
        workDir,
        userId: job.created_by,
        signal: info.signal,
        async progress(fraction, message) {
          const now = Date.now();
          if (now - last < every && fraction < 1) return;
          last = now;
          await setJobProgress(o.store.db, job.id, fraction, message);
        },
      });
      await completeJob(o.store.db, job.id, result);
      o.log?.({ jobId: job.id, event: 'done', attempt: info.attempt });
    } catch (e) {
      const badInput = isMedmaskError(e) && e.status < 500;
      // A job aborted by a shutdown goes back to the queue whatever its try count.
      const final = !info.signal.aborted && (badInput || info.attempt >= info.maxAttempts);
      const text = isMedmaskError(e) ? `[${e.code}] ${e.message}` : (e as Error)?.message ?? String(e);
      await failJob(o.store.db, job.id, text, final);
      o.log?.({ jobId: job.id, event: final ? 'failed' : 'retry', attempt: info.attempt, error: text });
      if (!final) throw e;
    } finally {
      await rm(workDir, { recursive: true, force: true }).catch(() => {});
    }
  };
}
