/**
 * Accounts in the database: users, sessions, API tokens, and the login attempt counters.
 *
 * Attempt limiting is one statement per attempt and key (`INSERT … ON CONFLICT DO UPDATE …
 * RETURNING`, atomic on SQLite and PostgreSQL): the attempt is counted *before* the password is
 * checked, so a burst of concurrent wrong passwords — on one process or several sharing the
 * database — checks at most the limit; a success gives its attempt back (address) or clears the
 * counter (user name). The window is fixed from the first counted attempt.
 * @module
 */
import type { Kysely } from 'kysely';
import type { Database, Role, UsersTable } from './schema.js';
import { newId, nowIso } from './util.js';

type Db = Kysely<Database>;

/** What {@link takeAttempt} found. */
export interface AttemptResult {
  /** Attempts counted in the current window, this one included. */
  attempts: number;
  /** When the window ends (ms since the epoch). */
  windowEndsMs: number;
}

/**
 * Count one attempt for `key` (a new window when the old one has passed), atomically.
 * @returns the count including this attempt and when the window ends
 * @example
 * const r = await takeAttempt(db, 'user:alice', 15 * 60_000);
 * if (r.attempts > 10) refuse(r.windowEndsMs);
 */
export async function takeAttempt(db: Db, key: string, windowMs: number, nowMs = Date.now()): Promise<AttemptResult> {
  const now = new Date(nowMs).toISOString();
  const since = new Date(nowMs - windowMs).toISOString();
  const row = await db
    .insertInto('login_attempts')
    .values({ key, attempts: 1, window_start: now })
    .onConflict((oc) =>
      oc.column('key').doUpdateSet((eb) => ({
        attempts: eb.case().when('login_attempts.window_start', '<', since).then(1).else(eb('login_attempts.attempts', '+', 1)).end(),
        window_start: eb.case().when('login_attempts.window_start', '<', since).then(now).else(eb.ref('login_attempts.window_start')).end(),
      })),
    )
    .returning(['attempts', 'window_start'])
    .executeTakeFirstOrThrow();
  return { attempts: Number(row.attempts), windowEndsMs: Date.parse(row.window_start) + windowMs };
}

/**
 * Give one counted attempt back (a successful login from an address).
 * @example
 * await giveBackAttempt(db, 'ip:10.0.0.1');
 */
export async function giveBackAttempt(db: Db, key: string): Promise<void> {
  await db.updateTable('login_attempts').set((eb) => ({ attempts: eb('attempts', '-', 1) })).where('key', '=', key).where('attempts', '>', 0).execute();
}

/**
 * Clear a key's counter (a successful login for a user name) and drop counters whose window has
 * passed (the table stays as small as the recent attempts).
 * @example
 * await clearAttempts(db, 'user:alice', 15 * 60_000);
 */
export async function clearAttempts(db: Db, key: string, windowMs: number, nowMs = Date.now()): Promise<void> {
  await db.deleteFrom('login_attempts').where((eb) => eb.or([eb('key', '=', key), eb('window_start', '<', new Date(nowMs - windowMs).toISOString())])).execute();
}

/** A user row. */
export type UserRow = Omit<UsersTable, 'disabled'> & { disabled: number };

/** Find a user by name. */
export async function userByName(db: Db, username: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('username', '=', username).executeTakeFirst();
}

/** Find a user by id. */
export async function userById(db: Db, id: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Insert a user (the caller checks the name is free and hashes the password). */
export async function insertUser(db: Db, u: { username: string; passwordHash: string; role: Role }): Promise<string> {
  const id = newId();
  await db.insertInto('users').values({ id, username: u.username, password_hash: u.passwordHash, role: u.role, disabled: 0, created_at: nowIso() }).execute();
  return id;
}

/** Every user, by name. */
export async function listUsers(db: Db): Promise<Array<Pick<UserRow, 'id' | 'username' | 'role' | 'disabled' | 'created_at'>>> {
  return db.selectFrom('users').select(['id', 'username', 'role', 'disabled', 'created_at']).orderBy('username').execute();
}

/** Change a user's role, disabled flag or password hash. */
export async function updateUser(db: Db, id: string, set: { role?: Role; disabled?: boolean; passwordHash?: string }): Promise<void> {
  await db
    .updateTable('users')
    .set({ ...(set.role ? { role: set.role } : {}), ...(set.disabled !== undefined ? { disabled: set.disabled ? 1 : 0 } : {}), ...(set.passwordHash ? { password_hash: set.passwordHash } : {}) })
    .where('id', '=', id)
    .execute();
}

/**
 * Replace a password hash only when it is still the one that was verified (a transparent rehash at
 * login must not undo a password change that happened in between).
 */
export async function rehashPassword(db: Db, id: string, oldHash: string, newHash: string): Promise<void> {
  await db.updateTable('users').set({ password_hash: newHash }).where('id', '=', id).where('password_hash', '=', oldHash).execute();
}

/** Start a session (expired ones are removed on the way). */
export async function insertSession(db: Db, s: { idHash: string; userId: string; csrfToken: string; nowMs: number; ttlMs: number }): Promise<void> {
  await db.deleteFrom('sessions').where('expires_at', '<', new Date(s.nowMs).toISOString()).execute();
  await db.insertInto('sessions').values({ id: s.idHash, user_id: s.userId, csrf_token: s.csrfToken, created_at: new Date(s.nowMs).toISOString(), expires_at: new Date(s.nowMs + s.ttlMs).toISOString() }).execute();
}

/** End one session. */
export async function deleteSession(db: Db, idHash: string): Promise<void> {
  await db.deleteFrom('sessions').where('id', '=', idHash).execute();
}

/** End every session of a user. */
export async function deleteUserSessions(db: Db, userId: string): Promise<void> {
  await db.deleteFrom('sessions').where('user_id', '=', userId).execute();
}

/** A user's API tokens (never their values). */
export async function listTokens(db: Db, userId: string): Promise<Array<{ id: string; name: string; created_at: string; last_used_at: string | null; revoked: number }>> {
  return db.selectFrom('api_tokens').select(['id', 'name', 'created_at', 'last_used_at', 'revoked']).where('user_id', '=', userId).orderBy('created_at').execute();
}

/** Store a new API token by its hash. */
export async function insertToken(db: Db, t: { userId: string; name: string; tokenHash: string }): Promise<string> {
  const id = newId();
  await db.insertInto('api_tokens').values({ id, user_id: t.userId, name: t.name, token_hash: t.tokenHash, created_at: nowIso(), last_used_at: null, revoked: 0 }).execute();
  return id;
}

/**
 * Revoke one token (`ownerId`: only when it belongs to that user).
 * @returns whether a token was revoked
 */
export async function revokeToken(db: Db, id: string, ownerId?: string): Promise<boolean> {
  let q = db.updateTable('api_tokens').set({ revoked: 1 }).where('id', '=', id);
  if (ownerId) q = q.where('user_id', '=', ownerId);
  const r = await q.executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

/**
 * Revoke a user's live tokens, except those listed in `keep`.
 * @returns how many were revoked
 */
export async function revokeUserTokens(db: Db, userId: string, keep: readonly string[] = []): Promise<number> {
  let q = db.updateTable('api_tokens').set({ revoked: 1 }).where('user_id', '=', userId).where('revoked', '=', 0);
  if (keep.length) q = q.where('id', 'not in', [...keep]);
  const r = await q.executeTakeFirst();
  return Number(r.numUpdatedRows);
}
