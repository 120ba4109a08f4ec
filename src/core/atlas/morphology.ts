/**
 * 3D binary morphology on x-fastest voxel grids, matching `scipy.ndimage.binary_erosion` /
 * `binary_dilation` with `structure = generate_binary_structure(3, connectivity)`, `iterations`
 * and the default `border_value = 0` (voxels outside the grid count as 0: erosion eats the
 * border, dilation never grows from outside). AbdomenAtlas-8K (Qu et al. 2023) cleans its
 * inconsistency and uncertainty masks with 2 erosions and 2 dilations of the full 3×3×3 cube
 * (`generate_binary_structure(3, 3)`, 26-neighbourhood).
 *
 * For the full cube, k iterations equal one pass with a (2k+1)³ cube, and a cube is separable into
 * three 1D passes, so erosion and dilation cost O(voxels) whatever k. Connectivity 1 (6
 * neighbours) and 2 (18 neighbours) are iterated directly.
 * @module
 */
import { MedmaskError } from '../errors.js';

/** Voxels along x, y, z (x fastest in memory). */
export type Shape3 = readonly [number, number, number];

/**
 * Neighbourhood of the structuring element, as scipy's `generate_binary_structure(3, c)`:
 * 1 → 6 face neighbours, 2 → 18 (faces and edges), 3 → 26 (the full 3×3×3 cube).
 */
export type Connectivity = 1 | 2 | 3;

/** Options for {@link binaryErosion} and {@link binaryDilation}. */
export interface MorphologyOptions {
  /** Times the structuring element is applied (default 1; 0 copies the input). */
  iterations?: number;
  /** Structuring element (default 3: the full 3×3×3 cube). */
  connectivity?: Connectivity;
  /** Write the result here (may be the input itself); allocated when absent. */
  out?: Uint8Array;
}

/** Options for {@link binaryOpening}. */
export interface OpeningOptions {
  /** Erosions (default 2, as AbdomenAtlas). */
  erosions?: number;
  /** Dilations (default 2). */
  dilations?: number;
  /** Structuring element (default 3). */
  connectivity?: Connectivity;
  /** Write the result here (may be the input itself). */
  out?: Uint8Array;
}

/**
 * Check that a mask fits a shape.
 * @throws MedmaskError USAGE when the length or the shape is wrong
 */
export function checkShape(data: { length: number }, shape: Shape3, what = 'mask'): number {
  for (const n of shape) {
    if (!Number.isInteger(n) || n < 1) throw new MedmaskError('USAGE', `shape ${JSON.stringify(shape)} of the ${what} must hold positive integers`, { hint: 'give voxels along x, y, z' });
  }
  const n = shape[0] * shape[1] * shape[2];
  if (data.length !== n) {
    throw new MedmaskError('USAGE', `${what} has ${data.length} voxels but shape ${shape.join('×')} needs ${n}`, { hint: 'pass the shape of the grid the array was made on (x fastest)' });
  }
  return n;
}

function checkIterations(k: number, name: string): void {
  if (!Number.isInteger(k) || k < 0 || k > 1000) throw new MedmaskError('USAGE', `${name} ${k} must be a whole number from 0 to 1000`, { hint: 'AbdomenAtlas uses 2' });
}

function checkConnectivity(c: number): asserts c is Connectivity {
  if (c !== 1 && c !== 2 && c !== 3) throw new MedmaskError('USAGE', `connectivity ${c} must be 1, 2 or 3`, { hint: '3 is the full 3×3×3 cube (26 neighbours), as generate_binary_structure(3, 3)' });
}

/** Offsets (dx, dy, dz) of the structuring element, centre included. */
function structure(connectivity: Connectivity): [number, number, number][] {
  const out: [number, number, number][] = [];
  for (let dz = -1; dz <= 1; dz++) for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
    if (Math.abs(dx) + Math.abs(dy) + Math.abs(dz) <= connectivity) out.push([dx, dy, dz]);
  }
  return out;
}

/**
 * One 1D pass along an axis with radius r. Erosion: a voxel stays 1 when all voxels within r on
 * the line exist and are 1. Dilation: a voxel becomes 1 when any voxel within r on the line is 1.
 */
