/**
 * Opening a store: a Kysely instance on SQLite (better-sqlite3, the zero-set-up default) or
 * PostgreSQL (pg), chosen by the URL, migrated to the newest schema.
 * @module
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import SqliteDatabase from 'better-sqlite3';
import pg from 'pg';
import { MedmaskError } from '../core/errors.js';
import { migrateToLatest, ping, type Dialect } from './migrations.js';
import type { Database } from './schema.js';

/** An open database. */
export interface Store {
  db: Kysely<Database>;
  dialect: Dialect;
  /** The URL with any password masked, for logs. */
  description: string;
  close(): Promise<void>;
}

/** Options for {@link openStore}. */
export interface OpenStoreOptions {
  /** Run migrations (default true). */
  migrate?: boolean;
  /** PostgreSQL pool size (default 10). */
  poolSize?: number;
}

/** True for `postgres://` and `postgresql://` URLs. */
export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//i.test(url);
}

/** `postgres://user:secret@host/db` → `postgres://user:***@host/db`. */
export function maskUrl(url: string): string {
  return url.replace(/(\/\/[^:/@]+:)[^@]*@/, '$1***@');
}

/**
 * Open (and by default migrate) a store.
 * @param url - `postgres://user@host:port/db`, or an SQLite file path (optionally `sqlite:PATH`),
 *   or `:memory:`
 * @param opts - migrate, pool size
 * @returns the store; call `close()` when done
 * @example
 * const store = await openStore('medmask-data/medmask.sqlite');
 * const users = await store.db.selectFrom('users').selectAll().execute();
 * await store.close();
 */
export async function openStore(url: string, opts: OpenStoreOptions = {}): Promise<Store> {
  let store: Store;
  if (isPostgresUrl(url)) {
    const pool = new pg.Pool({ connectionString: url, max: opts.poolSize ?? 10 });
    // An idle client losing its server must not crash the process; the next query reports it.
    pool.on('error', () => {});
    // pg-pool drops its listener while a client is checked out: a connection the server terminates
    // mid-query (PostgreSQL restarted) would emit an unhandled 'error' and crash the process. The
    // query itself still fails with the error (and the outage wrapper waits for the database).
    pool.on('connect', (client) => client.on('error', () => {}));
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    store = { db, dialect: 'postgres', description: maskUrl(url), close: () => db.destroy() };
  } else {
    const path = url.replace(/^sqlite:/, '');
    let sqlite: SqliteDatabase.Database;
    try {
      if (path !== ':memory:') mkdirSync(dirname(resolve(path)), { recursive: true });
      sqlite = new SqliteDatabase(path);
      sqlite.pragma('journal_mode = WAL');
      sqlite.pragma('synchronous = NORMAL');
      sqlite.pragma('busy_timeout = 10000');
      sqlite.pragma('foreign_keys = ON');
    } catch (e) {
      throw new MedmaskError('ENVIRONMENT', `cannot open the SQLite database ${path}: ${(e as Error).message}`, {
        cause: e,
        hint: 'check that the folder exists and is writable, or pass --db postgres://…',
      });
    }
    const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
    store = { db, dialect: 'sqlite', description: `sqlite:${path}`, close: () => db.destroy() };
  }
  try {
    await ping(store.db);
    if (opts.migrate !== false) await migrateToLatest(store.db, store.dialect);
  } catch (e) {
    await store.close().catch(() => {});
    if (e instanceof MedmaskError) throw e;
    throw new MedmaskError('ENVIRONMENT', `cannot reach the database ${store.description}: ${(e as Error).message}`, {
      cause: e,
      hint: 'check the --db URL, that the server runs and accepts this user',
    });
  }
  return store;
}
