/**
 * Optional refinements of the AbdomenAtlas attention ({@link organAttention} stays the published
 * definition; these run on its output or choose its options). Each is measured on the campaign
 * bench (docs/atlas-campaign.md) before it is recommended:
 *
 * - **size filter in mm³**: the opening leaves single surviving voxels grown back into 3×3×3 cubes
 *   (27 voxels, whatever the voxel size); {@link dropSmallAttention} removes attention components
 *   (26-connected, of inconsistency ∨ uncertainty) smaller than a volume in mm³, so the cut means
 *   the same on 1.5 mm CT and on 6 mm phantoms.
 * - **opening in mm**: {@link openingIterations} turns a depth in mm into erosions/dilations for
 *   the image's voxel size (the paper's 2 × 3×3×3 at ≈ 1.5 mm ≈ 3 mm).
 * - **per-source calibration**: {@link StatHistogram} collects the std and entropy values the
 *   paper's thresholds flag in one source's cases; {@link calibratedThresholds} raises each
 *   threshold to a quantile of that distribution, so a source whose scanner makes every model
 *   unsure everywhere is not flagged everywhere.
 *
 * Pure: typed arrays, a shape and numbers.
 * @module
 */
import { MedmaskError } from '../errors.js';
import { connectedComponents } from '../masks/binary.js';
import { checkShape, type Shape3 } from './morphology.js';

/** Voxel size in mm along x, y, z. */
export type Spacing3 = readonly [number, number, number];

function checkSpacing(spacing: Spacing3): number {
  if (spacing.length !== 3 || !spacing.every((s) => Number.isFinite(s) && s > 0)) {
    throw new MedmaskError('USAGE', `voxel spacing ${spacing.join(' × ')} mm must be three positive numbers`, { hint: 'pass the image\'s spacing (e.g. volume.spacing)' });
  }
  return spacing[0] * spacing[1] * spacing[2];
}

/**
 * Erosions (= dilations) of an opening about `depthMm` deep for a voxel size: `round(depthMm / s)`
 * with `s` the geometric mean of the spacing (the structuring element is a cube, so one iteration
 * reaches one voxel along every axis).
 * @param depthMm - depth the opening removes, mm (≥ 0)
 * @param spacing - voxel size in mm
 * @returns iterations, ≥ 0
 * @throws MedmaskError USAGE for a negative depth or a bad spacing
 * @example
 * openingIterations(3, [1.5, 1.5, 1.5]); // 2, the paper's
 * openingIterations(3, [6, 6, 6]); // 1 (0.5 rounds up)
 */
export function openingIterations(depthMm: number, spacing: Spacing3): number {
  if (!(Number.isFinite(depthMm) && depthMm >= 0)) throw new MedmaskError('USAGE', `opening depth ${depthMm} mm must be a number ≥ 0`, { hint: 'e.g. 3 (the paper\'s two iterations at 1.5 mm)' });
  const v = checkSpacing(spacing);
  return Math.round(depthMm / Math.cbrt(v) + 1e-9);
}

/**
 * Remove attention components smaller than `minMm3` from the inconsistency and uncertainty masks
 * (in place) and recount. Components are 26-connected pieces of inconsistency ∨ uncertainty; the
 * overlap term is left alone (it is exact, not noisy).
 * @param masks - 0/1 masks on the grid, changed in place
 * @param shape - voxels along x, y, z
 * @param spacing - voxel size in mm
 * @param minMm3 - smallest component kept, mm³ (0 keeps all)
 * @returns the kept mask (inconsistency ∨ uncertainty after the filter) and the numbers removed
 * @throws MedmaskError USAGE for masks that do not fit, a bad spacing or a negative volume
 * @example
 * dropSmallAttention({ inconsistency: a.inconsistency, uncertainty: a.uncertainty }, shape, [6, 6, 6], 500);
 */
export function dropSmallAttention(masks: { inconsistency: Uint8Array; uncertainty: Uint8Array }, shape: Shape3, spacing: Spacing3, minMm3: number): { kept: Uint8Array; removedComponents: number; removedVoxels: number } {
  const n = checkShape(masks.inconsistency, shape, 'inconsistency mask');
  checkShape(masks.uncertainty, shape, 'uncertainty mask');
  const voxelMm3 = checkSpacing(spacing);
  if (!(Number.isFinite(minMm3) && minMm3 >= 0)) throw new MedmaskError('USAGE', `smallest attention component ${minMm3} mm³ must be a number ≥ 0`, { hint: 'e.g. 500' });
  const union = new Uint8Array(n);
  for (let v = 0; v < n; v++) union[v] = masks.inconsistency[v]! | masks.uncertainty[v]!;
  const c = connectedComponents(union, shape);
  const keep = new Uint8Array(c.count + 1);
  let removedComponents = 0;
  for (let k = 1; k <= c.count; k++) {
    // Compare voxel counts against the volume in voxels, so k · voxelMm3 rounding cannot flip it.
    if (c.sizes[k]! * voxelMm3 >= minMm3 - 1e-9) keep[k] = 1;
    else removedComponents++;
  }
  let removedVoxels = 0;
  for (let v = 0; v < n; v++) {
    if (!union[v]) continue;
    if (keep[c.labels[v]!]) continue;
    union[v] = 0;
    masks.inconsistency[v] = 0;
    masks.uncertainty[v] = 0;
    removedVoxels++;
  }
  return { kept: union, removedComponents, removedVoxels };
}

