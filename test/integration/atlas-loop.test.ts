/**
 * The loop end to end (issue 16 §3): `medmask atlas run --rounds 2` on a small simulated campaign
 * with the demo U-Net — predict → attention → rank → simulated review → merge → fine-tune (PyTorch,
 * warm start, one trainer process per round) → re-predict, twice — and its per-round table checked
 * against the files it wrote: the fixed held-out set (by default min(24, a quarter): one case per source, never predicted,
 * trained on or reviewed; the accept rule's cases in both rounds), the fixed evaluation set (never
 * reviewed) and its per-round Dice recomputed from the pseudo-labels and truthTr with the tests'
 * own organ Dice, the paired round 2 − round 1 change and its t-interval recomputed (t(0.975, 2)
 * from the table), reviews that accumulate and never repeat a case, expert minutes at 15 per
 * case, `--threads 1` and the default recipe (the loop benchmark's: pseudo-labels weighted 0.5, half
 * the patches from reviewed cases) reaching the trainer without flags (the card records them, and
 * the revised cases it drew from are reviews so far), every candidate kept with its
 * metrics, and each model carried into the next round only when its fine-tune was accepted.
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

test('atlas run --rounds 2: a simulated campaign with fine-tuning, fixed held-out and evaluation sets, its per-round table checked against its files', async () => {
  const data = join(dir, 'data'), out = join(dir, 'loop');
  await writeAbdomenDataset(data, { n: 8, seed: 21, size: 40, sources: ['flare', 'kits'] });
  const r = cli('atlas', 'run', '--data', data, '--work', join(dir, 'unused'), '--out', out, '--rounds', '2', '--model', join(ROOT, 'models/demo/demo-unet3d'), '--fraction', '0.3', '--finetune-steps', '4', '--eval-cases', '3', '--threads', '1', '--json');
  assert.equal(r.code, 0, r.err);
  const loop = JSON.parse(r.out) as AtlasLoopResult;
  assert.equal(loop.rounds.length, 2);
  const ds = JSON.parse(readFileSync(join(data, 'dataset.json'), 'utf8')) as { labels: Record<string, number>; medmask: { cases: { case: string; source: string; labelled: string[] }[] } };
  const organs = Object.entries(ds.labels).filter(([, v]) => v > 0);
  const sourceOf = new Map(ds.medmask.cases.map((c) => [c.case, c.source]));
  // The three sets partition the cases; the held-out set takes one case per source.
  const { heldout, cases: evalCases, pool } = loop.evaluation;
  assert.deepEqual([...heldout, ...evalCases, ...pool].sort(), ds.medmask.cases.map((c) => c.case).sort());
  assert.equal(heldout.length, 2, 'the default held-out set: min(24, a quarter of the 8 cases) = 2 (the old min(6, a fifth) gave 1)');
  assert.equal(evalCases.length, 3);
  assert.deepEqual(heldout.map((id) => sourceOf.get(id)).sort(), ['flare', 'kits']);
  // Held-out cases: never predicted, never trained on; the trainer judged on exactly them, with their full truth.
  assert.deepEqual(readdirSync(join(out, 'heldout', 'truthTr')).sort(), heldout.map((id) => `${id}.nii.gz`).sort());
  for (const id of heldout) assert.deepEqual(readFileSync(join(out, 'heldout', 'truthTr', `${id}.nii.gz`)), readFileSync(join(data, 'truthTr', `${id}.nii.gz`)));
  /** Per-case Dice of the pseudo-labels in `work` (organs without an original label), with the tests' own organ Dice. */
  const dice = async (work: string, ids: string[]) => {
    const d: number[] = [];
    for (const c of ds.medmask.cases.filter((x) => ids.includes(x.case))) {
      const pseudo = (await readVolume(join(work, 'pseudo', `${c.case}.nii.gz`))).data;
      const truth = (await readVolume(join(data, 'truthTr', `${c.case}.nii.gz`))).data;
      const scored = organs.filter(([n]) => !c.labelled.includes(n)).map(([, v]) => v);
      d.push(scored.reduce((a, l) => a + organDice(pseudo, truth, l), 0) / scored.length);
    }
    return d;
  };
  const reviewed = new Set<string>();
  for (const [i, row] of [...loop.rounds, loop.final!].entries()) {
    const roundDir = join(out, i < 2 ? `round-${i + 1}` : 'final');
    for (const id of heldout) assert.ok(!existsSync(join(roundDir, 'work', 'pseudo', `${id}.nii.gz`)), `${id} is held out and was predicted`);
    // Reviews: only pool cases, at most one per source and round, never a case twice, 15 expert minutes each.
    for (const id of row.selected) assert.ok(pool.includes(id) && !reviewed.has(id), `${id}: not a pool case, or reviewed twice`);
    assert.ok(new Set(row.selected.map((id) => sourceOf.get(id))).size === row.selected.length);
    for (const id of row.selected) reviewed.add(id);
    assert.equal(row.expertMinutes, 15 * row.selected.length);
    if (i < 2) {
      assert.ok(row.selected.length >= 1);
      assert.deepEqual(readdirSync(join(roundDir, 'review')).filter((f) => f.endsWith('.nii.gz')).map((f) => f.replace('.nii.gz', '')).sort(), [...reviewed].sort(), 'reviews accumulate');
      const ft = row.finetune[0]!;
      // The default accept rule is the campaign's: the trainer's rule, then the pseudo-labels on the held-out cases no worse with the child.
      assert.ok(ft.campaign && row.campaignHeldout, 'the campaign accept rule is the default with a fixed held-out set');
      assert.equal(ft.campaign.current, row.campaignHeldout.current);
      assert.equal(ft.campaign.alone !== undefined, ft.heldout >= ft.parentHeldout, 'a child is tried in the campaign exactly when the trainer\'s rule passed it');
      assert.equal(ft.campaign.kept, ft.campaign.alone !== undefined && ft.campaign.alone >= ft.campaign.current);
      assert.equal(ft.decision, ft.campaign.kept ? 'accepted' : 'rejected');
      assert.equal(row.campaignHeldout.next, ft.campaign.kept ? ft.campaign.alone : ft.campaign.current);
      if (i === 1) assert.equal(row.campaignHeldout.current, loop.rounds[0]!.campaignHeldout!.next, 'round 2 starts from the models round 1 kept, scored the same');
      // The held-out pseudo-labels of round 1's models, scored with the tests' own Dice.
      if (i === 0) {
        const held = await dice(join(out, 'accept', 'e0'), heldout);
        assert.ok(Math.abs(row.campaignHeldout.current - held.reduce((a, b) => a + b, 0) / held.length) < 1e-9, `${row.campaignHeldout.current} vs ${held}`);
      }
      assert.equal(ft.heldoutCases, 2);
      // The candidate is kept, accepted or not, with its card's metrics = the row's, and the trainer's thread count.
      const card = JSON.parse(readFileSync(join(ft.candidate, 'card.json'), 'utf8')) as { metrics: { heldout: { mean_dice: number }; parent_heldout: { mean_dice: number } }; data: { train: { cases: string[] }; heldout: { cases: string[] } }; training: { threads: number; revised_share: number; revised_cases: string[]; label_weights: Record<string, number> } };
      assert.ok(existsSync(join(ft.candidate, 'model.onnx')));
      assert.equal(card.metrics.heldout.mean_dice, ft.heldout);
      assert.equal(card.metrics.parent_heldout.mean_dice, ft.parentHeldout);
      assert.deepEqual(card.data.heldout.cases.sort(), [...heldout].sort());
      assert.deepEqual(card.data.train.cases.sort(), [...evalCases, ...pool].sort(), 'trained on every campaign case (evaluation cases as pseudo-labels), never on a held-out one');
      assert.equal(card.training.threads, 1, '--threads reaches the trainer');
      assert.equal(card.training.revised_share, 0.5, 'the default revised share (the benchmark\'s recipe) reaches the trainer');
      assert.deepEqual(card.training.label_weights, { original: 1, revised: 1, pseudo: 0.5 }, 'the default label weights (the benchmark\'s recipe) reach the trainer');
      assert.ok(card.training.revised_cases.length >= 1 && card.training.revised_cases.every((id) => reviewed.has(id)), `revised cases ${card.training.revised_cases} are reviews so far (${[...reviewed]})`);
    }
    // Evaluation cases are never reviewed; their Dice, recomputed from the pseudo-labels with the tests' own Dice.
    for (const id of evalCases) assert.ok(!reviewed.has(id));
    const ev = await dice(join(roundDir, 'work'), evalCases);
    assert.equal(row.evalPerCase.length, 3);
    row.evalPerCase.forEach((x, j) => assert.ok(Math.abs(x - ev[j]!) < 1e-9, `round ${row.round} case ${evalCases[j]}: ${x} vs ${ev[j]}`));
    assert.ok(Math.abs(row.evalDice - ev.reduce((a, b) => a + b, 0) / 3) < 1e-9);
    // Not reviewed so far: every campaign case outside the reviews up to this row.
    const nr = await dice(join(roundDir, 'work'), [...evalCases, ...pool].filter((id) => !reviewed.has(id)));
    assert.equal(row.neverReviewed, nr.length);
    assert.ok(Math.abs(row.neverReviewedDice - nr.reduce((a, b) => a + b, 0) / nr.length) < 1e-9, `round ${row.round}: ${row.neverReviewedDice} vs ${nr}`);
    assert.ok(row.attentionSensitivity >= 0 && row.attentionSensitivity <= 1 && row.attentionPrecision >= 0 && row.attentionPrecision <= 1);
  }
  // Paired change round 2 − round 1 over the same evaluation cases, 95 % t-interval with t(0.975, 2) = 4.3027.
  const d = loop.rounds[1]!.evalPerCase.map((x, j) => x - loop.rounds[0]!.evalPerCase[j]!);
  const m = d.reduce((a, b) => a + b, 0) / 3, sd = Math.sqrt(d.reduce((a, b) => a + (b - m) ** 2, 0) / 2);
  const c = loop.evaluation.lastMinusFirst;
  assert.equal(c.n, 3);
  assert.ok(Math.abs(c.mean - m) < 1e-12 && Math.abs(c.high - c.low - 2 * 4.3027 * sd / Math.sqrt(3)) < 1e-9, JSON.stringify(c));
  // Round 2 predicted with the round-1 fine-tune exactly when it was accepted.
  const accepted1 = loop.rounds[0]!.finetune[0]!.decision === 'accepted';
  assert.equal(existsSync(join(out, 'round-2', 'work', 'predictions', 'demo-unet3d-ft')), accepted1);
  assert.equal(existsSync(join(out, 'round-2', 'work', 'predictions', 'demo-unet3d')), !accepted1);
  // A split that leaves nothing to review is refused with the numbers.
  const bad = cli('atlas', 'run', '--data', data, '--work', join(dir, 'unused'), '--out', join(dir, 'bad'), '--rounds', '1', '--model', join(ROOT, 'models/demo/demo-unet3d'), '--heldout-cases', '2', '--eval-cases', '6');
  assert.equal(bad.code, 2, bad.err);
  assert.match(bad.err, /2 held-out \+ 6 evaluation cases leave none of the 8 to review/);
});
