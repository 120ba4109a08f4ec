/**
 * NRRD and MetaImage headers parsed and checked in TypeScript *before* ITK (itk-wasm) sees the
 * file: the declared size against the voxel cap, every geometry field for finite, non-degenerate
 * values, `byte skip`, the encoding against the bytes that follow, and detached data-file names.
 * ITK's own errors name no field ("Could not read"), and some defects it reads as garbage or zeros
 * without complaint (a negative `byte skip`, `CompressedData = True` over raw bytes); these checks
 * refuse them with the field's name. Hand-written because no maintained NRRD/MetaImage header
 * parser for Node exists apart from ITK itself. (Fields after the NRRD 0005 spec and MetaIO's
 * `metaImage.cxx`.)
 * @module
 */
import { MedmaskError } from '../core/errors.js';
import type { VoxelType } from '../core/volume.js';
import { checkDeclaredSize, printable } from './limits.js';

/** What a header says, as far as medmask needs it. */
export interface ItkHeader {
  format: 'nrrd' | 'metaimage';
  /** Sizes of all axes (NRRD: including a vector axis). */
  dims: number[];
  /** Stored component type, or undefined when ITK can read it but medmask cannot (reported later). */
  type: VoxelType | undefined;
  /** The type as written in the header. */
  typeName: string;
  bytesPerElement: number;
  /** Components per voxel (MetaImage ElementNumberOfChannels; NRRD: folded into dims). */
  components: number;
  /** raw | gzip | bzip2 | ascii | hex | zlib (MetaImage CompressedData). */
  encoding: string;
  /** Detached data file name(s), undefined when the data follow the header. */
  dataFile: string | undefined;
  /** Offset of the first data byte in the file when attached. */
  dataOffset: number;
}

/** Headers longer than this are refused (real ones are a few hundred bytes). */
export const MAX_HEADER_BYTES = 1 << 20;

const NRRD_TYPES: [RegExp, VoxelType | undefined, number][] = [
  [/^(signed char|int8|int8_t)$/, 'int8', 1],
  [/^(uchar|unsigned char|uint8|uint8_t)$/, 'uint8', 1],
  [/^(short|short int|signed short|signed short int|int16|int16_t)$/, 'int16', 2],
  [/^(ushort|unsigned short|unsigned short int|uint16|uint16_t)$/, 'uint16', 2],
  [/^(int|signed int|int32|int32_t)$/, 'int32', 4],
  [/^(uint|unsigned int|uint32|uint32_t)$/, 'uint32', 4],
  [/^(longlong|long long|long long int|signed long long|signed long long int|int64|int64_t)$/, undefined, 8],
  [/^(ulonglong|unsigned long long|unsigned long long int|uint64|uint64_t)$/, undefined, 8],
  [/^float$/, 'float32', 4],
  [/^double$/, 'float64', 8],
];

const MET_TYPES: Record<string, [VoxelType | undefined, number]> = {
  MET_CHAR: ['int8', 1], MET_UCHAR: ['uint8', 1], MET_SHORT: ['int16', 2], MET_USHORT: ['uint16', 2],
  MET_INT: ['int32', 4], MET_UINT: ['uint32', 4], MET_LONG: ['int32', 4], MET_ULONG: ['uint32', 4],
  MET_LONG_LONG: [undefined, 8], MET_ULONG_LONG: [undefined, 8], MET_FLOAT: ['float32', 4], MET_DOUBLE: ['float64', 8],
};

function bad(name: string, field: string, value: string, why: string, hint = 'the header is damaged; fix the field or export the file again'): never {
  throw new MedmaskError('CORRUPT_FILE', `${name}: ${field} ${JSON.stringify(printable(value, 120))} ${why}`, { hint, details: { field } });
}

