/**
 * Overlay blobs (heat map, uncertainty, attention) as the viewer needs them: one 8-bit map on the
 * image's grid, whatever format the job stored. Atlas jobs store scalar NIfTI maps; annotate jobs
 * store the heat map and uncertainty map as the PNG pictures `show_cam_on_image` draws (jet over
 * the image). The format is told by the blob's first bytes (gzip / NIfTI / PNG signatures), never
 * assumed: NIfTI maps are scaled to 0…255, grey PNGs taken as they are, and RGB pictures inverted
 * back to the scalar map on the image they were drawn on (`core/viewer/heatmap-composite.ts`).
 * @module
 */
import sharp, { type OutputInfo } from 'sharp';
import { MedmaskError } from '../core/errors.js';
import { displayRgb } from '../core/explain/overlay.js';
import { invertHeatmapComposite } from '../core/viewer/heatmap-composite.js';
import type { Volume } from '../core/volume.js';
import type { BlobStore } from '../store/blob-store.js';
import { getVolume } from '../store/volumes.js';

/** What an overlay blob holds, told by its first bytes. */
export type OverlayFormat = 'nifti-gz' | 'nifti' | 'png' | 'unknown';

/**
 * The format of a stored overlay from its first bytes.
 * @example
 * overlayFormat(await blobs.get(hash)); // 'png'
 */
export function overlayFormat(head: Uint8Array): OverlayFormat {
  if (head.length >= 8 && head[0] === 0x89 && head[1] === 0x50 && head[2] === 0x4e && head[3] === 0x47) return 'png';
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'nifti-gz';
  if (head.length >= 348 && (head[0]! | (head[1]! << 8) | (head[2]! << 16) | (head[3]! << 24)) === 348) return 'nifti';
  return 'unknown';
}

/** Content type and file name suffix to send an overlay blob with. */
export function overlayMime(head: Uint8Array): { type: string; ext: string } {
  const f = overlayFormat(head);
  return f === 'png' ? { type: 'image/png', ext: '.png' } : f === 'nifti-gz' ? { type: 'application/gzip', ext: '.nii.gz' } : f === 'nifti' ? { type: 'application/octet-stream', ext: '.nii' } : { type: 'application/octet-stream', ext: '' };
}

/** A scalar volume as 8 bits (0…255 ≙ 0…1): uint8 maps as they are (×255 when they hold only 0/1), others scaled by their maximum. */
export function scalarToU8(d: ArrayLike<number>): Uint8Array {
  let mx = 0;
  for (let i = 0; i < d.length; i++) if (d[i]! > mx) mx = d[i]!;
  if (d instanceof Uint8Array && mx > 1) return d;
  const s = mx > 0 ? 255 / mx : 0;
  const out = new Uint8Array(d.length);
  for (let i = 0; i < d.length; i++) {
    const x = d[i]! * s;
    out[i] = x <= 0 ? 0 : x >= 255 ? 255 : Math.round(x);
  }
  return out;
}

/**
 * Decode an overlay blob to an 8-bit map on the image's grid.
 * @param blobs - the blob store
 * @param hash - the overlay's blob
 * @param shape - the image's grid
 * @param image - the image the overlay belongs to (decoded only for pictures: what they were drawn on)
 * @returns nx · ny · nz values, x fastest
 * @throws MedmaskError CORRUPT_FILE / UNSUPPORTED_FORMAT / GEOMETRY_MISMATCH naming the blob
 */
export async function decodeOverlay(blobs: BlobStore, hash: string, shape: readonly [number, number, number], image: () => Promise<Volume>): Promise<Uint8Array> {
  const bytes = await blobs.get(hash);
  const what = `overlay blob ${hash.slice(0, 12)}`;
  const format = overlayFormat(bytes);
  const n = shape[0] * shape[1] * shape[2];
  if (format === 'nifti-gz' || format === 'nifti') {
    const v = await getVolume(blobs, hash);
    if (v.data.length !== n) throw new MedmaskError('GEOMETRY_MISMATCH', `${what} holds ${v.shape.join('×')} voxels but the image ${shape.join('×')}`, { hint: 'run the job again on this image' });
    return scalarToU8(v.data);
  }
  if (format !== 'png') throw new MedmaskError('UNSUPPORTED_FORMAT', `${what} is neither NIfTI nor PNG (first bytes ${[...bytes.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ')})`, { hint: 'overlays are stored by annotate / atlas jobs; run the job again' });
  let raw: { data: Buffer; info: OutputInfo };
  try {
    raw = await sharp(bytes).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new MedmaskError('CORRUPT_FILE', `${what}: the PNG cannot be decoded (${(e as Error).message})`, { cause: e, hint: 'run the job again on this image' });
  }
  const { width, height, channels } = raw.info;
  if (shape[2] !== 1 || width !== shape[0] || height !== shape[1]) {
    throw new MedmaskError('GEOMETRY_MISMATCH', `${what} is a ${width}×${height} picture but the image is ${shape.join('×')}`, { hint: 'run the job again on this image' });
  }
  if (channels === 1) return new Uint8Array(raw.data.buffer, raw.data.byteOffset, raw.data.length).slice();
  const img = await image();
  const rgb = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) rgb[3 * i + c] = raw.data[i * channels + Math.min(c, channels - 1)]!;
  return invertHeatmapComposite(rgb, displayRgb(img)).map;
}
