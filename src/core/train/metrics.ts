/**
 * Classification metrics for a trained head: accuracy, balanced accuracy, confusion matrix, and
 * the area under the ROC curve (AUROC) computed exactly as the Mann–Whitney U statistic with
 * average ranks for ties (Hanley & McNeil 1982) — the value `sklearn.metrics.roc_auc_score` gives.
 * Multi-class AUROC is the unweighted mean of one-vs-rest AUROCs over the classes that have both
 * positives and negatives (sklearn's `multi_class='ovr', average='macro'`).
 * @module
 */
import { MedmaskError } from '../errors.js';

/**
 * Binary AUROC: the probability that a random positive scores above a random negative, ties
 * counting one half.
 * @param scores - one score per sample (higher = more positive)
 * @param positive - per sample, true / 1 when positive
 * @returns AUROC in [0, 1], or NaN when there are no positives or no negatives
 * @example
 * auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]); // 0.75
 */
export function auroc(scores: ArrayLike<number>, positive: ArrayLike<number | boolean>): number {
  const n = scores.length;
  if (positive.length !== n) throw new MedmaskError('USAGE', `AUROC: ${n} scores but ${positive.length} labels`);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  let rankSumPos = 0;
  let nPos = 0;
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && scores[order[j + 1]!] === scores[order[i]!]) j++;
    const avgRank = (i + j) / 2 + 1; // 1-based average rank of the tie group
    for (let k = i; k <= j; k++) if (positive[order[k]!]) {
      rankSumPos += avgRank;
      nPos++;
    }
    i = j + 1;
  }
  const nNeg = n - nPos;
  if (nPos === 0 || nNeg === 0) return NaN;
  return (rankSumPos - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

/** Result of {@link multiclassAuroc}. */
export interface MulticlassAuroc {
  /** Mean of the defined per-class values (NaN when none is defined). For 2 classes: the AUROC of class 1. */
  macro: number;
  /** One-vs-rest AUROC per class (NaN where the class has no positives or no negatives). */
  perClass: number[];
}

/**
 * One-vs-rest AUROC per class and their macro average.
 * @param probabilities - n × k, row-major
 * @param labels - class index per sample
 * @param k - number of classes
 * @returns macro and per-class AUROC
 * @example
 * multiclassAuroc(probs, labels, 3).macro;
 */
export function multiclassAuroc(probabilities: ArrayLike<number>, labels: ArrayLike<number>, k: number): MulticlassAuroc {
  const n = labels.length;
  if (probabilities.length !== n * k) throw new MedmaskError('USAGE', `AUROC: ${probabilities.length} probabilities for ${n} samples × ${k} classes`);
  const perClass: number[] = [];
  for (let c = 0; c < k; c++) {
    const s = Float64Array.from({ length: n }, (_, i) => probabilities[i * k + c]!);
    perClass.push(auroc(s, Array.from({ length: n }, (_, i) => labels[i] === c)));
  }
  if (k === 2) return { macro: perClass[1]!, perClass };
  const defined = perClass.filter((v) => !Number.isNaN(v));
  return { macro: defined.length ? defined.reduce((a, b) => a + b, 0) / defined.length : NaN, perClass };
}

/**
 * Confusion matrix: rows = true class, columns = predicted class.
 * @param predicted - predicted class per sample
 * @param labels - true class per sample
 * @param k - number of classes
 * @returns k × k counts, as nested arrays
 * @example
 * confusionMatrix([0, 1, 1], [0, 1, 0], 2); // [[1, 1], [0, 1]]
 */
export function confusionMatrix(predicted: ArrayLike<number>, labels: ArrayLike<number>, k: number): number[][] {
  const m = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  for (let i = 0; i < labels.length; i++) m[labels[i]!]![predicted[i]!]!++;
  return m;
}

/**
 * Fraction of samples whose predicted class is the true one.
 * @param predicted - predicted class per sample
 * @param labels - true class per sample
 * @returns accuracy in [0, 1] (NaN for no samples)
 * @example
 * accuracy([0, 1, 1], [0, 1, 0]); // 2/3
 */
export function accuracy(predicted: ArrayLike<number>, labels: ArrayLike<number>): number {
  if (!labels.length) return NaN;
  let ok = 0;
  for (let i = 0; i < labels.length; i++) if (predicted[i] === labels[i]) ok++;
  return ok / labels.length;
}

/**
 * Mean per-class recall over the classes present in `labels` (robust to class imbalance).
 * @param predicted - predicted class per sample
 * @param labels - true class per sample
 * @param k - number of classes
 * @returns balanced accuracy in [0, 1] (NaN for no samples)
 * @example
 * balancedAccuracy([0, 0, 0, 1], [0, 0, 0, 0], 2); // 0.75 (only class 0 present)
 */
export function balancedAccuracy(predicted: ArrayLike<number>, labels: ArrayLike<number>, k: number): number {
  const cm = confusionMatrix(predicted, labels, k);
  const recalls = cm.map((row, c) => {
    const t = row.reduce((a, b) => a + b, 0);
    return t ? row[c]! / t : NaN;
  }).filter((v) => !Number.isNaN(v));
  return recalls.length ? recalls.reduce((a, b) => a + b, 0) / recalls.length : NaN;
}

/**
 * Arg-max per row of an n × k matrix.
 * @param m - row-major values
 * @param k - columns
 * @returns the index of the largest value per row (first when tied)
 * @example
 * argmaxRows([0.2, 0.8, 0.6, 0.4], 2); // Int32Array [1, 0]
 */
export function argmaxRows(m: ArrayLike<number>, k: number): Int32Array {
  const n = m.length / k;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (m[i * k + j]! > m[i * k + best]!) best = j;
    out[i] = best;
  }
  return out;
}
