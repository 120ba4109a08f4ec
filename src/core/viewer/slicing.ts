/**
 * Views of a volume: which voxel a pixel of an axial, coronal or sagittal slice is. Same
 * convention as the server's slice routes: axis `z` (axial) shows i across and j down; `y`
 * (coronal) i across and k down; `x` (sagittal) j across and k down. Voxel order is medmask's:
 * `i + nx · (j + ny · k)`.
 * @module
 */
import { MedmaskError } from '../errors.js';

/** The axis a view cuts across: z axial, y coronal, x sagittal. */
export type ViewAxis = 'x' | 'y' | 'z';
/** Volume shape [nx, ny, nz]. */
export type Shape3 = readonly [number, number, number];

/** Width, height and number of slices of the view along `axis`. */
export function viewDims(shape: Shape3, axis: ViewAxis): { width: number; height: number; depth: number } {
  const [nx, ny, nz] = shape;
  if (axis === 'z') return { width: nx, height: ny, depth: nz };
  if (axis === 'y') return { width: nx, height: nz, depth: ny };
  return { width: ny, height: nz, depth: nx };
}

/**
 * The voxel index of pixel (q, r) of slice `index` along `axis`.
 * @example
 * viewToVoxel([4, 3, 2], 'y', 1, 2, 1); // i=2, j=1, k=1 → 2 + 4·(1 + 3·1) = 18
 */
export function viewToVoxel(shape: Shape3, axis: ViewAxis, index: number, q: number, r: number): number {
  const [nx, ny] = shape;
  if (axis === 'z') return q + nx * (r + ny * index);
  if (axis === 'y') return q + nx * (index + ny * r);
  return index + nx * (q + ny * r);
}

/**
 * The view position of voxel (i, j, k): its slice index and pixel (q, r) along `axis`.
 * @example
 * voxelToView('x', 5, 6, 7); // { index: 5, q: 6, r: 7 }
 */
export function voxelToView(axis: ViewAxis, i: number, j: number, k: number): { index: number; q: number; r: number } {
  if (axis === 'z') return { index: k, q: i, r: j };
  if (axis === 'y') return { index: j, q: i, r: k };
  return { index: i, q: j, r: k };
}

/**
 * Copy slice `index` along `axis` out of a volume's voxels (one component).
 * @param out - optional output of width · height values
 * @example
 * const plane = extractViewSlice(labels, [nx, ny, nz], 'z', 10);
 */
export function extractViewSlice<T extends { length: number; [i: number]: number }>(data: T, shape: Shape3, axis: ViewAxis, index: number, out?: T): T {
  const { width, height, depth } = viewDims(shape, axis);
  if (!Number.isInteger(index) || index < 0 || index >= depth) throw new MedmaskError('USAGE', `slice index ${index} is outside 0…${depth - 1} along ${axis}`);
  const res = out ?? (new (data.constructor as new (n: number) => T)(width * height));
  for (let r = 0; r < height; r++) for (let q = 0; q < width; q++) res[q + width * r] = data[viewToVoxel(shape, axis, index, q, r)]!;
  return res;
}

/**
 * Height / width of one pixel of the view in millimetres, for drawing anisotropic voxels.
 * @example
 * pixelAspect([0.8, 0.8, 2.5], 'y'); // 3.125: coronal pixels are 3.125× taller than wide
 */
export function pixelAspect(spacing: readonly [number, number, number], axis: ViewAxis): number {
  const [sx, sy, sz] = spacing;
  if (axis === 'z') return sy / sx;
  if (axis === 'y') return sz / sx;
  return sz / sy;
}

/**
 * Whether the view's rows should be drawn bottom-up so that the patient's head is at the top:
 * true for coronal and sagittal views when k runs towards superior (LPS +z), as on a scanner
 * with an identity direction.
 * @param direction - row-major 3×3, columns are the voxel axes in LPS
 */
export function flipRows(direction: readonly number[], axis: ViewAxis): boolean {
  if (axis === 'z') return false;
  // column k's LPS z component
  return (direction[8] ?? 1) > 0;
}
