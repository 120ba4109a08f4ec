/**
 * Tasks of a job that fans out: one row per case (or chunk) with its own state, tries, error and
 * result. The database is the source of truth, as for jobs: a queue message only names a task, and
 * a task already done is never run again ({@link claimTask} refuses it), so redelivered or
 * duplicated messages write nothing twice.
 * @module
 */
import { sql, type Kysely, type Selectable } from 'kysely';
import type { Database, JobTasksTable, TaskStatus } from './schema.js';
import { canonicalJson, nowIso } from './util.js';

/** A task row. */
export type TaskRow = Selectable<JobTasksTable>;

/** Tasks per state. */
export interface TaskCounts {
  total: number;
  pending: number;
  running: number;
  done: number;
  failed: number;
}

/**
 * Record a job's plan, once: tasks already there (a re-planned job) are left as they are.
 * @example
 * await insertTasks(db, jobId, images.map((img, i) => ({ key: img.id, input: { imageId: img.id, index: i } })));
 */
export async function insertTasks(db: Kysely<Database>, jobId: string, tasks: readonly { key: string; input: unknown }[]): Promise<void> {
  const now = nowIso();
  for (let i = 0; i < tasks.length; i += 500) {
    const rows = tasks.slice(i, i + 500).map((t, k) => ({ job_id: jobId, key: t.key, ord: i + k, input: canonicalJson(t.input), status: 'pending' as TaskStatus, attempts: 0, error: null, result: null, worker: null, updated_at: now }));
    await db.insertInto('job_tasks').values(rows).onConflict((oc) => oc.columns(['job_id', 'key']).doNothing()).execute();
  }
}

/** How many tasks a job has in each state (all zero for a job that does not fan out). */
export async function taskCounts(db: Kysely<Database>, jobId: string): Promise<TaskCounts> {
  const rows = await db.selectFrom('job_tasks').select(['status', (eb) => eb.fn.countAll<number>().as('n')]).where('job_id', '=', jobId).groupBy('status').execute();
  const c: TaskCounts = { total: 0, pending: 0, running: 0, done: 0, failed: 0 };
  for (const r of rows) {
    c[r.status] = Number(r.n);
    c.total += Number(r.n);
  }
  return c;
}

/** Keys of the tasks not settled yet (pending, or running on a worker that may be gone), in plan order. */
export async function unsettledTaskKeys(db: Kysely<Database>, jobId: string): Promise<string[]> {
  const rows = await db.selectFrom('job_tasks').select('key').where('job_id', '=', jobId).where('status', 'in', ['pending', 'running']).orderBy('ord').execute();
  return rows.map((r) => r.key);
}

/**
 * Mark a task running on `worker` (attempt + 1). Returns null when it is done already, or does not
 * exist — a redelivered message then does nothing.
 */
export async function claimTask(db: Kysely<Database>, jobId: string, key: string, worker: string): Promise<TaskRow | null> {
  const r = await db
    .updateTable('job_tasks')
    .set((eb) => ({ status: 'running', worker, attempts: eb('attempts', '+', 1), updated_at: nowIso(), error: null }))
    .where('job_id', '=', jobId)
    .where('key', '=', key)
    .where('status', '!=', 'done')
    .executeTakeFirst();
  if (Number(r.numUpdatedRows) !== 1) return null;
  return (await db.selectFrom('job_tasks').selectAll().where('job_id', '=', jobId).where('key', '=', key).executeTakeFirst()) ?? null;
}

/** Mark a task done with its result. */
export async function completeTask(db: Kysely<Database>, jobId: string, key: string, result: unknown): Promise<void> {
  await db.updateTable('job_tasks').set({ status: 'done', result: canonicalJson(result ?? null), error: null, updated_at: nowIso() }).where('job_id', '=', jobId).where('key', '=', key).execute();
}

/** Record a task's failure: `final` marks it failed (the job goes on without it), else pending for a retry. */
export async function failTask(db: Kysely<Database>, jobId: string, key: string, error: string, final: boolean): Promise<void> {
  await db
    .updateTable('job_tasks')
    .set({ status: final ? 'failed' : 'pending', error, updated_at: nowIso() })
    .where('job_id', '=', jobId)
    .where('key', '=', key)
    .where('status', '!=', 'done')
    .execute();
}

/** Every task of a job in plan order (for the reduce step). */
export async function allTasks(db: Kysely<Database>, jobId: string): Promise<TaskRow[]> {
  return db.selectFrom('job_tasks').selectAll().where('job_id', '=', jobId).orderBy('ord').execute();
}

/** A page of a job's tasks, optionally of one state (for the API). */
export async function listTasks(db: Kysely<Database>, jobId: string, o: { status?: TaskStatus; limit: number; offset: number }): Promise<TaskRow[]> {
  let q = db.selectFrom('job_tasks').selectAll().where('job_id', '=', jobId);
  if (o.status) q = q.where('status', '=', o.status);
  return q.orderBy('ord').limit(o.limit).offset(o.offset).execute();
}

/** Put failed tasks back to pending (tries from zero); returns how many. */
export async function resetFailedTasks(db: Kysely<Database>, jobId: string): Promise<number> {
  const r = await db.updateTable('job_tasks').set({ status: 'pending', attempts: 0, error: null, updated_at: nowIso() }).where('job_id', '=', jobId).where('status', '=', 'failed').executeTakeFirst();
  return Number(r.numUpdatedRows);
}

/** Start a new fan-out round of a job; returns its number (it names the round's queue entries). */
export async function nextFanRound(db: Kysely<Database>, jobId: string): Promise<number> {
  await db.updateTable('jobs').set({ fan_round: sql`fan_round + 1`, updated_at: nowIso() }).where('id', '=', jobId).execute();
  const r = await db.selectFrom('jobs').select('fan_round').where('id', '=', jobId).executeTakeFirstOrThrow();
  return Number(r.fan_round);
}
