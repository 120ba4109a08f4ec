/**
 * Jobs off the server's event loop: with the in-process queue, `medmask serve` runs every job and
 * task message in one child process (job-process-main.ts) that opens the same database and blob
 * store, so that a long atlas or annotate task never delays a slice request. The queue itself (its
 * retries, flows and reduce steps) stays in the server; only the work moves. The child starts on the
 * first message and again after it dies: a child killed or crashed mid-task costs that task one try
 * (recorded on its row with the reason, retried by the queue like any failure) and never the server.
 *
 * Node's `child_process.fork` IPC carries the messages; a worker thread would share the server's
 * process, so an out-of-memory or native crash in a pipeline would still take the server down.
 * @module
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { isMedmaskError, MedmaskError, type ErrorCode } from '../core/errors.js';
import type { Store } from '../store/db.js';
import { failTask } from '../store/job-tasks.js';
import { failJob } from '../store/jobs.js';
import type { Consumer, DeliveryInfo, FlowSpec, JobQueue, QueueMessage } from './queue.js';
import type { RunnerEvent } from './runner.js';
import type { SecretBox } from '../store/secret-box.js';

/** What the job process is started with (everything it needs to open the deployment again). */
export interface JobProcessOptions {
  /** The database URL or SQLite file (not `:memory:`: the child must open the same database). */
  db: string;
  /** The blob store: folder or `s3://bucket/prefix` (credentials from the environment). */
  blobs: string;
  /** Scratch space for jobs and tasks. */
  workDir: string;
  /** `--handlers` plug-in modules (the child loads them as the server did). */
  handlerModules?: readonly string[];
  /** The deployment's UID salt (DICOMweb job types). */
  uidSalt: string;
  /** The server's secret key (hex; from {@link SecretBox.keyForOwnChild}) for archive credentials; null: none. */
  secretKey?: string | null;
  /** How often a running job's row is touched (runner default 5000 ms). */
  heartbeatMs?: number;
}

/** Messages parent → child. */
export type ToChild =
  | { t: 'init'; options: JobProcessOptions }
  | { t: 'run'; id: number; msg: QueueMessage; attempt: number; maxAttempts: number }
  | { t: 'abort'; id: number }
  | { t: 'flow-done'; rid: number; error?: string }
  | { t: 'close' };

/** An error as it crosses the IPC channel. */
export interface WireError {
  message: string;
  code?: ErrorCode;
  hint?: string;
}

/** Messages child → parent. */
export type FromChild =
  | { t: 'hello' }
  | { t: 'ready'; pid: number }
  | { t: 'fatal'; error: WireError }
  | { t: 'done'; id: number }
  | { t: 'failed'; id: number; error: WireError }
  | { t: 'flow'; rid: number; flow: FlowSpec }
  | { t: 'say'; line: string }
  | { t: 'log'; event: RunnerEvent };

/** Serialise an error for the channel. */
export function toWire(e: unknown): WireError {
  if (isMedmaskError(e)) return { message: e.message, code: e.code, ...(e.hint ? { hint: e.hint } : {}) };
  return { message: (e as Error)?.message ?? String(e) };
}

/** Rebuild an error from the channel. */
export function fromWire(w: WireError): Error {
  return w.code ? new MedmaskError(w.code, w.message, w.hint ? { hint: w.hint } : {}) : new Error(w.message);
}

interface Pending {
  msg: QueueMessage;
  info: DeliveryInfo;
  child: ChildProcess;
  settle(err?: Error): void;
}

/** How the server learns about the job process. */
export interface JobProcessHost {
  store: Store;
  /** Where the tasks of a job that fans out are queued (the server's in-process queue). */
  queue: Pick<JobQueue, 'addFlow'>;
  say?: (line: string) => void;
  log?: (event: RunnerEvent) => void;
}

/** The child's entry file, beside this one (`.ts` when run from source through tsx). */
function entry(): { file: string; execArgv: string[] } {
  const fromSource = import.meta.url.endsWith('.ts');
  const file = fileURLToPath(new URL(`./job-process-main.${fromSource ? 'ts' : 'js'}`, import.meta.url));
  // Never the server's own flags (--test, --inspect…): only what loading the entry needs.
  return { file, execArgv: fromSource ? ['--import', import.meta.resolve('tsx')] : [] };
}

/**
 * The server's job process.
 * @example
 * const jp = new JobProcess({ db: 'data/medmask.sqlite', blobs: 'data/blobs', workDir: 'data/work', uidSalt }, { store, queue });
 * await queue.consume(jp.consumer);
 * // … on shutdown, after queue.close(): await jp.close();
 */
export class JobProcess {
  private child: ChildProcess | null = null;
  private starting: Promise<ChildProcess> | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;

  constructor(private readonly options: JobProcessOptions, private readonly host: JobProcessHost) {}

