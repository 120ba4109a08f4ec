import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { annotate, collectItems } from '../../src/pipeline/annotate.js';
import { writeChestDataset } from '../../src/pipeline/phantoms.js';
import { readVolume, writeVolume } from '../../src/io/index.js';
import { createVolume } from '../../src/core/volume.js';
import { writeReport } from '../../src/pipeline/report.js';
import type { ImageResult } from '../../src/pipeline/run-format.js';
import { cli, ROOT } from '../helpers/cli.js';

const CLASSES = ['healthy', 'nodule', 'consolidation', 'cavity'];

/** A fixture classifier (random torchvision weights, 4 outputs) packaged with a manifest. */
function packModel(dir: string, name: string, classes = CLASSES): string {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  copyFileSync(join(ROOT, 'test/fixtures/cam', `${name}.onnx`), join(d, 'model.onnx'));
  writeFileSync(join(d, 'model.json'), JSON.stringify({
    format: 'medmask-model/1', name, task: 'classify', model: 'model.onnx',
    input: { name: 'input', layout: 'NCHW', height: 128, width: 96, channels: 3 },
    preprocess: { resize: 'stretch', channels: 'grey-to-rgb', intensity: { mode: 'min-max' } },
    classes, mc: { dropout: 0.3, samples: 8 },
  }));
  return d;
}

