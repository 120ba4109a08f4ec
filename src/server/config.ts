/**
 * Configuration of `medmask serve` and `medmask worker`: defaults < a JSON file (`--config` or
 * MEDMASK_CONFIG) < environment variables (MEDMASK_*) < command-line flags. Every value is
 * validated; an error names the setting, where it came from, the bad value and what is expected.
 * @module
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { MedmaskError } from '../core/errors.js';
import { normalizeBlobSpec } from '../store/blob-store-open.js';

/** The resolved configuration. */
export interface ServiceConfig {
  /** Folder for the SQLite file, blobs, temporary files (default ./medmask-data). */
  dataDir: string;
  /** Database URL or SQLite path (default <dataDir>/medmask.sqlite). */
  db: string;
  /** Blob store: a folder (default <dataDir>/blobs) or s3://bucket/prefix. */
  blobs: string;
  /** "inline" (in-process) or redis://host:port. */
  queue: string;
  queueName: string;
  host: string;
  port: number;
  maxUploadMb: number;
  /** Cap on the voxels × components an uploaded image may declare. */
  maxVoxels: number;
  /** Time budget of one upload's decode, seconds. */
  decodeTimeoutS: number;
  secureCookies: boolean;
  /** A reviewer may not accept a mask version they wrote (four-eyes review). */
  fourEyesReview: boolean;
  /** Reverse proxies (addresses or CIDR ranges) whose X-Forwarded-For names the client (default none). */
  trustProxy: string[];
  /** Salt for DICOM UID remapping (default: made once and kept in the database, shared by the deployment). */
  uidSalt: string;
  /** Key for archive credentials at rest (default: `<dataDir>/secret-key`; see store/secret-box.ts). */
  secretKey: string;
  jobConcurrency: number;
  /** BullMQ lock duration: how soon a dead worker's job is taken over. */
  lockMs: number;
  /** How long shutdown waits for running jobs before re-queueing them. */
  shutdownGraceMs: number;
  /** Tries per job or task (BullMQ and in-process). */
  jobAttempts: number;
  /** How many times a job may stall (its worker died) before BullMQ fails it. */
  maxStalled: number;
  /** The server compares database and queue this often, ms (0: only at start). */
  reconcileMs: number;
  /** A running job untouched this long with nothing on the queue has lost its worker, ms. */
  staleMs: number;
  logLevel: string;
  /** Extra job handler modules (each default-exports `(registry) => void`). */
  handlers: string[];
  /** Register the bundled demo models (models/demo) on start when their names are not registered yet (default true). */
  demoModels: boolean;
}

interface Field {
  env: string;
  kind: 'string' | 'int' | 'bool' | 'list';
  min?: number;
  max?: number;
  oneOf?: string[];
  help: string;
}

