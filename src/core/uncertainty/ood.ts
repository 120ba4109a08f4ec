/**
 * Open-set (out-of-distribution) scores for classifiers:
 * - **Mahalanobis** distance of pooled target-layer features to the nearest class mean under a
 *   shared covariance (Lee et al. 2018), fitted on training images (`fitMahalanobis`);
 * - **energy** `−T·logsumexp(logits / T)` (Liu et al. 2020): higher = more unusual;
 * - **mutual information** from MC Dropout (computed in `mc-dropout.ts`).
 * `fitOodCombiner` standardises each score on the fit set and takes their weighted mean as one score,
 * with a threshold at a target false-positive rate on the (in-distribution) fit set. The default
 * weights ({@link DEFAULT_OOD_WEIGHTS}) use the Mahalanobis distance alone: on the tuning phantoms
 * the energy and MC mutual information score near out-of-distribution chest images *lower* than
 * in-distribution ones (docs/annotate.md gives the figures), so averaging them in hid what the
 * feature-space distance sees.
 * @module
 */
import { MedmaskError } from '../errors.js';

/** Fitted class-conditional Gaussians with a shared covariance. */
export interface MahalanobisModel {
  /** Feature dimension. */
  dim: number;
  /** Class means, k × dim, row-major. */
  means: number[][];
  /** Lower-triangular Cholesky factor L of the (shrunk) covariance, row-major dim × dim. */
  cholesky: Float64Array;
  /** Shrinkage used: Σ = (1 − s)·S + s·(tr S / dim)·I. */
  shrinkage: number;
}

/**
 * Fit class means and a shared covariance on feature vectors (e.g. globally pooled target
 * activations). The covariance is shrunk towards a scaled identity so it stays invertible when
 * there are fewer samples than dimensions.
 * @param features - n × dim, one row per image
 * @param labels - class index per image (classes without samples are skipped)
 * @param shrinkage - 0…1 (default 0.1)
 * @example
 * const m = fitMahalanobis(pooled, labels); mahalanobis(m, x);
 */
export function fitMahalanobis(features: readonly ArrayLike<number>[], labels: ArrayLike<number>, shrinkage = 0.1): MahalanobisModel {
  const n = features.length;
  if (!n) throw new MedmaskError('USAGE', 'no features to fit the OOD statistics on', { hint: 'pass training images with --images' });
  if (labels.length !== n) throw new MedmaskError('USAGE', `${n} feature rows but ${labels.length} labels`);
  const dim = features[0]!.length;
  const k = Math.max(...Array.from(labels)) + 1;
  const sums = Array.from({ length: k }, () => new Float64Array(dim));
  const counts = new Array<number>(k).fill(0);
  for (let i = 0; i < n; i++) {
    const f = features[i]!;
    if (f.length !== dim) throw new MedmaskError('USAGE', `feature row ${i} has ${f.length} values, expected ${dim}`);
    const s = sums[labels[i]!]!;
    for (let d = 0; d < dim; d++) s[d]! += f[d]!;
    counts[labels[i]!]!++;
  }
  const means = sums.map((s, c) => (counts[c] ? Array.from(s, (v) => v / counts[c]!) : [])).filter((m) => m.length);
  const meanOf = sums.map((s, c) => (counts[c] ? Array.from(s, (v) => v / counts[c]!) : undefined));
  const cov = new Float64Array(dim * dim);
  const r = new Float64Array(dim);
  for (let i = 0; i < n; i++) {
    const f = features[i]!, m = meanOf[labels[i]!]!;
    for (let d = 0; d < dim; d++) r[d] = f[d]! - m[d]!;
    for (let a = 0; a < dim; a++) {
      const ra = r[a]!;
      if (ra === 0) continue;
      for (let b = 0; b <= a; b++) cov[a * dim + b]! += ra * r[b]!;
    }
  }
  let trace = 0;
  for (let a = 0; a < dim; a++) trace += cov[a * dim + a]! / n;
  const target = trace / dim || 1e-12;
  for (let a = 0; a < dim; a++) for (let b = 0; b <= a; b++) {
    const v = (1 - shrinkage) * (cov[a * dim + b]! / n) + (a === b ? shrinkage * target : 0);
    cov[a * dim + b] = v;
    cov[b * dim + a] = v;
  }
  return { dim, means, cholesky: cholesky(cov, dim), shrinkage };
}

/** Cholesky factor of a symmetric positive-definite matrix (row-major), with a tiny jitter if needed. */
function cholesky(a: Float64Array, n: number): Float64Array {
  for (let jitter = 0; jitter < 6; jitter++) {
    const l = new Float64Array(n * n);
    const eps = jitter ? 1e-10 * 10 ** jitter * (a.reduce((s, v, i) => (i % (n + 1) === 0 ? s + v : s), 0) / n) : 0;
    let ok = true;
    for (let i = 0; i < n && ok; i++) {
      for (let j = 0; j <= i; j++) {
        let s = a[i * n + j]! + (i === j ? eps : 0);
        for (let p = 0; p < j; p++) s -= l[i * n + p]! * l[j * n + p]!;
        if (i === j) {
          if (!(s > 0)) {
            ok = false;
            break;
          }
          l[i * n + i] = Math.sqrt(s);
        } else l[i * n + j] = s / l[j * n + j]!;
      }
    }
    if (ok) return l;
  }
  throw new MedmaskError('INTERNAL', 'covariance of the OOD features is not positive definite');
}

/**
 * Squared Mahalanobis distance to the nearest class mean: min_c (x − μ_c)ᵀ Σ⁻¹ (x − μ_c), solved
 * with the Cholesky factor (forward substitution), never forming Σ⁻¹.
 */
