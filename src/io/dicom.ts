/**
 * DICOM readers: one file (single- or multi-frame) and a series folder, both → one volume in LPS,
 * rescaled to HU for CT, de-identified on import (PS3.15 basic profile, see `deidentify.ts`).
 * The work is done in `dicom-parse.ts` (bytes → dataset), `dicom-pixels.ts` (pixel data) and
 * `dicom-series.ts` (slice order, geometry, rescale, metadata).
 * @module
 */
import type { Volume } from '../core/volume.js';
import { folderHasDicom, loadDicom } from './dicom-series.js';
import { probeDicom } from './dicom-parse.js';
import type { ProbeInput, ReadOptions, VolumeReader } from './registry.js';

export { listDicomSeries, loadDicom, readDicomFiles, scanDicomFolder, type DicomLoadResult, type DicomScan, type DicomSeriesInfo } from './dicom-series.js';
export { parseDicom, probeDicom, sopClassName, transferSyntaxName, type ParsedDicom } from './dicom-parse.js';

/**
 * Reads one DICOM file: z = 1, or z = number of frames for multi-frame objects (ordered by their
 * per-frame positions when present).
 * @example
 * const ct = await dicomFileReader.read('slice.dcm', { uidSalt: 'project-secret' });
 */
export const dicomFileReader: VolumeReader = {
  name: 'dicom',
  description: 'DICOM file, single- or multi-frame (uncompressed; compressed through GDCM)',
  canRead(input: ProbeInput): true | string {
    if (input.isDirectory) return 'is a folder';
    if (input.size === 0) return 'file is empty';
    return probeDicom(input.head, input.name);
  },
  async read(path: string, opts?: ReadOptions): Promise<Volume> {
    return (await loadDicom(path, opts)).volume;
  },
};

/**
 * Reads a folder holding a DICOM series (searched recursively; non-DICOM files skipped and
 * counted in `meta.skippedFiles`). Several series need `seriesUid`, else AMBIGUOUS_SERIES.
 * @example
 * const ct = await dicomSeriesReader.read('study/ct/', { seriesUid: '1.2.840…' });
 */
export const dicomSeriesReader: VolumeReader = {
  name: 'dicom-series',
  description: 'folder with a DICOM series (slices sorted by position; one series or --series UID)',
  canRead(input: ProbeInput): true | string {
    if (!input.isDirectory) return 'is not a folder';
    return folderHasDicom(input.path);
  },
  async read(path: string, opts?: ReadOptions): Promise<Volume> {
    return (await loadDicom(path, opts)).volume;
  },
};
