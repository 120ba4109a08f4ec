/**
 * Heads whose constants reach them through Identity nodes (torch.onnx deduplicates equal
 * initialisers, e.g. the zero biases of a freshly built torchvision EfficientNet-B0).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { explainActivation } from '../../src/core/explain/explain.js';
import { ClassifierSession } from '../../src/runtime/session.js';
import { identityBiasModel } from '../helpers/onnx-build.js';
import { relErr } from '../helpers/cam-fixtures.js';

test('a Gemm bias produced by Identity(initialiser) is read as a constant; head logits equal onnxruntime\'s', async () => {
  const s = await ClassifierSession.create(identityBiasModel(), { source: 'identity-bias.onnx' });
  try {
    assert.equal(s.target, 'r');
    assert.ok(s.headDescription.constants['fc.bias'], 'bias folded into a constant');
    const x = Float32Array.from({ length: 3 * 64 }, (_, i) => Math.sin(i / 3));
    const r = await s.run(x, [1, 3, 8, 8]);
    const e = explainActivation(s.head, { shape: r.activationDims, data: r.activation }, { classNames: ['a', 'b', 'c', 'd'], probability: 'none' });
    assert.ok(relErr(e.logits, r.logits) < 1e-5, `${[...e.logits]} vs ${[...r.logits]}`);
  } finally {
    await s.release();
  }
});
