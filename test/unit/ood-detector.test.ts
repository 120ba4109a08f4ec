/**
 * The open-set detector's maths against closed forms: the class-conditional Mahalanobis distance
 * with a shared covariance (Lee et al. 2018) on synthetic Gaussians, whose AUROC against the same
 * Gaussians scaled by k is known exactly, and the weighted combination of standardised scores.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { auroc } from '../../src/core/metrics/classification.js';
import { isMedmaskError } from '../../src/core/errors.js';
import { combineOod, DEFAULT_OOD_WEIGHTS, fitMahalanobis, fitOodCombiner, mahalanobis } from '../../src/core/uncertainty/ood.js';
import { Rng } from '../../src/core/random.js';
import { parseWeights } from '../../src/cli/fit-ood.js';

/** Two classes N(μ_c, AAᵀ) in d dimensions, means 40 apart (each point is nearest its own class mean). */
function gaussians(rng: Rng, d: number, n: number, scale: number, a: number[][]): { x: number[][]; y: number[] } {
  const x: number[][] = [], y: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = i % 2;
    const z = Array.from({ length: d }, () => rng.normal());
    x.push(a.map((row, r) => (r === 0 ? (c ? 20 : -20) : 3) + scale * row.reduce((s, v, j) => s + v * z[j]!, 0)));
    y.push(c);
  }
  return { x, y };
}

for (const { d, k, expected } of [
  // d = 2: D² ~ χ²₂ (exponential), so P(k²·D²_in > D²_in') = k² / (1 + k²).
  { d: 2, k: 2, expected: 4 / 5 },
  // d = 4: D²/2 ~ Gamma(2), P(Y/X < c) = I_t(2, 2) = 3t² − 2t³ with t = c / (1 + c), c = k².
  { d: 4, k: 1.5, expected: ((t) => 3 * t * t - 2 * t ** 3)(2.25 / 3.25) },
]) {
  test(`Mahalanobis AUROC on Gaussians scaled by ${k} in ${d} dimensions equals the closed form ${expected.toFixed(4)}`, () => {
    const rng = new Rng(20 + d);
    // A correlated, anisotropic covariance: the distance must whiten it to reach the closed form.
    const a = Array.from({ length: d }, (_, r) => Array.from({ length: d }, (_, c) => (r === c ? 1 + r : c < r ? 0.8 : 0)));
    const fit = gaussians(rng, d, 6000, 1, a);
    const model = fitMahalanobis(fit.x, fit.y, 0);
    const inDist = gaussians(rng, d, 3000, 1, a).x.map((x) => mahalanobis(model, x));
    const ood = gaussians(rng, d, 3000, k, a).x.map((x) => mahalanobis(model, x));
    const got = auroc([...inDist, ...ood], [...inDist.map(() => 0), ...ood.map(() => 1)]);
    // 3000 + 3000 samples: the AUROC's standard error is about 0.006.
    assert.ok(Math.abs(got - expected) < 0.025, `AUROC ${got.toFixed(4)} vs closed form ${expected.toFixed(4)}`);
    // Without whitening (identity covariance) the same data rank worse: the covariance matters.
    const euclid = (x: number[]) => Math.min(...model.means.map((m) => m.reduce((s, v, j) => s + (x[j]! - v) ** 2, 0)));
    const r2 = new Rng(99);
    const inE = gaussians(r2, d, 3000, 1, a).x.map(euclid), oodE = gaussians(r2, d, 3000, k, a).x.map(euclid);
    assert.ok(auroc([...inE, ...oodE], [...inE.map(() => 0), ...oodE.map(() => 1)]) < got, 'Euclidean distance ranks worse than Mahalanobis');
  });
}

test('weighted combiner: weight 0 drops a score, the mean is weighted, the threshold keeps the FPR; bad weights are refused', () => {
  const rng = new Rng(5);
  const a = Array.from({ length: 400 }, () => rng.normal(10, 2)), b = Array.from({ length: 400 }, () => rng.normal(-3, 0.5));
  const only = fitOodCombiner({ a, b }, 0.1, { a: 1, b: 0 });
  const ma = a.reduce((s, v) => s + v, 0) / a.length;
  const sa = Math.sqrt(a.reduce((s, v) => s + (v - ma) ** 2, 0) / (a.length - 1));
  for (const [va, vb] of [[12, -3], [12, 40], [7, -100]] as const) assert.ok(Math.abs(combineOod(only, { a: va, b: vb }) - (va - ma) / sa) < 1e-12, 'b has no weight');
  assert.equal(a.filter((v, i) => combineOod(only, { a: v, b: b[i]! }) > only.threshold).length, 40, '10 % of the fit set above the threshold');
  const w = fitOodCombiner({ a, b }, 0.05, { a: 3, b: 1 });
  const zb = (v: number) => (v - w.mean[1]!) / w.std[1]!;
  assert.ok(Math.abs(combineOod(w, { a: 11, b: -2 }) - (3 * ((11 - ma) / sa) + zb(-2)) / 4) < 1e-12);
  // A file fitted before weights existed (no weights field): every score weighs 1.
  const old = { ...w, weights: undefined };
  assert.ok(Math.abs(combineOod(old, { a: 11, b: -2 }) - ((11 - ma) / sa + zb(-2)) / 2) < 1e-12);
  for (const bad of [{ c: 1 }, { a: 0, b: 0 }, { a: -1, b: 1 }] as Record<string, number>[]) {
    assert.throws(() => fitOodCombiner({ a, b }, 0.05, bad), (e) => isMedmaskError(e) && e.code === 'USAGE', JSON.stringify(bad));
  }
  assert.deepEqual({ ...DEFAULT_OOD_WEIGHTS }, { mahalanobis: 1, energy: 0, mi: 0 });
  assert.deepEqual(parseWeights('mahalanobis=1, energy=0.5,MI=0'), { mahalanobis: 1, energy: 0.5, mi: 0 });
  for (const bad of ['', 'mahalanobis', 'energy=-1', 'mi=x']) assert.throws(() => parseWeights(bad), (e) => isMedmaskError(e) && e.code === 'USAGE' && /--weights/.test(e.message), bad);
});
