/**
 * How well attention maps find real errors, where ground truth exists (AbdomenAtlas-8K, Qu et al.
 * 2023, report attention's sensitivity and precision for label errors: 0.78 / 0.83).
 *
 * Per organ and case, the **error** is where the pseudo-label and the truth disagree about the
 * organ (false positives and false negatives). Two levels:
 * - **voxel**: sensitivity = |attention ∩ error| / |error|, precision = |attention ∩ error| / |attention|;
 * - **region**: connected components (26-connectivity) of at least `minRegionVoxels` voxels;
 *   an error region is found when attention touches it, an attention region is right when it
 *   touches any error voxel. Region sensitivity = found error regions / error regions, region
 *   precision = right attention regions / attention regions. This **touch** matching is the
 *   closest reading of the paper's figures, but it rewards large regions: one attention shell
 *   around a whole organ that touches one error voxel is "right".
 * - **region, half covered** (stricter, reported beside): an error region is found when at least
 *   half of its voxels are flagged; an attention region is right when at least half of its voxels
 *   are error voxels.
 * Counts add up over organs and cases ({@link addDetection}); rates come from the sums.
 *
 * Pure: typed arrays and a shape.
 * @module
 */
import { MedmaskError } from '../errors.js';
import { connectedComponents } from '../masks/binary.js';
import type { Shape3 } from './morphology.js';

/** Counts of one comparison (or a sum of many). */
export interface DetectionCounts {
  errorVoxels: number;
  attentionVoxels: number;
  /** Voxels both in the attention and in the error. */
  hitVoxels: number;
  /** Error components of at least minRegionVoxels. */
  errorRegions: number;
  /** …of which attention touches. */
  errorRegionsFound: number;
  /** Attention components of at least minRegionVoxels. */
  attentionRegions: number;
  /** …of which touch an error voxel. */
  attentionRegionsRight: number;
  /** Error regions at least half flagged. */
  errorRegionsCovered: number;
  /** Attention regions at least half on error voxels. */
  attentionRegionsCovered: number;
}

/** Rates from {@link DetectionCounts} (NaN where the denominator is 0). */
export interface DetectionRates {
  voxelSensitivity: number;
  voxelPrecision: number;
  regionSensitivity: number;
  regionPrecision: number;
  /** Error regions at least half flagged / error regions. */
  regionSensitivityHalf: number;
  /** Attention regions at least half on error / attention regions. */
  regionPrecisionHalf: number;
}

/** All-zero counts, to start a sum. */
export function emptyDetection(): DetectionCounts {
  return { errorVoxels: 0, attentionVoxels: 0, hitVoxels: 0, errorRegions: 0, errorRegionsFound: 0, attentionRegions: 0, attentionRegionsRight: 0, errorRegionsCovered: 0, attentionRegionsCovered: 0 };
}

/** Add `b` into `a` (returns `a`). */
export function addDetection(a: DetectionCounts, b: DetectionCounts): DetectionCounts {
  // `?? 0`: counts saved before the half-covered fields existed add as 0.
  for (const k of Object.keys(a) as (keyof DetectionCounts)[]) a[k] += b[k] ?? 0;
  return a;
}

/** Rates of summed counts. */
export function detectionRates(c: DetectionCounts): DetectionRates {
  const r = (x: number, y: number) => (y > 0 ? x / y : NaN);
  return {
    voxelSensitivity: r(c.hitVoxels, c.errorVoxels),
    voxelPrecision: r(c.hitVoxels, c.attentionVoxels),
    regionSensitivity: r(c.errorRegionsFound, c.errorRegions),
    regionPrecision: r(c.attentionRegionsRight, c.attentionRegions),
    regionSensitivityHalf: r(c.errorRegionsCovered, c.errorRegions),
    regionPrecisionHalf: r(c.attentionRegionsCovered, c.attentionRegions),
  };
}

/**
 * Where a label map gets one organ wrong: (pred = label) XOR (truth = label).
 * @param pred - predicted label map (e.g. the pseudo-label)
 * @param truth - ground truth label map
 * @param label - the organ's value
 * @returns 0/1 error mask
 * @throws MedmaskError USAGE for maps of different sizes
 * @example
 * organError(pseudo, truth, 5); // liver voxels missed or added
 */
export function organError(pred: ArrayLike<number>, truth: ArrayLike<number>, label: number): Uint8Array {
  if (pred.length !== truth.length) throw new MedmaskError('USAGE', `label maps differ in size: ${pred.length} vs ${truth.length} voxels`, { hint: 'compare maps on the same grid' });
  const out = new Uint8Array(pred.length);
  for (let v = 0; v < out.length; v++) out[v] = (pred[v] === label) !== (truth[v] === label) ? 1 : 0;
  return out;
}

/**
 * Compare one attention mask with one error mask.
 * @param attention - 0/1 (nonzero = flagged)
 * @param error - 0/1 (nonzero = wrong)
 * @param shape - voxels along x, y, z
 * @param minRegionVoxels - smallest component counted at region level (default 1)
 * @returns the counts
 * @throws MedmaskError USAGE for masks that do not fit the shape
 * @example
 * detectionRates(compareAttention(a.binary, organError(pseudo, truth, 5), shape, 8));
 */
export function compareAttention(attention: ArrayLike<number>, error: ArrayLike<number>, shape: Shape3, minRegionVoxels = 1): DetectionCounts {
  const n = shape[0] * shape[1] * shape[2];
  if (attention.length !== n || error.length !== n) {
    throw new MedmaskError('USAGE', `attention (${attention.length}) and error (${error.length}) masks must have ${n} voxels for the grid ${shape.join('×')}`, { hint: 'compare masks on the image grid' });
  }
  if (!(Number.isInteger(minRegionVoxels) && minRegionVoxels >= 1)) throw new MedmaskError('USAGE', `minRegionVoxels ${minRegionVoxels} must be a whole number ≥ 1`);
  const c = emptyDetection();
  let anyA = false, anyE = false;
  for (let v = 0; v < n; v++) {
    const a = attention[v] ? 1 : 0, e = error[v] ? 1 : 0;
    c.attentionVoxels += a;
    c.errorVoxels += e;
    c.hitVoxels += a & e;
    if (a) anyA = true;
    if (e) anyE = true;
  }
  if (anyE) {
    const comp = connectedComponents(error, shape);
    const hits = new Uint32Array(comp.count + 1);
    for (let v = 0; v < n; v++) if (attention[v] && comp.labels[v]) hits[comp.labels[v]!]!++;
    for (let k = 1; k <= comp.count; k++) {
      if (comp.sizes[k]! < minRegionVoxels) continue;
      c.errorRegions++;
      if (hits[k]! > 0) c.errorRegionsFound++;
      if (2 * hits[k]! >= comp.sizes[k]!) c.errorRegionsCovered++;
    }
  }
  if (anyA) {
    const comp = connectedComponents(attention, shape);
    const hits = new Uint32Array(comp.count + 1);
    for (let v = 0; v < n; v++) if (error[v] && comp.labels[v]) hits[comp.labels[v]!]!++;
    for (let k = 1; k <= comp.count; k++) {
      if (comp.sizes[k]! < minRegionVoxels) continue;
      c.attentionRegions++;
      if (hits[k]! > 0) c.attentionRegionsRight++;
      if (2 * hits[k]! >= comp.sizes[k]!) c.attentionRegionsCovered++;
    }
  }
  return c;
}
