/**
 * `medmask explain` through the CLI, in-process: maps against the torch autograd fixtures end to
 * end (image file → preprocessing → onnxruntime → head gradient → XGrad-CAM → .npy), output
 * files, batching, folders, Monte Carlo Dropout, and the bad-input list.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import sharp from 'sharp';
import { softmax } from '../../src/core/uncertainty/mc-dropout.js';
import { createVolume, type Volume } from '../../src/core/volume.js';
import { writeVolume } from '../../src/io/index.js';
import { decodeNpy } from '../../src/io/npy.js';
import type { ExplainRunSummary, ImageModelResult } from '../../src/pipeline/explain.js';
import { camModelPath, camTensor, correlation, relErr } from '../helpers/cam-fixtures.js';
import { cliInProcess } from '../helpers/cli-in-process.js';
import { noPoolingModel, unsupportedHeadModel } from '../helpers/onnx-build.js';

const dir = mkdtempSync(join(tmpdir(), 'medmask-explain-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Run the CLI in this process; capture stdout and stderr. */
const cli = cliInProcess;

const CLASSES = ['healthy', 'nodule', 'consolidation', 'cavity'];

/** A model folder: the fixture .onnx as model.onnx plus a manifest. */
function modelDir(name: string, fixture: string, extra: Record<string, unknown> = {}): string {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  copyFileSync(camModelPath(fixture), join(d, 'model.onnx'));
  writeFileSync(
    join(d, 'model.json'),
    JSON.stringify({
      format: 'medmask-model/1', name, task: 'classify', model: 'model.onnx',
      input: { name: 'input', height: 128, width: 96, channels: 3 },
      preprocess: { resize: 'stretch', channels: 'keep', intensity: { mode: 'none' } },
      classes: CLASSES,
      mc: { dropout: 0.3, samples: 8 },
      ...extra,
    }),
  );
  return d;
}

/** The fixture input tensor i (1×3×128×96) as a 96×128 float RGB NIfTI image, so preprocessing is the identity. */
async function fixtureImage(i: number): Promise<string> {
  const t = camTensor(`input${i}`);
  const [C, H, W] = t.shape as [number, number, number];
  const data = new Float32Array(C * H * W);
  for (let c = 0; c < C; c++) for (let p = 0; p < H * W; p++) data[p * C + c] = t.data[c * H * W + p]!;
  const v = createVolume([W, H, 1], 'float32', { components: C, data: data as never }) as Volume;
  const path = join(dir, `input${i}.nii`);
  await writeVolume(v, path);
  return path;
}

const npy = (p: string) => decodeNpy(readFileSync(p), p);

/** DenseNet's norm5 output before the ReLU of forward(): a pre-activation candidate, pinned by cam.target. */
const DENSENET_NORM5 = { cam: { target: '/features/norm5/BatchNormalization_output_0' } };

test('end to end, maps and probabilities match torch autograd (ResNet, DenseNet at norm5 by cam.target; XGrad-CAM, Grad-CAM)', async () => {
  const img = await fixtureImage(0);
  for (const [model, target, classes] of [
    ['resnet', 'layer4[-1]', [2, 0, 1]],
    ['densenet', 'features[-1]', [2, 1, 3]],
  ] as const) {
    const md = modelDir(`ref-${model}`, model, model === 'densenet' ? DENSENET_NORM5 : {});
    for (const method of ['xgradcam', 'gradcam'] as const) {
      const out = join(dir, `ref-${model}-${method}`);
      const r = await cli('explain', '--model', md, '--image', img, '--out', out, '--class', classes.join(','), '--method', method, '--threads', '2');
      assert.equal(r.code, 0, r.err);
      const res = JSON.parse(readFileSync(join(out, 'input0', `ref-${model}.json`), 'utf8')) as ImageModelResult;
      const logits = camTensor(`${model}/${target}/input0/logits`).data;
      assert.ok(relErr(Object.values(res.probabilities), softmax(logits)) < 1e-4, `${model} probabilities`);
      assert.deepEqual(res.maps.map((m) => m.index), [...classes]);
      for (const m of res.maps) {
        const ref = camTensor(`${model}/${target}/input0/class${m.index}/${method}`).data;
        const raw = npy(join(out, m.files.raw));
        assert.deepEqual(raw.shape, [res.activationShape[1], res.activationShape[2]]);
        assert.ok(relErr(raw.data, ref) < 1e-3, `${model} ${method} class ${m.index}: raw map rel. error ${relErr(raw.data, ref)}`);
        if (Math.max(...ref) > 0) assert.ok(correlation(raw.data, ref) > 0.999);
        const act = npy(join(out, m.files.activation));
        const mx = Math.max(...ref);
        const mn = Math.min(...ref);
        if (mx > mn) assert.ok(relErr(act.data, Array.from(ref, (v) => (v - mn) / (mx - mn))) < 1e-3, 'normalised map');
        const full = npy(join(out, m.files.image));
        assert.deepEqual(full.shape, [128, 96]);
        assert.ok(Math.max(...full.data) <= 1 && Math.min(...full.data) >= 0);
      }
    }
  }
});

