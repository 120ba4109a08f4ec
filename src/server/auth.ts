/**
 * Authentication and authorisation for every request: a bearer API token (scripts) or a session
 * cookie (the web UI; state-changing requests must also carry the session's CSRF token in
 * `X-CSRF-Token`). Each route's `config.permission` is checked against the user's role; routes
 * that name none need `read` for GET/HEAD and `admin` otherwise, so a forgotten permission fails
 * closed. Failed logins are rate-limited per IP and per user name.
 * @module
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.js';
import { MedmaskError } from '../core/errors.js';
import { nowIso } from '../store/util.js';
import { clearAttempts, giveBackAttempt, takeAttempt } from '../store/accounts.js';
import type { ServerContext, AuthUser } from './context.js';
import { secretHash } from './passwords.js';
import { can, type Permission } from './permissions.js';

/** Name of the session cookie. */
export const SESSION_COOKIE = 'medmask_session';

/** The permission a route requires (explicit, or the fail-closed default). */
export function routePermission(method: string, config: { permission?: Permission } | undefined): Permission {
  if (config?.permission) return config.permission;
  return method === 'GET' || method === 'HEAD' ? 'read' : 'admin';
}

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

async function authenticate(ctx: ServerContext, req: FastifyRequest): Promise<AuthUser | null> {
  const db = ctx.store.db;
  const auth = req.headers.authorization;
  if (auth) {
    const m = /^Bearer\s+(\S+)$/i.exec(auth);
    if (!m) throw new MedmaskError('UNAUTHENTICATED', 'the Authorization header must be "Bearer <API token>"', { hint: 'create a token with POST /api/tokens' });
    const row = await db
      .selectFrom('api_tokens')
      .innerJoin('users', 'users.id', 'api_tokens.user_id')
      .select(['api_tokens.id as tokenId', 'users.id', 'users.username', 'users.role', 'users.disabled', 'api_tokens.revoked', 'api_tokens.last_used_at'])
      .where('api_tokens.token_hash', '=', secretHash(m[1]!))
      .executeTakeFirst();
    if (!row || row.revoked || row.disabled) throw new MedmaskError('UNAUTHENTICATED', 'the API token is unknown, revoked, or its user is disabled', { hint: 'create a new token with POST /api/tokens' });
    // Record use at most once a minute (a write per request would dominate read-heavy scripts).
    const now = nowIso();
    if (!row.last_used_at || Date.parse(now) - Date.parse(row.last_used_at) > 60_000) {
      await db.updateTable('api_tokens').set({ last_used_at: now }).where('id', '=', row.tokenId).execute();
    }
    return { id: row.id, username: row.username, role: row.role, via: 'token' };
  }
  const cookie = req.cookies?.[SESSION_COOKIE];
  if (!cookie) return null;
  const s = await db
    .selectFrom('sessions')
    .innerJoin('users', 'users.id', 'sessions.user_id')
    .select(['users.id', 'users.username', 'users.role', 'users.disabled', 'sessions.csrf_token', 'sessions.expires_at'])
    .where('sessions.id', '=', secretHash(cookie))
    .executeTakeFirst();
  if (!s || s.disabled || s.expires_at < nowIso()) return null;
  return { id: s.id, username: s.username, role: s.role, via: 'session', csrfToken: s.csrf_token };
}

/** The review UI's login page. */
export const LOGIN_PAGE = '/#/login';

/** The login page, sending the browser back to `url` (a path of this site) after login. */
export function loginPageFor(url: string): string {
  return `/?next=${encodeURIComponent(url)}#/login`;
}

/**
 * A browser opening the API documentation (`/docs…`): a GET that accepts HTML. Such a request without a login is sent to the login page; API clients keep their 401.
 */
function isBrowserPageRequest(req: FastifyRequest): boolean {
  if (req.method !== 'GET' || !/^\/docs(\/|$|\?)/.test(req.url)) return false;
  const accept = String(req.headers.accept ?? '');
  return /text\/html/.test(accept);
}

/**
 * Install the auth hook. Runs before body parsing, so an unauthenticated upload is refused
 * before its bytes are read.
 */
