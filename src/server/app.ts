/**
 * The server factory: `createServer({ store, blobs, queue })` builds a fastify app with auth, the
 * audit log, the error mapping, OpenAPI docs at /docs (generated from the route schemas, served
 * offline) and every route. No global state: each call builds a fresh app; tests make one per
 * case and close it.
 * @module
 */
import { MEDMASK_VERSION } from '../version.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import cookie from '@fastify/cookie';
import multipart from '@fastify/multipart';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { BlobStore } from '../store/blob-store.js';
import type { Store } from '../store/db.js';
import { unfinishedJobs } from '../store/jobs.js';
import { createDefaultHandlers } from '../queue/default-handlers.js';
import type { JobHandlerRegistry } from '../queue/handlers.js';
import type { JobQueue } from '../queue/queue.js';
import { reconcileOnce, startReconciler } from '../queue/reconcile.js';
import { createJobProcessor } from '../queue/runner.js';
import { JobProcess, type JobProcessOptions } from '../queue/job-process.js';
import { detectCapabilities, laneRoute, type Capability } from '../queue/capabilities.js';
import { installAudit } from './audit.js';
import { SESSION_COOKIE, installAuth, routePermission } from './auth.js';
import { can, type Permission } from './permissions.js';
import { ROLES } from '../store/schema.js';
import type { ServerContext, ServerSettings } from './context.js';
import { installErrorHandlers } from './errors.js';
import { DecodePool } from './decode-pool.js';
import { installSecurityHeaders } from './security-headers.js';
import { DEFAULT_MAX_VOXELS } from '../io/limits.js';
import { SCRYPT_DEFAULTS } from './passwords.js';
import { adminRoutes } from './routes/admin.js';
import { authRoutes } from './routes/auth.js';
import { dataRoutes } from './routes/data.js';
import { datasetUploadRoutes } from './routes/dataset-upload.js';
import { exportRoutes } from './routes/export.js';
import { jobRoutes } from './routes/jobs.js';
import { maskRoutes } from './routes/masks.js';
import { modelRoutes } from './routes/models.js';
import { viewerRoutes } from './routes/viewer.js';
import { VolumeSlices } from './volume-slices.js';
import { dicomwebRoutes } from './routes/dicomweb.js';
import { registerDicomwebHandlers } from '../queue/handlers/dicomweb.js';
import { deploymentSecretBox, type SecretBox } from '../store/secret-box.js';


/** Default settings (see {@link ServerSettings}). */
export const DEFAULT_SETTINGS: ServerSettings = {
  maxUploadBytes: 1024 * 2 ** 20,
  maxJsonSaveBytes: 8 * 2 ** 20,
  sessionTtlMs: 12 * 3600_000,
  secureCookies: false,
  loginMaxAttempts: 10,
  loginWindowMs: 15 * 60_000,
  uidSalt: '',
  tmpDir: join(tmpdir(), 'medmask-uploads'),
  scrypt: { ...SCRYPT_DEFAULTS },
  maxVoxels: DEFAULT_MAX_VOXELS,
  decodeTimeoutMs: 60_000,
  decodeWorkers: 2,
  fourEyesReview: false,
};

/** Options for {@link createServer}. */
export interface CreateServerOptions {
  store: Store;
  blobs: BlobStore;
  queue: JobQueue;
  /** Job types (default: the built-in ones). */
  handlers?: JobHandlerRegistry;
  settings?: Partial<ServerSettings>;
  /** Run jobs in this process (default: true for the in-process queue, false for BullMQ). */
  runJobs?: boolean;
  /**
   * Where this server runs its jobs (queue/job-process.ts): in a child process that opens the same
   * database and blob store (never on the server's event loop), or `false`: on the event loop.
   * Default: a child process when the store is an SQLite file (not `:memory:`) and no in-code
   * `handlers` were given (a child cannot see those); `medmask serve` always passes it.
   */
  jobProcess?: Omit<JobProcessOptions, 'workDir' | 'uidSalt'> | false;
  /** Scratch folder for jobs run in this process (default: tmpDir/jobs). */
  workDir?: string;
  /** Concurrent jobs in this process (default 1). */
  jobConcurrency?: number;
  /**
   * Compare database and queue every this many ms and repair the difference (queue/reconcile.ts;
   * default 30000; 0: only at start).
   */
  reconcileMs?: number;
  /** A running job untouched this long with no queue entry has lost its worker (default 60000). */
  staleMs?: number;
  /** Lines about reconciliation and database outages (default: the fastify logger at warn). */
  say?: (line: string) => void;
  /** Archive credentials at rest (default: a key for this process only; `medmask serve` gives the deployment's). */
  secrets?: SecretBox;
  /** fastify's logger option (default off). */
  logger?: FastifyServerOptions['logger'];
  /** Reverse proxies (addresses or CIDR ranges) whose X-Forwarded-For is believed (default: none). */
  trustProxy?: string[];
}

/**
 * Build the medmask API server.
 * @returns the fastify app (not listening yet: call `app.listen` or use `app.inject`)
 * @example
 * const store = await openStore(':memory:');
 * const app = await createServer({ store, blobs: new FsBlobStore('blobs'), queue: new InProcessQueue() });
 * const res = await app.inject({ url: '/health' });
 */
