/**
 * Data handling for head training: a seeded, stratified train/validation split, class weights
 * against imbalance, per-feature standardisation statistics, and a seeded shuffle.
 * @module
 */
import { MedmaskError } from '../errors.js';

/** Indices of the training and validation rows. */
export interface Split {
  train: Int32Array;
  val: Int32Array;
}

/**
 * Fisher–Yates shuffle in place with a seeded source.
 * @param a - array to shuffle
 * @param rand - uniform [0, 1)
 * @returns `a`
 * @example
 * shuffleInPlace(Int32Array.from([0, 1, 2, 3]), mulberry32(1));
 */
export function shuffleInPlace<T extends { length: number; [i: number]: number }>(a: T, rand: () => number): T {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
  return a;
}

/**
 * Stratified split: within each class, a seeded shuffle, then round(fraction · count) rows go to
 * validation — at least one where the class has 2 or more rows and fraction > 0, never all of them.
 * @param labels - class index per row
 * @param classes - number of classes
 * @param fraction - share of each class for validation, in [0, 1)
 * @param rand - uniform [0, 1) source (seeded)
 * @returns sorted train and validation indices
 * @throws MedmaskError USAGE for a fraction outside [0, 1)
 * @example
 * const { train, val } = stratifiedSplit(labels, 2, 0.2, mulberry32(0));
 */
export function stratifiedSplit(labels: ArrayLike<number>, classes: number, fraction: number, rand: () => number): Split {
  if (!(fraction >= 0 && fraction < 1)) {
    throw new MedmaskError('USAGE', `validation fraction ${fraction} must be in [0, 1)`, { hint: 'e.g. --val 0.2 keeps 20 % of each class for validation' });
  }
  const byClass: number[][] = Array.from({ length: classes }, () => []);
  for (let i = 0; i < labels.length; i++) byClass[labels[i]!]!.push(i);
  const train: number[] = [];
  const val: number[] = [];
  for (const rows of byClass) {
    const idx = shuffleInPlace(Int32Array.from(rows), rand);
    let nv = Math.round(fraction * idx.length);
    if (fraction > 0 && idx.length >= 2) nv = Math.min(Math.max(nv, 1), idx.length - 1);
    else nv = Math.min(nv, Math.max(idx.length - 1, 0));
    for (let i = 0; i < idx.length; i++) (i < nv ? val : train).push(idx[i]!);
  }
  return { train: Int32Array.from(train.sort((a, b) => a - b)), val: Int32Array.from(val.sort((a, b) => a - b)) };
}

/**
 * "Balanced" class weights n / (k · n_c), as scikit-learn's `compute_class_weight('balanced')`:
 * every class contributes equally to the loss however many rows it has. Classes absent from
 * `labels` get weight 0.
 * @param labels - class index per (training) row
 * @param classes - number of classes
 * @returns one weight per class
 * @example
 * balancedClassWeights([0, 0, 0, 1], 2); // [0.667, 2]
 */
export function balancedClassWeights(labels: ArrayLike<number>, classes: number): Float64Array {
  const counts = classCounts(labels, classes);
  const present = counts.filter((c) => c > 0).length;
  return Float64Array.from(counts, (c) => (c ? labels.length / (present * c) : 0));
}

/**
 * Rows per class.
 * @param labels - class index per row
 * @param classes - number of classes
 * @returns counts
 * @example
 * classCounts([0, 2, 2], 3); // [1, 0, 2]
 */
export function classCounts(labels: ArrayLike<number>, classes: number): number[] {
  const counts = new Array<number>(classes).fill(0);
  for (let i = 0; i < labels.length; i++) counts[labels[i]!]!++;
  return counts;
}

/** Per-feature mean and standard deviation. */
export interface FeatureStats {
  mean: Float64Array;
  std: Float64Array;
}

/**
 * Mean and standard deviation of each feature over the given rows; a (near) constant feature
 * gets std 1 so it is only centred.
 * @param x - features, row-major rows × dim
 * @param dim - features per row
 * @param rows - which rows to use
 * @returns the statistics
 * @example
 * const s = featureStats(features, 512, split.train);
 */
export function featureStats(x: ArrayLike<number>, dim: number, rows: ArrayLike<number>): FeatureStats {
  const mean = new Float64Array(dim);
  const sq = new Float64Array(dim);
  const n = rows.length;
  for (let r = 0; r < n; r++) {
    const o = rows[r]! * dim;
    for (let k = 0; k < dim; k++) mean[k]! += x[o + k]!;
  }
  for (let k = 0; k < dim; k++) mean[k]! /= Math.max(n, 1);
  for (let r = 0; r < n; r++) {
    const o = rows[r]! * dim;
    for (let k = 0; k < dim; k++) {
      const d = x[o + k]! - mean[k]!;
      sq[k]! += d * d;
    }
  }
  const std = new Float64Array(dim);
  for (let k = 0; k < dim; k++) {
    const s = Math.sqrt(sq[k]! / Math.max(n, 1));
    std[k] = s > 1e-6 * Math.max(1, Math.abs(mean[k]!)) ? s : 1;
  }
  return { mean, std };
}
