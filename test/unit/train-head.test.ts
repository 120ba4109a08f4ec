/**
 * The math of `medmask train-head` against independent references: central finite differences
 * for the gradient, a Newton solve of L2-regularised logistic regression for Adam, hand-computed
 * AUROCs with ties.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { adamStep, createAdamState } from '../../src/core/train/adam.js';
import { fitHead } from '../../src/core/train/fit.js';
import { foldStandardization, headForward, headLoss, initHeadParams, type HeadParams } from '../../src/core/train/head-net.js';
import { accuracy, auroc, balancedAccuracy, confusionMatrix, multiclassAuroc } from '../../src/core/train/metrics.js';
import { niceTicks, plotLossCurve, PLOT_COLOURS } from '../../src/core/train/plot.js';
import { balancedClassWeights, featureStats, stratifiedSplit } from '../../src/core/train/split.js';
import { isMedmaskError } from '../../src/core/errors.js';
import { mulberry32 } from '../../src/core/random.js';

function gauss(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

function fdCheck(p: HeadParams, loss: () => number, grad: Float64Array): number {
  let worst = 0;
  const h = 1e-6;
  for (let i = 0; i < p.data.length; i++) {
    const v = p.data[i]!;
    p.data[i] = v + h;
    const up = loss();
    p.data[i] = v - h;
    const down = loss();
    p.data[i] = v;
    const fd = (up - down) / (2 * h);
    worst = Math.max(worst, Math.abs(fd - grad[i]!) / Math.max(1e-3, Math.abs(fd)));
  }
  return worst;
}

for (const hidden of [0, 5]) {
  test(`head loss gradient matches central finite differences (hidden ${hidden}, class weights, weight decay, dropout)`, () => {
    const rand = mulberry32(11 + hidden);
    const n = 7, C = 6, K = 3;
    const p = initHeadParams({ inputs: C, hidden, classes: K }, rand);
    for (let i = 0; i < p.data.length; i++) p.data[i]! += 0.3 * gauss(rand); // away from the init scale
    const x = Float64Array.from({ length: n * C }, () => gauss(rand));
    const y = Int32Array.from({ length: n }, (_, i) => i % K);
    const opts = {
      classWeights: [0.5, 2, 1.25],
      weightDecay: 0.07,
      ...(hidden ? { hiddenMask: Float64Array.from({ length: n * hidden }, () => (rand() < 0.3 ? 0 : 1 / 0.7)) } : {}),
    };
    const r = headLoss(p, x, y, opts);
    const err = fdCheck(p, () => headLoss(p, x, y, { ...opts, gradient: false }).loss, r.grad);
    assert.ok(err < 1e-6, `relative gradient error ${err}`);
    // the penalty is on weights only: with λ the loss grows by (λ/2)‖W‖²
    const plain = headLoss(p, x, y, { ...opts, weightDecay: 0 }).loss;
    let w2 = 0;
    for (let i = 0; i < p.data.length; i++) if (p.decayMask[i]) w2 += p.data[i]! ** 2;
    assert.ok(Math.abs(r.loss - plain - 0.035 * w2) < 1e-12);
  });
}

test('class-weighted cross-entropy equals the weighted mean of −ln p (torch CrossEntropyLoss(weight=…))', () => {
  const p = initHeadParams({ inputs: 2, hidden: 0, classes: 2 }, mulberry32(3));
  const x = Float64Array.of(1, 2, -1, 0.5, 0.3, -2);
  const y = [0, 1, 1];
  const r = headLoss(p, x, y, { classWeights: [3, 1] });
  const ps = r.probabilities;
  const expected = (3 * -Math.log(ps[0]!) + -Math.log(ps[3]!) + -Math.log(ps[5]!)) / (3 + 1 + 1);
  assert.ok(Math.abs(r.loss - expected) < 1e-12);
});

/** Newton's method for weighted logistic regression with penalty (μ/2)‖β‖² (intercept free). */
function newtonLogistic(x: number[][], s: number[], w: number[], mu: number): number[] {
  const d = x[0]!.length + 1;
  const theta = new Array<number>(d).fill(0);
  const W = w.reduce((a, b) => a + b, 0);
  for (let it = 0; it < 50; it++) {
    const g = new Array<number>(d).fill(0);
    const H = Array.from({ length: d }, () => new Array<number>(d).fill(0));
    x.forEach((xi, i) => {
      const z = [...xi, 1];
      const m = z.reduce((a, v, k) => a + v * theta[k]!, 0);
      const sig = 1 / (1 + Math.exp(-m));
      const t = s[i]! > 0 ? 1 : 0;
      for (let a = 0; a < d; a++) {
        g[a]! += (w[i]! * (sig - t) * z[a]!) / W;
        for (let b = 0; b < d; b++) H[a]![b]! += (w[i]! * sig * (1 - sig) * z[a]! * z[b]!) / W;
      }
    });
    for (let a = 0; a < d - 1; a++) {
      g[a]! += mu * theta[a]!;
      H[a]![a]! += mu;
    }
    // solve H δ = g (Gaussian elimination)
    const A = H.map((row, i) => [...row, g[i]!]);
    for (let c = 0; c < d; c++) {
      let piv = c;
      for (let r = c + 1; r < d; r++) if (Math.abs(A[r]![c]!) > Math.abs(A[piv]![c]!)) piv = r;
      [A[c], A[piv]] = [A[piv]!, A[c]!];
      for (let r = 0; r < d; r++) {
        if (r === c) continue;
        const f = A[r]![c]! / A[c]![c]!;
        for (let k = c; k <= d; k++) A[r]![k]! -= f * A[c]![k]!;
      }
    }
    for (let a = 0; a < d; a++) theta[a]! -= A[a]![d]! / A[a]![a]!;
  }
  return theta;
}

