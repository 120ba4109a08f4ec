/**
 * DICOM pixel data → typed arrays of stored values, one object (all its frames) at a time.
 *
 * Uncompressed transfer syntaxes (implicit / explicit VR little endian, deflated, explicit VR big
 * endian) are decoded here: BitsAllocated 1, 8, 16, 32 (and 32/64-bit float pixel data),
 * PixelRepresentation signed / unsigned, BitsStored < BitsAllocated (masked, sign-extended),
 * SamplesPerPixel 1 or 3 with either PlanarConfiguration. Compressed syntaxes (JPEG, JPEG-LS,
 * JPEG 2000, RLE) go to GDCM inside `@itk-wasm/image-io`; GDCM applies the modality rescale itself,
 * which {@link DecodedPixels.rescaled} reports.
 * @module
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readImageNode } from '@itk-wasm/image-io';
import dcmjs, { type NaturalizedDataset } from 'dcmjs';
import sharp from 'sharp';
import { MedmaskError, isMedmaskError } from '../core/errors.js';
import { captureStderr, checkDeclaredSize, maxVoxelsOf, printable } from './limits.js';
import { decodeRle } from './dicom-rle.js';
import type { VoxelArray } from '../core/volume.js';
import { UNCOMPRESSED_SYNTAXES, sopClassName, transferSyntaxName } from './dicom-parse.js';

/** Pixels of one DICOM object. */
export interface DecodedPixels {
  /** Stored values of all frames, frame after frame, row-major within a frame, samples interleaved. */
  data: VoxelArray;
  /** Number of frames. */
  frames: number;
  /** Rows (j) and columns (i) of a frame. */
  rows: number;
  columns: number;
  /** Samples per pixel (1 grey, 3 colour). */
  samples: number;
  /** True when the decoder already applied RescaleSlope / RescaleIntercept (GDCM does). */
  rescaled: boolean;
}

/** First value of a naturalized attribute (multi-valued attributes come as arrays). */
export function first(v: unknown): unknown {
  return Array.isArray(v) ? v[0] : v;
}

/** A number from a naturalized attribute, or `fallback` when absent or not numeric. */
export function num(v: unknown, fallback: number): number;
export function num(v: unknown, fallback?: number): number | undefined;
export function num(v: unknown, fallback?: number): number | undefined {
  const x = first(v);
  if (x === undefined || x === null || x === '') return fallback;
  const n = typeof x === 'number' ? x : Number(String(x).trim());
  return Number.isFinite(n) ? n : fallback;
}

function pixelBuffer(ds: NaturalizedDataset): { bytes: Uint8Array; float: 0 | 32 | 64 } | undefined {
  for (const [key, float] of [['PixelData', 0], ['FloatPixelData', 32], ['DoubleFloatPixelData', 64]] as const) {
    const v = ds[key];
    if (v === undefined || v === null) continue;
    const parts = (Array.isArray(v) ? v : [v]) as Array<ArrayBuffer | ArrayBufferView>;
    const views = parts.map((p) => (p instanceof ArrayBuffer ? new Uint8Array(p) : new Uint8Array(p.buffer, p.byteOffset, p.byteLength)));
    if (views.length === 1) return { bytes: views[0]!, float };
    const total = views.reduce((s, p) => s + p.length, 0);
    const bytes = new Uint8Array(total);
    let o = 0;
    for (const p of views) {
      bytes.set(p, o);
      o += p.length;
    }
    return { bytes, float };
  }
  return undefined;
}

/** True when the dataset holds any pixel data element. */
export function hasPixelData(ds: NaturalizedDataset): boolean {
  return ds.PixelData !== undefined || ds.FloatPixelData !== undefined || ds.DoubleFloatPixelData !== undefined;
}

/**
 * Image storage SOP classes (PS3.4 B.5): their IODs require pixel data, so one without it is a
 * damaged or cut file, not an object of another kind. CR, DX, MG, IO, CT, enhanced CT, US (multi-frame),
 * MR, enhanced MR, SC (single- and multi-frame), XA, RF, NM, US, PET, enhanced PET, RT Image.
 */
