/**
 * BullMQ on Redis: for `medmask worker` processes on several machines sharing the database, the
 * blob store and Redis. Retries with exponential back-off; a job id is deduplicated while the job
 * waits or runs; a worker that dies (kill -9, power loss) stops renewing its lock, and after
 * `lockDurationMs` another worker's stalled-job check takes the job over.
 * @module
 */
import { Queue, Worker, type Job } from 'bullmq';
import { MedmaskError } from '../core/errors.js';
import type { Consumer, JobQueue, QueueMessage, RetryOptions } from './queue.js';

/** Options for {@link BullmqQueue}. */
export interface BullmqQueueOptions extends RetryOptions {
  /** `redis://host:port[/db]`. */
  url: string;
  /** Queue name (default "medmask-jobs"); also separates test runs sharing one Redis. */
  name?: string;
  /** How long a worker's lock on a job lasts without renewal (default 30000 ms). */
  lockDurationMs?: number;
  /** How often workers look for stalled jobs (default lockDurationMs / 2). */
  stalledIntervalMs?: number;
}

/** BullMQ refuses job ids that look like integers; ours are hex, so prefix them. */
const bullId = (jobId: string) => `job-${jobId}`;

/**
 * Job queue on Redis through BullMQ.
 * @example
 * const q = new BullmqQueue({ url: 'redis://127.0.0.1:6379' });
 * await q.enqueue({ jobId, type: 'phantoms' });   // server side
 * await q.consume(processor, { concurrency: 2 }); // in `medmask worker`
 */
export class BullmqQueue implements JobQueue {
  readonly kind = 'bullmq' as const;
  private readonly opts: Required<Omit<BullmqQueueOptions, 'stalledIntervalMs'>> & { stalledIntervalMs: number };
  private readonly queue: Queue;
  private worker: Worker | undefined;
  private readonly aborts = new Map<string, AbortController>();

  constructor(opts: BullmqQueueOptions) {
    const lock = opts.lockDurationMs ?? 30_000;
    this.opts = { url: opts.url, name: opts.name ?? 'medmask-jobs', attempts: opts.attempts ?? 3, backoffMs: opts.backoffMs ?? 1000, lockDurationMs: lock, stalledIntervalMs: opts.stalledIntervalMs ?? Math.max(500, Math.floor(lock / 2)) };
    this.queue = new Queue(this.opts.name, { connection: this.connection() });
    this.queue.on('error', () => {});
  }

  private connection() {
    return { url: this.opts.url, maxRetriesPerRequest: null, retryStrategy: (n: number) => Math.min(n * 200, 2000) };
  }

  async enqueue(msg: QueueMessage): Promise<void> {
    const id = bullId(msg.jobId);
    const old = await this.queue.getJob(id);
    if (old) {
      const state = await old.getState();
      if (state === 'completed' || state === 'failed') await old.remove();
      else return; // waiting, delayed or active: already queued
    }
    await this.queue.add(msg.type, msg, {
      jobId: id,
      attempts: this.opts.attempts,
      backoff: { type: 'exponential', delay: this.opts.backoffMs },
      removeOnComplete: { count: 1000 },
      removeOnFail: { count: 5000 },
    });
  }

  async consume(consumer: Consumer, opts: { concurrency?: number } = {}): Promise<void> {
    this.worker = new Worker(
      this.opts.name,
      async (job: Job) => {
        const abort = new AbortController();
        this.aborts.set(job.id!, abort);
        try {
          await consumer(job.data as QueueMessage, { attempt: job.attemptsMade + 1, maxAttempts: job.opts.attempts ?? this.opts.attempts, signal: abort.signal });
        } finally {
          this.aborts.delete(job.id!);
        }
      },
      {
        connection: this.connection(),
        concurrency: Math.max(1, opts.concurrency ?? 1),
        lockDuration: this.opts.lockDurationMs,
        stalledInterval: this.opts.stalledIntervalMs,
        maxStalledCount: 5,
      },
    );
    this.worker.on('error', () => {});
    await this.worker.waitUntilReady();
  }

  async ping(): Promise<void> {
    try {
      await Promise.race([this.queue.getJobCounts('waiting'), new Promise((_, rej) => setTimeout(() => rej(new Error('no answer within 3 s')), 3000).unref())]);
    } catch (e) {
      throw new MedmaskError('ENVIRONMENT', `Redis at ${this.opts.url} does not answer: ${(e as Error).message}`, { cause: e, hint: 'start redis-server or fix --queue' });
    }
  }

  /** Counts per state (for tests and the admin view). */
  async counts(): Promise<Record<string, number>> {
    return this.queue.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed');
  }

  async close(graceMs = 10_000): Promise<void> {
    if (this.worker) {
      const w = this.worker;
      let timer: NodeJS.Timeout | undefined;
      const graceful = w.close().then(() => 'done' as const);
      const res = await Promise.race([graceful, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), graceMs)))]);
      clearTimeout(timer);
      if (res === 'timeout') {
        // Abort what still runs; its lock lapses and another worker takes the job over.
        for (const a of this.aborts.values()) a.abort(new Error('worker closing'));
        await w.close(true).catch(() => {});
      }
    }
    await this.queue.close().catch(() => {});
  }
}
