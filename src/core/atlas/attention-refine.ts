/**
 * Optional refinements of the AbdomenAtlas attention ({@link organAttention} stays the published
 * definition; these run on its output or choose its options). Each is measured on the campaign
 * bench (docs/atlas-campaign.md) before it is recommended:
 *
 * - **size filter in mm³**: the opening leaves single surviving voxels grown back into 3×3×3 cubes
 *   (27 voxels, whatever the voxel size); {@link dropSmallAttention} removes attention components
 *   (26-connected, of inconsistency ∨ uncertainty) smaller than a volume in mm³, so the cut means
 *   the same on 1.5 mm CT and on 6 mm phantoms.
 * - **expected-error filter** (`minExpectedErrorMm3`): each voxel's expected error is
 *   `min(p̄, 1 − p̄)` with p̄ the models' mean probability (the chance that the 0.5-thresholded
 *   pseudo-label is wrong there, if the mean were calibrated); {@link dropUnlikelyAttention} drops
 *   attention components whose expected wrong volume — the sum over the component times the voxel
 *   volume — is below a volume in mm³. Disagreement in a faint halo outside the organ (one model
 *   at p ≈ 0.1) is flagged by the paper's thresholds but expects few wrong voxels; a missed part
 *   where the models split 2 : 1 expects a third of its voxels wrong.
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
  checkShape(masks.inconsistency, shape, 'inconsistency mask');
  const voxelMm3 = checkSpacing(spacing);
  if (!(Number.isFinite(minMm3) && minMm3 >= 0)) throw new MedmaskError('USAGE', `smallest attention component ${minMm3} mm³ must be a number ≥ 0`, { hint: 'e.g. 500' });
  // Compare voxel counts against the volume in voxels, so k · voxelMm3 rounding cannot flip it.
  return filterComponents(masks, shape, (size) => size * voxelMm3 >= minMm3 - 1e-9);
}

/**
 * Remove attention components whose expected wrong volume is below `minMm3` (in place): per
 * component (26-connected, of inconsistency ∨ uncertainty) the sum of `expected` over its voxels
 * times the voxel volume. The overlap term is left alone.
 * @param masks - 0/1 masks on the grid, changed in place
 * @param shape - voxels along x, y, z
 * @param spacing - voxel size in mm
 * @param expected - per-voxel expected error in [0, 1], e.g. from {@link expectedErrorMap}
 * @param minMm3 - smallest expected wrong volume kept, mm³ (0 keeps all)
 * @returns the kept mask and the numbers removed
 * @throws MedmaskError USAGE for masks or an expected-error map that do not fit, a bad spacing or
 *   a negative volume
 * @example
 * dropUnlikelyAttention(masks, shape, [6, 6, 6], expectedErrorMap(probs, n), 20_000);
 */
export function dropUnlikelyAttention(masks: { inconsistency: Uint8Array; uncertainty: Uint8Array }, shape: Shape3, spacing: Spacing3, expected: ArrayLike<number>, minMm3: number): { kept: Uint8Array; removedComponents: number; removedVoxels: number } {
  checkShape(masks.inconsistency, shape, 'inconsistency mask');
  checkShape(expected, shape, 'expected-error map');
  const voxelMm3 = checkSpacing(spacing);
  if (!(Number.isFinite(minMm3) && minMm3 >= 0)) throw new MedmaskError('USAGE', `smallest expected wrong volume ${minMm3} mm³ must be a number ≥ 0`, { hint: 'e.g. 20000 (20 mL)' });
  return filterComponents(masks, shape, (_size, mass) => mass * voxelMm3 >= minMm3 - 1e-9, expected);
}

/**
 * Expected error of the 0.5-thresholded mean: `min(p̄, 1 − p̄)` per voxel, p̄ the models' mean
 * probability (float32 in [0, 1], or uint8 read as value / 255).
 * @param probs - one array per model, each of `n` voxels
 * @param n - voxels
 * @returns per-voxel expected error in [0, 0.5]
 * @throws MedmaskError USAGE without models or with arrays of another length
 * @example
 * expectedErrorMap([Float32Array.of(1), Float32Array.of(0), Float32Array.of(0)], 1); // [1/3]
 */
export function expectedErrorMap(probs: readonly (Float32Array | Uint8Array)[], n: number): Float32Array {
  checkModelArrays(probs, n);
  const out = new Float32Array(n);
  for (let v = 0; v < n; v++) out[v] = voxelExpectedError(probs, v);
  return out;
}

