/**
 * Resampling between axis-aligned grids that share a direction matrix: a CT to a model's spacing
 * and the model's output back to the CT's own grid. Separable (one 1D pass per axis), so it costs
 * O(voxels) with float32 intermediates.
 *
 * Grid convention (as `tools/train/train3d.py` trains the demo models, and as
 * `torch.nn.functional.grid_sample(align_corners=True)` with border padding): a grid at a new
 * spacing keeps the **first voxel centre**; it has `floor((n − 1) · s / s′) + 1` voxels along an
 * axis of n voxels at spacing s, so it never reaches past the last source voxel centre. Sampling
 * outside the source clamps to its border voxels (edge replication).
 *
 * Interpolation: `linear` (trilinear: images, and probabilities — "probability-linear" for
 * labels) or `nearest` (label maps).
 * @module
 */
import { MedmaskError } from '../errors.js';
import type { Mat3, Vec3 } from '../volume.js';

/** Geometry of a voxel grid (a Volume without data). */
export interface Grid {
  shape: Vec3;
  spacing: Vec3;
  origin: Vec3;
  direction: Mat3;
}

/** Interpolation of {@link resampleToGrid}. */
export type Interpolation = 'linear' | 'nearest';

/** Arrays {@link resampleToGrid} reads. */
export type SampleArray = Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array | Float64Array;

/** Options of {@link resampleToGrid}. */
export interface ResampleOptions {
  /** Default `linear`. */
  interpolation?: Interpolation;
  /**
   * Destination array (its type decides the output: integer arrays get rounded, clamped values).
   * Default a new Float32Array.
   */
  out?: SampleArray;
  /** Tolerance for "same direction" (default 1e-4). */
  tolerance?: number;
  /**
   * Interpolate only the destination box whose taps reach the source's non-zero voxels and fill
   * the rest with 0 (default true; the values are identical, it is faster for sparse data such as
   * an organ's probabilities). `false` always runs the passes over the whole grid.
   */
  sparse?: boolean;
}

/**
 * The grid of the same field at another spacing, keeping the first voxel centre (see the module
 * documentation).
 * @param g - source grid
 * @param spacing - new spacing, mm, along the grid's own axes
 * @returns the new grid (same origin and direction)
 * @throws MedmaskError USAGE for a spacing that is not positive
 * @example
 * gridAtSpacing({ shape: [512, 512, 300], spacing: [0.7, 0.7, 1], origin, direction }, [4, 4, 6]).shape; // [90, 90, 50]
 */
export function gridAtSpacing(g: Grid, spacing: Vec3): Grid {
  for (const s of spacing) if (!(s > 0) || !Number.isFinite(s)) throw new MedmaskError('USAGE', `spacing ${JSON.stringify(spacing)} must be positive, finite millimetres`, { hint: 'give x, y, z spacing in mm, e.g. [4, 4, 6]' });
  const shape = g.shape.map((n, a) => Math.floor(((n - 1) * g.spacing[a]!) / spacing[a]! + 1e-6) + 1) as Vec3;
  return { shape, spacing: [...spacing], origin: [...g.origin], direction: [...g.direction] as Mat3 };
}

/** Per axis: index into the source of each destination index, `a · i + b`. */
function axisMaps(src: Grid, dst: Grid, tol: number): { a: Vec3; b: Vec3 } {
  for (let k = 0; k < 9; k++) {
    if (Math.abs(src.direction[k]! - dst.direction[k]!) > tol) {
      throw new MedmaskError('GEOMETRY_MISMATCH', `grids have different directions (${JSON.stringify(src.direction)} vs ${JSON.stringify(dst.direction)})`, {
        hint: 'bring both to the same voxel axes first (reorientation); resampling here is axis-aligned',
      });
    }
  }
  const d = src.direction;
  const diff = [dst.origin[0] - src.origin[0], dst.origin[1] - src.origin[1], dst.origin[2] - src.origin[2]];
  const a = [0, 0, 0] as Vec3;
  const b = [0, 0, 0] as Vec3;
  for (let ax = 0; ax < 3; ax++) {
    // Component of the origin offset along axis ax (columns of the direction are orthonormal).
    const along = d[ax]! * diff[0]! + d[3 + ax]! * diff[1]! + d[6 + ax]! * diff[2]!;
    a[ax] = dst.spacing[ax]! / src.spacing[ax]!;
    b[ax] = along / src.spacing[ax]!;
  }
  return { a, b };
}

