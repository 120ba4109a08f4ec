/**
 * Pseudo-labels of AbdomenAtlas-8K (Qu et al. 2023): per organ, the mean of the models' soft
 * predictions; a model that only gives a label map counts as probability 1 inside the organ and 0
 * outside. The mean becomes a label map by argmax or by thresholding.
 *
 * Memory: one float32 sum per organ and voxel, filled one model at a time
 * ({@link MeanAccumulator}); never an array per model × organ × voxel.
 * @module
 */
import { MedmaskError } from '../errors.js';
import type { ProbabilityArray } from './attention.js';

/**
 * Running mean of one organ's probability over models, in float32.
 * @example
 * const acc = new MeanAccumulator(n);
 * acc.addProbabilities(unetLiver);        // Float32Array in [0, 1]
 * acc.addLabelMap(totalSegLabels, 5);     // voxels == 5 count as 1
 * const mean = acc.mean();
 */
export class MeanAccumulator {
  private readonly sum: Float32Array;
  /** Models added so far. */
  count = 0;

  /** @param n - voxels */
  constructor(readonly n: number) {
    if (!Number.isInteger(n) || n < 1) throw new MedmaskError('USAGE', `voxel count ${n} must be a positive integer`);
    this.sum = new Float32Array(n);
  }

  private check(len: number, what: string): void {
    if (len !== this.n) throw new MedmaskError('USAGE', `${what} has ${len} voxels, expected ${this.n}`, { hint: 'every prediction must be on the same grid' });
  }

  /**
   * Add one model's probabilities (float32, or uint8 read as value / 255).
   * @param p - probabilities, x fastest
   */
  addProbabilities(p: ProbabilityArray): void {
    this.check(p.length, 'probability map');
    const s = this.sum;
    if (p instanceof Uint8Array) for (let v = 0; v < this.n; v++) s[v] = s[v]! + p[v]! / 255;
    else for (let v = 0; v < this.n; v++) s[v] = s[v]! + p[v]!;
    this.count++;
  }

  /**
   * Add one model's label map: voxels equal to `label` count as 1, others as 0.
   * @param labels - label map, x fastest
   * @param label - this organ's value in that map
   */
  addLabelMap(labels: ArrayLike<number>, label: number): void {
    this.check(labels.length, 'label map');
    const s = this.sum;
    for (let v = 0; v < this.n; v++) if (labels[v] === label) s[v] = s[v]! + 1;
    this.count++;
  }

  /**
   * The mean so far.
   * @param out - write here (may be reused)
   * @throws MedmaskError USAGE when nothing was added
   */
  mean(out?: Float32Array): Float32Array {
    if (this.count === 0) throw new MedmaskError('USAGE', 'no prediction was added for this organ', { hint: 'add at least one model\'s probabilities or label map' });
    const o = out ?? new Float32Array(this.n);
    const inv = this.count;
    for (let v = 0; v < this.n; v++) o[v] = this.sum[v]! / inv;
    return o;
  }
}

/**
 * Mean of several probability arrays of one organ (see {@link MeanAccumulator}).
 * @param models - one array per model
 * @returns the mean, float32
 * @example
 * const liver = meanProbability([a.liver, b.liver, c.liver]);
 */
export function meanProbability(models: readonly ProbabilityArray[]): Float32Array {
  if (!models.length) throw new MedmaskError('USAGE', 'no model predictions to average', { hint: 'pass one probability array per model' });
  const acc = new MeanAccumulator(models[0]!.length);
  for (const m of models) acc.addProbabilities(m);
  return acc.mean();
}

/**
 * Binary masks per organ: probability > threshold, each organ on its own (organs may overlap;
 * these feed {@link overlapMasks}).
 * @param probs - one mean probability per organ
 * @param threshold - default 0.5
 * @returns one 0/1 mask per organ
 * @example
 * const masks = thresholdMasks(means, 0.5);
 */