const IMAGE_SOP_CLASSES = new Set(
  ['1', '1.1', '1.1.1', '1.2', '1.2.1', '1.3', '1.3.1', '2', '2.1', '3.1', '4', '4.1', '6.1', '7', '7.1', '7.2', '7.3', '7.4', '12.1', '12.2', '20', '128', '130', '481.1'].map((s) => `1.2.840.10008.5.1.4.1.1.${s}`),
);

/**
 * The error for a file without pixel data: NO_PIXEL_DATA naming its SOP class and what to do, or,
 * for an image object (an image SOP class, or Rows / Columns present) CORRUPT_FILE: its pixel data
 * are missing because the file is cut short or damaged, which "not an image" would misreport.
 */
export function noPixelDataError(path: string, ds: NaturalizedDataset, fileBytes?: number): MedmaskError {
  // A damaged length (0xFFFF) makes a value swallow the elements after it: never echo such bytes.
  const sopRaw = String(first(ds.SOPClassUID) ?? '').replace(/\0+$/, '').trim();
  const modRaw = String(first(ds.Modality) ?? '').replace(/\0+$/, '').trim();
  const sop = /^[0-9.]{1,64}$/.test(sopRaw) ? sopRaw : sopRaw ? `an unreadable ${sopRaw.length}-character value` : '';
  const modality = /^[A-Z0-9 _]{1,16}$/.test(modRaw) ? modRaw : modRaw ? `an unreadable ${modRaw.length}-character value (its length field is damaged)` : '';
  if (IMAGE_SOP_CLASSES.has(sop) || ds.Rows !== undefined || ds.Columns !== undefined) {
    return new MedmaskError('CORRUPT_FILE', `${path}: an image object (SOP class ${sopClassName(sop)}${modality ? `, modality ${modality}` : ''}) without its pixel data${fileBytes !== undefined ? `: the file (${fileBytes} bytes) is cut short or damaged before the pixel data` : ''}`, {
      hint: 'the file is truncated or damaged; copy it again from the PACS or export it again',
      details: { file: path, sopClassUid: sop, modality },
    });
  }
  return new MedmaskError('NO_PIXEL_DATA', `${path}: this DICOM object holds no pixel data (SOP class ${sopClassName(sop)}${modality ? `, modality ${modality}` : ''})`, {
    hint: 'structure sets (RTSTRUCT), reports (SR), plans and presentation states describe images but are not images: read the image series they refer to instead (its folder), and remove this file from the folder or pass --series',
    details: { file: path, sopClassUid: sop, modality },
  });
}

function swapBytes(bytes: Uint8Array, width: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i + width <= bytes.length; i += width) for (let b = 0; b < width; b++) out[i + b] = bytes[i + width - 1 - b]!;
  return out;
}

function aligned(bytes: Uint8Array, n: number): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + n) as ArrayBuffer;
}

/**
 * Decode the pixel data of one dataset into stored values.
 * @param ds - naturalized dataset, with PixelData
 * @param transferSyntax - its transfer syntax UID
 * @param path - the file (compressed data is handed to GDCM by path; also for messages)
 * @returns the stored values of every frame
 * @throws MedmaskError NO_PIXEL_DATA, UNSUPPORTED_FORMAT (a compressed syntax GDCM cannot decode), CORRUPT_FILE
 * @example
 * const px = await decodePixels(dataset, '1.2.840.10008.1.2.1', 'ct.dcm'); // px.data: Uint16Array
 */
