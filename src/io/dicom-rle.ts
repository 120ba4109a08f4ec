/**
 * DICOM RLE Lossless (1.2.840.10008.1.2.5) decoded here, after PS3.5 Annex G: each frame is one
 * fragment with a 64-byte header (segment count, 15 segment offsets) and one PackBits segment per
 * byte plane — for each sample, the most significant byte first. Hand-written because GDCM (inside
 * itk-wasm, and the system's) scrambles 16- and 32-bit colour RLE (pydicom's `SC_rgb_rle_16bit`
 * reads `[0, 65280, 255]` instead of `[65535, 0, 0]`), and no maintained Node decoder exists.
 * @module
 */
import type { NaturalizedDataset } from 'dcmjs';
import { MedmaskError } from '../core/errors.js';
import type { VoxelArray } from '../core/volume.js';
import type { DecodedPixels } from './dicom-pixels.js';

function corrupt(path: string, what: string): MedmaskError {
  return new MedmaskError('CORRUPT_FILE', `${path}: RLE pixel data ${what}`, { hint: 'the file is damaged or truncated; export it again' });
}

/** PackBits (PS3.5 G.3.1) of `src` into exactly `out.length` bytes. */
function unpackBits(src: Uint8Array, out: Uint8Array, path: string): void {
  let i = 0;
  let o = 0;
  while (o < out.length) {
    if (i >= src.length) throw corrupt(path, `segment ends after ${o} of ${out.length} bytes`);
    const n = (src[i++]! << 24) >> 24;
    if (n >= 0) {
      const len = n + 1;
      if (i + len > src.length) throw corrupt(path, 'segment ends inside a literal run');
      out.set(src.subarray(i, i + Math.min(len, out.length - o)), o);
      i += len;
      o += len;
    } else if (n > -128) {
      if (i >= src.length) throw corrupt(path, 'segment ends inside a replicate run');
      const v = src[i++]!;
      const len = 1 - n;
      out.fill(v, o, Math.min(out.length, o + len));
      o += len;
    }
  }
}

/**
 * Decode every frame of an RLE Lossless dataset into stored values (samples interleaved).
 * @throws MedmaskError CORRUPT_FILE for damaged segments, UNSUPPORTED_FORMAT for odd bit depths
 * @example
 * const px = await decodeRle('sc.dcm', ds, bytes, { rows, columns, frames, samples, bitsAllocated: 16, signed: false });
 */
export async function decodeRle(
  path: string,
  ds: NaturalizedDataset,
  _all: Uint8Array,
  w: { rows: number; columns: number; frames: number; samples: number; bitsAllocated: number; signed: boolean },
): Promise<DecodedPixels> {
  if (![8, 16, 32].includes(w.bitsAllocated)) throw new MedmaskError('UNSUPPORTED_FORMAT', `${path}: RLE with BitsAllocated ${w.bitsAllocated} is not supported`, { hint: 'medmask decodes 8-, 16- and 32-bit RLE' });
  const v = ds.PixelData;
  const parts = ((Array.isArray(v) ? v : [v]) as Array<ArrayBuffer | ArrayBufferView>).map((p) => (p instanceof ArrayBuffer ? new Uint8Array(p) : new Uint8Array(p.buffer, p.byteOffset, p.byteLength)));
  if (parts.length !== w.frames) throw corrupt(path, `holds ${parts.length} fragment(s) for ${w.frames} frame(s)`);
  const B = w.bitsAllocated / 8;
  const plane = w.rows * w.columns;
  const n = plane * w.samples * w.frames;
  const Ctor = B === 1 ? (w.signed ? Int8Array : Uint8Array) : B === 2 ? (w.signed ? Int16Array : Uint16Array) : w.signed ? Int32Array : Uint32Array;
  const data: VoxelArray = new Ctor(n);
  const seg = new Uint8Array(plane);
  const acc = new Float64Array(plane);
  for (let f = 0; f < w.frames; f++) {
    const frag = parts[f]!;
    if (frag.length < 64) throw corrupt(path, `frame ${f + 1} is ${frag.length} bytes, shorter than its 64-byte header`);
    const dv = new DataView(frag.buffer, frag.byteOffset, frag.byteLength);
    const count = dv.getUint32(0, true);
    if (count !== w.samples * B) throw corrupt(path, `frame ${f + 1} has ${count} segments; ${w.samples} sample(s) × ${B} byte(s) need ${w.samples * B}`);
    const offsets = Array.from({ length: count }, (_, k) => dv.getUint32(4 + 4 * k, true));
    for (let s = 0; s < w.samples; s++) {
      acc.fill(0);
      for (let b = 0; b < B; b++) {
        const k = s * B + b;
        const start = offsets[k]!;
        const end = k + 1 < count ? offsets[k + 1]! : frag.length;
        if (start < 64 || end > frag.length || end < start) throw corrupt(path, `frame ${f + 1} segment ${k + 1} has offsets ${start}…${end} outside the ${frag.length}-byte fragment`);
        unpackBits(frag.subarray(start, end), seg, path);
        const scale = 2 ** (8 * (B - 1 - b));
        for (let p = 0; p < plane; p++) acc[p] += seg[p]! * scale;
      }
      const base = f * plane * w.samples;
      const top = 2 ** (8 * B);
      for (let p = 0; p < plane; p++) {
        const u = acc[p]!;
        data[base + p * w.samples + s] = w.signed && u >= top / 2 ? u - top : u;
      }
    }
  }
  return { data, frames: w.frames, rows: w.rows, columns: w.columns, samples: w.samples, rescaled: false };
}
