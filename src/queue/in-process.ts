/**
 * The default queue: jobs run inside the server process, one at a time unless told otherwise,
 * with the same retries and back-off as BullMQ. Nothing survives the process in memory — the
 * server re-enqueues unfinished jobs from the database when it starts.
 * @module
 */
import { backoffDelay, messageKey, type Consumer, type FlowSpec, type JobQueue, type QueueMessage, type RetryOptions } from './queue.js';

interface Entry {
  msg: QueueMessage;
  attempt: number;
}

/**
 * In-process job queue.
 * @example
 * const q = new InProcessQueue({ attempts: 3, backoffMs: 500 });
 * await q.consume(async (msg) => runJob(msg.jobId));
 * await q.enqueue({ jobId, type: 'phantoms' });
 */
export class InProcessQueue implements JobQueue {
  readonly kind = 'in-process' as const;
  private readonly attempts: number;
  private readonly backoffMs: number;
  private readonly waiting: Entry[] = [];
  /** Message keys waiting, running or waiting for a retry. */
  private readonly known = new Set<string>();
  /** Reduce messages waiting for their tasks: reduce key → tasks not settled yet. */
  private readonly flows = new Map<string, { reduce: QueueMessage; left: number }>();
  private readonly running = new Map<string, { done: Promise<void>; abort: AbortController }>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private consumer: Consumer | undefined;
  private concurrency = 1;
  private closed = false;

  constructor(opts: RetryOptions = {}) {
    this.attempts = opts.attempts ?? 3;
    this.backoffMs = opts.backoffMs ?? 1000;
  }

  async enqueue(msg: QueueMessage): Promise<void> {
    if (this.closed || this.known.has(messageKey(msg))) return;
    this.known.add(messageKey(msg));
    this.waiting.push({ msg, attempt: 1 });
    this.pump();
  }

  async addFlow(f: FlowSpec): Promise<void> {
    const reduce: QueueMessage = { jobId: f.jobId, type: f.type, phase: 'reduce', round: f.round };
    const key = messageKey(reduce);
    if (this.closed || this.flows.has(key) || this.known.has(key)) return;
    if (!f.tasks.length) return this.enqueue(reduce);
    this.flows.set(key, { reduce, left: f.tasks.length });
    for (const task of f.tasks) await this.enqueue({ jobId: f.jobId, type: f.type, task, round: f.round });
  }

  async live(jobId: string, round: number): Promise<boolean> {
    const reduce = messageKey({ jobId, type: '', phase: 'reduce', round });
    return this.known.has(messageKey({ jobId, type: '' })) || this.known.has(reduce) || this.flows.has(reduce);
  }

  /** A message is settled (done, or failed for good): a task may release its reduce. */
  private settled(msg: QueueMessage): void {
    this.known.delete(messageKey(msg));
    if (msg.task === undefined) return;
    const key = messageKey({ jobId: msg.jobId, type: msg.type, phase: 'reduce', round: msg.round ?? 0 });
    const f = this.flows.get(key);
    if (f && --f.left === 0) {
      this.flows.delete(key);
      void this.enqueue(f.reduce);
    }
  }

  async consume(consumer: Consumer, opts: { concurrency?: number } = {}): Promise<void> {
    this.consumer = consumer;
    this.concurrency = Math.max(1, opts.concurrency ?? 1);
    this.pump();
  }

  async ping(): Promise<void> {}

  private pump(): void {
    while (!this.closed && this.consumer && this.running.size < this.concurrency && this.waiting.length) {
      const e = this.waiting.shift()!;
      const abort = new AbortController();
      const key = messageKey(e.msg);
      const done = this.run(e, abort).finally(() => {
        this.running.delete(key);
        this.pump();
      });
      this.running.set(key, { done, abort });
    }
  }

  private async run(e: Entry, abort: AbortController): Promise<void> {
    try {
      await this.consumer!(e.msg, { attempt: e.attempt, maxAttempts: this.attempts, signal: abort.signal });
      this.settled(e.msg);
    } catch {
      if (this.closed) return;
      if (e.attempt >= this.attempts) {
        this.settled(e.msg);
        return;
      }
      const t = setTimeout(() => {
        this.timers.delete(t);
        this.waiting.push({ msg: e.msg, attempt: e.attempt + 1 });
        this.pump();
      }, backoffDelay(e.attempt, this.backoffMs));
      this.timers.add(t);
    }
  }

  /** Messages waiting or running (for tests and /ready). */
  get size(): number {
    return this.known.size;
  }

  async close(graceMs = 10_000): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.waiting.length = 0;
    const all = [...this.running.values()];
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), graceMs)));
    const res = await Promise.race([Promise.allSettled(all.map((x) => x.done)).then(() => 'done' as const), grace]);
    clearTimeout(timer);
    if (res === 'timeout') {
      for (const x of all) x.abort.abort(new Error('queue closing'));
      await Promise.allSettled(all.map((x) => x.done));
    }
  }
}
