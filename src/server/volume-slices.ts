/**
 * Decoded volumes kept slice-addressable on disk, so no `.nii.gz` is decoded more than once on the
 * request path (nor again after a restart): after the first decode of a blob, its voxels are
 * written uncompressed — axial planes as stored (x fastest) at once, coronal planes contiguous
 * (`[j][k][i]`) and sagittal planes contiguous (`[i][k][j]`) when that orientation is first asked
 * for (most reading is axial; a transpose costs CPU the first open should not pay) — so any
 * slice of any written axis is one positioned read of exactly that slice. Files are named by blob hash (blobs never
 * change), written to a temporary name and renamed, so a crash leaves nothing half-written that
 * looks complete. The transposes run in small steps that yield to the event loop, so building
 * a 512×512×203 CT's files does not stall slice requests. Single-component volumes only.
 * @module
 */
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { serverWorker } from './worker-thread.js';
import { allocVoxels, voxelTypeOf, type Volume, type VoxelArray, type VoxelType } from '../core/volume.js';
import type { SliceAxis } from './slices.js';

/** What the files of one volume hold. */
export interface SlicedMeta {
  shape: [number, number, number];
  type: VoxelType;
  /** Orientations written so far: z first (a plain write), y and x when first asked for. */
  axes: SliceAxis[];
}

const BYTES: Record<VoxelType, number> = { uint8: 1, int8: 1, uint16: 2, int16: 2, uint32: 4, int32: 4, float32: 4, float64: 8 } as Record<VoxelType, number>;

const tick = () => new Promise<void>((r) => setImmediate(r));

/** A job of the slice worker (slice-worker.ts): a stored `.nii.gz`, or decoded voxels (a save). */
export interface SliceJob {
  id: number;
  dir: string;
  key: string;
  gz?: Uint8Array;
  raw?: { shape: [number, number, number]; data: VoxelArray };
}

/** The slice worker's answers: the axial file is there (`z`), all files are (`done`). */
export interface SliceReply {
  id: number;
  stage: 'z' | 'done';
  /** Whether a `.nii.gz` was decoded for this job. */
  decoded?: boolean;
  skipped?: string;
  error?: string;
}

interface Prep {
  /** Resolves when the axial file is there (true) or cannot be (false). */
  z: Promise<boolean>;
  /** Resolves when the job is over. */
  done: Promise<void>;
}

/** Slice-addressable copies of decoded volumes in a folder. */
export class VolumeSlices {
  /** Whole-volume decodes of `.nii.gz` blobs this instance made (all in its worker thread). */
  decodes = 0;
  private readonly preps = new Map<string, Prep>();
  /** Keys the worker could not make files of (several components, damaged): not tried again. */
  private readonly refused = new Set<string>();
  private readonly jobs: { job: SliceJob; z(ok: boolean): void; done(): void; transfer: ArrayBuffer[] }[] = [];
  private worker: Worker | null = null;
  private busy = false;
  /** The job in the worker now: `stop()` settles it (as "cannot be made") without waiting for the worker. */
  private current: { stop(): void } | null = null;
  private nextId = 0;
  private closed = false;
  private readonly metas = new Map<string, Promise<SlicedMeta | null>>();
  private readonly building = new Map<string, Promise<void>>();
  private readonly metaLocks = new Map<string, Promise<void>>();

  /**
   * @param dir - the folder (made when first written)
   * @param maxBytes - the folder's budget: after each build the volumes built longest ago are
   *   removed until it fits (every saved CT version adds its three copies)
   */
  constructor(
    readonly dir: string,
    readonly maxBytes = 8 * 2 ** 30,
  ) {}

