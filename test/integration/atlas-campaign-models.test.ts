/**
 * An AbdomenAtlas campaign with the three real demo 3D models (models/demo/demo-{unet3d,
 * resunet3d,segresnet3d}) through the sliding window, no simulated model: 8 phantoms (48² in
 * plane) from four partial-label sources. Checked from the files against the phantoms' truth,
 * independently of the campaign's bookkeeping:
 * - Dice of every organ without an original label, computed here from truthTr and the merged
 *   labels, rises for the reviewed cases, and so does the mean;
 * - the ranked selection (top priority per source, read from ranking.json) gains more Dice than the
 *   exact expectation of a random selection of as many cases per source;
 * - the merged labels keep every original label;
 * - attention is about real errors: with the paper's attention (the campaign default) more
 *   attention goes with more error and what it flags is mostly error; with the `refined` preset
 *   (core/atlas/attention-refine.ts, tuned on seeds 11–12, never on this seed) it finds and flags
 *   error regions at the goal (region sensitivity and precision ≥ 0.8, touch matching).
 * A missing model fails the test.
 *
 * Why the paper's attention is not held to a region sensitivity here: with the demo models trained
 * on clean phantoms of every source it found 0.49 of the error regions at precision 0.51 on this
 * seed; the zoo fine-tuned on some sources' realistic phantoms (models/demo/README.md) finds 0.19 at
 * precision 0.81. The errors did not change in kind (76 vs 75 regions of ≥ 8 voxels, the same sizes,
 * all three models wrong on about half of each region's voxels in both zoos); the models now agree
 * more (attention volume 27,566 → 7,230 voxels), and the one-voxel opening at these 7–8.5 mm voxels
 * (a 3-voxel cut, ≈ 22 mm, against the paper's ≈ 3 mm at 1.5 mm) erases most of their thin
 * disagreement around the small errors (8–31 voxels: 16 of 46 found before, 3 of 49 now). That is
 * the failure the `refined` preset answers (no opening, components expecting < 20 mL wrong
 * dropped), so the sensitivity bar is asserted on it, raised to the goal.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ATTENTION_PRESETS } from '../../src/core/atlas/attention-refine.js';
import { ORGANS } from '../../src/core/phantom/abdomen.js';
import { readVolume } from '../../src/io/index.js';
import { runAtlasCampaign } from '../../src/pipeline/atlas-campaign.js';
import { organDice } from '../helpers/organ-dice.js';

const DIR = process.env.MEDMASK_ATLAS_MODELS ?? new URL('../../models/demo/', import.meta.url).pathname;
const MODELS = ['demo-unet3d', 'demo-resunet3d', 'demo-segresnet3d'].map((m) => join(DIR, m));
const present = MODELS.every((m) => existsSync(join(m, 'model.json')) && existsSync(join(m, 'model.onnx')));

test('campaign with the real demo 3D models: review raises Dice, ranked review beats random at the same budget', async () => {
  assert.ok(present, `committed 3D demo models missing: ${MODELS.join(', ')} (model.json, model.onnx each)`);
  const dir = await mkdtemp(join(tmpdir(), 'medmask-campaign-models-'));
  try {
    const r = await runAtlasCampaign(dir, { n: 8, size: 48, seed: 1, segmenters: MODELS, models: [], randomDraws: 50, fractions: [0, 0.5, 1] });
    const models = JSON.parse(readFileSync(join(r.work, 'attention', 'case_0000.json'), 'utf8')) as { models: string[] };
    assert.deepEqual(models.models, ['demo-resunet3d', 'demo-segresnet3d', 'demo-unet3d'], 'only the real models predicted');
    const ranking = JSON.parse(readFileSync(join(r.work, 'ranking.json'), 'utf8')) as { ranked: { id: string; source: string; priority: number; selected: boolean }[] };
    const meta = (JSON.parse(readFileSync(join(r.data, 'dataset.json'), 'utf8')) as { medmask: { cases: { case: string; source: string; labelled: string[] }[] } }).medmask.cases;

    // Per case, from the files: Dice without review (original > pseudo) and of the merged labels.
    const before = new Map<string, number>(), merged = new Map<string, number>();
    for (const c of meta) {
      const truth = (await readVolume(join(r.data, 'truthTr', `${c.case}.nii.gz`))).data;
      const partial = (await readVolume(join(r.data, 'labelsTr', `${c.case}.nii.gz`))).data;
      const pseudo = (await readVolume(join(r.work, 'pseudo', `${c.case}.nii.gz`))).data;
      const final = (await readVolume(join(r.final, 'labelsTr', `${c.case}.nii.gz`))).data;
      const labelled = c.labelled.map((o) => ORGANS.indexOf(o as (typeof ORGANS)[number]) + 1);
      const noReview = Uint8Array.from(pseudo, (p, v) => (labelled.includes(partial[v]!) ? partial[v]! : labelled.includes(p) ? 0 : p));
      const scored = ORGANS.map((_, i) => i + 1).filter((l) => !labelled.includes(l));
      before.set(c.case, scored.reduce((s, l) => s + organDice(noReview, truth, l), 0) / scored.length);
      merged.set(c.case, scored.reduce((s, l) => s + organDice(final, truth, l), 0) / scored.length);
      for (const l of labelled) for (let v = 0; v < truth.length; v++) if (partial[v] === l) assert.equal(final[v], l, `${c.case}: original label ${l} kept at voxel ${v}`);
    }
    const selected = ranking.ranked.filter((x) => x.selected).map((x) => x.id);
    assert.ok(selected.length >= 1);
    for (const id of selected) assert.ok(merged.get(id)! > before.get(id)!, `${id}: Dice ${before.get(id)} → ${merged.get(id)} after review`);
    for (const c of meta.filter((x) => !selected.includes(x.case))) assert.ok(Math.abs(merged.get(c.case)! - before.get(c.case)!) < 1e-12, `${c.case} not reviewed, labels unchanged`);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const diceBefore = mean([...before.values()]), diceFinal = mean([...merged.values()]);
    assert.ok(diceFinal > diceBefore, `mean Dice ${diceBefore} → ${diceFinal}`);
    assert.ok(diceBefore > 0.8, `the real models segment the phantoms (Dice ${diceBefore} without review)`);

    // Ranked vs random at the same budget per source. Gains after review come from the campaign's
    // in-memory review of every case (its own annotator), checked above where it was written.
    const gain = new Map(r.cases.map((c) => [c.id, c.diceAfter - c.diceBefore]));
    for (const c of r.cases) if (c.selected) assert.ok(Math.abs(c.diceAfter - merged.get(c.id)!) < 1e-12, `${c.id}: in-memory review = merged file`);
    const sources = [...new Set(meta.map((c) => c.source))];
    let rankedGain = 0, randomGain = 0;
    for (const s of sources) {
      const ids = ranking.ranked.filter((x) => x.source === s);
      const k = ids.filter((x) => x.selected).length;
      const top = [...ids].sort((a, b) => b.priority - a.priority || (a.id < b.id ? -1 : 1)).slice(0, k);
      assert.deepEqual(top.map((x) => x.id).sort(), ids.filter((x) => x.selected).map((x) => x.id).sort(), `${s}: the selection is the top priority`);
      rankedGain += top.reduce((a, x) => a + gain.get(x.id)!, 0);
      randomGain += (k / ids.length) * ids.reduce((a, x) => a + gain.get(x.id)!, 0); // each case drawn with probability k / n
    }
    assert.ok(rankedGain > randomGain, `Dice gained: ranked ${rankedGain / meta.length} vs random ${randomGain / meta.length} (per case)`);
    const half = r.report.curve!.find((p) => p.fraction === 0.5)!;
    assert.ok(half.ranked > half.random, `at 50 % per source: ranked ${half.ranked} vs random ${half.random}`);
    // Attention is about real errors: more attention goes with more error, and most of what the
    // paper's attention flags is error (0.81 of its regions on this seed; see the header).
    assert.ok(r.attention.voxelSensitivity > 0.1 && r.attention.regionPrecision > 0.5, JSON.stringify(r.attention));
    assert.ok(r.report.attention!.spearman! > 0, `Spearman ${r.report.attention!.spearman}`);

    // The `refined` preset on the same predictions: region sensitivity and precision ≥ 0.8 (the
    // issue's goal; 0.87 / 0.98 on this seed), and its ranking still beats random.
    const refined = ATTENTION_PRESETS.refined;
    const r2 = await runAtlasCampaign(join(dir, 'refined'), { n: 8, size: 48, seed: 1, models: [], predictionsFrom: r.dir, randomDraws: 50, fractions: [0, 0.5, 1], refine: refined.attention, ...(refined.rank.measure ? { rankMeasure: refined.rank.measure } : {}), organPriors: refined.rank.organPriors ?? false });
    assert.ok(r2.attention.regionSensitivity >= 0.8 && r2.attention.regionPrecision >= 0.8, `refined: ${JSON.stringify(r2.attention)}`);
    const half2 = r2.report.curve!.find((p) => p.fraction === 0.5)!;
    assert.ok(half2.ranked > half2.random, `refined, at 50 % per source: ranked ${half2.ranked} vs random ${half2.random}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