test('Adam reaches the closed-form optimum of L2-regularised, class-weighted logistic regression (Newton)', () => {
  const rand = mulberry32(5);
  const n = 60, C = 3;
  const truth = [1.5, -2, 0.5];
  const xs: number[][] = [];
  const y: number[] = [];
  for (let i = 0; i < n; i++) {
    const xi = Array.from({ length: C }, () => gauss(rand));
    const m = xi.reduce((a, v, k) => a + v * truth[k]!, 0.3) + gauss(rand); // separable-ish: noisy labels
    xs.push(xi);
    y.push(m > 0 ? 1 : 0);
  }
  const cw = [1, 1.7];
  const lambda = 0.05;
  // two-class softmax with (λ/2)(‖w0‖² + ‖w1‖²): at the optimum w1 = −w0 = β/2, so the logit
  // difference is logistic regression with penalty (λ/4)‖β‖², i.e. μ = λ/2
  const ref = newtonLogistic(xs, y, y.map((v) => cw[v]!), lambda / 2);
  const p = initHeadParams({ inputs: C, hidden: 0, classes: 2 }, mulberry32(9));
  const x = Float64Array.from(xs.flat());
  const st = createAdamState(p.data.length);
  for (let t = 1; t <= 6000; t++) {
    const { grad } = headLoss(p, x, y, { classWeights: cw, weightDecay: lambda });
    adamStep(st, p.data, grad, { lr: t < 3000 ? 0.02 : 0.002 });
  }
  const [W, b] = [p.layers[0]!.w, p.layers[0]!.b];
  const beta = Array.from({ length: C }, (_, k) => W[C + k]! - W[k]!);
  const beta0 = b[1]! - b[0]!;
  for (let k = 0; k < C; k++) assert.ok(Math.abs(beta[k]! - ref[k]!) < 1e-4, `β${k}: adam ${beta[k]} newton ${ref[k]}`);
  assert.ok(Math.abs(beta0 - ref[C]!) < 1e-4, `intercept: adam ${beta0} newton ${ref[C]}`);
});

test('AUROC against hand-computed values, with ties', () => {
  assert.equal(auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]), 0.75);
  // positives 0.5, 0.9; negatives 0.5, 0.5, 0.1 → pairs: 0.5 vs 0.5 twice (½ each), 0.5 > 0.1, 0.9 > all
  assert.ok(Math.abs(auroc([0.5, 0.5, 0.5, 0.9, 0.1], [1, 0, 0, 1, 0]) - 5 / 6) < 1e-15);
  assert.equal(auroc([0.3, 0.3, 0.3], [1, 0, 1]), 0.5); // all tied
  assert.equal(auroc([0.9, 0.8, 0.1], [0, 0, 1]), 0); // perfectly wrong
  assert.ok(Number.isNaN(auroc([0.1, 0.2], [1, 1])));
  // 3 classes, one-vs-rest, by hand. Rows: [.6 .3 .1] [.2 .5 .3] [.1 .3 .6] [.6 .4 .1], labels 0 1 2 1.
  // class 0: positive .6 vs negatives .2, .1, .6 (tie) → 2.5/3; class 1: positives .5, .4 vs .3, .3 → 1;
  // class 2: positive .6 vs .1, .3, .1 → 1
  const probs = [0.6, 0.3, 0.1, 0.2, 0.5, 0.3, 0.1, 0.3, 0.6, 0.6, 0.4, 0.1];
  const labels = [0, 1, 2, 1];
  const r = multiclassAuroc(probs, labels, 3);
  assert.deepEqual(r.perClass.map((v) => Number(v.toFixed(6))), [Number((2.5 / 3).toFixed(6)), 1, 1]);
  assert.ok(Math.abs(r.macro - (2.5 / 3 + 2) / 3) < 1e-12);
  assert.equal(multiclassAuroc([0.8, 0.2, 0.3, 0.7], [0, 1], 2).macro, 1);
});

test('accuracy, balanced accuracy, confusion matrix', () => {
  assert.deepEqual(confusionMatrix([0, 1, 1, 2], [0, 1, 0, 2], 3), [[1, 1, 0], [0, 1, 0], [0, 0, 1]]);
  assert.equal(accuracy([0, 1, 1, 2], [0, 1, 0, 2]), 0.75);
  assert.equal(balancedAccuracy([0, 0, 0, 0], [0, 0, 0, 1], 2), 0.5);
});

