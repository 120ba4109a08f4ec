/**
 * `medmask train-head` end to end on the torchvision fixture backbones (random weights): a head
 * trained on a visual rule the backbones never saw beats chance on held-out images; the written
 * ONNX gives the TypeScript head's probabilities in onnxruntime and loads in medmask's
 * ClassifierSession (explain's head evaluator agrees); an interrupted run resumes from the feature
 * cache; bad input gives clear errors, through the CLI without a stack trace.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import pkg from 'onnx-proto';
import sharp from 'sharp';
import { isMedmaskError, MedmaskError } from '../../src/core/errors.js';
import { forwardHead, headGradient } from '../../src/core/explain/head.js';
import { preprocessImage } from '../../src/core/preprocess.js';
import { foldStandardization, headForward, initHeadParams, softmaxRows } from '../../src/core/train/head-net.js';
import { auroc, balancedAccuracy } from '../../src/core/train/metrics.js';
import { dropoutSite } from '../../src/core/uncertainty/mc-dropout.js';
import { mulberry32 } from '../../src/core/random.js';
import { createVolume } from '../../src/core/volume.js';
import { readVolume, writeVolume } from '../../src/io/index.js';
import { trainHead, type TrainHeadOptions, type TrainHeadResult } from '../../src/pipeline/train-head.js';
import { attachHead, buildFeatureExtractor, FEATURES_OUTPUT, resolveFeatureTensors } from '../../src/runtime/head-onnx.js';
import { decodeOnnx, defaultTarget, encodeOnnx } from '../../src/runtime/onnx-graph.js';
import { ClassifierSession } from '../../src/runtime/session.js';
import { camModelPath } from '../helpers/cam-fixtures.js';
import { writeStripesDataset } from '../helpers/stripes-dataset.js';

const { onnx } = pkg;
const ROOT = new URL('../../', import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), 'medmask-train-head-'));
const TRAIN = join(tmp, 'train');
const HELD_OUT = join(tmp, 'test');
let heldOutLabels: string[] = [];
let main: TrainHeadResult;

function cli(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/run.ts'), ...args], { encoding: 'utf8', cwd: ROOT });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

function gap(a: Float32Array, dims: readonly number[]): Float64Array {
  const [n, c] = [dims[0]!, dims[1]!];
  const inner = a.length / (n * c);
  const out = new Float64Array(n * c);
  for (let j = 0; j < n * c; j++) {
    let s = 0;
    for (let i = j * inner; i < (j + 1) * inner; i++) s += a[i]!;
    out[j] = s / inner;
  }
  return out;
}

const base = (out: string, extra: Partial<TrainHeadOptions> = {}): TrainHeadOptions => ({
  backbone: camModelPath('resnet'),
  labels: join(TRAIN, 'labels.csv'),
  out,
  threads: 2,
  ...extra,
});

before(async () => {
  await writeStripesDataset(TRAIN, { n: 300, seed: 1 });
  heldOutLabels = await writeStripesDataset(HELD_OUT, { n: 100, seed: 99 });
  main = await trainHead(base(join(tmp, 'main')));
});

after(() => rmSync(tmp, { recursive: true, force: true }));

test('a head trained on stripe direction (a task the random backbone never saw) beats chance on held-out images', async () => {
  assert.deepEqual(main.classes, ['horizontal', 'vertical']);
  assert.equal(main.featureDim, 512);
  const man = JSON.parse(readFileSync(main.files!.manifest, 'utf8')) as { input: { height: number; width: number; channels: number; name: string }; preprocess: object; classes: string[] };
  const session = await ort.InferenceSession.create(main.files!.model);
  const scores: number[] = [];
  const predicted: number[] = [];
  const truth = heldOutLabels.map((l) => man.classes.indexOf(l));
  for (let i = 0; i < heldOutLabels.length; i++) {
    const pre = preprocessImage(await readVolume(join(HELD_OUT, `images/img_${String(i).padStart(3, '0')}.png`)), man.input, man.preprocess);
    const r = await session.run({ [man.input.name]: new ort.Tensor('float32', pre.data, pre.dims) });
    const p = softmaxRows(Float64Array.from(r.logits!.data as Float32Array), 2);
    scores.push(p[1]!);
    predicted.push(p[1]! > 0.5 ? 1 : 0);
  }
  await session.release();
  const a = auroc(scores, truth);
  const ba = balancedAccuracy(predicted, truth, 2);
  assert.ok(a > 0.85, `held-out AUROC ${a} (chance 0.5)`);
  assert.ok(ba > 0.7, `held-out balanced accuracy ${ba} (chance 0.5)`);
  // the card reports the validation metrics of the run
  const card = JSON.parse(readFileSync(main.files!.cardJson, 'utf8')) as { metrics: { validation: { accuracy: number; auroc: number } }; training: { history: unknown[] } };
  assert.equal(card.metrics.validation.accuracy, main.training!.validation!.accuracy);
  assert.equal(card.metrics.validation.auroc, main.training!.validation!.auroc);
  assert.equal(card.training.history.length, main.training!.epochsRun);
  assert.match(readFileSync(main.files!.card, 'utf8'), /\| AUROC[^|]*\| [01]\.\d{3} \|/);
  const png = await sharp(main.files!.plot).metadata();
  assert.equal(png.format, 'png');
  assert.equal(png.width, 720);
});

test('the written ONNX gives the TypeScript head\'s probabilities, and loads in ClassifierSession for explain', async () => {
  const man = JSON.parse(readFileSync(main.files!.manifest, 'utf8')) as { input: { height: number; width: number; channels: number }; preprocess: object; cam: { target: string }; mc: { dropout: number } };
  assert.equal(man.cam.target, main.target);
  assert.equal(man.mc.dropout, 0.3);
  const s = await ClassifierSession.create(main.files!.model, { target: man.cam.target, threads: 2 });
  assert.equal(defaultTarget(s.model), main.target, 'the new model has the same default CAM target');
  assert.equal(dropoutSite(s.head), '/medmask_head/dropout0');
  let worst = 0;
  for (let i = 0; i < 20; i++) {
    const pre = preprocessImage(await readVolume(join(HELD_OUT, `images/img_${String(i).padStart(3, '0')}.png`)), man.input, man.preprocess);
    const run = await s.run(pre.data, pre.dims);
    const ortP = softmaxRows(Float64Array.from(run.logits), 2);
    const tsP = softmaxRows(headForward(main.head!, gap(run.activation, run.activationDims), 1).logits, 2);
    const explainP = softmaxRows(forwardHead(s.head, { shape: run.activationDims, data: Float64Array.from(run.activation) }).output.data, 2);
    for (let k = 0; k < 2; k++) worst = Math.max(worst, Math.abs(ortP[k]! - tsP[k]!), Math.abs(explainP[k]! - tsP[k]!));
    const g = headGradient(s.head, { shape: run.activationDims, data: Float64Array.from(run.activation) });
    assert.equal(g.gradient.length, run.activation.length);
  }
  assert.ok(worst < 1e-5, `max |Δp| ${worst}`);
  assert.ok(main.selfCheck!.maxAbsDiff < 1e-5);
  await s.release();
});

test('heads written onto every fixture family (hidden layer or not) match the TypeScript forward pass in onnxruntime', async () => {
  const rand = mulberry32(2);
  const x = Float32Array.from({ length: 2 * 3 * 128 * 96 }, () => rand());
  for (const name of ['resnet', 'densenet', 'efficientnet']) {
    const model = decodeOnnx(readFileSync(camModelPath(name)));
    const ft = resolveFeatureTensors(model);
    const ex = await ort.InferenceSession.create(encodeOnnx(buildFeatureExtractor(model, ft.pooled)));
    const f = (await ex.run({ [ex.inputNames[0]!]: new ort.Tensor('float32', x, [2, 3, 128, 96]) }))[FEATURES_OUTPUT]!;
    await ex.release();
    const C = f.dims[1] as number;
    for (const hidden of [0, 6]) {
      const p = initHeadParams({ inputs: C, hidden, classes: 3 }, rand);
      // with a standardisation written as Sub / Div nodes; folded into the TS layers for the reference
      const mean = Float64Array.from({ length: C }, () => rand());
      const std = Float64Array.from({ length: C }, () => 0.5 + rand());
      const bytes = encodeOnnx(attachHead(model, { pooled: ft.pooled, layers: p.layers, dropout: 0.2, ...(hidden ? { standardize: { mean, std } } : {}) }));
      const s = await ClassifierSession.create(bytes);
      assert.equal(s.target, ft.target, `${name}: default target kept`);
      const run = await s.run(x, [2, 3, 128, 96]);
      const ts = headForward(hidden ? foldStandardization(p, mean, std) : p, Float64Array.from(f.data as Float32Array), 2).logits;
      const scale = Math.max(...ts.map(Math.abs));
      for (let i = 0; i < ts.length; i++) assert.ok(Math.abs(ts[i]! - run.logits[i]!) < 1e-5 * Math.max(1, scale), `${name} hidden ${hidden}: ${ts[i]} vs ${run.logits[i]}`);
      await s.release();
    }
  }
});

test('a run interrupted after extraction resumes from the cache without running the backbone again', async () => {
  const dir = join(tmp, 'resume');
  await writeStripesDataset(dir, { n: 40, seed: 5 });
  const out = join(tmp, 'resume-out');
  const opts = { ...base(out), labels: join(dir, 'labels.csv'), extractBatch: 8, epochs: 5 };
  let runs = 0;
  const ac = new AbortController();
  await assert.rejects(
    trainHead({ ...opts, signal: ac.signal, onBackboneRun: (n) => (runs += n), onProgress: (e) => e.phase === 'train' && ac.abort() }),
    (e: unknown) => (e as Error).name === 'AbortError',
  );
  assert.equal(runs, 40);
  assert.ok(!existsSync(join(out, 'model.onnx')), 'nothing written when interrupted');
  runs = 0;
  const r = await trainHead({ ...opts, onBackboneRun: (n) => (runs += n) });
  assert.equal(runs, 0, 'no backbone run on resume');
  assert.deepEqual([r.extraction.cached, r.extraction.extracted], [40, 0]);
  assert.ok(existsSync(r.files!.model));

  // interrupted half-way through extraction: only the rest is extracted
  const out2 = join(tmp, 'resume-out2');
  const ac2 = new AbortController();
  runs = 0;
  await assert.rejects(trainHead({ ...opts, out: out2, signal: ac2.signal, onBackboneRun: (n) => { runs += n; if (runs >= 16) ac2.abort(); } }), (e: unknown) => (e as Error).name === 'AbortError');
  assert.equal(runs, 16);
  runs = 0;
  const r2 = await trainHead({ ...opts, out: out2, onBackboneRun: (n) => (runs += n) });
  assert.deepEqual([runs, r2.extraction.cached, r2.extraction.extracted], [24, 16, 24]);
  // the same features either way: the cached and the freshly extracted head are identical
  assert.deepEqual(r2.head!.data, r.head!.data);

  // an image changed on disk is extracted again, alone
  const img = join(dir, 'images/img_007.png');
  writeFileSync(img, await sharp(Buffer.alloc(96 * 128, 200), { raw: { width: 96, height: 128, channels: 1 } }).png().toBuffer());
  runs = 0;
  const r3 = await trainHead({ ...opts, onBackboneRun: (n) => (runs += n) });
  assert.deepEqual([runs, r3.extraction.extracted], [1, 1]);
});

test('a split column (as medmask phantoms writes) is honoured: its val rows validate, its test rows are never read', async () => {
  const dir = join(tmp, 'split');
  await writeStripesDataset(dir, { n: 30, seed: 6 });
  const lines = readFileSync(join(dir, 'labels.csv'), 'utf8').trim().split('\n');
  const role = (i: number): string => (i % 5 === 0 ? 'test' : i % 5 === 1 ? 'val' : 'train');
  writeFileSync(join(dir, 'split.csv'), [`${lines[0]},split`, ...lines.slice(1).map((l, i) => `${l},${role(i)}`)].join('\n') + '\n');
  let runs = 0;
  const r = await trainHead({ ...base(join(tmp, 'split-out')), labels: join(dir, 'split.csv'), epochs: 3, onBackboneRun: (n) => (runs += n) });
  assert.equal(runs, 24, 'test rows are not extracted');
  assert.equal(r.training!.validation!.images, 6);
  assert.equal(r.training!.train.images, 18);
  const card = JSON.parse(readFileSync(r.files!.cardJson, 'utf8')) as { data: { split: unknown } };
  assert.deepEqual(card.data.split, { column: 'split', testRowsLeftOut: 6 });
  // --split-column none: a seeded split of all 30 rows instead
  const all = await trainHead({ ...base(join(tmp, 'split-out2')), labels: join(dir, 'split.csv'), epochs: 2, splitColumn: false });
  assert.equal(all.extraction.images, 30);
  writeFileSync(join(dir, 'badsplit.csv'), readFileSync(join(dir, 'split.csv'), 'utf8').replace(',val\n', ',holdout\n'));
  await assert.rejects(trainHead({ ...base(join(tmp, 'split-out3')), labels: join(dir, 'badsplit.csv') }), expectError('DATASET_INVALID', /split "holdout" in column "split"/, /--split-column none/));
});

function expectError(code: string, ...patterns: RegExp[]): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(isMedmaskError(e) && e instanceof MedmaskError, `expected a MedmaskError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    for (const p of patterns) assert.match(`${e.message}\n${e.hint ?? ''}`, p);
    return true;
  };
}

/** A classifier without any pooling: input → Flatten → Gemm. */
function mlpBackbone(path: string): void {
  const F = 3 * 16 * 16;
  const w = new Float32Array(2 * F).fill(0.01);
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 14 }],
    graph: {
      name: 'mlp',
      node: [
        { opType: 'Flatten', name: '/Flatten', input: ['input'], output: ['flat'], attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 1 }] },
        { opType: 'Gemm', name: '/fc/Gemm', input: ['flat', 'W'], output: ['logits'], attribute: [{ name: 'transB', type: onnx.AttributeProto.AttributeType.INT, i: 1 }] },
      ],
      initializer: [{ name: 'W', dataType: onnx.TensorProto.DataType.FLOAT, dims: [2, F], rawData: new Uint8Array(w.buffer) }],
      input: [{ name: 'input', type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 1 }, { dimValue: 3 }, { dimValue: 16 }, { dimValue: 16 }] } } } }],
      output: [{ name: 'logits', type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 1 }, { dimValue: 2 }] } } } }],
    },
  });
  writeFileSync(path, onnx.ModelProto.encode(model).finish());
}

