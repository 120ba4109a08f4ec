/**
 * NIfTI-1 / NIfTI-2 reader (`.nii`, `.nii.gz`, `.hdr`/`.img` pairs) and NIfTI-1 writer
 * (`.nii.gz`, `.nii`).
 *
 * - Headers are parsed with nifti-reader-js; gzip goes through Node's native zlib with one output
 *   chunk sized from the header (several times faster than the JavaScript inflate nifti-reader-js
 *   would use, and no second copy of the voxels — see `npm run bench`).
 * - The affine follows nibabel 5's precedence exactly (`img.affine`): sform when sform_code > 0,
 *   else qform when qform_code > 0, else the Analyze-style base affine. It is converted from RAS
 *   to medmask's LPS here, at the edge, and to millimetres when the header says metres or microns.
 * - Voxels keep their stored type; scl_slope/scl_inter are applied when not the identity (float32,
 *   or int16 when every result is an integer that fits). The 4th+ dimensions, stored as whole
 *   volumes one after another, become interleaved components; RGB24 becomes 3 uint8 components.
 *
 * The returned `data` may be a view into the decompressed file buffer (offset `vox_offset`) rather
 * than an array of its own: that saves a copy of the whole volume.
 * @module
 */
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { constants as bufferConstants } from 'node:buffer';
import { gzip as gzipCb, constants as zc } from 'node:zlib';
import * as nifti from 'nifti-reader-js';
import { MedmaskError } from '../core/errors.js';
import {
  createVolume,
  geometryFromAffine,
  lpsRasFlip,
  valueRange,
  voxelToRas,
  voxelTypeOf,
  type Mat4,
  type Vec3,
  type Volume,
  type VoxelArray,
  type VoxelType,
} from '../core/volume.js';
import { atomicWrite } from './atomic.js';
import { checkDeclaredSize, checkGeometry, inflateCapped, inflateHead, maxVoxelsOf } from './limits.js';
import { hasExtension, isGzip, type ProbeInput, type ReadOptions, type VolumeReader, type VolumeWriter, type WriteOptions } from './registry.js';
const gzip = promisify(gzipCb);

/** NIfTI datatype codes medmask reads and writes. */
const DATATYPES: Record<number, { type: VoxelType; bytes: number; rgb?: boolean }> = {
  2: { type: 'uint8', bytes: 1 },
  4: { type: 'int16', bytes: 2 },
  8: { type: 'int32', bytes: 4 },
  16: { type: 'float32', bytes: 4 },
  64: { type: 'float64', bytes: 8 },
  128: { type: 'uint8', bytes: 3, rgb: true },
  256: { type: 'int8', bytes: 1 },
  512: { type: 'uint16', bytes: 2 },
  768: { type: 'uint32', bytes: 4 },
};
const CODE_OF: Record<VoxelType, number> = { uint8: 2, int16: 4, int32: 8, float32: 16, float64: 64, int8: 256, uint16: 512, uint32: 768 };
const DATATYPE_NAMES: Record<number, string> = { 1: 'binary', 32: 'complex64', 1024: 'int64', 1280: 'uint64', 1536: 'float128', 1792: 'complex128', 2048: 'complex256', 2304: 'RGBA32' };
const SUPPORTED = 'uint8, int8, int16, uint16, int32, uint32, float32, float64 or RGB24';

/** NIFTI_INTENT_LABEL: the voxel values are labels (written for label maps). */
export const NIFTI_INTENT_LABEL = 1002;

/** Names of common NIfTI intent codes, spelled as nibabel's `header.get_intent()` does. */
const INTENT_NAMES: Record<number, string> = {
  2: 'correlation', 3: 't test', 4: 'f test', 5: 'z score', 1001: 'estimate', 1002: 'label', 1003: 'neuroname',
  1006: 'displacement vector', 1007: 'vector', 1008: 'pointset', 1011: 'dimensionless', 2001: 'time series', 2003: 'rgb vector',
};

/** Spatial unit codes of xyzt_units & 7 → factor to millimetres. */
const UNIT_TO_MM: Record<number, { name: string; toMm: number }> = {
  0: { name: 'unknown', toMm: 1 },
  1: { name: 'm', toMm: 1000 },
  2: { name: 'mm', toMm: 1 },
  3: { name: 'um', toMm: 0.001 },
};

function corrupt(name: string, what: string, hint: string, cause?: unknown): MedmaskError {
  return new MedmaskError('CORRUPT_FILE', `${name}: ${what}`, { hint, ...(cause === undefined ? {} : { cause }) });
}