test('stratified split is seeded, keeps class shares, and balanced weights equalise the classes', () => {
  const labels = Int32Array.from({ length: 100 }, (_, i) => (i < 80 ? 0 : 1));
  const a = stratifiedSplit(labels, 2, 0.2, mulberry32(1));
  const b = stratifiedSplit(labels, 2, 0.2, mulberry32(1));
  const c = stratifiedSplit(labels, 2, 0.2, mulberry32(2));
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.val, c.val);
  assert.equal(a.val.length, 20);
  assert.equal([...a.val].filter((i) => labels[i] === 1).length, 4);
  assert.equal(new Set([...a.train, ...a.val]).size, 100);
  const w = balancedClassWeights(Int32Array.from(a.train, (i) => labels[i]!), 2);
  assert.ok(Math.abs(w[0]! * 64 - w[1]! * 16) < 1e-9); // weight × count equal per class
  // a class with 2 rows still gets one validation row; one with 1 row stays in training
  const s = stratifiedSplit([0, 0, 1, 2, 2, 2], 3, 0.1, mulberry32(0));
  assert.deepEqual([...s.val].map((i) => [0, 0, 1, 2, 2, 2][i]).sort(), [0, 2]);
});

test('folding the standardisation into the first layer gives the same logits on raw features', () => {
  const rand = mulberry32(4);
  const n = 5, C = 4;
  const x = Float64Array.from({ length: n * C }, () => 3 + 2 * gauss(rand));
  const st = featureStats(x, C, [0, 1, 2, 3, 4]);
  const z = x.map((v, i) => (v - st.mean[i % C]!) / st.std[i % C]!);
  for (const hidden of [0, 3]) {
    const p = initHeadParams({ inputs: C, hidden, classes: 2 }, rand);
    const a = headForward(p, z, n).logits;
    const b = headForward(foldStandardization(p, st.mean, st.std), x, n).logits;
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) < 1e-12);
  }
});

test('fitHead learns a linear rule on features, is deterministic per seed, stops early, and rejects one class', () => {
  const rand = mulberry32(8);
  const n = 300, C = 10;
  const x = new Float64Array(n * C);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < C; k++) x[i * C + k] = 5 + gauss(rand) * (k + 1);
    y[i] = x[i * C + 2]! - 5 > 0.5 * (x[i * C + 7]! - 5) ? 1 : 0;
  }
  const opts = { seed: 3, epochs: 300, lr: 0.01, patience: 15, dropout: 0.1 };
  const r = fitHead({ features: x, dim: C, labels: y, classes: 2 }, opts);
  assert.ok(r.validation!.accuracy > 0.9, `val accuracy ${r.validation!.accuracy}`);
  assert.ok(r.validation!.auroc.macro > 0.95);
  assert.ok(r.stoppedEarly && r.epochsRun < 300 && r.bestEpoch === r.epochsRun - 15);
  assert.equal(r.history.filter((h) => h.best).at(-1)!.epoch, r.bestEpoch);
  const again = fitHead({ features: x, dim: C, labels: y, classes: 2 }, opts);
  assert.deepEqual(again.params.data, r.params.data);
  const hidden = fitHead({ features: x, dim: C, labels: y, classes: 2 }, { ...opts, hidden: 16 });
  assert.ok(hidden.validation!.accuracy > 0.85);
  assert.throws(() => fitHead({ features: x.subarray(0, 20), dim: C, labels: [1, 1], classes: 2 }), (e: unknown) => isMedmaskError(e) && e.code === 'DATASET_INVALID');
});

test('the loss plot draws both curves where they belong', () => {
  const train = Array.from({ length: 30 }, (_, i) => 1 / (1 + i * 0.3));
  const val = train.map((v, i) => v + 0.1 + (i > 20 ? (i - 20) * 0.02 : 0));
  const img = plotLossCurve(train, val, { bestEpoch: 21, width: 640, height: 400 });
  assert.equal(img.data.length, 640 * 400 * 3);
  const rowsWith = (c: readonly number[], x: number): number[] => {
    const ys: number[] = [];
    for (let y = 0; y < img.height; y++) {
      const o = (y * img.width + x) * 3;
      if (img.data[o] === c[0] && img.data[o + 1] === c[1] && img.data[o + 2] === c[2]) ys.push(y);
    }
    return ys;
  };
  // near the left the curves are high (small y), near the right low; validation above training
  const trainLeft = rowsWith(PLOT_COLOURS.train, 150), trainRight = rowsWith(PLOT_COLOURS.train, 450);
  const valRight = rowsWith(PLOT_COLOURS.val, 450);
  assert.ok(trainLeft.length && trainRight.length && valRight.length);
  assert.ok(Math.min(...trainLeft) < Math.min(...trainRight));
  assert.ok(Math.max(...valRight) < Math.min(...trainRight));
  assert.deepEqual(niceTicks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(niceTicks(1, 30, 6), [5, 10, 15, 20, 25, 30]);
});
