/**
 * Running medmask as a service: `medmask serve` (API + in-process jobs by default) and
 * `medmask worker` (BullMQ jobs), from a {@link ServiceConfig}, with graceful shutdown: stop
 * accepting requests and jobs, let running jobs finish for `shutdownGraceMs`, re-queue the rest.
 * @module
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { MedmaskError } from '../core/errors.js';
import { deploymentHandlers } from '../queue/handler-modules.js';
import { announceWorker, detectCapabilities, laneRoute, type Capability, type WorkerPresence } from '../queue/capabilities.js';
import { JOB_FORMAT, type JobHandlerRegistry } from '../queue/handlers.js';
import { probeRedis } from '../queue/bullmq.js';
import { createQueue } from '../queue/index.js';
import type { JobQueue } from '../queue/queue.js';
import { createJobProcessor, defaultWorkerId } from '../queue/runner.js';
import { openDeploymentBlobs, deploymentUidSalt } from '../store/deployment-open.js';
import { openStore, type Store } from '../store/db.js';
import { removeDeadEntries } from '../store/dead-entries.js';
import { registerDemoModels } from '../runtime/model-registry.js';
import { createServer } from './app.js';
import type { ServiceConfig } from './config.js';
import { createUser } from './routes/auth.js';
import { generatePassword, SCRYPT_DEFAULTS } from './passwords.js';
import { sealClearSources } from '../store/dicomweb.js';
import { deploymentSecretBox, type SecretBox } from '../store/secret-box.js';
export { loadHandlerModules } from '../queue/handler-modules.js';

/** A running service; `stop()` shuts it down gracefully. */
export interface RunningService {
  store: Store;
  queue: JobQueue;
  app?: FastifyInstance;
  /** The address the server listens on (serve only). */
  url?: string;
  stop(): Promise<void>;
}

/** Remove `<kind>-<pid>-…` and `…-<pid>` entries under `dir` whose process is gone (left by a crash); others stay. */
export function removeStaleTemp(dir: string): Promise<number> {
  return removeDeadEntries(dir, (name) => Number(/^[a-z]+-(\d+)-/.exec(name)?.[1] ?? /-(\d+)$/.exec(name)?.[1]) || null, { unnamed: 'keep' });
}

/** How long start-up waits for the database or Redis before it gives up (exit 6). */
export const START_TIMEOUT_MS = 10_000;

/** Reject with an ENVIRONMENT error when `p` takes longer than `ms`. */
function within<T>(p: Promise<T>, ms: number, what: string, hint: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<never>((_, rej) => {
      t = setTimeout(() => rej(new MedmaskError('ENVIRONMENT', `${what} does not answer within ${ms / 1000} s`, { hint })), ms);
      t.unref();
    }),
  ]);
}