  /** The child's process id while it runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The queue consumer: each message runs in the child. */
  readonly consumer: Consumer = async (msg, info) => {
    if (this.closed) throw new MedmaskError('ENVIRONMENT', 'the job process is closing');
    let child: ChildProcess;
    try {
      child = await this.start();
    } catch (e) {
      // Nothing ran: the rows say why (e.g. a --handlers module that does not load) and the queue retries.
      if (!info.signal.aborted) await this.recordLost(msg, info, `the job process could not start: ${(e as Error).message}`);
      throw e;
    }
    const id = this.nextId++;
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        if (child.connected) child.send({ t: 'abort', id } satisfies ToChild);
      };
      info.signal.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, {
        msg,
        info,
        child,
        settle: (err) => {
          info.signal.removeEventListener('abort', onAbort);
          this.pending.delete(id);
          if (err) reject(err);
          else resolve();
        },
      });
      child.send({ t: 'run', id, msg, attempt: info.attempt, maxAttempts: info.maxAttempts } satisfies ToChild);
    });
  };

  /** Start the child (once; again after it died) and wait until it has opened the deployment. */
  private start(): Promise<ChildProcess> {
    if (this.child) return Promise.resolve(this.child);
    this.starting ??= new Promise<ChildProcess>((resolve, reject) => {
      const { file, execArgv } = entry();
      const child = fork(file, [], { execArgv, serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      let ready = false;
      child.on('message', (m: FromChild) => {
        if (m.t === 'hello') child.send({ t: 'init', options: this.options } satisfies ToChild);
        else if (m.t === 'ready') {
          ready = true;
          this.child = child;
          this.starting = null;
          this.host.say?.(`job process ${m.pid} started (jobs run off the server's event loop)`);
          resolve(child);
        } else if (m.t === 'fatal') reject(fromWire(m.error));
        else this.onMessage(child, m);
      });
      child.on('error', (e) => {
        if (!ready) reject(new MedmaskError('ENVIRONMENT', `cannot start the job process: ${e.message}`, { cause: e }));
      });
      child.once('exit', (code, signal) => {
        if (!ready) {
          this.starting = null;
          reject(new MedmaskError('ENVIRONMENT', `the job process exited while starting (${signal ?? `exit code ${code}`})`, { hint: 'see the lines above for why; the job is tried again' }));
        }
        void this.onExit(child, code, signal);
      });
    });
    return this.starting;
  }

  private onMessage(child: ChildProcess, m: FromChild): void {
    if (m.t === 'done' || m.t === 'failed') this.pending.get(m.id)?.settle(m.t === 'failed' ? fromWire(m.error) : undefined);
    else if (m.t === 'say') this.host.say?.(m.line);
    else if (m.t === 'log') this.host.log?.(m.event);
    else if (m.t === 'flow') {
      this.host.queue.addFlow(m.flow).then(
        () => child.connected && child.send({ t: 'flow-done', rid: m.rid } satisfies ToChild),
        (e: unknown) => child.connected && child.send({ t: 'flow-done', rid: m.rid, error: (e as Error).message } satisfies ToChild),
      );
    }
  }

  /**
   * The child is gone: what it was running failed this try. The rows say so (the runner in the child
   * could not record it) and the queue retries them while tries remain; the next message starts a
   * new child.
   */
  private async onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): Promise<void> {
    if (this.child === child) this.child = null;
    const lost = [...this.pending.values()].filter((p) => p.child === child);
    const how = signal ? `was killed (${signal})` : `exited with code ${code}`;
    if (lost.length && !this.closed) this.host.say?.(`job process ${child.pid} ${how} while running ${lost.length} message(s); they are retried`);
    for (const p of lost) {
      const why = `the job process (pid ${child.pid}) ${how} while running this`;
      if (this.closed || p.info.signal.aborted) {
        p.settle(new Error(why));
        continue;
      }
      await this.recordLost(p.msg, p.info, why);
      p.settle(new Error(why));
    }
  }

  /** Record a try that the child could not record itself (it died, or never started). */
  private async recordLost(msg: QueueMessage, info: DeliveryInfo, why: string): Promise<void> {
    const final = info.attempt >= info.maxAttempts;
    const db = this.host.store.db;
    try {
      if (msg.task !== undefined) await failTask(db, msg.jobId, msg.task, why, final);
      else await failJob(db, msg.jobId, why, final);
    } catch (e) {
      this.host.say?.(`job ${msg.jobId}: the failure was not recorded (${(e as Error).message})`);
    }
    this.host.log?.({ jobId: msg.jobId, ...(msg.task !== undefined ? { task: msg.task } : {}), event: final ? 'failed' : 'retry', attempt: info.attempt, error: why });
  }

  /**
   * Stop the child: it aborts what still runs (close the queue first, which waits its grace period),
   * closes its database connection and exits; killed after `graceMs`.
   */
  async close(graceMs = 5000): Promise<void> {
    this.closed = true;
    const child = this.child ?? (await this.starting?.catch(() => null)) ?? null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    if (child.connected) child.send({ t: 'close' } satisfies ToChild);
    let timer: NodeJS.Timeout | undefined;
    const res = await Promise.race([exited.then(() => 'exited' as const), new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), graceMs)))]);
    clearTimeout(timer);
    if (res === 'timeout') {
      child.kill('SIGKILL');
      await exited;
    }
  }
}
