/**
 * NumPy `.npy` files (format version 1.0), written and read by hand — the format is tiny:
 *
 * ```
 * \x93NUMPY  0x01 0x00  HEADER_LEN (uint16 little-endian)
 * {'descr': '<f4', 'fortran_order': False, 'shape': (224, 224), }   ← Python dict literal, ASCII,
 *                                   padded with spaces and ended by '\n' so that the data start at
 *                                   a multiple of 64 bytes
 * data, C order (last index fastest), in the byte order and type of `descr`
 * ```
 * (numpy's `numpy/lib/format.py`, NEP 1). medmask writes little-endian, C order.
 * @module
 */
import { MedmaskError } from '../core/errors.js';

/** Typed arrays `.npy` files hold here, with their numpy `descr`. */
export type NpyArray = Float32Array | Float64Array | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array;

const DESCR: [string, new (n: number) => NpyArray, number][] = [
  ['<f4', Float32Array, 4],
  ['<f8', Float64Array, 8],
  ['|u1', Uint8Array, 1],
  ['|i1', Int8Array, 1],
  ['<u2', Uint16Array, 2],
  ['<i2', Int16Array, 2],
  ['<u4', Uint32Array, 4],
  ['<i4', Int32Array, 4],
];

function descrOf(a: NpyArray): string {
  for (const [d, C] of DESCR) if (a instanceof C) return d;
  throw new MedmaskError('USAGE', 'npy: unsupported array type');
}

const littleEndian = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/**
 * Encode an array as `.npy` bytes.
 * @param data - values, C order
 * @param shape - dimensions (product must equal `data.length`)
 * @returns the file contents
 * @example
 * await writeFile('cam.npy', encodeNpy(map, [224, 224])); // np.load('cam.npy').shape == (224, 224)
 */
export function encodeNpy(data: NpyArray, shape: readonly number[]): Uint8Array {
  const n = shape.reduce((a, b) => a * b, 1);
  if (n !== data.length) throw new MedmaskError('USAGE', `npy: shape (${shape.join(', ')}) holds ${n} values, the array has ${data.length}`);
  if (!littleEndian) throw new MedmaskError('ENVIRONMENT', 'npy: big-endian machines are not supported');
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descrOf(data)}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header += ' '.repeat(pad % 64) + '\n';
  const out = new Uint8Array(10 + header.length + data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]); // \x93NUMPY v1.0
  out[8] = header.length & 0xff;
  out[9] = header.length >> 8;
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 10 + header.length);
  return out;
}

/**
 * Decode `.npy` bytes (version 1.x / 2.x, little-endian or single-byte types, C order).
 * @param bytes - the file contents
 * @param source - file name for messages
 * @returns the values and the shape
 * @throws MedmaskError CORRUPT_FILE for anything else
 * @example
 * const { data, shape } = decodeNpy(await readFile('cam.npy'));
 */
export function decodeNpy(bytes: Uint8Array, source = 'array.npy'): { data: NpyArray; shape: number[] } {
  const bad = (why: string): never => {
    throw new MedmaskError('CORRUPT_FILE', `${source}: ${why}`);
  };
  if (bytes.length < 10 || bytes[0] !== 0x93 || String.fromCharCode(...bytes.subarray(1, 6)) !== 'NUMPY') bad('not a .npy file');
  const major = bytes[6]!;
  const hl = major === 1 ? bytes[8]! | (bytes[9]! << 8) : new DataView(bytes.buffer, bytes.byteOffset + 8, 4).getUint32(0, true);
  const start = major === 1 ? 10 : 12;
  const header = String.fromCharCode(...bytes.subarray(start, start + hl));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) return bad(`unreadable header ${JSON.stringify(header)}`);
  if (fortran === 'True') bad('Fortran-order arrays are not supported');
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  const entry = DESCR.find(([d]) => d === descr || (d[0] === '|' && descr === `<${d.slice(1)}`));
  if (!entry) return bad(`data type ${descr} is not supported`);
  const [, C, size] = entry;
  const n = shape.reduce((a, b) => a * b, 1);
  const off = start + hl;
  if (bytes.length - off < n * size) bad(`holds ${bytes.length - off} data bytes; shape (${shape.join(', ')}) needs ${n * size}`);
  const data = new C(n);
  new Uint8Array(data.buffer).set(bytes.subarray(off, off + n * size));
  return { data, shape };
}