/** What the first bytes of a NIfTI header say, without a full parse. */
interface HeaderPeek {
  version: 1 | 2;
  littleEndian: boolean;
  /** 'n+1' / 'n+2' single file, 'ni1' / 'ni2' header of a .hdr/.img pair, undefined: no NIfTI magic (Analyze 7.5). */
  magic: 'n+1' | 'ni1' | 'n+2' | 'ni2' | undefined;
  voxOffset: number;
  /** vox_offset + the voxel bytes the dims and bitpix promise (NaN when they make no sense). */
  expectedSize: number;
  /** dim[1..dim[0]] as declared (empty when dim[0] is out of range). */
  dims: number[];
  /** bitpix as declared. */
  bitpix: number;
}

/** Reads sizeof_hdr (348 or 540, either byte order), the magic and the sizes. Undefined when not a NIfTI/Analyze header. */
function peekHeader(b: Uint8Array): HeaderPeek | undefined {
  if (b.length < 348) return undefined;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let version: 1 | 2;
  let le: boolean;
  if (dv.getInt32(0, true) === 348) [version, le] = [1, true];
  else if (dv.getInt32(0, false) === 348) [version, le] = [1, false];
  else if (dv.getInt32(0, true) === 540) [version, le] = [2, true];
  else if (dv.getInt32(0, false) === 540) [version, le] = [2, false];
  else return undefined;
  if (version === 2 && b.length < 540) return undefined;
  const m = String.fromCharCode(...b.subarray(version === 1 ? 344 : 4, version === 1 ? 348 : 8));
  const magic = (['n+1\0', 'ni1\0', 'n+2\0', 'ni2\0'].includes(m) ? m.slice(0, 3) : undefined) as HeaderPeek['magic'];
  let voxOffset: number;
  let bitpix: number;
  let n = 1;
  const dims: number[] = [];
  if (version === 1) {
    voxOffset = dv.getFloat32(108, le);
    bitpix = dv.getInt16(72, le);
    const nd = dv.getInt16(40, le);
    for (let d = 1; d <= nd && d <= 7; d++) dims.push(dv.getInt16(40 + 2 * d, le));
  } else {
    voxOffset = Number(dv.getBigInt64(168, le));
    bitpix = dv.getInt16(14, le);
    const nd = Number(dv.getBigInt64(16, le));
    for (let d = 1; d <= nd && d <= 7; d++) dims.push(Number(dv.getBigInt64(16 + 8 * d, le)));
  }
  for (const d of dims) n *= Math.max(1, d);
  return { version, littleEndian: le, magic, voxOffset, expectedSize: voxOffset + (n * bitpix) / 8, dims, bitpix };
}

/** Extensions (between the header and vox_offset) larger than this are taken as a damaged header. */
const MAX_VOX_OFFSET = 256 * 2 ** 20;
/** Bytes a gzip stream may inflate to beyond what the header promises (trailing padding some writers add). */
const INFLATE_SLACK = 2 ** 20;

/**
 * Refuse a header whose declared voxels pass the cap, before anything is inflated or allocated.
 * Dimension errors other than size are left to the full parse, which names them.
 */
function checkPeek(peek: HeaderPeek, name: string, maxVoxels: number): void {
  if (peek.dims.length === 0 || peek.dims.some((d) => !(Number.isSafeInteger(d) && d >= 1)) || !(peek.bitpix > 0)) return;
  if (!(Number.isFinite(peek.voxOffset) && peek.voxOffset <= MAX_VOX_OFFSET)) {
    throw corrupt(name, `vox_offset ${peek.voxOffset} is implausible (more than ${MAX_VOX_OFFSET} bytes of header extensions)`, 'the header is damaged; export the file again');
  }
  checkDeclaredSize(name, { dims: peek.dims, bytesPerElement: peek.bitpix / 8, type: `(bitpix ${peek.bitpix})` }, maxVoxels);
}

/**
 * Inflate a .nii.gz with a hard cap: the header (inflated from the first compressed bytes only) is
 * checked against `maxVoxels`, and inflation stops once the output passes what the header promises
 * (plus {@link INFLATE_SLACK}), so a decompression bomb costs a few MiB, not gigabytes. When the
 * header's promised size matches the gzip trailer's ISIZE, the output goes into one chunk of exactly
 * that size: Node then neither makes thousands of 16 KiB round trips to its thread pool nor
 * concatenates chunks (a second full copy).
 */