export async function decodePixels(ds: NaturalizedDataset, transferSyntax: string, path: string, opts: { maxVoxels?: number; implicitUnderExplicit?: boolean } = {}): Promise<DecodedPixels> {
  const found = pixelBuffer(ds);
  if (!found) throw noPixelDataError(path, ds);
  const rows = num(ds.Rows, 0);
  const columns = num(ds.Columns, 0);
  const frames = numberOfFrames(ds, path);
  const samples = num(ds.SamplesPerPixel, 1);
  const imageType = (Array.isArray(ds.ImageType) ? ds.ImageType : String(ds.ImageType ?? '').split('\\')).map((x) => String(x).trim().toUpperCase());
  if (imageType.includes('MOSAIC')) {
    throw new MedmaskError('UNSUPPORTED_FORMAT', `${path}: a Siemens mosaic (ImageType ${printable(imageType.join('\\'), 80)}): its slices are tiled in one ${columns}×${rows} image, and reading it as one 2D image would give wrong geometry`, {
      hint: 'convert the series with dcm2niix (which unpacks mosaics) and read the NIfTI it writes',
    });
  }
  if (rows > 0 && columns > 0) {
    checkDeclaredSize(path, { dims: [columns, rows, frames], components: samples > 0 ? samples : 1, bytesPerElement: Math.max(1, num(ds.BitsAllocated, 16) / 8), type: `BitsAllocated ${num(ds.BitsAllocated, 16)}` }, maxVoxelsOf(opts));
  }
  if (!(rows > 0 && columns > 0)) {
    throw new MedmaskError('CORRUPT_FILE', `${path}: Rows ${String(ds.Rows)} / Columns ${String(ds.Columns)} are missing or zero`, { hint: 'the header is damaged; export the image again' });
  }
  if (samples !== 1 && samples !== 3) {
    throw new MedmaskError('UNSUPPORTED_FORMAT', `${path}: SamplesPerPixel ${samples} is not supported`, { hint: 'medmask reads grey (1) or colour (3) images' });
  }
  if (transferSyntax === '1.2.840.10008.1.2.5') return decodeRle(path, ds, found.bytes, { rows, columns, frames, samples, bitsAllocated: num(ds.BitsAllocated, 8), signed: num(ds.PixelRepresentation, 0) === 1 });
  if (!(transferSyntax in UNCOMPRESSED_SYNTAXES)) return decodeCompressed(path, transferSyntax, { rows, columns, frames, samples }, ds, opts.implicitUnderExplicit === true);

  const bitsAllocated = num(ds.BitsAllocated, 16);
  const bitsStored = num(ds.BitsStored, bitsAllocated);
  const highBit = num(ds.HighBit, bitsStored - 1);
  const signed = num(ds.PixelRepresentation, 0) === 1;
  const bigEndian = transferSyntax === '1.2.840.10008.1.2.2';
  const n = rows * columns * frames * samples;
  const photometric = String(first(ds.PhotometricInterpretation) ?? '').trim();
  if (samples === 3 && photometric.startsWith('YBR') && photometric !== 'YBR_FULL') {
    throw new MedmaskError('UNSUPPORTED_FORMAT', `${path}: uncompressed ${photometric} colour is not supported`, { hint: 'convert to RGB, e.g. `gdcmconv --raw` or `dcmconv +cr`' });
  }
  let { bytes } = found;
  const need = found.float ? (n * found.float) / 8 : bitsAllocated === 1 ? Math.ceil(n / 8) : (n * bitsAllocated) / 8;
  if (![1, 8, 16, 32].includes(bitsAllocated) && !found.float) {
    throw new MedmaskError('UNSUPPORTED_FORMAT', `${path}: BitsAllocated ${bitsAllocated} is not supported`, { hint: 'medmask reads 1-, 8-, 16- and 32-bit pixel data' });
  }
  if (bytes.length < need) {
    throw new MedmaskError('CORRUPT_FILE', `${path}: pixel data has ${bytes.length} bytes but ${rows}×${columns}×${frames} frame(s)×${samples} sample(s) at ${found.float || bitsAllocated} bits need ${need}`, {
      hint: 'the file is truncated; copy it again',
    });
  }
  // More whole frames than NumberOfFrames says (dcmjs reads an IS of "1A" as 1): refuse, never read a part.
  const frameBytes = need / frames;
  if (bitsAllocated !== 1 && bytes.length >= need + frameBytes && bytes.length % frameBytes <= 1) {
    throw new MedmaskError('CORRUPT_FILE', `${path}: pixel data hold ${Math.floor(bytes.length / frameBytes)} frames of ${rows}×${columns}×${samples} but NumberOfFrames says ${frames} (${JSON.stringify(String(first(ds.NumberOfFrames) ?? 'absent'))})`, {
      hint: 'NumberOfFrames is damaged; fix it (e.g. with dcmodify) or export the image again',
    });
  }
  const width = found.float ? found.float / 8 : bitsAllocated / 8;
  if (bigEndian && width > 1) bytes = swapBytes(bytes.subarray(0, need), width);
  let data: VoxelArray;
  if (found.float === 32) data = new Float32Array(aligned(bytes, need));
  else if (found.float === 64) {
    const f = new Float64Array(aligned(bytes, need));
    data = Float32Array.from(f);
  } else if (bitsAllocated === 1) {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = (bytes[i >> 3]! >> (i & 7)) & 1;
    data = out;
  } else if (bitsAllocated === 8) data = signed ? new Int8Array(aligned(bytes, need)) : new Uint8Array(aligned(bytes, need));
  else if (bitsAllocated === 16) data = signed ? new Int16Array(aligned(bytes, need)) : new Uint16Array(aligned(bytes, need));
  else data = signed ? new Int32Array(aligned(bytes, need)) : new Uint32Array(aligned(bytes, need));
  // BitsStored < BitsAllocated: keep the stored bits, sign-extend signed values.
  if (!found.float && bitsAllocated > 1 && bitsStored < bitsAllocated && highBit === bitsStored - 1) {
    const mask = 2 ** bitsStored - 1;
    const top = 2 ** (bitsStored - 1);
    for (let i = 0; i < data.length; i++) {
      let v = data[i]! & mask;
      if (signed && v >= top) v -= 2 ** bitsStored;
      data[i] = v;
    }
  }
  // PlanarConfiguration 1 (RRR…GGG…BBB… per frame) → interleaved.
  if (samples === 3 && num(ds.PlanarConfiguration, 0) === 1) {
    const plane = rows * columns;
    const out = new (data.constructor as new (n: number) => VoxelArray)(data.length);
    for (let f = 0; f < frames; f++) {
      const base = f * plane * 3;
      for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) out[base + p * 3 + c] = data[base + c * plane + p]!;
    }
    data = out;
  }
  return { data, frames, rows, columns, samples, rescaled: false };
}

