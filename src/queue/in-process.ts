/**
 * The default queue: jobs run inside the server process, one at a time unless told otherwise,
 * with the same retries and back-off as BullMQ. Nothing survives the process in memory — the
 * server re-enqueues unfinished jobs from the database when it starts.
 * @module
 */
import { backoffDelay, type Consumer, type JobQueue, type QueueMessage, type RetryOptions } from './queue.js';

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
  /** Job ids waiting, running or waiting for a retry. */
  private readonly known = new Set<string>();
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
    if (this.closed || this.known.has(msg.jobId)) return;
    this.known.add(msg.jobId);
    this.waiting.push({ msg, attempt: 1 });
    this.pump();
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
      const done = this.run(e, abort).finally(() => {
        this.running.delete(e.msg.jobId);
        this.pump();
      });
      this.running.set(e.msg.jobId, { done, abort });
    }
  }

  private async run(e: Entry, abort: AbortController): Promise<void> {
    try {
      await this.consumer!(e.msg, { attempt: e.attempt, maxAttempts: this.attempts, signal: abort.signal });
      this.known.delete(e.msg.jobId);
    } catch {
      if (this.closed || e.attempt >= this.attempts) {
        this.known.delete(e.msg.jobId);
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

  /** Jobs waiting or running (for tests and /ready). */
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
