/**
 * The `workers` table: the processes that run jobs, each with its capabilities (e.g. `torch`) and
 * a heartbeat, so that a submission can tell whether any live process can run a job type
 * (queue/capabilities.ts) and the job view can say what a waiting job waits for.
 * @module
 */
import type { Kysely, Selectable } from 'kysely';
import type { Database, WorkersTable } from './schema.js';
import { nowIso } from './util.js';

/** A live worker as the store returns it. */
export interface WorkerInfo {
  id: string;
  kind: 'worker' | 'server';
  capabilities: string[];
  jobTypes: string[];
  startedAt: string;
  heartbeatAt: string;
}

const toInfo = (r: Selectable<WorkersTable>): WorkerInfo => ({ id: r.id, kind: r.kind, capabilities: JSON.parse(r.capabilities) as string[], jobTypes: JSON.parse(r.job_types) as string[], startedAt: r.started_at, heartbeatAt: r.heartbeat_at });

/** Record (or refresh) a process that runs jobs. */
export async function registerWorker(db: Kysely<Database>, w: { id: string; kind: 'worker' | 'server'; capabilities: readonly string[]; jobTypes: readonly string[] }): Promise<void> {
  const now = nowIso();
  const row = { kind: w.kind, capabilities: JSON.stringify([...w.capabilities].sort()), job_types: JSON.stringify([...w.jobTypes].sort()), heartbeat_at: now };
  await db.insertInto('workers').values({ id: w.id, started_at: now, ...row }).onConflict((oc) => oc.column('id').doUpdateSet(row)).execute();
}

/** The process is alive. */
export async function touchWorker(db: Kysely<Database>, id: string): Promise<void> {
  await db.updateTable('workers').set({ heartbeat_at: nowIso() }).where('id', '=', id).execute();
}

/** The process stopped (clean shutdown). */
export async function removeWorker(db: Kysely<Database>, id: string): Promise<void> {
  await db.deleteFrom('workers').where('id', '=', id).execute();
}

/** Workers whose heartbeat is younger than `staleMs`; rows older than ten times that are deleted. */
export async function liveWorkers(db: Kysely<Database>, staleMs: number): Promise<WorkerInfo[]> {
  const now = Date.now();
  await db.deleteFrom('workers').where('heartbeat_at', '<', new Date(now - 10 * staleMs).toISOString()).execute();
  const rows = await db.selectFrom('workers').selectAll().where('heartbeat_at', '>=', new Date(now - staleMs).toISOString()).orderBy('id').execute();
  return rows.map(toInfo);
}

/**
 * How many processes that run jobs on `host` are alive (worker ids are `host:pid`); read only.
 * @example
 * const n = await liveWorkersOnHost(db, hostname(), 60_000); // ≥ 1 once this process announced itself
 */
export async function liveWorkersOnHost(db: Kysely<Database>, host: string, staleMs: number): Promise<number> {
  const rows = await db.selectFrom('workers').select('id').where('heartbeat_at', '>=', new Date(Date.now() - staleMs).toISOString()).execute();
  return rows.filter((r) => r.id.startsWith(`${host}:`)).length;
}

/** Every recorded worker, live or not (a killed one's row stays until {@link liveWorkers} prunes it). */
export async function recordedWorkers(db: Kysely<Database>): Promise<WorkerInfo[]> {
  const rows = await db.selectFrom('workers').selectAll().orderBy('id').execute();
  return rows.map(toInfo);
}

/** Say on a queued job what it waits for (e.g. a worker with torch); a job already running keeps its own message. */
export async function noteWaiting(db: Kysely<Database>, jobId: string, message: string): Promise<void> {
  await db.updateTable('jobs').set({ message, updated_at: nowIso() }).where('id', '=', jobId).where('status', '=', 'queued').execute();
}