/** Every setting, its environment variable and its type (the docs table comes from here). */
export const CONFIG_FIELDS: Record<keyof ServiceConfig, Field> = {
  dataDir: { env: 'MEDMASK_DATA_DIR', kind: 'string', help: 'folder for the SQLite file, blobs and temporary files' },
  db: { env: 'MEDMASK_DB', kind: 'string', help: 'postgres://user@host:port/db, or an SQLite file path' },
  blobs: { env: 'MEDMASK_BLOBS', kind: 'string', help: 'blob store shared by server and workers: a folder (local or network mount) or s3://bucket/prefix (docs/blob-store.md)' },
  queue: { env: 'MEDMASK_QUEUE', kind: 'string', help: '"inline" (jobs run in the server) or redis://host:port (BullMQ)' },
  queueName: { env: 'MEDMASK_QUEUE_NAME', kind: 'string', help: 'BullMQ queue name' },
  host: { env: 'MEDMASK_HOST', kind: 'string', help: 'address to listen on' },
  port: { env: 'MEDMASK_PORT', kind: 'int', min: 0, max: 65535, help: 'TCP port' },
  maxUploadMb: { env: 'MEDMASK_MAX_UPLOAD_MB', kind: 'int', min: 1, max: 1_000_000, help: 'largest upload (all files of one request together), MiB' },
  maxVoxels: { env: 'MEDMASK_MAX_VOXELS', kind: 'int', min: 1, max: 2 ** 40, help: 'largest image an upload may declare, in voxels × components (checked before decoding; default 2147483648, a 1024×1024×2048 CT)' },
  decodeTimeoutS: { env: 'MEDMASK_DECODE_TIMEOUT_S', kind: 'int', min: 1, max: 3600, help: 'time budget of one upload\'s decode, seconds (past it: 413)' },
  secureCookies: { env: 'MEDMASK_SECURE_COOKIES', kind: 'bool', help: 'mark session cookies Secure (behind HTTPS)' },
  fourEyesReview: { env: 'MEDMASK_FOUR_EYES_REVIEW', kind: 'bool', help: 'four-eyes review: a reviewer may not accept a mask version they wrote themselves (default false)' },
  trustProxy: { env: 'MEDMASK_TRUST_PROXY', kind: 'list', help: 'reverse proxies (addresses or CIDR ranges, comma-separated) whose X-Forwarded-For names the client — for the per-address login limit and the audit log' },
  uidSalt: { env: 'MEDMASK_UID_SALT', kind: 'string', help: 'secret salt for DICOM UID remapping' },
  secretKey: { env: 'MEDMASK_SECRET_KEY', kind: 'string', help: 'key that encrypts archive credentials at rest (64 hex digits, e.g. openssl rand -hex 32); required, the same, for every process when several share a database; default: <dataDir>/secret-key, made on first start (docs/pacs.md)' },
  jobConcurrency: { env: 'MEDMASK_JOB_CONCURRENCY', kind: 'int', min: 1, max: 64, help: 'jobs run at once per process' },
  lockMs: { env: 'MEDMASK_LOCK_MS', kind: 'int', min: 500, max: 3_600_000, help: 'BullMQ job lock, ms (a dead worker\'s job is taken over after this)' },
  shutdownGraceMs: { env: 'MEDMASK_SHUTDOWN_GRACE_MS', kind: 'int', min: 0, max: 3_600_000, help: 'how long shutdown waits for running jobs, ms' },
  jobAttempts: { env: 'MEDMASK_JOB_ATTEMPTS', kind: 'int', min: 1, max: 100, help: 'tries per job or per case task before it is recorded as failed' },
  maxStalled: { env: 'MEDMASK_MAX_STALLED', kind: 'int', min: 0, max: 1000, help: 'how many times a job may lose its worker (lock lapsed) before BullMQ fails it; the reconciler then marks it failed, to be retried' },
  reconcileMs: { env: 'MEDMASK_RECONCILE_MS', kind: 'int', min: 0, max: 86_400_000, help: 'how often the server compares database and queue (re-enqueues lost jobs, fails jobs whose worker died), ms; 0 = only at start' },
  staleMs: { env: 'MEDMASK_STALE_MS', kind: 'int', min: 1000, max: 86_400_000, help: 'a running job with no sign of life this long and nothing on the queue has lost its worker, ms' },
  logLevel: { env: 'MEDMASK_LOG_LEVEL', kind: 'string', oneOf: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], help: 'log level' },
  handlers: { env: 'MEDMASK_HANDLERS', kind: 'list', help: 'extra job handler modules, comma-separated' },
  demoModels: { env: 'MEDMASK_DEMO_MODELS', kind: 'bool', help: 'on start, register the bundled demo models (models/demo) whose names the registry does not hold yet, as version 1' },
};

function parse(key: keyof ServiceConfig, raw: unknown, from: string): unknown {
  const f = CONFIG_FIELDS[key];
  const bad = (expect: string): never => {
    throw new MedmaskError('USAGE', `${key} from ${from} is ${JSON.stringify(raw)}, expected ${expect}`, { hint: `${f.help}; see docs/server.md` });
  };
  switch (f.kind) {
    case 'int': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^-?\d+$/.test(raw.trim()) ? Number(raw) : NaN;
      if (!Number.isInteger(n) || n < (f.min ?? -Infinity) || n > (f.max ?? Infinity)) bad(`a whole number from ${f.min} to ${f.max}`);
      return n;
    }
    case 'bool': {
      if (typeof raw === 'boolean') return raw;
      const s = String(raw).toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(s)) return true;
      if (['0', 'false', 'no', 'off', ''].includes(s)) return false;
      return bad('true or false');
    }
    case 'list':
      if (Array.isArray(raw)) return raw.map(String);
      return String(raw).split(',').map((s) => s.trim()).filter(Boolean);
    default: {
      if (typeof raw !== 'string' || !raw) bad('a non-empty string');
      if (f.oneOf && !f.oneOf.includes(raw as string)) bad(`one of ${f.oneOf.join(', ')}`);
      return raw;
    }
  }
}

