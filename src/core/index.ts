/**
 * medmask's pure core: no Node APIs, usable in the browser and in workers. Volumes and geometry,
 * errors, seeded phantoms, preprocessing, explanations (head evaluator, CAM methods), uncertainty
 * (MC Dropout, calibration, open-set scores), masks, metrics, the 3D attention / ranking / merging
 * of the atlas workflow, and the review viewer's editing (windowing, composing, brush, fill,
 * sparse edits and diffs, undo / redo, flagged regions).
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
export * from './phantom/abdomen-realism.js';
export * from './masks/binary.js';
export * from './masks/pipeline.js';
export * from './metrics/segmentation.js';
export { ece, rocCurve, fprAtTpr, riskCoverage, type RiskCoverage } from './metrics/classification.js';
export * from './uncertainty/ood.js';
export * from './uncertainty/calibration.js';
export * from './atlas/index.js';
export * from './viewer/index.js';
// Names both the masks and the viewer export: the masks' grid type stays `Shape3`; the viewer's
// save options are also reachable as `ViewerWriteOptions` (`medmask` exports the file writer's).
export type { Shape3 } from './masks/binary.js';
export type { WriteOptions as ViewerWriteOptions } from './viewer/editor.js';