async function inflate(gz: Uint8Array, name: string, maxVoxels: number, pairImage?: { dims: number[]; bitpix: number; voxOffset: number }): Promise<Uint8Array> {
  let chunkSize: number | undefined;
  let expected: number | undefined;
  if (pairImage) {
    expected = pairImage.voxOffset + (pairImage.dims.reduce((a, b) => a * Math.max(1, b), 1) * pairImage.bitpix) / 8;
  } else {
    const head = inflateHead(gz, 540);
    const peek = head && peekHeader(head);
    if (!peek) {
      // Not a NIfTI header: decode() says so from the inflated head; never inflate the rest.
      return head ?? (await inflateCapped(gz, name, 64 * 1024, 'a NIfTI header needs'));
    }
    checkPeek(peek, name, maxVoxels);
    expected = peek.expectedSize;
  }
  if (!(Number.isSafeInteger(expected) && expected > 0)) expected = 0;
  if (gz.length >= 18 && expected > 0 && expected < bufferConstants.MAX_LENGTH) {
    const isize = new DataView(gz.buffer, gz.byteOffset + gz.length - 4, 4).getUint32(0, true);
    if (isize === expected % 2 ** 32) chunkSize = Math.max(64, expected + 1);
  }
  // Otherwise (several gzip members, a damaged trailer, a bomb): chunks as large as the cap allows up
  // to 16 MiB, so that a bomb is stopped after one or two thread-pool round trips instead of 64 of
  // 16 KiB, each a fresh buffer (the decode worker's CPU competes with the event loop on small machines).
  chunkSize ??= expected > 0 ? Math.min(expected + INFLATE_SLACK + 1, 16 * 2 ** 20) : undefined;
  return inflateCapped(gz, name, expected + INFLATE_SLACK, `the ${expected} bytes its header declares`, chunkSize);
}

/**
 * nibabel's quaternion → 3×3 rotation (NIfTI-1 standard formula, nibabel's `quat2mat` with the
 * `a` recovered as in `fillpositive`).
 * @returns row-major 3×3
 */
function quaternToMatrix(b: number, c: number, d: number): number[] {
  let a = 1 - (b * b + c * c + d * d);
  if (a < 1e-7) {
    // nibabel/niftilib: a is taken as 0 and (b, c, d) renormalised
    const n = Math.hypot(b, c, d);
    b /= n;
    c /= n;
    d /= n;
    a = 0;
  } else a = Math.sqrt(a);
  return [
    a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c),
    2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b),
    2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b,
  ];
}

/** Proper rotation (row-major 3×3, det +1) → quaternion (a, b, c, d) with a ≥ 0 (nifti1_io's nifti_mat44_to_quatern). */
function matrixToQuatern(r: number[]): [number, number, number, number] {
  const [r11, r12, r13, r21, r22, r23, r31, r32, r33] = r as [number, number, number, number, number, number, number, number, number];
  let a = r11 + r22 + r33 + 1;
  let b: number, c: number, d: number;
  if (a > 0.5) {
    a = 0.5 * Math.sqrt(a);
    b = (0.25 * (r32 - r23)) / a;
    c = (0.25 * (r13 - r31)) / a;
    d = (0.25 * (r21 - r12)) / a;
  } else {
    const xd = 1 + r11 - (r22 + r33);
    const yd = 1 + r22 - (r11 + r33);
    const zd = 1 + r33 - (r11 + r22);
    if (xd > 1) {
      b = 0.5 * Math.sqrt(xd);
      c = (0.25 * (r12 + r21)) / b;
      d = (0.25 * (r13 + r31)) / b;
      a = (0.25 * (r32 - r23)) / b;
    } else if (yd > 1) {
      c = 0.5 * Math.sqrt(yd);
      b = (0.25 * (r12 + r21)) / c;
      d = (0.25 * (r23 + r32)) / c;
      a = (0.25 * (r13 - r31)) / c;
    } else {
      d = 0.5 * Math.sqrt(zd);
      b = (0.25 * (r13 + r31)) / d;
      c = (0.25 * (r23 + r32)) / d;
      a = (0.25 * (r21 - r12)) / d;
    }
    if (a < 0) {
      a = -a;
      b = -b;
      c = -c;
      d = -d;
    }
  }
  return [a, b, c, d];
}

type Header = nifti.NIFTI1 | nifti.NIFTI2;

/** The voxel → RAS affine nibabel reports as `img.affine` for this header, and where it came from. */
function rasAffine(h: Header, shape: Vec3): { affine: Mat4; source: 'sform' | 'qform' | 'base' } {
  if (h.sform_code > 0) return { affine: [...h.affine.flat().slice(0, 12), 0, 0, 0, 1], source: 'sform' };
  const [, dx = 1, dy = 1, dz = 1] = h.pixDims;
  if (h.qform_code > 0) {
    const R = quaternToMatrix(h.quatern_b, h.quatern_c, h.quatern_d);
    const qfac = h.pixDims[0] === -1 ? -1 : 1; // nibabel: any value other than -1 counts as 1
    const s = [dx, dy, dz * qfac];
    const a: Mat4 = [];
    const off = [h.qoffset_x, h.qoffset_y, h.qoffset_z];
    for (let r = 0; r < 3; r++) {
      for (let c = 0; c < 3; c++) a.push(R[r * 3 + c]! * s[c]!);
      a.push(off[r]!);
    }
    a.push(0, 0, 0, 1);
    return { affine: a, source: 'qform' };
  }
  // nibabel's get_base_affine(): Analyze convention, x flipped, centred on the volume.
  const d = [Math.abs(dx) || 1, Math.abs(dy) || 1, Math.abs(dz) || 1] as Vec3;
  const c = shape.map((n, i) => ((n - 1) / 2) * d[i]!);
  return { affine: [-d[0], 0, 0, c[0]!, 0, d[1], 0, -c[1]!, 0, 0, d[2], -c[2]!, 0, 0, 0, 1], source: 'base' };
}