/**
 * Resolve the configuration.
 * @param flags - values from the command line (undefined = not given)
 * @param env - environment (default process.env)
 * @returns the validated configuration
 * @example
 * const cfg = loadConfig({ port: '9000' });
 */
export function loadConfig(flags: Partial<Record<keyof ServiceConfig | 'config', unknown>>, env: NodeJS.ProcessEnv = process.env): ServiceConfig {
  const out: Partial<Record<keyof ServiceConfig, unknown>> = {};
  const file = (flags.config as string | undefined) ?? env.MEDMASK_CONFIG;
  if (file) {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      throw new MedmaskError('USAGE', `config file ${file} cannot be read as JSON: ${(e as Error).message}`, { hint: 'a JSON object with keys such as "port", "db", "queue" (docs/server.md)' });
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new MedmaskError('USAGE', `config file ${file} must hold a JSON object`);
    for (const [k, v] of Object.entries(json)) {
      if (!(k in CONFIG_FIELDS)) {
        const near = Object.keys(CONFIG_FIELDS).find((x) => x.toLowerCase() === k.toLowerCase().replace(/[-_]/g, ''));
        throw new MedmaskError('USAGE', `config file ${file}: unknown setting "${k}"${near ? ` (did you mean "${near}"?)` : ''}`, { hint: `known settings: ${Object.keys(CONFIG_FIELDS).join(', ')}` });
      }
      out[k as keyof ServiceConfig] = parse(k as keyof ServiceConfig, v, `config file ${file}`);
    }
  }
  for (const [k, f] of Object.entries(CONFIG_FIELDS) as [keyof ServiceConfig, Field][]) {
    if (env[f.env] !== undefined && env[f.env] !== '') out[k] = parse(k, env[f.env], `environment variable ${f.env}`);
    if (flags[k] !== undefined) out[k] = parse(k, flags[k], `the command line`);
  }
  const dataDir = resolve((out.dataDir as string | undefined) ?? 'medmask-data');
  return {
    dataDir,
    db: (out.db as string | undefined) ?? join(dataDir, 'medmask.sqlite'),
    blobs: normalizeBlobSpec((out.blobs as string | undefined) ?? join(dataDir, 'blobs')),
    queue: (out.queue as string | undefined) ?? 'inline',
    queueName: (out.queueName as string | undefined) ?? 'medmask-jobs',
    host: (out.host as string | undefined) ?? '127.0.0.1',
    port: (out.port as number | undefined) ?? 8080,
    maxUploadMb: (out.maxUploadMb as number | undefined) ?? 1024,
    maxVoxels: (out.maxVoxels as number | undefined) ?? 1024 * 1024 * 2048,
    decodeTimeoutS: (out.decodeTimeoutS as number | undefined) ?? 60,
    secureCookies: (out.secureCookies as boolean | undefined) ?? false,
    fourEyesReview: (out.fourEyesReview as boolean | undefined) ?? false,
    trustProxy: (out.trustProxy as string[] | undefined) ?? [],
    uidSalt: (out.uidSalt as string | undefined) ?? '',
    secretKey: (out.secretKey as string | undefined) ?? '',
    jobConcurrency: (out.jobConcurrency as number | undefined) ?? 1,
    lockMs: (out.lockMs as number | undefined) ?? 30_000,
    shutdownGraceMs: (out.shutdownGraceMs as number | undefined) ?? 30_000,
    jobAttempts: (out.jobAttempts as number | undefined) ?? 3,
    maxStalled: (out.maxStalled as number | undefined) ?? 5,
    reconcileMs: (out.reconcileMs as number | undefined) ?? 30_000,
    staleMs: (out.staleMs as number | undefined) ?? 60_000,
    logLevel: (out.logLevel as string | undefined) ?? 'info',
    handlers: (out.handlers as string[] | undefined) ?? [],
    demoModels: (out.demoModels as boolean | undefined) ?? true,
  };
}

/** Markdown table of the settings (for docs/server.md). */
export function configTableMarkdown(): string {
  return ['| setting (config file) | environment | what |', '| --- | --- | --- |', ...Object.entries(CONFIG_FIELDS).map(([k, f]) => `| \`${k}\` | \`${f.env}\` | ${f.help} |`)].join('\n');
}