/**
 * A fixed-bin histogram of non-negative statistics in [0, max] (values above max go to the last
 * bin), for quantiles over many cases without keeping every value.
 */
export class StatHistogram {
  readonly counts: Float64Array;
  total = 0;
  /**
   * @param max - upper end of the range (std of probabilities ≤ 0.5; entropy −p ln p ≤ 1/e)
   * @param bins - bins (default 4096: quantiles within max / 4096)
   */
  constructor(readonly max: number, readonly bins = 4096) {
    if (!(max > 0) || !Number.isInteger(bins) || bins < 1) throw new MedmaskError('USAGE', `histogram range ${max} / bins ${bins} must be positive`);
    this.counts = new Float64Array(bins);
  }

  /** Count one value. */
  add(x: number): void {
    const b = Math.min(this.bins - 1, Math.max(0, Math.floor((x / this.max) * this.bins)));
    this.counts[b]!++;
    this.total++;
  }

  /** Add another histogram of the same range and bins. */
  merge(o: StatHistogram): void {
    if (o.max !== this.max || o.bins !== this.bins) throw new MedmaskError('USAGE', 'histograms of different ranges cannot be merged');
    for (let i = 0; i < this.bins; i++) this.counts[i]! += o.counts[i]!;
    this.total += o.total;
  }

  /**
   * The q-quantile, interpolated linearly inside its bin (NaN for an empty histogram).
   * @param q - in [0, 1]
   */
  quantile(q: number): number {
    if (!(q >= 0 && q <= 1)) throw new MedmaskError('USAGE', `quantile ${q} must be in [0, 1]`, { hint: 'e.g. 0.5 for the median' });
    if (!this.total) return NaN;
    const target = q * this.total;
    let acc = 0;
    const w = this.max / this.bins;
    for (let i = 0; i < this.bins; i++) {
      const c = this.counts[i]!;
      if (c > 0 && acc + c >= target) return (i + (target - acc) / c) * w;
      acc += c;
    }
    return this.max;
  }
}

/** Histograms of one source's flagged statistics. */
export interface SourceStatistics {
  /** std values above the base std threshold. */
  std: StatHistogram;
  /** Mean-entropy values above the base entropy threshold. */
  entropy: StatHistogram;
}

/** Empty histograms for {@link calibratedThresholds}. */
export function sourceStatistics(): SourceStatistics {
  return { std: new StatHistogram(0.5), entropy: new StatHistogram(1 / Math.E) };
}

/**
 * Add one organ's voxel statistics to a source's histograms: only values above the base
 * thresholds (the voxels the paper's attention flags before its opening).
 * @param into - the source's histograms
 * @param std - per-voxel std
 * @param entropy - per-voxel mean entropy
 * @param base - the thresholds being calibrated
 */
export function addSourceStatistics(into: SourceStatistics, std: ArrayLike<number>, entropy: ArrayLike<number>, base: { stdThreshold: number; entropyThreshold: number }): void {
  for (let v = 0; v < std.length; v++) {
    if (std[v]! > base.stdThreshold) into.std.add(std[v]!);
    if (entropy[v]! > base.entropyThreshold) into.entropy.add(entropy[v]!);
  }
}

/**
 * Per-source thresholds: each base threshold raised to the q-quantile of the values it flags in
 * the source (never lowered; the base threshold where nothing was flagged).
 * @param stats - the source's histograms from {@link addSourceStatistics}
 * @param q - quantile in [0, 1] (0 keeps the base thresholds)
 * @param base - the base thresholds (the paper's 0.1 / 0.05)
 * @returns the source's thresholds
 * @throws MedmaskError USAGE for q outside [0, 1]
 * @example
 * calibratedThresholds(stats, 0.5, { stdThreshold: 0.1, entropyThreshold: 0.05 });
 */
export function calibratedThresholds(stats: SourceStatistics, q: number, base: { stdThreshold: number; entropyThreshold: number }): { stdThreshold: number; entropyThreshold: number } {
  const s = stats.std.quantile(q), e = stats.entropy.quantile(q);
  return {
    stdThreshold: Number.isFinite(s) ? Math.max(base.stdThreshold, s) : base.stdThreshold,
    entropyThreshold: Number.isFinite(e) ? Math.max(base.entropyThreshold, e) : base.entropyThreshold,
  };
}