const MACHINE_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const CTOR: Record<VoxelType, new (b: ArrayBuffer, off: number, n: number) => VoxelArray> = {
  uint8: Uint8Array, int8: Int8Array, int16: Int16Array, uint16: Uint16Array,
  int32: Int32Array, uint32: Uint32Array, float32: Float32Array, float64: Float64Array,
};

/** Below this size the voxels are simply copied (and never moved inside a possibly pooled Buffer). */
const IN_PLACE_MIN = 1 << 20;

/**
 * A typed array over `count` elements of `src` from `offset`, byte order fixed.
 *
 * When `src` is a large buffer we own outright (our inflate output, our readFile), the voxels are
 * moved to the start of its ArrayBuffer and returned as a view there: no second copy of a CT-sized
 * volume. The view then has byteOffset 0 but its ArrayBuffer is `offset` (+1) bytes longer than the
 * data, as any typed array may be. Otherwise the voxels are copied into an array of their own.
 */
function voxelsOf(type: VoxelType, src: Uint8Array, offset: number, count: number, bytes: number, littleEndian: boolean, owned: boolean): VoxelArray {
  const len = count * bytes;
  let buf: ArrayBuffer;
  if (owned && len >= IN_PLACE_MIN && src.byteOffset === 0 && src.buffer.byteLength - src.length <= 1) {
    buf = src.buffer as ArrayBuffer;
    new Uint8Array(buf).copyWithin(0, offset, offset + len);
  } else {
    const copy = new Uint8Array(len);
    copy.set(src.subarray(offset, offset + len));
    buf = copy.buffer;
  }
  if (bytes > 1 && littleEndian !== MACHINE_LE) {
    const u = new Uint8Array(buf, 0, len);
    if (bytes === 2) {
      for (let i = 0; i < len; i += 2) {
        const t = u[i]!;
        u[i] = u[i + 1]!;
        u[i + 1] = t;
      }
    } else {
      for (let i = 0; i < len; i += bytes) u.subarray(i, i + bytes).reverse();
    }
  }
  return new CTOR[type](buf, 0, count);
}

/** Options for {@link decodeNifti}. */
export interface DecodeNiftiOptions {
  /** Cap on the declared voxels × components (default: {@link maxVoxelsOf}). */
  maxVoxels?: number;
  /**
   * The voxel file of a `.hdr`/`.img` pair (magic `ni1`/`ni2`), already read (gzip or not). Not
   * needed for single-file NIfTI (`n+1`/`n+2`).
   */
  imageBytes?: Uint8Array;
}

/**
 * Decode NIfTI bytes (gzip or not) into a volume. Bad input throws a {@link MedmaskError}
 * (`CORRUPT_FILE` / `UNSUPPORTED_FORMAT`) that names `name`, says what is wrong and what to do.
 * @param bytes - file content (for a pair: the `.hdr` content)
 * @param name - file name for messages
 * @param opts - `imageBytes` for `.hdr`/`.img` pairs
 * @returns the volume in LPS geometry, millimetres, stored voxel type (or rescaled, see the module)
 * @example
 * const vol = await decodeNifti(await readFile('t1.nii.gz'), 't1.nii.gz');
 */
export function decodeNifti(bytes: Uint8Array, name = '<bytes>', opts: DecodeNiftiOptions = {}): Promise<Volume> {
  return decode(bytes, name, opts, false);
}

