/**
 * Riding out short outages of the database or Redis: a worker whose database goes away for a few
 * seconds (a PostgreSQL restart, a fail-over) waits with bounded, logged back-off and carries on,
 * instead of failing the job or crashing. Hand-written because neither pg nor Kysely retries a
 * query (pg.Pool only hands out new connections); ioredis reconnects by itself (see bullmq.ts).
 * @module
 */
import { sql, type Kysely } from 'kysely';
import type { Database } from '../store/schema.js';

const TRANSIENT_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN',
  // PostgreSQL: admin shutdown, crash shutdown, cannot connect now, connection failures.
  '57P01', '57P02', '57P03', '08000', '08001', '08003', '08004', '08006',
  'SQLITE_BUSY', 'SQLITE_LOCKED',
]);
const TRANSIENT_TEXT = /Connection terminated|terminating connection|connection error|timeout exceeded when trying to connect|Client was closed|ECONNREFUSED|ECONNRESET/i;

/** Whether an error means "the database (or network) is away for now", not "this job is wrong". */
export function isTransientError(e: unknown): boolean {
  for (let x: unknown = e, depth = 0; x && depth < 5; x = (x as { cause?: unknown }).cause, depth++) {
    const code = (x as { code?: unknown }).code;
    if (typeof code === 'string' && TRANSIENT_CODES.has(code)) return true;
    const errors = (x as { errors?: unknown[] }).errors; // AggregateError of a dual-stack connect
    if (Array.isArray(errors) && errors.some((y) => isTransientError(y))) return true;
    if (x instanceof Error && TRANSIENT_TEXT.test(x.message)) return true;
  }
  return false;
}

/** Back-off before try `n` (1-based) of reconnecting: 250 ms doubling, at most `capMs`. */
export function outageDelay(n: number, capMs = 5000): number {
  return Math.min(capMs, 250 * 2 ** Math.max(0, n - 1));
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((res) => {
    const t = setTimeout(res, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), res()), { once: true });
  });

/**
 * Wait until the database answers `select 1`, with bounded back-off; every try is logged.
 * @returns true when it answers, false when `maxMs` passed (or `signal` aborted) first
 */
export async function waitForDatabase(db: Kysely<Database>, o: { maxMs: number; log?: (line: string) => void; signal?: AbortSignal }): Promise<boolean> {
  const t0 = Date.now();
  for (let n = 1; ; n++) {
    try {
      await sql`select 1`.execute(db);
      if (n > 1) o.log?.(`database reachable again after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      return true;
    } catch (e) {
      if (!isTransientError(e)) throw e;
      const wait = outageDelay(n);
      if (Date.now() - t0 + wait > o.maxMs || o.signal?.aborted) return false;
      o.log?.(`database unreachable (${(e as Error).message}); try ${n}, next in ${wait} ms`);
      await sleep(wait, o.signal);
    }
  }
}

/**
 * Run `fn`; when it fails because the database is away, wait for it to come back (bounded back-off,
 * logged) and run `fn` again — so `fn` must be idempotent. Other errors are thrown as they are, and
 * so is a transient one once the database stayed away longer than `maxMs`.
 */
export async function withOutageRetry<T>(db: Kysely<Database>, fn: () => Promise<T>, o: { maxMs: number; log?: (line: string) => void; signal?: AbortSignal }): Promise<T> {
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (!isTransientError(e) || o.signal?.aborted) throw e;
      o.log?.(`database error (${(e as Error).message}): waiting for the database, then trying again`);
      if (!(await waitForDatabase(db, o))) throw e;
    }
  }
}