/**
 * NumberOfFrames as a positive whole number (absent: 1).
 * @throws MedmaskError CORRUPT_FILE for a value such as "1A" (which would otherwise read one frame of many)
 */
export function numberOfFrames(ds: NaturalizedDataset, path: string): number {
  const v = first(ds.NumberOfFrames);
  if (v === undefined || v === null || v === '') return 1;
  const n = typeof v === 'number' ? v : /^\s*\d+\s*$/.test(String(v)) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new MedmaskError('CORRUPT_FILE', `${path}: NumberOfFrames ${JSON.stringify(printable(String(v), 40))} is not a positive whole number`, { hint: 'the header is damaged; export the image again' });
  }
  return n;
}

/** Baseline / extended JPEG frames decoded with libjpeg (sharp) where GDCM cannot read the file. */
async function decodeJpegFrames(ds: NaturalizedDataset, want: { rows: number; columns: number; frames: number; samples: number }): Promise<Uint8Array | undefined> {
  const v = ds.PixelData;
  const parts = (Array.isArray(v) ? v : [v]) as Array<ArrayBuffer | ArrayBufferView>;
  if (parts.length !== want.frames) return undefined;
  const out = new Uint8Array(want.rows * want.columns * want.samples * want.frames);
  for (let f = 0; f < parts.length; f++) {
    const p = parts[f]!;
    const bytes = p instanceof ArrayBuffer ? new Uint8Array(p) : new Uint8Array(p.buffer, p.byteOffset, p.byteLength);
    const { data, info } = await sharp(bytes).toColourspace(want.samples === 1 ? 'b-w' : 'srgb').raw().toBuffer({ resolveWithObject: true });
    if (info.width !== want.columns || info.height !== want.rows || info.channels !== want.samples) return undefined;
    out.set(data, f * data.length);
  }
  return out;
}

