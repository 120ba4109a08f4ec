/**
 * The job runner: what a worker does with a queue message. Three kinds of message:
 *
 * - a **job**: claim the job row (a finished job is skipped, so duplicate deliveries run nothing),
 *   then either run the handler (`run`), or — for a handler that fans out — plan its tasks once
 *   into `job_tasks` and put the unsettled ones on the queue as one round (a BullMQ flow);
 * - a **task**: claim the task row (a done task is skipped), run it, record its result; a task that
 *   fails its last try is recorded as failed with its error and the job goes on without it;
 * - a **reduce**: once every task of the round is settled, combine their results into the job's
 *   (done, or `partial` when tasks failed).
 *
 * Bad input (a MedmaskError with a 4xx status) fails at once; anything else is retried by the queue
 * while tries remain. A database outage makes the runner wait and reconnect (outage.ts) instead of
 * failing: the work is re-run from its start once the database is back (handlers are idempotent).
 * @module
 */
import { mkdir, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { isMedmaskError, MedmaskError } from '../core/errors.js';
import type { BlobStore } from '../store/blob-store.js';
import type { Store } from '../store/db.js';
import { allTasks, claimTask, completeTask, failTask, insertTasks, nextFanRound, taskCounts, unsettledTaskKeys } from '../store/job-tasks.js';
import { claimJob, completeJob, failJob, FINISHED_JOB_STATES, getJob, setJobProgress, touchJob, type JobRow } from '../store/jobs.js';
import { parseJson } from '../store/util.js';
import { JOB_FORMAT, type JobContext, type JobHandler, type JobHandlerRegistry, type SettledTask } from './handlers.js';
import { hostThreadShare } from './capabilities.js';
import { isTransientError, withOutageRetry } from './outage.js';
import type { Consumer, DeliveryInfo, JobQueue, QueueMessage } from './queue.js';

/** What the runner logs. */
export interface RunnerEvent {
  jobId: string;
  /** The task key, for task events. */
  task?: string;
  event: 'start' | 'done' | 'partial' | 'retry' | 'failed' | 'skipped' | 'planned' | 'refused';
  attempt: number;
  error?: string;
  /** Free text (e.g. "12 tasks queued"). */
  note?: string;
}

/** Options for {@link createJobProcessor}. */
export interface JobProcessorOptions {
  store: Store;
  blobs: BlobStore;
  handlers: JobHandlerRegistry;
  /** The queue that carries the messages: jobs that fan out put their tasks on it. */
  queue?: Pick<JobQueue, 'addFlow'>;
  /** Scratch space; each job or task gets a subfolder. */
  workDir: string;
  /** Written on the job row (default host:pid). */
  workerId?: string;
  /** Minimum interval between progress writes (default 200 ms). */
  progressIntervalMs?: number;
  /** How often a running job's row is touched, so the reconciler sees it alive (default 5000 ms). */
  heartbeatMs?: number;
  /** How long to wait for an unreachable database before giving up on a message (default 10 min). */
  outageMaxMs?: number;
  /** Tasks this process runs at once (default 1): with the live processes on this host, it sizes {@link JobContext.threads}. */
  concurrency?: number;
  /**
   * Give jobs and tasks their share of this machine's cores as `threads` (hostThreadShare, looked
   * up at most every 5 s; default false: the library default, all cores).
   */
  shareCores?: boolean;
  /** Called for each event (logging). */
  log?: (event: RunnerEvent) => void;
  /** Free-text lines (database outages). */
  say?: (line: string) => void;
}

/** A default worker id: host and process id. */
export function defaultWorkerId(): string {
  return `${hostname()}:${process.pid}`;
}

/**
 * Job and task errors are visible to every reader of the job: a scratch folder (`<workDir>/<name>`,
 * however the handler spelled it, absolute or relative) is named `<job>`, never its path on the worker.
 */
export function scrubScratch(text: string, workDir: string): string {
  let out = text;
  for (const base of new Set([resolve(workDir), workDir])) {
    const esc = base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\/+$/, '');
    out = out.replace(new RegExp(`${esc}/[^/\\s'"\`:]+`, 'g'), '<job>');
  }
  return out;
}

/**
 * Build the consumer a queue runs.
 * @example
 * await queue.consume(createJobProcessor({ store, blobs, handlers, queue, workDir: 'data/work' }));
 */