  /** Remove the volumes built longest ago until the folder fits its budget. */
  async prune(keep?: string): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return;
    }
    const vols = new Map<string, { bytes: number; built: number; files: string[] }>();
    for (const n of names) {
      const key = n.slice(0, n.indexOf('.') < 0 ? n.length : n.indexOf('.'));
      const st = await stat(join(this.dir, n)).catch(() => null);
      if (!st) continue;
      const v = vols.get(key) ?? { bytes: 0, built: Infinity, files: [] };
      v.bytes += st.size;
      v.files.push(n);
      if (n === `${key}.json`) v.built = st.mtimeMs;
      vols.set(key, v);
    }
    let total = [...vols.values()].reduce((a, v) => a + v.bytes, 0);
    for (const [key, v] of [...vols].sort((a, b) => a[1].built - b[1].built)) {
      if (total <= this.maxBytes) break;
      if (key === keep || v.built === Infinity) continue; // being written, or the one just built
      for (const f of v.files) await rm(join(this.dir, f), { force: true }).catch(() => undefined);
      this.metas.delete(key);
      total -= v.bytes;
    }
  }

  private file(key: string, ext: string): string {
    return join(this.dir, `${key}.${ext}`);
  }

  /** The volume's description when its files are complete, else null. */
  meta(key: string): Promise<SlicedMeta | null> {
    let m = this.metas.get(key);
    if (!m) {
      m = readFile(this.file(key, 'json'), 'utf8').then((t) => JSON.parse(t) as SlicedMeta, () => null);
      // a miss is not remembered for long: the files may be written a moment later
      void m.then((v) => {
        if (!v) this.metas.delete(key);
      });
      this.metas.set(key, m);
      if (this.metas.size > 4096) this.metas.delete(this.metas.keys().next().value!);
    }
    return m;
  }

  /**
   * One slice, read from disk: the same plane `extractSlice` gives (axial i × j, coronal i × k,
   * sagittal j × k, x fastest). @returns null when the volume has no files (yet)
   */
  async slice(key: string, axis: SliceAxis, index: number): Promise<VoxelArray | null> {
    const m = await this.meta(key);
    if (!m || !m.axes.includes(axis)) return null;
    const [nx, ny, nz] = m.shape;
    const n = axis === 'z' ? nx * ny : axis === 'y' ? nx * nz : ny * nz;
    const depth = axis === 'z' ? nz : axis === 'y' ? ny : nx;
    if (index < 0 || index >= depth) return null;
    const bytes = BYTES[m.type];
    const out = allocVoxels(m.type, n);
    let fh;
    try {
      fh = await open(this.file(key, axis), 'r');
      const { bytesRead } = await fh.read(new Uint8Array(out.buffer, out.byteOffset, n * bytes), 0, n * bytes, index * n * bytes);
      if (bytesRead !== n * bytes) return null;
    } catch {
      this.metas.delete(key);
      return null;
    } finally {
      await fh?.close();
    }
    return out;
  }

  /** The whole volume (axial file), or null when it has no files: a read instead of a decode. */
  async whole(key: string): Promise<{ meta: SlicedMeta; data: VoxelArray } | null> {
    const m = await this.meta(key);
    if (!m) return null;
    try {
      const b = await readFile(this.file(key, 'z'));
      const n = m.shape[0] * m.shape[1] * m.shape[2];
      if (b.length !== n * BYTES[m.type]) return null;
      const data = allocVoxels(m.type, n);
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength).set(b);
      return { meta: m, data };
    } catch {
      return null;
    }
  }

  /** A small JSON fact kept beside a volume's files (e.g. the label values present). */
  async getJson<T>(key: string, name: string): Promise<T | null> {
    return readFile(this.file(key, `${name}.json`), 'utf8').then((t) => JSON.parse(t) as T, () => null);
  }
  /** Keep a small JSON fact beside a volume's files (best effort). */
  async putJson(key: string, name: string, value: unknown): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: true });
      const f = this.file(key, `${name}.json`);
      await writeFile(`${f}.${process.pid}`, JSON.stringify(value));
      await rename(`${f}.${process.pid}`, f);
    } catch {
      // a cache: losing it costs a recomputation
    }
  }

  /**
   * Make the slice files of a stored volume in the worker thread (one decode, never on the event
   * loop), once per key: at upload, when a job's output or a save appears, or — for data stored
   * before — on the first request. @param gz - reads the blob (called only when the files are missing)
   * @returns when the axial file is there: true, or false when it cannot be (several components,
   *   a damaged blob: the caller decodes as before)
   */
  prepare(key: string, gz: () => Promise<Uint8Array>, opts: { background?: boolean } = {}): Promise<boolean> {
    return this.enqueue(key, !opts.background, async () => {
      const b = await gz();
      // a copy the worker owns (a Buffer may share a pool)
      const own = new Uint8Array(b.byteLength);
      own.set(b);
      return { job: { id: 0, dir: this.dir, key, gz: own }, transfer: [own.buffer] };
    }).z;
  }

  /**
   * Make the slice files of a volume whose voxels are at hand (a saved label map), in the worker
   * thread. The key is registered at once (a request for it waits for these files instead of
   * decoding); `data` is read then and handed over (unusable afterwards).
   */
  prepareFrom(key: string, shape: [number, number, number], data: () => Promise<VoxelArray>): Promise<boolean> {
    return this.enqueue(key, true, async () => {
      const d = await data();
      return { job: { id: 0, dir: this.dir, key, raw: { shape, data: d } }, transfer: [d.buffer as ArrayBuffer] };
    }).z;
  }

  /** Wait until the files of `key` in the making are done (at once when none are). */
  async settled(key: string): Promise<void> {
    await this.preps.get(key)?.done;
  }

  /**
   * Stop the worker thread. Every job not done is dropped and settled at once — queued, being read
   * (`gz`/`data` still pending), or in the worker —: `prepare`/`prepareFrom` answer false (their
   * callers fall back to decoding; the blobs are untouched, the files are a cache made again on
   * the next request) and `settled` resolves. Nothing is left waiting on the stopped worker.
   */
  async close(): Promise<void> {
    this.closed = true;
    for (const j of this.jobs.splice(0)) (j.z(false), j.done());
    // The job in the worker is settled and its listeners removed *before* terminate(): a reply of
    // that job still on its way would otherwise run `finish`, whose `unref()` undoes the ref that
    // terminate() takes — the event loop could then run empty while the thread is still stopping,
    // and this close (and whoever awaits the job) stayed pending for good.
    this.current?.stop();
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }

  // urgent: someone waits for it (a request, a save): ahead of background work (queue listings)
  private enqueue(key: string, urgent: boolean, make: () => Promise<{ job: SliceJob; transfer: ArrayBuffer[] }>): Prep {
    if (this.refused.has(key)) return { z: Promise.resolve(false), done: Promise.resolve() };
    const had = this.preps.get(key);
    if (had) {
      const at = urgent ? this.jobs.findIndex((j) => j.job.key === key) : -1;
      if (at > 0) this.jobs.unshift(...this.jobs.splice(at, 1));
      return had;
    }
    let zRes!: (ok: boolean) => void, doneRes!: () => void;
    const prep: Prep = { z: new Promise((r) => (zRes = r)), done: new Promise((r) => (doneRes = r)) };
    this.preps.set(key, prep);
    void prep.done.then(() => {
      this.preps.delete(key);
      if (!this.closed) void this.prune(key);
    });
    void (async () => {
      try {
        if (this.closed) return (zRes(false), doneRes());
        if ((await this.meta(key))?.axes.length === 3) return (zRes(true), doneRes());
        await mkdir(this.dir, { recursive: true });
        const { job, transfer } = await make();
        // closed while the blob or voxels were read: nothing will run it
        if (this.closed) return (zRes(false), doneRes());
        job.id = ++this.nextId;
        const entry = { job, transfer, z: zRes, done: doneRes };
        if (urgent) this.jobs.unshift(entry);
        else this.jobs.push(entry);
        this.pump();
      } catch {
        zRes(false);
        doneRes();
      }
    })();
    return prep;
  }

  private spawn(): Worker {
    const w = serverWorker('slice-worker');
    w.unref();
    return w;
  }

  private pump(): void {
    if (this.busy || this.closed || !this.jobs.length) return;
    const t = this.jobs.shift()!;
    this.busy = true;
    const w = (this.worker ??= this.spawn());
    let over = false;
    // the job is over: no more listening, its promises settled (z: a no-op when already answered)
    const settle = () => {
      over = true;
      w.off('message', onMessage);
      w.off('error', onError);
      w.off('exit', onExit);
      if (this.current === current) this.current = null;
      this.busy = false;
      this.metas.delete(t.job.key);
      t.z(false);
      t.done();
    };
    const current = { stop: () => void (over || settle()) };
    this.current = current;
    const finish = () => {
      if (over) return;
      settle();
      if (!this.closed) w.unref(); // idle: the worker does not keep the process alive (never after close: see close)
      this.pump();
    };
    const onMessage = (r: SliceReply) => {
      if (r.id !== t.job.id) return;
      if (r.decoded) this.decodes++;
      if (r.skipped || r.error) {
        this.refused.add(t.job.key);
        if (this.refused.size > 4096) this.refused.delete(this.refused.values().next().value!);
      }
      this.metas.delete(t.job.key);
      if (r.stage === 'z') t.z(true);
      else finish();
    };
    // a crash ('error', then 'exit') or an exit without one: the job is over, the next gets a new worker
    const onError = () => {
      if (this.worker === w) this.worker = null;
      finish();
    };
    const onExit = onError;
    w.on('message', onMessage);
    w.on('error', onError);
    w.on('exit', onExit);
    w.ref();
    w.postMessage(t.job, t.transfer);
  }

  /** Whether the files of `key` are being written now. */
  isBuilding(key: string): boolean {
    return this.building.has(key);
  }

  /**
   * Write the axial file of a decoded single-component volume (once per key; concurrent calls
   * share the work): a plain write, no transpose. The coronal and sagittal files follow when
   * first asked for ({@link VolumeSlices.extend}). Errors (disk full) are swallowed: the caller
   * falls back to decoding.
   */
  build(key: string, vol: Pick<Volume, 'shape' | 'data' | 'components'>): Promise<void> {
    if (vol.components !== 1) return Promise.resolve();
    return this.once(key, async () => {
      if (await this.meta(key)) return;
      await mkdir(this.dir, { recursive: true });
      const [nx, ny, nz] = vol.shape;
      const type = voxelTypeOf(vol.data);
      await this.put(key, 'z', vol.data);
      await this.putMeta(key, { shape: [nx, ny, nz], type, axes: ['z'] });
      await this.prune(key);
    });
  }

  /**
   * Add the coronal (`y`: planes `[j][k][i]`) or sagittal (`x`: `[i][k][j]`) file of a volume whose
   * axial file exists, from its decoded voxels; the transpose runs in steps that yield to the event
   * loop.
   */
  extend(key: string, vol: Pick<Volume, 'shape' | 'data' | 'components'>, axis: SliceAxis): Promise<void> {
    if (vol.components !== 1 || axis === 'z') return this.build(key, vol);
    return this.once(`${key}:${axis}`, async () => {
      await this.build(key, vol);
      const m = await this.meta(key);
      if (!m || m.axes.includes(axis)) return;
      const [nx, ny, nz] = vol.shape;
      const d = vol.data;
      const out = allocVoxels(m.type, d.length);
      if (axis === 'y') {
        for (let j = 0; j < ny; j++) {
          for (let k = 0; k < nz; k++) out.set(d.subarray((k * ny + j) * nx, (k * ny + j + 1) * nx) as never, (j * nz + k) * nx);
          if ((j & 15) === 15) await tick();
        }
      } else {
        for (let i = 0; i < nx; i++) {
          let o = i * nz * ny;
          for (let k = 0; k < nz; k++) {
            let src = k * ny * nx + i;
            for (let j = 0; j < ny; j++, src += nx) out[o++] = d[src]!;
          }
          if ((i & 7) === 7) await tick();
        }
      }
      await this.put(key, axis, out);
      // meta updates of one key one after another (x and y may finish together)
      const update = (this.metaLocks.get(key) ?? Promise.resolve()).then(async () => {
        const now = (await this.meta(key)) ?? m;
        await this.putMeta(key, { ...now, axes: [...new Set([...now.axes, axis])] });
      });
      const tail = update.catch(() => undefined);
      this.metaLocks.set(key, tail);
      await update;
      if (this.metaLocks.get(key) === tail) this.metaLocks.delete(key);
    });
  }

  private once(id: string, f: () => Promise<void>): Promise<void> {
    let b = this.building.get(id);
    if (b) return b;
    b = f()
      .catch(() => undefined)
      .finally(() => this.building.delete(id));
    this.building.set(id, b);
    return b;
  }

  private async put(key: string, ext: string, data: VoxelArray): Promise<void> {
    const f = this.file(key, ext);
    const tmp = `${f}.${process.pid}-${Math.random().toString(36).slice(2)}`;
    try {
      await writeFile(tmp, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      await rename(tmp, f);
    } catch (e) {
      await rm(tmp, { force: true }).catch(() => undefined);
      throw e;
    }
  }

  private async putMeta(key: string, m: SlicedMeta): Promise<void> {
    const f = this.file(key, 'json');
    await writeFile(`${f}.${process.pid}`, JSON.stringify(m));
    await rename(`${f}.${process.pid}`, f);
    this.metas.delete(key);
  }
}
