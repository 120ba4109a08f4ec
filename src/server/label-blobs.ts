/**
 * Label versions saved without re-encoding the whole volume. A label blob written here is a
 * standard `.nii.gz` made of several gzip members — the NIfTI header, then one member per axial
 * plane (RFC 1952 allows concatenated members; zlib, Python's gzip / nibabel and `gzip -d` read
 * them as one stream) — and the member lengths are kept beside the version's slice files. A save
 * of a one-slice edit then compresses that one plane and copies every other member of the base
 * version's bytes as they are; only the first save on a blob written elsewhere compresses all
 * planes (in parallel on zlib's thread pool). The version semantics are untouched: the result is
 * a new blob, saved through the same compare-and-set as before.
 * @module
 */
import { promisify } from 'node:util';
import { gzip as gzipCb } from 'node:zlib';
import type { BlobStore } from '../store/blob-store.js';
import type { VolumeSlices } from './volume-slices.js';

const gzip = promisify(gzipCb);
const LEVEL = 3;

/**
 * Store a label volume as a per-plane multi-member `.nii.gz`, reusing the base version's members
 * for the planes that did not change.
 * @param blobs - the blob store
 * @param slices - where member lengths are kept (beside the slice files)
 * @param header - the label map's NIfTI header (352 bytes), used when the base has no members
 * @param shape - volume shape
 * @param data - the new labels (x fastest)
 * @param base - the base version's blob, or null (version 0)
 * @param changed - axial planes that differ from the base
 * @returns the new blob and how many planes were compressed
 * @example
 * await saveLabelsIncremental(blobs, slices, header, [512, 512, 203], labels, baseHash, new Set([100]));
 */
export async function saveLabelsIncremental(blobs: BlobStore, slices: VolumeSlices, header: () => Uint8Array, shape: readonly [number, number, number], data: Uint8Array, base: string | null, changed: ReadonlySet<number>): Promise<{ hash: string; size: number; compressedPlanes: number }> {
  const [nx, ny, nz] = shape;
  const plane = nx * ny;
  let baseBytes: Buffer | null = null;
  let lengths = base ? await slices.getJson<number[]>(base, 'members') : null;
  if (lengths && lengths.length === nz + 1) {
    baseBytes = await blobs.get(base!);
    if (lengths.reduce((a, b) => a + b, 0) !== baseBytes.length) (baseBytes = null), (lengths = null);
  } else lengths = null;
  const offsets: number[] = [];
  if (lengths) for (let t = 0, o = 0; t < lengths.length; o += lengths[t++]!) offsets.push(o);
  const reuse = (t: number) => (baseBytes && lengths ? baseBytes.subarray(offsets[t]!, offsets[t]! + lengths[t]!) : null);
  const parts: Uint8Array[] = new Array(nz + 1);
  let compressed = 0;
  parts[0] = reuse(0) ?? (await gzip(header(), { level: LEVEL }));
  const jobs: Promise<void>[] = [];
  for (let z = 0; z < nz; z++) {
    const kept = changed.has(z) ? null : reuse(z + 1);
    if (kept) parts[z + 1] = kept;
    else {
      compressed++;
      jobs.push(gzip(data.subarray(z * plane, (z + 1) * plane), { level: LEVEL }).then((b) => void (parts[z + 1] = b)));
    }
  }
  await Promise.all(jobs);
  const bytes = Buffer.concat(parts);
  const ref = await blobs.put(bytes);
  await slices.putJson(ref.hash, 'members', parts.map((p) => p.length));
  return { hash: ref.hash, size: ref.size, compressedPlanes: compressed };
}