function pass1d(src: Uint8Array, dst: Uint8Array, shape: Shape3, axis: 0 | 1 | 2, r: number, erode: boolean, line: Int32Array): void {
  const [nx, ny, nz] = shape;
  const n = shape[axis];
  const stride = axis === 0 ? 1 : axis === 1 ? nx : nx * ny;
  // The other two axes enumerate the lines.
  const outerA = axis === 2 ? ny : nz;
  const outerB = axis === 0 ? ny : nx;
  for (let a = 0; a < outerA; a++) {
    for (let b = 0; b < outerB; b++) {
      const start = axis === 0 ? nx * (b + ny * a) : axis === 1 ? b + nx * ny * a : b + nx * a;
      if (erode) {
        // line[p] = length of the run of ones ending at p.
        let run = 0;
        for (let p = 0, q = start; p < n; p++, q += stride) {
          run = src[q] ? run + 1 : 0;
          line[p] = run;
        }
        for (let p = 0, q = start; p < n; p++, q += stride) {
          dst[q] = p - r >= 0 && p + r < n && line[p + r]! >= 2 * r + 1 ? 1 : 0;
        }
      } else {
        // line[p] = position of the last one at or before p (−1 − r − 1 when none).
        let last = -2 * r - 2;
        for (let p = 0, q = start; p < n; p++, q += stride) {
          if (src[q]) last = p;
          line[p] = last;
        }
        for (let p = 0, q = start; p < n; p++, q += stride) {
          dst[q] = line[Math.min(n - 1, p + r)]! >= p - r ? 1 : 0;
        }
      }
    }
  }
}

/**
 * A 1D pass along an axis that is not the fastest one, done a whole row of `inner` voxels at a
 * time (contiguous memory): the volume is viewed as [outer][n][inner].
 */
function passRows(src: Uint8Array, dst: Uint8Array, n: number, inner: number, outer: number, r: number, erode: boolean, acc: Int32Array): void {
  const full = 2 * r + 1;
  for (let o = 0; o < outer; o++) {
    const base = o * n * inner;
    acc.fill(erode ? 0 : -2 * r - 2);
    for (let p = 0; p < n; p++) {
      const rowP = base + p * inner;
      if (erode) for (let x = 0; x < inner; x++) acc[x] = src[rowP + x] ? acc[x]! + 1 : 0; // run of ones ending at p
      else for (let x = 0; x < inner; x++) if (src[rowP + x]) acc[x] = p; // last one at or before p
      const q = p - r;
      if (q < 0) continue;
      const rowQ = base + q * inner;
      if (erode) {
        if (q < r) dst.fill(0, rowQ, rowQ + inner);
        else for (let x = 0; x < inner; x++) dst[rowQ + x] = acc[x]! >= full ? 1 : 0;
      } else for (let x = 0; x < inner; x++) dst[rowQ + x] = acc[x]! >= q - r ? 1 : 0;
    }
    // Rows whose window reaches past the end.
    for (let q = Math.max(0, n - r); q < n; q++) {
      const rowQ = base + q * inner;
      if (erode) dst.fill(0, rowQ, rowQ + inner);
      else for (let x = 0; x < inner; x++) dst[rowQ + x] = acc[x]! >= q - r ? 1 : 0;
    }
  }
}

/** Full-cube morphology with radius r by three separable passes. */
function cube(mask: Uint8Array, shape: Shape3, r: number, erode: boolean, out: Uint8Array): Uint8Array {
  const [nx, ny, nz] = shape;
  const line = new Int32Array(nx);
  const acc = new Int32Array(nx * ny);
  const tmp = new Uint8Array(mask.length);
  // x: mask → tmp; y: tmp → out; z: out → tmp; copy tmp → out. (out may alias mask: the x pass
  // has read all of mask before the y pass writes out.)
  pass1d(mask, tmp, shape, 0, r, erode, line);
  passRows(tmp, out, ny, nx, nz, r, erode, acc);
  passRows(out, tmp, nz, nx * ny, 1, r, erode, acc);
  out.set(tmp);
  return out;
}

/** One iteration with a small structuring element, brute force. */
function step(src: Uint8Array, dst: Uint8Array, shape: Shape3, offsets: [number, number, number][], erode: boolean): void {
  const [nx, ny, nz] = shape;
  for (let z = 0, v = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++, v++) {
        let hit = erode ? 1 : 0;
        for (const [dx, dy, dz] of offsets) {
          const X = x + dx, Y = y + dy, Z = z + dz;
          const inside = X >= 0 && X < nx && Y >= 0 && Y < ny && Z >= 0 && Z < nz;
          const val = inside ? src[X + nx * (Y + ny * Z)]! : 0; // border_value = 0
          if (erode ? !val : val) {
            hit = erode ? 0 : 1;
            break;
          }
        }
        dst[v] = hit;
      }
    }
  }
}