interface Taps {
  i0: Int32Array;
  i1: Int32Array;
  w1: Float32Array;
}

function taps(n: number, nDst: number, a: number, b: number, nearest: boolean): Taps {
  const i0 = new Int32Array(nDst), i1 = new Int32Array(nDst), w1 = new Float32Array(nDst);
  for (let i = 0; i < nDst; i++) {
    let x = a * i + b;
    x = x < 0 ? 0 : x > n - 1 ? n - 1 : x;
    if (nearest) {
      // Round half to even, as grid_sample's nearest mode (nearbyint).
      let r = Math.round(x);
      if (Math.abs(x - Math.trunc(x) - 0.5) < 1e-9 && r % 2 !== 0) r -= 1;
      i0[i] = i1[i] = r;
      w1[i] = 0;
    } else {
      const f = Math.floor(x);
      const lo = Math.min(f, n - 1);
      i0[i] = lo;
      i1[i] = Math.min(lo + 1, n - 1);
      w1[i] = x - lo;
    }
  }
  return { i0, i1, w1 };
}

/** One 1D pass along `axis` from a [nx, ny, nz] array into [.., nDst along axis, ..]. */
function pass(src: ArrayLike<number>, shape: Vec3, axis: 0 | 1 | 2, t: Taps, dst: { [i: number]: number; length: number }, round: ((v: number) => number) | null): Vec3 {
  const [nx, ny, nz] = shape;
  const nd = t.i0.length;
  const out: Vec3 = [nx, ny, nz];
  out[axis] = nd;
  const { i0, i1, w1 } = t;
  if (axis === 0) {
    for (let z = 0, o = 0; z < nz; z++) for (let y = 0; y < ny; y++) {
      const base = nx * (y + ny * z);
      for (let i = 0; i < nd; i++, o++) {
        const v0 = src[base + i0[i]!]!;
        const v = v0 + w1[i]! * (src[base + i1[i]!]! - v0);
        dst[o] = round ? round(v) : v;
      }
    }
  } else if (axis === 1) {
    for (let z = 0, o = 0; z < nz; z++) for (let j = 0; j < nd; j++) {
      const r0 = nx * (i0[j]! + ny * z), r1 = nx * (i1[j]! + ny * z), w = w1[j]!;
      for (let x = 0; x < nx; x++, o++) {
        const v0 = src[r0 + x]!;
        const v = v0 + w * (src[r1 + x]! - v0);
        dst[o] = round ? round(v) : v;
      }
    }
  } else {
    const plane = nx * ny;
    for (let k = 0, o = 0; k < nd; k++) {
      const p0 = plane * i0[k]!, p1 = plane * i1[k]!, w = w1[k]!;
      for (let p = 0; p < plane; p++, o++) {
        const v0 = src[p0 + p]!;
        const v = v0 + w * (src[p1 + p]! - v0);
        dst[o] = round ? round(v) : v;
      }
    }
  }
  return out;
}

function rounder(out: SampleArray): ((v: number) => number) | null {
  if (out instanceof Float32Array || out instanceof Float64Array) return null;
  const lim: Record<string, [number, number]> = {
    Uint8Array: [0, 255], Int8Array: [-128, 127], Uint16Array: [0, 65535], Int16Array: [-32768, 32767], Uint32Array: [0, 4294967295], Int32Array: [-2147483648, 2147483647],
  };
  const [lo, hi] = lim[out.constructor.name] ?? [-Infinity, Infinity];
  return (v) => (v <= lo ? lo : v >= hi ? hi : Math.round(v));
}

