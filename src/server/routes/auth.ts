/**
 * Accounts: login / logout / me, password change, users (admin) and API tokens (own).
 * @module
 */
import type { FastifyInstance } from 'fastify';
import { MedmaskError } from '../../core/errors.js';
import { ROLES, type Role } from '../../store/schema.js';
import { newId, nowIso } from '../../store/util.js';
import { LoginLimiter, SESSION_COOKIE, userOf } from '../auth.js';
import type { ServerContext } from '../context.js';
import { hashPassword, randomSecret, secretHash, verifyPassword } from '../passwords.js';
import { errorResponses, idParams, objectResponse, secured } from './schemas.js';

/** A dummy hash so unknown user names cost as much time as wrong passwords. */
let dummyHash: Promise<string> | undefined;

const passwordSchema = { type: 'string', minLength: 10, maxLength: 200, description: 'at least 10 characters' } as const;
const usernameSchema = { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9._@-]+$' } as const;

/**
 * Create a user (used by the routes and by `medmask serve` for the first admin).
 * @example
 * await createUser(ctx, { username: 'alice', password: 'long enough pw', role: 'reviewer' });
 */
export async function createUser(ctx: Pick<ServerContext, 'store' | 'settings'>, u: { username: string; password: string; role: Role }): Promise<{ id: string; username: string; role: Role }> {
  if (!ROLES.includes(u.role)) throw new MedmaskError('USAGE', `role "${u.role}" is not one of ${ROLES.join(', ')}`);
  const exists = await ctx.store.db.selectFrom('users').select('id').where('username', '=', u.username).executeTakeFirst();
  if (exists) throw new MedmaskError('CONFLICT', `user name "${u.username}" is taken`, { hint: 'choose another name' });
  const id = newId();
  await ctx.store.db.insertInto('users').values({ id, username: u.username, password_hash: await hashPassword(u.password, ctx.settings.scrypt), role: u.role, disabled: 0, created_at: nowIso() }).execute();
  return { id, username: u.username, role: u.role };
}

