/**
 * Full Monte Carlo Dropout: the EfficientNet fixture exported with its classifier Dropout kept
 * (tools/fixtures/make_cam_fixtures.py), run T times in onnxruntime with dropout on.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { isMedmaskError } from '../../src/core/errors.js';
import { backwardHead, forwardHead } from '../../src/core/explain/head.js';
import { activateDropout, decodeOnnx } from '../../src/runtime/onnx-graph.js';
import { ClassifierSession } from '../../src/runtime/session.js';
import { camModelPath, camTensor, relErr } from '../helpers/cam-fixtures.js';

const x = camTensor('input0');
const dims = [1, ...x.shape];
const torchLogits = camTensor('efficientnet/features[-1]/input0/logits').data;

async function sample(seed: number, T: number): Promise<{ logits: Float32Array[]; s: ClassifierSession; runs: Awaited<ReturnType<ClassifierSession['run']>>[] }> {
  const s = await ClassifierSession.create(camModelPath('efficientnet-mc'), { fullMc: { seed }, threads: 2 });
  const runs = [];
  for (let t = 0; t < T; t++) runs.push(await s.run(Float32Array.from(x.data), dims));
  return { logits: runs.map((r) => Float32Array.from(r.logits)), s, runs };
}

test('each run draws a new mask; the mean over T runs approaches the eval-mode logits of torch (4 standard errors)', async () => {
  const T = 200;
  const { logits, s } = await sample(5, T);
  assert.notDeepEqual([...logits[0]!], [...logits[1]!]);
  for (let c = 0; c < torchLogits.length; c++) {
    const v = logits.map((l) => l[c]!);
    const mean = v.reduce((a, b) => a + b, 0) / T;
    const sd = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (T - 1));
    assert.ok(Math.abs(mean - torchLogits[c]!) < 4 * sd / Math.sqrt(T) + 1e-5, `class ${c}: mean ${mean} vs ${torchLogits[c]}`);
  }
  await s.release();
});

test('the same seed in a fresh session repeats the masks', async () => {
  const a = await sample(11, 3);
  const b = await sample(11, 3);
  assert.deepEqual(a.logits.map((l) => [...l]), b.logits.map((l) => [...l]));
  await a.s.release();
  await b.s.release();
});

test('the head evaluator with the mask onnxruntime drew reproduces the sampled logits', async () => {
  const { runs, s } = await sample(3, 4);
  for (const r of runs) {
    assert.ok(r.dropoutMasks && Object.keys(r.dropoutMasks).length === 1);
    const trace = forwardHead(s.head, { shape: r.activationDims, data: Float64Array.from(r.activation) }, { masks: r.dropoutMasks });
    assert.ok(relErr(trace.output.data, r.logits) < 1e-4);
    const g = backwardHead(s.head, trace, 0);
    assert.equal(g.length, r.activation.length);
  }
  await s.release();
});

test('a model without Dropout nodes cannot run full MC, and says what to do', () => {
  assert.throws(() => activateDropout(decodeOnnx(readFileSync(camModelPath('efficientnet')))), (e: unknown) =>
    isMedmaskError(e) && e.code === 'MODEL_INVALID' && /no Dropout nodes/.test(e.message) && /head MC/.test(e.hint ?? ''));
});
