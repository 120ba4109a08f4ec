/**
 * Mask heads end to end: the ONNX export computes what the TypeScript head computes, the CLI
 * trains one from reviewed masks (the phantom truth as the simulated expert), and annotate with
 * the head gives better lesion masks than without it on a phantom seed the head never saw.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { CHEST_PHANTOM_PIPELINE } from '../../src/core/masks/pipeline.js';
import { mulberry32 } from '../../src/core/random.js';
import { maskHeadLogits, MASK_HEAD_FORMAT, type MaskHead } from '../../src/core/train/mask-head.js';
import { readVolume } from '../../src/io/index.js';
import { annotate } from '../../src/pipeline/annotate.js';
import { evaluateRun } from '../../src/pipeline/evaluate.js';
import { writeReport } from '../../src/pipeline/report.js';
import { loadEnsemble, releaseEnsemble, runModel } from '../../src/pipeline/ensemble.js';
import { writeChestDataset } from '../../src/pipeline/phantoms.js';
import { loadMaskHead, maskHeadInput } from '../../src/pipeline/train-mask-head.js';
import { buildMaskHeadOnnx, MASK_ACTIVATION_INPUT, MASK_LOGIT_OUTPUT, MASK_PROBABILITY_OUTPUT } from '../../src/runtime/mask-head-onnx.js';
import { encodeOnnx } from '../../src/runtime/onnx-graph.js';
import { lesionDice, phantomItems, reviewedPairs } from '../../bench/loop-mask-head.bench.js';
import { ROOT } from '../helpers/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'medmask-mask-head-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const MODEL = join(ROOT, 'models/demo/demo-resnet');

test('the ONNX mask head equals the TypeScript head (logits and probabilities, ≤ 1e-6)', async () => {
  const rand = mulberry32(4);
  const C = 24, h = 5, w = 7;
  const head: MaskHead = {
    format: MASK_HEAD_FORMAT, channels: C, dropout: 0.3, bias: Math.fround(-0.4),
    mean: Array.from({ length: C }, () => Math.fround(rand())), std: Array.from({ length: C }, () => Math.fround(0.5 + rand())),
    weight: Array.from({ length: C }, () => Math.fround(0.6 * (rand() - 0.5))),
  };
  const act = Float32Array.from({ length: C * h * w }, () => 3 * rand());
  const s = await ort.InferenceSession.create(encodeOnnx(buildMaskHeadOnnx(head)));
  try {
    const r = await s.run({ [MASK_ACTIVATION_INPUT]: new ort.Tensor('float32', act, [1, C, h, w]) });
    assert.deepEqual([...r[MASK_LOGIT_OUTPUT]!.dims], [1, 1, h, w]);
    const z = r[MASK_LOGIT_OUTPUT]!.data as Float32Array;
    const p = r[MASK_PROBABILITY_OUTPUT]!.data as Float32Array;
    const ts = maskHeadLogits(head, act);
    let worst = 0;
    for (let i = 0; i < ts.length; i++) {
      worst = Math.max(worst, Math.abs(z[i]! - ts[i]!), Math.abs(p[i]! - 1 / (1 + Math.exp(-ts[i]!))));
    }
    assert.ok(worst <= 1e-6, `max difference ${worst}`);
    assert.ok(ts.some((v) => v > 0.5) && ts.some((v) => v < -0.5), 'logits of both signs were compared');
  } finally {
    await s.release();
  }
});

test('train-mask-head (CLI) from reviewed masks; annotate with the head beats the CAMs alone on a held-out seed', async (t) => {
  const pool = join(tmp, 'pool');
  const held = join(tmp, 'held');
  await writeChestDataset(pool, { n: 40, seed: 6161, size: 256, oodFraction: 0 });
  await writeChestDataset(held, { n: 36, seed: 31337, size: 256, oodFraction: 0 });
  // the simulated expert's reviewed masks: 20 lesion images of the pool, as an expert's folder
  const pairs = reviewedPairs(pool, 20);
  const reviewed = join(tmp, 'reviewed');
  mkdirSync(join(reviewed, 'masks'), { recursive: true });
  for (const p of pairs) spawnSync('cp', [p.mask, join(reviewed, 'masks')]);
  const out = join(tmp, 'head');
  const run = spawnSync(process.execPath, [join(ROOT, 'bin/medmask.js'), 'train-mask-head', '--model', MODEL, '--images', join(pool, 'images'), '--masks', join(reviewed, 'masks'), '--roi', join(pool, 'lungs'), '--out', out, '--json'], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  const res = JSON.parse(run.stdout) as { images: number; lesionImages: number; selfCheck: { maxAbsDiff: number } };
  assert.equal(res.images, 20);
  assert.equal(res.lesionImages, 20);
  for (const f of ['mask-head.json', 'mask-head.onnx', 'card.md', 'card.json', 'loss.png']) assert.ok(existsSync(join(out, f)), f);
  assert.ok(res.selfCheck.maxAbsDiff < 1e-4);

  // the written full model (image in) gives the TypeScript head's logits on a held-out image
  const loaded = await loadMaskHead(out);
  assert.equal(loaded.trainedOn?.images, 20);
  assert.equal(loaded.input?.height, 256, 'the manifest names the input of mask-head.onnx');
  // the default head reads a hypercolumn: the CAM target and ResNet's stride-8 layer, resized to 32 × 32
  assert.deepEqual(loaded.head.layers, [{ tensor: '/layer2/layer2.0/relu_1/Relu_output_0', channels: 32 }]);
  assert.equal(loaded.head.channels, 128 + 32);
  const [m] = await loadEnsemble([MODEL], { extraOutputs: { [loaded.parent.sha256]: loaded.head.layers!.map((l) => l.tensor) } });
  const s = await ort.InferenceSession.create(readFileSync(join(out, 'mask-head.onnx')));
  try {
    const pass = await runModel(m!, await readVolume(join(held, 'images/img_00003.png')));
    const r = await s.run({ [s.inputNames[0]!]: new ort.Tensor('float32', pass.pre.data, pass.pre.dims) });
    const z = r[MASK_LOGIT_OUTPUT]!.data as Float32Array;
    const ts = maskHeadLogits(loaded.head, maskHeadInput(loaded.head, pass).data);
    assert.equal(z.length, ts.length);
    assert.equal(ts.length, 32 * 32);
    for (let i = 0; i < ts.length; i++) assert.ok(Math.abs(z[i]! - ts[i]!) < 1e-4, `cell ${i}: ${z[i]} vs ${ts[i]}`);
  } finally {
    await s.release();
    await releaseEnsemble([m!]);
  }

  const items = await phantomItems(held, true);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const runs: Record<string, number[]> = {};
  for (const [name, heads] of [['cam', []], ['head', [out]]] as const) {
    const dir = join(tmp, `run-${name}`);
    await annotate({ models: [MODEL], items, out: dir, mcSamples: 4, fresh: true, pipeline: CHEST_PHANTOM_PIPELINE, maskHeads: [...heads] });
    runs[name] = await lesionDice(dir, held);
  }
  const withHead = mean(runs.head!);
  const without = mean(runs.cam!);
  t.diagnostic(`mean lesion Dice over ${items.length} images: with the head ${withHead.toFixed(3)}, without ${without.toFixed(3)}`);
  assert.ok(withHead > without, `mean lesion Dice with the head ${withHead.toFixed(3)}, without ${without.toFixed(3)} (${items.length} images)`);
  const r0 = readFileSync(join(tmp, 'run-head/results.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { uncertainty: { headStd?: number; headDisagreement?: number; expectedGain?: number }; maskTrace?: { step: string; pixels: number }[] });
  // the chest pipeline's head-cut runs with the heads' mean map, and is skipped (absent from the trace) without heads
  const steps = (run: string) => readFileSync(join(tmp, run, 'results.jsonl'), 'utf8').trim().split('\n').map((l) => ((JSON.parse(l) as { maskTrace?: { step: string }[] }).maskTrace ?? []).map((t) => t.step));
  assert.ok(steps('run-head').every((st) => !st.length || st.includes('head-cut')), 'every lesion mask built with the head went through head-cut');
  assert.ok(steps('run-head').some((st) => st.includes('head-cut')));
  assert.ok(steps('run-cam').every((st) => !st.includes('head-cut')), 'without heads head-cut is not in the trace');
  // prune-thin and grow-bright (withHeads) likewise: after the opening with the heads, absent without them
  assert.ok(steps('run-head').every((st) => !st.length || st.indexOf('grow-bright') > st.indexOf('prune-thin') && st.indexOf('prune-thin') > st.indexOf('open')), 'every lesion mask built with the head was pruned, then grown, after the opening');
  assert.ok(steps('run-cam').every((st) => !st.includes('prune-thin') && !st.includes('grow-bright')), 'without heads prune-thin and grow-bright are not in the trace');
  assert.ok(r0.every((r) => r.uncertainty.headStd! >= 0 && r.uncertainty.expectedGain! >= 0), 'the head MC spread and the expected gain are reported');
  assert.ok(r0.some((r) => r.uncertainty.headStd! > 0), 'head MC Dropout has a spread');
  // the report: heads named with their reviewed masks, and Dice versus masks reviewed
  await evaluateRun(join(tmp, 'run-head'), held);
  const html = readFileSync(await writeReport(join(tmp, 'run-head')), 'utf8');
  assert.match(html, /1 mask head\(s\), trained on 20 reviewed masks/);
  assert.match(html, /Mean lesion Dice versus reviewed masks/);
});