/**
 * Sample a scalar array on another grid with the same direction (trilinear or nearest, edges
 * replicated).
 * @param data - source voxels, x fastest, one component
 * @param src - source grid
 * @param dst - destination grid (same direction)
 * @param opts - interpolation (default linear), output array
 * @returns the destination array
 * @throws MedmaskError GEOMETRY_MISMATCH for different directions; USAGE for wrong lengths
 * @example
 * const atModel = resampleToGrid(ct.data, ct, gridAtSpacing(ct, [4, 4, 6]));
 * const back = resampleToGrid(probs, modelGrid, ct, { out: new Uint8Array(ct.data.length) });
 */
export function resampleToGrid(data: SampleArray, src: Grid, dst: Grid, opts: ResampleOptions = {}): SampleArray {
  const nSrc = src.shape[0] * src.shape[1] * src.shape[2];
  const nDst = dst.shape[0] * dst.shape[1] * dst.shape[2];
  if (data.length !== nSrc) throw new MedmaskError('USAGE', `source has ${data.length} voxels, its grid ${src.shape.join('×')} needs ${nSrc}`);
  const out = opts.out ?? new Float32Array(nDst);
  if (out.length !== nDst) throw new MedmaskError('USAGE', `output has ${out.length} voxels, the destination grid ${dst.shape.join('×')} needs ${nDst}`);
  const nearest = (opts.interpolation ?? 'linear') === 'nearest';
  if (!nearest && opts.interpolation !== undefined && opts.interpolation !== 'linear') {
    throw new MedmaskError('USAGE', `interpolation "${String(opts.interpolation)}" is unknown`, { hint: 'use linear or nearest' });
  }
  const { a, b } = axisMaps(src, dst, opts.tolerance ?? 1e-4);
  const tx = taps(src.shape[0], dst.shape[0], a[0], b[0], nearest);
  const ty = taps(src.shape[1], dst.shape[1], a[1], b[1], nearest);
  const tz = taps(src.shape[2], dst.shape[2], a[2], b[2], nearest);
  // Sparse data (an organ's probabilities): voxels whose taps all read zeros are exactly zero, so
  // only the destination box whose taps reach the source's non-zero box is interpolated — with the
  // same taps and the same passes, hence the same values — and the rest is filled with zeros.
  if (opts.sparse !== false) {
    const box = nonzeroBox(data, src.shape);
    if (!box) {
      out.fill(0);
      return out;
    }
    const crop = box.lo.map((lo, ax) => cropAxis([tx, ty, tz][ax]!, lo, box.hi[ax]!));
    const cropSrc = crop.map((c) => c.src[1] - c.src[0] + 1) as Vec3;
    const cropDst = crop.map((c) => c.dst[1] - c.dst[0] + 1) as Vec3;
    const covered = (cropDst[0] * cropDst[1] * cropDst[2]) / nDst;
    if (covered < 0.6) {
      const sub = extractBox(data, src.shape, crop.map((c) => c.src[0]) as Vec3, cropSrc);
      const part = interpolate(sub, cropSrc, cropDst, [crop[0]!.taps, crop[1]!.taps, crop[2]!.taps], nearest, new (out.constructor as new (n: number) => SampleArray)(cropDst[0] * cropDst[1] * cropDst[2]));
      out.fill(0);
      pasteBox(part, cropDst, out, dst.shape, crop.map((c) => c.dst[0]) as Vec3);
      return out;
    }
  }
  return interpolate(data, src.shape, dst.shape, [tx, ty, tz], nearest, out);
}

