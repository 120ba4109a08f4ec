// NIfTI decoding and encoding on bytes built here from the byte offsets of nifti1.h / nifti2.h,
// checked against closed forms (quaternion rotations, planar → interleaved order, scaling).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { createVolume, voxelToRas } from '../../src/core/volume.js';
import { decodeNifti, encodeNifti, niftiReader, NIFTI_INTENT_LABEL } from '../../src/io/nifti.js';
import type { ProbeInput } from '../../src/io/registry.js';

interface H1 {
  le?: boolean;
  dims: number[];
  datatype: number;
  bitpix: number;
  pixdim?: number[];
  voxOffset?: number;
  slope?: number;
  inter?: number;
  units?: number;
  qform?: { code: number; b: number; c: number; d: number; off: [number, number, number] };
  sform?: { code: number; rows: number[] };
  magic?: string;
}

/** A NIfTI-1 header (352 bytes with the extension flag) from nifti1.h offsets. */
function header1(h: H1): Uint8Array {
  const le = h.le ?? true;
  const b = new Uint8Array(352);
  const dv = new DataView(b.buffer);
  dv.setInt32(0, 348, le);
  [h.dims.length, ...h.dims, 0, 0, 0, 0, 0, 0, 0].slice(0, 8).forEach((d, i) => dv.setInt16(40 + 2 * i, i <= h.dims.length ? d : 1, le));
  dv.setInt16(70, h.datatype, le);
  dv.setInt16(72, h.bitpix, le);
  (h.pixdim ?? [1, 1, 1, 1, 0, 0, 0, 0]).forEach((p, i) => dv.setFloat32(76 + 4 * i, p, le));
  dv.setFloat32(108, h.voxOffset ?? 352, le);
  dv.setFloat32(112, h.slope ?? 0, le);
  dv.setFloat32(116, h.inter ?? 0, le);
  b[123] = h.units ?? 2;
  if (h.qform) {
    dv.setInt16(252, h.qform.code, le);
    [h.qform.b, h.qform.c, h.qform.d, ...h.qform.off].forEach((x, i) => dv.setFloat32(256 + 4 * i, x, le));
  }
  if (h.sform) {
    dv.setInt16(254, h.sform.code, le);
    h.sform.rows.forEach((x, i) => dv.setFloat32(280 + 4 * i, x, le));
  }
  b.set(new TextEncoder().encode(h.magic ?? 'n+1\0'), 344);
  return b;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function bytesOf(a: Int16Array | Float32Array | Uint8Array, le = true): Uint8Array {
  const out = new Uint8Array(a.byteLength);
  const dv = new DataView(out.buffer);
  a.forEach((x, i) => {
    if (a instanceof Int16Array) dv.setInt16(2 * i, x, le);
    else if (a instanceof Float32Array) dv.setFloat32(4 * i, x, le);
    else dv.setUint8(i, x);
  });
  return out;
}

const near = (got: number[], want: number[], tol = 1e-6) =>
  want.forEach((w, i) => assert.ok(Math.abs(got[i]! - w) <= tol, `[${i}] ${got[i]} vs ${w}\n got ${got.join(', ')}`));

test('qform: 90° about z (d = sin 45°), qfac −1 gives the closed-form RAS affine; big-endian voxels', async () => {
  const s = Math.SQRT1_2;
  const data = Int16Array.from([1, -2, 300, -32768, 32767, 7]);
  const bytes = concat(
    header1({ le: false, dims: [3, 2, 1], datatype: 4, bitpix: 16, pixdim: [-1, 2, 3, 4, 0, 0, 0, 0], qform: { code: 1, b: 0, c: 0, d: s, off: [10, 20, 30] } }),
    bytesOf(data, false),
  );
  const v = await decodeNifti(bytes, 'q.nii');
  // R(z, 90°) · diag(2, 3, 4·qfac): i → +y·2, j → −x·3, k → −z·4
  near(voxelToRas(v), [0, -3, 0, 10, 2, 0, 0, 20, 0, 0, -4, 30, 0, 0, 0, 1]);
  assert.deepEqual(Array.from(v.data), Array.from(data));
  assert.equal(v.meta.affineSource, 'qform');
});

test('sform wins over qform; micrometre units become millimetres', async () => {
  const rows = [0, 0, 500, 1000, -250, 0, 0, 2000, 0, 750, 0, -3000];
  const bytes = concat(
    header1({ dims: [1, 1, 1], datatype: 16, bitpix: 32, units: 3, qform: { code: 1, b: 0, c: 0, d: 0, off: [0, 0, 0] }, sform: { code: 2, rows } }),
    bytesOf(Float32Array.from([1.5])),
  );
  const v = await decodeNifti(bytes, 's.nii');
  near(voxelToRas(v), [...rows.map((x) => x / 1000), 0, 0, 0, 1]);
  near(v.spacing, [0.25, 0.75, 0.5]);
  assert.equal(v.meta.spatialUnit, 'um');
});

test('4D is stored planar (whole volumes in turn) and read as interleaved components; gzip works', async () => {
  // 2×1×1 voxels × 3 time points: file order t0v0 t0v1 t1v0 t1v1 t2v0 t2v1
  const planar = Int16Array.from([10, 11, 20, 21, 30, 31]);
  const bytes = gzipSync(concat(header1({ dims: [2, 1, 1, 3], datatype: 4, bitpix: 16 }), bytesOf(planar)));
  const v = await decodeNifti(bytes, 'four.nii.gz');
  assert.deepEqual(v.shape, [2, 1, 1]);
  assert.equal(v.components, 3);
  assert.deepEqual(Array.from(v.data), [10, 20, 30, 11, 21, 31]);
});

test('scl_slope/scl_inter: identity keeps the type, integral results become int16, others float32; slope 0 means none', async () => {
  const raw = bytesOf(Int16Array.from([0, 1000, 3000])); // the same bytes as uint16 0, 1000, 3000
  const read = (slope: number, inter: number) => decodeNifti(concat(header1({ dims: [3, 1, 1], datatype: 512, bitpix: 16, slope, inter }), raw), 'x.nii');
  const ident = await read(1, 0);
  assert.equal(ident.data.constructor.name, 'Uint16Array');
  const none = await read(0, 5);
  assert.equal(none.data.constructor.name, 'Uint16Array');
  const ct = await read(1, -1024);
  assert.equal(ct.data.constructor.name, 'Int16Array');
  assert.deepEqual(Array.from(ct.data), [-1024, -24, 1976]);
  const frac = await read(0.5, 0.25);
  assert.equal(frac.data.constructor.name, 'Float32Array');
  assert.deepEqual(Array.from(frac.data), [0.25, 500.25, 1500.25]);
  const big = await read(20, 0); // 60000 does not fit int16
  assert.equal(big.data.constructor.name, 'Float32Array');
});

test('NIfTI-2 header (540 bytes, int64 dims, float64 sform) from nifti2.h offsets', async () => {
  const b = new Uint8Array(544);
  const dv = new DataView(b.buffer);
  dv.setInt32(0, 540, true);
  b.set([0x6e, 0x2b, 0x32, 0, 0x0d, 0x0a, 0x1a, 0x0a], 4); // "n+2\0\r\n\032\n"
  dv.setInt16(12, 2, true); // datatype uint8
  dv.setInt16(14, 8, true); // bitpix
  [3, 2, 2, 1, 1, 1, 1, 1].forEach((d, i) => dv.setBigInt64(16 + 8 * i, BigInt(d), true));
  [1, 1, 1, 1, 0, 0, 0, 0].forEach((p, i) => dv.setFloat64(104 + 8 * i, p, true));
  dv.setBigInt64(168, 544n, true); // vox_offset
  dv.setInt32(344, 0, true); // qform_code
  dv.setInt32(348, 1, true); // sform_code
  const rows = [2, 0, 0, -5, 0, 3, 0, 6, 0, 0, 4, 7];
  rows.forEach((x, i) => dv.setFloat64(400 + 8 * i, x, true));
  dv.setInt32(500, 10, true); // xyzt_units: mm + s
  const v = await decodeNifti(concat(b, Uint8Array.from([1, 2, 3, 4])), 'two.nii');
  assert.equal(v.meta.format, 'nifti2');
  near(voxelToRas(v), [...rows, 0, 0, 0, 1]);
  assert.deepEqual(Array.from(v.data), [1, 2, 3, 4]);
});

test('encodeNifti writes the fields nifti1.h defines at their offsets (label map, left-handed qform)', () => {
  const vol = createVolume([3, 2, 1], 'int32', {
    data: Int32Array.from([0, 1, 2, 3, 300, 0]),
    spacing: [0.5, 2, 3],
    origin: [1, 2, 3],
    direction: [1, 0, 0, 0, 1, 0, 0, 0, -1], // LPS, k inferior: det −1
  });
  const b = encodeNifti(vol, { labelMap: true });
  const dv = new DataView(b.buffer, b.byteOffset);
  assert.equal(dv.getInt32(0, true), 348);
  assert.deepEqual([0, 1, 2, 3].map((i) => dv.getInt16(40 + 2 * i, true)), [3, 3, 2, 1]);
  assert.equal(dv.getInt16(68, true), NIFTI_INTENT_LABEL);
  assert.equal(dv.getInt16(70, true), 512); // uint16: max label 300 > 255
  assert.equal(dv.getInt16(72, true), 16);
  assert.equal(dv.getFloat32(76, true), -1); // qfac
  assert.equal(dv.getFloat32(108, true), 352);
  assert.deepEqual([252, 254].map((o) => dv.getInt16(o, true)), [1, 1]);
  // sform = RAS: LPS x, y negated; k points to −z (inferior)
  near(Array.from({ length: 12 }, (_, i) => dv.getFloat32(280 + 4 * i, true)), [-0.5, 0, 0, -1, 0, -2, 0, -2, 0, 0, -3, 3]);
  // quaternion of diag(−1, −1, 1) after qfac (R = diag(−1, −1, −1·−1)): 180° about z → (b, c, d) = (0, 0, 1)
  near([256, 260, 264].map((o) => dv.getFloat32(o, true)), [0, 0, 1]);
  assert.equal(new TextDecoder().decode(b.subarray(328, 333)), 'label');
  assert.equal(new TextDecoder().decode(b.subarray(344, 348)), 'n+1\0');
  assert.deepEqual(Array.from(new Uint16Array(b.slice(352).buffer)), [0, 1, 2, 3, 300, 0]);
});

test('encodeNifti keeps descrip inside its 80 bytes, ASCII only', () => {
  const vol = createVolume([1, 1, 1], 'uint8');
  const b = encodeNifti(vol, { description: 'é'.repeat(200) });
  assert.equal(b[148], 63); // '?'
  assert.equal(b[148 + 79], 0); // NUL-terminated
  assert.equal(b[228], 0); // aux_file untouched
});

test('probe: magic inside gzip whatever the name; Analyze without magic, non-NIfTI .nii and folders are declined with a reason', () => {
  const hdr = header1({ dims: [1, 1, 1], datatype: 2, bitpix: 8 });
  const input = (name: string, head: Uint8Array, isDirectory = false): ProbeInput => ({ path: name, name, head: head.subarray(0, 1024), isDirectory, size: head.length });
  assert.equal(niftiReader.canRead(input('scan.bin', gzipSync(concat(hdr, Uint8Array.of(1))))), true);
  assert.equal(niftiReader.canRead(input('scan.nii', hdr)), true);
  assert.equal(niftiReader.canRead(input('pair.hdr', header1({ dims: [1, 1, 1], datatype: 2, bitpix: 8, magic: 'ni1\0', voxOffset: 0 }))), true);
  const analyze = niftiReader.canRead(input('old.hdr', header1({ dims: [1, 1, 1], datatype: 2, bitpix: 8, magic: '\0\0\0\0' })));
  assert.match(String(analyze), /Analyze/);
  assert.match(String(niftiReader.canRead(input('fake.nii', new TextEncoder().encode('hello world'.repeat(40))))), /does not start with a NIfTI header/);
  assert.notEqual(niftiReader.canRead(input('d', new Uint8Array(0), true)), true);
  assert.notEqual(niftiReader.canRead(input('x.png', Uint8Array.of(0x89, 0x50, 0x4e, 0x47))), true);
});

test('decodeNifti never changes the caller\'s bytes (big-endian swap works on a copy)', async () => {
  const data = bytesOf(Int16Array.from(Array.from({ length: 600_000 }, (_, i) => i % 30000)), false);
  const bytes = concat(header1({ le: false, dims: [1000, 600, 1], datatype: 4, bitpix: 16 }), data);
  const before = Buffer.from(bytes);
  const v = await decodeNifti(bytes, 'be.nii');
  assert.equal(v.data[29999], 29999);
  assert.ok(Buffer.from(bytes).equals(before));
});
