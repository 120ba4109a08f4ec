/**
 * NRRD (`.nrrd`, `.nhdr`) and MetaImage (`.mha`, `.mhd`) through @itk-wasm/image-io (ITK compiled to
 * WebAssembly). ITK's geometry is medmask's: LPS world, and itk-wasm's flat `direction` is
 * row-major with the axis directions as columns (checked by a test with a non-symmetric matrix).
 * @module
 */
import { copyFile, mkdir, mkdtemp, open, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, extname, join } from 'node:path';
import { metaReadImageNode, nrrdReadImageNode, writeImageNode } from '@itk-wasm/image-io';
import type { Image } from 'itk-wasm';
import { MedmaskError, isMedmaskError } from '../core/errors.js';
import { createVolume, voxelTypeOf, type Mat3, type Vec3, type Volume, type VoxelType } from '../core/volume.js';
import { MAX_HEADER_BYTES, parseMetaImageHeader, parseNrrdHeader, type ItkHeader } from './itk-header.js';
import { captureStderr, checkGeometry, maxVoxelsOf, printable } from './limits.js';
import { hasExtension, hasMagic, type ProbeInput, type ReadOptions, type VolumeReader, type VolumeWriter, type WriteOptions } from './registry.js';

const NRRD = ['.nrrd', '.nhdr'];
const META = ['.mha', '.mhd'];
const TYPES: readonly VoxelType[] = ['uint8', 'int8', 'uint16', 'int16', 'uint32', 'int32', 'float32', 'float64'];

function ascii(head: Uint8Array, n: number): string {
  return String.fromCharCode(...head.subarray(0, n));
}

const NRRD_MAGIC = [0x4e, 0x52, 0x52, 0x44, 0x30, 0x30, 0x30]; // "NRRD000"

/** Read and check the header (see itk-header.ts) before ITK is given the file. */
async function readHeader(path: string, maxVoxels: number): Promise<ItkHeader> {
  const fh = await open(path, 'r');
  let head: Uint8Array;
  let size: number;
  try {
    size = (await fh.stat()).size;
    head = new Uint8Array(Math.min(size, MAX_HEADER_BYTES + 1));
    if (head.length) await fh.read(head, 0, head.length, 0);
  } finally {
    await fh.close();
  }
  if (hasMagic(head, NRRD_MAGIC)) return parseNrrdHeader(head, path, size, maxVoxels);
  return parseMetaImageHeader(head, path, size, maxVoxels);
}

/** The first line of what ITK printed, for the one-line error (all of it goes into details). */
function firstNoise(noise: string): string {
  const line = noise.split(/\r?\n/).map((l) => l.trim()).find((l) => l && !/^(itk::|Description:|Location:|File:|Line:)/.test(l)) ?? '';
  return line ? ` — ITK: ${printable(line, 160)}` : '';
}

/**
 * Reads NRRD and MetaImage files (2D or 3D, scalar or vector pixels).
 * @example
 * const vol = await itkImageReader.read('ct.nrrd');
 */
