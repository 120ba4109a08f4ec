/**
 * Test helpers for the server: a fresh app on a given database (SQLite file or PostgreSQL), users
 * of every role with API tokens and cookie sessions, and request shortcuts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, FastifyServerOptions, InjectOptions, LightMyRequestResponse } from 'fastify';
import { createServer, createUser } from '../../src/server/index.js';
import { FsBlobStore, openStore, type BlobStore, type Store } from '../../src/store/index.js';
import { InProcessQueue, createDefaultHandlers, type JobHandlerRegistry, type JobQueue } from '../../src/queue/index.js';
import type { Role } from '../../src/store/schema.js';
import { ROLES } from '../../src/store/schema.js';
import { testHandlers } from './test-handlers.js';
import type { ServerSettings } from '../../src/server/context.js';

/** Cheap scrypt for tests (the default costs ≈ 0.1 s per hash). */
export const TEST_SCRYPT = { N: 1024, r: 8, p: 1 };

/** A logged-in user of the test server. */
export interface TestUser {
  id: string;
  username: string;
  password: string;
  role: Role;
  token: string;
  cookie: string;
  csrf: string;
}

/** A running test server. */
export interface TestServer {
  app: FastifyInstance;
  store: Store;
  blobs: BlobStore;
  queue: JobQueue;
  dir: string;
  users: Record<Role, TestUser>;
  /** inject as a user with its API token. */
  as(role: Role | TestUser | null, opts: InjectOptions): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

/** Options for {@link startTestServer}. */
export interface TestServerOptions {
  /** Database URL (default: an SQLite file in the temp folder). */
  db?: string;
  queue?: JobQueue;
  handlers?: JobHandlerRegistry;
  maxUploadBytes?: number;
  loginMaxAttempts?: number;
  /** Salt for DICOM UID remapping (default "test-salt"). */
  uidSalt?: string;
  /** Blob store (default: a folder in the temp folder). */
  blobs?: BlobStore;
  /**
   * Further server settings (e.g. maxVoxels, decodeTimeoutMs). Uploads decode on the event loop
   * unless `decodeWorkers` is set: a worker thread run from source loads tsx first (seconds).
   */
  settings?: Partial<ServerSettings>;
  /** Reconciliation interval and stale limit (createServer's defaults: 30 s, 60 s). */
  reconcileMs?: number;
  staleMs?: number;
  /** fastify's logger option (default off), e.g. `{ level: 'info', stream }` to read the log lines. */
  logger?: FastifyServerOptions['logger'];
}

/** Build a server with one user per role. */
export async function startTestServer(o: TestServerOptions = {}): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-server-test-'));
  const store = await openStore(o.db ?? join(dir, 'medmask.sqlite'));
  const blobs = o.blobs ?? new FsBlobStore(join(dir, 'blobs'), { fsync: false });
  const queue = o.queue ?? new InProcessQueue({ attempts: 3, backoffMs: 50 });
  const handlers = o.handlers ?? createDefaultHandlers();
  for (const [name, h] of Object.entries(testHandlers)) handlers.register(name, h);
  const app = await createServer({
    store,
    blobs,
    queue,
    handlers,
    workDir: join(dir, 'work'),
    ...(o.reconcileMs !== undefined ? { reconcileMs: o.reconcileMs } : {}),
    ...(o.staleMs !== undefined ? { staleMs: o.staleMs } : {}),
    ...(o.logger !== undefined ? { logger: o.logger } : {}),
    settings: { tmpDir: join(dir, 'tmp'), scrypt: TEST_SCRYPT, maxUploadBytes: o.maxUploadBytes ?? 8 * 2 ** 20, loginMaxAttempts: o.loginMaxAttempts ?? 1000, uidSalt: o.uidSalt ?? 'test-salt', decodeWorkers: 0, ...o.settings },
  });
  const users = {} as Record<Role, TestUser>;
  for (const role of ROLES) {
    const password = `pw-${role}-0123456789`;
    const u = await createUser({ store, settings: { scrypt: TEST_SCRYPT } as never }, { username: role, password, role });
    const login = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: role, password } });
    if (login.statusCode !== 200) throw new Error(`login ${role}: ${login.body}`);
    const cookie = login.cookies.find((c) => c.name === 'medmask_session')!.value;
    const csrf = (login.json() as { csrfToken: string }).csrfToken;
    const tok = await app.inject({ method: 'POST', url: '/api/tokens', cookies: { medmask_session: cookie }, headers: { 'x-csrf-token': csrf }, payload: { name: 'test' } });
    if (tok.statusCode !== 201) throw new Error(`token ${role}: ${tok.body}`);
    users[role] = { id: u.id, username: role, password, role, token: (tok.json() as { token: string }).token, cookie, csrf };
  }
  return {
    app,
    store,
    blobs,
    queue,
    dir,
    users,
    as(who, opts) {
      const u = typeof who === 'string' ? users[who] : who;
      return app.inject({ ...opts, headers: { ...(u ? { authorization: `Bearer ${u.token}` } : {}), ...(opts.headers ?? {}) } });
    },
    async close() {
      await queue.close(2000);
      await app.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A multipart body with files (and fields), for inject. */
export function multipartBody(files: { field?: string; name: string; data: Uint8Array | string; type?: string }[], fields: Record<string, string> = {}): { payload: Buffer; headers: Record<string, string> } {
  const boundary = `----medmask${Math.random().toString(16).slice(2)}`;
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(fields)) parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`));
  for (const f of files) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${f.field ?? 'file'}"; filename="${f.name}"\r\nContent-Type: ${f.type ?? 'application/octet-stream'}\r\n\r\n`));
    parts.push(Buffer.from(f.data));
    parts.push(Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return { payload: Buffer.concat(parts), headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}

/** Wait until `f` returns a truthy value (polling), or throw after `ms`. */
export async function waitFor<T>(f: () => Promise<T | undefined | null | false>, ms = 20_000, what = 'condition'): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A finished job as the API returns it. */
export interface FinishedJob {
  status: string;
  result: Record<string, unknown>;
  error?: unknown;
}

/** Poll GET /api/jobs/:id until the job is done, partial, failed or cancelled (about 2 minutes at most). */
export async function waitJob(s: TestServer, id: string): Promise<FinishedJob> {
  for (let i = 0; i < 2400; i++) {
    const j = (await s.as('viewer', { url: `/api/jobs/${id}` })).json() as FinishedJob;
    if (j.status === 'done' || j.status === 'partial' || j.status === 'failed' || j.status === 'cancelled') return j;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`job ${id} did not finish`);
}

/** Run a `phantoms` job (the reviewer submits it) and return the data set it wrote; fails the test if the job fails. */
export async function phantomsDataset(s: TestServer, input: Record<string, unknown>): Promise<string> {
  const ph = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'phantoms', input } });
  if (ph.statusCode !== 202) throw new Error(`phantoms job refused: ${ph.statusCode} ${ph.body}`);
  const pj = await waitJob(s, (ph.json() as { job: { id: string } }).job.id);
  if (pj.status !== 'done') throw new Error(`phantoms job ${pj.status}: ${JSON.stringify(pj.error)}`);
  return pj.result.datasetId as string;
}

/**
 * Another server process on a test server's database (its own app, queue and store connection):
 * for limits that must hold across processes.
 */
export async function secondServerProcess(a: TestServer, o: { db?: string; loginMaxAttempts: number; trustProxy?: string[] }): Promise<{ app: FastifyInstance; store: Store; close(): Promise<void> }> {
  const store = await openStore(o.db ?? join(a.dir, 'medmask.sqlite'));
  const queue = new InProcessQueue({ attempts: 1, backoffMs: 10 });
  const app = await createServer({
    store,
    blobs: new FsBlobStore(join(a.dir, 'blobs'), { fsync: false }),
    queue,
    handlers: createDefaultHandlers(),
    workDir: join(a.dir, 'work-2'),
    settings: { tmpDir: join(a.dir, 'tmp-2'), scrypt: TEST_SCRYPT, loginMaxAttempts: o.loginMaxAttempts, uidSalt: 'test-salt', decodeWorkers: 0 },
    ...(o.trustProxy ? { trustProxy: o.trustProxy } : {}),
  });
  const close = async () => {
    await queue.close(1000);
    await app.close();
    await store.close();
  };
  return { app, store, close };
}