async function common(cfg: ServiceConfig, say: (line: string) => void, role: 'serve' | 'worker') {
  // Everything the server and workers create (database, blobs, temporary uploads, the admin
  // password file) is for this account only: files 0600, folders 0700.
  process.umask(0o077);
  mkdirSync(cfg.dataDir, { recursive: true, mode: 0o700 });
  await removeStaleTemp(join(cfg.dataDir, 'tmp'));
  await removeStaleTemp(join(cfg.dataDir, 'work'));
  // Unreachable database or Redis: a one-line ENVIRONMENT error (exit 6) well within 15 s, and
  // nothing left open that would keep the process alive.
  const store = await within(openStore(cfg.db), START_TIMEOUT_MS, `the database ${cfg.db.replace(/\/\/[^@/]*@/, '//…@')}`, 'check --db, that the database server runs and accepts this user');
  let blobs: Awaited<ReturnType<typeof openDeploymentBlobs>>;
  let uidSalt: string;
  let secrets: SecretBox;
  try {
    // One deployment, one blob store: refuse (exit 6) a store that is not the one the database records.
    blobs = await openDeploymentBlobs(store, cfg.blobs);
    await blobs.cleanup();
    // One deployment, one UID salt (kept in the database; a configured one must agree with it).
    uidSalt = await deploymentUidSalt(store.db, { configured: cfg.uidSalt, dataDir: cfg.dataDir });
    // One deployment, one secret key (archive credentials at rest); rows from before are sealed now.
    secrets = await deploymentSecretBox(store.db, { configured: cfg.secretKey, dataDir: cfg.dataDir, create: role === 'serve' });
    const sealed = secrets.usable ? await sealClearSources(store.db, secrets) : 0;
    if (sealed) say(`encrypted the stored credentials of ${sealed} DICOMweb source(s) with the deployment's secret key`);
    if (!secrets.usable) say('no MEDMASK_SECRET_KEY: DICOMweb archive requests will fail in this process (docs/pacs.md)');
  } catch (e) {
    await store.close();
    throw e;
  }
  const handlers = await deploymentHandlers(cfg.handlers, { uidSalt, secrets });
  try {
    if (/^rediss?:\/\//.test(cfg.queue)) await probeRedis(cfg.queue);
  } catch (e) {
    await store.close();
    throw e;
  }
  const queue = createQueue(cfg.queue, { name: cfg.queueName, lockDurationMs: cfg.lockMs, attempts: cfg.jobAttempts, maxStalledCount: cfg.maxStalled, log: say });
  queue.routeBy?.(laneRoute(handlers)); // jobs that need e.g. torch travel on a lane of their own
  return { store, blobs, handlers, queue, uidSalt, secrets };
}

/**
 * Start `medmask serve`.
 * @param say - where to print the start-up lines (and the first admin password, once)
 */
export async function startServe(cfg: ServiceConfig, say: (line: string) => void): Promise<RunningService> {
  const { store, blobs, handlers, queue, uidSalt, secrets } = await common(cfg, say, 'serve');
  const users = await store.db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  if (Number(users.n) === 0) {
    const fromEnv = process.env.MEDMASK_ADMIN_PASSWORD;
    if (fromEnv !== undefined && fromEnv.length < 10) throw new MedmaskError('USAGE', 'MEDMASK_ADMIN_PASSWORD must have at least 10 characters');
    const password = fromEnv ?? generatePassword();
    await createUser({ store, settings: { scrypt: SCRYPT_DEFAULTS } as never }, { username: 'admin', password, role: 'admin' });
    if (fromEnv) say('created user "admin" with the password from MEDMASK_ADMIN_PASSWORD');
    else {
      // Never on stdout (which goes into log files): once into a file only this account can read.
      const file = join(cfg.dataDir, 'initial-admin-password');
      writeFileSync(file, `${password}\n`, { mode: 0o600, flag: 'w' });
      chmodSync(file, 0o600);
      say(`created user "admin"; its password is in ${file} (mode 0600): read it, log in, change it with POST /api/auth/password, then delete the file`);
    }
  }
  if (cfg.demoModels) {
    const demo = await registerDemoModels(store, blobs);
    if (demo.length) say(`registered the bundled demo models as version 1: ${demo.join(', ')} (jobs name them e.g. "${demo[0]}@1"; MEDMASK_DEMO_MODELS=0 to skip)`);
  }
  const app = await createServer({
    store,
    blobs,
    queue,
    handlers,
    secrets,
    runJobs: queue.kind === 'in-process',
    // In-process queue: jobs run in a child process on the same database and blobs (never on the
    // event loop that answers requests); an in-memory database cannot be shared, so it keeps them here.
    jobProcess: cfg.db.replace(/^sqlite:/, '') === ':memory:' ? false : { db: cfg.db, blobs: cfg.blobs, handlerModules: cfg.handlers },
    jobConcurrency: cfg.jobConcurrency,
    reconcileMs: cfg.reconcileMs,
    staleMs: cfg.staleMs,
    say,
    workDir: join(cfg.dataDir, 'work'),
    settings: { maxUploadBytes: cfg.maxUploadMb * 2 ** 20, maxVoxels: cfg.maxVoxels, decodeTimeoutMs: cfg.decodeTimeoutS * 1000, fourEyesReview: cfg.fourEyesReview, secureCookies: cfg.secureCookies, uidSalt, tmpDir: join(cfg.dataDir, 'tmp'), sliceDir: join(cfg.dataDir, 'slices') },
    ...(cfg.trustProxy.length ? { trustProxy: cfg.trustProxy } : {}),
    logger: cfg.logLevel === 'silent' ? false : { level: cfg.logLevel },
  });
  let address: string;
  try {
    address = await app.listen({ host: cfg.host, port: cfg.port });
  } catch (e) {
    await queue.close(0);
    await app.close();
    await store.close();
    throw new MedmaskError('ENVIRONMENT', `cannot listen on ${cfg.host}:${cfg.port}: ${(e as Error).message}`, { cause: e, hint: 'choose another --port, or stop what uses it' });
  }
  say(`listening on ${address} (database ${store.description}, queue ${queue.kind === 'in-process' ? 'in-process' : cfg.queue}, blobs ${cfg.blobs}); API docs at ${address}/docs`);
  let stopping: Promise<void> | undefined;
  return {
    store,
    queue,
    app,
    url: address,
    stop() {
      stopping ??= (async () => {
        // Running jobs first get their grace period (the job process stops with the app).
        await queue.close(cfg.shutdownGraceMs);
        await app.close();
        await store.close();
      })();
      return stopping;
    },
  };
}

/** Start `medmask worker` (BullMQ only). */
export async function startWorker(cfg: ServiceConfig, say: (line: string) => void): Promise<RunningService> {
  if (!/^rediss?:\/\//.test(cfg.queue)) {
    throw new MedmaskError('USAGE', 'medmask worker needs a Redis queue (--queue redis://host:6379): with the in-process queue, jobs run inside medmask serve', { hint: 'start the server and the workers with the same --queue, --db and --blobs' });
  }
  // The capability probe (python3 importing torch: seconds) runs while the rest starts.
  const detected = detectCapabilities();
  detected.catch(() => {});
  const { store, blobs, handlers, queue } = await common(cfg, say, 'worker');
  const workerId = defaultWorkerId();
  let presence: WorkerPresence;
  try {
    presence = await announceWorker(store, { kind: 'worker', id: workerId, handlers, capabilities: await detected, heartbeatMs: Math.max(250, Math.min(5000, Math.floor(cfg.staleMs / 4))) });
  } catch (e) {
    await queue.close(0);
    await store.close();
    throw e;
  }
  // Capability lanes this worker serves: those of job types whose requirements it meets.
  const lanes = laneRoute(handlers).lanes.filter((lane) => lane.split('+').every((c) => presence.capabilities.includes(c as Capability)));
  await queue.consume(
    createJobProcessor({
      store,
      blobs,
      handlers,
      queue,
      workerId,
      workDir: join(cfg.dataDir, 'work'),
      heartbeatMs: Math.max(250, Math.min(5000, Math.floor(cfg.staleMs / 4))),
      concurrency: cfg.jobConcurrency,
      shareCores: true,
      log: (e) => say(`job ${e.jobId}${e.task ? ` task ${e.task}` : ''} ${e.event} (attempt ${e.attempt})${e.note ? `: ${e.note}` : ''}${e.error ? `: ${e.error}` : ''}`),
      say,
    }),
    { concurrency: cfg.jobConcurrency, lanes },
  );
  say(`worker ${workerId} ready: job types ${handlers.names().join(', ')}; job format ${JOB_FORMAT}; capabilities ${presence.capabilities.join(', ') || 'none'}; database ${store.description}; queue ${cfg.queue}`);
  let stopping: Promise<void> | undefined;
  return {
    store,
    queue,
    stop() {
      stopping ??= (async () => {
        await queue.close(cfg.shutdownGraceMs);
        await presence.stop();
        await store.close();
      })();
      return stopping;
    },
  };
}

/** Resolve when SIGINT or SIGTERM arrives (then stop the service). */
export function untilSignal(svc: RunningService, say: (line: string) => void): Promise<void> {
  return new Promise((res) => {
    const onSignal = (sig: string) => {
      say(`${sig}: shutting down (running jobs get the grace period, then go back to the queue)`);
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
      void svc.stop().then(res, res);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
