/**
 * Head MC of a classifier with many classes: the T dropout samples of the linear layer run as one
 * onnxruntime GEMM (runtime/linear-tail.ts) and give what the JavaScript path gives.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { explainActivation } from '../../src/core/explain/explain.js';
import { ORT_TAIL_MIN_WEIGHTS } from '../../src/runtime/linear-tail.js';
import { ClassifierSession } from '../../src/runtime/session.js';
import { relErr } from '../helpers/cam-fixtures.js';
import { wideHeadModel } from '../helpers/onnx-build.js';

test('onnxruntime GEMM for the MC samples of a 256 × 300 head equals the JavaScript path', async () => {
  const [K, N] = [256, 300];
  assert.ok(K * N >= ORT_TAIL_MIN_WEIGHTS, 'this head takes the onnxruntime path');
  const s = await ClassifierSession.create(wideHeadModel(K, N), { source: 'wide.onnx', threads: 2 });
  try {
    const x = Float32Array.from({ length: 3 * 64 }, (_, i) => Math.sin(i / 5) + 0.2 * Math.cos(i));
    const r = await s.run(x, [1, 3, 8, 8]);
    const act = { shape: r.activationDims, data: r.activation };
    const classNames = Array.from({ length: N }, (_, i) => `c${i}`);
    for (const rate of [0.2, 0.6]) {
      const opts = { classNames, classes: '0,7', mc: { samples: 12, rate, seed: 3 } };
      const viaOrt = await s.explain(act, opts);
      assert.equal((s as unknown as { tails: Map<unknown, unknown> }).tails.size, 1, 'the onnxruntime GEMM ran');
      const js = explainActivation(s.head, act, opts);
      assert.ok(relErr(viaOrt.mc!.meanProbability, js.mc!.meanProbability) < 1e-5, 'mean probability');
      for (const k of ['predictiveEntropy', 'expectedEntropy', 'mutualInformation'] as const) {
        assert.ok(Math.abs(viaOrt.mc![k] - js.mc![k]) < 1e-5 * Math.max(1, js.mc![k]), `${k}: ${viaOrt.mc![k]} vs ${js.mc![k]}`);
      }
      assert.ok(js.mc!.mutualInformation > 0);
      viaOrt.maps.forEach((m, i) => assert.ok(relErr(m.std!, js.maps[i]!.std!) < 1e-6, 'the maps use the same masks'));
      // onnxruntime's own logits may stand in for the head's deterministic output
      const given = await s.explain(act, { ...opts, output: r.logits });
      assert.ok(relErr(given.logits, js.logits) < 1e-5 && relErr(given.maps[1]!.raw, js.maps[1]!.raw) < 1e-6);
    }
  } finally {
    await s.release();
  }
});
