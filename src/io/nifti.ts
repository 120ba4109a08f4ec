/**
 * NIfTI-1 / NIfTI-2 reader and NIfTI-1 writer (`.nii`, `.nii.gz`).
 *
 * Headers are parsed and serialised with nifti-reader-js; gzip goes through Node's native zlib
 * (several times faster than the JavaScript inflate nifti-reader-js would use — see
 * `npm run bench`). The affine follows nibabel's precedence exactly (sform when sform_code > 0,
 * else qform when qform_code > 0, else the Analyze-style base affine), and is converted from RAS to
 * medmask's LPS here, at the edge.
 * @module
 */
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { gunzip as gunzipCb, gzip as gzipCb, constants as zc } from 'node:zlib';
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
import { hasExtension, isGzip, type ProbeInput, type VolumeReader, type VolumeWriter, type WriteOptions } from './registry.js';

const gunzip = promisify(gunzipCb);
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

/** NIFTI_INTENT_LABEL: the voxel values are labels. */
export const NIFTI_INTENT_LABEL = 1002;

function corrupt(name: string, what: string, hint: string, cause?: unknown): MedmaskError {
  return new MedmaskError('CORRUPT_FILE', `${name}: ${what}`, { hint, ...(cause === undefined ? {} : { cause }) });
}

/** Looks like an uncompressed NIfTI-1/2 header (sizeof_hdr 348 or 540, either byte order). */
function isNiftiHeader(head: Uint8Array): boolean {
  if (head.length < 4) return false;
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const le = dv.getInt32(0, true);
  const be = dv.getInt32(0, false);
  return le === 348 || be === 348 || le === 540 || be === 540;
}

/**
 * nibabel's quaternion → 3×3 rotation (RAS), NIfTI-1 standard formula.
 * @returns row-major 3×3
 */
