/**
 * NRRD (`.nrrd`, `.nhdr`) and MetaImage (`.mha`, `.mhd`) through @itk-wasm/image-io (ITK compiled to
 * WebAssembly). ITK's geometry is medmask's: LPS world, and itk-wasm's flat `direction` is
 * row-major with the axis directions as columns (checked by a test with a non-symmetric matrix).
 * @module
 */
import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname, extname } from 'node:path';
import { readImageNode, writeImageNode } from '@itk-wasm/image-io';
import type { Image } from 'itk-wasm';
import { MedmaskError } from '../core/errors.js';
import { createVolume, voxelTypeOf, type Mat3, type Vec3, type Volume, type VoxelType } from '../core/volume.js';
import { hasExtension, hasMagic, type ProbeInput, type VolumeReader, type VolumeWriter, type WriteOptions } from './registry.js';

const NRRD = ['.nrrd', '.nhdr'];
const META = ['.mha', '.mhd'];
const TYPES: readonly VoxelType[] = ['uint8', 'int8', 'uint16', 'int16', 'uint32', 'int32', 'float32', 'float64'];

function ascii(head: Uint8Array, n: number): string {
  return String.fromCharCode(...head.subarray(0, n));
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
  async read(path: string): Promise<Volume> {
    let img: Image;
    const exitCode = process.exitCode;
    try {
      img = await readImageNode(path);
    } catch (e) {
      // itk-wasm's Emscripten runtime sets process.exitCode when a pipeline throws; a bad input
      // file must not make the whole process fail later, so restore it.
      process.exitCode = exitCode;
      throw new MedmaskError('CORRUPT_FILE', `${path}: ITK cannot read this ${extname(path)} file (header invalid, or the data file is missing or shorter than the header says)`, {
        cause: e,
        hint: 'for .nhdr/.mhd check that the data file named in the header sits beside it; otherwise export the file again',
      });
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
