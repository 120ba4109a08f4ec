/**
 * Quality of the weak masks on phantoms with the bundled demo zoo and image-level labels only,
 * with seeds different from the demo's and from the seed the chest pipeline was tuned on (5555):
 * mean Dice on lesion images, review routing that ranks errors (risk–coverage below random),
 * open-set detection of the OOD family.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { annotate, collectItems } from '../../src/pipeline/annotate.js';
import { loadEnsemble, releaseEnsemble } from '../../src/pipeline/ensemble.js';
import { evaluateRun } from '../../src/pipeline/evaluate.js';
import { fitOod } from '../../src/pipeline/ood.js';
import { writeChestDataset } from '../../src/pipeline/phantoms.js';
import { DEMO_CLASSIFIERS } from '../../src/pipeline/demo.js';
import { ROOT } from '../helpers/cli.js';
import { CHEST_PHANTOM_PIPELINE } from '../../src/core/masks/pipeline.js';

const models = DEMO_CLASSIFIERS.map((m) => join(ROOT, m));

test('demo zoo on unseen phantoms: mean Dice of weak masks ≥ 0.7 (the 95 % interval above it), review ranks errors, OOD AUROC ≥ 0.9', async (t) => {
  assert.ok(models.every((m) => existsSync(join(m, 'model.json'))), `the demo zoo must be committed (${models.join(', ')}); rebuild it with /usr/bin/python3 tools/train/build_zoo.py`);
  const tmp = mkdtempSync(join(tmpdir(), 'medmask-quality-'));
  try {
    const data = join(tmp, 'chest');
    await writeChestDataset(data, { n: 300, seed: 880011, size: 256, oodFraction: 0.1 });
    const labels = join(data, 'labels.csv');
    const lc = { labels, labelColumn: 'presence' };
    const ens = await loadEnsemble(models);
    try {
      const train = await collectItems(data, { ...lc, split: 'train' });
      const val = await collectItems(data, { ...lc, split: 'val' });
      await fitOod(ens, train.map((i) => ({ path: i.path, label: i.label! })), { out: join(tmp, 'ood'), calibration: val, mcSamples: 10, seed: 3 });
    } finally {
      await releaseEnsemble(ens);
    }
    const test = await collectItems(data, { ...lc, split: 'test', roiColumn: 'lungs' });
    const ood = (parse(await readFile(join(data, 'ood.csv'), 'utf8'), { columns: true }) as { image: string }[]).map((r) => ({ path: join(data, r.image), rel: r.image }));
    const run = join(tmp, 'run');
    await annotate({ models, items: [...test, ...ood], out: run, oodDir: join(tmp, 'ood'), pipeline: CHEST_PHANTOM_PIPELINE, mcSamples: 10, seed: 5, fresh: true });
    const e = await evaluateRun(run, data, { labelColumn: 'presence' });
    const ci = (x: typeof e) => `${x.segmentation.meanDice.toFixed(3)} (95 % t-interval ${x.segmentation.meanDiceCi95[0].toFixed(3)}–${x.segmentation.meanDiceCi95[1].toFixed(3)})`;
    t.diagnostic(`test split: mean Dice ${ci(e)} over ${e.segmentation.lesionImages} lesion images; accuracy ${e.classification.accuracy.toFixed(3)}; OOD AUROC ${e.ood.auroc.toFixed(3)}; decisions ${JSON.stringify(e.decisions)}`);
    assert.ok(e.ood.auroc >= 0.9, `OOD AUROC ${e.ood.auroc}`);
    assert.ok(e.classification.accuracy >= 0.85, `accuracy ${e.classification.accuracy}`);
    // Masks and review ranking over a second unseen set large enough to judge a ranking (the test
    // split above holds ~28 lesion images; an area under the risk–coverage curve over so few moves
    // by more than the gap between a good ranking and a random one).
    const unseen = join(tmp, 'unseen');
    await writeChestDataset(unseen, { n: 200, seed: 880012, size: 256, oodFraction: 0 });
    const all = await collectItems(unseen, { labels: join(unseen, 'labels.csv'), labelColumn: 'presence', roiColumn: 'lungs' });
    const run2 = join(tmp, 'run-unseen');
    await annotate({ models, items: all, out: run2, oodDir: join(tmp, 'ood'), pipeline: CHEST_PHANTOM_PIPELINE, mcSamples: 10, seed: 5, fresh: true });
    const u = await evaluateRun(run2, unseen, { labelColumn: 'presence' });
    t.diagnostic(`unseen set: mean Dice ${ci(u)} over ${u.segmentation.lesionImages} lesion images (accepted ${u.segmentation.meanDiceByDecision.accept?.meanDice.toFixed(3)}, review ${u.segmentation.meanDiceByDecision.review?.meanDice.toFixed(3)}); AURC ${u.riskCoverage.aurc.toFixed(3)} vs random ${u.riskCoverage.randomAurc.toFixed(3)}; decisions ${JSON.stringify(u.decisions)}`);
    assert.ok(u.segmentation.lesionImages >= 80, 'enough lesion images to judge');
    // Issue 6 asks for ≥ 0.7 (aim 0.8). Measured with CHEST_PHANTOM_PIPELINE (no MC): 0.807 over
    // the 180 lesion images of seed 880011's 300, 0.812 over 181 of seed 424242 (0.818 on the
    // tuning seed 5555's 176). Interval-aware (issue 20; per-image Dice SD 0.17–0.21): on the unseen
    // set the whole 95 % t-interval of the mean (about ±0.03–0.04 over its ~115 lesion images) must
    // clear 0.7; the test split's ~28 lesion images (±0.09) can only show that 0.7 is not ruled
    // out, so its interval must reach 0.7. `medmask demo` evaluates 400 lesion images (±0.02).
    const [uLow] = u.segmentation.meanDiceCi95;
    assert.ok(uLow >= 0.7, `unseen set: mean Dice ${ci(u)}: the interval reaches below 0.7`);
    assert.ok(e.segmentation.meanDiceCi95[1] >= 0.7, `test split: mean Dice ${ci(e)}: the whole interval lies below 0.7`);
    assert.ok(u.riskCoverage.aurc < u.riskCoverage.randomAurc, `AURC ${u.riskCoverage.aurc} vs random ${u.riskCoverage.randomAurc}`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