async function decodeCompressed(
  path: string,
  transferSyntax: string,
  want: { rows: number; columns: number; frames: number; samples: number },
  ds: NaturalizedDataset,
  implicitUnderExplicit = false,
): Promise<DecodedPixels> {
  // GDCM refuses a dataset written as implicit VR under an explicit-VR (compressed) syntax: it gets
  // a copy re-encoded as explicit VR by dcmjs (same elements, same encapsulated frames).
  if (implicitUnderExplicit) {
    const dir = await mkdtemp(join(tmpdir(), 'medmask-dicom-'));
    try {
      const copy = join(dir, 'explicit.dcm');
      const written = await captureStderr(async () => explicitVrCopy(ds)); // dcmjs lists private tags it cannot name
      if (written.value) {
        await writeFile(copy, written.value, { mode: 0o600 });
        return await decodeCompressed(copy, transferSyntax, want, ds).catch((e: unknown) => {
          throw isMedmaskError(e) ? new MedmaskError(e.code, e.message.split(copy).join(path), { cause: e, ...(e.hint ? { hint: e.hint } : {}), ...(e.details ? { details: { ...e.details, file: path } } : {}) }) : e;
        });
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  const unsupported = (cause?: unknown): MedmaskError =>
    new MedmaskError('UNSUPPORTED_FORMAT', `${path}: compressed pixel data in transfer syntax ${transferSyntaxName(transferSyntax)} could not be decoded`, {
      cause,
      hint: 'decompress the files first, e.g. `gdcmconv --raw IN OUT` (GDCM) or `dcmdjpeg IN OUT` (DCMTK, for JPEG), then read them again',
      details: { file: path, transferSyntaxUid: transferSyntax },
    });
  const exitCode = process.exitCode;
  // GDCM and Emscripten print to stderr; the text goes into the error's details instead.
  const r = await captureStderr(() => readImageNode(path));
  // itk-wasm's Emscripten runtime sets process.exitCode when a pipeline throws: restore it.
  process.exitCode = exitCode;
  if (r.error !== undefined || !r.value) {
    // libjpeg converts YCbCr to RGB, which is right only when the header says the JPEG holds YBR.
    const photometric = String(first(ds.PhotometricInterpretation) ?? '').trim();
    if ((transferSyntax === '1.2.840.10008.1.2.4.50' || transferSyntax === '1.2.840.10008.1.2.4.51') && (photometric.startsWith('YBR') || want.samples === 1)) {
      const jpeg = await decodeJpegFrames(ds, want).catch(() => undefined);
      if (jpeg) return { data: jpeg, frames: want.frames, rows: want.rows, columns: want.columns, samples: want.samples, rescaled: false };
    }
    const e = unsupported(r.error);
    if (r.noise) (e as { details?: Record<string, unknown> }).details!.stderr = printable(r.noise, 4000);
    throw e;
  }
  const img = r.value;
  const data = img.data as VoxelArray | null;
  const components = img.imageType.components;
  const size = img.size;
  const frames = size.length > 2 ? size[2]! : 1;
  if (!data || size[0] !== want.columns || size[1] !== want.rows || frames !== want.frames || components !== want.samples) {
    throw unsupported(new Error(`GDCM returned ${size.join('×')}×${components}, header says ${want.columns}×${want.rows}×${want.frames}×${want.samples}`));
  }
  return { data, frames, rows: want.rows, columns: want.columns, samples: components, rescaled: true };
}

/** The dataset written back as a Part 10 file by dcmjs, in the (explicit VR) transfer syntax its meta names. */
function explicitVrCopy(ds: NaturalizedDataset): Uint8Array {
  const { DicomDict, DicomMetaDictionary } = dcmjs.data;
  const { _meta: meta, ...rest } = ds as NaturalizedDataset & { _meta?: Record<string, unknown> };
  // _meta is kept denaturalized by the parser (dicom-parse.ts), as DicomDict wants it.
  const out = new DicomDict((meta ?? {}) as ConstructorParameters<typeof DicomDict>[0]);
  out.dict = DicomMetaDictionary.denaturalizeDataset(rest);
  return new Uint8Array(out.write({ fragmentMultiframe: false }));
}
