/**
 * Binary masks on 2D and 3D grids: thresholds (fixed, Otsu, percentile), connected components,
 * hole filling, morphology with a full 3×3 (2D) or 3×3×3 (3D) square structure.
 *
 * A grid is `[nx, ny, nz]`, x fastest, as medmask's Volume; `nz === 1` is 2D and then
 * neighbourhoods stay in the plane. Masks are Uint8Array of 0/1.
 * @module
 */
import { MedmaskError } from '../errors.js';

import type { Shape3 } from '../atlas/morphology.js';

export type { Shape3 };

function size(g: Shape3): number {
  return g[0] * g[1] * g[2];
}

function checkLength(name: string, a: ArrayLike<number>, g: Shape3): void {
  if (a.length !== size(g)) throw new MedmaskError('USAGE', `${name} has ${a.length} values but the grid ${g.join('×')} has ${size(g)}`, { hint: 'pass arrays of the same grid' });
}

/**
 * Otsu's threshold: the value that maximises the between-class variance of a `bins`-bin histogram
 * over [min, max] (as skimage.filters.threshold_otsu: the threshold is a bin centre, and values
 * strictly above it are foreground).
 * @param values - map values (NaN ignored)
 * @param bins - histogram bins (default 256)
 * @returns the threshold
 * @example
 * otsuThreshold([0, 0, 0, 1, 1, 1]); // ≈ 0.5 (a bin centre between the two modes)
 */
export function otsuThreshold(values: ArrayLike<number>, bins = 256): number {
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (!(hi > lo)) return lo;
  const hist = new Float64Array(bins);
  const w = (hi - lo) / bins;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (Number.isNaN(v)) continue;
    hist[Math.min(bins - 1, Math.floor((v - lo) / w))]!++;
  }
  const centre = (b: number) => lo + (b + 0.5) * w;
  let total = 0, sumAll = 0;
  for (let b = 0; b < bins; b++) {
    total += hist[b]!;
    sumAll += hist[b]! * centre(b);
  }
  let w0 = 0, sum0 = 0, best = -1, bestB = 0;
  for (let b = 0; b < bins - 1; b++) {
    w0 += hist[b]!;
    sum0 += hist[b]! * centre(b);
    const w1 = total - w0;
    if (w0 === 0 || w1 === 0) continue;
    const m0 = sum0 / w0, m1 = (sumAll - sum0) / w1;
    const between = w0 * w1 * (m0 - m1) ** 2;
    if (between > best) {
      best = between;
      bestB = b;
    }
  }
  return centre(bestB);
}

/**
 * The p-th percentile (0…100) with linear interpolation between order statistics (numpy's default).
 * @example
 * percentile([1, 2, 3, 4], 50); // 2.5
 */
export function percentile(values: ArrayLike<number>, p: number): number {
  if (!(p >= 0 && p <= 100)) throw new MedmaskError('USAGE', `percentile ${p} is outside 0…100`, { hint: 'e.g. 90 keeps the top 10 %' });
  const s = Float64Array.from(values).sort();
  if (!s.length) return NaN;
  const pos = (p / 100) * (s.length - 1);
  const i = Math.floor(pos), f = pos - i;
  return i + 1 < s.length ? s[i]! * (1 - f) + s[i + 1]! * f : s[i]!;
}

/** Threshold choice. */
export type ThresholdSpec = { method: 'fixed'; value: number } | { method: 'otsu'; bins?: number } | { method: 'percentile'; p: number };

/**
 * Binarise a map: 1 where value > threshold.
 * @returns the mask and the threshold used
 */
export function binarize(map: ArrayLike<number>, spec: ThresholdSpec): { mask: Uint8Array; threshold: number } {
  const t = spec.method === 'fixed' ? spec.value : spec.method === 'otsu' ? otsuThreshold(map, spec.bins) : percentile(map, spec.p);
  const mask = new Uint8Array(map.length);
  for (let i = 0; i < map.length; i++) mask[i] = map[i]! > t ? 1 : 0;
  return { mask, threshold: t };
}

/** Neighbour offsets of a connectivity: 2D 4 or 8, 3D 6 or 26. */
function neighbours(g: Shape3, full: boolean): [number, number, number][] {
  const out: [number, number, number][] = [];
  const zr = g[2] > 1 ? [-1, 0, 1] : [0];
  for (const dz of zr) for (const dy of [-1, 0, 1]) for (const dx of [-1, 0, 1]) {
    const n = Math.abs(dx) + Math.abs(dy) + Math.abs(dz);
    if (n === 0) continue;
    if (full || n === 1) out.push([dx, dy, dz]);
  }
  return out;
}

/** Connected components of a mask. */
export interface Components {
  /** Component id per voxel, 0 = background, 1…count. */
  labels: Int32Array;
  count: number;
  /** Voxels per component; index 0 unused. */
  sizes: number[];
}

/**
 * Label the connected components of a mask (breadth-first flood fill).
 * @param mask - 0/1 mask
 * @param grid - its grid
 * @param full - full connectivity (8 in 2D, 26 in 3D; default) or faces only (4 / 6)
 * @returns labels, count and sizes
 * @example
 * connectedComponents(Uint8Array.of(1, 0, 1), [3, 1, 1]).count; // 2
 */
