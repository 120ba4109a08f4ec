/**
 * Health and readiness (no login), the audit log and the store integrity check (admin).
 * @module
 */
import type { FastifyInstance } from 'fastify';
import { verifyStore } from '../../store/integrity.js';
import { ping } from '../../store/migrations.js';
import type { ServerContext } from '../context.js';
import { pageQuery, secured } from './schemas.js';

/** Register health, readiness and admin routes. */
export function adminRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const db = ctx.store.db;
  app.get('/health', { config: { permission: 'public' }, schema: { tags: ['health'], summary: 'The process is up (no login)' } }, async () => ({ status: 'ok' }));
  app.get('/ready', { config: { permission: 'public' }, schema: { tags: ['health'], summary: 'Database and queue answer (no login; 503 when not)' } }, async (_req, reply) => {
    const check = async (f: () => Promise<unknown>) => {
      try {
        await f();
        return true;
      } catch {
        return false;
      }
    };
    const [database, queue] = await Promise.all([check(() => ping(db)), check(() => ctx.queue.ping())]);
    return reply.code(database && queue ? 200 : 503).send({ ready: database && queue, database, queue });
  });

  app.get<{ Querystring: { limit: number; offset: number; action?: string; user?: string } }>(
    '/api/audit',
    { config: { permission: 'admin' }, schema: { tags: ['admin'], summary: 'The audit log, newest first', security: secured, querystring: { type: 'object', properties: { ...pageQuery, action: { type: 'string', maxLength: 200 }, user: { type: 'string', maxLength: 100 } } } } },
    async (req) => {
      let q = db.selectFrom('audit_log').leftJoin('users', 'users.id', 'audit_log.user_id').select(['audit_log.id', 'audit_log.at', 'audit_log.action', 'audit_log.target', 'audit_log.status', 'audit_log.ip', 'audit_log.details', 'audit_log.user_id', 'users.username']);
      if (req.query.action) q = q.where('audit_log.action', 'like', `%${req.query.action}%`);
      if (req.query.user) q = q.where('audit_log.user_id', '=', req.query.user);
      const rows = await q.orderBy('audit_log.id', 'desc').limit(req.query.limit).offset(req.query.offset).execute();
      return { entries: rows.map((r) => ({ id: r.id, at: r.at, userId: r.user_id, username: r.username, action: r.action, target: r.target, status: r.status, ip: r.ip, details: r.details ? (JSON.parse(r.details) as unknown) : null })) };
    },
  );

  app.get('/api/admin/integrity', { config: { permission: 'admin' }, schema: { tags: ['admin'], summary: 'Check that every referenced blob exists and is intact, and (SQLite) the database file', security: secured } }, async () =>
    verifyStore(db, ctx.store.dialect, ctx.blobs),
  );
}