export function thresholdMasks(probs: readonly ProbabilityArray[], threshold = 0.5): Uint8Array[] {
  if (!(threshold >= 0 && threshold <= 1)) throw new MedmaskError('USAGE', `threshold ${threshold} must be in [0, 1]`, { hint: '0.5 is the usual choice' });
  return probs.map((p) => {
    const m = new Uint8Array(p.length);
    const t = p instanceof Uint8Array ? threshold * 255 : threshold;
    for (let v = 0; v < p.length; v++) m[v] = p[v]! > t ? 1 : 0;
    return m;
  });
}

/** Options for {@link labelMapFromProbabilities}. */
export interface LabelMapOptions {
  /**
   * `argmax` (default): the organ with the highest probability, where that probability exceeds
   * `threshold` (or, with `background` given, exceeds the background's). `threshold`: every organ
   * above the threshold is painted in order, a later organ overwriting an earlier one (as
   * AbdomenAtlas's `pseudo_label_all_organ`).
   */
  mode?: 'argmax' | 'threshold';
  /** Default 0.5. In argmax mode without background, voxels whose best organ is ≤ this stay 0. */
  threshold?: number;
  /** Label value per organ (default 1, 2, …). */
  labels?: readonly number[];
  /** Softmax models: background probability; argmax then runs over background and organs. */
  background?: ProbabilityArray;
}

/**
 * A label map from per-organ (mean) probabilities.
 * @param probs - one probability array per organ, same length
 * @param opts - mode, threshold, label values, background
 * @returns uint8 label map
 * @throws MedmaskError USAGE for arrays of different lengths or labels outside 1…255
 * @example
 * const labels = labelMapFromProbabilities(means, { labels: [1, 2, 3, 4, 5, 6, 7, 8, 9] });
 */
export function labelMapFromProbabilities(probs: readonly ProbabilityArray[], opts: LabelMapOptions = {}): Uint8Array {
  const n = probs[0]?.length ?? 0;
  if (!probs.length) throw new MedmaskError('USAGE', 'no organ probabilities were given', { hint: 'pass one array per organ' });
  probs.forEach((p, i) => {
    if (p.length !== n) throw new MedmaskError('USAGE', `organ ${i} has ${p.length} voxels, expected ${n}`, { hint: 'all organs must share one grid' });
  });
  const labels = opts.labels ?? probs.map((_, i) => i + 1);
  if (labels.length !== probs.length) throw new MedmaskError('USAGE', `${labels.length} label values for ${probs.length} organs`, { hint: 'give one label value per organ' });
  for (const l of labels) if (!Number.isInteger(l) || l < 1 || l > 255) throw new MedmaskError('USAGE', `label value ${l} must be a whole number from 1 to 255`);
  const threshold = opts.threshold ?? 0.5;
  if (!(threshold >= 0 && threshold <= 1)) throw new MedmaskError('USAGE', `threshold ${threshold} must be in [0, 1]`, { hint: '0.5 is the usual choice' });
  const val = (p: ProbabilityArray, v: number) => (p instanceof Uint8Array ? p[v]! / 255 : p[v]!);
  const out = new Uint8Array(n);
  const mode = opts.mode ?? 'argmax';
  if (mode === 'threshold') {
    probs.forEach((p, o) => {
      const l = labels[o]!;
      for (let v = 0; v < n; v++) if (val(p, v) > threshold) out[v] = l;
    });
    return out;
  }
  if (mode !== 'argmax') throw new MedmaskError('USAGE', `label map mode "${String(mode)}" is unknown`, { hint: 'use argmax or threshold' });
  const bg = opts.background;
  if (bg && bg.length !== n) throw new MedmaskError('USAGE', `background has ${bg.length} voxels, expected ${n}`);
  for (let v = 0; v < n; v++) {
    let best = bg ? val(bg, v) : threshold;
    let label = 0;
    for (let o = 0; o < probs.length; o++) {
      const p = val(probs[o]!, v);
      // Strictly greater: ties go to the background / the earlier organ, as numpy's argmax.
      if (p > best) {
        best = p;
        label = labels[o]!;
      }
    }
    out[v] = label;
  }
  return out;
}
