/**
 * Label versions saved without re-encoding the whole volume. A label blob written here is a
 * standard single-member `.nii.gz` whose deflate stream is cut at every axial plane with a full
 * flush (as pigz does): each piece — the NIfTI header, then one piece per plane — is byte-aligned
 * and refers to nothing before it, so a save of a one-slice edit compresses that one plane and
 * copies every other piece of the base version's bytes as they are. The gzip trailer's CRC-32 is
 * combined from the pieces' CRCs (kept with the piece lengths in the database: `label_planes`),
 * so no unchanged plane is read either. One member (not one gzip member per plane) because
 * several browser-side readers — fflate in NiiVue, nifti-reader-js — stop after the first member.
 * Only the first save on a blob written elsewhere (a job's, an upload's) compresses all planes
 * (in parallel on zlib's thread pool). The version semantics are untouched: the result is a new
 * blob, saved through the same compare-and-set as before.
 * @module
 */
import { promisify } from 'node:util';
import { constants, crc32, deflateRaw as deflateRawCb } from 'node:zlib';
import type { BlobStore } from '../store/blob-store.js';

const deflateRaw = promisify(deflateRawCb);
const LEVEL = 3;
/** gzip header: magic, deflate, no flags, no mtime, no extra flags, OS unknown (RFC 1952 §2.3). */
const GZIP_HEADER = Uint8Array.of(0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff);
/** A final, empty fixed-Huffman deflate block (BFINAL=1, BTYPE=01, end-of-block): ends the stream. */
const FINAL_BLOCK = Uint8Array.of(0x03, 0x00);

/** Where each piece of a label blob's deflate stream lies: its compressed length and the CRC-32 of its bytes. */
export interface PlaneIndex {
  /** Compressed length of each piece (the header, then one per axial plane). */
  lengths: number[];
  /** CRC-32 of each piece's uncompressed bytes. */
  crcs: number[];
}

/** What {@link saveLabelPlanes} needs. */
export interface LabelSave {
  blobs: BlobStore;
  /** Piece index of a blob written here, or null (kept in the database: store/masks.ts). */
  index: { get(blob: string): Promise<PlaneIndex | null>; put(blob: string, index: PlaneIndex): Promise<void> };
  /** The label map's NIfTI header (352 bytes), used when the base has no index. */
  header: () => Uint8Array;
  shape: readonly [number, number, number];
  /** The base version's blob, or null (version 0: empty). */
  base: string | null;
  /** The new contents of the axial planes that changed. */
  planes: ReadonlyMap<number, Uint8Array>;
  /** The whole new label volume: asked for only when the base was not written here (no index). */
  whole: () => Promise<Uint8Array>;
}

interface Piece {
  bytes: Uint8Array;
  crc: number;
  size: number;
}

/** One piece: raw deflate ended by a full flush (byte-aligned, no reference to earlier data, not final). */
async function piece(data: Uint8Array): Promise<Piece> {
  return { bytes: await deflateRaw(data, { level: LEVEL, finishFlush: constants.Z_FULL_FLUSH }), crc: crc32(data), size: data.length };
}

/**
 * Store a label volume as a plane-addressable single-member `.nii.gz`: with a base written here,
 * only the changed planes are compressed and every other piece is copied as it is (an empty base's
 * planes share one compressed empty plane); the piece index is recorded with the new blob.
 * @returns the new blob and how many planes were compressed
 * @example
 * await saveLabelPlanes({ blobs, index, header, shape: [512, 512, 203], base, planes: new Map([[100, plane]]), whole });
 */
