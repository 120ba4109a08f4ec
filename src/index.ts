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
export { writeChestDataset, writeAbdomenDataset, type ChestDatasetOptions, type AbdomenDatasetOptions, type WrittenDataset } from './pipeline/phantoms.js';