test('bad input: unknown class, one class only, an image the backbone cannot take, no usable target tensor, bad options', async () => {
  const dir = join(tmp, 'bad');
  await writeStripesDataset(dir, { n: 12, seed: 3 });
  const csv = readFileSync(join(dir, 'labels.csv'), 'utf8');
  const out = join(tmp, 'bad-out');

  writeFileSync(join(dir, 'typo.csv'), csv.replace(/horizontal\n/, 'horizontl\n'));
  await assert.rejects(
    trainHead({ ...base(out), labels: join(dir, 'typo.csv'), classes: ['horizontal', 'vertical'] }),
    expectError('DATASET_INVALID', /unknown class "horizontl"/, /line \d+/, /did you mean "horizontal"/),
  );

  writeFileSync(join(dir, 'one.csv'), csv.replace(/vertical/g, 'horizontal'));
  await assert.rejects(trainHead({ ...base(out), labels: join(dir, 'one.csv') }), expectError('DATASET_INVALID', /all 12 rows have the class "horizontal"/, /at least 2 classes/));

  await writeVolume(createVolume([20, 20, 5], 'int16'), join(dir, 'images/ct.nii.gz'));
  writeFileSync(join(dir, 'vol.csv'), csv + 'images/ct.nii.gz,vertical\n');
  await assert.rejects(
    trainHead({ ...base(out), labels: join(dir, 'vol.csv'), cache: join(tmp, 'bad-cache') }),
    expectError('DATASET_INVALID', /ct\.nii\.gz cannot be fed to the backbone/, /5 slices/, /line 14/),
  );

  const mlp = join(tmp, 'mlp.onnx');
  mlpBackbone(mlp);
  await assert.rejects(trainHead({ ...base(out), backbone: mlp, labels: join(dir, 'labels.csv') }), expectError('MODEL_INVALID', /no usable target tensor/, /--target/));
  await assert.rejects(trainHead({ ...base(out), target: 'no/such/tensor', labels: join(dir, 'labels.csv') }), expectError('MODEL_INVALID', /"no\/such\/tensor" is not in the backbone graph/, /model inspect/));
  await assert.rejects(
    trainHead({ ...base(out), target: '/Flatten_output_0', labels: join(dir, 'labels.csv'), cache: join(tmp, 'bad-cache') }),
    expectError('MODEL_INVALID', /"\/Flatten_output_0" has shape \[\d+, 512\]/, /4-D activation/),
  );
  await assert.rejects(trainHead({ ...base(out), val: 1.5 }), expectError('USAGE', /--val 1.5/));
});

