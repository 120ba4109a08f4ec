/**
 * Reorientation to LPS voxel axes by permuting and flipping index axes (exact: no interpolation),
 * as nibabel's `io_orientation` + `apply_orientation` do and as the demo models were trained
 * (`tools/train/train3d.py`): afterwards index axis i points (mostly) to patient Left, j to
 * Posterior, k to Superior. The inverse puts model outputs back on the original voxel order.
 * @module
 */
import type { Mat3, Vec3 } from '../volume.js';
import type { Grid } from './resample.js';

/** An axis permutation with flips: new axis a is old axis `perm[a]`, reversed when `flip[a]`. */
export interface AxisTransform {
  perm: [number, number, number];
  flip: [boolean, boolean, boolean];
}

/**
 * The transform bringing a direction matrix to LPS voxel axes: each index axis is assigned the
 * world axis it is closest to (greedy by largest |cosine|, as `orientationCode`).
 * @param direction - row-major 3×3, columns the index axes' world directions
 * @returns the permutation and flips
 * @example
 * lpsAxes([-1, 0, 0, 0, -1, 0, 0, 0, 1]); // { perm: [0, 1, 2], flip: [true, true, false] } (a RAS NIfTI)
 */
export function lpsAxes(direction: Readonly<Mat3>): AxisTransform {
  const perm: [number, number, number] = [0, 1, 2];
  const flip: [boolean, boolean, boolean] = [false, false, false];
  const usedWorld = new Set<number>();
  // Assign pairs (index axis, world axis) in order of decreasing |cos|, each used once.
  const pairs: { c: number; r: number; v: number }[] = [];
  for (let c = 0; c < 3; c++) for (let r = 0; r < 3; r++) pairs.push({ c, r, v: Math.abs(direction[r * 3 + c]!) });
  pairs.sort((p, q) => q.v - p.v || p.c - q.c || p.r - q.r);
  const usedIndex = new Set<number>();
  for (const { c, r } of pairs) {
    if (usedIndex.has(c) || usedWorld.has(r)) continue;
    usedIndex.add(c);
    usedWorld.add(r);
    perm[r] = c;
    flip[r] = direction[r * 3 + c]! < 0;
  }
  return { perm, flip };
}

/** True when the transform changes nothing. */
export function isIdentityTransform(t: AxisTransform): boolean {
  return t.perm[0] === 0 && t.perm[1] === 1 && t.perm[2] === 2 && !t.flip[0] && !t.flip[1] && !t.flip[2];
}

/**
 * Apply an axis transform to a grid's geometry (the world position of every voxel is unchanged).
 * @param g - the grid
 * @param t - transform from {@link lpsAxes}
 * @returns the reoriented grid
 */
export function transformGrid(g: Grid, t: AxisTransform): Grid {
  const shape = [0, 1, 2].map((a) => g.shape[t.perm[a]!]!) as Vec3;
  const spacing = [0, 1, 2].map((a) => g.spacing[t.perm[a]!]!) as Vec3;
  const direction = [0, 0, 0, 0, 0, 0, 0, 0, 0] as Mat3;
  for (let a = 0; a < 3; a++) {
    const s = t.flip[a] ? -1 : 1;
    for (let r = 0; r < 3; r++) direction[r * 3 + a] = s * g.direction[r * 3 + t.perm[a]!]!;
  }
  // New voxel 0 is the old voxel with index n − 1 on flipped axes.
  const old = [0, 0, 0];
  for (let a = 0; a < 3; a++) if (t.flip[a]) old[t.perm[a]!] = g.shape[t.perm[a]!]! - 1;
  const origin = [0, 1, 2].map((r) => g.origin[r]! + g.direction[r * 3]! * g.spacing[0] * old[0]! + g.direction[r * 3 + 1]! * g.spacing[1] * old[1]! + g.direction[r * 3 + 2]! * g.spacing[2] * old[2]!) as Vec3;
  return { shape, spacing, origin, direction };
}

/**
 * Reorder voxels by an axis transform.
 * @param data - voxels on the old grid, x fastest
 * @param shape - old shape
 * @param t - the transform
 * @param out - destination (same length and type family); allocated like `data` when absent
 * @returns voxels on the new grid
 * @example
 * const lps = applyAxes(ct.data, ct.shape, lpsAxes(ct.direction));
 */
export function applyAxes<T extends { length: number; [i: number]: number }>(data: T, shape: Vec3, t: AxisTransform, out?: T): T {
  const o = out ?? (new (data.constructor as new (n: number) => T)(data.length));
  const newShape = [shape[t.perm[0]]!, shape[t.perm[1]]!, shape[t.perm[2]]!];
  const oldStride = [1, shape[0], shape[0] * shape[1]];
  // Old linear index = Σ_a stride(perm[a]) · (flip ? n − 1 − i_a : i_a).
  const step = [0, 1, 2].map((a) => (t.flip[a] ? -1 : 1) * oldStride[t.perm[a]!]!);
  const start = [0, 1, 2].reduce((s, a) => s + (t.flip[a] ? (newShape[a]! - 1) * oldStride[t.perm[a]!]! : 0), 0);
  let v = 0;
  for (let k = 0; k < newShape[2]!; k++) {
    const zk = start + k * step[2]!;
    for (let j = 0; j < newShape[1]!; j++) {
      let idx = zk + j * step[1]!;
      for (let i = 0; i < newShape[0]!; i++, v++, idx += step[0]!) o[v] = data[idx]!;
    }
  }
  return o;
}

/**
 * The inverse transform: applying `t` then `invertAxes(t)` restores the original order.
 * @example
 * const back = applyAxes(lpsLabels, lpsShape, invertAxes(t));
 */
export function invertAxes(t: AxisTransform): AxisTransform {
  const perm: [number, number, number] = [0, 0, 0];
  const flip: [boolean, boolean, boolean] = [false, false, false];
  for (let a = 0; a < 3; a++) {
    perm[t.perm[a]!] = a;
    flip[t.perm[a]!] = t.flip[a]!;
  }
  return { perm, flip };
}
