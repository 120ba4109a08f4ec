/**
 * A small simulated AbdomenAtlas campaign end to end (phantoms from four sources with partial
 * labels → simulated model predictions → atlasAttention → atlasRank → simulated annotator →
 * atlasMerge → report), checked against the phantoms' ground truth read back from disk.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMedmaskError } from '../../src/core/errors.js';
import { PHANTOM_SOURCES, ORGANS } from '../../src/core/phantom/abdomen.js';
import { readVolume } from '../../src/io/index.js';
import { runAtlasCampaign, type CampaignResult } from '../../src/pipeline/atlas-campaign.js';
import { atlasReportFromWork } from '../../src/pipeline/atlas-report.js';
import { organDice } from '../helpers/organ-dice.js';

const SOURCES = ['flare', 'lits', 'kits', 'msd_pancreas'] as const;

let dir: string;
let r: CampaignResult;

test('simulated campaign: setup (12 phantoms, 4 sources, 3 simulated models)', async () => {
  dir = await mkdtemp(join(tmpdir(), 'medmask-campaign-'));
  r = await runAtlasCampaign(dir, { n: 12, size: 48, seed: 1, sources: [...SOURCES], randomDraws: 300 });
  assert.equal(r.cases.length, 12);
});

test('partial labels follow each source\'s policy', () => {
  for (const s of SOURCES) {
    const cs = r.cases.filter((c) => c.source === s);
    assert.equal(cs.length, 3, s);
    for (const c of cs) assert.deepEqual([...c.labelled].sort(), [...PHANTOM_SOURCES[s].labelled].sort(), `${c.id} (${s})`);
  }
});

test('review selects the top of each source by priority, and the merged files reflect the review', async () => {
  const ranking = JSON.parse(readFileSync(join(r.work, 'ranking.json'), 'utf8')) as { ranked: { id: string; source: string; priority: number }[] };
  for (const s of SOURCES) {
    const top = ranking.ranked.filter((x) => x.source === s).sort((a, b) => b.priority - a.priority)[0]!;
    const chosen = r.cases.filter((c) => c.source === s && c.selected).map((c) => c.id);
    assert.deepEqual(chosen, top.priority > 0 ? [top.id] : [], `source ${s}`);
  }
  // Final labels written by atlasMerge, read back and scored here against truthTr.
  for (const c of r.cases) {
    const merged = (await readVolume(join(r.final, 'labelsTr', `${c.id}.nii.gz`))).data;
    const truth = (await readVolume(join(r.data, 'truthTr', `${c.id}.nii.gz`))).data;
    const scored = ORGANS.map((o, i) => [o, i + 1] as const).filter(([o]) => !c.labelled.includes(o));
    const dice = scored.reduce((s, [, l]) => s + organDice(merged, truth, l), 0) / scored.length;
    assert.ok(Math.abs(dice - (c.selected ? c.diceAfter : c.diceBefore)) < 1e-9, `${c.id}: ${dice} vs ${c.selected ? 'after' : 'before'} review`);
    // Labelled organs are the source's own annotation, untouched.
    for (const o of c.labelled) assert.equal(organDice(merged, truth, ORGANS.indexOf(o as (typeof ORGANS)[number]) + 1), 1, `${c.id} ${o}`);
  }
});

test('review improves Dice, and ranked review beats random review at the same budget', () => {
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const before = mean(r.cases.map((c) => c.diceBefore));
  const final = mean(r.cases.map((c) => c.finalDice));
  assert.ok(final > before, `mean Dice ${before} → ${final}`);
  for (const c of r.cases.filter((x) => x.selected)) assert.ok(c.diceAfter > c.diceBefore, `${c.id}: ${c.diceBefore} → ${c.diceAfter}`);
  assert.ok(mean(r.cases.map((c) => c.diceAfter)) > before + 0.01, 'reviewing everything helps clearly');
  const curve = r.report.curve!;
  const at = (f: number) => curve.find((p) => p.fraction === f)!;
  for (const f of [0.05, 0.5]) {
    const p = at(f);
    assert.ok(p.ranked > p.random, `at ${f}: ranked ${p.ranked} vs random ${p.random}`);
    assert.ok(p.rankedBeatsRandom > 0.5, `at ${f}: ranked ≥ random in ${p.rankedBeatsRandom} of draws`);
  }
  assert.ok(Math.abs(at(1).ranked - at(1).random) < 1e-12);
});

test('attention finds real errors, and its counts agree with the attention summaries', () => {
  const a = r.attention;
  assert.ok(a.counts.errorVoxels > 0 && a.counts.attentionVoxels > 0);
  assert.ok(a.voxelSensitivity > 0.5, `voxel sensitivity ${a.voxelSensitivity}`);
  assert.ok(a.regionSensitivity > 0.5, `region sensitivity ${a.regionSensitivity}`);
  assert.ok(a.voxelPrecision > 0 && a.regionPrecision > 0);
  let flagged = 0;
  for (const c of r.cases) {
    const s = JSON.parse(readFileSync(join(r.work, 'attention', `${c.id}.json`), 'utf8')) as { organs: { voxels: number }[] };
    flagged += s.organs.reduce((t, o) => t + o.voxels, 0);
  }
  assert.equal(a.counts.attentionVoxels, flagged);
  assert.ok(r.report.attention!.spearman! > 0, 'more attention goes with more error');
});

test('effort: review minutes, by-hand minutes and a self-contained HTML report', () => {
  const h = r.report.headline;
  const reviewed = r.cases.filter((c) => c.selected).length;
  const byHand = r.cases.reduce((s, c) => s + (9 - c.labelled.length), 0) * 60;
  assert.equal(h.expertMinutes, reviewed * 15);
  assert.equal(h.byHandMinutes, byHand);
  assert.equal(h.minutesSaved, byHand - reviewed * 15);
  assert.equal(h.speedup, byHand / (reviewed * 15));
  const html = readFileSync(r.reportFiles.html, 'utf8');
  assert.ok(html.includes('<svg') && html.includes('Dice of final labels vs fraction reviewed'));
  assert.ok(!/(src|href)=["']?https?:/i.test(html));
  const json = JSON.parse(readFileSync(r.reportFiles.json, 'utf8')) as { policies: { policy: string }[] };
  assert.deepEqual(json.policies.map((p) => p.policy), ['by-hand', 'no-review', 'review-all', 'ranked-5%', 'random-5%']);
});

test('the report of the work folder agrees with the campaign\'s own bookkeeping', async () => {
  const w = await atlasReportFromWork(r.data, r.work, { final: r.final });
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  assert.deepEqual(w.selected, r.report.selected);
  assert.equal(w.headline.expertMinutes, r.report.headline.expertMinutes);
  assert.ok(Math.abs(w.headline.diceBefore! - mean(r.cases.map((c) => c.diceBefore))) < 1e-12);
  assert.ok(Math.abs(w.headline.diceAfter! - mean(r.cases.map((c) => c.finalDice))) < 1e-12);
  assert.deepEqual(w.attention!.counts, r.attention.counts);
  assert.equal(w.curve, undefined, 'no Dice after review for unreviewed cases: no curve');
  await assert.rejects(atlasReportFromWork(r.data, join(r.dir, 'nowhere')), (e: unknown) => isMedmaskError(e) && e.code === 'NOT_FOUND' && /atlas rank/.test(e.hint ?? ''));
});

test('perfect models: no error, no attention, nothing to review', async () => {
  const d = await mkdtemp(join(tmpdir(), 'medmask-campaign-perfect-'));
  try {
    const p = await runAtlasCampaign(d, { n: 4, size: 40, seed: 2, models: [{ name: 'a', skill: 0, boundary: 0 }, { name: 'b', skill: 0, boundary: 0 }], randomDraws: 5 });
    for (const c of p.cases) {
      assert.equal(c.errorVoxels, 0, c.id);
      assert.equal(c.diceBefore, 1);
      assert.equal(c.priority, 0);
      assert.equal(c.selected, false);
    }
    assert.equal(p.attention.counts.attentionVoxels, 0);
    assert.equal(p.report.headline.expertMinutes, 0);
  } finally {
    await rm(d, { recursive: true, force: true });
  }
});

test('campaign options are checked', async () => {
  await assert.rejects(runAtlasCampaign(join(tmpdir(), 'never'), { n: 1 }), (e: unknown) => isMedmaskError(e) && e.code === 'USAGE' && /n = 1/.test(e.message));
  await assert.rejects(runAtlasCampaign(join(tmpdir(), 'never'), { models: [{ name: 'x', skill: 1, boundary: 0 }, { name: 'x', skill: 1, boundary: 0 }] }), (e: unknown) => isMedmaskError(e) && /"x"/.test(e.message));
  await assert.rejects(runAtlasCampaign(join(tmpdir(), 'never'), { models: [] }), (e: unknown) => isMedmaskError(e) && /at least one model/.test(e.message));
  assert.equal(existsSync(join(tmpdir(), 'never')), false, 'nothing written for bad options');
});

test('simulated campaign: cleanup', async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});
