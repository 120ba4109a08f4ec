/**
 * PNG, JPEG and TIFF through sharp (libvips): 8- and 16-bit, greyscale and RGB; multi-page TIFF
 * becomes a volume with one slice per page.
 *
 * Geometry: these formats carry no patient geometry. A 2D image gets origin 0, identity direction
 * (i = column → +x, j = row, top to bottom → +y) and 1 mm spacing unless the file states a physical
 * resolution (PNG pHYs / TIFF resolution), which is then used and recorded in
 * `meta.spacingSource`.
 * @module
 */
import sharp, { type Metadata, type OutputInfo } from 'sharp';
import { MedmaskError } from '../core/errors.js';
import { atomicWrite } from './atomic.js';
import { createVolume, valueRange, voxelTypeOf, type Vec3, type Volume } from '../core/volume.js';
import { checkDeclaredSize, maxVoxelsOf, printable } from './limits.js';
import { hasExtension, hasMagic, type ProbeInput, type ReadOptions, type VolumeReader, type VolumeWriter, type WriteOptions } from './registry.js';

const EXTENSIONS = ['.png', '.jpg', '.jpeg', '.tif', '.tiff'];

function sniff(head: Uint8Array): 'png' | 'jpeg' | 'tiff' | undefined {
  if (hasMagic(head, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'png';
  if (hasMagic(head, [0xff, 0xd8, 0xff])) return 'jpeg';
  if (hasMagic(head, [0x49, 0x49, 0x2a, 0x00]) || hasMagic(head, [0x4d, 0x4d, 0x00, 0x2a])) return 'tiff';
  return undefined;
}

/**
 * Reads PNG, JPEG and TIFF files (8/16-bit, grey/RGB, alpha dropped).
 * @example
 * const vol = await imageReader.read('chest.png'); // Volume<Uint8Array>, shape [w, h, 1]
 */
export const imageReader: VolumeReader = {
  name: 'image',
  description: 'PNG / JPEG / TIFF, 8- or 16-bit, grey or RGB (.png, .jpg, .jpeg, .tif, .tiff)',
  canRead(input: ProbeInput): true | string {
    if (input.isDirectory) return 'is a folder';
    const kind = sniff(input.head);
    if (kind) return true;
    if (hasExtension(input.name, EXTENSIONS)) {
      return input.size === 0 ? 'file is empty' : `named like an image but its first bytes are not a PNG, JPEG or TIFF signature`;
    }
    return 'no PNG/JPEG/TIFF signature';
  },
  async read(path: string, opts: ReadOptions = {}): Promise<Volume> {
    let meta: Metadata;
    const cap = maxVoxelsOf(opts);
    try {
      // metadata() reads the header only: the size is checked before any pixel is decoded.
      meta = await sharp(path, { limitInputPixels: false }).metadata();
    } catch (e) {
      throw new MedmaskError('CORRUPT_FILE', `${path}: cannot decode the image header (${printable((e as Error).message)})`, {
        cause: e,
        hint: 'the file is probably truncated or not really an image; export it again',
      });
    }
    const grey = (meta.channels ?? 3) <= 2;
    const sixteen = meta.depth === 'ushort' || meta.depth === 'short';
    if (meta.depth && !['uchar', 'char', 'ushort', 'short'].includes(meta.depth)) {
      throw new MedmaskError('UNSUPPORTED_FORMAT', `${path}: ${meta.depth} samples are not supported`, {
        hint: 'convert the image to 8- or 16-bit integer samples, or to NIfTI',
      });
    }
    const pages = meta.format === 'tiff' ? (meta.pages ?? 1) : 1;
    const components = grey ? 1 : 3;
    const pageHeight = pages > 1 ? (meta.pageHeight ?? meta.height ?? 0) : (meta.height ?? 0);
    checkDeclaredSize(path, { dims: [meta.width ?? 0, pageHeight, pages], components, bytesPerElement: sixteen ? 2 : 1, type: `${meta.format ?? 'image'} ${sixteen ? '16' : '8'}-bit` }, cap);
    const colourspace = grey ? (sixteen ? 'grey16' : 'b-w') : sixteen ? 'rgb16' : 'srgb';
    let raw: { data: Buffer; info: OutputInfo };
    try {
      // limitInputPixels: libvips itself also refuses more pixels than the header check allowed.
      raw = await sharp(path, { limitInputPixels: Math.max(1, Math.floor(cap / components)), ...(pages > 1 ? { pages: -1 } : {}) })
        .toColourspace(colourspace)
        .removeAlpha()
        .raw(sixteen ? { depth: 'ushort' } : {})
        .toBuffer({ resolveWithObject: true });
    } catch (e) {
      throw new MedmaskError('CORRUPT_FILE', `${path}: pixel data cannot be decoded (${printable((e as Error).message)})`, {
        cause: e,
        hint: 'the file is probably truncated; export or copy it again',
      });
    }
    const width = raw.info.width;
    const height = pages > 1 ? (meta.pageHeight ?? raw.info.height / pages) : raw.info.height;
    const shape: Vec3 = [width, height, pages];
    const bytes = raw.data;
    const data = sixteen
      ? new Uint16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length))
      : new Uint8Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
    // Physical resolution, where stated (sharp reports pixels per inch).
    let spacing: Vec3 = [1, 1, 1];
    let spacingSource = 'default (1 mm): the file states no physical pixel size';
    if (meta.density && meta.format !== 'jpeg' && meta.density !== 72) {
      const mm = 25.4 / meta.density;
      spacing = [mm, mm, 1];
      spacingSource = `file resolution ${meta.density} pixels per inch`;
    }
    return createVolume(shape, sixteen ? 'uint16' : 'uint8', {
      data,
      components,
      spacing,
      meta: { format: meta.format ?? 'image', spacingSource, bitsStored: sixteen ? 16 : 8 },
    });
  },
};

