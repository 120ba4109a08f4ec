/**
 * The committed demo zoo (models/demo, built by tools/train/build_zoo.py) without Python: each
 * classifier loads through the runtime and classifies freshly generated chest phantoms (seeds the
 * trainer never used); each 3D segmenter's manifest is sound, its ONNX runs on a patch with the
 * right output shape, it segments a fresh abdominal phantom, and the three disagree somewhere.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { abdomenPhantom, ORGANS } from '../../src/core/phantom/abdomen.js';
import { CHEST_LABELS, chestPhantom } from '../../src/core/phantom/chest.js';
import { createVolume } from '../../src/core/volume.js';
import { loadEnsemble, releaseEnsemble, runModel } from '../../src/pipeline/ensemble.js';
import { readManifest } from '../../src/runtime/manifest.js';
import { defaultTarget, findTargetCandidates } from '../../src/runtime/onnx-graph.js';
import { Segmenter } from '../../src/runtime/segment.js';

const ZOO = new URL('../../models/demo/', import.meta.url).pathname;

interface Manifest {
  format: string;
  name: string;
  task: 'classify' | 'segment';
  model: string;
}

const models: { dir: string; manifest: Manifest }[] = (existsSync(ZOO) ? readdirSync(ZOO) : [])
  .filter((d) => statSync(join(ZOO, d)).isDirectory())
  .sort()
  .map((d) => ({ dir: join(ZOO, d), manifest: JSON.parse(readFileSync(join(ZOO, d, 'model.json'), 'utf8')) as Manifest }));
const classifiers = models.filter((m) => m.manifest.task === 'classify');
const segmenters = models.filter((m) => m.manifest.task === 'segment');

test('the zoo has three classifiers and three segmenters, each with model, manifest and card, within 25 MB', () => {
  assert.equal(classifiers.length, 3);
  assert.equal(segmenters.length, 3);
  let total = 0;
  for (const { dir, manifest } of models) {
    for (const f of ['model.onnx', 'model.json', 'card.md', 'card.json']) assert.ok(existsSync(join(dir, f)), `${dir}/${f}`);
    assert.equal(manifest.format, 'medmask-model/1');
    assert.equal(manifest.model, 'model.onnx');
    const card = JSON.parse(readFileSync(join(dir, 'card.json'), 'utf8')) as { name: string; metrics: { heldout: Record<string, unknown> } };
    assert.equal(card.name, manifest.name);
    assert.ok(card.metrics.heldout, `${manifest.name}: card without held-out metrics`);
    for (const f of readdirSync(dir)) total += statSync(join(dir, f)).size;
  }
  assert.ok(total <= 25 * 1024 * 1024, `zoo is ${total} bytes`);
});

// 32 fresh chest phantoms, 8 per lesion label, from seeds the trainer's data sets never drew
// (theirs come from caseSeed(1001 | 2002, i)). The demo classifiers learnt lesion presence.
const chest = CHEST_LABELS.flatMap((label, k) => Array.from({ length: 8 }, (_, i) => chestPhantom({ seed: 770_000 + 100 * k + i, label, size: 256 })));

for (const name of ['demo-resnet', 'demo-densenet', 'demo-efficientnet']) {
  test(`${name} loads through the runtime and classifies fresh chest phantoms`, async () => {
    const m = classifiers.find((c) => c.manifest.name === name);
    assert.ok(m, `${name} is in models/demo`);
    const manifest = await readManifest(join(m.dir, 'model.json'));
    assert.equal(manifest.task, 'classify');
    if (manifest.task !== 'classify') return;
    assert.deepEqual(manifest.classes, ['healthy', 'abnormal']);
    assert.equal(manifest.preprocess?.channels, 'grey-to-rgb');
    const [model] = await loadEnsemble([m.dir], { threads: 2 });
    try {
      // The manifest names a candidate CAM target: the runtime's default (the tensor the global
      // pooling reads), except the DenseNet's, pinned before its ReLU (see its card); global
      // pooling → (dropout) → linear after it.
      const s = model!.session;
      const cand = findTargetCandidates(s.model).find((c) => c.tensor === manifest.cam?.target);
      assert.ok(cand, `${manifest.cam?.target} is a candidate`);
      if (name === 'demo-densenet') {
        assert.deepEqual(cand.activations, ['Relu']);
        assert.equal(defaultTarget(s.model), cand.pooledInput);
      } else assert.equal(defaultTarget(s.model), manifest.cam?.target);
      assert.equal(s.target, manifest.cam?.target);
      const ops = s.headDescription.nodes.map((n) => n.op);
      assert.ok(ops.includes('GlobalAveragePool') && ops.at(-1) === 'Gemm', ops.join(' → '));
      let correct = 0;
      let healthyRight = 0;
      for (const p of chest) {
        const vol = createVolume([256, 256, 1], 'uint8', { data: p.image, meta: { source: 'phantom' } });
        const pass = await runModel(model!, vol);
        assert.equal(pass.activation.shape.length, 4);
        assert.ok(pass.activation.shape[2]! >= 8 && pass.activation.shape[3]! >= 8, `CAM grid ${pass.activation.shape}`);
        const probs = [...pass.probabilities];
        const pred = probs.indexOf(Math.max(...probs));
        const truth = p.label === 'healthy' ? 0 : 1;
        if (pred === truth) correct++;
        if (truth === 0 && pred === 0) healthyRight++;
      }
      // Calling every image abnormal scores 0.75 here and 0 on the healthy ones; the cards
      // report >= 0.9 on 400 held-out images.
      assert.ok(correct / chest.length >= 0.875, `${name}: ${correct}/${chest.length} correct`);
      assert.ok(healthyRight >= 6, `${name}: ${healthyRight}/8 healthy images called healthy`);
    } finally {
      await releaseEnsemble([model!]);
    }
  });
}

test('every segmenter manifest is valid and consistent with its ONNX graph, which runs on a batch of patches', async () => {
  for (const { dir } of segmenters) {
    const m = await readManifest(join(dir, 'model.json'));
    assert.equal(m.task, 'segment');
    if (m.task !== 'segment') continue;
    assert.equal(m.input.channels, 1);
    assert.ok(m.spacing && m.spacing.length === 3 && m.spacing.every((v) => v > 0));
    assert.equal(m.preprocess?.intensity?.mode, 'ct-window');
    assert.ok(m.output?.activation === 'softmax' || m.output?.activation === 'sigmoid');
    assert.deepEqual(Object.keys(m.labels), ['1', '2', '3', '4', '5', '6', '7', '8', '9']);
    assert.deepEqual(Object.values(m.labels), ORGANS);
    const s = await ort.InferenceSession.create(join(dir, m.model), { intraOpNumThreads: 2, interOpNumThreads: 1 });
    try {
      assert.deepEqual(s.inputNames, [m.input.name]);
      assert.deepEqual(s.outputNames, [m.output?.name]);
      // Two patches: the batch dimension is dynamic; 10 channels for softmax (background + 9).
      const [px, py, pz] = m.input.patch;
      const out = await s.run({ [m.input.name!]: new ort.Tensor('float32', new Float32Array(2 * px * py * pz), [2, 1, pz, py, px]) });
      assert.deepEqual([...out[m.output!.name!]!.dims], [2, m.output?.activation === 'softmax' ? 10 : 9, pz, py, px]);
    } finally {
      await s.release();
    }
  }
});

function meanOrganDice(pred: Uint8Array, truth: Uint8Array): number {
  const d: number[] = [];
  for (let c = 1; c <= ORGANS.length; c++) {
    let inter = 0, na = 0, nb = 0;
    for (let v = 0; v < pred.length; v++) {
      const x = pred[v] === c, y = truth[v] === c;
      if (x) na++;
      if (y) nb++;
      if (x && y) inter++;
    }
    if (nb) d.push((2 * inter) / (na + nb));
  }
  return d.reduce((s, v) => s + v, 0) / d.length;
}

test('each segmenter segments a fresh abdominal phantom through the runtime; the three disagree', async () => {
  // A case from a seed the trainer never used (its sets come from caseSeed(3003 | 4004, i)).
  const p = abdomenPhantom({ seed: 880_001, size: 96, source: 'btcv' });
  const preds: Uint8Array[] = [];
  for (const { dir, manifest } of segmenters) {
    const seg = await Segmenter.load(dir, { threads: 2 });
    try {
      const labels = (await seg.predict(p.image, { overlap: 0.5, batch: 2 })).labelMap();
      assert.equal(labels.length, p.truth.data.length);
      const dice = meanOrganDice(labels, p.truth.data);
      // The cards report mean organ Dice >= 0.7 on 10 held-out cases; one case, so a little slack.
      assert.ok(dice >= 0.65, `${manifest.name}: mean organ Dice ${dice.toFixed(3)} on a fresh phantom`);
      preds.push(labels);
    } finally {
      await seg.release();
    }
  }
  for (let a = 0; a < preds.length; a++) for (let b = a + 1; b < preds.length; b++) {
    let diff = 0;
    for (let v = 0; v < preds[a]!.length; v++) if (preds[a]![v] !== preds[b]![v]) diff++;
    assert.ok(diff > 0, `${segmenters[a]!.manifest.name} and ${segmenters[b]!.manifest.name} predict the same labels`);
  }
});
