/**
 * The viewer's caches, one set per server (built when the viewer routes are registered in
 * `createServer`, so two servers in one process never share state): small LRU maps keyed by blob
 * hash — blobs never change, so nothing here is ever stale.
 * @module
 */
import type { flaggedRegions } from '../core/viewer/regions.js';
import type { VoxelArray } from '../core/volume.js';
import { autoWindow } from '../core/viewer/window.js';

/** A least-recently-used map with a fixed number of entries. */
export class Lru<V> {
  private readonly m = new Map<string, V>();
  /** @param max - entries kept */
  constructor(private readonly max: number) {}
  /** The value, marked as used. */
  get(k: string): V | undefined {
    const v = this.m.get(k);
    if (v !== undefined) {
      this.m.delete(k);
      this.m.set(k, v);
    }
    return v;
  }
  /** Store a value (the oldest entries go); returns it. */
  set(k: string, v: V): V {
    this.m.set(k, v);
    while (this.m.size > this.max) this.m.delete(this.m.keys().next().value!);
    return v;
  }
  /** Whether a key is held. */
  has(k: string): boolean {
    return this.m.has(k);
  }
}

/** Display facts of an image. */
export interface ImageStats {
  range: [number, number];
  window: [number, number];
  ct: boolean;
}

/**
 * Display range (a strided pass over big volumes), window and CT-ness of an image's voxels: what
 * the slice worker writes beside the slice files and the viewer computes for what has none.
 */
export function displayStats(d: VoxelArray, nz: number): ImageStats {
  let lo = Infinity, hi = -Infinity;
  const step = d.length > 4e6 ? 7 : 1; // a strided pass is plenty for a display range
  for (let i = 0; i < d.length; i += step) {
    const x = d[i]!;
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  const ct = (d instanceof Int16Array || d instanceof Int32Array || d instanceof Float32Array) && lo <= -500 && nz > 1;
  const window: [number, number] = ct ? [-160, 240] : d instanceof Uint8Array ? [0, 255] : autoWindow(d as never);
  return { range: [lo, hi], window, ct };
}

/** The caches of one server's viewer routes. */
export class ViewerCaches {
  /** Display range / window / CT-ness per image blob. */
  readonly stats = new Lru<ImageStats>(64);
  /** Label values present per label blob. */
  readonly labels = new Lru<number[]>(64);
  /** Overlays decoded to 8 bits per overlay blob. */
  readonly overlays = new Lru<Promise<Uint8Array>>(6);
  /** Flagged regions per overlay blob and parameters. */
  readonly regions = new Lru<ReturnType<typeof flaggedRegions>>(32);
  /** Blobs whose full decode has finished (value unused). */
  readonly decoded = new Lru<true>(256);
  /** Axial planes streamed before the full decode, per `hash:k`. */
  readonly planes = new Lru<Promise<VoxelArray | null>>(64);
}