export function connectedComponents(mask: ArrayLike<number>, grid: Shape3, full = true): Components {
  checkLength('mask', mask, grid);
  const [nx, ny, nz] = grid;
  const labels = new Int32Array(size(grid));
  const nb = neighbours(grid, full);
  const queue = new Int32Array(size(grid));
  const sizes = [0];
  let count = 0;
  for (let start = 0; start < labels.length; start++) {
    if (!mask[start] || labels[start]) continue;
    count++;
    let head = 0, tail = 0;
    queue[tail++] = start;
    labels[start] = count;
    while (head < tail) {
      const p = queue[head++]!;
      const x = p % nx, y = Math.floor(p / nx) % ny, z = Math.floor(p / (nx * ny));
      for (const [dx, dy, dz] of nb) {
        const qx = x + dx, qy = y + dy, qz = z + dz;
        if (qx < 0 || qy < 0 || qz < 0 || qx >= nx || qy >= ny || qz >= nz) continue;
        const q = qx + nx * (qy + ny * qz);
        if (mask[q] && !labels[q]) {
          labels[q] = count;
          queue[tail++] = q;
        }
      }
    }
    sizes.push(tail);
  }
  return { labels, count, sizes };
}

/** Remove components smaller than `minSize` voxels. */
export function removeSmallComponents(mask: ArrayLike<number>, grid: Shape3, minSize: number): Uint8Array {
  const c = connectedComponents(mask, grid);
  const keep = new Uint8Array(c.count + 1);
  for (let l = 1; l <= c.count; l++) keep[l] = c.sizes[l]! >= minSize ? 1 : 0;
  const out = new Uint8Array(c.labels.length);
  for (let i = 0; i < out.length; i++) out[i] = keep[c.labels[i]!]!;
  return out;
}

/** Keep the k largest components (ties: the one found first, in voxel order). */
export function keepLargestComponents(mask: ArrayLike<number>, grid: Shape3, k: number): Uint8Array {
  const c = connectedComponents(mask, grid);
  const order = Array.from({ length: c.count }, (_, i) => i + 1).sort((a, b) => c.sizes[b]! - c.sizes[a]! || a - b);
  const keep = new Uint8Array(c.count + 1);
  for (const id of order.slice(0, k)) keep[id] = 1;
  const out = new Uint8Array(c.labels.length);
  for (let i = 0; i < out.length; i++) out[i] = keep[c.labels[i]!]!;
  return out;
}

/**
 * Fill holes: background regions not connected to the grid border (face connectivity for the
 * background, as scipy.ndimage.binary_fill_holes) become foreground. In 3D, holes are 3D cavities.
 * A flood fill of the background from the border; what it does not reach is a hole.
 */
export function fillHoles(mask: ArrayLike<number>, grid: Shape3): Uint8Array {
  checkLength('mask', mask, grid);
  const [nx, ny, nz] = grid;
  const plane = nx * ny;
  const reached = new Uint8Array(mask.length);
  const queue = new Int32Array(mask.length);
  let tail = 0;
  const seed = (p: number) => {
    if (!mask[p] && !reached[p]) {
      reached[p] = 1;
      queue[tail++] = p;
    }
  };
  for (let z = 0; z < nz; z++) for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++) {
    if (x === 0 || y === 0 || x === nx - 1 || y === ny - 1 || (nz > 1 && (z === 0 || z === nz - 1))) seed(x + nx * y + plane * z);
  }
  for (let head = 0; head < tail; head++) {
    const p = queue[head]!;
    const x = p % nx, y = ((p - x) / nx) % ny, z = (p - x - nx * y) / plane;
    if (x > 0) seed(p - 1);
    if (x < nx - 1) seed(p + 1);
    if (y > 0) seed(p - nx);
    if (y < ny - 1) seed(p + nx);
    if (z > 0) seed(p - plane);
    if (z < nz - 1) seed(p + plane);
  }
  const out = new Uint8Array(mask.length);
  for (let i = 0; i < out.length; i++) out[i] = mask[i] || !reached[i] ? 1 : 0;
  return out;
}

/**
 * Binary erosion or dilation with the full square/cube structure, `iterations` times. Outside the
 * grid counts as background (scipy.ndimage's default border_value=0), so erosion eats in from the
 * border.
 */
export function morph(mask: ArrayLike<number>, grid: Shape3, op: 'erode' | 'dilate', iterations = 1): Uint8Array {
  checkLength('mask', mask, grid);
  const [nx, ny, nz] = grid;
  let cur = new Uint8Array(mask.length);
  for (let i = 0; i < cur.length; i++) cur[i] = mask[i] ? 1 : 0;
  let next = new Uint8Array(mask.length);
  const erode = op === 'erode';
  // Separable: the full structure is the product of three 1D [1,1,1] structures.
  const axes: [number, number, number][] = [[1, nx, nx], [nx, ny, nx * ny], ...(nz > 1 ? [[nx * ny, nz, nx * ny * nz] as [number, number, number]] : [])];
  for (let it = 0; it < iterations; it++) {
    for (const [stride, len, block] of axes) {
      // Lines along this axis: for each block start and each offset below the stride.
      for (let b0 = 0; b0 < cur.length; b0 += block) {
        for (let o = 0; o < stride; o++) {
          const start = b0 + o, last = start + (len - 1) * stride;
          for (let p = start; p <= last; p += stride) {
            const a = p > start ? cur[p - stride]! : 0, c = p < last ? cur[p + stride]! : 0, v = cur[p]!;
            next[p] = erode ? a & v & c : a | v | c;
          }
        }
      }
      [cur, next] = [next, cur];
    }
  }
  return cur;
}

/** Opening (erode then dilate) or closing (dilate then erode), each `iterations` times. */
export function openClose(mask: ArrayLike<number>, grid: Shape3, op: 'open' | 'close', iterations = 1): Uint8Array {
  return op === 'open'
    ? morph(morph(mask, grid, 'erode', iterations), grid, 'dilate', iterations)
    : morph(morph(mask, grid, 'dilate', iterations), grid, 'erode', iterations);
}

/** Number of foreground voxels. */
export function countOn(mask: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i]) n++;
  return n;
}