function quaternToMatrix(b: number, c: number, d: number): number[] {
  let a = 1 - (b * b + c * c + d * d);
  if (a < 1e-7) {
    // nibabel: a is taken as 0 and (b, c, d) renormalised
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

/** Proper rotation (row-major 3×3, det +1) → quaternion (a, b, c, d) with a ≥ 0 (NIfTI-1 nifti_mat44_to_quatern). */
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

/** The voxel → RAS affine nibabel reports as `img.affine` for this header. */
function rasAffine(h: Header): { affine: Mat4; source: 'sform' | 'qform' | 'base' } {
  if (h.sform_code > 0) return { affine: [...h.affine.flat().slice(0, 12), 0, 0, 0, 1], source: 'sform' };
  const [, dx = 1, dy = 1, dz = 1] = h.pixDims;
  if (h.qform_code > 0) {
    const R = quaternToMatrix(h.quatern_b, h.quatern_c, h.quatern_d);
    const qfac = h.pixDims[0] === -1 ? -1 : 1;
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
  const n = [h.dims[1] ?? 1, h.dims[2] ?? 1, h.dims[3] ?? 1];
  const d = [Math.abs(dx) || 1, Math.abs(dy) || 1, Math.abs(dz) || 1];
  return {
    affine: [-d[0]!, 0, 0, ((n[0]! - 1) / 2) * d[0]!, 0, d[1]!, 0, -((n[1]! - 1) / 2) * d[1]!, 0, 0, d[2]!, -((n[2]! - 1) / 2) * d[2]!, 0, 0, 0, 1],
    source: 'base',
  };
}

/** Copy `count` elements of `bytes` per element from `src` at `offset` into a new typed array, swapping byte order when needed. */
function extract(type: VoxelType, src: Uint8Array, offset: number, count: number, bytes: number, littleEndian: boolean): VoxelArray {
  const out = new Uint8Array(count * bytes);
  out.set(src.subarray(offset, offset + out.length));
  const machineLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  if (bytes > 1 && littleEndian !== machineLE) {
    for (let i = 0; i < out.length; i += bytes) out.subarray(i, i + bytes).reverse();
  }
  switch (type) {
    case 'uint8': return out;
    case 'int8': return new Int8Array(out.buffer);
    case 'int16': return new Int16Array(out.buffer);
    case 'uint16': return new Uint16Array(out.buffer);
    case 'int32': return new Int32Array(out.buffer);
    case 'uint32': return new Uint32Array(out.buffer);
    case 'float32': return new Float32Array(out.buffer);
    case 'float64': return new Float64Array(out.buffer);
  }
}

/**
 * Decode NIfTI bytes (already decompressed or gzip) into a volume.
 * @param bytes - file content
 * @param name - file name for messages
 * @returns the volume in LPS geometry
 * @example
 * const vol = await decodeNifti(await readFile('t1.nii.gz'), 't1.nii.gz');
 */
export async function decodeNifti(bytes: Uint8Array, name = '<bytes>'): Promise<Volume> {
  let raw = bytes;
  if (isGzip(bytes)) {
    try {
      raw = await gunzip(bytes);
    } catch (e) {
      throw corrupt(name, `the gzip stream is broken (${(e as Error).message})`, 'the file is truncated or damaged; copy or export it again', e);
    }
  }
  if (raw.length < 348 || !isNiftiHeader(raw)) {
    throw corrupt(name, `not a NIfTI file: ${raw.length < 348 ? `only ${raw.length} bytes, a header needs 348` : 'sizeof_hdr is neither 348 nor 540'}`, 'check that the file really is NIfTI (.nii / .nii.gz)');
  }
  const ab = raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength) as ArrayBuffer;
  let h: Header;
  try {
    h = nifti.readHeader(ab);
  } catch (e) {
    throw corrupt(name, `the header cannot be parsed (${(e as Error).message})`, 'the file is damaged; export it again', e);
  }
  if (!h) throw corrupt(name, 'the header magic is neither "n+1" nor "n+2"', 'a single-file NIfTI needs the magic string n+1 (NIfTI-1) or n+2 (NIfTI-2)');
  const ndim = h.dims[0]!;
  if (!(ndim >= 1 && ndim <= 7)) throw corrupt(name, `dim[0] = ${ndim} must be between 1 and 7`, 'the header is damaged; export it again');
  const dims = h.dims.slice(1, ndim + 1).map((d) => (d >= 1 ? d : 1));
  if (h.dims.slice(1, ndim + 1).some((d) => !(d >= 1))) throw corrupt(name, `dims ${JSON.stringify(h.dims.slice(1, ndim + 1))} must be positive`, 'the header is damaged; export it again');
  const dt = DATATYPES[h.datatypeCode];
  if (!dt) {
    throw new MedmaskError('UNSUPPORTED_FORMAT', `${name}: NIfTI datatype ${h.datatypeCode} (${h.getDatatypeCodeString(h.datatypeCode)}) is not supported`, {
      hint: 'convert to uint8, int8, int16, uint16, int32, uint32, float32, float64 or RGB24 (e.g. with nibabel or fslmaths -odt)',
    });
  }
  const shape: Vec3 = [dims[0] ?? 1, dims[1] ?? 1, dims[2] ?? 1];
  const extra = dims.slice(3).reduce((a, b) => a * b, 1);
  const nvox = shape[0] * shape[1] * shape[2];
  const count = nvox * extra * (dt.rgb ? 3 : 1);
  const elemBytes = dt.rgb ? 1 : dt.bytes;
  const voxOffset = Math.round(h.vox_offset);
  const hdrSize = h instanceof nifti.NIFTI2 ? 540 : 348;
  if (voxOffset < hdrSize || voxOffset > raw.length) {
    throw corrupt(name, `vox_offset ${h.vox_offset} lies ${voxOffset < hdrSize ? `inside the ${hdrSize}-byte header` : `beyond the end of the file (${raw.length} bytes)`}`, 'the header is damaged; for .nii files vox_offset is normally 352');
  }
  const need = voxOffset + count * elemBytes;
  if (raw.length < need) {
    throw corrupt(name, `voxel data are short: the header promises ${shape.join('×')}${extra > 1 ? `×${extra}` : ''} ${dt.rgb ? 'RGB24' : dt.type} (${count * elemBytes} bytes from offset ${voxOffset}) but only ${raw.length - voxOffset} bytes follow`, 'the file is truncated; copy or export it again');
  }
  let data = extract(dt.type, raw, voxOffset, count, elemBytes, h.littleEndian);
  let components = dt.rgb ? 3 : 1;
  if (extra > 1) {
    // NIfTI stores the 4th+ dimensions as whole volumes one after another; medmask interleaves components.
    const planar = data;
    const inter = new (planar.constructor as new (n: number) => VoxelArray)(planar.length);
    const per = dt.rgb ? 3 : 1;
    for (let t = 0; t < extra; t++) {
      for (let v = 0; v < nvox; v++) for (let c = 0; c < per; c++) inter[(v * extra + t) * per + c] = planar[(t * nvox + v) * per + c]!;
    }
    data = inter;
    components = extra * per;
  }
  // scl_slope / scl_inter, as nibabel applies them (slope 0 or NaN means "no scaling").
  const slope = h.scl_slope;
  const inter = h.scl_inter || 0;
  let scaled = false;
  if (Number.isFinite(slope) && slope !== 0 && !(slope === 1 && inter === 0)) {
    const f = new Float32Array(data.length);
    let integral = true;
    for (let i = 0; i < data.length; i++) {
      const v = data[i]! * slope + inter;
      f[i] = v;
      if (integral && (!Number.isInteger(v) || v < -32768 || v > 32767)) integral = false;
    }
    data = integral ? Int16Array.from(f) : f;
    scaled = true;
  }
  let { affine, source } = rasAffine(h);
  const units = h.xyzt_units & 7;
  const toMm = units === 1 ? 1000 : units === 3 ? 0.001 : 1;
  if (toMm !== 1) affine = affine.map((x, i) => (i < 12 ? x * toMm : x));
  const geo = geometryFromAffine(lpsRasFlip(affine));
  const type = voxelTypeOf(data);
  return createVolume(shape, type, {
    data,
    components,
    spacing: geo.spacing,
    origin: geo.origin,
    direction: geo.direction,
    meta: {
      format: h instanceof nifti.NIFTI2 ? 'nifti2' : 'nifti1',
      description: h.description.replace(/\0+$/, ''),
      affineSource: source,
      qformCode: h.qform_code,
      sformCode: h.sform_code,
      ...(h.intent_code ? { intentCode: h.intent_code } : {}),
      ...(scaled ? { scaled: { slope, inter } } : {}),
      ...(geo.shear > 1e-4 ? { shear: geo.shear } : {}),
      ...(h.pixDims[4] && extra > 1 ? { timeStep: h.pixDims[4] } : {}),
    },
  });
}

/**
 * Reads NIfTI-1/2 (`.nii`, `.nii.gz`), probed by extension and header bytes.
 * @example
 * const vol = await niftiReader.read('labelsTr/case_0001.nii.gz');
 */
export const niftiReader: VolumeReader = {
  name: 'nifti',
  description: 'NIfTI-1/2 (.nii, .nii.gz)',
  canRead(input: ProbeInput): true | string {
    if (input.isDirectory) return 'is a folder';
    const named = hasExtension(input.name, ['.nii', '.nii.gz', '.hdr.gz']);
    if (isNiftiHeader(input.head)) return true;
    if (isGzip(input.head) && named) return true;
    if (named) return input.size === 0 ? 'file is empty' : 'named .nii but the header does not start with sizeof_hdr 348/540 (or gzip)';
    return isGzip(input.head) ? 'gzip file not named .nii.gz' : 'no NIfTI header';
  },
  async read(path: string): Promise<Volume> {
    return decodeNifti(await readFile(path), path);
  },
};

/**
 * Encode a volume as NIfTI-1 bytes (uncompressed), sform and qform both set (code 1, scanner).
 * @param vol - the volume
 * @param opts - `labelMap` stores uint8/uint16 with intent "label"
 * @returns the .nii bytes
 * @example
 * const nii = encodeNifti(mask, { labelMap: true });
 */
export function encodeNifti(vol: Volume, opts: WriteOptions & { description?: string } = {}): Uint8Array {
  let data = vol.data;
  let type = voxelTypeOf(data);
  if (opts.labelMap) {
    const [lo, hi] = valueRange(data);
    if (lo < 0 || hi > 65535 || !data.every((x) => Number.isInteger(x))) {
      throw new MedmaskError('USAGE', `a label map needs integer labels 0…65535; the data are ${type} in [${lo}, ${hi}]`, { hint: 'round or threshold the data first, or write it without --label-map' });
    }
    const want: VoxelType = hi <= 255 ? 'uint8' : 'uint16';
    if (want !== type) data = want === 'uint8' ? Uint8Array.from(data) : Uint16Array.from(data);
    type = want;
  }
  const rgb = vol.components === 3 && type === 'uint8' && !opts.labelMap;
  const [nx, ny, nz] = vol.shape;
  const nt = rgb ? 1 : vol.components;
  const h = new nifti.NIFTI1();
  h.littleEndian = true;
  h.dims = [nt > 1 ? 4 : 3, nx, ny, nz, nt, 1, 1, 1];
  h.datatypeCode = rgb ? 128 : CODE_OF[type];
  h.numBitsPerVoxel = rgb ? 24 : data.BYTES_PER_ELEMENT * 8;
  Object.assign(h, { intent_p1: 0, intent_p2: 0, intent_p3: 0 });
  h.intent_code = opts.labelMap ? NIFTI_INTENT_LABEL : 0;
  h.intent_name = opts.labelMap ? 'label' : '';
  h.vox_offset = 352;
  h.scl_slope = 1;
  h.scl_inter = 0;
  h.xyzt_units = 2; // millimetres
  h.description = (opts.description ?? 'medmask').slice(0, 79);
  h.magic = 'n+1';
  const ras = voxelToRas(vol);
  h.sform_code = 1;
  h.affine = [ras.slice(0, 4), ras.slice(4, 8), ras.slice(8, 12), [0, 0, 0, 1]];
  // qform: rotation part of the RAS direction; a left-handed frame flips k (qfac = -1), as nibabel does.
  const R = [0, 1, 2].flatMap((r) => [0, 1, 2].map((c) => (r < 2 ? -1 : 1) * vol.direction[r * 3 + c]!));
  const det = R[0]! * (R[4]! * R[8]! - R[5]! * R[7]!) - R[1]! * (R[3]! * R[8]! - R[5]! * R[6]!) + R[2]! * (R[3]! * R[7]! - R[4]! * R[6]!);
  const qfac = det < 0 ? -1 : 1;
  if (qfac < 0) for (const r of [0, 1, 2]) R[r * 3 + 2] = -R[r * 3 + 2]!;
  const [, b, c, d] = matrixToQuatern(R);
  h.qform_code = 1;
  h.quatern_b = b;
  h.quatern_c = c;
  h.quatern_d = d;
  h.qoffset_x = ras[3]!;
  h.qoffset_y = ras[7]!;
  h.qoffset_z = ras[11]!;
  h.pixDims = [qfac, vol.spacing[0], vol.spacing[1], vol.spacing[2], nt > 1 ? 1 : 0, 0, 0, 0];
  const header = new Uint8Array(h.toArrayBuffer(false));
  const out = new Uint8Array(352 + data.byteLength);
  out.set(header.subarray(0, 352));
  if (nt > 1) {
    // interleaved components → NIfTI's planar 4th dimension
    const nvox = nx * ny * nz;
    const planar = new (data.constructor as new (n: number) => VoxelArray)(data.length);
    for (let v = 0; v < nvox; v++) for (let t = 0; t < nt; t++) planar[t * nvox + v] = data[v * nt + t]!;
    data = planar;
  }
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 352);
  return out;
}

/**
 * Writes NIfTI-1 `.nii.gz` / `.nii` (atomic; sform and qform from the volume's geometry).
 * @example
 * await niftiWriter.write(vol, 'out/ct.nii.gz');
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
