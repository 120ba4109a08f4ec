/**
 * `fitOod`'s artefact (`<model>.ood.json`, beside the model or in --ood DIR) with a real demo
 * classifier: fitted twice it is byte-identical; read back it scores exactly what the statistics
 * in it say (the Mahalanobis distance refitted from the same features, the weighted combiner);
 * a file in the older format still loads with every score weighted 1; far OOD images stay
 * separated from in-distribution ones with the default weights.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { collectItems } from '../../src/pipeline/annotate.js';
import { loadEnsemble, releaseEnsemble, runModel } from '../../src/pipeline/ensemble.js';
import { fitOod, loadOod, passMi, scoreOod, type OodStats } from '../../src/pipeline/ood.js';
import { writeChestDataset } from '../../src/pipeline/phantoms.js';
import { auroc } from '../../src/core/metrics/classification.js';
import { combineOod, energy, fitMahalanobis, mahalanobis } from '../../src/core/uncertainty/ood.js';
import { readVolume } from '../../src/io/index.js';
import { ROOT } from '../helpers/cli.js';

test('fit-ood artefact: deterministic, round-trips to the same scores, old format loads, far OOD separated', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'medmask-oodfit-'));
  const models = await loadEnsemble([join(ROOT, 'models/demo/demo-efficientnet')]);
  try {
    const data = join(tmp, 'chest');
    await writeChestDataset(data, { n: 48, seed: 4242, size: 128, oodFraction: 0.25 });
    const lc = { labels: join(data, 'labels.csv'), labelColumn: 'presence' };
    const train = (await collectItems(data, { ...lc, split: 'train' })).map((i) => ({ path: i.path, label: i.label! }));
    const val = await collectItems(data, { ...lc, split: 'val' });
    const opts = { calibration: val, mcSamples: 4, seed: 7 };
    const a = await fitOod(models, train, { ...opts, out: join(tmp, 'a') });
    const b = await fitOod(models, train, { ...opts, out: join(tmp, 'b') });
    const m = models[0]!;
    const bytes = readFileSync(a[m.name]!, 'utf8');
    assert.equal(bytes, readFileSync(b[m.name]!, 'utf8'), 'same images, seed and model: the same file');
    const stats = JSON.parse(bytes) as OodStats;
    assert.equal(stats.format, 'medmask-ood/2');
    assert.deepEqual(stats.combiner.names, ['mahalanobis', 'energy', 'mi']);
    assert.deepEqual(stats.combiner.weights, [1, 0, 0], 'default: the Mahalanobis distance alone');

    // Round trip: the loaded model is the one refitted from the training features.
    const passes = [];
    for (const t of train) passes.push(await runModel(m, await readVolume(t.path)));
    const ref = fitMahalanobis(passes.map((p) => p.pooled), train.map((t) => m.manifest.classes.indexOf(t.label)));
    const loaded = (await loadOod(join(tmp, 'a'), m))!;
    assert.deepEqual(loaded.model.means, ref.means);
    assert.deepEqual(Array.from(loaded.model.cholesky), Array.from(ref.cholesky));

    // Score in-distribution test images and the far OOD images (knee, inverted chest, CT slice).
    const test = await collectItems(data, { ...lc, split: 'test' });
    const far = (parse(readFileSync(join(data, 'ood.csv'), 'utf8'), { columns: true }) as { image: string }[]).map((r) => join(data, r.image));
    const margins: number[] = [], isOod: number[] = [];
    // The older format: no weights, every score weighs 1 (what annotate did before).
    const v1 = { ...stats, format: 'medmask-ood/1', combiner: { ...stats.combiner, weights: undefined } };
    mkdirSync(join(tmp, 'v1'));
    writeFileSync(join(tmp, 'v1', `${m.name}.ood.json`), JSON.stringify(v1));
    const old = (await loadOod(join(tmp, 'v1'), m))!;
    for (const [i, path] of [...test.map((t) => t.path), ...far].entries()) {
      const p = await runModel(m, await readVolume(path));
      const mi = passMi(m, p, 4, i);
      const s = scoreOod(loaded, p, mi);
      const c = stats.combiner;
      assert.ok(Math.abs(s.mahalanobis - mahalanobis(ref, p.pooled)) <= 1e-9 * s.mahalanobis);
      assert.ok(Math.abs(s.margin - ((s.mahalanobis - c.mean[0]!) / c.std[0]! - c.threshold)) < 1e-9, 'margin = standardised Mahalanobis − threshold');
      const o = scoreOod(old, p, mi);
      const eq = ((s.mahalanobis - c.mean[0]!) / c.std[0]! + (energy(p.logits) - c.mean[1]!) / c.std[1]! + (mi - c.mean[2]!) / c.std[2]!) / 3;
      assert.ok(Math.abs(o.margin + c.threshold - eq) < 1e-9, 'old format: equal weights');
      assert.ok(Math.abs(combineOod(c, { mahalanobis: s.mahalanobis, energy: s.energy, mi: s.mi }) - c.threshold - s.margin) < 1e-12);
      margins.push(s.margin);
      isOod.push(i >= test.length ? 1 : 0);
    }
    const got = auroc(margins, isOod);
    assert.ok(far.length >= 10 && got >= 0.99, `far OOD AUROC ${got} over ${far.length} far and ${test.length} in-distribution images`);
  } finally {
    await releaseEnsemble(models);
    rmSync(tmp, { recursive: true, force: true });
  }
});