function morph(mask: Uint8Array, shape: Shape3, opts: MorphologyOptions, erode: boolean): Uint8Array {
  const n = checkShape(mask, shape);
  const k = opts.iterations ?? 1;
  checkIterations(k, 'iterations');
  const connectivity = opts.connectivity ?? 3;
  checkConnectivity(connectivity);
  const out = opts.out ?? new Uint8Array(n);
  if (out.length !== n) throw new MedmaskError('USAGE', `output array has ${out.length} voxels, the mask ${n}`, { hint: 'allocate the output with the mask\'s length' });
  if (k === 0) {
    for (let i = 0; i < n; i++) out[i] = mask[i] ? 1 : 0;
    return out;
  }
  if (connectivity === 3) return cube(mask, shape, k, erode, out);
  const offsets = structure(connectivity);
  const bufs = [new Uint8Array(n), new Uint8Array(n)] as const;
  let src = mask;
  for (let it = 0; it < k; it++) {
    const dst = bufs[it % 2]!;
    step(src, dst, shape, offsets, erode);
    src = dst;
  }
  out.set(src);
  return out;
}

/**
 * Binary erosion, as `scipy.ndimage.binary_erosion(mask, generate_binary_structure(3, c),
 * iterations)` with `border_value = 0`: a voxel stays set only when its whole neighbourhood lies
 * inside the grid and is set, repeated `iterations` times.
 * @param mask - nonzero = set; x fastest
 * @param shape - voxels along x, y, z
 * @param opts - iterations (default 1), connectivity (default 3), output array
 * @returns a 0/1 mask
 * @throws MedmaskError USAGE for a mask that does not fit the shape or bad options
 * @example
 * const e = binaryErosion(mask, [64, 64, 32], { iterations: 2 });
 */
export function binaryErosion(mask: Uint8Array, shape: Shape3, opts: MorphologyOptions = {}): Uint8Array {
  return morph(mask, shape, opts, true);
}

/**
 * Binary dilation, as `scipy.ndimage.binary_dilation` with `border_value = 0`: a voxel becomes set
 * when any voxel of its neighbourhood is set, repeated `iterations` times.
 * @param mask - nonzero = set; x fastest
 * @param shape - voxels along x, y, z
 * @param opts - iterations (default 1), connectivity (default 3), output array
 * @returns a 0/1 mask
 * @example
 * const d = binaryDilation(mask, [64, 64, 32], { iterations: 2, connectivity: 1 });
 */
export function binaryDilation(mask: Uint8Array, shape: Shape3, opts: MorphologyOptions = {}): Uint8Array {
  return morph(mask, shape, opts, false);
}

/**
 * Binary opening as AbdomenAtlas-8K cleans its masks (Qu et al. 2023, `std_post_process` /
 * `entropy_post_process`): `erosions` erosions, then `dilations` dilations, both with the same
 * structuring element and `border_value = 0`. With 2 and 2 this equals
 * `scipy.ndimage.binary_opening(mask, structure, iterations=2)`.
 * @param mask - nonzero = set
 * @param shape - voxels along x, y, z
 * @param opts - erosions, dilations (default 2 each), connectivity (default 3), output
 * @returns a 0/1 mask
 * @example
 * const cleaned = binaryOpening(std.map((s) => (s > 0.1 ? 1 : 0)), shape);
 */
export function binaryOpening(mask: Uint8Array, shape: Shape3, opts: OpeningOptions = {}): Uint8Array {
  const erosions = opts.erosions ?? 2;
  const dilations = opts.dilations ?? 2;
  checkIterations(erosions, 'erosions');
  checkIterations(dilations, 'dilations');
  const connectivity = opts.connectivity ?? 3;
  const eroded = binaryErosion(mask, shape, { iterations: erosions, connectivity, ...(opts.out ? { out: opts.out } : {}) });
  return binaryDilation(eroded, shape, { iterations: dilations, connectivity, out: eroded });
}