test('letterbox: maps and overlays come back at the image size; files as documented', async () => {
  const md = modelDir('lb', 'resnet', { preprocess: { resize: 'letterbox', channels: 'grey-to-rgb', intensity: { mode: 'mean-std', mean: [0.5], std: [0.25], scale: 255 } } });
  const grey = new Uint8Array(200 * 60);
  for (let y = 0; y < 60; y++) for (let x = 0; x < 200; x++) grey[y * 200 + x] = (x + 3 * y) % 256;
  const img = join(dir, 'wide.png');
  await sharp(grey, { raw: { width: 200, height: 60, channels: 1 } }).png().toFile(img);
  const out = join(dir, 'lb-out');
  const r = await cli('explain', '--model', md, '--image', img, '--out', out);
  assert.equal(r.code, 0, r.err);
  const res = JSON.parse(readFileSync(join(out, 'wide', 'lb.json'), 'utf8')) as ImageModelResult;
  // 200×60 into 96×128: s = min(96/200, 128/60) = 0.48 → 96×29 at y = ⌊(128 − 29)/2⌋ = 49
  assert.deepEqual(res.geometry.box, { x: 0, y: 49, width: 96, height: 29 });
  const m = res.maps[0]!;
  assert.equal(m.index, res.predicted.index);
  assert.deepEqual(npy(join(out, m.files.image)).shape, [60, 200]);
  const meta = await sharp(join(out, m.files.overlay!)).metadata();
  assert.deepEqual([meta.width, meta.height, meta.channels], [200, 60, 3]);
  assert.ok(!existsSync(join(out, `wide/lb.${m.name}.std.npy`)), 'no MC, no std map');
});

