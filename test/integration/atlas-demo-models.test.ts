// The three 3D demo models through medmask's sliding window: on the same held-out phantoms their
// model card was measured on (by tools/train's torch sliding window), the mean organ Dice against
// the truth must come out the same. A missing model fails the test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Segmenter } from '../../src/runtime/segment.js';
import { writeAbdomenDataset } from '../../src/pipeline/phantoms.js';
import { readVolume } from '../../src/io/index.js';
import type { SourceName } from '../../src/core/phantom/abdomen.js';

const DIR = process.env.MEDMASK_ATLAS_MODELS ?? new URL('../../models/demo/', import.meta.url).pathname;
const MODELS = ['demo-unet3d', 'demo-resunet3d', 'demo-segresnet3d'];
const present = MODELS.filter((m) => existsSync(join(DIR, m, 'model.json')) && existsSync(join(DIR, m, 'card.json')));

interface Card {
  data: { heldout: { n: number; seed: number; command?: string } };
  metrics: { heldout: { dice: Record<string, number | null>; mean_dice: number; n: number } };
}

test('demo 3D models: mean organ Dice on their held-out phantoms equals the model card (torch evaluation)', async () => {
  assert.deepEqual(present, MODELS, `committed 3D demo models missing under ${DIR} (model.json and card.json each)`);
  const root = mkdtempSync(join(tmpdir(), 'medmask-demo3d-'));
  try {
    const sets = new Map<string, string>();
    for (const m of present) {
      const card = JSON.parse(readFileSync(join(DIR, m, 'card.json'), 'utf8')) as Card;
      const h = card.data.heldout;
      const size = Number(/--size (\d+)/.exec(h.command ?? '')?.[1] ?? 96);
      const key = `${h.n}-${h.seed}-${size}-${h.command ?? ''}`.replace(/[^\w.-]+/g, '_');
      if (!sets.has(key)) {
        const dir = join(root, key);
        // The card's command names the phantoms: size, and (since the realistic rebuild) sources and --realistic.
        const sources = /--sources (\S+)/.exec(h.command ?? '')?.[1]?.split(',') as SourceName[] | undefined;
        const realistic = / --realistic\b/.test(h.command ?? '');
        await writeAbdomenDataset(dir, { n: h.n, seed: h.seed, size, ...(sources ? { sources } : {}), ...(realistic ? { realistic } : {}) });
        sets.set(key, dir);
      }
      const dir = sets.get(key)!;
      const seg = await Segmenter.load(join(DIR, m), { threads: 2 });
      const perOrgan = new Map<string, number[]>();
      for (let i = 0; i < h.n; i++) {
        const id = `case_${String(i).padStart(4, '0')}`;
        const ct = await readVolume(join(dir, 'imagesTr', `${id}_0000.nii.gz`));
        const truth = (await readVolume(join(dir, 'truthTr', `${id}.nii.gz`))).data;
        // The card's evaluation runs every window (no skipping) with float probabilities.
        const pred = (await seg.predict(ct, { skipEmpty: false, precision: 'float32' })).labelMap();
        for (const o of seg.organs) {
          let a = 0, b = 0, ab = 0;
          for (let v = 0; v < truth.length; v++) {
            const p = pred[v] === o.value, t = truth[v] === o.value;
            if (p) a++;
            if (t) b++;
            if (p && t) ab++;
          }
          if (a + b) perOrgan.set(o.name, [...(perOrgan.get(o.name) ?? []), (2 * ab) / (a + b)]);
        }
      }
      await seg.release();
      const organDice = Object.fromEntries([...perOrgan].map(([k, v]) => [k, v.reduce((s, x) => s + x, 0) / v.length]));
      const mean = Object.values(organDice).reduce((s, x) => s + x, 0) / Object.values(organDice).length;
      const want = card.metrics.heldout.mean_dice;
      assert.ok(Math.abs(mean - want) <= 0.02, `${m}: mean Dice ${mean.toFixed(4)} here, ${want} in the card (${JSON.stringify(organDice)})`);
      for (const [o, d] of Object.entries(card.metrics.heldout.dice)) {
        if (d === null || organDice[o] === undefined) continue;
        assert.ok(Math.abs(organDice[o]! - d) <= 0.05, `${m} ${o}: Dice ${organDice[o]!.toFixed(4)} here, ${d} in the card`);
      }
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