/**
 * Sum of {@link expectedErrorMap} over the voxels of `mask` (each term rounded to float32 as the
 * map stores it), without building the map: the expected wrong voxels inside an attention mask.
 * @param probs - one array per model, each of `mask.length` voxels
 * @param mask - 0/1 mask on the same grid
 * @returns Σ over mask voxels of `min(p̄, 1 − p̄)`
 * @throws MedmaskError USAGE without models or with arrays of another length
 * @example
 * expectedErrorWithin([Float32Array.of(1, 1), Float32Array.of(0, 1)], Uint8Array.of(1, 1)); // 0.5
 */
export function expectedErrorWithin(probs: readonly (Float32Array | Uint8Array)[], mask: ArrayLike<number>): number {
  const n = mask.length;
  checkModelArrays(probs, n);
  let total = 0;
  for (let v = 0; v < n; v++) if (mask[v]) total += Math.fround(voxelExpectedError(probs, v));
  return total;
}

function checkModelArrays(probs: readonly (Float32Array | Uint8Array)[], n: number): void {
  if (!probs.length) throw new MedmaskError('USAGE', 'no model predictions were given for this organ', { hint: 'pass one probability array per model' });
  probs.forEach((p, i) => {
    if (p.length !== n) throw new MedmaskError('USAGE', `model ${i}'s probabilities have ${p.length} voxels, expected ${n}`, { hint: 'every model must predict on the same grid' });
  });
}

/** `min(p̄, 1 − p̄)` at voxel `v`, p̄ the models' mean (uint8 read as value / 255). */
function voxelExpectedError(probs: readonly (Float32Array | Uint8Array)[], v: number): number {
  let s = 0;
  for (let k = 0; k < probs.length; k++) {
    const p = probs[k]!;
    s += p instanceof Uint8Array ? p[v]! / 255 : p[v]!;
  }
  const mean = s / probs.length;
  return Math.min(mean, 1 - mean);
}

/** Keep the components of inconsistency ∨ uncertainty that `keep(size, mass)` accepts (mass: sum of `weights`, 0 without). */
function filterComponents(masks: { inconsistency: Uint8Array; uncertainty: Uint8Array }, shape: Shape3, keepIt: (size: number, mass: number) => boolean, weights?: ArrayLike<number>): { kept: Uint8Array; removedComponents: number; removedVoxels: number } {
  const n = checkShape(masks.inconsistency, shape, 'inconsistency mask');
  checkShape(masks.uncertainty, shape, 'uncertainty mask');
  const union = new Uint8Array(n);
  for (let v = 0; v < n; v++) union[v] = masks.inconsistency[v]! | masks.uncertainty[v]!;
  const c = connectedComponents(union, shape);
  const mass = new Float64Array(c.count + 1);
  if (weights) for (let v = 0; v < n; v++) if (c.labels[v]) mass[c.labels[v]!]! += weights[v]!;
  const keep = new Uint8Array(c.count + 1);
  let removedComponents = 0;
  for (let k = 1; k <= c.count; k++) {
    if (keepIt(c.sizes[k]!, mass[k]!)) keep[k] = 1;
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

/** Settings of one named attention preset: atlasAttention's refinements and atlasRank's options. */
export interface AttentionPreset {
  /** What it is, in a sentence. */
  description: string;
  attention: { openingMm?: number; minComponentMm3?: number; minExpectedErrorMm3?: number; calibrateQuantile?: number };
  rank: { measure?: 'binary' | 'heat' | 'dice'; organPriors?: boolean };
}

/**
 * Named presets (docs/atlas-campaign.md): `paper` is AbdomenAtlas's attention and priority as
 * published (the default); `ranking` keeps the paper's attention (what the expert is shown) and
 * ranks cases by expected Dice loss with organ-level priors (the best ranking on the tuning seeds);
 * `refined` changes what is flagged too: no opening, components expecting < 20 mL of wrong volume
 * dropped, cases ranked by expected Dice loss. Both were tuned on seeds 11–12 of the simulated
 * campaign with the demo 3D models (24 realistic phantoms at 40², ≈ 13 mm voxels) and reported on
 * held-out seeds 1–3 (docs/atlas-campaign.md). The mm settings are phantom-scale; on 1–2 mm CT
 * re-tune them.
 */
export const ATTENTION_PRESETS: Readonly<Record<'paper' | 'ranking' | 'refined', AttentionPreset>> = {
  paper: { description: 'AbdomenAtlas-8K as published: std > 0.1, entropy > 0.05, opening, attention-voxel priority', attention: {}, rank: {} },
  ranking: { description: 'AbdomenAtlas attention, cases ranked by expected Dice loss with organ priors', attention: {}, rank: { measure: 'dice', organPriors: true } },
  refined: {
    description: 'no opening, components expecting < 20 mL wrong dropped, ranking by expected Dice loss',
    attention: { openingMm: 0, minExpectedErrorMm3: 20_000 },
    rank: { measure: 'dice' },
  },
};
