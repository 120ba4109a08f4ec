/**
 * CAM methods on hand-built activations with closed-form answers (the torch comparison lives in
 * test/integration/explain-torch.test.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { camWeights, computeCam, normalizeMap, XGRADCAM_EPS } from '../../src/core/explain/cam.js';
import { isMedmaskError } from '../../src/core/errors.js';

// Two channels of 2 × 3 (h × w), x fastest.
const A = Float64Array.of(1, 2, 3, 4, 5, 6, /* ch 1 */ 0, 0, 1, 0, 0, 0);
const sizes = { channels: 2, height: 2, width: 3 };

test('for a pooling + linear head, Grad-CAM equals CAM / (h·w), and XGrad-CAM equals CAM (Fu et al. 2020, sec. 4)', () => {
  // y_c = Σ_k W_k mean(A_k)  ⇒  ∂y_c/∂A_kij = W_k / (h w)
  const Wc = [0.5, -2];
  const G = Float64Array.from(A, (_, i) => Wc[Math.floor(i / 6)]! / 6);
  const cam = computeCam('cam', { activation: A, ...sizes, classWeights: Wc });
  const grad = computeCam('gradcam', { activation: A, gradient: G, ...sizes });
  const xgrad = computeCam('xgradcam', { activation: A, gradient: G, ...sizes });
  for (let i = 0; i < 6; i++) {
    assert.ok(Math.abs(grad.raw[i]! - cam.raw[i]! / 6) < 1e-12);
    // XGrad-CAM weight: Σ (W_k/hw) A / (Σ A + ε) = W_k / hw · ΣA/(ΣA+ε)
    assert.ok(Math.abs(xgrad.raw[i]! - cam.raw[i]! / 6) < 1e-6);
  }
  // CAM by hand: ReLU(0.5·A0 − 2·A1): pixel 2 = 1.5 − 2 = −0.5 → 0
  assert.deepEqual([...cam.raw], [0.5, 1, 0, 2, 2.5, 3]);
});

test('XGrad-CAM weights follow Σ(G·A)/(ΣA + ε) and Grad-CAM++ the α closed form', () => {
  const G = Float64Array.of(1, 0, -1, 2, 0, 0, 0, 0, 3, 0, 0, 0);
  const wx = camWeights('xgradcam', { activation: A, gradient: G, ...sizes });
  assert.ok(Math.abs(wx[0]! - (1 - 3 + 8) / (21 + XGRADCAM_EPS)) < 1e-12);
  assert.ok(Math.abs(wx[1]! - 3 / (1 + XGRADCAM_EPS)) < 1e-12);
  const wpp = camWeights('gradcampp', { activation: A, gradient: G, ...sizes });
  const alpha = (g: number, s: number): number => (g * g) / (2 * g * g + s * g ** 3 + 1e-6);
  assert.ok(Math.abs(wpp[0]! - (alpha(1, 21) * 1 + alpha(2, 21) * 2)) < 1e-12); // the negative gradient is dropped
  assert.ok(Math.abs(wpp[1]! - alpha(3, 1) * 3) < 1e-12);
});

test('normalizeMap is pytorch-grad-cam\'s (m − min)/(max − min + 1e-7); a flat map becomes 0', () => {
  const n = normalizeMap([2, 4, 6]);
  assert.ok(Math.abs(n[2]! - 4 / (4 + 1e-7)) < 1e-15 && n[0] === 0);
  assert.deepEqual([...normalizeMap([3, 3])], [0, 0]);
});

test('wrong sizes and a CAM without class weights are USAGE errors', () => {
  assert.throws(() => computeCam('gradcam', { activation: A, gradient: A.subarray(1), ...sizes }), (e: unknown) => isMedmaskError(e) && e.code === 'USAGE');
  assert.throws(() => computeCam('cam', { activation: A, ...sizes }), (e: unknown) => isMedmaskError(e) && /classifier weights/.test(e.message));
});
