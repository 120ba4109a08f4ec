/**
 * BullMQ on Redis: for `medmask worker` processes on several machines sharing the database, the
 * blob store and Redis. Retries with exponential back-off; a job id is deduplicated while the job
 * waits or runs; a worker that dies (kill -9, power loss) stops renewing its lock, and after
 * `lockDurationMs` another worker's stalled-job check takes the job over.
 * @module
 */
import { FlowProducer, Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { MedmaskError } from '../core/errors.js';
import { messageKey, type Consumer, type FlowSpec, type JobQueue, type LaneRoute, type QueueMessage, type RetryOptions } from './queue.js';

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
  /** How many times a job may stall (its worker died) before BullMQ fails it (default 5). */
  maxStalledCount?: number;
  /** Where connection trouble is reported (rate-limited: once per outage, then when it is over). */
  log?: (line: string) => void;
}

/**
 * Check once that Redis answers, with a client that does not retry: used before any BullMQ object
 * exists, so that an unreachable Redis at start-up is an error and leaves nothing reconnecting.
 * @throws MedmaskError ENVIRONMENT naming the URL
 */
export async function probeRedis(url: string, timeoutMs = 3000): Promise<void> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: timeoutMs, enableOfflineQueue: false });
  let first: Error | undefined;
  client.on('error', (e: Error) => (first ??= e));
  try {
    await client.connect();
    await client.ping();
  } catch (e) {
    const why = first ?? (e as Error);
    throw new MedmaskError('ENVIRONMENT', `Redis at ${url} does not answer: ${why.message}`, { cause: why, hint: 'start redis-server or fix --queue' });
  } finally {
    client.disconnect();
  }
}

/** States in which an entry will still run (or is running). */
const LIVE_STATES = new Set(['waiting', 'active', 'delayed', 'prioritized', 'waiting-children']);

/**
 * Job queue on Redis through BullMQ.
 * @example
 * const q = new BullmqQueue({ url: 'redis://127.0.0.1:6379' });
 * await q.enqueue({ jobId, type: 'phantoms' });   // server side
 * await q.consume(processor, { concurrency: 2 }); // in `medmask worker`
 */
export class BullmqQueue implements JobQueue {
  readonly kind = 'bullmq' as const;
  private readonly opts: Required<Omit<BullmqQueueOptions, 'stalledIntervalMs' | 'log'>> & { stalledIntervalMs: number };
  private readonly queue: Queue;
  private flows: FlowProducer | undefined;
  private readonly workers: Worker[] = [];
  /** Capability lanes: queue `<name>-<lane>` per lane, consumed only by capable workers. */
  private route: LaneRoute = { laneOf: () => '', lanes: [] };
  private readonly laneQueues = new Map<string, Queue>();
  private readonly aborts = new Map<string, AbortController>();
  private readonly log: (line: string) => void;
  private outageSince = 0;

  constructor(opts: BullmqQueueOptions) {
    const lock = opts.lockDurationMs ?? 30_000;
    this.opts = { url: opts.url, name: opts.name ?? 'medmask-jobs', attempts: opts.attempts ?? 3, backoffMs: opts.backoffMs ?? 1000, lockDurationMs: lock, stalledIntervalMs: opts.stalledIntervalMs ?? Math.max(500, Math.floor(lock / 2)), maxStalledCount: opts.maxStalledCount ?? 5 };
    this.log = opts.log ?? (() => {});
    this.queue = new Queue(this.opts.name, { connection: this.connection() });
    this.queue.on('error', (e) => this.onError(e));
  }

  routeBy(route: LaneRoute): void {
    this.route = route;
  }

  private nameOf(lane: string): string {
    return lane ? `${this.opts.name}-${lane}` : this.opts.name;
  }

  /** The BullMQ queue of a lane ('' = the common one). */
  private queueOf(lane: string): Queue {
    if (!lane) return this.queue;
    let q = this.laneQueues.get(lane);
    if (!q) {
      q = new Queue(this.nameOf(lane), { connection: this.connection() });
      q.on('error', (e) => this.onError(e));
      this.laneQueues.set(lane, q);
    }
    return q;
  }

  /** ioredis reconnects by itself with this bounded back-off (0.2 s, 0.4 s, … at most 2 s). */
  private connection() {
    return { url: this.opts.url, maxRetriesPerRequest: null, retryStrategy: (n: number) => Math.min(n * 200, 2000) };
  }

  /** Log the first error of an outage (not every reconnect try); {@link noteUp} logs its end. */
  private onError(e: Error): void {
    if (this.outageSince) return;
    this.outageSince = Date.now();
    this.log(`Redis at ${this.opts.url}: ${e.message}; reconnecting (every ≤ 2 s)`);
    // With maxRetriesPerRequest null, ioredis holds commands until it is connected again: this
    // one answers when the outage is over.
    void this.queue.getJobCounts('waiting').then(() => {
      this.log(`Redis at ${this.opts.url} reachable again after ${((Date.now() - this.outageSince) / 1000).toFixed(1)} s`);
      this.outageSince = 0;
    }, () => {
      this.outageSince = 0;
    });
  }