/** Register the account routes. */
export function authRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const db = ctx.store.db;
  const limiter = new LoginLimiter(db, ctx.settings.loginMaxAttempts, ctx.settings.loginWindowMs);

  app.post<{ Body: { username: string; password: string } }>(
    '/api/auth/login',
    {
      config: { permission: 'public' },
      schema: {
        tags: ['auth'],
        summary: 'Log in: sets the session cookie and returns the CSRF token to send with every write',
        body: { type: 'object', required: ['username', 'password'], additionalProperties: false, properties: { username: { type: 'string', maxLength: 64 }, password: { type: 'string', maxLength: 200 } } },
        response: { 200: objectResponse('logged in', { user: { type: 'object', additionalProperties: true }, csrfToken: { type: 'string' } }), 401: errorResponses[401], 429: { ...errorResponses[400], description: 'too many failed logins' } },
      },
    },
    async (req, reply) => {
      const { username, password } = req.body;
      req.auditDetails = { username };
      await limiter.check(req.ip, username);
      const u = await db.selectFrom('users').selectAll().where('username', '=', username).executeTakeFirst();
      dummyHash ??= hashPassword('not a password', ctx.settings.scrypt);
      const ok = u ? await verifyPassword(password, u.password_hash) : (await verifyPassword(password, await dummyHash), false);
      if (!u || !ok || u.disabled) {
        // The audit log records this failure (status 401) before the answer goes out; the limiter counts those rows.
        throw new MedmaskError('UNAUTHENTICATED', 'wrong user name or password (or the account is disabled)');
      }
      const secret = randomSecret();
      const csrfToken = randomSecret(24);
      const now = Date.now();
      await db.deleteFrom('sessions').where('expires_at', '<', new Date(now).toISOString()).execute();
      await db.insertInto('sessions').values({ id: secretHash(secret), user_id: u.id, csrf_token: csrfToken, created_at: new Date(now).toISOString(), expires_at: new Date(now + ctx.settings.sessionTtlMs).toISOString() }).execute();
      req.user = { id: u.id, username: u.username, role: u.role, via: 'session', csrfToken };
      void reply.setCookie(SESSION_COOKIE, secret, { httpOnly: true, sameSite: 'strict', secure: ctx.settings.secureCookies, path: '/', maxAge: Math.floor(ctx.settings.sessionTtlMs / 1000) });
      return { user: { id: u.id, username: u.username, role: u.role }, csrfToken };
    },
  );

  app.post('/api/auth/logout', { config: { permission: 'self' }, schema: { tags: ['auth'], summary: 'End the session', security: secured } }, async (req, reply) => {
    const cookie = req.cookies[SESSION_COOKIE];
    if (cookie) await db.deleteFrom('sessions').where('id', '=', secretHash(cookie)).execute();
    void reply.clearCookie(SESSION_COOKIE, { path: '/' });
    return { ok: true };
  });

  app.get('/api/auth/me', { config: { permission: 'self' }, schema: { tags: ['auth'], summary: 'The current user (and, for cookie sessions, the CSRF token)', security: secured } }, async (req) => {
    const u = userOf(req);
    return { user: { id: u.id, username: u.username, role: u.role }, via: u.via, ...(u.csrfToken ? { csrfToken: u.csrfToken } : {}) };
  });

  app.post<{ Body: { currentPassword: string; newPassword: string } }>(
    '/api/auth/password',
    {
      config: { permission: 'self' },
      schema: { tags: ['auth'], summary: 'Change your own password', security: secured, body: { type: 'object', required: ['currentPassword', 'newPassword'], additionalProperties: false, properties: { currentPassword: { type: 'string', maxLength: 200 }, newPassword: passwordSchema } } },
    },
    async (req) => {
      const me = userOf(req);
      const u = await db.selectFrom('users').select('password_hash').where('id', '=', me.id).executeTakeFirstOrThrow();
      if (!(await verifyPassword(req.body.currentPassword, u.password_hash))) throw new MedmaskError('FORBIDDEN', 'the current password is wrong');
      await db.updateTable('users').set({ password_hash: await hashPassword(req.body.newPassword, ctx.settings.scrypt) }).where('id', '=', me.id).execute();
      await db.deleteFrom('sessions').where('user_id', '=', me.id).execute();
      return { ok: true };
    },
  );

  // ── users (admin) ──
  const userView = { type: 'object', properties: { id: { type: 'string' }, username: { type: 'string' }, role: { type: 'string' }, disabled: { type: 'boolean' }, createdAt: { type: 'string' } } } as const;
  app.get('/api/users', { config: { permission: 'admin' }, schema: { tags: ['users'], summary: 'List users', security: secured, response: { 200: { type: 'object', properties: { users: { type: 'array', items: userView } } } } } }, async () => {
    const rows = await db.selectFrom('users').select(['id', 'username', 'role', 'disabled', 'created_at']).orderBy('username').execute();
    return { users: rows.map((r) => ({ id: r.id, username: r.username, role: r.role, disabled: !!r.disabled, createdAt: r.created_at })) };
  });

  app.post<{ Body: { username: string; password: string; role: Role } }>(
    '/api/users',
    {
      config: { permission: 'admin' },
      schema: { tags: ['users'], summary: 'Create a user', security: secured, body: { type: 'object', required: ['username', 'password', 'role'], additionalProperties: false, properties: { username: usernameSchema, password: passwordSchema, role: { type: 'string', enum: [...ROLES] } } } },
    },
    async (req, reply) => {
      const u = await createUser(ctx, req.body);
      req.auditDetails = { username: u.username, role: u.role };
      return reply.code(201).send({ user: u });
    },
  );

  app.patch<{ Params: { id: string }; Body: { role?: Role; password?: string; disabled?: boolean } }>(
    '/api/users/:id',
    {
      config: { permission: 'admin' },
      schema: { tags: ['users'], summary: 'Change a user\'s role, password or disabled flag', security: secured, params: idParams, body: { type: 'object', additionalProperties: false, minProperties: 1, properties: { role: { type: 'string', enum: [...ROLES] }, password: passwordSchema, disabled: { type: 'boolean' } } } },
    },
    async (req) => {
      const u = await db.selectFrom('users').select(['id', 'username']).where('id', '=', req.params.id).executeTakeFirst();
      if (!u) throw new MedmaskError('NOT_FOUND', `user ${req.params.id} does not exist`);
      const b = req.body;
      await db
        .updateTable('users')
        .set({ ...(b.role ? { role: b.role } : {}), ...(b.disabled !== undefined ? { disabled: b.disabled ? 1 : 0 } : {}), ...(b.password ? { password_hash: await hashPassword(b.password, ctx.settings.scrypt) } : {}) })
        .where('id', '=', u.id)
        .execute();
      if (b.password || b.disabled || b.role) await db.deleteFrom('sessions').where('user_id', '=', u.id).execute();
      req.auditDetails = { username: u.username, ...(b.role ? { role: b.role } : {}), ...(b.disabled !== undefined ? { disabled: b.disabled } : {}), ...(b.password ? { password: 'changed' } : {}) };
      return { ok: true };
    },
  );

  // ── API tokens (own) ──
  app.get('/api/tokens', { config: { permission: 'self' }, schema: { tags: ['auth'], summary: 'Your API tokens (never their values)', security: secured } }, async (req) => {
    const rows = await db.selectFrom('api_tokens').select(['id', 'name', 'created_at', 'last_used_at', 'revoked']).where('user_id', '=', userOf(req).id).orderBy('created_at').execute();
    return { tokens: rows.map((r) => ({ id: r.id, name: r.name, createdAt: r.created_at, lastUsedAt: r.last_used_at, revoked: !!r.revoked })) };
  });

  app.post<{ Body: { name: string } }>(
    '/api/tokens',
    {
      config: { permission: 'self' },
      schema: { tags: ['auth'], summary: 'Create an API token for scripts (shown once; send as "Authorization: Bearer <token>")', security: secured, body: { type: 'object', required: ['name'], additionalProperties: false, properties: { name: { type: 'string', minLength: 1, maxLength: 100 } } } },
    },
    async (req, reply) => {
      const token = `mm_${randomSecret()}`;
      const id = newId();
      await db.insertInto('api_tokens').values({ id, user_id: userOf(req).id, name: req.body.name, token_hash: secretHash(token), created_at: nowIso(), last_used_at: null, revoked: 0 }).execute();
      req.auditDetails = { tokenId: id, name: req.body.name };
      return reply.code(201).send({ id, name: req.body.name, token });
    },
  );

  app.delete<{ Params: { id: string } }>('/api/tokens/:id', { config: { permission: 'self' }, schema: { tags: ['auth'], summary: 'Revoke one of your API tokens (admins: any)', security: secured, params: idParams } }, async (req) => {
    const me = userOf(req);
    let q = db.updateTable('api_tokens').set({ revoked: 1 }).where('id', '=', req.params.id);
    if (me.role !== 'admin') q = q.where('user_id', '=', me.id);
    const r = await q.executeTakeFirst();
    if (Number(r.numUpdatedRows) !== 1) throw new MedmaskError('NOT_FOUND', `token ${req.params.id} does not exist (or is not yours)`);
    return { ok: true };
  });
}
