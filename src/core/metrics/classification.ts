/**
 * Calibration, open-set and selective-prediction metrics: ECE, ROC points, FPR at 95 % TPR,
 * risk–coverage curve and its area. AUROC itself is `auroc` (Mann–Whitney with ties) from
 * `core/train/metrics`, re-exported here.
 * @module
 */
import { MedmaskError } from '../errors.js';
import { auroc } from '../train/metrics.js';

export { auroc };

/**
 * Expected calibration error with `bins` equal-width confidence bins (default 15, as Guo et al. 2017):
 * Σ_b (n_b / n) · |accuracy_b − mean confidence_b|.
 * @param confidence - the probability of the predicted class, per sample
 * @param correct - per sample, whether the prediction was right
 * @example
 * ece([0.9, 0.9], [1, 0]); // 0.4
 */
export function ece(confidence: ArrayLike<number>, correct: ArrayLike<number | boolean>, bins = 15): number {
  const n = confidence.length;
  if (correct.length !== n) throw new MedmaskError('USAGE', `ECE: ${n} confidences but ${correct.length} outcomes`);
  if (!n) return NaN;
  const cnt = new Float64Array(bins), acc = new Float64Array(bins), conf = new Float64Array(bins);
  for (let i = 0; i < n; i++) {
    const c = confidence[i]!;
    // Bins (lo, hi], the first one [0, hi] — as the reference implementations.
    const b = Math.min(bins - 1, Math.max(0, Math.ceil(c * bins) - 1));
    cnt[b]!++;
    acc[b]! += correct[i] ? 1 : 0;
    conf[b]! += c;
  }
  let e = 0;
  for (let b = 0; b < bins; b++) if (cnt[b]) e += (cnt[b]! / n) * Math.abs(acc[b]! / cnt[b]! - conf[b]! / cnt[b]!);
  return e;
}

/** ROC curve points (fpr, tpr) at every distinct threshold, from (0,0) to (1,1), as sklearn's roc_curve(drop_intermediate=False). */
export function rocCurve(scores: ArrayLike<number>, positive: ArrayLike<number | boolean>): { fpr: number[]; tpr: number[]; thresholds: number[] } {
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[b]! - scores[a]!);
  let P = 0;
  for (let i = 0; i < n; i++) if (positive[i]) P++;
  const N = n - P;
  const fpr = [0], tpr = [0], thresholds = [Infinity];
  let tp = 0, fp = 0;
  for (let k = 0; k < n; k++) {
    const i = order[k]!;
    if (positive[i]) tp++;
    else fp++;
    if (k + 1 < n && scores[order[k + 1]!] === scores[i]) continue;
    fpr.push(N ? fp / N : 0);
    tpr.push(P ? tp / P : 0);
    thresholds.push(scores[i]!);
  }
  return { fpr, tpr, thresholds };
}

/**
 * False-positive rate at the first threshold whose true-positive rate reaches `tpr` (default 0.95),
 * the usual open-set metric ("FPR@95TPR"), positives being the out-of-distribution samples.
 */
export function fprAtTpr(scores: ArrayLike<number>, positive: ArrayLike<number | boolean>, tpr = 0.95): number {
  const r = rocCurve(scores, positive);
  for (let i = 0; i < r.tpr.length; i++) if (r.tpr[i]! >= tpr - 1e-12) return r.fpr[i]!;
  return 1;
}

/** Risk–coverage curve of selective prediction. */
export interface RiskCoverage {
  /** Fraction of samples kept (accepted), ascending: 1/n … 1. */
  coverage: number[];
  /** Mean error of the kept samples at each coverage. */
  risk: number[];
  /** Area under the curve (mean of the risks, as Geifman & El-Yaniv's AURC). */
  aurc: number;
}

/**
 * Risk–coverage: samples sorted by uncertainty ascending (most certain first, the order in which a
 * system accepts them); at coverage k/n the risk is the mean error of the k most certain.
 * Lower area = uncertainty ranks errors well. A random ordering's expected area is the mean error.
 * Ties in uncertainty are broken by averaging error within the tie group, so the result does not
 * depend on input order.
 * @param uncertainty - per sample, higher = less sure (sent to review first)
 * @param error - per sample, e.g. 1 − Dice or 0/1 misclassification
 */
export function riskCoverage(uncertainty: ArrayLike<number>, error: ArrayLike<number>): RiskCoverage {
  const n = uncertainty.length;
  if (error.length !== n) throw new MedmaskError('USAGE', `risk–coverage: ${n} uncertainties but ${error.length} errors`);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => uncertainty[a]! - uncertainty[b]!);
  const errs = new Float64Array(n);
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && uncertainty[order[j + 1]!] === uncertainty[order[i]!]) j++;
    let s = 0;
    for (let k = i; k <= j; k++) s += error[order[k]!]!;
    for (let k = i; k <= j; k++) errs[k] = s / (j - i + 1);
    i = j + 1;
  }
  const coverage: number[] = [], risk: number[] = [];
  let cum = 0;
  for (let k = 0; k < n; k++) {
    cum += errs[k]!;
    coverage.push((k + 1) / n);
    risk.push(cum / (k + 1));
  }
  return { coverage, risk, aurc: n ? risk.reduce((a, b) => a + b, 0) / n : NaN };
}