/** Options of the 2D image writer. */
export interface ImageWriteOptions extends WriteOptions {
  /**
   * Map the value range linearly onto 0…255 (or 0…65535 with `bitDepth: 16`) — for float heat maps
   * meant for viewing, not for data that must round-trip.
   */
  rescale?: boolean;
  /** Bit depth for rescaled output (default 8). */
  bitDepth?: 8 | 16;
}

/**
 * Encode a 2D volume (z = 1) as PNG bytes: uint8 → 8-bit, uint16 (or int data within 0…65535) →
 * 16-bit; 1 component grey, 3 RGB, 4 RGBA.
 * @param vol - a 2D volume
 * @param opts - label map / rescale options
 * @returns PNG file bytes
 * @example
 * const bytes = await encodePng(mask, { labelMap: true });
 */
export async function encodePng(vol: Volume, opts: ImageWriteOptions = {}): Promise<Buffer> {
  return encode2d(vol, 'png', opts);
}

async function encode2d(vol: Volume, format: 'png' | 'tiff' | 'jpeg', opts: ImageWriteOptions, path = '<memory>'): Promise<Buffer> {
  const [w, h, d] = vol.shape;
  if (d !== 1) {
    throw new MedmaskError('USAGE', `${path}: ${format.toUpperCase()} holds one 2D image but the volume has ${d} slices`, {
      hint: 'write .nii.gz, .nrrd or .mha for volumes',
    });
  }
  if (![1, 3, 4].includes(vol.components)) {
    throw new MedmaskError('USAGE', `${path}: ${vol.components} components per pixel cannot be written as ${format.toUpperCase()}`, {
      hint: 'use 1 (grey), 3 (RGB) or 4 (RGBA) components',
    });
  }
  const [lo, hi] = valueRange(vol.data);
  const type = voxelTypeOf(vol.data);
  let pixels: Uint8Array | Uint16Array;
  if (opts.rescale) {
    const bits = opts.bitDepth ?? 8;
    const top = bits === 16 ? 65535 : 255;
    pixels = bits === 16 ? new Uint16Array(vol.data.length) : new Uint8Array(vol.data.length);
    const span = hi > lo ? hi - lo : 1;
    for (let i = 0; i < vol.data.length; i++) pixels[i] = Math.round(((vol.data[i]! - lo) / span) * top);
  } else if (type === 'uint8') {
    pixels = vol.data as Uint8Array;
  } else if (type === 'uint16') {
    pixels = vol.data as Uint16Array;
  } else {
    const integral = Number.isNaN(lo) || vol.data.every((x) => Number.isInteger(x));
    if (!integral || lo < 0 || hi > 65535) {
      throw new MedmaskError('USAGE', `${path}: ${format.toUpperCase()} stores integers 0…65535 but the data are ${type} in [${lo}, ${hi}]`, {
        hint: 'write .nii.gz to keep the values, or rescale for viewing (--rescale)',
      });
    }
    pixels = hi <= 255 && opts.labelMap !== false ? Uint8Array.from(vol.data) : Uint16Array.from(vol.data);
  }
  if (format === 'jpeg' && pixels instanceof Uint16Array) {
    throw new MedmaskError('USAGE', `${path}: JPEG is 8-bit only; the data need 16 bits`, { hint: 'write PNG or TIFF' });
  }
  const sixteen = pixels instanceof Uint16Array;
  const grey = vol.components === 1;
  let img = sharp(pixels, { raw: { width: w, height: h, channels: vol.components as 1 | 3 | 4 } }).toColourspace(
    grey ? (sixteen ? 'grey16' : 'b-w') : sixteen ? 'rgb16' : 'srgb',
  );
  if (format === 'png') img = img.png({ compressionLevel: opts.compress === false ? 0 : 6 });
  else if (format === 'tiff') img = img.tiff({ compression: opts.compress === false ? 'none' : 'lzw' });
  else img = img.jpeg({ quality: 95 });
  return img.toBuffer();
}

/**
 * Writes PNG (8/16-bit), TIFF (8/16-bit) and JPEG (8-bit, lossy: for previews only).
 * @example
 * await imageWriter.write(mask, 'out/mask.png', { labelMap: true });
 */
export const imageWriter: VolumeWriter = {
  name: 'image',
  description: 'PNG / TIFF (8- or 16-bit), JPEG (8-bit previews)',
  extensions: ['.png', '.tiff', '.tif', '.jpeg', '.jpg'],
  async write(vol: Volume, path: string, opts: ImageWriteOptions = {}): Promise<void> {
    const lower = path.toLowerCase();
    const format = lower.endsWith('.png') ? 'png' : lower.endsWith('.tif') || lower.endsWith('.tiff') ? 'tiff' : 'jpeg';
    await atomicWrite(path, await encode2d(vol, format, opts, path));
  },
};