test('a folder: batches give the same results as single images, --json summary, progress, a corrupt image is skipped and reported', async () => {
  const md = modelDir('fold', 'efficientnet', { preprocess: { intensity: { mode: 'min-max' } } });
  const imgs = join(dir, 'folder');
  mkdirSync(join(imgs, 'sub'), { recursive: true });
  for (let i = 0; i < 5; i++) {
    const px = new Uint8Array(40 * 50 * 3).map((_, k) => (k * (i + 3) * 7919) % 251);
    await sharp(px, { raw: { width: 40, height: 50, channels: 3 } }).png().toFile(join(imgs, i < 3 ? `img${i}.png` : `sub/img${i}.png`));
  }
  const runs: ExplainRunSummary[] = [];
  for (const batch of ['1', '3']) {
    const r = await cli('explain', '--model', md, '--image', imgs, '--out', join(dir, `fold-${batch}`), '--batch', batch, '--json', '--no-overlay');
    assert.equal(r.code, 0, r.err);
    runs.push(JSON.parse(r.out) as ExplainRunSummary);
  }
  assert.equal(runs[0]!.explained, 5);
  assert.deepEqual(runs[0]!.results.map((x) => x.image.split('/').slice(-2).join('/')), ['folder/img0.png', 'folder/img1.png', 'folder/img2.png', 'sub/img3.png', 'sub/img4.png']);
  for (let i = 0; i < 5; i++) {
    const a = runs[0]!.results[i]!.models.fold!;
    const b = runs[1]!.results[i]!.models.fold!;
    assert.equal(a.predicted, b.predicted);
    assert.ok(Math.abs(a.probability - b.probability) < 1e-5);
    const ma = npy(join(dir, 'fold-1', a.json.replace('fold.json', `fold.${a.predicted}.npy`))).data;
    const mb = npy(join(dir, 'fold-3', b.json.replace('fold.json', `fold.${b.predicted}.npy`))).data;
    assert.ok(relErr(ma, mb) < 1e-3);
  }
  assert.ok(existsSync(join(dir, 'fold-1', 'sub', 'img3', 'fold.json')));
  writeFileSync(join(imgs, 'broken.png'), 'not a png');
  const r = await cli('explain', '--model', md, '--image', imgs, '--out', join(dir, 'fold-bad'));
  assert.equal(r.code, 3);
  assert.match(r.err, /skipped .*broken\.png/);
  assert.match(r.err, /1 of 6 images could not be explained/);
  assert.match(r.err, /explain: 6\/6 \(100%.*images\/s\)|explain \[/, 'progress with images/s');
  assert.match(r.out, /explained 5 of 6 images/);
  const s = JSON.parse(readFileSync(join(dir, 'fold-bad', 'summary.json'), 'utf8')) as ExplainRunSummary;
  assert.equal(s.failed.length, 1);
});

test('head MC: seeded and reproducible, 0 ≤ MI ≤ H, rate 0 gives MI = 0 and a zero std map', async () => {
  const md = modelDir('mc', 'resnet');
  const img = await fixtureImage(1);
  const get = async (out: string, ...extra: string[]): Promise<ImageModelResult> => {
    const r = await cli('explain', '--model', md, '--image', img, '--out', join(dir, out), '--mc', '12', ...extra);
    assert.equal(r.code, 0, r.err);
    return JSON.parse(readFileSync(join(dir, out, 'input1', 'mc.json'), 'utf8')) as ImageModelResult;
  };
  const a = await get('mc-a', '--seed', '5');
  const b = await get('mc-b', '--seed', '5');
  const c = await get('mc-c', '--seed', '6');
  assert.deepEqual(a.uncertainty, b.uncertainty);
  assert.notDeepEqual(a.uncertainty, c.uncertainty);
  const u = a.uncertainty!;
  assert.equal(u.samples, 12);
  assert.equal(u.rate, 0.3);
  assert.ok(u.mutualInformation > 0 && u.mutualInformation <= u.predictiveEntropy + 1e-12);
  assert.ok(Math.abs(u.predictiveEntropy - u.expectedEntropy - u.mutualInformation) < 1e-9);
  assert.ok(a.maps[0]!.std!.max > 0);
  const z = await get('mc-z', '--dropout', '0');
  assert.ok(z.uncertainty!.mutualInformation < 1e-9);
  assert.ok(z.maps[0]!.std!.max < 1e-6);
  assert.ok(Math.abs(z.uncertainty!.meanProbability[z.predicted.name]! - z.predicted.probability) < 1e-6);
  const std = npy(join(dir, 'mc-a', a.maps[0]!.files.std!));
  assert.deepEqual(std.shape, [a.activationShape[1], a.activationShape[2]]);
});

test('--mc 0 means no Monte Carlo Dropout: the same maps as without --mc, no uncertainty, no std maps', async () => {
  const md = modelDir('mc0', 'resnet');
  const img = await fixtureImage(1);
  const run = async (out: string, ...extra: string[]): Promise<ImageModelResult> => {
    const r = await cli('explain', '--model', md, '--image', img, '--out', join(dir, out), ...extra);
    assert.equal(r.code, 0, r.err);
    return JSON.parse(readFileSync(join(dir, out, 'input1', 'mc0.json'), 'utf8')) as ImageModelResult;
  };
  const zero = await run('mc0-zero', '--mc', '0');
  const none = await run('mc0-none');
  assert.equal(zero.uncertainty, undefined);
  assert.ok(zero.maps.every((m) => m.files.std === undefined && m.std === undefined));
  assert.deepEqual(zero.probabilities, none.probabilities);
  const neg = await cli('explain', '--model', md, '--image', img, '--out', join(dir, 'mc0-neg'), '--mc', '-1');
  assert.equal(neg.code, 2, neg.err);
  assert.match(neg.err, /--mc/);
});

test('full MC runs the graph\'s Dropout; a model without Dropout nodes says to use head MC', async () => {
  const img = await fixtureImage(0);
  const md = modelDir('fullmc', 'efficientnet-mc');
  const r = await cli('explain', '--model', md, '--image', img, '--out', join(dir, 'fullmc'), '--mc', '6', '--mc-mode', 'full', '--threads', '2');
  assert.equal(r.code, 0, r.err);
  const res = JSON.parse(readFileSync(join(dir, 'fullmc', 'input0', 'fullmc.json'), 'utf8')) as ImageModelResult;
  assert.equal(res.uncertainty!.mode, 'full');
  assert.equal(res.uncertainty!.samples, 6);
  assert.ok(res.uncertainty!.mutualInformation > 0);
  const bad = await cli('explain', '--model', modelDir('nodrop', 'efficientnet'), '--image', img, '--out', join(dir, 'nodrop'), '--mc', '4', '--mc-mode', 'full');
  assert.equal(bad.code, 4);
  assert.match(bad.err, /no Dropout nodes/);
  assert.match(bad.err, /--mc-mode head/);
});

test('bad input: each a clear one-line error, a non-zero exit code and no stack trace', async () => {
  const img = await fixtureImage(0);
  const put = (name: string, bytes: Uint8Array | string): string => {
    const p = join(dir, name);
    writeFileSync(p, bytes);
    return p;
  };
  const typo = modelDir('typo', 'resnet');
  const m = JSON.parse(readFileSync(join(typo, 'model.json'), 'utf8')) as { preprocess: { intensity: Record<string, unknown> } };
  m.preprocess.intensity = { mode: 'mean_std', mean: [0.5], std: [0.2] };
  writeFileSync(join(typo, 'model.json'), JSON.stringify(m));
  const cases: [string, string[], number, RegExp][] = [
    ['no pooled 4-D activation', ['--model', put('nopool.onnx', noPoolingModel())], 4, /no pooled 4-D activation found before "logits"/],
    ['unsupported head op', ['--model', put('tanh.onnx', unsupportedHeadModel())], 4, /head node "\/Tanh_4" \(Tanh\): operator not supported[\s\S]*hint: the head evaluator supports Add, BatchNormalization/],
    ['wrong input size', ['--model', modelDir('size', 'resnet', { input: { height: 224, width: 224, channels: 3 } })], 4, /input\.height: the manifest says 224, the graph input "input" has 128/],
    ['class out of range', ['--model', modelDir('cls', 'resnet'), '--class', '7'], 2, /class 7 is out of range: the model has 4 classes \(0 healthy, 1 nodule, 2 consolidation, 3 cavity\)/],
    ['unknown class name', ['--model', modelDir('cls2', 'resnet'), '--class', 'nodul'], 2, /unknown class "nodul" \(did you mean "nodule"\?\)/],
    ['corrupt .onnx', ['--model', put('corrupt.onnx', 'garbage, not protobuf \x00\x01\x02')], 4, /corrupt\.onnx: (not a readable ONNX model|the ONNX model has no graph nodes)/],
    ['manifest typo', ['--model', typo], 4, /model\.json: preprocess\.intensity\.mode: "mean_std" is not one of mean-std, min-max, ct-window, none \(did you mean "mean-std"\?\)/],
    ['missing image', ['--model', modelDir('mi', 'resnet'), '--image', join(dir, 'nope.png')], 3, /nope\.png does not exist/],
    ['bad method', ['--model', modelDir('bm', 'resnet'), '--method', 'gradcamxx'], 2, /Allowed choices are xgradcam, gradcam, gradcampp, cam/],
    ['CAM on a head without a linear classifier after pooling', ['--model', modelDir('cam', 'densenet', DENSENET_NORM5), '--method', 'cam'], 4, /CAM needs a head of global average pooling and one linear layer/],
  ];
  for (const [what, args, code, re] of cases) {
    const full = args.includes('--image') ? args : [...args, '--image', img];
    const r = await cli('explain', ...full, '--out', join(dir, 'bad'));
    assert.equal(r.code, code, `${what}: exit ${r.code}\n${r.err}`);
    assert.match(r.err, re, what);
    assert.doesNotMatch(r.err, /\n\s+at /, `${what}: no stack trace`);
  }
});

test('--device cuda: works where the CUDA provider is installed, else an ENVIRONMENT error naming the fix', async () => {
  const img = await fixtureImage(0);
  const r = await cli('explain', '--model', modelDir('cuda', 'resnet'), '--image', img, '--out', join(dir, 'cuda'), '--device', 'cuda');
  if (r.code === 0) return;
  assert.equal(r.code, 6, r.err);
  assert.match(r.err, /error \[ENVIRONMENT\]: .*CUDA execution provider/);
  assert.match(r.err, /--device cpu/);
});
