/**
 * Flagged regions: the connected components of a thresholded attention (or heat) map, the places
 * AbdomenAtlas-8K asks a reviewer to revise (Qu et al. 2023), listed largest-attention first with
 * where to jump to. Components come from `masks/binary.ts` (26-connected in 3D, 8 in 2D), run on
 * the bounding box of the thresholded voxels only, so a sparse map of a large CT stays cheap.
 * @module
 */
import { connectedComponents, type Shape3 as Grid } from '../masks/binary.js';

/** One flagged region. */
export interface FlaggedRegion {
  /** 1-based rank (1 = most attention). */
  rank: number;
  voxels: number;
  /** Inclusive voxel bounds [i, j, k]. */
  min: [number, number, number];
  max: [number, number, number];
  /** Mean voxel position (i, j, k). */
  centroid: [number, number, number];
  /** The voxel of highest map value. */
  peakAt: [number, number, number];
  /** Highest and mean map value in the region. */
  peak: number;
  mean: number;
}

/** Options of {@link flaggedRegions}. */
export interface FlaggedRegionOptions {
  /** A voxel is flagged when its value is ≥ this (default: > 0). */
  threshold?: number;
  /** Drop smaller components (default 1). */
  minVoxels?: number;
  /** Keep at most this many (default 100). */
  maxRegions?: number;
}

/**
 * Connected components of `map ≥ threshold`, ranked by total map value (size × mean).
 * @param map - attention / heat values on the grid, x fastest
 * @param grid - [nx, ny, nz]
 * @example
 * flaggedRegions(attention, [512, 512, 200], { threshold: 128, minVoxels: 20 });
 */
export function flaggedRegions(map: ArrayLike<number>, grid: Grid, o: FlaggedRegionOptions = {}): FlaggedRegion[] {
  const [nx, ny, nz] = grid;
  const thr = o.threshold;
  const on = (v: number) => (thr === undefined ? v > 0 : v >= thr);
  let i0 = nx, j0 = ny, k0 = nz, i1 = -1, j1 = -1, k1 = -1;
  for (let k = 0, p = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, p++) {
        if (!on(map[p]!)) continue;
        if (i < i0) i0 = i;
        if (i > i1) i1 = i;
        if (j < j0) j0 = j;
        if (j > j1) j1 = j;
        if (k < k0) k0 = k;
        if (k > k1) k1 = k;
      }
    }
  }
  if (i1 < 0) return [];
  const cx = i1 - i0 + 1, cy = j1 - j0 + 1, cz = k1 - k0 + 1;
  const crop = new Uint8Array(cx * cy * cz);
  for (let k = 0; k < cz; k++) for (let j = 0; j < cy; j++) {
    const src = i0 + nx * (j + j0 + ny * (k + k0));
    const dst = cx * (j + cy * k);
    for (let i = 0; i < cx; i++) crop[dst + i] = on(map[src + i]!) ? 1 : 0;
  }
  const comp = connectedComponents(crop, [cx, cy, cz]);
  const n = comp.count;
  const sum = new Float64Array(n + 1), si = new Float64Array(n + 1), sj = new Float64Array(n + 1), sk = new Float64Array(n + 1);
  const peak = new Float64Array(n + 1).fill(-Infinity), peakAt = new Int32Array(3 * (n + 1));
  const mn = new Int32Array(3 * (n + 1)).fill(2 ** 30), mx = new Int32Array(3 * (n + 1)).fill(-1);
  for (let k = 0, p = 0; k < cz; k++) for (let j = 0; j < cy; j++) for (let i = 0; i < cx; i++, p++) {
    const l = comp.labels[p]!;
    if (!l) continue;
    const I = i + i0, J = j + j0, K = k + k0;
    const v = map[I + nx * (J + ny * K)]!;
    sum[l]! += v;
    si[l]! += I;
    sj[l]! += J;
    sk[l]! += K;
    if (v > peak[l]!) {
      peak[l] = v;
      peakAt.set([I, J, K], 3 * l);
    }
    const c = [I, J, K];
    for (let d = 0; d < 3; d++) {
      if (c[d]! < mn[3 * l + d]!) mn[3 * l + d] = c[d]!;
      if (c[d]! > mx[3 * l + d]!) mx[3 * l + d] = c[d]!;
    }
  }
  const out: FlaggedRegion[] = [];
  for (let l = 1; l <= n; l++) {
    const s = comp.sizes[l]!;
    if (s < (o.minVoxels ?? 1)) continue;
    out.push({
      rank: 0,
      voxels: s,
      min: [mn[3 * l]!, mn[3 * l + 1]!, mn[3 * l + 2]!],
      max: [mx[3 * l]!, mx[3 * l + 1]!, mx[3 * l + 2]!],
      centroid: [si[l]! / s, sj[l]! / s, sk[l]! / s],
      peakAt: [peakAt[3 * l]!, peakAt[3 * l + 1]!, peakAt[3 * l + 2]!],
      peak: peak[l]!,
      mean: sum[l]! / s,
    });
  }
  out.sort((a, b) => b.voxels * b.mean - a.voxels * a.mean || b.voxels - a.voxels);
  const kept = out.slice(0, o.maxRegions ?? 100);
  kept.forEach((r, t) => (r.rank = t + 1));
  return kept;
}