/** {@link decodeNifti}; `owned`: the caller hands over `bytes` (and imageBytes), which may then be reused in place. */
async function decode(bytes: Uint8Array, name: string, opts: DecodeNiftiOptions, owned: boolean): Promise<Volume> {
  const gz = isGzip(bytes);
  const maxVoxels = maxVoxelsOf(opts);
  const raw = gz ? await inflate(bytes, name, maxVoxels) : bytes;
  const peek = peekHeader(raw);
  if (!peek) {
    throw corrupt(name, `not a NIfTI file: ${raw.length < 348 ? `only ${raw.length} bytes, a header needs 348` : 'sizeof_hdr is neither 348 nor 540 in either byte order'}`, 'check that the file really is NIfTI (.nii / .nii.gz); the file may also be truncated');
  }
  if (!peek.magic) {
    throw new MedmaskError('UNSUPPORTED_FORMAT', `${name}: an Analyze 7.5 header without the NIfTI magic ("n+1"/"ni1"), so its orientation is undefined`, {
      hint: 'convert it to NIfTI with a tool that knows its orientation (e.g. nibabel, fslchfiletype)',
    });
  }
  const pair = peek.magic === 'ni1' || peek.magic === 'ni2';
  if (pair && !opts.imageBytes) {
    throw new MedmaskError('USAGE', `${name}: this is the header of a .hdr/.img pair; the voxels live in the .img file`, { hint: 'read the .hdr path with niftiReader, which loads the .img beside it' });
  }
  if (!gz) checkPeek(peek, name, maxVoxels);
  const hdrSize = peek.version === 2 ? 540 : 348;
  // Parse only the header (+ extensions up to vox_offset) — not a copy of the whole volume.
  const headerEnd = Math.min(raw.length, Math.max(hdrSize + 4, Number.isFinite(peek.voxOffset) ? Math.round(peek.voxOffset) : 0));
  const ab = raw.buffer.slice(raw.byteOffset, raw.byteOffset + headerEnd) as ArrayBuffer;
  let h: Header;
  try {
    h = nifti.readHeader(ab, pair);
  } catch (e) {
    // Extensions past the available bytes are the usual cause; retry without them.
    try {
      h = nifti.readHeader(raw.buffer.slice(raw.byteOffset, raw.byteOffset + hdrSize) as ArrayBuffer, pair);
    } catch {
      throw corrupt(name, `the header cannot be parsed (${(e as Error).message})`, 'the file is damaged; export it again', e);
    }
  }
  // CIFTI-2 (intent 3000–3099) stores matrices of brainordinates in NIfTI-2 dims, not an image grid.
  if (h.intent_code >= 3000 && h.intent_code <= 3099) {
    throw new MedmaskError('UNSUPPORTED_FORMAT', `${name}: a CIFTI-2 file (intent code ${h.intent_code}): its dims index brainordinates, not voxels`, { hint: 'read it with a CIFTI tool (nibabel.cifti2, Connectome Workbench)' });
  }
  const ndim = h.dims[0]!;
  if (!(Number.isInteger(ndim) && ndim >= 1 && ndim <= 7)) throw corrupt(name, `dim[0] = ${ndim} must be between 1 and 7`, 'the header is damaged (or written with the wrong byte order); export it again');
  const rawDims = h.dims.slice(1, ndim + 1);
  if (rawDims.some((d) => !(Number.isInteger(d) && d >= 1))) {
    throw corrupt(name, `dims ${JSON.stringify(rawDims)} must be positive integers`, 'the header is damaged; export it again');
  }
  const dt = DATATYPES[h.datatypeCode];
  if (!dt) {
    const known = DATATYPE_NAMES[h.datatypeCode];
    throw new MedmaskError('UNSUPPORTED_FORMAT', `${name}: NIfTI datatype ${h.datatypeCode}${known ? ` (${known})` : ' (not a NIfTI datatype code)'} is not supported`, {
      hint: `convert to ${SUPPORTED} (e.g. with nibabel or fslmaths -odt)`,
    });
  }
  const shape: Vec3 = [rawDims[0] ?? 1, rawDims[1] ?? 1, rawDims[2] ?? 1];
  const extra = rawDims.slice(3).reduce((a, b) => a * b, 1);
  const nvox = shape[0] * shape[1] * shape[2];
  const count = nvox * extra * (dt.rgb ? 3 : 1);
  const elemBytes = dt.rgb ? 1 : dt.bytes;
  const voxOffset = Math.round(h.vox_offset);
  const imgGz = pair && isGzip(opts.imageBytes!);
  const src = pair ? (imgGz ? await inflate(opts.imageBytes!, name.replace(/\.hdr(\.gz)?$/i, '.img$1'), maxVoxels, { dims: rawDims, bitpix: h.numBitsPerVoxel, voxOffset: Math.max(0, Math.round(h.vox_offset)) || 0 }) : opts.imageBytes!) : raw;
  const srcOwned = owned || (pair ? imgGz : gz);
  const srcName = pair ? `${name} (its .img)` : name;
  if (!Number.isFinite(h.vox_offset) || voxOffset < (pair ? 0 : hdrSize) || voxOffset > src.length) {
    throw corrupt(
      name,
      `vox_offset ${h.vox_offset} lies ${voxOffset <= src.length ? `inside the ${hdrSize}-byte header` : `beyond the end of the ${pair ? '.img ' : ''}file (${src.length} bytes)`}`,
      `the header is damaged; in a single-file NIfTI-${peek.version} vox_offset is at least ${hdrSize} (normally ${hdrSize === 348 ? 352 : 544})`,
    );
  }
  const need = voxOffset + count * elemBytes;
  if (src.length < need) {
    throw corrupt(
      srcName,
      `voxel data are short: the header promises ${[...shape, ...(extra > 1 ? rawDims.slice(3) : [])].join('×')} ${dt.rgb ? 'RGB24' : dt.type} (${count * elemBytes} bytes from offset ${voxOffset}) but only ${Math.max(0, src.length - voxOffset)} bytes follow`,
      'the file is truncated; copy or export it again',
    );
  }
  let data = voxelsOf(dt.type, src, voxOffset, count, elemBytes, h.littleEndian, srcOwned);
  let components = dt.rgb ? 3 : 1;
  if (extra > 1) {
    // NIfTI stores the 4th+ dimensions as whole volumes one after another; medmask interleaves components.
    const planar = data;
    const inter = new (planar.constructor as new (n: number) => VoxelArray)(planar.length);
    const per = dt.rgb ? 3 : 1;
    const nc = extra * per;
    for (let t = 0; t < extra; t++) {
      for (let c = 0; c < per; c++) {
        const o = t * per + c;
        for (let v = 0, p = t * nvox * per + c; v < nvox; v++, p += per) inter[v * nc + o] = planar[p]!;
      }
    }
    data = inter;
    components = nc;
  }
  // scl_slope / scl_inter as nibabel applies them: slope 0 or not finite means "no scaling".
  const slope = h.scl_slope;
  const scaling = !dt.rgb && Number.isFinite(slope) && slope !== 0;
  // nibabel refuses a valid slope with an invalid intercept ("Valid slope but invalid intercept").
  if (scaling && !Number.isFinite(h.scl_inter)) throw corrupt(name, `scl_inter ${h.scl_inter} is not finite while scl_slope is ${slope}`, 'fix scl_inter (e.g. nibabel: img.header.set_slope_inter(slope, 0))');
  const inter = Number.isFinite(h.scl_inter) ? h.scl_inter : 0;
  let scaled = false;
  if (scaling && !(slope === 1 && inter === 0)) {
    const f = new Float32Array(data.length);
    let integral = true;
    let overflow: number | undefined;
    for (let i = 0; i < data.length; i++) {
      const x = data[i]!;
      const v = x * slope + inter;
      f[i] = v;
      if (integral && (!Number.isInteger(v) || v < -32768 || v > 32767)) integral = false;
      if (!(Math.abs(v) <= 3.4028234663852886e38) && Number.isFinite(x) && overflow === undefined) overflow = x;
    }
    if (overflow !== undefined) {
      throw corrupt(name, `scl_slope ${slope} and scl_inter ${inter} scale the stored value ${overflow} past the float32 range`, 'the scaling fields are damaged; fix scl_slope/scl_inter (nibabel: img.header.set_slope_inter)');
    }
    data = integral ? Int16Array.from(f) : f;
    scaled = true;
  }
  let { affine, source } = rasAffine(h, shape);
  const unit = UNIT_TO_MM[h.xyzt_units & 7] ?? UNIT_TO_MM[0]!;
  if (unit.toMm !== 1) affine = affine.map((x, i) => (i < 12 ? x * unit.toMm : x));
  let geo;
  try {
    geo = geometryFromAffine(lpsRasFlip(affine));
  } catch (e) {
    throw corrupt(name, `the ${source} affine is degenerate (${(e as Error).message})`, 'fix the sform/qform (e.g. nibabel: img.set_sform(affine, code=1)) or the pixdims', e);
  }
  const field = source === 'sform' ? 'srow_x/y/z' : source === 'qform' ? 'qform (quatern, qoffset, pixdim)' : 'pixdim';
  checkGeometry(name, geo, { spacing: `spacing from the ${field}`, origin: `origin from the ${field}`, direction: `direction from the ${field}` });
  const intentName = h.intent_name.replace(/\0[\s\S]*$/, '');
  return createVolume(shape, voxelTypeOf(data), {
    data,
    components,
    spacing: geo.spacing,
    origin: geo.origin,
    direction: geo.direction,
    meta: {
      format: peek.version === 2 ? 'nifti2' : 'nifti1',
      description: h.description.replace(/\0[\s\S]*$/, ''),
      affineSource: source,
      qformCode: h.qform_code,
      sformCode: h.sform_code,
      spatialUnit: unit.name,
      ...(h.intent_code ? { intentCode: h.intent_code, intent: INTENT_NAMES[h.intent_code] ?? `code ${h.intent_code}` } : {}),
      ...(intentName ? { intentName } : {}),
      ...(dt.rgb ? { rgb: true } : {}),
      ...(scaled ? { scaled: { slope, inter } } : {}),
      ...(geo.shear > 1e-4 ? { shear: geo.shear } : {}),
      ...(extra > 1 && h.pixDims[4] ? { timeStep: h.pixDims[4] } : {}),
    },
  });
}

