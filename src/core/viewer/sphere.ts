/**
 * The 3D sphere brush, sized in millimetres: the voxels whose centres lie within r mm of the
 * brush centre, on an anisotropic grid (a 5 mm brush on 0.7 × 0.7 × 2.5 mm CT covers ±7 voxels
 * in-plane and ±2 slices), as 3D Slicer's sphere brush.
 * @module
 */
import type { Shape3 } from './slicing.js';

/**
 * Voxel offsets [di, dj, dk] within an ellipsoid of radius `radiusMm` on a grid of `spacing`.
 * @example
 * sphereOffsets(2, [1, 1, 1]).length; // 33 (voxel centres within 2 mm)
 */
export function sphereOffsets(radiusMm: number, spacing: readonly [number, number, number]): Int32Array {
  const [sx, sy, sz] = spacing;
  const ri = Math.floor(radiusMm / sx), rj = Math.floor(radiusMm / sy), rk = Math.floor(radiusMm / sz);
  const r2 = radiusMm * radiusMm;
  const out: number[] = [];
  for (let dk = -rk; dk <= rk; dk++) {
    for (let dj = -rj; dj <= rj; dj++) {
      for (let di = -ri; di <= ri; di++) {
        if ((di * sx) ** 2 + (dj * sy) ** 2 + (dk * sz) ** 2 <= r2) out.push(di, dj, dk);
      }
    }
  }
  return Int32Array.from(out);
}

/**
 * Linear voxel indices of a sphere brush at voxel `center`, clipped to the volume.
 * @param center - [i, j, k] of the voxel under the cursor
 * @param radiusMm - brush radius in mm
 * @param spacing - voxel size in mm
 * @param shape - volume shape
 * @example
 * sphereVoxels([40, 40, 10], 5, [0.8, 0.8, 2.5], [96, 96, 24]);
 */
export function sphereVoxels(center: readonly [number, number, number], radiusMm: number, spacing: readonly [number, number, number], shape: Shape3): Uint32Array {
  const off = sphereOffsets(radiusMm, spacing);
  const [nx, ny, nz] = shape;
  const out: number[] = [];
  for (let t = 0; t < off.length; t += 3) {
    const i = center[0] + off[t]!, j = center[1] + off[t + 1]!, k = center[2] + off[t + 2]!;
    if (i < 0 || j < 0 || k < 0 || i >= nx || j >= ny || k >= nz) continue;
    out.push(i + nx * (j + ny * k));
  }
  return Uint32Array.from(out);
}
