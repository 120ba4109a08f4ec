/**
 * Flagged regions computed off the event loop, in one lazily started worker thread
 * (regions-worker.ts) owned by one server (the viewer routes make one and close it with the
 * server); where no worker can start, in this thread.
 * @module
 */
import type { Worker } from 'node:worker_threads';
import { serverWorker } from './worker-thread.js';
import { MedmaskError } from '../core/errors.js';
import { flaggedRegions, type FlaggedRegion, type FlaggedRegionOptions } from '../core/viewer/regions.js';

const shuttingDown = () => new MedmaskError('ENVIRONMENT', 'the server is shutting down', { hint: 'ask for the regions again when it is back' });

/** One worker thread labelling attention maps for one server. */
export class RegionsPool {
  private worker: Worker | null = null;
  /** No worker could start or one failed: every call runs in this thread from then on. */
  private broken = false;
  private closed = false;
  private next = 0;
  private readonly waiting = new Map<number, { resolve(r: FlaggedRegion[]): void; reject(e: Error): void }>();

  private start(): Worker | null {
    if (this.worker || this.broken) return this.worker;
    try {
      const w = serverWorker('regions-worker');
      w.on('message', (m: { id: number; regions?: FlaggedRegion[]; error?: string }) => {
        const job = this.waiting.get(m.id);
        if (!job || this.closed) return; // close() has settled it; after close nothing touches the worker's ref
        this.waiting.delete(m.id);
        if (!this.waiting.size) w.unref(); // idle: do not keep the process alive
        if (m.error) job.reject(new Error(m.error));
        else job.resolve(m.regions!);
      });
      const lost = (e: Error) => {
        if (this.worker === w) this.worker = null;
        for (const job of this.waiting.values()) job.reject(e);
        this.waiting.clear();
      };
      w.on('error', (e) => {
        this.broken = true;
        lost(e);
      });
      // An exit without an error (the thread ended by itself): its jobs fail; the next call starts a new one.
      w.on('exit', (code) => lost(this.closed ? shuttingDown() : new Error(`the regions worker exited (code ${code}) before it answered`)));
      w.unref(); // after the listeners: attaching one refs the worker again
      this.worker = w;
      return w;
    } catch {
      this.broken = true;
      return null;
    }
  }

  /**
   * `flaggedRegions` in the worker thread (the map is copied to it).
   * @throws MedmaskError ENVIRONMENT after {@link RegionsPool.close} ("the server is shutting down")
   * @example
   * const regions = await pool.regions(attentionU8, [512, 512, 200], { threshold: 128 });
   */
  async regions(map: Uint8Array, grid: [number, number, number], opts: FlaggedRegionOptions): Promise<FlaggedRegion[]> {
    if (this.closed) throw shuttingDown();
    const w = this.start();
    if (!w) return flaggedRegions(map, grid, opts);
    const id = ++this.next;
    try {
      return await new Promise<FlaggedRegion[]>((resolve, reject) => {
        this.waiting.set(id, { resolve, reject });
        w.ref(); // a caller is waiting
        w.postMessage({ id, map, grid, opts });
      });
    } catch (e) {
      if (this.broken && !this.closed) return flaggedRegions(map, grid, opts);
      throw e;
    }
  }

  /**
   * Stop the worker; waiting calls fail at once as "the server is shutting down". Every job is
   * settled before `terminate()`, so no reply read afterwards can unref the stopping thread
   * (the close hang volume-slices.ts and decode-pool.ts had).
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const job of this.waiting.values()) job.reject(shuttingDown());
    this.waiting.clear();
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }
}
