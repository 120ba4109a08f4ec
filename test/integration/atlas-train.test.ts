/**
 * Warm-started fine-tuning (issue 16 §2) through tools/train/train3d.py --init, in a child process
 * with Debian's PyTorch (installed by the test runner when missing):
 * - 0 steps: the child's ONNX export gives the parent's ONNX outputs (onnxruntime on both files,
 *   ≤ 1e-5) — the ONNX initializers were mapped into the torch network exactly, folded BatchNorms
 *   included — and the held-out Dice of child and parent agree, so the child is accepted;
 * - labels that contradict the parent (every liver voxel relabelled spleen) move the child's
 *   predictions towards them on the training cases (spleen probability at liver voxels rises);
 * - the loop's recipe (warm start, unweighted cross-entropy + Dice, 3e-4) on two fully labelled
 *   phantoms at 40² — a coarser grid than the demo models' 96² training phantoms — raises the
 *   mean Dice on a held-out phantom of another seed (the known ground truth), so the child is
 *   accepted;
 * - without torch: an ENVIRONMENT error naming the Debian package, at once.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as ort from 'onnxruntime-node';
// @ts-expect-error plain ESM script without types
import { ensureSystemPackages } from '../../scripts/system-deps.mjs';
import { isMedmaskError } from '../../src/core/errors.js';
import { organLabel } from '../../src/core/phantom/abdomen.js';
import { readVolume, writeVolume } from '../../src/io/index.js';
import { checkTrainer, finetuneSegmenter } from '../../src/pipeline/atlas-train.js';
import { writeAbdomenDataset } from '../../src/pipeline/phantoms.js';
import { ROOT } from '../helpers/cli.js';

const UNET = join(ROOT, 'models/demo/demo-unet3d');
/** Steps of the held-out improvement test (the loop's 40 halved: the test tier's time). */
const STEPS_IMPROVE = 20;
let dir: string;
before(() => {
  ensureSystemPackages(['python3-torch', 'python3-nibabel', 'python3-onnx']);
  dir = mkdtempSync(join(tmpdir(), 'medmask-atlas-train-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Logits of an ONNX segmenter for one input [1, 1, 32, 64, 64]. */
async function logits(onnx: string, x: Float32Array): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(onnx, { intraOpNumThreads: 1 });
  try {
    const out = await s.run({ input: new ort.Tensor('float32', x, [1, 1, 32, 64, 64]) });
    return out[s.outputNames[0]!]!.data as Float32Array;
  } finally {
    await s.release();
  }
}

test('fine-tune of 0 steps reproduces the parent (ONNX vs ONNX ≤ 1e-5) and is accepted', async () => {
  const data = join(dir, 'd0');
  await writeAbdomenDataset(data, { n: 1, seed: 11, size: 40 });
  const r = await finetuneSegmenter(UNET, data, data, join(dir, 'child0'), { steps: 0, threads: 1 });
  assert.equal(r.decision, 'accepted', r.reason);
  assert.equal(r.heldout.mean_dice, r.parentHeldout.mean_dice);
  assert.ok(r.exportCheck.maxAbsDiff <= r.exportCheck.tolerance);
  // A seeded input with structure (windowed intensities in [0, 1]) through both ONNX files.
  let seed = 7;
  const x = Float32Array.from({ length: 32 * 64 * 64 }, (_, i) => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return 0.5 + 0.3 * Math.sin(i / 97) + 0.2 * (seed / 2 ** 32 - 0.5);
  });
  const a = await logits(join(UNET, 'model.onnx'), x);
  const b = await logits(join(r.modelDir, 'model.onnx'), x);
  let maxDiff = 0, maxAbs = 0;
  for (let i = 0; i < a.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(a[i]! - b[i]!));
    maxAbs = Math.max(maxAbs, Math.abs(a[i]!));
  }
  assert.ok(maxAbs > 1, 'the logits are not trivially small');
  assert.ok(maxDiff <= 1e-5, `max |parent − child| = ${maxDiff}`);
  // The child's manifest and card: the parent's name and inputs, the new training and metrics.
  const card = JSON.parse(readFileSync(join(r.modelDir, 'card.json'), 'utf8')) as { metrics: { parent_heldout: { mean_dice: number } }; training: { steps: number } };
  assert.equal(card.training.steps, 0);
  assert.equal(card.metrics.parent_heldout.mean_dice, r.parentHeldout.mean_dice);
});

test('fine-tune on labels that contradict the parent moves its predictions towards them', async () => {
  const data = join(dir, 'd1');
  await writeAbdomenDataset(data, { n: 1, seed: 12, size: 40 });
  const liver = organLabel('liver'), spleen = organLabel('spleen');
  // The contradiction: liver voxels labelled spleen, recorded as expert revisions.
  const json = JSON.parse(readFileSync(join(data, 'dataset.json'), 'utf8')) as { medmask: { cases: { case: string; provenance?: Record<string, string> }[] } };
  for (const c of json.medmask.cases) {
    const p = join(data, 'truthTr', `${c.case}.nii.gz`);
    const t = await readVolume(p);
    await writeVolume({ ...t, data: Uint8Array.from(t.data, (v) => (v === liver ? spleen : v)) }, p, { labelMap: true });
    c.provenance = { spleen: 'revised', liver: 'revised' };
  }
  writeFileSync(join(data, 'dataset.json'), JSON.stringify(json));
  const r = await finetuneSegmenter(UNET, data, data, join(dir, 'child1'), { steps: 12, lr: 3e-3, threads: 1 });
  // On the training cases, the share of true-liver voxels predicted spleen, parent vs child,
  // read from the held-out per-organ Dice the trainer reports against the contradicting labels.
  assert.ok(r.heldout.dice.spleen! > r.parentHeldout.dice.spleen! + 0.05, `spleen Dice against the contradicting labels: child ${r.heldout.dice.spleen} vs parent ${r.parentHeldout.dice.spleen}`);
  // The rule: accepted only when the held-out mean Dice is not below the parent's.
  assert.equal(r.decision, r.heldout.mean_dice >= r.parentHeldout.mean_dice ? 'accepted' : 'rejected', r.reason);
});

test('fine-tune with the loop\'s recipe raises the held-out Dice on a phantom it never saw', async (t) => {
  const train = join(dir, 'd2-train'), held = join(dir, 'd2-heldout');
  await writeAbdomenDataset(train, { n: 2, seed: 21, size: 40 });
  await writeAbdomenDataset(held, { n: 1, seed: 22, size: 40 });
  const r = await finetuneSegmenter(UNET, train, held, join(dir, 'child2'), { steps: STEPS_IMPROVE, threads: 1 });
  t.diagnostic(`held-out mean Dice ${r.parentHeldout.mean_dice} → ${r.heldout.mean_dice} (${r.trainSeconds} s of training)`);
  assert.ok(r.heldout.mean_dice > r.parentHeldout.mean_dice + 0.01, `held-out mean Dice: child ${r.heldout.mean_dice} vs parent ${r.parentHeldout.mean_dice}`);
  assert.equal(r.decision, 'accepted', r.reason);
});

test('without torch: an ENVIRONMENT error naming the package, at once', () => {
  const fake = join(dir, 'python-without-torch');
  writeFileSync(fake, '#!/bin/sh\necho \'["torch", "onnx"]\'\n');
  chmodSync(fake, 0o755);
  for (const [py, re] of [[fake, /needs python3-torch, python3-onnx: .* cannot import torch, onnx/], [join(dir, 'no-python'), /needs Python with PyTorch, and .* does not exist/]] as const) {
    assert.throws(() => checkTrainer(py), (e) => isMedmaskError(e) && e.code === 'ENVIRONMENT' && re.test(e.message) && /python3-torch/.test(`${e.message} ${e.hint}`));
  }
});
