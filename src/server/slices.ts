/**
 * Slices of a volume for viewers that draw in 2D (the review UI's Canvas slice viewer): one plane
 * along an axis, raw (the stored voxel type) or windowed to 8-bit PNG.
 * @module
 */
import { MedmaskError } from '../core/errors.js';
import { allocVoxels, createVolume, voxelTypeOf, type Volume, type VoxelArray } from '../core/volume.js';
import { encodePng } from '../io/image2d.js';

/** Axis a slice is taken across: z axial (i × j), y coronal (i × k), x sagittal (j × k). */
export type SliceAxis = 'x' | 'y' | 'z';

/** A 2D plane with its size. */
export interface Slice {
  width: number;
  height: number;
  components: number;
  data: VoxelArray;
}

/**
 * Extract one slice.
 * @example
 * const s = extractSlice(ct, 'z', 100); // s.width === nx, s.height === ny
 */
export function extractSlice(v: Volume, axis: SliceAxis, index: number): Slice {
  const [nx, ny, nz] = v.shape;
  const c = v.components;
  const n = axis === 'z' ? nz : axis === 'y' ? ny : nx;
  if (!Number.isInteger(index) || index < 0 || index >= n) throw new MedmaskError('USAGE', `slice index ${index} is outside 0…${n - 1} along ${axis}`);
  if (axis === 'z') {
    const plane = nx * ny * c;
    return { width: nx, height: ny, components: c, data: v.data.subarray(index * plane, (index + 1) * plane) as VoxelArray };
  }
  const [w, h] = axis === 'y' ? [nx, nz] : [ny, nz];
  const out = allocVoxels(voxelTypeOf(v.data), w * h * c);
  for (let r = 0; r < h; r++) {
    for (let q = 0; q < w; q++) {
      const src = axis === 'y' ? q + nx * (index + ny * r) : index + nx * (q + ny * r);
      for (let cc = 0; cc < c; cc++) out[(q + w * r) * c + cc] = v.data[src * c + cc]!;
    }
  }
  return { width: w, height: h, components: c, data: out };
}

/**
 * Window a slice to 8-bit and encode it as PNG.
 * @param window - [low, high]; default the slice's own min and max
 */
export async function slicePng(s: Slice, window?: [number, number]): Promise<Buffer> {
  let lo = window?.[0];
  let hi = window?.[1];
  if (lo === undefined || hi === undefined) {
    lo = Infinity;
    hi = -Infinity;
    for (let i = 0; i < s.data.length; i++) {
      const x = s.data[i]!;
      if (x < lo) lo = x;
      if (x > hi) hi = x;
    }
  }
  const scale = hi > lo ? 255 / (hi - lo) : 0;
  const out = new Uint8Array(s.data.length);
  for (let i = 0; i < out.length; i++) out[i] = Math.max(0, Math.min(255, Math.round((s.data[i]! - lo) * scale)));
  return encodePng(createVolume([s.width, s.height, 1], 'uint8', { data: out, components: s.components }));
}

/** Little-endian bytes of a typed array (copy only when it is a view into a bigger buffer). */
export function rawBytes(a: VoxelArray): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}
