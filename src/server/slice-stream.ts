/**
 * Not on the viewer's request path any more (it reads slice files: volume-slices.ts); kept, with its test, until removed.
 * Axial planes straight out of a stored `.nii.gz` blob, inflating only as far as the planes asked
 * for: the first slice of a never-opened CT is on screen after inflating half the file instead of
 * decoding all of it (a 512×512×200 int16 CT: ~100 MB inflated, ~0.35 s on a quiet core, much
 * more on a busy one). Only the layout medmask's store writes is read this way (NIfTI-1,
 * little-endian, one component, identity scaling — `encodeNifti`); anything else answers null and
 * the caller decodes the whole volume as usual.
 * @module
 */
import { createGunzip } from 'node:zlib';
import type { VoxelArray, VoxelType } from '../core/volume.js';

const TYPES: Record<number, { type: VoxelType; ctor: new (b: ArrayBuffer) => VoxelArray; bytes: number }> = {
  2: { type: 'uint8', ctor: Uint8Array, bytes: 1 },
  4: { type: 'int16', ctor: Int16Array, bytes: 2 },
  8: { type: 'int32', ctor: Int32Array, bytes: 4 },
  16: { type: 'float32', ctor: Float32Array, bytes: 4 },
  64: { type: 'float64', ctor: Float64Array, bytes: 8 },
  256: { type: 'int8', ctor: Int8Array, bytes: 1 },
  512: { type: 'uint16', ctor: Uint16Array, bytes: 2 },
  768: { type: 'uint32', ctor: Uint32Array, bytes: 4 },
};

/** What {@link readAxialPlanes} found. */
export interface StreamedPlanes {
  shape: [number, number, number];
  type: VoxelType;
  /** k → the plane's voxels (x fastest), each its own buffer. */
  planes: Map<number, VoxelArray>;
}

function parseHeader(h: Buffer): { shape: [number, number, number]; code: number; offset: number } | null {
  if (h.readInt32LE(0) !== 348 || h.toString('latin1', 344, 347) !== 'n+1') return null;
  const ndim = h.readInt16LE(40);
  if (ndim < 2 || ndim > 4) return null;
  const nx = h.readInt16LE(42), ny = h.readInt16LE(44), nz = ndim >= 3 ? h.readInt16LE(46) : 1;
  if (ndim === 4 && h.readInt16LE(48) !== 1) return null; // several components / time points
  const code = h.readInt16LE(70);
  if (!TYPES[code]) return null;
  const slope = h.readFloatLE(112), inter = h.readFloatLE(116);
  if (!(slope === 0 || slope === 1 || Number.isNaN(slope)) || (slope === 1 && inter !== 0)) return null;
  const offset = h.readFloatLE(108);
  if (!Number.isInteger(offset) || offset < 352 || nx < 1 || ny < 1 || nz < 1) return null;
  return { shape: [nx, ny, nz], code, offset };
}

/**
 * Inflate a `.nii.gz` up to the last requested axial plane and return those planes.
 * @param gz - the compressed file
 * @param ks - plane indices (k) wanted
 * @returns the planes, or null when the file is not in the layout read here (decode it whole)
 * @example
 * const r = await readAxialPlanes(await blobs.get(image.blob), [100]);
 * r?.planes.get(100); // Int16Array of nx · ny
 */
export function readAxialPlanes(gz: Uint8Array, ks: number[]): Promise<StreamedPlanes | null> {
  return new Promise((resolve) => {
    const z = createGunzip({ chunkSize: 1 << 20 });
    let head: Buffer | null = null;
    let parsed: ReturnType<typeof parseHeader> = null;
    let out: Uint8Array | null = null;
    let need = 352;
    let got = 0;
    const pending: Buffer[] = [];
    let done = false;
    const finish = (r: StreamedPlanes | null) => {
      if (done) return;
      done = true;
      z.removeAllListeners('data');
      z.on('error', () => undefined);
      z.destroy();
      resolve(r);
    };
    z.on('data', (chunk: Buffer) => {
      if (done) return;
      if (!parsed) {
        pending.push(chunk);
        got += chunk.length;
        if (got < 352) return;
        head = Buffer.concat(pending);
        parsed = parseHeader(head);
        if (!parsed) return finish(null);
        const plane = parsed.shape[0] * parsed.shape[1] * TYPES[parsed.code]!.bytes;
        if (ks.some((k) => !Number.isInteger(k) || k < 0 || k >= parsed!.shape[2])) return finish(null);
        need = parsed.offset + (Math.max(...ks) + 1) * plane;
        out = new Uint8Array(need);
        out.set(head.subarray(0, Math.min(head.length, need)));
        got = Math.min(head.length, need);
      } else {
        const n = Math.min(chunk.length, need - got);
        out!.set(chunk.subarray(0, n), got);
        got += n;
      }
      if (got >= need) {
        const t = TYPES[parsed.code]!;
        const plane = parsed.shape[0] * parsed.shape[1] * t.bytes;
        const planes = new Map<number, VoxelArray>();
        for (const k of ks) {
          const start = parsed.offset + k * plane;
          planes.set(k, new t.ctor(out!.slice(start, start + plane).buffer));
        }
        finish({ shape: parsed.shape, type: t.type, planes });
      }
    });
    z.on('error', () => finish(null));
    z.on('end', () => finish(null)); // ended before the planes: truncated
    z.end(gz);
  });
}