export const itkImageReader: VolumeReader = {
  name: 'itk',
  description: 'NRRD (.nrrd, .nhdr) and MetaImage (.mha, .mhd)',
  canRead(input: ProbeInput): true | string {
    if (input.isDirectory) return 'is a folder';
    if (hasMagic(input.head, [0x4e, 0x52, 0x52, 0x44, 0x30, 0x30, 0x30])) return true; // "NRRD000"
    const named = hasExtension(input.name, [...NRRD, ...META]);
    if (hasExtension(input.name, META) && /^\s*(ObjectType|NDims|Comment)\s*=/.test(ascii(input.head, 64))) return true;
    if (named) return input.size === 0 ? 'file is empty' : 'named like NRRD/MetaImage but lacks the "NRRD000" / "ObjectType =" header';
    return 'no NRRD or MetaImage header';
  },
  async read(path: string, opts: ReadOptions = {}): Promise<Volume> {
    const header = await readHeader(path, maxVoxelsOf(opts));
    // ITK picks its reader by extension and otherwise tries every one of its ~20 readers, which
    // costs seconds; medmask calls the one the header names. A file with attached data under
    // another name is read from a copy with the right ending (ITK's readers check it).
    const want = header.format === 'nrrd' ? NRRD : META;
    let target = path;
    let tmp: string | undefined;
    if (!hasExtension(path, want)) {
      if (header.dataFile) {
        throw new MedmaskError('UNSUPPORTED_FORMAT', `${path}: a detached ${header.format === 'nrrd' ? 'NRRD' : 'MetaImage'} header needs its usual ending (${header.format === 'nrrd' ? '.nhdr' : '.mhd'})`, { hint: 'rename the header file' });
      }
      tmp = await mkdtemp(join(tmpdir(), 'medmask-itk-'));
      target = join(tmp, `${basename(path).replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 100)}${header.format === 'nrrd' ? '.nrrd' : '.mha'}`);
      await copyFile(path, target);
    }
    let img: Image;
    const exitCode = process.exitCode;
    try {
      // ITK and Emscripten print to stderr; that text is folded into the error instead.
      const r = await captureStderr(() => (header.format === 'nrrd' ? nrrdReadImageNode(target) : metaReadImageNode(target)));
      // itk-wasm's Emscripten runtime sets process.exitCode when a pipeline throws; a bad input
      // file must not make the whole process fail later, so restore it.
      process.exitCode = exitCode;
      // ITK reports some damage only on stderr and returns zeros ("Uncompress failed"): refuse those.
      if (r.error !== undefined || !r.value?.couldRead || !r.value.image || /fail|error|exception/i.test(r.noise)) {
        const msg = r.error instanceof Error ? r.error.message : '';
        throw new MedmaskError('CORRUPT_FILE', `${path}: ITK cannot read this ${header.format === 'nrrd' ? 'NRRD' : 'MetaImage'} file (${header.encoding} data${header.dataFile ? ` in ${printable(header.dataFile, 80)}` : ''})${firstNoise(r.noise || msg)}`, {
          ...(r.error !== undefined ? { cause: r.error } : {}),
          hint: header.dataFile ? 'check that the data file named in the header sits beside it and is complete' : `the ${header.encoding} data are damaged or shorter than the header says; export the file again`,
          details: { stderr: printable(r.noise || msg, 4000) },
        });
      }
      img = r.value.image;
    } catch (e) {
      process.exitCode = exitCode;
      if (isMedmaskError(e)) throw e;
      throw new MedmaskError('CORRUPT_FILE', `${path}: ITK cannot read this ${extname(path)} file`, { cause: e, hint: 'export the file again' });
    } finally {
      if (tmp) await rm(tmp, { recursive: true, force: true });
    }
    const dim = img.imageType.dimension;
    if (dim < 2 || dim > 3) {
      throw new MedmaskError('UNSUPPORTED_FORMAT', `${path}: ${dim}-D images are not supported`, { hint: 'medmask reads 2-D and 3-D images; split 4-D series into volumes' });
    }
    const type = img.imageType.componentType as VoxelType;
    if (!TYPES.includes(type) || !img.data) {
      throw new MedmaskError('UNSUPPORTED_FORMAT', `${path}: pixel component type ${img.imageType.componentType} is not supported`, { hint: `convert to one of ${TYPES.join(', ')}` });
    }
    const shape: Vec3 = [img.size[0]!, img.size[1]!, dim === 3 ? img.size[2]! : 1];
    const spacing: Vec3 = [img.spacing[0]!, img.spacing[1]!, dim === 3 ? img.spacing[2]! : 1];
    const origin: Vec3 = [img.origin[0]!, img.origin[1]!, dim === 3 ? img.origin[2]! : 0];
    const d = Array.from(img.direction as ArrayLike<number>);
    const direction = (dim === 3 ? d : [d[0]!, d[1]!, 0, d[2]!, d[3]!, 0, 0, 0, 1]) as Mat3;
    const nrrd = header.format === 'nrrd';
    checkGeometry(path, { spacing, origin, direction }, {
      spacing: nrrd ? 'spacing (field "space directions" / "spacings")' : 'ElementSpacing',
      origin: nrrd ? 'origin (field "space origin")' : 'Offset',
      direction: nrrd ? 'direction (field "space directions")' : 'TransformMatrix',
    });
    return createVolume(shape, type, {
      data: img.data as Volume['data'],
      components: img.imageType.components,
      spacing,
      origin,
      direction,
      meta: { format: hasExtension(path, NRRD) ? 'nrrd' : 'metaimage' },
    });
  },
};

/**
 * Writes NRRD (`.nrrd`) and MetaImage (`.mha`; `.mhd` writes a `.raw`/`.zraw` beside it).
 * @example
 * await itkImageWriter.write(vol, 'out/ct.mha');
 */
export const itkImageWriter: VolumeWriter = {
  name: 'itk',
  description: 'NRRD (.nrrd) and MetaImage (.mha, .mhd)',
  extensions: ['.nrrd', '.mha', '.mhd'],
  async write(vol: Volume, path: string, opts: WriteOptions = {}): Promise<void> {
    let data = vol.data;
    if (opts.labelMap) {
      let hi = 0;
      for (const x of data) if (x > hi) hi = x;
      data = hi <= 255 ? Uint8Array.from(data) : Uint16Array.from(data);
    }
    // itk-wasm hands `data.buffer` to WebAssembly whole: a view into a larger buffer (as the NIfTI
    // reader returns for big volumes) must be made tight first.
    if (data.byteOffset !== 0 || data.buffer.byteLength !== data.byteLength) data = data.slice();
    const componentType = voxelTypeOf(data);
    const img: Image = {
      imageType: { dimension: 3, componentType, pixelType: vol.components === 1 ? 'Scalar' : 'VariableLengthVector', components: vol.components },
      name: 'medmask',
      origin: [...vol.origin],
      spacing: [...vol.spacing],
      direction: Float64Array.from(vol.direction),
      size: [...vol.shape],
      metadata: new Map(),
      data,
    } as unknown as Image;
    await mkdir(dirname(path), { recursive: true });
    // ITK picks the format from the extension, so the temporary name keeps it. A .mhd header names
    // its .raw data file, so .mhd is written in place rather than renamed.
    const ext = extname(path);
    const direct = ext.toLowerCase() === '.mhd';
    const target = direct ? path : `${path.slice(0, -ext.length)}.${process.pid}.tmp${ext}`;
    try {
      await writeImageNode(img, target, { useCompression: opts.compress !== false });
      if (!direct) await rename(target, path);
    } catch (e) {
      if (!direct) await rm(target, { force: true });
      throw new MedmaskError('INTERNAL', `${path}: ITK failed to write the image`, { cause: e });
    }
  },
};
