/**
 * Jobs: the available types, submitting (idempotent by input hash; checked against the database
 * so that a job that can only fail is a 400), listing, one job with its tasks per state, its tasks,
 * retrying a failed, partial or stuck job, and its progress as server-sent events. (Models: routes/models.ts.)
 * @module
 */
import type { FastifyInstance } from 'fastify';
import { isMedmaskError, MedmaskError } from '../../core/errors.js';
import { JOB_FORMAT } from '../../queue/handlers.js';
import { checkCapableWorker } from '../../queue/capabilities.js';
import { noteWaiting } from '../../store/workers.js';
import { listTasks, resetFailedTasks, taskCounts } from '../../store/job-tasks.js';
import { createJob, getJob, jobView, requeueJob } from '../../store/jobs.js';
import { parseJson } from '../../store/util.js';
import type { JobStatus, TaskStatus } from '../../store/schema.js';
import { userOf } from '../auth.js';
import type { ServerContext } from '../context.js';
import { errorResponses, idParams, objectResponse, pageQuery, secured } from './schemas.js';

/** Register the job routes. */
export function jobRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const db = ctx.store.db;

  app.get('/api/jobs/types', { config: { permission: 'read' }, schema: { tags: ['jobs'], summary: 'Job types this server runs', security: secured } }, async () => ({ types: ctx.handlers.list() }));

  app.post<{ Body: { type: string; input: unknown } }>(
    '/api/jobs',
    {
      config: { permission: 'job:run' },
      schema: {
        tags: ['jobs'],
        summary: 'Start a job. The same type and input is the same job: a queued, running or done job is returned as is (created: false); a failed one is retried',
        security: secured,
        body: { type: 'object', required: ['type', 'input'], additionalProperties: false, properties: { type: { type: 'string', minLength: 1, maxLength: 50 }, input: {} } },
        response: { 202: objectResponse('accepted', { job: { type: 'object', additionalProperties: true }, created: { type: 'boolean' } }), ...errorResponses },
      },
    },
    async (req, reply) => {
      const handler = ctx.handlers.get(req.body.type);
      const valid = handler.validate(req.body.input);
      // resolve: handlers that name registered models pin them to exact versions (src/runtime/model-registry.ts).
      const input = handler.resolve ? await handler.resolve(valid, { store: ctx.store }) : valid;
      // A job that can only fail is refused now, with the message it would fail with (400).
      try {
        await handler.check?.(input, { store: ctx.store, blobs: ctx.blobs });
      } catch (e) {
        if (!isMedmaskError(e) || e.status >= 500) throw e;
        throw new MedmaskError('USAGE', e.message, { ...(e.hint ? { hint: e.hint } : {}), details: { code: e.code } });
      }
      // Capability routing: no live process able to run it (e.g. no torch anywhere) is an ENVIRONMENT error now.
      const waiting = await checkCapableWorker(ctx.store, req.body.type, handler, ctx.ownCapabilities ? { inProcess: ctx.ownCapabilities } : {});
      const { job, enqueue, created } = await createJob(db, { type: req.body.type, input, createdBy: userOf(req).id, format: JOB_FORMAT });
      if (enqueue) await resetFailedTasks(db, job.id); // a failed job submitted again: its failed tasks run again
      if (enqueue && waiting) await noteWaiting(db, job.id, waiting);
      if (enqueue) await ctx.queue.enqueue({ jobId: job.id, type: job.type });
      req.auditDetails = { jobId: job.id, type: job.type, created };
      return reply.code(202).send({ job: jobView(enqueue && waiting ? { ...job, message: waiting } : job, await taskCounts(db, job.id)), created });
    },
  );

  app.post<{ Params: { id: string } }>(
    '/api/jobs/:id/retry',
    {
      config: { permission: 'job:run' },
      schema: {
        tags: ['jobs'],
        summary: 'Retry a job: a failed one runs again, a partial one runs its failed cases again (its done cases are kept), a stuck one (queued or running with nothing on the queue) is put back on the queue. A done job, or one that is running, is a 409',
        security: secured,
        params: idParams,
        response: { 202: objectResponse('queued again', { job: { type: 'object', additionalProperties: true }, tasksReset: { type: 'integer' } }), ...errorResponses },
      },
    },
    async (req, reply) => {
      const job = await getJob(db, req.params.id);
      if (job.status === 'done') throw new MedmaskError('CONFLICT', `job ${job.id} is done: there is nothing to retry`, { hint: 'submit a new job (different input) to run again' });
      if ((job.status === 'queued' || job.status === 'running') && (await ctx.queue.live(job.id, job.fan_round))) {
        throw new MedmaskError('CONFLICT', `job ${job.id} is ${job.status}${job.worker ? ` (worker ${job.worker})` : ''} and on the queue: it is not stuck`, { hint: `follow it with GET /api/jobs/${job.id}/events; retry once it has failed or ended partial` });
      }
      const tasksReset = await resetFailedTasks(db, job.id);
      const again = await requeueJob(db, job.id, ['failed', 'partial', 'queued', 'running'], tasksReset ? `retrying ${tasksReset} failed task(s)` : 'retrying');
      if (!again) throw new MedmaskError('CONFLICT', `job ${job.id} changed state while it was being retried`, { hint: 'look at it again with GET /api/jobs/' + job.id });
      await ctx.queue.enqueue({ jobId: again.id, type: again.type });
      req.auditDetails = { jobId: job.id, from: job.status, tasksReset };
      return reply.code(202).send({ job: jobView(again, await taskCounts(db, job.id)), tasksReset });
    },
  );

  app.get<{ Params: { id: string }; Querystring: { status?: TaskStatus; limit: number; offset: number } }>(
    '/api/jobs/:id/tasks',
    {
      config: { permission: 'read' },
      schema: { tags: ['jobs'], summary: 'The tasks (cases or chunks) of a job that fans out, in plan order: state, tries, worker and error of each', security: secured, params: idParams, querystring: { type: 'object', properties: { status: { type: 'string', enum: ['pending', 'running', 'done', 'failed'] }, ...pageQuery } } },
    },
    async (req) => {
      const job = await getJob(db, req.params.id);
      const rows = await listTasks(db, job.id, req.query);
      return { counts: await taskCounts(db, job.id), tasks: rows.map((t) => ({ key: t.key, status: t.status, attempts: t.attempts, worker: t.worker, error: t.error, input: parseJson(t.input), updatedAt: t.updated_at })) };
    },
  );

  app.get<{ Querystring: { status?: JobStatus; type?: string; limit: number; offset: number } }>(
    '/api/jobs',
    { config: { permission: 'read' }, schema: { tags: ['jobs'], summary: 'Jobs, newest first', security: secured, querystring: { type: 'object', properties: { status: { type: 'string', enum: ['queued', 'running', 'done', 'partial', 'failed'] }, type: { type: 'string', maxLength: 50 }, ...pageQuery } } } },
    async (req) => {
      let q = db.selectFrom('jobs').selectAll();
      if (req.query.status) q = q.where('status', '=', req.query.status);
      if (req.query.type) q = q.where('type', '=', req.query.type);
      const rows = await q.orderBy('created_at', 'desc').limit(req.query.limit).offset(req.query.offset).execute();
      return { jobs: await Promise.all(rows.map(async (r) => jobView(r, await taskCounts(db, r.id)))) };
    },
  );

  app.get<{ Params: { id: string } }>('/api/jobs/:id', { config: { permission: 'read' }, schema: { tags: ['jobs'], summary: 'A job: status, progress, result or error', security: secured, params: idParams } }, async (req) => {
    const job = await getJob(db, req.params.id);
    return jobView(job, await taskCounts(db, job.id));
  });

  app.get<{ Params: { id: string } }>(
    '/api/jobs/:id/events',
    { config: { permission: 'read' }, schema: { tags: ['jobs'], summary: 'Server-sent events: "progress" whenever the job changes, then "end" when it is done, partial or failed', security: secured, params: idParams } },
    async (req, reply) => {
      let job = await getJob(db, req.params.id);
      reply.hijack();
      const raw = reply.raw;
      raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
      let last = '';
      let timer: NodeJS.Timeout | undefined;
      let closed = false;
      const stop = () => {
        closed = true;
        if (timer) clearTimeout(timer);
      };
      req.raw.on('close', stop);
      const tick = async () => {
        if (closed) return;
        try {
          job = await getJob(db, req.params.id);
        } catch {
          stop();
          raw.end();
          return;
        }
        const s = JSON.stringify(jobView(job, await taskCounts(db, job.id).catch(() => undefined)));
        if (s !== last) {
          last = s;
          raw.write(`event: progress\ndata: ${s}\n\n`);
        }
        if (job.status === 'done' || job.status === 'partial' || job.status === 'failed') {
          raw.write(`event: end\ndata: ${s}\n\n`);
          stop();
          raw.end();
          return;
        }
        timer = setTimeout(() => void tick(), 250);
      };
      await tick();
    },
  );
}
