/**
 * Accounts: login / logout / me, password change, users (admin) and API tokens (own).
 * @module
 */
import type { FastifyInstance } from 'fastify';
import { MedmaskError } from '../../core/errors.js';
import { ROLES, type Role } from '../../store/schema.js';
import {
  deleteSession, deleteUserSessions, insertSession, insertToken, insertUser, listTokens, listUsers, rehashPassword,
  revokeToken, revokeUserTokens, updateUser, userById, userByName,
} from '../../store/accounts.js';
import { LoginLimiter, SESSION_COOKIE, userOf } from '../auth.js';
import type { ServerContext } from '../context.js';
import { hashPassword, needsRehash, randomSecret, secretHash, verifyPassword } from '../passwords.js';
import { NAME_PATTERN } from './schemas.js';
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
  if (await userByName(ctx.store.db, u.username)) throw new MedmaskError('CONFLICT', `user name "${u.username}" is taken`, { hint: 'choose another name' });
  const id = await insertUser(ctx.store.db, { username: u.username, passwordHash: await hashPassword(u.password, ctx.settings.scrypt), role: u.role });
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
      // Counted before the password is checked, atomically in the database (see LoginLimiter).
      await limiter.begin(req.ip, username);
      const u = await userByName(db, username);
      dummyHash ??= hashPassword('not a password', ctx.settings.scrypt);
      const ok = u ? await verifyPassword(password, u.password_hash) : (await verifyPassword(password, await dummyHash), false);
      if (!u || !ok || u.disabled) throw new MedmaskError('UNAUTHENTICATED', 'wrong user name or password (or the account is disabled)');
      await limiter.succeeded(req.ip, username);
      // Transparent rehash: a hash made with weaker scrypt parameters is replaced by one at today's.
      if (needsRehash(u.password_hash, ctx.settings.scrypt)) await rehashPassword(db, u.id, u.password_hash, await hashPassword(password, ctx.settings.scrypt));
      const secret = randomSecret();
      const csrfToken = randomSecret(24);
      await insertSession(db, { idHash: secretHash(secret), userId: u.id, csrfToken, nowMs: Date.now(), ttlMs: ctx.settings.sessionTtlMs });
      req.user = { id: u.id, username: u.username, role: u.role, via: 'session', csrfToken };
      void reply.setCookie(SESSION_COOKIE, secret, { httpOnly: true, sameSite: 'strict', secure: ctx.settings.secureCookies, path: '/', maxAge: Math.floor(ctx.settings.sessionTtlMs / 1000) });
      return { user: { id: u.id, username: u.username, role: u.role }, csrfToken };
    },
  );

  app.post('/api/auth/logout', { config: { permission: 'self' }, schema: { tags: ['auth'], summary: 'End the session', security: secured } }, async (req, reply) => {
    const cookie = req.cookies[SESSION_COOKIE];
    if (cookie) await deleteSession(db, secretHash(cookie));
    void reply.clearCookie(SESSION_COOKIE, { path: '/' });
    return { ok: true };
  });

  app.get('/api/auth/me', { config: { permission: 'self' }, schema: { tags: ['auth'], summary: 'The current user (and, for cookie sessions, the CSRF token)', security: secured } }, async (req) => {
    const u = userOf(req);
    return { user: { id: u.id, username: u.username, role: u.role }, via: u.via, ...(u.csrfToken ? { csrfToken: u.csrfToken } : {}) };
  });

  app.post<{ Body: { currentPassword: string; newPassword: string; keepTokens?: string[] } }>(
    '/api/auth/password',
    {
      config: { permission: 'self' },
      schema: {
        tags: ['auth'],
        summary: 'Change your own password: ends every session and revokes your API tokens except those listed in keepTokens (ids); wrong current passwords are limited like logins',
        security: secured,
        body: { type: 'object', required: ['currentPassword', 'newPassword'], additionalProperties: false, properties: { currentPassword: { type: 'string', maxLength: 200 }, newPassword: passwordSchema, keepTokens: { type: 'array', maxItems: 1000, items: { type: 'string', maxLength: 64 } } } },
      },
    },
    async (req) => {
      const me = userOf(req);
      await limiter.beginPasswordChange(me.id);
      const u = await userById(db, me.id);
      if (!u) throw new MedmaskError('UNAUTHENTICATED', 'log in again');
      if (!(await verifyPassword(req.body.currentPassword, u.password_hash))) throw new MedmaskError('FORBIDDEN', 'the current password is wrong');
      await limiter.passwordChanged(me.id);
      await updateUser(db, me.id, { passwordHash: await hashPassword(req.body.newPassword, ctx.settings.scrypt) });
      await deleteUserSessions(db, me.id);
      const revokedTokens = await revokeUserTokens(db, me.id, req.body.keepTokens ?? []);
      req.auditDetails = { revokedTokens, keptTokens: req.body.keepTokens?.length ?? 0 };
      return { ok: true, revokedTokens };
    },
  );

  // ── users (admin) ──
  const userView = { type: 'object', properties: { id: { type: 'string' }, username: { type: 'string' }, role: { type: 'string' }, disabled: { type: 'boolean' }, createdAt: { type: 'string' } } } as const;
  app.get('/api/users', { config: { permission: 'admin' }, schema: { tags: ['users'], summary: 'List users', security: secured, response: { 200: { type: 'object', properties: { users: { type: 'array', items: userView } } } } } }, async () => {
    const rows = await listUsers(db);
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
      const u = await userById(db, req.params.id);
      if (!u) throw new MedmaskError('NOT_FOUND', `user ${req.params.id} does not exist`);
      const b = req.body;
      await updateUser(db, u.id, { ...(b.role ? { role: b.role } : {}), ...(b.disabled !== undefined ? { disabled: b.disabled } : {}), ...(b.password ? { passwordHash: await hashPassword(b.password, ctx.settings.scrypt) } : {}) });
      if (b.password || b.disabled || b.role) await deleteUserSessions(db, u.id);
      // A password reset by an admin presumes the old one leaked: the user's tokens go with it.
      const revokedTokens = b.password || b.disabled ? await revokeUserTokens(db, u.id) : 0;
      req.auditDetails = { username: u.username, ...(b.role ? { role: b.role } : {}), ...(b.disabled !== undefined ? { disabled: b.disabled } : {}), ...(b.password ? { password: 'changed' } : {}), ...(revokedTokens ? { revokedTokens } : {}) };
      return { ok: true };
    },
  );

  // ── API tokens (own) ──
  app.get('/api/tokens', { config: { permission: 'self' }, schema: { tags: ['auth'], summary: 'Your API tokens (never their values)', security: secured } }, async (req) => {
    const rows = await listTokens(db, userOf(req).id);
    return { tokens: rows.map((r) => ({ id: r.id, name: r.name, createdAt: r.created_at, lastUsedAt: r.last_used_at, revoked: !!r.revoked })) };
  });

  app.post<{ Body: { name: string } }>(
    '/api/tokens',
    {
      config: { permission: 'self' },
      schema: { tags: ['auth'], summary: 'Create an API token for scripts (shown once; send as "Authorization: Bearer <token>")', security: secured, body: { type: 'object', required: ['name'], additionalProperties: false, properties: { name: { type: 'string', minLength: 1, maxLength: 100, pattern: NAME_PATTERN } } } },
    },
    async (req, reply) => {
      const token = `mm_${randomSecret()}`;
      const id = await insertToken(db, { userId: userOf(req).id, name: req.body.name, tokenHash: secretHash(token) });
      req.auditDetails = { tokenId: id, name: req.body.name };
      return reply.code(201).send({ id, name: req.body.name, token });
    },
  );

  app.delete<{ Params: { id: string } }>('/api/tokens/:id', { config: { permission: 'self' }, schema: { tags: ['auth'], summary: 'Revoke one of your API tokens (admins: any)', security: secured, params: idParams } }, async (req) => {
    const me = userOf(req);
    if (!(await revokeToken(db, req.params.id, me.role === 'admin' ? undefined : me.id))) throw new MedmaskError('NOT_FOUND', `token ${req.params.id} does not exist (or is not yours)`);
    return { ok: true };
  });
}