export function mahalanobis(m: MahalanobisModel, x: ArrayLike<number>): number {
  if (x.length !== m.dim) throw new MedmaskError('USAGE', `feature vector has ${x.length} values, the OOD model ${m.dim}`, { hint: 'fit the OOD statistics with the same model and target layer (medmask fit-ood)' });
  const n = m.dim, L = m.cholesky;
  const y = new Float64Array(n);
  let best = Infinity;
  for (const mu of m.means) {
    let d2 = 0;
    for (let i = 0; i < n; i++) {
      let s = x[i]! - mu[i]!;
      for (let p = 0; p < i; p++) s -= L[i * n + p]! * y[p]!;
      y[i] = s / L[i * n + i]!;
      d2 += y[i]! * y[i]!;
    }
    if (d2 < best) best = d2;
  }
  return best;
}

/** Energy score −T·logsumexp(logits/T); higher = less like the training data. */
export function energy(logits: ArrayLike<number>, temperature = 1): number {
  let mx = -Infinity;
  for (let i = 0; i < logits.length; i++) mx = Math.max(mx, logits[i]! / temperature);
  let s = 0;
  for (let i = 0; i < logits.length; i++) s += Math.exp(logits[i]! / temperature - mx);
  return -temperature * (mx + Math.log(s));
}

/**
 * Default weight of each standardised score in the combined open-set score: the Mahalanobis
 * distance of the pooled target features only. Chosen on the tuning phantoms (seed 4: 30 + 170
 * in-distribution, 30 far and 80 near OOD images, demo zoo fitted on seed 1): near-OOD AUROC 0.924
 * with these weights, 0.924 with 0.1 on the energy, 0.921 with 0.1 on the MC mutual information,
 * 0.804 with equal weights (the rule before); far OOD 1.000 with every weighting. Energy and MI
 * keep their own role (MI routes unsure images to review).
 */
export const DEFAULT_OOD_WEIGHTS: Readonly<Record<string, number>> = Object.freeze({ mahalanobis: 1, energy: 0, mi: 0 });

/** Per-score standardisation and the decision threshold. */
export interface OodCombiner {
  /** Score names in order (e.g. mahalanobis, energy, mi). */
  names: string[];
  mean: number[];
  std: number[];
  /**
   * Weight of each standardised score in the combined score (same order as `names`; ≥ 0, not all
   * 0). Absent in statistics fitted before weights existed: every score weighs 1.
   */
  weights?: number[];
  /** Combined score above which an image is called OOD. */
  threshold: number;
  /** The false-positive rate on the fit set the threshold was chosen for. */
  targetFpr: number;
}

/**
 * Fit the combination: each score standardised by its mean and std on the in-distribution fit
 * set; the combined score is their weighted mean; the threshold is its (1 − targetFpr) quantile
 * there.
 * @param scores - per score name, one value per fit image (in-distribution)
 * @param targetFpr - fraction of in-distribution images allowed above the threshold (default 0.05)
 * @param weights - per score name (default: 1 for every score); names not in `scores` are refused
 * @throws MedmaskError USAGE for an unknown score name, a negative weight or all weights 0
 */
export function fitOodCombiner(scores: Record<string, ArrayLike<number>>, targetFpr = 0.05, weights?: Readonly<Record<string, number>>): OodCombiner {
  const names = Object.keys(scores);
  if (!names.length) throw new MedmaskError('USAGE', 'no OOD scores to combine');
  const unknown = Object.keys(weights ?? {}).filter((k) => !names.includes(k));
  if (unknown.length) throw new MedmaskError('USAGE', `OOD score weight for ${unknown.map((k) => `"${k}"`).join(', ')}: no such score`, { hint: `scores: ${names.join(', ')}` });
  const w = names.map((k) => (weights ? weights[k] ?? 0 : 1));
  if (w.some((v) => !(v >= 0)) || !w.some((v) => v > 0)) throw new MedmaskError('USAGE', `OOD score weights ${names.map((k, j) => `${k}=${w[j]}`).join(',')} must be ≥ 0 and not all 0`, { hint: 'e.g. mahalanobis=1,energy=0,mi=0' });
  const n = scores[names[0]!]!.length;
  const mean = names.map((k) => Array.from(scores[k]!).reduce((a, b) => a + b, 0) / n);
  const std = names.map((k, j) => Math.sqrt(Array.from(scores[k]!).reduce((a, b) => a + (b - mean[j]!) ** 2, 0) / Math.max(1, n - 1)) || 1);
  const partial: OodCombiner = { names, mean, std, ...(weights ? { weights: w } : {}), threshold: 0, targetFpr };
  const combined = Array.from({ length: n }, (_, i) => combineOod(partial, Object.fromEntries(names.map((k) => [k, scores[k]![i]!]))));
  combined.sort((a, b) => a - b);
  const idx = Math.min(n - 1, Math.max(0, Math.ceil((1 - targetFpr) * n) - 1));
  partial.threshold = combined[idx]!;
  return partial;
}

/** The combined OOD score of one image: the weighted mean of the standardised scores it has. */
export function combineOod(c: OodCombiner, scores: Record<string, number>): number {
  let s = 0, k = 0;
  c.names.forEach((name, j) => {
    const v = scores[name];
    const w = c.weights ? c.weights[j]! : 1;
    if (v === undefined || !Number.isFinite(v) || !(w > 0)) return;
    s += (w * (v - c.mean[j]!)) / c.std[j]!;
    k += w;
  });
  return k ? s / k : NaN;
}
