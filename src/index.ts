/**
 * medmask as a library (Node): everything in `medmask/core` (the pure, browser-safe part), plus
 * file I/O (volumes, data sets, .npy), ONNX models (manifest, `ClassifierSession`), the pipelines
 * behind the commands (`runExplain`, `annotate`, `fitOod`, `evaluateRun`, `writeReport`,
 * `trainHead`, `atlasRun`, `runDemo`, phantoms) and the server (`createServer` with `openStore`,
 * `FsBlobStore` and a job queue). docs/library.md shows each in use.
 * @example
 * import { readVolume, writeVolume } from 'medmask';
 * const ct = await readVolume('ct_series/');            // DICOM folder → LPS volume in HU
 * await writeVolume(ct, 'ct.nii.gz');
 * @module
 */
export * from './core/index.js';
export * from './io/index.js';
// the file writer's options (the viewer's are `ViewerWriteOptions`)
export type { WriteOptions } from './io/registry.js';
export * from './io/dataset.js';
export { encodeNpy, decodeNpy, type NpyArray } from './io/npy.js';
export * from './runtime/manifest.js';
export { ClassifierSession, type ClassifierSessionOptions, type ClassifierRun, type Device } from './runtime/session.js';
export { runExplain, sampleFullMc, EXPLAIN_IMAGE_EXTENSIONS, type ExplainRunOptions, type ExplainRunSummary, type ImageModelResult } from './pipeline/explain.js';
export { writeChestDataset, writeAbdomenDataset, type ChestDatasetOptions, type AbdomenDatasetOptions, type WrittenDataset } from './pipeline/phantoms.js';
export { loadEnsemble, releaseEnsemble, type EnsembleModel, type EnsembleOptions } from './pipeline/ensemble.js';
export { annotate, collectItems, DEFAULT_THRESHOLDS, type AnnotateItem, type AnnotateOptions, type AnnotateSummary, type DecisionThresholds } from './pipeline/annotate.js';
export { fitOod } from './pipeline/ood.js';
export { evaluateRun, type Evaluation } from './pipeline/evaluate.js';
export { writeReport } from './pipeline/report.js';
export { trainHead, type TrainHeadOptions, type TrainHeadResult } from './pipeline/train-head.js';
export { atlasRun, type AtlasRunOptions, type AtlasRunResult } from './pipeline/atlas-run.js';
export { runDemo, type DemoOptions, type DemoResult } from './pipeline/demo.js';
export { createServer, DEFAULT_SETTINGS, type CreateServerOptions } from './server/app.js';
export { openStore, FsBlobStore, type Store, type BlobStore, type OpenStoreOptions } from './store/index.js';
export { InProcessQueue, BullmqQueue, createQueue, type JobQueue } from './queue/index.js';
