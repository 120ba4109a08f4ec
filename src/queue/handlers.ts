/**
 * Job handlers by name: the runner looks a job's type up here. A handler validates its input (at
 * submit time, so bad input is a 400, not a failed job) and runs it with a {@link JobContext}.
 * Handlers must be idempotent: a retried or redelivered job runs again from the start and must
 * write nothing twice — use the store's unique keys (`recordPrediction`, `addJobVersion`,
 * `insertImage` all are).
 * @module
 */
import { MedmaskError } from '../core/errors.js';
import type { BlobStore } from '../store/blob-store.js';
import type { Store } from '../store/db.js';

/** What a running job is given. */
export interface JobContext {
  jobId: string;
  type: string;
  /** The validated input, as submitted. */
  input: unknown;
  /** 1 for the first try. */
  attempt: number;
  store: Store;
  blobs: BlobStore;
  /** A scratch folder for this job (removed after it ends). */
  workDir: string;
  /** The user who submitted the job, when known. */
  userId: string | null;
  /** Report progress 0…1 with a short message (throttled by the runner). */
  progress(fraction: number, message?: string): Promise<void>;
  /** Aborted when the worker shuts down; long handlers should check it between steps. */
  signal: AbortSignal;
  /**
   * Threads a model inference of this job or task should use: this machine's cores shared among
   * the tasks that may run on it at once (every live process on the host × its concurrency), so
   * that two workers on one machine do not both size their thread pools to the whole machine.
   * Undefined: the library's default (all cores).
   */
  threads?: number;
}

/** What the checks at submission may read. */
export interface SubmitContext {
  store: Store;
  blobs: BlobStore;
}

/** One task of a job that fans out, as planned. */
export interface PlannedTask {
  /** Unique within the job (an image id, a chunk name); at most 200 characters. */
  key: string;
  /** What the task works on (JSON). */
  input: unknown;
}

/** What a task is given: the job's context plus the task. */
export interface TaskContext extends JobContext {
  task: PlannedTask;
}

/** A settled task, as the reduce step sees it. */
export interface SettledTask {
  key: string;
  input: unknown;
  status: 'done' | 'failed';
  /** The task's result (done) or null. */
  result: unknown;
  /** Why it failed (failed). */
  error: string | null;
}

/**
 * A job split into tasks (map → reduce): `plan` lists the tasks (cases or chunks) once, each task
 * runs on whichever worker is free (`runTask`, idempotent: a retried task runs again from its
 * start), and `reduce` runs once every task is settled — done, or failed after its tries — with
 * all their results; its result is the job's. A job with failed tasks ends `partial`.
 */
export interface FanOut {
  plan(ctx: JobContext): Promise<PlannedTask[]>;
  runTask(ctx: TaskContext): Promise<unknown>;
  reduce(ctx: JobContext, tasks: readonly SettledTask[]): Promise<unknown>;
}

/** A kind of job: either `run` (one unit of work) or `fanOut` (tasks on any worker, then a reduce). */
export interface JobHandler {
  /** One line for the API docs and error messages. */
  description: string;
  /** Throw a USAGE MedmaskError naming the bad field; return the normalised input. */
  validate(input: unknown): unknown;
  /**
   * Optional submit-time step that needs the store, after `validate`: e.g. pin model references to
   * exact registered versions (src/runtime/model-registry.ts). Returns the input to store.
   */
  resolve?(input: unknown, ctx: { store: Store }): Promise<unknown>;
  /**
   * Checks against the database at submission (data set exists and is not empty, labels are the
   * models' classes, …): throw the MedmaskError the job would fail with, so that a job that can
   * only fail is answered 400 instead of being queued.
   */
  check?(input: unknown, ctx: SubmitContext): Promise<void>;
  /** Run the job; the result is stored as JSON on the job row. */
  run?(ctx: JobContext): Promise<unknown>;
  /** Run the job as tasks (see {@link FanOut}); takes precedence over `run`. */
  fanOut?: FanOut;
  /**
   * What a process needs to run this job (queue/capabilities.ts), e.g. `['torch']`: such jobs go
   * only to processes that have it, and a submission with none alive is refused (ENVIRONMENT).
   */
  requires?: readonly 'torch'[];
}

/**
 * The job format this version writes and understands: 1 = one unit of work, 2 = jobs that fan
 * out into tasks. A worker refuses a job of a newer format with a clear error (upgrade it).
 */
export const JOB_FORMAT = 2;

/** Job types that exist in the design but whose pipelines have not landed yet. */
export const PLANNED_JOB_TYPES: Readonly<Record<string, string>> = {
};

/**
 * Handlers by name.
 * @example
 * const reg = new JobHandlerRegistry();
 * reg.register('phantoms', phantomsHandler);
 * reg.get('phantoms').validate({ kind: '2d', n: 10, seed: 1 });
 */
export class JobHandlerRegistry {
  private readonly handlers = new Map<string, JobHandler>();

  /** Add (or replace) a handler. */
  register(name: string, handler: JobHandler): this {
    if (!/^[a-z][a-z0-9-]{0,40}$/.test(name)) throw new MedmaskError('USAGE', `job type "${name}" must be lower-case letters, digits and dashes`);
    if (!handler.run && !handler.fanOut) throw new MedmaskError('USAGE', `job type "${name}" has neither run nor fanOut`, { hint: 'a handler runs the job (run) or splits it into tasks (fanOut)' });
    this.handlers.set(name, handler);
    return this;
  }

  has(name: string): boolean {
    return this.handlers.has(name);
  }

  /** Registered names, sorted. */
  names(): string[] {
    return [...this.handlers.keys()].sort();
  }

  /** The handler for `name`, or a USAGE error listing the known types. */
  get(name: string): JobHandler {
    const h = this.handlers.get(name);
    if (h) return h;
    const planned = PLANNED_JOB_TYPES[name];
    if (planned) throw new MedmaskError('USAGE', `job type "${name}" is not available in this version: it arrives with ${planned}`, { hint: `available job types: ${this.names().join(', ')}` });
    throw new MedmaskError('USAGE', `unknown job type "${name}"`, { hint: `available job types: ${this.names().join(', ')}` });
  }

  /** Every handler with its description (for the API). */
  list(): { type: string; description: string }[] {
    return this.names().map((type) => ({ type, description: this.handlers.get(type)!.description }));
  }
}
