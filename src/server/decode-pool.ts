/**
 * Image decoding for uploads, off the event loop: a small pool of worker threads (decode-worker.ts)
 * that each read one file or DICOM series at a time. Every request has a time budget; a worker that
 * runs past it is terminated (its memory goes with it) and the upload is refused with
 * INPUT_TOO_LARGE, so one hostile file can neither stall `/health` nor hold memory. Workers start
 * lazily and are replaced after a termination. Built per server by `createServer` (no module state).
 * @module
 */
import type { Worker } from 'node:worker_threads';
import { serverWorker } from './worker-thread.js';
import type { NaturalizedDataset } from 'dcmjs';
import { ERRORS, MedmaskError, type ErrorCode } from '../core/errors.js';
import type { Volume } from '../core/volume.js';
import type { ReadOptions } from '../io/registry.js';

/** A message to a decode worker. */
export interface DecodeRequest {
  id: number;
  /** 'file': one file with the reader registry; 'dicom': a folder of DICOM files, one series. */
  kind: 'file' | 'dicom';
  path: string;
  opts: ReadOptions;
}

/** A decode worker's answer. */
export interface DecodeReply {
  id: number;
  volume?: Volume;
  headers?: NaturalizedDataset[];
  error?: { code?: string; message: string; hint?: string; details?: Record<string, unknown> };
}

/** Options of {@link DecodePool}. */
export interface DecodePoolOptions {
  /** Worker threads (default 2). */
  size?: number;
  /** Time budget of one decode, ms (default 60 000). */
  timeoutMs?: number;
}

interface Slot {
  worker: Worker | null;
  busy: boolean;
  /** Ends the decode running in this slot now, rejected as "shutting down" (close). */
  stop?: () => void;
}

const shuttingDown = () => new MedmaskError('ENVIRONMENT', 'the server is shutting down', { hint: 'upload again when it is back' });

interface Task {
  req: DecodeRequest;
  resolve(r: DecodeReply): void;
  reject(e: unknown): void;
}

/**
 * A pool of decode worker threads.
 * @example
 * const pool = new DecodePool({ size: 2, timeoutMs: 30_000 });
 * const vol = await pool.read('/tmp/upload/f00001.nii.gz', { maxVoxels: 2 ** 31 });
 * await pool.close();
 */
export class DecodePool {
  private readonly slots: Slot[];
  private readonly queue: Task[] = [];
  private readonly timeoutMs: number;
  private next = 0;
  private closed = false;

  constructor(opts: DecodePoolOptions = {}) {
    this.slots = Array.from({ length: Math.max(1, opts.size ?? 2) }, () => ({ worker: null, busy: false }));
    this.timeoutMs = opts.timeoutMs ?? 60_000;
  }

  /** Read one file in a worker (see `readVolume`). */
  async read(path: string, opts: ReadOptions): Promise<Volume> {
    return (await this.run('file', path, opts)).volume!;
  }

  /** Read the DICOM files of a folder as one series in a worker (see `loadDicom`). */
  async loadDicom(path: string, opts: ReadOptions): Promise<{ volume: Volume; headers: NaturalizedDataset[] }> {
    const r = await this.run('dicom', path, opts);
    return { volume: r.volume!, headers: r.headers ?? [] };
  }

  /** Stop every worker; running and queued decodes fail at once ("the server is shutting down"). */
  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.queue.splice(0)) t.reject(shuttingDown());
    // Running decodes end (and stop listening) *before* terminate(): a reply still on its way would
    // otherwise run `finish`, whose `unref()` undoes the ref terminate() takes — the event loop could
    // then run empty while the worker is still stopping, leaving this close pending for good.
    for (const s of this.slots) s.stop?.();
    await Promise.all(this.slots.map(async (s) => {
      const w = s.worker;
      s.worker = null;
      if (w) await w.terminate();
    }));
  }

  private async run(kind: DecodeRequest['kind'], path: string, opts: ReadOptions): Promise<DecodeReply> {
    if (this.closed) throw shuttingDown();
    const reply = await new Promise<DecodeReply>((resolve, reject) => {
      this.queue.push({ req: { id: ++this.next, kind, path, opts }, resolve, reject });
      this.pump();
    });
    if (reply.error) {
      const code = reply.error.code && reply.error.code in ERRORS ? (reply.error.code as ErrorCode) : undefined;
      if (!code) throw new Error(reply.error.message);
      throw new MedmaskError(code, reply.error.message, { ...(reply.error.hint ? { hint: reply.error.hint } : {}), ...(reply.error.details ? { details: reply.error.details } : {}) });
    }
    return reply;
  }

  private spawn(): Worker {
    const w = serverWorker('decode-worker', { resourceLimits: { maxOldGenerationSizeMb: 1024 } });
    w.unref();
    return w;
  }

  private pump(): void {
    for (const slot of this.slots) {
      if (slot.busy || !this.queue.length) continue;
      const task = this.queue.shift()!;
      slot.busy = true;
      this.dispatch(slot, task);
    }
  }

  private dispatch(slot: Slot, task: Task): void {
    let w: Worker;
    try {
      w = slot.worker ??= this.spawn();
    } catch (e) {
      slot.busy = false;
      task.reject(e);
      return;
    }
    let done = false;
    const finish = (fn: () => void, keepWorker: boolean): void => {
      if (done) return;
      done = true;
      slot.stop = undefined;
      clearTimeout(timer);
      w.off('message', onMessage);
      w.off('error', onError);
      w.off('exit', onExit);
      if (!this.closed) w.unref(); // never after close: terminate() holds the ref until the thread is gone
      if (!keepWorker) {
        if (slot.worker === w) slot.worker = null;
        void w.terminate();
      }
      slot.busy = false;
      fn();
      if (!this.closed) this.pump();
    };
    const onMessage = (m: DecodeReply) => {
      if (m.id === task.req.id) finish(() => task.resolve(m), true);
    };
    const onError = (e: Error) => {
      const heap = /heap|memory/i.test(e.message);
      finish(() => task.reject(heap
        ? new MedmaskError('INPUT_TOO_LARGE', `decoding this file needed more memory than a decode worker may use (${e.message})`, { hint: 'the file is larger than the server accepts, or damaged' })
        : e), false);
    };
    const onExit = () => finish(() => task.reject(new MedmaskError('INTERNAL', 'a decode worker stopped unexpectedly')), false);
    const timer = setTimeout(() => {
      finish(() => task.reject(new MedmaskError('INPUT_TOO_LARGE', `decoding the upload took longer than the server's budget of ${(this.timeoutMs / 1000).toFixed(1)} s and was stopped`, {
        hint: 'the file is very large or hostile; convert it to a smaller .nii.gz, or ask the administrator to raise decodeTimeoutMs',
        details: { decodeTimeoutMs: this.timeoutMs },
      })), false);
    }, this.timeoutMs);
    slot.stop = () => finish(() => task.reject(shuttingDown()), true);
    w.on('message', onMessage);
    w.on('error', onError);
    w.on('exit', onExit);
    w.ref(); // a caller is waiting
    w.postMessage(task.req);
  }
}
