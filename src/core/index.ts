/**
 * medmask's pure core: no Node APIs, usable in the browser and in workers.
 * Volumes and geometry, errors, seeded phantoms; later: explanations, uncertainty, masks, atlas,
 * metrics.
 * @module
 */
export * from './volume.js';
export * from './errors.js';
export * from './random.js';
export * from './explain/head.js';
export * from './explain/cam.js';
export * from './explain/class-select.js';
export * from './explain/explain.js';
export * from './explain/head-plan.js';
export * from './explain/overlay.js';
export * from './uncertainty/mc-dropout.js';
export * from './preprocess.js';
export * from './schema.js';
export * from './phantom/chest.js';
export * from './phantom/abdomen.js';
export * from './masks/binary.js';
export * from './masks/pipeline.js';
export * from './metrics/segmentation.js';
export { ece, rocCurve, fprAtTpr, riskCoverage, type RiskCoverage } from './metrics/classification.js';
export * from './uncertainty/ood.js';
export * from './uncertainty/calibration.js';
export * from './atlas/index.js';
