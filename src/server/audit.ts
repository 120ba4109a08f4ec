/**
 * The audit log: every request that can change something (POST, PUT, PATCH, DELETE) — including
 * refused ones and failed logins — leaves a row with who, what route, which ids, the status and
 * the client address. Handlers add details (e.g. the version a save created) through
 * `req.auditDetails`.
 * @module
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.js';
import { nowIso } from '../store/util.js';

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** Write one audit row. */
export async function audit(db: Kysely<Database>, row: { userId: string | null; action: string; target?: string | null; status: number; ip?: string | null; details?: Record<string, unknown> | null }): Promise<void> {
  await db
    .insertInto('audit_log')
    .values({ at: nowIso(), user_id: row.userId, action: row.action, target: row.target ?? null, status: row.status, ip: row.ip ?? null, details: row.details ? JSON.stringify(row.details) : null })
    .execute();
}

function target(req: FastifyRequest): string | null {
  const p = req.params as Record<string, string> | undefined;
  if (!p || !Object.keys(p).length) return null;
  return Object.entries(p)
    .map(([k, v]) => `${k}=${String(v).slice(0, 100)}`)
    .join(',');
}

/**
 * Install the hook that logs every write. It runs before the answer is sent (onSend), so a client
 * that got an answer can rely on the row being there, and a crash cannot leave a write unlogged.
 */
export function installAudit(app: FastifyInstance, db: Kysely<Database>): void {
  app.addHook('onSend', async (req, reply, payload) => {
    if (!WRITES.has(req.method)) return payload;
    const route = req.routeOptions.url ?? req.url.split('?')[0]!;
    try {
      await audit(db, { userId: req.user?.id ?? null, action: `${req.method} ${route}`, target: target(req), status: reply.statusCode, ip: req.ip, details: req.auditDetails });
    } catch (e) {
      req.log.error({ err: e }, 'audit log write failed');
    }
    return payload;
  });
}
