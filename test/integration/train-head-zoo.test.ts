/**
 * `train-head` on a bundled demo backbone for a task it was not trained for: the demo ResNet
 * learnt lesion presence (healthy / abnormal); a new head on its frozen features learns the lesion
 * class (healthy / nodule / consolidation / cavity) and beats chance clearly on held-out phantoms.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { balancedAccuracy } from '../../src/core/train/metrics.js';
import { readVolume } from '../../src/io/index.js';
import { collectItems } from '../../src/pipeline/annotate.js';
import { loadEnsemble, releaseEnsemble, runModel } from '../../src/pipeline/ensemble.js';
import { writeChestDataset } from '../../src/pipeline/phantoms.js';
import { trainHead } from '../../src/pipeline/train-head.js';
import { ROOT } from '../helpers/cli.js';

const CLASSES = ['healthy', 'nodule', 'consolidation', 'cavity'];

test('train-head: lesion class on the presence-trained demo ResNet beats chance on held-out phantoms', async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'medmask-th-zoo-'));
  try {
    const data = join(tmp, 'chest');
    await writeChestDataset(data, { n: 260, seed: 6060, size: 256, oodFraction: 0 });
    const r = await trainHead({ backbone: join(ROOT, 'models/demo/demo-resnet'), labels: join(data, 'labels.csv'), classes: CLASSES, out: join(tmp, 'head'), seed: 2, epochs: 150 });
    assert.ok(r.files, 'model written');
    const test = await collectItems(data, { labels: join(data, 'labels.csv'), split: 'test' });
    const [m] = await loadEnsemble([join(tmp, 'head')]);
    try {
      assert.deepEqual(m!.manifest.classes, CLASSES);
      const pred: number[] = [], truth: number[] = [];
      for (const it of test) {
        const p = await runModel(m!, await readVolume(it.path));
        pred.push(p.probabilities.indexOf(Math.max(...p.probabilities)));
        truth.push(CLASSES.indexOf(it.label!));
      }
      const bacc = balancedAccuracy(pred, truth, 4);
      t.diagnostic(`held-out balanced accuracy ${bacc.toFixed(3)} over ${test.length} images (chance 0.25); validation ${JSON.stringify(r.training?.validation && { accuracy: (r.training.validation as { accuracy?: number }).accuracy })}`);
      assert.ok(bacc >= 0.4, `balanced accuracy ${bacc} (measured 0.52; chance 0.25)`);
    } finally {
      await releaseEnsemble([m!]);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