const readLines = (run: string) => readFileSync(join(run, 'results.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as ImageResult);

test('annotate: every image gets a decision, masks stay inside the ROI, normal targets get empty masks, resume skips done images, a broken image is recorded and the run goes on', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'medmask-ann-'));
  try {
    const data = join(tmp, 'data');
    await writeChestDataset(data, { n: 8, seed: 77, size: 96, oodFraction: 0 });
    const models = [packModel(tmp, 'resnet'), packModel(tmp, 'densenet')];
    const items = await collectItems(data, { labels: join(data, 'labels.csv'), roiColumn: 'lungs' });
    writeFileSync(join(data, 'images', 'broken.png'), 'not a png');
    items.push({ path: join(data, 'images', 'broken.png'), rel: 'images/broken.png', label: 'nodule' });
    const run = join(tmp, 'run');
    const s = await annotate({ models, items, out: run, mcSamples: 4, seed: 1 });
    assert.equal(s.done, 8);
    assert.equal(s.errors, 1);
    const lines = readLines(run);
    assert.equal(lines.length, 9);
    const broken = lines.find((l) => l.image === 'images/broken.png')!;
    assert.equal(broken.status, 'error');
    assert.match(broken.error!, /broken\.png/);
    for (const r of lines.filter((l) => l.status === 'ok')) {
      assert.ok(['accept', 'review', 'ood'].includes(r.decision!), r.image);
      assert.equal(r.target, r.label, 'with labels, the label is the target');
      assert.ok(r.models!.length === 2 && r.probabilities && Math.abs(Object.values(r.probabilities).reduce((a, b) => a + b, 0) - 1) < 1e-4);
      const mask = await readVolume(join(run, r.mask!));
      const lungs = await readVolume(join(data, 'lungs', `${r.stem.replace(/^images__/, '')}.png`));
      let px = 0;
      for (let i = 0; i < mask.data.length; i++) if (mask.data[i]) {
        px++;
        assert.ok(lungs.data[i], `${r.image}: mask pixel ${i} outside the lungs`);
      }
      assert.equal(px, r.maskPixels);
      if (r.label === 'healthy') assert.equal(px, 0, 'normal target → empty mask');
      if (r.decision !== 'accept') assert.ok(r.reasons!.length > 0, `${r.image}: ${r.decision} without a reason`);
      // H(mean of the models' mean probabilities) ≥ mean of H(p̄_m) ≥ mean MI_m (concavity; MI ≤ predictive entropy).
      assert.ok(r.uncertainty!.mi >= 0 && r.uncertainty!.entropy >= r.uncertainty!.mi - 1e-9, `${r.image}: entropy ${r.uncertainty!.entropy} < MI ${r.uncertainty!.mi}`);
    }
    const csv = readFileSync(join(run, 'results.csv'), 'utf8').trim().split('\n');
    assert.equal(csv.length, 10);
    const run2 = await annotate({ models, items, out: run, mcSamples: 4, seed: 1 });
    assert.equal(run2.skipped, 8, 'done images are not redone');
    assert.equal(run2.done, 0);
    assert.equal(readLines(run).filter((l) => l.status === 'ok').length, 8);
    const info = JSON.parse(readFileSync(join(run, 'run.json'), 'utf8')) as { models: { sha256: string }[] };
    assert.match(info.models[0]!.sha256, /^[0-9a-f]{64}$/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('annotate bad input: labels the models do not have, models with different classes, a pipeline with a typo', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'medmask-annbad-'));
  try {
    const data = join(tmp, 'data');
    await writeChestDataset(data, { n: 3, seed: 5, size: 64, oodFraction: 0 });
    const a = packModel(tmp, 'resnet');
    const odd = packModel(join(tmp, 'odd'), 'densenet', ['healthy', 'tb', 'x', 'y']);
    const r1 = cli('annotate', '--models', `${a},${odd}`, '--images', data, '--out', join(tmp, 'r1'));
    assert.equal(r1.code, 2);
    assert.match(r1.err, /disagree on their classes.*\[healthy, nodule, consolidation, cavity\].*\[healthy, tb, x, y\]/);
    writeFileSync(join(tmp, 'labels.csv'), 'image,label\nimages/img_00000.png,tuberculosis\n');
    const r2 = cli('annotate', '--models', a, '--images', data, '--labels', join(tmp, 'labels.csv'), '--out', join(tmp, 'r2'));
    assert.notEqual(r2.code, 0);
    assert.match(r2.err, /"tuberculosis".*not classes of the models \(healthy, nodule, consolidation, cavity\)/);
    writeFileSync(join(tmp, 'p.yaml'), 'fusion: intersection\nconstraints:\n  - op: fil-holes\n');
    const r3 = cli('annotate', '--models', a, '--images', data, '--pipeline', join(tmp, 'p.yaml'), '--out', join(tmp, 'r3'));
    assert.equal(r3.code, 2);
    assert.match(r3.err, /p\.yaml: constraints\[0\]\.op.*did you mean "fill-holes"/);
    const r4 = cli('annotate', '--models', a, '--images', data, '--review', 'entropy=high', '--out', join(tmp, 'r4'));
    assert.equal(r4.code, 2);
    assert.match(r4.err, /--review: entropy needs a number ≥ 0, got "high"/);
    const r5 = cli('annotate', '--models', a, '--images', data, '--review', 'entrpy=0.5', '--out', join(tmp, 'r5'));
    assert.equal(r5.code, 2);
    assert.match(r5.err, /--review: unknown threshold "entrpy"[\s\S]*entropy, mi, mask-score, outside/);
    for (const r of [r1, r2, r3, r4, r5]) assert.doesNotMatch(r.err, /\n\s+at /, 'no stack trace');
    // Entropy 0: every image is uncertain enough for review; the others keep their defaults.
    const r6 = cli('annotate', '--models', a, '--images', data, '--review', 'entropy=0', '--mc', '0', '--no-report', '--out', join(tmp, 'r6'));
    assert.equal(r6.code, 0, r6.err);
    for (const l of readLines(join(tmp, 'r6'))) {
      assert.equal(l.decision, 'review', l.image);
      assert.ok(l.reasons!.some((x) => /uncertain prediction/.test(x)), l.reasons!.join('; '));
    }
    const opts = (JSON.parse(readFileSync(join(tmp, 'r6', 'run.json'), 'utf8')) as { options: { thresholds: Record<string, number> } }).options;
    assert.deepEqual(opts.thresholds, { entropy: 0, mi: 0.05, maskScore: 0.5, outside: 0.85 });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('fit-ood → annotate → evaluate through the CLI: OOD statistics used, evaluation.json and an offline report', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'medmask-annev-'));
  try {
    const data = join(tmp, 'data');
    await writeChestDataset(data, { n: 20, seed: 9, size: 64, oodFraction: 0.25 });
    const a = packModel(tmp, 'resnet');
    const fit = cli('fit-ood', '--models', a, '--images', data, '--labels', join(data, 'labels.csv'), '--split', 'train', '--calibration-split', 'val', '--mc', '4', '--out', join(tmp, 'ood'));
    assert.equal(fit.code, 0, fit.err);
    const stats = JSON.parse(readFileSync(join(tmp, 'ood', 'resnet.ood.json'), 'utf8')) as { fit: { calibrationImages: number }; temperature?: { temperature: number; nllBefore: number; nllAfter: number; images: number } };
    assert.ok(stats.temperature && stats.temperature.images === stats.fit.calibrationImages && stats.fit.calibrationImages > 0, 'a temperature fitted on the labelled calibration images');
    assert.ok(stats.temperature.nllAfter <= stats.temperature.nllBefore + 1e-12, 'calibration does not raise the NLL it minimises');
    const run = join(tmp, 'run');
    const an = cli('annotate', '--models', a, '--images', data, '--labels', join(data, 'labels.csv'), '--roi-column', 'lungs', '--ood', join(tmp, 'ood'), '--mc', '4', '--out', run, '--json');
    assert.equal(an.code, 0, an.err);
    const lines = readLines(run);
    assert.ok(lines.every((l) => typeof l.ood?.score === 'number'), 'OOD score present with fitted statistics');
    const info = JSON.parse(readFileSync(join(run, 'run.json'), 'utf8')) as { models: { temperature?: number }[] };
    assert.equal(info.models[0]!.temperature, stats.temperature.temperature, 'annotate applies and records the temperature');
    const ev = cli('evaluate', '--run', run, '--truth', data, '--json');
    assert.equal(ev.code, 0, ev.err);
    const e = JSON.parse(ev.out) as { matched: number; segmentation: { lesionImages: number; meanDice: number } };
    assert.equal(e.matched, 20);
    assert.ok(e.segmentation.lesionImages > 0 && e.segmentation.meanDice >= 0 && e.segmentation.meanDice <= 1);
    const html = readFileSync(join(run, 'report.html'), 'utf8');
    assert.match(html, /<svg/);
    assert.doesNotMatch(html.replace(/xmlns="http:\/\/www\.w3\.org\/2000\/svg"/g, ''), /https?:\/\//, 'no network references');
    assert.match(html, /data:image\/png;base64,/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('annotate on NIfTI images: the mask is a 0/1 NIfTI label map on the image grid, and the report still shows thumbnails', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'medmask-annnii-'));
  try {
    const data = join(tmp, 'data');
    await writeChestDataset(data, { n: 4, seed: 21, size: 96, oodFraction: 0 });
    const items = await collectItems(data, { labels: join(data, 'labels.csv'), roiColumn: 'lungs' });
    const spacing: [number, number, number] = [0.7, 0.7, 1], origin: [number, number, number] = [-30, 12, 4];
    for (const it of items) {
      const v = await readVolume(it.path);
      const nii = it.path.replace(/\.png$/, '.nii.gz');
      await writeVolume(createVolume(v.shape, 'int16', { data: Int16Array.from(v.data as ArrayLike<number>, (x) => x * 4 - 200), spacing, origin }), nii);
      it.path = nii;
      it.rel = it.rel.replace(/\.png$/, '.nii.gz');
    }
    const run = join(tmp, 'run');
    const s = await annotate({ models: [packModel(tmp, 'resnet')], items, out: run, mcSamples: 0, seed: 1 });
    assert.equal(s.done, 4);
    for (const r of readLines(run)) {
      assert.match(r.mask!, /^masks\/images__img_\d+\.nii\.gz$/);
      const m = await readVolume(join(run, r.mask!));
      assert.deepEqual([...m.spacing].map((x) => +x.toFixed(4)), spacing);
      assert.deepEqual([...m.origin].map((x) => +x.toFixed(4)), origin);
      let on = 0;
      for (const x of m.data) {
        assert.ok(x === 0 || x === 1, `label values 0/1, got ${x}`);
        on += x;
      }
      assert.equal(on, r.maskPixels);
    }
    const html = readFileSync(await writeReport(run, { imagesRoot: data }), 'utf8');
    assert.ok((html.match(/data:image\/png;base64,/g) ?? []).length >= 8, 'image and mask thumbnails of NIfTI inputs');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
