/**
 * medmask as a library (Node). The pure, browser-safe part is also available alone as
 * `medmask/core`.
 * @example
 * import { readVolume, writeVolume } from 'medmask';
 * const ct = await readVolume('ct_series/');            // DICOM folder → LPS volume in HU
 * await writeVolume(ct, 'ct.nii.gz');
 * @module
 */
export * from './core/index.js';
export * from './io/index.js';
export * from './io/dataset.js';
export { encodeNpy, decodeNpy, type NpyArray } from './io/npy.js';
export * from './runtime/manifest.js';
export { ClassifierSession, type ClassifierSessionOptions, type ClassifierRun, type Device } from './runtime/session.js';
export { runExplain, sampleFullMc, EXPLAIN_IMAGE_EXTENSIONS, type ExplainRunOptions, type ExplainRunSummary, type ImageModelResult } from './pipeline/explain.js';
export { writeChestDataset, writeAbdomenDataset, type ChestDatasetOptions, type AbdomenDatasetOptions, type WrittenDataset } from './pipeline/phantoms.js';
