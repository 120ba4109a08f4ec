/**
 * Monte Carlo Dropout statistics (Gal & Ghahramani 2016) against closed forms.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileHead, forwardHead, type HeadDescription } from '../../src/core/explain/head.js';
import { dropoutSite, entropy, headMonteCarlo, mcStatistics, mulberry32, pixelStd, softmax } from '../../src/core/uncertainty/mc-dropout.js';

const rand = mulberry32(99);
const randn = (n: number): number[] => Array.from({ length: n }, () => (rand() + rand() + rand() - 1.5) * 2);
const C = 16, H = 3, W = 2, K = 4;
const Wt = randn(K * C);
const bias = randn(K);
const linear: HeadDescription = {
  target: 'A', output: 'y',
  nodes: [
    { op: 'GlobalAveragePool', name: 'gap', inputs: ['A'], outputs: ['p'], attrs: {} },
    { op: 'Flatten', name: 'flat', inputs: ['p'], outputs: ['f'], attrs: { axis: 1 } },
    { op: 'Gemm', name: 'fc', inputs: ['f', 'W', 'b'], outputs: ['y'], attrs: { transB: 1 } },
  ],
  constants: { W: { dims: [K, C], data: Wt }, b: { dims: [K], data: bias } },
};
const head = compileHead(linear);
const act = { shape: [1, C, H, W], data: Float64Array.from(randn(C * H * W).map((v) => v + 0.3)) };

test('the dropout site of a torchvision-style head is the classifier input', () => {
  assert.equal(dropoutSite(head), 'f');
});

test('rate 0: every sample equals the deterministic pass, MI = 0, map std = 0', () => {
  const r = headMonteCarlo(head, act, { rate: 0, samples: 5, seed: 1, method: 'xgradcam' });
  const det = forwardHead(head, act).output.data;
  for (const o of r.outputs) assert.deepEqual([...o], [...det]);
  assert.ok(r.statistics.mutualInformation < 1e-12);
  assert.ok(Math.abs(r.statistics.predictiveEntropy - entropy(softmax(det))) < 1e-12);
  assert.ok(Math.max(...r.mapStd!) < 1e-12);
});

test('0 ≤ MI ≤ predictive entropy, and MI > 0 with dropout on', () => {
  for (const seed of [1, 2, 3]) {
    const s = headMonteCarlo(head, act, { rate: 0.5, samples: 20, seed }).statistics;
    assert.ok(s.mutualInformation > 0);
    assert.ok(s.mutualInformation <= s.predictiveEntropy + 1e-12);
    assert.ok(Math.abs(s.predictiveEntropy - s.expectedEntropy - s.mutualInformation) < 1e-12);
  }
});

test('linear head: the MC mean of the logits converges to the closed form E = deterministic logits, within 4σ/√T', () => {
  // logit_c = Σ_k W_ck m_k x_k + b_c, m_k ∈ {0, 1/(1−p)} ⇒ E = W x + b, Var = p/(1−p) Σ_k W_ck² x_k²
  const p = 0.3;
  const x = forwardHead(head, act).values.get('f')!.data;
  const det = forwardHead(head, act).output.data;
  const sd = Array.from({ length: K }, (_, c) => Math.sqrt((p / (1 - p)) * x.reduce((s, xk, k) => s + (Wt[c * C + k]! * xk) ** 2, 0)));
  const errs: number[] = [];
  for (const T of [50, 5000]) {
    const r = headMonteCarlo(head, act, { rate: p, samples: T, seed: 7 });
    let worst = 0;
    for (let c = 0; c < K; c++) {
      const mean = r.outputs.reduce((s, o) => s + o[c]!, 0) / T;
      const z = Math.abs(mean - det[c]!) / (sd[c]! / Math.sqrt(T));
      assert.ok(z < 4, `T=${T} class ${c}: ${z.toFixed(2)} standard errors off`);
      worst = Math.max(worst, Math.abs(mean - det[c]!));
    }
    errs.push(worst);
  }
  assert.ok(errs[1]! < errs[0]!, `error shrinks with T: ${errs.join(' → ')}`);
});

test('same seed → identical results; another seed → different samples', () => {
  const a = headMonteCarlo(head, act, { rate: 0.4, samples: 10, seed: 42, method: 'gradcam' });
  const b = headMonteCarlo(head, act, { rate: 0.4, samples: 10, seed: 42, method: 'gradcam' });
  const c = headMonteCarlo(head, act, { rate: 0.4, samples: 10, seed: 43, method: 'gradcam' });
  assert.deepEqual(a.outputs.map((o) => [...o]), b.outputs.map((o) => [...o]));
  assert.deepEqual([...a.mapStd!], [...b.mapStd!]);
  assert.notDeepEqual(a.outputs.map((o) => [...o]), c.outputs.map((o) => [...o]));
});

test('mcStatistics on two confident, disagreeing samples: MI = ln 2 − H(0.9, 0.1)', () => {
  const s = mcStatistics([[0.9, 0.1], [0.1, 0.9]]);
  const h09 = -(0.9 * Math.log(0.9) + 0.1 * Math.log(0.1));
  assert.ok(Math.abs(s.predictiveEntropy - Math.LN2) < 1e-12);
  assert.ok(Math.abs(s.expectedEntropy - h09) < 1e-12);
  assert.ok(Math.abs(s.mutualInformation - (Math.LN2 - h09)) < 1e-12);
  assert.ok(Math.abs(s.probabilityStd[0]! - 0.4) < 1e-12);
});

test('pixelStd is the population standard deviation per pixel', () => {
  assert.deepEqual([...pixelStd([[0, 1], [2, 1]])], [1, 0]);
});
