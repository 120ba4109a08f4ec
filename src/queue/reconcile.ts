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
 * - a `queued` job whose type needs a capability (e.g. torch) that no live worker has any more
 *   (its only capable worker died after the submission) gets a message that says so, since when,
 *   and what to start; once a capable worker is alive again the message is the usual one.
 *
 * The repairs are safe to repeat (enqueue is idempotent per job; handlers are idempotent).
 * @module
 */
import type { Store } from '../store/db.js';
import { taskCounts } from '../store/job-tasks.js';
import { failJob, unfinishedJobs, type JobRow } from '../store/jobs.js';
import { liveWorkers, noteWaiting, recordedWorkers } from '../store/workers.js';
import { CAPABILITIES, requirementsOf, WORKER_STALE_MS, type Capability } from './capabilities.js';
import type { JobHandlerRegistry } from './handlers.js';
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
  /** The job types (for what each needs); without them, waiting jobs' messages are left alone. */
  handlers?: JobHandlerRegistry;
  /** The capabilities of this process when it runs the jobs itself (in-process queue): no worker rows then. */
  ownCapabilities?: () => Promise<readonly Capability[]>;
  /** A worker counts as gone when its heartbeat is older than this (default 60 s, as at submission). */
  workerStaleMs?: number;
  /** When a capable worker was last seen alive, per capability set (kept across passes by {@link startReconciler}). */
  seen?: Map<string, number>;
}

/** What one pass did. */
export interface ReconcileResult {
  requeued: string[];
  failed: string[];
  /** Queued jobs whose message now says that no capable worker is alive. */
  orphaned: string[];
}

/** The start of the message of a job that waits for a capability no live worker has. */
export const NO_CAPABLE_WORKER = 'waiting: no worker with';

/**
 * A queued job that needs a capability: say on it when no live worker has it (since when, what to
 * start), and go back to the usual message when one is alive again. Returns whether it is orphaned.
 */
async function noteCapability(o: ReconcileOptions, job: JobRow, cache: { live?: Awaited<ReturnType<typeof liveWorkers>>; all?: Awaited<ReturnType<typeof recordedWorkers>> }): Promise<boolean> {
  if (!o.handlers?.has(job.type)) return false;
  const needs = requirementsOf(o.handlers.get(job.type));
  if (!needs.length) return false;
  if (o.ownCapabilities) {
    // In-process: this server runs the job; it was refused at submission when the server lacks a capability.
    const own = await o.ownCapabilities();
    if (needs.every((c) => own.includes(c))) return false;
  }
  const can = (w: { capabilities: string[]; jobTypes: string[] }) => w.jobTypes.includes(job.type) && needs.every((c) => w.capabilities.includes(c));
  const key = [...needs].sort().join('+');
  cache.live ??= await liveWorkers(o.store.db, o.workerStaleMs ?? WORKER_STALE_MS);
  const capable = cache.live.filter(can);
  if (capable.length) {
    o.seen?.set(key, Date.now());
    if (job.message?.startsWith(NO_CAPABLE_WORKER)) {
      await noteWaiting(o.store.db, job.id, `queued: waiting for a worker with ${needs.join(' and ')} (${capable.map((w) => w.id).join(', ')})`);
      o.log?.(`job ${job.id} (${job.type}): a worker with ${needs.join(' and ')} is alive again (${capable.map((w) => w.id).join(', ')})`);
    }
    return false;
  }
  // Last sign of life of a capable worker: a dead one's heartbeat, what an earlier pass saw, else the submission.
  cache.all ??= await recordedWorkers(o.store.db);
  const beats = cache.all.filter(can).map((w) => Date.parse(w.heartbeatAt));
  const since = Math.max(...beats, o.seen?.get(key) ?? 0, 0) || Date.parse(job.created_at);
  const packages = needs.map((c) => CAPABILITIES[c].package).join(' and ');
  const message = `${NO_CAPABLE_WORKER} ${needs.join(' and ')} has been alive since ${new Date(since).toISOString().replace(/\.\d+Z$/, 'Z')}; start \`medmask worker\` on a machine with ${packages}; the job runs once one is alive`;
  if (job.message !== message) {
    await noteWaiting(o.store.db, job.id, message);
    o.log?.(`job ${job.id} (${job.type}): ${message}`);
  }
  return true;
}

/**
 * One pass over the unfinished jobs.
 * @example
 * const { requeued, failed } = await reconcileOnce({ store, queue });
 */
export async function reconcileOnce(o: ReconcileOptions): Promise<ReconcileResult> {
  const staleMs = o.staleMs ?? 60_000;
  const out: ReconcileResult = { requeued: [], failed: [], orphaned: [] };
  const workers = {};
  for (const job of await unfinishedJobs(o.store.db)) {
    if (job.status === 'queued' && (await noteCapability(o, job, workers))) out.orphaned.push(job.id);
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
  o = { seen: new Map(), ...o };
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
