/**
 * The AbdomenAtlas-8K workflow's maths (Qu et al., NeurIPS 2023): binary morphology, attention
 * maps, pseudo-labels, case ranking and review selection, label merging, and the pure parts of
 * sliding-window inference and resampling, the effort report's numbers, attention against real
 * error, and the seeded prediction simulator of the campaign. Pure: no Node APIs.
 * @module
 */
export * from './morphology.js';
export * from './attention.js';
export * from './attention-refine.js';
export * from './organ-priors.js';
export * from './pseudo-label.js';
export * from './ranking.js';
export * from './merge.js';
export * from './resample.js';
export * from './orientation.js';
export * from './sliding-window.js';
export * from './effort.js';
export * from './attention-eval.js';
export * from './simulate.js';