/** The three separable passes into `out` (shapes: source, destination). */
function interpolate(data: ArrayLike<number>, srcShape: Vec3, dstShape: Vec3, t: [Taps, Taps, Taps], nearest: boolean, out: SampleArray): SampleArray {
  // Nearest on an integer output: copy values exactly through a float64 intermediate.
  const Inter = nearest && !(out instanceof Float32Array) ? Float64Array : Float32Array;
  let shape: Vec3 = [...srcShape];
  const t1 = new Inter(dstShape[0] * shape[1] * shape[2]);
  shape = pass(data, shape, 0, t[0], t1, null);
  const t2 = new Inter(shape[0] * dstShape[1] * shape[2]);
  shape = pass(t1, shape, 1, t[1], t2, null);
  // uint8 output: a clamped view rounds (half to even) and clamps in the typed-array store itself.
  if (out instanceof Uint8Array) pass(t2, shape, 2, t[2], new Uint8ClampedArray(out.buffer, out.byteOffset, out.length), null);
  else pass(t2, shape, 2, t[2], out, rounder(out));
  return out;
}

/** Bounding box (inclusive) of the non-zero voxels, or null when every voxel is 0. */
function nonzeroBox(data: ArrayLike<number>, shape: Vec3): { lo: Vec3; hi: Vec3 } | null {
  const [nx, ny, nz] = shape;
  const lo: Vec3 = [nx, ny, nz], hi: Vec3 = [-1, -1, -1];
  for (let z = 0, v = 0; z < nz; z++) for (let y = 0; y < ny; y++) {
    let first = -1, last = -1;
    for (let x = 0; x < nx; x++, v++) {
      if (data[v] !== 0) {
        if (first < 0) first = x;
        last = x;
      }
    }
    if (first < 0) continue;
    if (first < lo[0]) lo[0] = first;
    if (last > hi[0]) hi[0] = last;
    if (y < lo[1]) lo[1] = y;
    if (y > hi[1]) hi[1] = y;
    if (z < lo[2]) lo[2] = z;
    if (z > hi[2]) hi[2] = z;
  }
  return hi[0] < 0 ? null : { lo, hi };
}

/**
 * Along one axis: the destination indices whose taps reach source [lo, hi] (contiguous: taps grow
 * with the index), the source span those taps read, and the taps relative to that span.
 */
function cropAxis(t: Taps, lo: number, hi: number): { dst: [number, number]; src: [number, number]; taps: Taps } {
  const n = t.i0.length;
  let d0 = 0;
  while (d0 < n && t.i1[d0]! < lo) d0++;
  let d1 = n - 1;
  while (d1 >= 0 && t.i0[d1]! > hi) d1--;
  if (d1 < d0) d1 = d0 = Math.min(d0, n - 1); // no destination voxel reads the box: keep one (it reads zeros)
  const s0 = t.i0[d0]!, s1 = t.i1[d1]!;
  const m = d1 - d0 + 1;
  const i0 = new Int32Array(m), i1 = new Int32Array(m), w1 = new Float32Array(m);
  for (let i = 0; i < m; i++) {
    i0[i] = t.i0[d0 + i]! - s0;
    i1[i] = t.i1[d0 + i]! - s0;
    w1[i] = t.w1[d0 + i]!;
  }
  return { dst: [d0, d1], src: [s0, Math.max(s1, t.i0[d1]!)], taps: { i0, i1, w1 } };
}

function extractBox(data: ArrayLike<number>, shape: Vec3, start: Vec3, size: Vec3): Float32Array | Float64Array {
  const out = new Float64Array(size[0] * size[1] * size[2]);
  const [nx, ny] = shape;
  for (let z = 0, o = 0; z < size[2]; z++) for (let y = 0; y < size[1]; y++) {
    const base = start[0] + nx * (start[1] + y + ny * (start[2] + z));
    for (let x = 0; x < size[0]; x++, o++) out[o] = data[base + x]!;
  }
  return out;
}

function pasteBox(part: ArrayLike<number>, size: Vec3, out: SampleArray, shape: Vec3, start: Vec3): void {
  const [nx, ny] = shape;
  for (let z = 0, o = 0; z < size[2]; z++) for (let y = 0; y < size[1]; y++) {
    const base = start[0] + nx * (start[1] + y + ny * (start[2] + z));
    for (let x = 0; x < size[0]; x++, o++) out[base + x] = part[o]!;
  }
}