export async function saveLabelPlanes(o: LabelSave): Promise<{ hash: string; size: number; compressedPlanes: number }> {
  const [nx, ny, nz] = o.shape;
  const plane = nx * ny;
  let baseBytes: Buffer | null = null;
  let idx = o.base ? await o.index.get(o.base) : null;
  if (idx && idx.lengths.length === nz + 1 && idx.crcs.length === nz + 1) {
    baseBytes = await o.blobs.get(o.base!);
    const body = idx.lengths.reduce((a, b) => a + b, 0);
    if (GZIP_HEADER.length + body + FINAL_BLOCK.length + 8 !== baseBytes.length) (baseBytes = null), (idx = null);
  } else idx = null;
  const offsets: number[] = [];
  if (idx) for (let t = 0, off = GZIP_HEADER.length; t < idx.lengths.length; off += idx.lengths[t++]!) offsets.push(off);
  const reuse = (t: number, size: number): Piece | null =>
    baseBytes && idx ? { bytes: baseBytes.subarray(offsets[t]!, offsets[t]! + idx.lengths[t]!), crc: idx.crcs[t]!, size } : null;
  const pieces: Piece[] = new Array(nz + 1);
  let compressed = 0;
  const jobs: Promise<void>[] = [];
  const head = reuse(0, 352);
  if (head) pieces[0] = head;
  else jobs.push(piece(o.header()).then((p) => void (pieces[0] = p)));
  const all = !idx && o.base ? await o.whole() : null; // a base written elsewhere: every plane
  let empty: Promise<Piece> | null = null;
  for (let z = 0; z < nz; z++) {
    const mine = o.planes.get(z);
    const kept = mine ? null : reuse(z + 1, plane);
    if (kept) pieces[z + 1] = kept;
    else if (!mine && !all) jobs.push((empty ??= piece(new Uint8Array(plane))).then((p) => void (pieces[z + 1] = p)));
    else {
      compressed++;
      jobs.push(piece(mine ?? all!.subarray(z * plane, (z + 1) * plane)).then((p) => void (pieces[z + 1] = p)));
    }
  }
  await Promise.all(jobs);
  let crc = 0;
  let size = 0;
  for (const p of pieces) (crc = crc32Combine(crc, p.crc, p.size)), (size += p.size);
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc >>> 0, 0);
  trailer.writeUInt32LE(size >>> 0, 4); // ISIZE: the length modulo 2^32 (RFC 1952)
  const bytes = Buffer.concat([GZIP_HEADER, ...pieces.map((p) => p.bytes), FINAL_BLOCK, trailer]);
  const ref = await o.blobs.put(bytes);
  await o.index.put(ref.hash, { lengths: pieces.map((p) => p.bytes.length), crcs: pieces.map((p) => p.crc) });
  return { hash: ref.hash, size: ref.size, compressedPlanes: compressed };
}

/** Multiply a 32×32 matrix over GF(2) (one column per bit) by a vector. */
function gf2Times(mat: Uint32Array, vec: number): number {
  let sum = 0;
  for (let i = 0; vec !== 0; i++, vec >>>= 1) if (vec & 1) sum ^= mat[i]!;
  return sum >>> 0;
}

function gf2Square(out: Uint32Array, mat: Uint32Array): void {
  for (let n = 0; n < 32; n++) out[n] = gf2Times(mat, mat[n]!);
}

/**
 * CRC-32 of the concatenation A‖B from crc(A), crc(B) and B's length, without A's or B's bytes:
 * appending B's length in zero bits to A is a linear operator on the CRC register, applied by
 * repeated squaring of the one-zero-bit operator (the method of zlib's `crc32_combine`). Written
 * here because Node's zlib exposes `crc32` but not its combine.
 */
export function crc32Combine(crcA: number, crcB: number, lengthB: number): number {
  if (lengthB <= 0) return crcA >>> 0;
  const even = new Uint32Array(32);
  const odd = new Uint32Array(32);
  odd[0] = 0xedb88320; // the CRC-32 polynomial, reflected: the operator for one zero bit
  for (let n = 1, row = 1; n < 32; n++, row <<= 1) odd[n] = row >>> 0;
  gf2Square(even, odd); // two zero bits
  gf2Square(odd, even); // four zero bits
  let crc = crcA >>> 0;
  let len = lengthB;
  // each round squares the operator (8, 16, … zero bits) and applies it where len has a bit set
  for (;;) {
    gf2Square(even, odd);
    if (len & 1) crc = gf2Times(even, crc);
    len = Math.floor(len / 2);
    if (len === 0) break;
    gf2Square(odd, even);
    if (len & 1) crc = gf2Times(odd, crc);
    len = Math.floor(len / 2);
    if (len === 0) break;
  }
  return (crc ^ crcB) >>> 0;
}