  private jobOpts() {
    return { attempts: this.opts.attempts, backoff: { type: 'exponential', delay: this.opts.backoffMs }, removeOnComplete: { count: 1000 }, removeOnFail: { count: 5000 } };
  }

  async enqueue(msg: QueueMessage): Promise<void> {
    const id = messageKey(msg);
    const queue = this.queueOf(this.route.laneOf(msg.type));
    const old = await queue.getJob(id);
    if (old) {
      const state = await old.getState();
      if (state === 'completed' || state === 'failed') await old.remove();
      else return; // waiting, delayed or active: already queued
    }
    await queue.add(msg.type, msg, { jobId: id, ...this.jobOpts() });
  }

  /**
   * A BullMQ flow: the reduce message is the parent, the tasks its children; the parent runs once
   * every child is completed or failed (`ignoreDependencyOnFailure`: a task that fails its tries
   * does not hold the job up — the runner has recorded it as failed).
   */
  async addFlow(f: FlowSpec): Promise<void> {
    const parent: QueueMessage = { jobId: f.jobId, type: f.type, phase: 'reduce', round: f.round };
    const parentId = messageKey(parent);
    const lane = this.route.laneOf(f.type);
    if (await this.queueOf(lane).getJob(parentId)) return; // this round is queued already
    if (!this.flows) {
      this.flows = new FlowProducer({ connection: this.connection() });
      this.flows.on('error', (e) => this.onError(e));
    }
    const queueName = this.nameOf(lane);
    await this.flows.add({
      name: `${f.type}:reduce`,
      queueName,
      data: parent,
      opts: { jobId: parentId, ...this.jobOpts() },
      children: f.tasks.map((task) => {
        const m: QueueMessage = { jobId: f.jobId, type: f.type, task, round: f.round };
        return { name: `${f.type}:task`, queueName, data: m, opts: { jobId: messageKey(m), ...this.jobOpts(), removeOnComplete: true, ignoreDependencyOnFailure: true } };
      }),
    });
  }

  async live(jobId: string, round: number): Promise<boolean> {
    for (const lane of ['', ...this.route.lanes]) {
      for (const id of [messageKey({ jobId, type: '' }), messageKey({ jobId, type: '', phase: 'reduce', round })]) {
        const j = await this.queueOf(lane).getJob(id);
        if (j && LIVE_STATES.has(await j.getState())) return true;
      }
    }
    return false;
  }

  async consume(consumer: Consumer, opts: { concurrency?: number; lanes?: readonly string[] } = {}): Promise<void> {
    for (const lane of ['', ...(opts.lanes ?? [])]) {
      const worker = new Worker(
        this.nameOf(lane),
        async (job: Job) => {
          const abort = new AbortController();
          const key = `${lane}/${job.id!}`;
          this.aborts.set(key, abort);
          try {
            await consumer(job.data as QueueMessage, { attempt: job.attemptsMade + 1, maxAttempts: job.opts.attempts ?? this.opts.attempts, signal: abort.signal });
          } finally {
            this.aborts.delete(key);
          }
        },
        {
          connection: this.connection(),
          concurrency: Math.max(1, opts.concurrency ?? 1),
          lockDuration: this.opts.lockDurationMs,
          stalledInterval: this.opts.stalledIntervalMs,
          maxStalledCount: this.opts.maxStalledCount,
        },
      );
      worker.on('error', (e) => this.onError(e));
      this.workers.push(worker);
      await worker.waitUntilReady();
    }
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
    if (this.workers.length) {
      const ws = this.workers;
      let timer: NodeJS.Timeout | undefined;
      const graceful = Promise.all(ws.map((w) => w.close())).then(() => 'done' as const);
      const res = await Promise.race([graceful, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), graceMs)))]);
      clearTimeout(timer);
      if (res === 'timeout') {
        // Abort what still runs; its lock lapses and another worker takes the job over.
        for (const a of this.aborts.values()) a.abort(new Error('worker closing'));
        await Promise.all(ws.map((w) => w.close(true).catch(() => {})));
      }
    }
    await this.flows?.close().catch(() => {});
    for (const q of this.laneQueues.values()) await q.close().catch(() => {});
    await this.queue.close().catch(() => {});
  }

  /** Drop the connections at once (start-up failed: Redis unreachable); nothing waits for Redis. */
  async disconnect(): Promise<void> {
    await this.flows?.disconnect().catch(() => {});
    for (const w of this.workers) await w.disconnect().catch(() => {});
    for (const q of this.laneQueues.values()) await q.disconnect().catch(() => {});
    await this.queue.disconnect().catch(() => {});
  }
}
