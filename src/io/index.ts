/**
 * Node-only image I/O: the default reader/writer registry and convenience functions.
 * @module
 */
import type { Volume } from '../core/volume.js';
import { imageReader, imageWriter } from './image2d.js';
import { niftiReader, niftiWriter } from './nifti.js';
import { itkImageReader, itkImageWriter } from './itk-image.js';
import { VolumeRegistry, type ReadOptions, type WriteOptions } from './registry.js';
import { dicomFileReader, dicomSeriesReader } from './dicom.js';

export * from './registry.js';
export { imageReader, imageWriter, encodePng, type ImageWriteOptions } from './image2d.js';
export { atomicWrite } from './atomic.js';
export { itkImageReader, itkImageWriter } from './itk-image.js';
export { dicomFileReader, dicomSeriesReader, listDicomSeries, loadDicom, type DicomLoadResult, type DicomSeriesInfo } from './dicom.js';
export { deidentifyDataset, remapUid, type DeidentifyOptions, type DeidentifyResult } from './deidentify.js';
export { encodeDicomSeg, writeDicomSeg, organTerm, ORGAN_TERMS, SEGMENTATION_SOP_CLASS, type DicomSegOptions, type WriteDicomSegOptions, type DicomSegResult, type SegmentInfo, type SegmentTerm, type SegmentProvenance } from './dicom-seg.js';
export { niftiReader, niftiWriter, decodeNifti, encodeNifti, NIFTI_INTENT_LABEL, type DecodeNiftiOptions, type EncodeNiftiOptions } from './nifti.js';

/**
 * A registry holding medmask's built-in readers and writers. Readers are probed in this order:
 * DICOM (folder, file), NIfTI (.nii, .nii.gz, .hdr/.img), NRRD/MetaImage, PNG/JPEG/TIFF.
 * @returns a fresh registry (add your own readers to it)
 * @example
 * const reg = createDefaultRegistry();
 * const vol = await reg.read('ct/'); // a DICOM series folder
 */
export function createDefaultRegistry(): VolumeRegistry {
  const reg = new VolumeRegistry();
  // addReader puts a reader first, so register the most generic last-tried readers first.
  reg.addReader(imageReader);
  reg.addWriter(imageWriter);
  reg.addReader(itkImageReader);
  reg.addWriter(itkImageWriter);
  reg.addReader(niftiReader);
  reg.addWriter(niftiWriter);
  reg.addReader(dicomFileReader);
  reg.addReader(dicomSeriesReader);
  return reg;
}

let shared: VolumeRegistry | undefined;
function defaults(): VolumeRegistry {
  shared ??= createDefaultRegistry();
  return shared;
}

/**
 * Read a volume from a file or folder with the built-in readers.
 * @param path - image file, NIfTI, NRRD/MHA, DICOM file or series folder
 * @param opts - e.g. `{ seriesUid }` for folders with several DICOM series
 * @returns the volume (LPS geometry, stored voxel type)
 * @example
 * const ct = await readVolume('case_0001_0000.nii.gz');
 */
export function readVolume(path: string, opts?: ReadOptions): Promise<Volume> {
  return defaults().read(path, opts);
}

/**
 * Write a volume; the format follows the file name (.nii.gz, .nii, .nrrd, .mha, .png, .tif, …).
 * @param vol - the volume
 * @param path - output path (parent folders are created; written atomically)
 * @param opts - `{ labelMap: true }` for masks
 * @example
 * await writeVolume(mask, 'out/case_0001.nii.gz', { labelMap: true });
 */
export function writeVolume(vol: Volume, path: string, opts?: WriteOptions): Promise<void> {
  return defaults().write(vol, path, opts);
}
