/**
 * Label versions saved without re-encoding the whole volume. A label blob written here is a
 * standard `.nii.gz` made of several gzip members — the NIfTI header, then one member per axial
 * plane (RFC 1952 allows concatenated members; zlib, Python's gzip / nibabel and `gzip -d` read
 * them as one stream) — and the member lengths are kept in the database with the blob
 * (`label_planes`), so every reader (export, DICOM SEG, NIfTI download) reads the blob as any
 * `.nii.gz` and a save of a one-slice edit, even on a fresh server, compresses that one plane and
 * copies every other member of the base version's bytes as they are; only the first save on a
 * blob written elsewhere (a job's, an upload's) compresses all planes (in parallel on zlib's
 * thread pool). The version semantics are untouched: the result is
 * a new blob, saved through the same compare-and-set as before.
 * @module
 */
import { promisify } from 'node:util';
import { gzip as gzipCb } from 'node:zlib';
import type { BlobStore } from '../store/blob-store.js';

const gzip = promisify(gzipCb);
const LEVEL = 3;

/** What {@link saveLabelPlanes} needs. */
export interface LabelSave {
  blobs: BlobStore;
  /** Member lengths of a blob written here, or null (kept in the database: store/masks.ts). */
  index: { get(blob: string): Promise<number[] | null>; put(blob: string, members: number[]): Promise<void> };
  /** The label map's NIfTI header (352 bytes), used when the base has no members. */
  header: () => Uint8Array;
  shape: readonly [number, number, number];
  /** The base version's blob, or null (version 0: empty). */
  base: string | null;
  /** The new contents of the axial planes that changed. */
  planes: ReadonlyMap<number, Uint8Array>;
  /** The whole new label volume: asked for only when the base was not written here (no members). */
  whole: () => Promise<Uint8Array>;
}

/**
 * Store a label volume as a per-plane multi-member `.nii.gz`: with a base written here, only the
 * changed planes are compressed and every other member is copied as it is (an empty base's planes
 * share one compressed empty plane); the member lengths are recorded with the new blob.
 * @returns the new blob and how many planes were compressed
 * @example
 * await saveLabelPlanes({ blobs, index, header, shape: [512, 512, 203], base, planes: new Map([[100, plane]]), whole });
 */
export async function saveLabelPlanes(o: LabelSave): Promise<{ hash: string; size: number; compressedPlanes: number }> {
  const [nx, ny, nz] = o.shape;
  const plane = nx * ny;
  let baseBytes: Buffer | null = null;
  let lengths = o.base ? await o.index.get(o.base) : null;
  if (lengths && lengths.length === nz + 1) {
    baseBytes = await o.blobs.get(o.base!);
    if (lengths.reduce((a, b) => a + b, 0) !== baseBytes.length) (baseBytes = null), (lengths = null);
  } else lengths = null;
  const offsets: number[] = [];
  if (lengths) for (let t = 0, off = 0; t < lengths.length; off += lengths[t++]!) offsets.push(off);
  const reuse = (t: number) => (baseBytes && lengths ? baseBytes.subarray(offsets[t]!, offsets[t]! + lengths[t]!) : null);
  const parts: Uint8Array[] = new Array(nz + 1);
  let compressed = 0;
  parts[0] = reuse(0) ?? (await gzip(o.header(), { level: LEVEL }));
  const jobs: Promise<void>[] = [];
  const all = !lengths && o.base ? await o.whole() : null; // a base written elsewhere: every plane
  let empty: Promise<Buffer> | null = null;
  for (let z = 0; z < nz; z++) {
    const mine = o.planes.get(z);
    const kept = mine ? null : reuse(z + 1);
    if (kept) parts[z + 1] = kept;
    else if (!mine && !all) jobs.push((empty ??= gzip(new Uint8Array(plane), { level: LEVEL })).then((b) => void (parts[z + 1] = b)));
    else {
      compressed++;
      jobs.push(gzip(mine ?? all!.subarray(z * plane, (z + 1) * plane), { level: LEVEL }).then((b) => void (parts[z + 1] = b)));
    }
  }
  await Promise.all(jobs);
  const bytes = Buffer.concat(parts);
  const ref = await o.blobs.put(bytes);
  await o.index.put(ref.hash, parts.map((p) => p.length));
  return { hash: ref.hash, size: ref.size, compressedPlanes: compressed };
}
