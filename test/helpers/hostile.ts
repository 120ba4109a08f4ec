/**
 * Hostile and damaged inputs built from parameters (byte offsets from nifti1.h, the NRRD 0005 spec
 * and MetaIO), for the hardening tests and the fuzz tier. Small enough to build per test.
 */
import { gzipSync, deflateSync } from 'node:zlib';

/** A NIfTI-1 header (352 bytes, vox_offset 352) with the given dims, datatype and extras. */
export function niftiHeader(o: { dims: number[]; datatype?: number; bitpix?: number; slope?: number; inter?: number; srow?: number[]; pixdim?: number[] } = { dims: [4, 4, 4] }): Buffer {
  const h = Buffer.alloc(352);
  h.writeInt32LE(348, 0);
  h.writeInt16LE(o.dims.length, 40);
  o.dims.forEach((d, i) => h.writeInt16LE(d, 42 + 2 * i));
  for (let i = o.dims.length; i < 7; i++) h.writeInt16LE(1, 42 + 2 * i);
  h.writeInt16LE(o.datatype ?? 4, 70);
  h.writeInt16LE(o.bitpix ?? 16, 72);
  const pd = o.pixdim ?? [1, 1, 1, 1];
  pd.forEach((p, i) => h.writeFloatLE(p, 76 + 4 * i));
  h.writeFloatLE(352, 108);
  h.writeFloatLE(o.slope ?? 1, 112);
  h.writeFloatLE(o.inter ?? 0, 116);
  h[123] = 2;
  if (o.srow) {
    h.writeInt16LE(1, 254); // sform_code
    o.srow.forEach((x, i) => h.writeFloatLE(x, 280 + 4 * i));
  }
  h.write('n+1\0', 344, 'latin1');
  return h;
}

/**
 * A NIfTI-2 file (540-byte header + 4 bytes of extension flag, float64 fields from nifti2.h): 4×4×4
 * int16 voxels 0…63, 1 mm, with the given scl_slope / scl_inter — values a NIfTI-1 float32 field cannot hold.
 */
export function nifti2(o: { slope: number; inter: number }): Buffer {
  const h = Buffer.alloc(544);
  h.writeInt32LE(540, 0);
  h.write('n+2\0\r\n\x1a\n', 4, 'latin1');
  h.writeInt16LE(4, 12); // datatype int16
  h.writeInt16LE(16, 14); // bitpix
  [3, 4, 4, 4, 1, 1, 1, 1].forEach((d, i) => h.writeBigInt64LE(BigInt(d), 16 + 8 * i));
  for (let i = 0; i < 8; i++) h.writeDoubleLE(1, 104 + 8 * i); // pixdim
  h.writeBigInt64LE(544n, 168); // vox_offset
  h.writeDoubleLE(o.slope, 176);
  h.writeDoubleLE(o.inter, 184);
  h.writeInt32LE(2, 500); // xyzt_units: mm
  const body = Buffer.alloc(128);
  for (let i = 0; i < 64; i++) body.writeInt16LE(i, 2 * i);
  return Buffer.concat([h, body]);
}

/** A 4×4×4 int16 NIfTI with voxels 0…63. */
export function smallNifti(extra: Parameters<typeof niftiHeader>[0] = { dims: [4, 4, 4] }): Buffer {
  const h = niftiHeader(extra);
  const n = extra.dims.reduce((a, b) => a * b, 1);
  const body = Buffer.alloc(n * 2);
  for (let i = 0; i < n; i++) body.writeInt16LE(i, 2 * i);
  return Buffer.concat([h, body]);
}

/**
 * A gzip decompression bomb: a valid 4×4×4 int16 NIfTI followed by `zerosMiB` MiB of zeros, built as
 * a multi-member gzip (one member per 16 MiB of zeros, each compressed once and repeated) so that a
 * 1.5 GiB bomb is made in milliseconds. Gzip readers (and Node's gunzip) join members.
 */
export function niftiBomb(zerosMiB: number): Buffer {
  const member = gzipSync(Buffer.alloc(16 * 2 ** 20), { level: 9 });
  const parts = [gzipSync(smallNifti())];
  for (let i = 0; i < Math.ceil(zerosMiB / 16); i++) parts.push(member);
  return Buffer.concat(parts);
}

/** An NRRD file with an attached raw block; `fields` override or add header lines. */
export function nrrd(fields: Record<string, string | undefined> = {}, data?: Buffer): Buffer {
  const f: Record<string, string | undefined> = { type: 'short', dimension: '3', sizes: '2 3 4', encoding: 'raw', endian: 'little', space: 'left-posterior-superior', 'space directions': '(1,0,0) (0,2,0) (0,0,3)', 'space origin': '(10,20,30)', ...fields };
  const head = ['NRRD0004', ...Object.entries(f).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}: ${v}`), '', ''].join('\n');
  let body = data;
  if (!body) {
    body = Buffer.alloc(2 * 3 * 4 * 2);
    for (let i = 0; i < 24; i++) body.writeInt16LE(i * 7 - 50, 2 * i);
  }
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

/** A MetaImage (.mha) with attached data; `fields` override or add header lines (ElementDataFile stays last). */
export function mha(fields: Record<string, string | undefined> = {}, data?: Buffer): Buffer {
  const f: Record<string, string | undefined> = { ObjectType: 'Image', NDims: '3', DimSize: '2 3 4', ElementType: 'MET_SHORT', ElementSpacing: '1 2 3', Offset: '10 20 30', TransformMatrix: '1 0 0 0 1 0 0 0 1', BinaryData: 'True', BinaryDataByteOrderMSB: 'False', CompressedData: 'False', ...fields };
  let body = data;
  if (!body) {
    body = Buffer.alloc(48);
    for (let i = 0; i < 24; i++) body.writeInt16LE(i * 7 - 50, 2 * i);
    if (f.CompressedData === 'True') body = deflateSync(body);
  }
  if (f.CompressedData === 'True' && !('CompressedDataSize' in fields)) f.CompressedDataSize = String(body.length);
  const head = [...Object.entries(f).filter(([, v]) => v !== undefined).map(([k, v]) => `${k} = ${v}`), 'ElementDataFile = LOCAL', ''].join('\n');
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

/** A PNG of w×h grey pixels, all zero (tiny file, huge image), written by hand from the PNG spec. */
export function hugePng(w: number, h: number): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Buffer) => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 0xff]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // grey
  // A few rows are enough: the header alone declares the size (the decoder would fail later).
  const rows = Buffer.alloc(Math.min(h, 16) * (w + 1));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(rows)), chunk('IEND', Buffer.alloc(0))]);
}
