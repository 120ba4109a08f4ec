/**
 * The job queue seam. A queue only carries job ids to workers and retries them; what a job is,
 * its input, state, progress and result live in the database (`src/store/jobs.ts`), so the two
 * implementations — in-process ({@link InProcessQueue}) and BullMQ on Redis (`BullmqQueue`) —
 * behave the same to the server and to job handlers.
 * @module
 */

/**
 * A message on the queue: a job (run it, or plan it when it fans out), one task of a job that fans
 * out (`task`), or its reduce step (`phase: "reduce"`, after every task of `round` is settled).
 */
export interface QueueMessage {
  jobId: string;
  type: string;
  /** The task's key (a task message). */
  task?: string;
  /** The fan-out round the task or reduce message belongs to. */
  round?: number;
  phase?: 'reduce';
}

/** One round of a job's tasks: the tasks run on any worker, then the reduce message. */
export interface FlowSpec {
  jobId: string;
  type: string;
  round: number;
  /** Task keys. */
  tasks: readonly string[];
}

/** The queue's own id of a message (one entry per job, per task and round, per reduce round). */
export function messageKey(m: QueueMessage): string {
  if (m.task !== undefined) return `job-${m.jobId}-r${m.round ?? 0}-t-${m.task}`;
  if (m.phase === 'reduce') return `job-${m.jobId}-r${m.round ?? 0}`;
  return `job-${m.jobId}`;
}

/** What a consumer is told about the delivery. */
export interface DeliveryInfo {
  /** 1 for the first try. */
  attempt: number;
  /** Tries allowed in all (the last one marks the job failed). */
  maxAttempts: number;
  /** Aborted when the consumer is closing and will not wait for this job any longer. */
  signal: AbortSignal;
}

/** Processes one message; throwing asks the queue to retry (with back-off) while tries remain. */
export type Consumer = (msg: QueueMessage, info: DeliveryInfo) => Promise<void>;

/** Retry policy shared by both implementations. */
export interface RetryOptions {
  /** Tries in all (default 3). */
  attempts?: number;
  /** First back-off delay in ms, doubled on each retry (default 1000). */
  backoffMs?: number;
}

/** One queue interface, two implementations. */
export interface JobQueue {
  readonly kind: 'in-process' | 'bullmq';
  /** Queue a job for running. Idempotent per job id while the job is waiting or running. */
  enqueue(msg: QueueMessage): Promise<void>;
  /**
   * Start running jobs with `consumer`, at most `concurrency` at once per lane consumed: the common
   * queue, plus each of `lanes` (capability lanes this process can serve).
   */
  consume(consumer: Consumer, opts?: { concurrency?: number; lanes?: readonly string[] }): Promise<void>;
  /**
   * Queue a round of tasks and, once every one is settled (done, or failed after its tries), the
   * reduce message `{ jobId, type, phase: "reduce", round }`. Idempotent per job and round.
   */
  addFlow(flow: FlowSpec): Promise<void>;
  /**
   * Whether the queue holds anything of this job that will still run: the job's message waiting or
   * running, or the reduce of `round` waiting for its tasks (for the reconciler).
   */
  live(jobId: string, round: number): Promise<boolean>;
  /** Throws when the queue's backend is unreachable. */
  ping(): Promise<void>;
  /**
   * Route job types to lanes (capability routing, capabilities.ts): `laneOf(type)` is '' for the
   * common queue, or a lane such as 'torch' that only processes with that capability consume.
   * The in-process queue has one consumer (the server) and ignores lanes.
   */
  routeBy?(route: LaneRoute): void;
  /**
   * Stop taking jobs; wait up to `graceMs` for running ones to finish, then abort them (they are
   * re-delivered: by BullMQ to another worker, in-process on the next start).
   */
  close(graceMs?: number): Promise<void>;
}

/** Which lane a job type travels on, and every lane there is. */
export interface LaneRoute {
  laneOf(type: string): string;
  lanes: readonly string[];
}

/** Back-off before try `attempt + 1`: backoffMs · 2^(attempt − 1). */
export function backoffDelay(attempt: number, backoffMs: number): number {
  return backoffMs * 2 ** Math.max(0, attempt - 1);
}