function numbers(name: string, field: string, value: string, count: number | undefined, opts: { positive?: boolean; nanOk?: boolean } = {}): number[] {
  const parts = value.trim().split(/[\s,]+/).filter(Boolean);
  const xs = parts.map((p) => (opts.nanOk && /^nan$/i.test(p) ? NaN : Number(p)));
  if (count !== undefined && xs.length !== count) bad(name, field, value, `must hold ${count} numbers, it holds ${xs.length}`);
  xs.forEach((x) => {
    if (opts.nanOk && Number.isNaN(x)) return;
    if (!Number.isFinite(x)) bad(name, field, value, 'holds a value that is not a finite number');
    if (opts.positive && !(x > 0)) bad(name, field, value, 'must hold positive numbers');
  });
  return xs;
}

function wholeSizes(name: string, field: string, value: string, count: number): number[] {
  const xs = value.trim().split(/\s+/).filter(Boolean).map(Number);
  if (xs.length !== count) bad(name, field, value, `must hold ${count} sizes (one per axis), it holds ${xs.length}`);
  if (xs.some((x) => !Number.isSafeInteger(x) || x < 1)) bad(name, field, value, 'must hold positive whole numbers');
  return xs;
}

/** A detached data file may only name a file beside the header. */
function checkDataFileName(name: string, field: string, file: string): void {
  if (/^(\/|[A-Za-z]:[\\/]|\\\\)/.test(file) || file.split(/[\\/]/).includes('..')) {
    bad(name, field, file, 'points outside the header\'s folder', 'keep the data file beside the header and name it without a folder');
  }
}

/** Split the header text off the file's first bytes. */
function headerText(bytes: Uint8Array, name: string, endOf: (text: string) => number | undefined): { text: string; end: number } {
  const n = Math.min(bytes.length, MAX_HEADER_BYTES);
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, n).toString('latin1');
  const end = endOf(text);
  if (end === undefined) {
    if (bytes.length > MAX_HEADER_BYTES) bad(name, 'header', text.slice(0, 40), `does not end within ${MAX_HEADER_BYTES} bytes`);
    return { text, end: n };
  }
  return { text: text.slice(0, end), end };
}

/**
 * Parse and check an NRRD header.
 * @param bytes - the file's first bytes (up to {@link MAX_HEADER_BYTES}, more is ignored)
 * @param name - file name for messages
 * @param fileSize - the whole file's size (to check attached raw data are all there)
 * @param maxVoxels - the cap on declared voxels
 * @throws MedmaskError CORRUPT_FILE naming the field; INPUT_TOO_LARGE; UNSUPPORTED_FORMAT
 * @example
 * const h = parseNrrdHeader(head, 'ct.nrrd', size, maxVoxelsOf());
 */