export function installAuth(app: FastifyInstance, ctx: ServerContext): void {
  app.decorateRequest('user', null);
  app.decorateRequest('auditDetails', null);
  app.addHook('onRequest', async (req, reply) => {
    // Unknown routes fall through to the not-found handler.
    if (!req.routeOptions.url) return;
    const perm = routePermission(req.method, req.routeOptions.config);
    if (perm === 'public') {
      // Public routes still see who is logged in (e.g. login over an existing session).
      req.user = await authenticate(ctx, req).catch(() => null);
      return;
    }
    const user = await authenticate(ctx, req);
    if (!user && isBrowserPageRequest(req)) return reply.redirect(loginPageFor(req.url), 302);
    if (!user) throw new MedmaskError('UNAUTHENTICATED', 'log in first (POST /api/auth/login) or send "Authorization: Bearer <API token>"');
    req.user = user;
    if (user.via === 'session' && !SAFE.has(req.method)) {
      const sent = req.headers['x-csrf-token'];
      if (typeof sent !== 'string' || sent !== user.csrfToken) {
        throw new MedmaskError('FORBIDDEN', 'missing or wrong X-CSRF-Token header for a cookie session', { hint: 'send the csrfToken returned by login (or GET /api/auth/me) in the X-CSRF-Token header' });
      }
    }
    if (!can(user.role, perm)) {
      throw new MedmaskError('FORBIDDEN', `role ${user.role} may not do this (needs permission "${perm}")`, { hint: 'ask an admin for a role that has it (docs/server.md lists the matrix)' });
    }
  });
}

/** The request's user (routes behind a non-public permission always have one). */
export function userOf(req: FastifyRequest): AuthUser {
  if (!req.user) throw new MedmaskError('UNAUTHENTICATED', 'log in first');
  return req.user;
}

/**
 * Login limit: at most `max` attempts per client address and per user name within `windowMs`
 * (a successful login clears its user name's counter and gives its address's attempt back), and
 * at most `max` password-change attempts per user. Each attempt is counted in the database in one
 * atomic statement *before* the password is checked (src/store/accounts.ts), so a burst of
 * concurrent requests — on one process or on several sharing the database — checks at most `max`
 * passwords, and a cluster behind a load balancer gives an attacker no extra tries.
 * @example
 * const rl = new LoginLimiter(db, 10, 15 * 60_000);
 * await rl.begin('1.2.3.4', 'alice'); // throws RATE_LIMITED with retryAfterSeconds
 * // … password checked and right:
 * await rl.succeeded('1.2.3.4', 'alice');
 */
export class LoginLimiter {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly max: number,
    private readonly windowMs: number,
  ) {}

  private async take(keys: string[], what: string): Promise<void> {
    const now = Date.now();
    let refuse: number | undefined;
    for (const key of keys) {
      const r = await takeAttempt(this.db, key, this.windowMs, now);
      if (r.attempts > this.max) refuse = Math.max(refuse ?? 0, r.windowEndsMs);
    }
    if (refuse !== undefined) {
      const retry = Math.max(1, Math.ceil((refuse - now) / 1000));
      throw new MedmaskError('RATE_LIMITED', `too many ${what}; try again in ${retry} s`, { details: { retryAfterSeconds: retry } });
    }
  }

  /** Count a login attempt; throws RATE_LIMITED when the address or the user name is over the limit. */
  async begin(ip: string, username: string): Promise<void> {
    await this.take([`ip:${ip}`, `user:${username}`], 'failed logins');
  }

  /** A login succeeded: clear the user name's counter, give the address its attempt back. */
  async succeeded(ip: string, username: string): Promise<void> {
    await giveBackAttempt(this.db, `ip:${ip}`);
    await clearAttempts(this.db, `user:${username}`, this.windowMs);
  }

  /** Count a password-change attempt of a logged-in user; throws RATE_LIMITED over the limit. */
  async beginPasswordChange(userId: string): Promise<void> {
    await this.take([`password:${userId}`], 'wrong current passwords');
  }

  /** The password was changed: clear the counter. */
  async passwordChanged(userId: string): Promise<void> {
    await clearAttempts(this.db, `password:${userId}`, this.windowMs);
  }
}