/**
 * Reads NIfTI-1/2 (`.nii`, `.nii.gz`, `.hdr`/`.img` pairs), probed by extension and header bytes
 * (sizeof_hdr 348/540 in either byte order and the magic `n+1`, `n+2`, `ni1`; inside gzip too).
 * @example
 * const vol = await niftiReader.read('labelsTr/case_0001.nii.gz');
 */
export const niftiReader: VolumeReader = {
  name: 'nifti',
  description: 'NIfTI-1/2 (.nii, .nii.gz, .hdr/.img)',
  canRead(input: ProbeInput): true | string {
    if (input.isDirectory) return 'is a folder';
    const named = hasExtension(input.name, ['.nii', '.nii.gz', '.hdr', '.hdr.gz']);
    const gz = isGzip(input.head);
    const head = gz ? inflateHead(input.head) : input.head;
    const peek = head && peekHeader(head);
    if (peek?.magic) return true;
    if (gz && named && input.name.endsWith('.gz')) return true; // too short to inflate a header here: read() says what is wrong
    if (peek) return 'an Analyze 7.5 header without the NIfTI magic n+1/ni1';
    if (named) return input.size === 0 ? 'file is empty' : `named ${input.name.replace(/^.*?(\.[a-z.]+)$/, '$1')} but ${gz ? 'the gzip content' : 'the file'} does not start with a NIfTI header (sizeof_hdr 348/540)`;
    return gz ? 'gzip content is not a NIfTI header' : 'no NIfTI header';
  },
  async read(path: string, opts: ReadOptions = {}): Promise<Volume> {
    const bytes = await readFile(path);
    const head = isGzip(bytes) ? inflateHead(bytes, 540) : bytes;
    const peek = head && peekHeader(head);
    if (peek && (peek.magic === 'ni1' || peek.magic === 'ni2')) {
      const candidates = [/\.hdr\.gz$/i, /\.hdr$/i].some((r) => r.test(path))
        ? [path.replace(/\.hdr(\.gz)?$/i, '.img$1'), path.replace(/\.hdr(\.gz)?$/i, (_m, g?: string) => (g ? '.img' : '.img.gz'))]
        : [];
      for (const p of candidates) {
        let img: Uint8Array;
        try {
          img = await readFile(p);
        } catch {
          continue;
        }
        return decode(bytes, path, { imageBytes: img, ...(opts.maxVoxels ? { maxVoxels: opts.maxVoxels } : {}) }, true);
      }
      throw new MedmaskError('NOT_FOUND', `${path}: the header of a .hdr/.img pair, but its voxel file ${candidates[0] ?? '(name ending .img)'} is missing`, {
        hint: 'keep the .img beside the .hdr with the same base name',
      });
    }
    return decode(bytes, path, opts.maxVoxels ? { maxVoxels: opts.maxVoxels } : {}, true);
  },
};