export async function createServer(o: CreateServerOptions): Promise<FastifyInstance> {
  const settings: ServerSettings = { ...DEFAULT_SETTINGS, ...o.settings };
  const secrets = o.secrets ?? (await deploymentSecretBox(o.store.db));
  const ctx: ServerContext = { store: o.store, blobs: o.blobs, queue: o.queue, handlers: registerDicomwebHandlers(o.handlers ?? createDefaultHandlers(), { uidSalt: settings.uidSalt, secrets }), settings, secrets };
  if (settings.decodeWorkers > 0) ctx.decoder = new DecodePool({ size: settings.decodeWorkers, timeoutMs: settings.decodeTimeoutMs });
  ctx.slices = new VolumeSlices(settings.sliceDir ?? join(settings.tmpDir, 'volume-slices'));
  const app = Fastify({
    logger: o.logger ?? false,
    // Behind reverse proxies: req.ip is the client named in X-Forwarded-For, only when it comes from these.
    ...(o.trustProxy?.length ? { trustProxy: o.trustProxy } : {}),
    bodyLimit: 2 * 2 ** 20,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true, allErrors: false } },
  });
  // Before any plugin: error handlers are inherited by plugins registered after them.
  installErrorHandlers(app, settings.maxUploadBytes);
  app.addHook('onClose', async () => ctx.decoder?.close());
  app.addHook('onClose', async () => ctx.slices?.close());
  installSecurityHeaders(app, { hsts: settings.secureCookies });
  await app.register(cookie);
  await app.register(multipart, { limits: { fileSize: settings.maxUploadBytes } });
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'medmask API', version: MEDMASK_VERSION, description: 'Images, labels, models, jobs, versioned masks and review. Log in with POST /api/auth/login (cookie + X-CSRF-Token on writes) or send "Authorization: Bearer <API token>". Permissions per role: docs/server.md.' },
      components: { securitySchemes: { session: { type: 'apiKey', in: 'cookie', name: SESSION_COOKIE }, bearer: { type: 'http', scheme: 'bearer' } } },
      tags: ['auth', 'users', 'data', 'images', 'labels', 'models', 'jobs', 'review', 'masks', 'export', 'pacs', 'admin', 'health'].map((name) => ({ name })),
    },
    // Each operation's description says which permission it needs (and so which roles may call it).
    transform: ({ schema, url, route }) => {
      const perm = routePermission(String(route.method), route.config as { permission?: Permission } | undefined);
      const who = perm === 'public' ? 'no login needed' : `roles: ${ROLES.filter((r) => can(r, perm)).join(', ')}`;
      const note = `Permission: \`${perm}\` (${who}).`;
      return { schema: schema ? { ...schema, description: schema.description ? `${schema.description}\n\n${note}` : note } : schema, url };
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  installAuth(app, ctx);
  installAudit(app, o.store.db);
  adminRoutes(app, ctx);
  authRoutes(app, ctx);
  dataRoutes(app, ctx);
  datasetUploadRoutes(app, ctx);
  maskRoutes(app, ctx);
  jobRoutes(app, ctx);
  modelRoutes(app, ctx);
  exportRoutes(app, ctx);
  dicomwebRoutes(app, ctx); // PACS: DICOMweb archives, imports, DICOM SEG pushes (docs/pacs.md)
  viewerRoutes(app, ctx); // review UI: slice streaming, diff saves, flagged regions, and the web app at /

  const say = o.say ?? ((line: string) => app.log.warn(line));
  o.queue.routeBy?.(laneRoute(ctx.handlers)); // capability lanes (queue/capabilities.ts)
  if (o.runJobs ?? o.queue.kind === 'in-process') {
    let own: Promise<Capability[]> | undefined;
    ctx.ownCapabilities = () => (own ??= detectCapabilities());
    const workDir = o.workDir ?? join(settings.tmpDir, 'jobs');
    const sqliteFile = o.store.dialect === 'sqlite' && o.store.description !== 'sqlite::memory:' ? o.store.description : undefined;
    const where = o.jobProcess ?? (sqliteFile && !o.handlers ? { db: sqliteFile, blobs: o.blobs.description } : false);
    if (where) {
      const jp = new JobProcess({ ...where, workDir, uidSalt: settings.uidSalt, secretKey: secrets.keyForOwnChild() }, { store: o.store, queue: o.queue, say });
      app.addHook('onClose', () => jp.close());
      await o.queue.consume(jp.consumer, { concurrency: o.jobConcurrency ?? 1 });
    } else {
      await o.queue.consume(createJobProcessor({ store: o.store, blobs: o.blobs, handlers: ctx.handlers, queue: o.queue, workDir, say }), { concurrency: o.jobConcurrency ?? 1 });
    }
  }
  if (o.queue.kind === 'in-process') {
    // Nothing of an earlier process survives in memory: its unfinished jobs run again (handlers are idempotent).
    for (const j of await unfinishedJobs(o.store.db)) await o.queue.enqueue({ jobId: j.id, type: j.type });
  } else {
    await reconcileOnce({ store: o.store, queue: o.queue, staleMs: o.staleMs ?? 60_000, log: say, handlers: ctx.handlers });
  }
  const reconcileMs = o.reconcileMs ?? 30_000;
  if (reconcileMs > 0) {
    const r = startReconciler({ store: o.store, queue: o.queue, staleMs: o.staleMs ?? 60_000, log: say, intervalMs: reconcileMs, handlers: ctx.handlers, ...(ctx.ownCapabilities && o.queue.kind === 'in-process' ? { ownCapabilities: ctx.ownCapabilities } : {}) });
    app.addHook('onClose', () => r.stop());
  }
  await app.ready();
  return app;
}