test('CLI: train-head runs with --json, and bad input exits non-zero with one clear line and no stack trace', async () => {
  const dir = join(tmp, 'cli');
  await writeStripesDataset(dir, { n: 24, seed: 4 });
  const out = join(tmp, 'cli-out');
  const ok = cli('train-head', '--backbone', camModelPath('densenet'), '--labels', join(dir, 'labels.csv'), '--out', out, '--epochs', '3', '--hidden', '4', '--json');
  assert.equal(ok.code, 0, ok.err);
  const r = JSON.parse(ok.out) as TrainHeadResult;
  assert.equal(r.extraction.extracted, 24);
  assert.equal(r.training!.epochsRun, 3);
  assert.ok(!('head' in r));
  for (const f of Object.values(r.files!)) assert.ok(existsSync(f), f);

  writeFileSync(join(dir, 'one.csv'), readFileSync(join(dir, 'labels.csv'), 'utf8').replace(/vertical/g, 'horizontal'));
  const one = cli('train-head', '--backbone', camModelPath('densenet'), '--labels', join(dir, 'one.csv'), '--out', out);
  assert.equal(one.code, 3);
  assert.match(one.err, /error \[DATASET_INVALID\]: .*all 24 rows have the class "horizontal"/);
  assert.doesNotMatch(one.err, /\n\s+at /, 'no stack trace');

  const mlp = join(tmp, 'mlp-cli.onnx');
  mlpBackbone(mlp);
  const bad = cli('train-head', '--backbone', mlp, '--labels', join(dir, 'labels.csv'), '--out', out);
  assert.equal(bad.code, 4);
  assert.match(bad.err, /error \[MODEL_INVALID\]: the backbone has no usable target tensor/);
  assert.doesNotMatch(bad.err, /\n\s+at /, 'no stack trace');
});