// ---------------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------------

/** Options for {@link encodeNifti}. */
export interface EncodeNiftiOptions extends WriteOptions {
  /** The header's descrip field (ASCII, at most 79 bytes; default "medmask"). */
  description?: string;
}

/** ASCII bytes of `s`, cut to `max` (non-ASCII characters become "?"): NIfTI strings are fixed-size C strings. */
function asciiField(s: string, max: number): Uint8Array {
  const out = new Uint8Array(Math.min(s.length, max));
  for (let i = 0; i < out.length; i++) {
    const c = s.charCodeAt(i);
    out[i] = c >= 32 && c < 127 ? c : 63;
  }
  return out;
}

/**
 * Encode a volume as NIfTI-1 bytes (uncompressed, little-endian, vox_offset 352), sform and qform
 * both from the volume's geometry (code 1, scanner anatomical).
 * @param vol - the volume (components > 1 become the 4th dimension; 3 uint8 components become RGB24)
 * @param opts - `labelMap` stores uint8 (max ≤ 255) or uint16 with intent NIFTI_INTENT_LABEL; `description`
 * @returns the .nii bytes
 * @example
 * const nii = encodeNifti(mask, { labelMap: true });
 */
export function encodeNifti(vol: Volume, opts: EncodeNiftiOptions = {}): Uint8Array {
  let data = vol.data;
  let type = voxelTypeOf(data);
  if (opts.labelMap) {
    const [lo, hi] = valueRange(data);
    // integer typed arrays hold whole numbers by construction (the check costs ~0.4 s on a 512×512×200 mask)
    const whole = data instanceof Uint8Array || data instanceof Uint16Array || data instanceof Int8Array || data instanceof Int16Array || data instanceof Int32Array || data instanceof Uint32Array || data.every((x) => Number.isInteger(x));
    if (lo < 0 || hi > 65535 || !whole) {
      throw new MedmaskError('USAGE', `a label map needs integer labels 0…65535; the data are ${type} in [${lo}, ${hi}]`, { hint: 'round or threshold the data first, or write it without --label-map' });
    }
    const want: VoxelType = hi <= 255 ? 'uint8' : 'uint16';
    if (want !== type) data = want === 'uint8' ? Uint8Array.from(data) : Uint16Array.from(data);
    type = want;
  }
  const rgb = vol.components === 3 && type === 'uint8' && !opts.labelMap && vol.meta.rgb !== false;
  const [nx, ny, nz] = vol.shape;
  const nt = rgb ? 1 : vol.components;
  const nvox = nx * ny * nz;
  for (const n of [nx, ny, nz, nt]) {
    if (n > 32767) throw new MedmaskError('USAGE', `NIfTI-1 dims are int16: ${n} voxels along an axis is too many`, { hint: 'crop or split the volume' });
  }

  // The header is written by hand from nifti1.h's byte offsets rather than through nifti-reader-js:
  // that library is a reader first — its serialiser writes strings unbounded (a long or non-ASCII
  // description spills into aux_file and beyond), leaves `regular` unset and ties us to its object
  // model. 348 bytes written here keep every field, and the exact bytes nibabel was shown, under
  // our control.
  const out = new Uint8Array(352 + data.byteLength);
  const dv = new DataView(out.buffer);
  const LE = true;
  dv.setInt32(0, 348, LE); // sizeof_hdr
  out[38] = 0x72; // regular = 'r'
  const dims = [nt > 1 ? 4 : 3, nx, ny, nz, nt, 1, 1, 1];
  dims.forEach((d, i) => dv.setInt16(40 + 2 * i, d, LE));
  dv.setInt16(68, opts.labelMap ? NIFTI_INTENT_LABEL : 0, LE); // intent_code (intent_p1..p3 at 56..67 stay 0)
  dv.setInt16(70, rgb ? 128 : CODE_OF[type], LE); // datatype
  dv.setInt16(72, rgb ? 24 : data.BYTES_PER_ELEMENT * 8, LE); // bitpix

  const ras = voxelToRas(vol);
  // qform: the rotation part of the RAS direction; a left-handed frame negates k (qfac = -1), as nibabel does.
  const R = [0, 1, 2].flatMap((r) => [0, 1, 2].map((c) => (r < 2 ? -1 : 1) * vol.direction[r * 3 + c]!));
  const det = R[0]! * (R[4]! * R[8]! - R[5]! * R[7]!) - R[1]! * (R[3]! * R[8]! - R[5]! * R[6]!) + R[2]! * (R[3]! * R[7]! - R[4]! * R[6]!);
  const qfac = det < 0 ? -1 : 1;
  if (qfac < 0) for (const r of [0, 1, 2]) R[r * 3 + 2] = -R[r * 3 + 2]!;
  const pixdim = [qfac, vol.spacing[0], vol.spacing[1], vol.spacing[2], nt > 1 ? 1 : 0, 0, 0, 0];
  pixdim.forEach((p, i) => dv.setFloat32(76 + 4 * i, p, LE));
  dv.setFloat32(108, 352, LE); // vox_offset
  dv.setFloat32(112, 1, LE); // scl_slope
  dv.setFloat32(116, 0, LE); // scl_inter
  out[123] = 2; // xyzt_units: millimetres
  out.set(asciiField(opts.description ?? 'medmask', 79), 148); // descrip[80]
  dv.setInt16(252, 1, LE); // qform_code: scanner
  dv.setInt16(254, 1, LE); // sform_code: scanner
  const [, b, c, d] = matrixToQuatern(R);
  [b, c, d, ras[3]!, ras[7]!, ras[11]!].forEach((x, i) => dv.setFloat32(256 + 4 * i, x, LE));
  for (let i = 0; i < 12; i++) dv.setFloat32(280 + 4 * i, ras[i]!, LE); // srow_x, srow_y, srow_z
  if (opts.labelMap) out.set(asciiField('label', 15), 328); // intent_name[16]
  out.set([0x6e, 0x2b, 0x31, 0], 344); // magic "n+1\0"; bytes 348..351 (extension flag) stay 0

  if (nt > 1) {
    // interleaved components → NIfTI's planar 4th dimension
    const planar = new (data.constructor as new (n: number) => VoxelArray)(data.length);
    for (let t = 0; t < nt; t++) for (let v = 0, p = t; v < nvox; v++, p += nt) planar[t * nvox + v] = data[p]!;
    data = planar;
  }
  const body = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (MACHINE_LE || data.BYTES_PER_ELEMENT === 1) out.set(body, 352);
  else {
    const w = data.BYTES_PER_ELEMENT;
    for (let i = 0; i < body.length; i++) out[352 + i] = body[i - (i % w) + (w - 1 - (i % w))]!;
  }
  return out;
}

/**
 * Writes NIfTI-1 `.nii.gz` / `.nii` atomically, sform and qform from the volume's geometry.
 * @example
 * await niftiWriter.write(mask, 'out/case_0001.nii.gz', { labelMap: true });
 */
export const niftiWriter: VolumeWriter = {
  name: 'nifti',
  description: 'NIfTI-1 (.nii.gz, .nii)',
  extensions: ['.nii.gz', '.nii'],
  async write(vol: Volume, path: string, opts: WriteOptions = {}): Promise<void> {
    const nii = encodeNifti(vol, opts);
    const bytes = path.toLowerCase().endsWith('.gz') ? await gzip(nii, { level: opts.compress === false ? zc.Z_NO_COMPRESSION : 6 }) : nii;
    await atomicWrite(path, bytes);
  },
};
