/**
 * Jobs: the available types, submitting (idempotent by input hash), listing, one job, and its
 * progress as server-sent events. (Models: routes/models.ts.)
 * @module
 */
import type { FastifyInstance } from 'fastify';
import { createJob, getJob, jobView } from '../../store/jobs.js';
import type { JobStatus } from '../../store/schema.js';
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
      // resolve: handlers that name registered models pin them to exact versions here (src/runtime/model-registry.ts).
      const valid = handler.validate(req.body.input);
      const input = handler.resolve ? await handler.resolve(valid, { store: ctx.store }) : valid;
      const { job, enqueue, created } = await createJob(db, { type: req.body.type, input, createdBy: userOf(req).id });
      if (enqueue) await ctx.queue.enqueue({ jobId: job.id, type: job.type });
      req.auditDetails = { jobId: job.id, type: job.type, created };
      return reply.code(202).send({ job: jobView(job), created });
    },
  );

  app.get<{ Querystring: { status?: JobStatus; type?: string; limit: number; offset: number } }>(
    '/api/jobs',
    { config: { permission: 'read' }, schema: { tags: ['jobs'], summary: 'Jobs, newest first', security: secured, querystring: { type: 'object', properties: { status: { type: 'string', enum: ['queued', 'running', 'done', 'failed'] }, type: { type: 'string', maxLength: 50 }, ...pageQuery } } } },
    async (req) => {
      let q = db.selectFrom('jobs').selectAll();
      if (req.query.status) q = q.where('status', '=', req.query.status);
      if (req.query.type) q = q.where('type', '=', req.query.type);
      const rows = await q.orderBy('created_at', 'desc').limit(req.query.limit).offset(req.query.offset).execute();
      return { jobs: rows.map(jobView) };
    },
  );

  app.get<{ Params: { id: string } }>('/api/jobs/:id', { config: { permission: 'read' }, schema: { tags: ['jobs'], summary: 'A job: status, progress, result or error', security: secured, params: idParams } }, async (req) => jobView(await getJob(db, req.params.id)));

  app.get<{ Params: { id: string } }>(
    '/api/jobs/:id/events',
    { config: { permission: 'read' }, schema: { tags: ['jobs'], summary: 'Server-sent events: "progress" whenever the job changes, then "end" when it is done or failed', security: secured, params: idParams } },
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
        const s = JSON.stringify(jobView(job));
        if (s !== last) {
          last = s;
          raw.write(`event: progress\ndata: ${s}\n\n`);
        }
        if (job.status === 'done' || job.status === 'failed') {
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
