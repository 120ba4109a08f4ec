import type { Command } from 'commander';
import { MedmaskError } from '../core/errors.js';
import { loadConfig } from '../server/config.js';
import { startWorker, untilSignal } from '../server/service.js';

interface WorkerOpts { config?: string; dataDir?: string; db?: string; blobs?: string; queue?: string; concurrency?: string; lockMs?: string; handlers?: string }

/** Register `medmask worker` and `medmask jobs` (the queue's commands). */
export function registerWorker(program: Command): void {
  program
    .command('worker')
    .description('run jobs and their per-case tasks from a Redis (BullMQ) queue, sharing the database and blob store with `medmask serve`')
    .option('--config <file>', 'JSON config file (env MEDMASK_CONFIG)')
    .option('--data-dir <dir>', 'local scratch folder (default ./medmask-data)')
    .option('--db <url>', 'the server\'s database: postgres://… (or the same SQLite file on this machine)')
    .option('--blobs <dir|url>', 'the server\'s blob store: shared folder or s3://bucket/prefix')
    .option('--queue <url>', 'redis://host:6379 (required)')
    .option('--concurrency <n>', 'tasks at once (default 1; one per core is a good start)')
    .option('--lock-ms <n>', 'task lock in ms: a dead worker\'s task is taken over after this (default 30000)')
    .option('--handlers <modules>', 'extra job handler modules, comma-separated')
    .addHelpText('after', '\nExample: medmask worker --db postgres://app@db/medmask --blobs /shared/blobs --queue redis://queue:6379\nDatabase or Redis unreachable at start: exit 6. Outages later: the worker waits and reconnects.')
    .action(async (o: WorkerOpts) => {
      const cfg = loadConfig({ config: o.config, dataDir: o.dataDir, db: o.db, blobs: o.blobs, queue: o.queue, jobConcurrency: o.concurrency, lockMs: o.lockMs, handlers: o.handlers });
      const say = (s: string) => process.stdout.write(`medmask worker: ${s}\n`);
      await untilSignal(await startWorker(cfg, say), say);
    });

  const jobs = program.command('jobs').description('look at and retry jobs on a medmask server (token from MEDMASK_TOKEN)');
  const server = (o: { server?: string }) => {
    const url = o.server ?? process.env.MEDMASK_SERVER;
    if (!url) throw new MedmaskError('USAGE', 'no server given', { hint: 'pass --server http://host:8080 or set MEDMASK_SERVER' });
    const token = process.env.MEDMASK_TOKEN;
    if (!token) throw new MedmaskError('USAGE', 'MEDMASK_TOKEN is not set', { hint: 'make an API token with POST /api/tokens and export MEDMASK_TOKEN=…' });
    return { url: url.replace(/\/+$/, ''), headers: { authorization: `Bearer ${token}` } };
  };
  const call = async (o: { server?: string }, method: string, path: string): Promise<Record<string, unknown>> => {
    const s = server(o);
    let r: Response;
    try {
      r = await fetch(`${s.url}${path}`, { method, headers: s.headers });
    } catch (e) {
      throw new MedmaskError('ENVIRONMENT', `cannot reach ${s.url}: ${(e as Error).message}`, { hint: 'check --server and that medmask serve runs' });
    }
    const body = (await r.json().catch(() => ({}))) as Record<string, unknown>;
    if (!r.ok) {
      const code = (body.error as string | undefined) ?? 'INTERNAL';
      throw new MedmaskError((['USAGE', 'NOT_FOUND', 'CONFLICT', 'UNAUTHENTICATED', 'FORBIDDEN'].includes(code) ? code : 'INTERNAL') as 'USAGE', String(body.message ?? `HTTP ${r.status}`), { ...(body.hint ? { hint: String(body.hint) } : {}) });
    }
    return body;
  };
  const line = (j: Record<string, unknown>) => {
    const t = j.tasks as { total: number; done: number; failed: number; pending: number; running: number } | undefined;
    return `${j.id} ${j.type} ${j.status}${t ? ` (cases: ${t.done} done, ${t.failed} failed, ${t.pending + t.running} pending of ${t.total})` : ''}${j.message ? ` — ${j.message}` : ''}`;
  };
  jobs
    .command('show <id>')
    .description('a job\'s state, cases per state, and its failed cases with their errors')
    .option('--server <url>', 'the server (env MEDMASK_SERVER)')
    .action(async (id: string, o: { server?: string }) => {
      const j = await call(o, 'GET', `/api/jobs/${encodeURIComponent(id)}`);
      process.stdout.write(line(j) + '\n');
      if (j.error) process.stdout.write(`error: ${j.error}\n`);
      if ((j.tasks as { failed?: number } | undefined)?.failed) {
        const t = await call(o, 'GET', `/api/jobs/${encodeURIComponent(id)}/tasks?status=failed&limit=100`);
        for (const x of t.tasks as { key: string; attempts: number; error: string }[]) process.stdout.write(`failed ${x.key} after ${x.attempts} tries: ${x.error}\n`);
      }
    });
  jobs
    .command('retry <id>')
    .description('run a failed job again, the failed cases of a partial one, or put a stuck one back on the queue')
    .option('--server <url>', 'the server (env MEDMASK_SERVER)')
    .addHelpText('after', '\nExample: MEDMASK_TOKEN=… medmask jobs retry 3f2a… --server http://medmask:8080')
    .action(async (id: string, o: { server?: string }) => {
      const r = await call(o, 'POST', `/api/jobs/${encodeURIComponent(id)}/retry`);
      process.stdout.write(`queued again${r.tasksReset ? ` (${r.tasksReset} failed case(s))` : ''}: ${line(r.job as Record<string, unknown>)}\n`);
    });
}