export function createJobProcessor(o: JobProcessorOptions): Consumer {
  const workerId = o.workerId ?? defaultWorkerId();
  const every = o.progressIntervalMs ?? 200;
  const describe = (e: unknown) => scrubScratch(isMedmaskError(e) ? `[${e.code}] ${e.message}` : (e as Error)?.message ?? String(e), o.workDir);
  const db = o.store.db;
  const outage = { maxMs: o.outageMaxMs ?? 600_000, ...(o.say ? { log: o.say } : {}) };

  /** Touch the job row while `fn` runs (a failed touch is only logged: the work goes on). */
  async function heartbeat<T>(jobId: string, fn: () => Promise<T>): Promise<T> {
    const t = setInterval(() => void touchJob(db, jobId).catch(() => {}), o.heartbeatMs ?? 5000);
    t.unref();
    try {
      return await fn();
    } finally {
      clearInterval(t);
    }
  }

  /** The handler for a job, or a refusal that leaves the job for a worker that knows it. */
  function handlerFor(job: JobRow): JobHandler {
    if (job.format > JOB_FORMAT) {
      throw new MedmaskError('ENVIRONMENT', `job ${job.id} has format ${job.format} but this worker (${workerId}) understands format ${JOB_FORMAT} at most: it was submitted by a newer medmask`, { hint: 'upgrade the medmask workers to the server\'s version; the job waits for one' });
    }
    if (!o.handlers.has(job.type)) {
      throw new MedmaskError('ENVIRONMENT', `job type "${job.type}" is unknown to this worker (${workerId}; it knows ${o.handlers.names().join(', ')})`, { hint: 'upgrade the worker, or start it with the --handlers module that adds this type' });
    }
    return o.handlers.get(job.type);
  }

  /** The core share, refreshed at most every 5 s (a failed look-up keeps the last answer). */
  const share = { threads: undefined as number | undefined, at: 0 };
  async function threads(): Promise<number | undefined> {
    if (!o.shareCores) return undefined;
    if (Date.now() - share.at > 5000) {
      share.at = Date.now();
      share.threads = await hostThreadShare(o.store, { concurrency: o.concurrency ?? 1 }).catch(() => share.threads);
    }
    return share.threads;
  }

  async function context(job: JobRow, input: unknown, info: DeliveryInfo, workDir: string): Promise<JobContext> {
    let last = 0;
    const t = await threads();
    return {
      ...(t ? { threads: t } : {}),
      jobId: job.id,
      type: job.type,
      input,
      attempt: info.attempt,
      store: o.store,
      blobs: o.blobs,
      workDir,
      userId: job.created_by,
      signal: info.signal,
      // Never rejects: a progress write that fails (database away) must not fail or crash the job.
      async progress(fraction, message) {
        const now = Date.now();
        if (now - last < every && fraction < 1) return;
        last = now;
        await setJobProgress(db, job.id, fraction, message).catch((e: unknown) => o.say?.(`job ${job.id}: progress not recorded (${(e as Error).message})`));
      },
    };
  }

  /** Whether a failure is the last word: bad input, or the last try (never when shutting down). */
  const isFinal = (e: unknown, info: DeliveryInfo) => !info.signal.aborted && ((isMedmaskError(e) && e.status < 500) || info.attempt >= info.maxAttempts);

  async function withScratch<T>(name: string, fn: (dir: string) => Promise<T>): Promise<T> {
    const dir = join(o.workDir, `${name}-${process.pid}`);
    try {
      await mkdir(dir, { recursive: true });
      return await fn(dir);
    } finally {
      await rm(dir, { recursive: true, force: true }).catch(() => {});
    }
  }

  /** Put a fan-out job's unsettled tasks on the queue as a new round, or reduce when none is left. */
  async function dispatch(job: JobRow, handler: JobHandler, input: unknown, info: DeliveryInfo): Promise<void> {
    const keys = await unsettledTaskKeys(db, job.id);
    if (!keys.length) return reduce(job, handler, input, info);
    if (!o.queue) throw new MedmaskError('INTERNAL', `job ${job.id} fans out but the runner was given no queue`);
    const round = await nextFanRound(db, job.id);
    await o.queue.addFlow({ jobId: job.id, type: job.type, round, tasks: keys });
    await progressFromTasks(job.id);
    o.log?.({ jobId: job.id, event: 'planned', attempt: info.attempt, note: `${keys.length} task(s) queued (round ${round})` });
  }

  async function progressFromTasks(jobId: string): Promise<void> {
    const c = await taskCounts(db, jobId);
    if (!c.total) return;
    await setJobProgress(db, jobId, (c.done + c.failed) / c.total, `cases: ${c.done} done, ${c.failed} failed, ${c.pending + c.running} pending`);
  }

  async function reduce(job: JobRow, handler: JobHandler, input: unknown, info: DeliveryInfo): Promise<void> {
    const rows = await allTasks(db, job.id);
    const settled: SettledTask[] = rows.map((r) => ({ key: r.key, input: parseJson(r.input), status: r.status === 'failed' ? 'failed' : 'done', result: parseJson(r.result), error: r.error }));
    const failed = settled.filter((t) => t.status === 'failed').length;
    const result = await withScratch(`job-${job.id}-reduce`, (dir) => heartbeat(job.id, async () => handler.fanOut!.reduce(await context(job, input, info, dir), settled)));
    await completeJob(db, job.id, result, failed ? 'partial' : 'done', failed ? `${settled.length - failed} of ${settled.length} cases done, ${failed} failed: retry them with POST /api/jobs/${job.id}/retry` : 'done');
    o.log?.({ jobId: job.id, event: failed ? 'partial' : 'done', attempt: info.attempt });
  }

  /** A job message: run it, or plan it and queue its tasks. */
  async function onJob(msg: QueueMessage, info: DeliveryInfo): Promise<void> {
    const job = await claimJob(db, msg.jobId, workerId);
    if (!job) return o.log?.({ jobId: msg.jobId, event: 'skipped', attempt: info.attempt });
    o.log?.({ jobId: job.id, event: 'start', attempt: info.attempt });
    try {
      const handler = handlerFor(job);
      const input = handler.validate(parseJson(job.input));
      if (handler.fanOut) {
        if (!(await taskCounts(db, job.id)).total) {
          const tasks = await withScratch(`job-${job.id}-plan`, (dir) => heartbeat(job.id, async () => handler.fanOut!.plan(await context(job, input, info, dir))));
          await insertTasks(db, job.id, tasks);
        }
        await dispatch(job, handler, input, info);
        return;
      }
      const result = await withScratch(`job-${job.id}`, (dir) => heartbeat(job.id, async () => handler.run!(await context(job, input, info, dir))));
      await completeJob(db, job.id, result);
      o.log?.({ jobId: job.id, event: 'done', attempt: info.attempt });
    } catch (e) {
      if (isTransientError(e) && !info.signal.aborted) throw e; // the outage wrapper waits for the database and runs it again
      const refused = isMedmaskError(e) && e.code === 'ENVIRONMENT' && !info.signal.aborted;
      const final = isFinal(e, info);
      await failJob(db, job.id, describe(e), final);
      o.log?.({ jobId: job.id, event: refused ? 'refused' : final ? 'failed' : 'retry', attempt: info.attempt, error: describe(e) });
      if (!final) throw e;
    }
  }

  /** The job row, or null when it was deleted (a database outage is thrown, for the outage wrapper). */
  const jobOrNull = (id: string) => getJob(db, id).catch((e: unknown) => {
    if (isMedmaskError(e) && e.code === 'NOT_FOUND') return null;
    throw e;
  });

  /** A task message. */
  async function onTask(msg: QueueMessage, info: DeliveryInfo): Promise<void> {
    const key = msg.task!;
    const job = await jobOrNull(msg.jobId);
    if (!job || FINISHED_JOB_STATES.includes(job.status) || job.status === 'failed') return o.log?.({ jobId: msg.jobId, task: key, event: 'skipped', attempt: info.attempt });
    const task = await claimTask(db, job.id, key, workerId);
    if (!task) return o.log?.({ jobId: job.id, task: key, event: 'skipped', attempt: info.attempt });
    o.log?.({ jobId: job.id, task: key, event: 'start', attempt: info.attempt });
    try {
      const handler = handlerFor(job);
      const input = handler.validate(parseJson(job.input));
      const result = await withScratch(`job-${job.id}-${key.replace(/[^\w.-]/g, '_')}`, (dir) =>
        heartbeat(job.id, async () => handler.fanOut!.runTask({ ...(await context(job, input, info, dir)), progress: async () => {}, task: { key, input: parseJson(task.input) } })),
      );
      await completeTask(db, job.id, key, result);
      o.log?.({ jobId: job.id, task: key, event: 'done', attempt: info.attempt });
    } catch (e) {
      if (isTransientError(e) && !info.signal.aborted) throw e; // the outage wrapper waits for the database and runs it again
      const final = isFinal(e, info);
      await failTask(db, job.id, key, describe(e), final);
      o.log?.({ jobId: job.id, task: key, event: final ? 'failed' : 'retry', attempt: info.attempt, error: describe(e) });
      if (!final) throw e;
    } finally {
      await progressFromTasks(job.id).catch(() => {});
    }
  }

  /** A reduce message: every task of its round is settled. */
  async function onReduce(msg: QueueMessage, info: DeliveryInfo): Promise<void> {
    const job = await jobOrNull(msg.jobId);
    if (!job || FINISHED_JOB_STATES.includes(job.status) || job.status === 'failed' || (msg.round ?? 0) < job.fan_round) {
      return o.log?.({ jobId: msg.jobId, event: 'skipped', attempt: info.attempt, note: 'reduce of an old round' });
    }
    try {
      const handler = handlerFor(job);
      const input = handler.validate(parseJson(job.input));
      // Tasks of this round that never settled (their messages were lost with Redis): a new round.
      await dispatch(job, handler, input, info);
    } catch (e) {
      const final = isFinal(e, info);
      await failJob(db, job.id, describe(e), final);
      o.log?.({ jobId: job.id, event: final ? 'failed' : 'retry', attempt: info.attempt, error: describe(e) });
      if (!final) throw e;
    }
  }

  return async (msg, info) => {
    const fn = msg.task !== undefined ? onTask : msg.phase === 'reduce' ? onReduce : onJob;
    await withOutageRetry(db, () => fn(msg, info), { ...outage, signal: info.signal });
  };
}
