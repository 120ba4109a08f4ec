/**
 * Job rows: the database is the source of truth for a job's state, whichever queue carries it.
 * A job's id is derived from the hash of its type and canonical input, so submitting the same input
 * twice is the same job, and a job is run to completion at most once: {@link claimJob} refuses a
 * job that is already done.
 * @module
 */
import type { Kysely, Selectable } from 'kysely';
import { MedmaskError } from '../core/errors.js';
import { sha256 } from './blob-store.js';
import type { TaskCounts } from './job-tasks.js';
import type { Database, JobsTable } from './schema.js';
import { canonicalJson, nowIso, parseJson } from './util.js';

/** A job row. */
export type JobRow = Selectable<JobsTable>;

/** A job as the API shows it. */
export interface JobView {
  id: string;
  type: string;
  status: JobRow['status'];
  progress: number;
  message: string | null;
  attempts: number;
  input: unknown;
  result: unknown;
  error: string | null;
  worker: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  /** For a job that fans out: its tasks (cases or chunks) per state. */
  tasks?: TaskCounts;
}

/** Row → API view. */
export function jobView(r: JobRow, tasks?: TaskCounts): JobView {
  return {
    id: r.id,
    type: r.type,
    status: r.status,
    progress: r.progress,
    message: r.message,
    attempts: r.attempts,
    input: parseJson(r.input),
    result: parseJson(r.result),
    error: r.error,
    worker: r.worker,
    createdAt: r.created_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    ...(tasks && tasks.total ? { tasks } : {}),
  };
}

/** Finished states: a job in one of them is not run again unless retried. */
export const FINISHED_JOB_STATES: readonly JobRow['status'][] = ['done', 'partial'];

/** The input hash of a job: SHA-256 of type, NUL, canonical JSON input. */
export function jobInputHash(type: string, input: unknown): string {
  return sha256(`${type}\0${canonicalJson(input)}`);
}

/**
 * Create a job, or return the existing one with the same type and input. A failed job with the
 * same input is reset to queued (a new try); a queued, running or done one is returned as is.
 * @returns the row and whether it must be (re-)enqueued
 * @example
 * const { job, enqueue } = await createJob(db, { type: 'phantoms', input: { kind: '2d', n: 10, seed: 1 } });
 */
export async function createJob(db: Kysely<Database>, j: { type: string; input: unknown; createdBy?: string | null; format?: number }): Promise<{ job: JobRow; enqueue: boolean; created: boolean }> {
  const hash = jobInputHash(j.type, j.input);
  const id = hash.slice(0, 32);
  const now = nowIso();
  const ins = await db
    .insertInto('jobs')
    .values({ id, type: j.type, input_hash: hash, input: canonicalJson(j.input), status: 'queued', progress: 0, message: null, attempts: 0, result: null, error: null, worker: null, created_at: now, created_by: j.createdBy ?? null, started_at: null, finished_at: null, updated_at: now, ...(j.format !== undefined ? { format: j.format } : {}) })
    .onConflict((oc) => oc.column('input_hash').doNothing())
    .executeTakeFirst();
  const created = Number(ins.numInsertedOrUpdatedRows ?? 0) === 1;
  if (!created) {
    const upd = await db.updateTable('jobs').set({ status: 'queued', attempts: 0, error: null, progress: 0, message: 'requeued after failure', updated_at: now }).where('id', '=', id).where('status', '=', 'failed').executeTakeFirst();
    const job = await getJob(db, id);
    return { job, enqueue: Number(upd.numUpdatedRows) === 1, created };
  }
  return { job: await getJob(db, id), enqueue: true, created };
}

/** A job by id, or NOT_FOUND. */
export async function getJob(db: Kysely<Database>, id: string): Promise<JobRow> {
  const r = await db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst();
  if (!r) throw new MedmaskError('NOT_FOUND', `job ${id} does not exist`, { hint: 'list jobs with GET /api/jobs' });
  return r;
}

/**
 * Mark a job running on `worker` (attempt + 1). Returns null when the job is finished already
 * (done or partial) — a redelivered or duplicated message then does nothing.
 */
export async function claimJob(db: Kysely<Database>, id: string, worker: string): Promise<JobRow | null> {
  const now = nowIso();
  const r = await db
    .updateTable('jobs')
    .set((eb) => ({ status: 'running', worker, attempts: eb('attempts', '+', 1), started_at: now, updated_at: now, error: null }))
    .where('id', '=', id)
    .where('status', 'not in', FINISHED_JOB_STATES)
    .executeTakeFirst();
  if (Number(r.numUpdatedRows) !== 1) return null;
  return getJob(db, id);
}

/** Record progress (0…1) and a short message. */
export async function setJobProgress(db: Kysely<Database>, id: string, progress: number, message?: string): Promise<void> {
  await db
    .updateTable('jobs')
    .set({ progress: Math.max(0, Math.min(1, progress)), ...(message !== undefined ? { message } : {}), updated_at: nowIso() })
    .where('id', '=', id)
    .where('status', '=', 'running')
    .execute();
}

/** Mark a job done (or partial: some of its tasks failed) with its result. */
export async function completeJob(db: Kysely<Database>, id: string, result: unknown, status: 'done' | 'partial' = 'done', message?: string): Promise<void> {
  const now = nowIso();
  await db.updateTable('jobs').set({ status, progress: 1, result: canonicalJson(result ?? null), finished_at: now, updated_at: now, message: message ?? status }).where('id', '=', id).execute();
}

/** The job is alive: its worker writes this while it runs (the reconciler reads updated_at). */
export async function touchJob(db: Kysely<Database>, id: string): Promise<void> {
  await db.updateTable('jobs').set({ updated_at: nowIso() }).where('id', '=', id).where('status', '=', 'running').execute();
}

/**
 * Put a failed, partial or stuck job back to queued for another try (its done tasks are kept; a
 * partial job's failed tasks become pending). Returns the row, or null when the job is done or not
 * in `from`.
 */
export async function requeueJob(db: Kysely<Database>, id: string, from: readonly JobRow['status'][], message: string): Promise<JobRow | null> {
  const upd = await db.updateTable('jobs').set({ status: 'queued', attempts: 0, error: null, message, finished_at: null, updated_at: nowIso() }).where('id', '=', id).where('status', 'in', from).executeTakeFirst();
  return Number(upd.numUpdatedRows) === 1 ? getJob(db, id) : null;
}

/** Record a failure: `final` marks the job failed, otherwise it goes back to queued for a retry. */
export async function failJob(db: Kysely<Database>, id: string, error: string, final: boolean): Promise<void> {
  const now = nowIso();
  await db
    .updateTable('jobs')
    .set({ status: final ? 'failed' : 'queued', error, updated_at: now, ...(final ? { finished_at: now } : {}) })
    .where('id', '=', id)
    .where('status', '!=', 'done')
    .execute();
}

/** Jobs not finished (queued, or running on a worker that may be gone): to re-enqueue on start. */
export async function unfinishedJobs(db: Kysely<Database>): Promise<JobRow[]> {
  return db.selectFrom('jobs').selectAll().where('status', 'in', ['queued', 'running']).orderBy('created_at').execute();
}