export function parseNrrdHeader(bytes: Uint8Array, name: string, fileSize: number, maxVoxels: number): ItkHeader {
  const { text, end } = headerText(bytes, name, (t) => {
    const m = /\r?\n\r?\n/.exec(t);
    return m ? m.index + m[0].length : undefined;
  });
  const lines = text.split(/\r?\n/);
  if (!/^NRRD000[1-5]$/.test(lines[0] ?? '')) bad(name, 'magic line', lines[0] ?? '', 'is not NRRD0001…NRRD0005');
  const f = new Map<string, string>();
  for (const line of lines.slice(1)) {
    if (!line || line.startsWith('#')) continue;
    if (/^[^:]*:=/.test(line)) continue; // key/value pair: free text
    const m = /^([^:]+):\s?(.*)$/.exec(line);
    if (!m) bad(name, 'header line', line, 'is neither "field: value" nor "key:=value"');
    const key = m[1]!.trim().toLowerCase();
    if (f.has(key)) bad(name, `field "${key}"`, m[2]!, 'appears twice');
    f.set(key, m[2]!.trim());
  }
  const need = (k: string): string => {
    const v = f.get(k);
    if (v === undefined) bad(name, `field "${k}"`, '', 'is missing');
    return v;
  };
  const dimStr = need('dimension');
  const dimension = Number(dimStr);
  if (!Number.isInteger(dimension) || dimension < 1 || dimension > 16) bad(name, 'field "dimension"', dimStr, 'must be a whole number from 1 to 16');
  const dims = wholeSizes(name, 'field "sizes"', need('sizes'), dimension);
  const typeName = need('type').toLowerCase();
  const t = NRRD_TYPES.find(([re]) => re.test(typeName));
  if (!t) bad(name, 'field "type"', typeName, 'is not an NRRD scalar type', 'NRRD types: int8, uint8, int16, uint16, int32, uint32, int64, uint64, float, double');
  const encoding = need('encoding').toLowerCase().replace(/^gz$/, 'gzip').replace(/^bz2$/, 'bzip2').replace(/^(txt|text)$/, 'ascii');
  if (!['raw', 'gzip', 'bzip2', 'ascii', 'hex'].includes(encoding)) bad(name, 'field "encoding"', encoding, 'is not raw, gzip, bzip2, ascii or hex');
  checkDeclaredSize(name, { dims, bytesPerElement: t[2], type: typeName }, maxVoxels);
  const spaceDim = f.has('space dimension') ? Number(f.get('space dimension')) : f.has('space') ? spaceDimOf(name, f.get('space')!) : undefined;
  if (spaceDim !== undefined && !(Number.isInteger(spaceDim) && spaceDim >= 1 && spaceDim <= dimension)) bad(name, 'field "space dimension"', String(f.get('space dimension') ?? f.get('space')), `must be a whole number from 1 to ${dimension}`);
  const dirs = f.get('space directions');
  if (dirs !== undefined) {
    const vecs = dirs.trim().split(/\s+(?=\(|none)/);
    if (vecs.length !== dimension) bad(name, 'field "space directions"', dirs, `must hold ${dimension} entries (a vector or "none" per axis), it holds ${vecs.length}`);
    for (const v of vecs) {
      if (v === 'none') continue;
      const m = /^\((.*)\)$/.exec(v);
      if (!m) bad(name, 'field "space directions"', dirs, `holds ${v}, neither "(x,y,z)" nor "none"`);
      const xs = numbers(name, 'field "space directions"', m[1]!, spaceDim);
      if (Math.hypot(...xs) === 0) bad(name, 'field "space directions"', dirs, 'holds a zero vector');
    }
  }
  if (f.has('space origin')) {
    const m = /^\((.*)\)$/.exec(f.get('space origin')!.trim());
    if (!m) bad(name, 'field "space origin"', f.get('space origin')!, 'must be a vector "(x,y,z)"');
    numbers(name, 'field "space origin"', m[1]!, spaceDim);
  }
  if (f.has('spacings')) {
    const xs = numbers(name, 'field "spacings"', f.get('spacings')!, dimension, { nanOk: true });
    if (xs.some((x) => x === 0)) bad(name, 'field "spacings"', f.get('spacings')!, 'holds a zero spacing');
  }
  const byteSkipStr = f.get('byte skip') ?? f.get('byteskip') ?? '0';
  const byteSkip = Number(byteSkipStr);
  if (!Number.isSafeInteger(byteSkip) || byteSkip < -1) bad(name, 'field "byte skip"', byteSkipStr, 'must be a whole number ≥ 0 (or -1: the data end the file)');
  if (byteSkip === -1 && encoding !== 'raw') bad(name, 'field "byte skip"', byteSkipStr, `-1 only works with raw encoding, not ${encoding}`);
  const lineSkipStr = f.get('line skip') ?? f.get('lineskip') ?? '0';
  if (!/^\d+$/.test(lineSkipStr)) bad(name, 'field "line skip"', lineSkipStr, 'must be a whole number ≥ 0');
  if (dims.reduce((a, b) => a * b, 1) * t[2] > 1 && f.has('endian') && !['little', 'big'].includes(f.get('endian')!.toLowerCase())) bad(name, 'field "endian"', f.get('endian')!, 'must be "little" or "big"');
  const dataFile = f.get('data file') ?? f.get('datafile');
  if (dataFile !== undefined) {
    const first = dataFile.split(/\s+/)[0]!;
    if (/^list$/i.test(first) || dataFile.includes('%')) {
      throw new MedmaskError('UNSUPPORTED_FORMAT', `${name}: field "data file" names several files (${printable(dataFile, 80)})`, { hint: 'join the data into one file (e.g. save as a single .nrrd with an attached data block)' });
    }
    checkDataFileName(name, 'field "data file"', dataFile);
  } else if (encoding === 'raw' && byteSkip >= 0 && Number(lineSkipStr) === 0) {
    const bytesNeeded = dims.reduce((a, b) => a * b, 1) * t[2];
    if (fileSize < end + byteSkip + bytesNeeded) {
      throw new MedmaskError('CORRUPT_FILE', `${name}: the raw data are short: the header declares ${dims.join('×')} ${typeName} (${bytesNeeded} bytes after ${byteSkip} skipped) but only ${Math.max(0, fileSize - end - byteSkip)} bytes follow the header`, { hint: 'the file is truncated; copy or export it again' });
    }
  }
  return { format: 'nrrd', dims, type: t[1], typeName, bytesPerElement: t[2], components: 1, encoding, dataFile, dataOffset: end };
}

function spaceDimOf(name: string, space: string): number {
  const s = space.toLowerCase();
  if (/^(right|left)-(anterior|posterior)-(superior|inferior)(-time)?$/.test(s) || /^(ras|las|lps)(t)?$/.test(s) || /^scanner-xyz(-time)?$/.test(s) || /^3d-(right|left)-handed(-time)?$/.test(s)) return s.endsWith('time') || /^(ras|las|lps)t$/.test(s) ? 4 : 3;
  bad(name, 'field "space"', space, 'is not an NRRD space name', 'e.g. left-posterior-superior, right-anterior-superior, scanner-xyz');
}

/**
 * Parse and check a MetaImage (.mha/.mhd) header.
 * @param bytes - the file's first bytes (up to {@link MAX_HEADER_BYTES})
 * @param name - file name for messages
 * @param fileSize - the whole file's size
 * @param maxVoxels - the cap on declared voxels
 * @throws MedmaskError CORRUPT_FILE naming the field; INPUT_TOO_LARGE; UNSUPPORTED_FORMAT
 * @example
 * const h = parseMetaImageHeader(head, 'ct.mha', size, maxVoxelsOf());
 */
export function parseMetaImageHeader(bytes: Uint8Array, name: string, fileSize: number, maxVoxels: number): ItkHeader {
  const { text, end } = headerText(bytes, name, (t) => {
    const m = /^\s*ElementDataFile\s*=.*(\r?\n|$)/m.exec(t);
    return m ? m.index + m[0].length : undefined;
  });
  const f = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    if (!line.trim()) continue;
    const m = /^\s*([A-Za-z0-9_]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (!m) bad(name, 'header line', line, 'is not "Key = Value"');
    f.set(m[1]!, m[2]!);
  }
  const need = (k: string): string => {
    const v = f.get(k);
    if (v === undefined) bad(name, k, '', 'is missing');
    return v;
  };
  const ndStr = need('NDims');
  const nd = Number(ndStr);
  if (!Number.isInteger(nd) || nd < 1 || nd > 10) bad(name, 'NDims', ndStr, 'must be a whole number from 1 to 10');
  const dims = wholeSizes(name, 'DimSize', need('DimSize'), nd);
  const typeName = need('ElementType');
  const t = MET_TYPES[typeName];
  if (!t) bad(name, 'ElementType', typeName, 'is not a MetaImage element type', `one of ${Object.keys(MET_TYPES).join(', ')}`);
  const chStr = f.get('ElementNumberOfChannels') ?? '1';
  const components = Number(chStr);
  if (!Number.isSafeInteger(components) || components < 1 || components > 1024) bad(name, 'ElementNumberOfChannels', chStr, 'must be a whole number from 1 to 1024');
  checkDeclaredSize(name, { dims, components, bytesPerElement: t[1], type: typeName }, maxVoxels);
  for (const k of ['ElementSpacing', 'ElementSize']) if (f.has(k)) numbers(name, k, f.get(k)!, nd, { positive: true });
  for (const k of ['Offset', 'Origin', 'Position', 'CenterOfRotation']) if (f.has(k)) numbers(name, k, f.get(k)!, nd);
  for (const k of ['TransformMatrix', 'Rotation', 'Orientation']) {
    if (!f.has(k)) continue;
    const m = numbers(name, k, f.get(k)!, nd * nd);
    if (nd <= 3 && Math.abs(det(m, nd)) < 1e-9) bad(name, k, f.get(k)!, 'is singular (zero or parallel axes)');
  }
  const compressed = /^(true|1)$/i.test(f.get('CompressedData') ?? 'False');
  if (f.has('CompressedData') && !/^(true|false|1|0)$/i.test(f.get('CompressedData')!)) bad(name, 'CompressedData', f.get('CompressedData')!, 'must be True or False');
  const headerSizeStr = f.get('HeaderSize') ?? '0';
  if (!/^-?\d+$/.test(headerSizeStr) || Number(headerSizeStr) < -1) bad(name, 'HeaderSize', headerSizeStr, 'must be a whole number ≥ -1');
  const dataFile = need('ElementDataFile');
  const local = /^LOCAL$/i.test(dataFile);
  if (!local) {
    if (/^LIST/i.test(dataFile) || dataFile.includes('%')) {
      throw new MedmaskError('UNSUPPORTED_FORMAT', `${name}: ElementDataFile names several files (${printable(dataFile, 80)})`, { hint: 'join the data into one file (e.g. save as .mha)' });
    }
    checkDataFileName(name, 'ElementDataFile', dataFile);
  } else {
    const bytesNeeded = dims.reduce((a, b) => a * b, 1) * components * t[1];
    const follow = fileSize - end;
    if (compressed) {
      const first = bytes[end];
      // zlib streams start 0x78; MetaIO also accepts gzip (0x1f 0x8b).
      if (follow > 0 && end < bytes.length && first !== 0x78 && first !== 0x1f) {
        bad(name, 'CompressedData', f.get('CompressedData')!, `is True but the data after the header are not zlib-compressed (first byte 0x${(first ?? 0).toString(16).padStart(2, '0')})`, 'set CompressedData = False if the data are raw, or export the file again');
      }
      if (f.has('CompressedDataSize')) {
        const cds = Number(f.get('CompressedDataSize'));
        if (!Number.isSafeInteger(cds) || cds < 1) bad(name, 'CompressedDataSize', f.get('CompressedDataSize')!, 'must be a positive whole number');
        if (cds > follow) throw new MedmaskError('CORRUPT_FILE', `${name}: CompressedDataSize is ${cds} but only ${follow} bytes follow the header`, { hint: 'the file is truncated; copy or export it again', details: { field: 'CompressedDataSize' } });
      }
    } else if (Number(headerSizeStr) === 0 && follow < bytesNeeded) {
      throw new MedmaskError('CORRUPT_FILE', `${name}: the raw data are short: the header declares ${dims.join('×')}${components > 1 ? `×${components}` : ''} ${typeName} (${bytesNeeded} bytes) but only ${Math.max(0, follow)} bytes follow the header`, { hint: 'the file is truncated; copy or export it again' });
    }
  }
  return { format: 'metaimage', dims, type: t[0], typeName, bytesPerElement: t[1], components, encoding: compressed ? 'zlib' : 'raw', dataFile: local ? undefined : dataFile, dataOffset: end };
}

function det(m: number[], n: number): number {
  if (n === 1) return m[0]!;
  if (n === 2) return m[0]! * m[3]! - m[1]! * m[2]!;
  return m[0]! * (m[4]! * m[8]! - m[5]! * m[7]!) - m[1]! * (m[3]! * m[8]! - m[5]! * m[6]!) + m[2]! * (m[3]! * m[7]! - m[4]! * m[6]!);
}
