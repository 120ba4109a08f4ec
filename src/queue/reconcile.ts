/**
 * Nothing stuck: the database says what should run, the queue what will. The reconciler compares
 * them (on server start and then periodically) and repairs the difference:
 *
 * - a job `queued` in the database with nothing on the queue (Redis lost it, or the enqueue after
 *   the insert never happened) is enqueued again;
 * - a job `running` whose queue entry is gone and whose row has not been touched for `staleMs`
 *   (its worker is dead past its lock; BullMQ gave up after its stalled limit):
 *   - one that fans out is enqueued again — its job message puts the unsettled tasks on the queue
 *     as a new round, or runs the reduce step when none is left;
 *   - any other is marked failed with an error that says so; `POST /api/jobs/:id/retry` (or
 *     `medmask jobs retry`) runs it again.
 *
 * Both repairs are safe to repeat (enqueue is idempotent per job; handlers are idempotent).
 * @module
 */
import type { Store } from '../store/db.js';
import { taskCounts } from '../store/job-tasks.js';
import { failJob, unfinishedJobs } from '../store/jobs.js';
import type { JobQueue } from './queue.js';

/** A job that fans out is put back on the queue at most this many times before it is marked failed. */
const MAX_REKICKS = 20;

/** Options for {@link reconcileOnce} and {@link startReconciler}. */
export interface ReconcileOptions {
  store: Store;
  queue: Pick<JobQueue, 'enqueue' | 'live'>;
  /** A running job untouched this long, with no queue entry, has lost its worker (default 60 s). */
  staleMs?: number;
  log?: (line: string) => void;
}

/** What one pass did. */
export interface ReconcileResult {
  requeued: string[];
  failed: string[];
}

/**
 * One pass over the unfinished jobs.
 * @example
 * const { requeued, failed } = await reconcileOnce({ store, queue });
 */
export async function reconcileOnce(o: ReconcileOptions): Promise<ReconcileResult> {
  const staleMs = o.staleMs ?? 60_000;
  const out: ReconcileResult = { requeued: [], failed: [] };
  for (const job of await unfinishedJobs(o.store.db)) {
    if (await o.queue.live(job.id, job.fan_round)) continue;
    if (job.status === 'queued') {
      await o.queue.enqueue({ jobId: job.id, type: job.type });
      out.requeued.push(job.id);
      o.log?.(`job ${job.id} (${job.type}) was queued in the database but not on the queue: enqueued again`);
      continue;
    }
    const idle = Date.now() - Date.parse(job.updated_at);
    if (idle < staleMs) continue; // its worker still reports: let it finish
    const tasks = await taskCounts(o.store.db, job.id);
    if (tasks.total > 0 && job.attempts < MAX_REKICKS) {
      await o.queue.enqueue({ jobId: job.id, type: job.type });
      out.requeued.push(job.id);
      o.log?.(`job ${job.id} (${job.type}): ${tasks.pending + tasks.running} of ${tasks.total} task(s) unsettled and nothing on the queue: enqueued again`);
      continue;
    }
    const error = `worker ${job.worker ?? '?'} stopped working on this job (no sign of life for ${Math.round(idle / 1000)} s and nothing on the queue): retry it with POST /api/jobs/${job.id}/retry or medmask jobs retry ${job.id}`;
    await failJob(o.store.db, job.id, error, true);
    out.failed.push(job.id);
    o.log?.(`job ${job.id} (${job.type}): ${error}`);
  }
  return out;
}

/**
 * Reconcile every `intervalMs` until stopped (a pass that fails — database or Redis away — is
 * logged and the next one tries again).
 * @returns stop(): ends the timer and waits for a pass in progress
 */
export function startReconciler(o: ReconcileOptions & { intervalMs: number }): { stop(): Promise<void> } {
  let running: Promise<unknown> = Promise.resolve();
  let stopped = false;
  const timer = setInterval(() => {
    running = running.then(async () => {
      if (stopped) return;
      try {
        await reconcileOnce(o);
      } catch (e) {
        o.log?.(`reconciliation pass failed (${(e as Error).message}); trying again in ${o.intervalMs} ms`);
      }
    });
  }, o.intervalMs);
  timer.unref();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
