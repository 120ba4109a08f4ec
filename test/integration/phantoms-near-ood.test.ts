import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeChestDataset } from '../../src/pipeline/phantoms.js';
import { evaluateRun } from '../../src/pipeline/evaluate.js';
import { readVolume } from '../../src/io/index.js';
import { cli } from '../helpers/cli.js';
import { hashTree } from '../helpers/hash-tree.js';

test('2D set with near-OOD images: the plain files are byte-identical to before; near-ood/ is seeded, listed and its masks match truth', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'medmask-near-'));
  try {
    const plain = await writeChestDataset(join(tmp, 'plain'), { n: 12, seed: 7, size: 64, oodFraction: 0.25 });
    // Hash of this tree written by the code before near-OOD images existed.
    assert.equal(hashTree(plain.dir, plain.files), 'aad0922b1325180501049b2a8910ff16e99762c0cefce9f6877d6b1c278157e3');
    const a = await writeChestDataset(join(tmp, 'a'), { n: 12, seed: 7, size: 64, oodFraction: 0.25, nearOodFraction: 0.5 });
    const b = await writeChestDataset(join(tmp, 'b'), { n: 12, seed: 7, size: 64, oodFraction: 0.25, nearOodFraction: 0.5 });
    assert.equal(hashTree(a.dir, plain.files), hashTree(plain.dir, plain.files), 'adding near-OOD images changed an existing file');
    assert.equal(hashTree(a.dir, a.files), hashTree(b.dir, b.files));
    const near = a.files.filter((f) => !plain.files.includes(f));
    assert.equal(near.length, 6 * 3 + 2);
    const rows = readFileSync(join(a.dir, 'near-ood.csv'), 'utf8').trim().split('\n').map((l) => l.split(','));
    assert.deepEqual(rows[0], ['image', 'kind', 'label', 'finding', 'mask', 'lungs']);
    assert.deepEqual(rows.slice(1).map((r) => r[1]), ['scanner', 'paediatric', 'effusion', 'devices', 'scanner', 'paediatric']);
    const truth = JSON.parse(readFileSync(join(a.dir, 'near-ood', 'truth.json'), 'utf8')) as { images: { maskPixels: number; effusion?: { pixels: number } }[] };
    for (const [k, r] of rows.slice(1).entries()) {
      const m = await readVolume(join(a.dir, r[4]!)), l = await readVolume(join(a.dir, r[5]!));
      let px = 0;
      for (let i = 0; i < m.data.length; i++) if (m.data[i]) { px++; assert.equal(l.data[i], 255, `${r[4]}: mask pixel outside the lungs`); }
      assert.equal(px, truth.images[k]!.maskPixels);
      assert.equal(r[3] === 'effusion', r[1] === 'effusion');
      if (r[1] === 'effusion') assert.ok(truth.images[k]!.effusion!.pixels > 0 && px >= truth.images[k]!.effusion!.pixels);
    }
    const r = cli('phantoms', '2d', '--n', '4', '--size', '32', '--near-ood', '2', '--out', join(tmp, 'x'));
    assert.equal(r.code, 2);
    assert.match(r.err, /--near-ood "2"/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('evaluate: OOD AUROC over all OOD images, for far and near families and per kind (known answer)', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'medmask-eval-near-'));
  try {
    const truth = join(tmp, 'truth'), run = join(tmp, 'run');
    mkdirSync(truth);
    mkdirSync(run);
    writeFileSync(join(truth, 'labels.csv'), 'image,label\nimages/a.png,healthy\nimages/b.png,nodule\nimages/c.png,healthy\n');
    writeFileSync(join(truth, 'ood.csv'), 'image,kind\nood/f1.png,knee\nood/f2.png,ct-slice\n');
    writeFileSync(join(truth, 'near-ood.csv'), 'image,kind,label,finding,mask,lungs\nnear-ood/images/n1.png,effusion,healthy,effusion,,\nnear-ood/images/n2.png,scanner,healthy,,,\n');
    // In-distribution scores 0.1, 0.2, 0.3; far 0.9, 0.8 (above all); near 0.25 (above two of three), 0.5 (above all).
    const scores: [string, number, string][] = [['images/a.png', 0.1, 'accept'], ['images/b.png', 0.2, 'accept'], ['images/c.png', 0.3, 'review'], ['ood/f1.png', 0.9, 'ood'], ['ood/f2.png', 0.8, 'ood'], ['near-ood/images/n1.png', 0.25, 'review'], ['near-ood/images/n2.png', 0.5, 'ood']];
    writeFileSync(join(run, 'results.jsonl'), scores.map(([image, score, decision]) => JSON.stringify({ image, stem: image, status: 'ok', decision, ood: { score } })).join('\n') + '\n');
    const e = await evaluateRun(run, truth);
    assert.equal(e.ood.inDistribution, 3);
    assert.equal(e.ood.ood, 4);
    assert.ok(Math.abs(e.ood.auroc - 11 / 12) < 1e-12, `all: ${e.ood.auroc}`);
    assert.deepEqual({ ...e.ood.far, fprAt95Tpr: undefined }, { n: 2, auroc: 1, flagged: 2, routed: { ood: 2 }, fprAt95Tpr: undefined });
    assert.equal(e.ood.far!.fprAt95Tpr, 0);
    assert.equal(e.ood.near!.n, 2);
    assert.ok(Math.abs(e.ood.near!.auroc - 5 / 6) < 1e-12, `near: ${e.ood.near!.auroc}`);
    assert.equal(e.ood.near!.flagged, 1);
    // Catching both near images (TPR ≥ 95 %) needs a threshold at 0.25, above which 1 of 3 in-distribution images lies.
    assert.ok(Math.abs(e.ood.near!.fprAt95Tpr - 1 / 3) < 1e-12, `near FPR@95: ${e.ood.near!.fprAt95Tpr}`);
    // Per kind: the effusion (0.25) lies above 2 of the 3 in-distribution scores and went to review.
    const k = e.ood.byKind!;
    assert.deepEqual(Object.keys(k).sort(), ['ct-slice', 'effusion', 'knee', 'scanner']);
    assert.ok(Math.abs(k.effusion!.auroc - 2 / 3) < 1e-12, `effusion: ${k.effusion!.auroc}`);
    assert.deepEqual([k.effusion!.family, k.effusion!.n, k.effusion!.flagged, k.effusion!.routed], ['near', 1, 0, { review: 1 }]);
    assert.deepEqual([k.scanner!.family, k.scanner!.auroc, k.scanner!.routed], ['near', 1, { ood: 1 }]);
    assert.deepEqual([k.knee!.family, k.knee!.auroc, k.knee!.flagged], ['far', 1, 1]);
    assert.equal(e.perImage.find((p) => p.image === 'near-ood/images/n1.png')!.oodKind, 'effusion');
    assert.equal(e.perImage.find((p) => p.image === 'ood/f1.png')!.oodFamily, 'far');
    assert.equal(e.perImage.find((p) => p.image === 'near-ood/images/n2.png')!.oodFamily, 'near');
    const written = JSON.parse(readFileSync(join(run, 'evaluation.json'), 'utf8')) as { ood: { near: { auroc: number } } };
    assert.ok(Math.abs(written.ood.near.auroc - 5 / 6) < 1e-12);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
