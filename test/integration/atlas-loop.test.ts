/**
 * The loop end to end (issue 16 §3): `medmask atlas run --rounds 2` on a small simulated campaign
 * with the demo U-Net — predict → attention → rank → simulated review → merge → fine-tune (PyTorch,
 * warm start) → re-predict, twice — and its per-round table checked against the files it wrote:
 * the never-reviewed Dice recomputed from the pseudo-labels and truthTr with the tests' own organ
 * Dice, reviews that accumulate and never repeat a case, expert minutes at 15 per case, and each
 * model carried into the next round only when its fine-tune was accepted.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
// @ts-expect-error plain ESM script without types
import { ensureSystemPackages } from '../../scripts/system-deps.mjs';
import { readVolume } from '../../src/io/index.js';
import { writeAbdomenDataset } from '../../src/pipeline/phantoms.js';
import type { AtlasLoopResult } from '../../src/pipeline/atlas-loop.js';
import { cli, ROOT } from '../helpers/cli.js';
import { organDice } from '../helpers/organ-dice.js';

let dir: string;
before(() => {
  ensureSystemPackages(['python3-torch', 'python3-nibabel', 'python3-onnx']);
  dir = mkdtempSync(join(tmpdir(), 'medmask-atlas-loop-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('atlas run --rounds 2: a simulated campaign with fine-tuning, its per-round table checked against its files', async () => {
  const data = join(dir, 'data'), out = join(dir, 'loop');
  await writeAbdomenDataset(data, { n: 6, seed: 21, size: 40, sources: ['flare', 'kits'] });
  const r = cli('atlas', 'run', '--data', data, '--work', join(dir, 'unused'), '--out', out, '--rounds', '2', '--model', join(ROOT, 'models/demo/demo-unet3d'), '--fraction', '0.3', '--finetune-steps', '4', '--label-weights', 'pseudo=0.5', '--json');
  assert.equal(r.code, 0, r.err);
  const loop = JSON.parse(r.out) as AtlasLoopResult;
  assert.equal(loop.rounds.length, 2);
  const ds = JSON.parse(readFileSync(join(data, 'dataset.json'), 'utf8')) as { labels: Record<string, number>; medmask: { cases: { case: string; labelled: string[] }[] } };
  const organs = Object.entries(ds.labels).filter(([, v]) => v > 0);
  const reviewed = new Set<string>();
  for (const [i, row] of [...loop.rounds, loop.final].entries()) {
    const roundDir = join(out, i < 2 ? `round-${i + 1}` : 'final');
    // Reviews: one of each source's 3 cases per round, never a case twice, 15 expert minutes each.
    for (const id of row.selected) assert.ok(!reviewed.has(id), `${id} reviewed twice`);
    for (const id of row.selected) reviewed.add(id);
    assert.equal(row.expertMinutes, 15 * row.selected.length);
    if (i < 2) {
      assert.ok(row.selected.length <= 2);
      assert.deepEqual(readdirSync(join(roundDir, 'review')).filter((f) => f.endsWith('.nii.gz')).map((f) => f.replace('.nii.gz', '')).sort(), [...reviewed].sort(), 'reviews accumulate');
      const ft = row.finetune[0]!;
      assert.equal(ft.decision, ft.heldout >= ft.parentHeldout ? 'accepted' : 'rejected');
    }
    // The never-reviewed Dice, recomputed from the pseudo-labels with the tests' own Dice.
    const dice: number[] = [];
    for (const c of ds.medmask.cases) {
      if (reviewed.has(c.case)) continue;
      const pseudo = (await readVolume(join(roundDir, 'work', 'pseudo', `${c.case}.nii.gz`))).data;
      const truth = (await readVolume(join(data, 'truthTr', `${c.case}.nii.gz`))).data;
      const scored = organs.filter(([n]) => !c.labelled.includes(n)).map(([, v]) => v);
      dice.push(scored.reduce((a, l) => a + organDice(pseudo, truth, l), 0) / scored.length);
    }
    assert.equal(row.neverReviewed, dice.length);
    assert.ok(Math.abs(row.neverReviewedDice - dice.reduce((a, b) => a + b, 0) / dice.length) < 1e-9, `round ${row.round}: ${row.neverReviewedDice} vs ${dice}`);
    assert.ok(row.attentionSensitivity >= 0 && row.attentionSensitivity <= 1 && row.attentionPrecision >= 0 && row.attentionPrecision <= 1);
  }
  // Dice(un): each round's pseudo-labels on the one set of cases that no round reviewed.
  for (const [i, row] of [...loop.rounds, loop.final].entries()) {
    const roundDir = join(out, i < 2 ? `round-${i + 1}` : 'final');
    const dice: number[] = [];
    for (const c of ds.medmask.cases.filter((x) => !reviewed.has(x.case))) {
      const pseudo = (await readVolume(join(roundDir, 'work', 'pseudo', `${c.case}.nii.gz`))).data;
      const truth = (await readVolume(join(data, 'truthTr', `${c.case}.nii.gz`))).data;
      const scored = organs.filter(([n]) => !c.labelled.includes(n)).map(([, v]) => v);
      dice.push(scored.reduce((a, l) => a + organDice(pseudo, truth, l), 0) / scored.length);
    }
    assert.ok(Math.abs(row.unreviewedDice - dice.reduce((a, b) => a + b, 0) / dice.length) < 1e-9, `round ${row.round}: ${row.unreviewedDice} vs ${dice}`);
  }
  // Round 2 predicted with the round-1 fine-tune exactly when it was accepted.
  const accepted1 = loop.rounds[0]!.finetune[0]!.decision === 'accepted';
  assert.equal(existsSync(join(out, 'round-2', 'work', 'predictions', 'demo-unet3d-ft')), accepted1);
  assert.equal(existsSync(join(out, 'round-2', 'work', 'predictions', 'demo-unet3d')), !accepted1);
});
