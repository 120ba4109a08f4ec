/**
 * Overlap and surface-distance metrics for binary masks on 2D/3D grids with spacing: Dice, IoU,
 * and the 95th-percentile Hausdorff distance in millimetres.
 *
 * HD95 follows MONAI's `compute_hausdorff_distance(percentile=95)`: surfaces are the mask voxels
 * with a face neighbour outside the mask (mask minus its erosion by the face-connected cross),
 * distances are exact Euclidean distances (with spacing) from each surface voxel of one mask to the
 * nearest surface voxel of the other, and the result is the larger of the two directed 95th
 * percentiles (numpy's linear interpolation).
 * @module
 */
import { MedmaskError } from '../errors.js';
import { percentile, type Shape3 } from '../masks/binary.js';

/** Dice = 2|A∩B| / (|A| + |B|); 1 when both are empty (nothing to find, nothing found). */
export function dice(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const { inter, na, nb } = overlap(a, b);
  return na + nb === 0 ? 1 : (2 * inter) / (na + nb);
}

/** IoU = |A∩B| / |A∪B|; 1 when both are empty. */
export function iou(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const { inter, na, nb } = overlap(a, b);
  return na + nb === 0 ? 1 : inter / (na + nb - inter);
}

/**
 * Mean Dice over `labels` of two label maps, in one pass; a label absent from both counts as 1.
 * @example
 * meanLabelDice([1, 1, 2, 0], [1, 2, 2, 0], [1, 2]); // (2/3 + 2/3) / 2
 */
export function meanLabelDice(pred: ArrayLike<number>, truth: ArrayLike<number>, labels: readonly number[]): number {
  if (pred.length !== truth.length) throw new MedmaskError('USAGE', `label maps differ in size: ${pred.length} vs ${truth.length} voxels`, { hint: 'compare label maps on the same grid' });
  if (!labels.length) return 1;
  const n = Math.max(...labels) + 1;
  const inter = new Float64Array(n), np = new Float64Array(n), nt = new Float64Array(n);
  for (let v = 0; v < pred.length; v++) {
    const p = pred[v]!, t = truth[v]!;
    if (p < n) np[p]!++;
    if (t < n) nt[t]!++;
    if (p === t && p < n) inter[p]!++;
  }
  let s = 0;
  for (const l of labels) s += np[l]! + nt[l]! === 0 ? 1 : (2 * inter[l]!) / (np[l]! + nt[l]!);
  return s / labels.length;
}

function overlap(a: ArrayLike<number>, b: ArrayLike<number>): { inter: number; na: number; nb: number } {
  if (a.length !== b.length) throw new MedmaskError('USAGE', `masks differ in size: ${a.length} vs ${b.length} voxels`, { hint: 'compare masks on the same grid' });
  let inter = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] ? 1 : 0, y = b[i] ? 1 : 0;
    na += x;
    nb += y;
    inter += x & y;
  }
  return { inter, na, nb };
}

/** Surface voxels: in the mask with at least one face neighbour outside it (or outside the grid). */
export function surface(mask: ArrayLike<number>, grid: Shape3): Uint8Array {
  const [nx, ny, nz] = grid;
  const out = new Uint8Array(mask.length);
  for (let z = 0; z < nz; z++) for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++) {
    const p = x + nx * (y + ny * z);
    if (!mask[p]) continue;
    const inside = (qx: number, qy: number, qz: number) => qx >= 0 && qy >= 0 && qz >= 0 && qx < nx && qy < ny && qz < nz && !!mask[qx + nx * (qy + ny * qz)];
    const edge = !inside(x - 1, y, z) || !inside(x + 1, y, z) || !inside(x, y - 1, z) || !inside(x, y + 1, z) || (nz > 1 && (!inside(x, y, z - 1) || !inside(x, y, z + 1)));
    if (edge) out[p] = 1;
  }
  return out;
}

/**
 * 1D squared distance transform of Felzenszwalb & Huttenlocher (lower envelope of parabolas),
 * in place over a strided line; `w` is the squared sample spacing.
 */
function edt1d(f: Float64Array, off: number, stride: number, n: number, w: number, v: Int32Array, zs: Float64Array, d: Float64Array): void {
  let k = 0;
  v[0] = 0;
  zs[0] = -Infinity;
  zs[1] = Infinity;
  const val = (q: number) => f[off + q * stride]!;
  for (let q = 1; q < n; q++) {
    if (val(q) === Infinity) continue;
    if (val(v[k]!) === Infinity) {
      v[k] = q;
      continue;
    }
    let s: number;
    for (;;) {
      const p = v[k]!;
      s = (val(q) + w * q * q - (val(p) + w * p * p)) / (2 * w * (q - p));
      if (s <= zs[k]! && k > 0) k--;
      else break;
    }
    k++;
    v[k] = q;
    zs[k] = s;
    zs[k + 1] = Infinity;
  }
  if (val(v[0]!) === Infinity) return; // no finite value on this line
  k = 0;
  for (let q = 0; q < n; q++) {
    while (zs[k + 1]! < q) k++;
    const p = v[k]!;
    d[q] = w * (q - p) * (q - p) + val(p);
  }
  for (let q = 0; q < n; q++) f[off + q * stride] = d[q]!;
}

/**
 * Exact squared Euclidean distance (mm²) from every voxel to the nearest voxel where `seed` is set,
 * with anisotropic spacing. Infinity everywhere when `seed` is empty.
 */
export function squaredDistanceTo(seed: ArrayLike<number>, grid: Shape3, spacing: readonly [number, number, number]): Float64Array {
  const [nx, ny, nz] = grid;
  const f = new Float64Array(seed.length);
  for (let i = 0; i < f.length; i++) f[i] = seed[i] ? 0 : Infinity;
  const m = Math.max(nx, ny, nz);
  const v = new Int32Array(m), zs = new Float64Array(m + 1), d = new Float64Array(m);
  for (let z = 0; z < nz; z++) for (let y = 0; y < ny; y++) edt1d(f, nx * (y + ny * z), 1, nx, spacing[0] ** 2, v, zs, d);
  for (let z = 0; z < nz; z++) for (let x = 0; x < nx; x++) edt1d(f, x + nx * ny * z, nx, ny, spacing[1] ** 2, v, zs, d);
  if (nz > 1) for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++) edt1d(f, x + nx * y, nx * ny, nz, spacing[2] ** 2, v, zs, d);
  return f;
}

/**
 * 95th-percentile symmetric Hausdorff distance in mm (see the module notes for the definition).
 * @returns the distance; 0 when both masks are empty; Infinity when exactly one is empty
 * @example
 * hd95(pred, truth, [256, 256, 1], [0.7, 0.7, 1]);
 */
export function hd95(a: ArrayLike<number>, b: ArrayLike<number>, grid: Shape3, spacing: readonly [number, number, number], q = 95): number {
  overlap(a, b);
  const sa = surface(a, grid), sb = surface(b, grid);
  const anyA = sa.some((x) => x > 0), anyB = sb.some((x) => x > 0);
  if (!anyA && !anyB) return 0;
  if (!anyA || !anyB) return Infinity;
  const directed = (from: Uint8Array, toDist: Float64Array) => {
    const ds: number[] = [];
    for (let i = 0; i < from.length; i++) if (from[i]) ds.push(Math.sqrt(toDist[i]!));
    return percentile(ds, q);
  };
  return Math.max(directed(sa, squaredDistanceTo(sb, grid, spacing)), directed(sb, squaredDistanceTo(sa, grid, spacing)));
}
