import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/core/random.js';
import { isMedmaskError } from '../../src/core/errors.js';
import {
  binAttentionVsError, budgetPerSource, byHandMinutes, calendarSpeedup, effortRates, errorShareOf, expectedRandomDice, meanDiceWith, policyEffort,
  reviewCurve, reviewMinutes, selectCases, spearman, workingYears, type CaseOutcome,
} from '../../src/core/atlas/effort.js';
import { compareAttention, detectionRates, organError } from '../../src/core/atlas/attention-eval.js';
import { buildAtlasReport, renderAtlasReportHtml } from '../../src/pipeline/atlas-report.js';

const close = (a: number, b: number, tol: number, what = '') => assert.ok(Math.abs(a - b) <= tol, `${what} ${a} vs ${b}`);

test('effort reproduces the paper\'s figures: 30.8 years by hand, 640× expert time, 533× calendar', () => {
  // Qu et al. 2023: 60 min per organ per CT × 8 organs × 8,000 CTs; 400 CTs reviewed at 15 min; 3 weeks.
  const byHand = byHandMinutes(8000 * 8);
  assert.equal(byHand, 3_840_000);
  close(workingYears(byHand), 30.8, 0.05, 'working years');
  assert.equal(reviewMinutes(400), 6000);
  assert.equal(policyEffort({ policy: 'p', description: '' }, { reviewedCases: 400 }, 8000 * 8).speedup, 640);
  close(calendarSpeedup(byHand, 3), 533, 1, 'calendar speed-up');
  const p = policyEffort({ policy: 'p', description: '' }, { reviewedCases: 10 }, 20, effortRates({ minutesPerReviewedCase: 30 }));
  assert.equal(p.expertMinutes, 300);
  assert.equal(p.minutesSaved, 20 * 60 - 300);
  assert.throws(() => effortRates({ minutesPerOrganByHand: -1 }), (e: unknown) => isMedmaskError(e) && /minutesPerOrganByHand = -1/.test(e.message));
  assert.throws(() => calendarSpeedup(1, 0), (e: unknown) => isMedmaskError(e) && e.code === 'USAGE');
});

/** Two sources, with Dice before / after and error voxels; priority tracks error in source a only. */
function cases(): CaseOutcome[] {
  const out: CaseOutcome[] = [];
  for (let i = 0; i < 8; i++) out.push({ id: `a${i}`, source: 'a', priority: 100 - i * 10, organsToAnnotate: 8, diceBefore: 0.7 + 0.03 * i, diceAfter: 0.95, errorVoxels: 800 - 100 * i });
  for (let i = 0; i < 4; i++) out.push({ id: `b${i}`, source: 'b', priority: i, organsToAnnotate: 2, diceBefore: 0.9, diceAfter: 0.9 + 0.01 * i, errorVoxels: 10 * i });
  return out;
}

test('selection strategies spend the same budget per source; ranked and oracle pick the expected cases', () => {
  const cs = cases();
  assert.deepEqual([...budgetPerSource(cs, 0.25)], [['a', 2], ['b', 1]]);
  assert.deepEqual([...selectCases(cs, 0.25, 'ranked')].sort(), ['a0', 'a1', 'b3']);
  assert.deepEqual([...selectCases(cs, 0.25, 'oracle')].sort(), ['a0', 'a1', 'b3']);
  const rng = new Rng(3);
  for (let d = 0; d < 20; d++) {
    const r = [...selectCases(cs, 0.25, 'random', rng)];
    assert.equal(r.filter((id) => id.startsWith('a')).length, 2);
    assert.equal(r.filter((id) => id.startsWith('b')).length, 1);
  }
  assert.equal(selectCases(cs, 0, 'ranked').size, 0);
  assert.equal(selectCases(cs, 1, 'random', rng).size, cs.length);
  close(errorShareOf(cs, new Set(['a0'])), 800 / (3600 + 60), 1e-12);
  assert.throws(() => selectCases(cs, 1.5, 'ranked'), (e: unknown) => isMedmaskError(e) && /1\.5/.test(e.message));
  assert.throws(() => selectCases(cs.map(({ errorVoxels: _e, ...c }) => c), 0.5, 'oracle'), (e: unknown) => isMedmaskError(e) && /no error count/.test(e.message));
});

test('review curve: ranked in closed form, random mean near its expectation k/n per source', () => {
  const cs = cases();
  const curve = reviewCurve(cs, [0, 0.25, 0.5, 1], { draws: 3000, seed: 9 });
  // Expected mean Dice of random selection: each case of source s is reviewed with probability k_s / n_s.
  for (const p of curve) {
    const budget = budgetPerSource(cs, p.fraction);
    const n = { a: 8, b: 4 } as Record<string, number>;
    const expected = cs.reduce((s, c) => {
      const q = budget.get(c.source)! / n[c.source]!;
      return s + q * c.diceAfter! + (1 - q) * c.diceBefore!;
    }, 0) / cs.length;
    close(p.random, expected, 0.002, `random at ${p.fraction}`);
    close(expectedRandomDice(cs, budget), expected, 1e-12, `expectedRandomDice at ${p.fraction}`);
    assert.ok(p.randomP05 <= p.random + 1e-12 && p.random <= p.randomP95 + 1e-12);
  }
  // Ranked at 25 %: a0, a1, b3 reviewed.
  const want = (0.95 * 2 + [0.76, 0.79, 0.82, 0.85, 0.88, 0.91].reduce((a, b) => a + b, 0) + 0.9 * 3 + 0.93) / 12;
  close(curve[1]!.ranked, want, 1e-12, 'ranked at 25 %');
  close(curve[0]!.ranked, curve[0]!.random, 1e-12, 'nothing reviewed');
  close(curve[3]!.ranked, curve[3]!.random, 1e-12, 'everything reviewed');
  assert.ok(curve[1]!.ranked > curve[1]!.random);
  assert.ok(curve[1]!.rankedBeatsRandom > 0.9);
  assert.equal(curve[1]!.errorShareOracle, curve[1]!.errorShareRanked);
  close(meanDiceWith(cs, new Set()), cs.reduce((s, c) => s + c.diceBefore!, 0) / 12, 1e-12);
});

test('spearman and attention binning', () => {
  assert.equal(spearman([1, 2, 3, 4], [10, 20, 30, 40]), 1);
  assert.equal(spearman([1, 2, 3, 4], [4, 3, 2, 1]), -1);
  // scipy.stats.spearmanr([1, 2, 2, 3], [1, 3, 2, 4]).statistic = 0.9486832980505138
  close(spearman([1, 2, 2, 3], [1, 3, 2, 4]), 0.9486832980505138, 1e-12);
  assert.ok(Number.isNaN(spearman([1, 1, 1], [1, 2, 3])));
  const bins = binAttentionVsError([{ attention: 0, error: 1 }, { attention: 10, error: 5 }, { attention: 20, error: 9 }, { attention: 30, error: 11 }], 2);
  assert.deepEqual(bins, [{ attention: 5, error: 3, count: 2 }, { attention: 25, error: 10, count: 2 }]);
});

test('attention detection: voxel and region sensitivity / precision on hand-made masks', () => {
  // 10 × 1 × 1 line: errors at 1–2 and 6–8; attention at 2–3 and 9 (touches nothing) .
  const err = Uint8Array.from([0, 1, 1, 0, 0, 0, 1, 1, 1, 0]);
  const att = Uint8Array.from([0, 0, 1, 1, 0, 0, 0, 0, 0, 1]);
  const c = compareAttention(att, err, [10, 1, 1]);
  // Half covered: error 1–2 has 1 of 2 voxels flagged (found), 6–8 none; attention 2–3 has 1 of 2 on error (right).
  assert.deepEqual(c, { errorVoxels: 5, attentionVoxels: 3, hitVoxels: 1, errorRegions: 2, errorRegionsFound: 1, attentionRegions: 2, attentionRegionsRight: 1, errorRegionsCovered: 1, attentionRegionsCovered: 1 });
  const r = detectionRates(c);
  assert.deepEqual(r, { voxelSensitivity: 0.2, voxelPrecision: 1 / 3, regionSensitivity: 0.5, regionPrecision: 0.5, regionSensitivityHalf: 0.5, regionPrecisionHalf: 0.5 });
  // Components smaller than 2 voxels are not counted as regions.
  const c2 = compareAttention(att, err, [10, 1, 1], 2);
  assert.equal(c2.attentionRegions, 1);
  assert.deepEqual(organError([0, 5, 5, 2], [5, 5, 0, 2], 5), Uint8Array.from([1, 0, 1, 0]));
  // Touch vs half covered: a long attention run touching one end of a short error, and a short
  // attention on a third of a long error.
  const err2 = Uint8Array.from([1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0]);
  const att2 = Uint8Array.from([0, 1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0]);
  const c3 = compareAttention(att2, err2, [12, 1, 1]);
  assert.deepEqual([c3.errorRegions, c3.errorRegionsFound, c3.errorRegionsCovered], [2, 2, 1]);
  assert.deepEqual([c3.attentionRegions, c3.attentionRegionsRight, c3.attentionRegionsCovered], [2, 2, 1]);
  const r3 = detectionRates(c3);
  assert.deepEqual([r3.regionSensitivity, r3.regionSensitivityHalf, r3.regionPrecision, r3.regionPrecisionHalf], [1, 0.5, 1, 0.5]);
});

test('effort report: policies, headline and a self-contained HTML page', () => {
  const cs = cases();
  const r = buildAtlasReport({ cases: cs, organs: ['liver', 'spleen'], reviewFraction: 0.25, randomDraws: 50, campaignWeeks: 1, attention: { counts: compareAttention(Uint8Array.of(1, 0), Uint8Array.of(1, 1), [2, 1, 1]), pairs: [{ attention: 1, error: 2 }, { attention: 3, error: 5 }] } });
  const byHand = 8 * 8 + 4 * 2;
  assert.equal(r.organsToAnnotate, byHand);
  const ranked = r.policies.find((p) => p.policy === 'ranked-25%')!;
  assert.equal(ranked.reviewedCases, 3);
  assert.equal(ranked.expertMinutes, 45);
  assert.equal(r.headline.speedup, (byHand * 60) / 45);
  assert.equal(r.headline.minutesSaved, byHand * 60 - 45);
  assert.deepEqual(r.selected, ['a0', 'a1', 'b3']);
  assert.ok(r.headline.diceAfter! > r.headline.diceBefore!);
  assert.equal(r.policies.find((p) => p.policy === 'review-all')!.dice, cs.reduce((s, c) => s + c.diceAfter!, 0) / 12);
  assert.equal(r.attention!.rates.voxelSensitivity, 0.5);
  const random = r.policies.find((p) => p.policy === 'random-25%')!;
  assert.equal(random.reviewedCases, 3);
  close(random.dice!, expectedRandomDice(cs, new Map([['a', 2], ['b', 1]])), 1e-12, 'random policy Dice');
  assert.throws(() => expectedRandomDice(cs, new Map([['b', 5]])), (e: unknown) => isMedmaskError(e) && /source "b", which has 4/.test(e.message));
  const html = renderAtlasReportHtml(r);
  assert.ok(html.includes('<svg'));
  assert.ok(!/(src|href)=["']?https?:/i.test(html), 'nothing fetched from elsewhere');
  assert.ok(!/<script[^>]+src=/i.test(html));
  assert.throws(() => buildAtlasReport({ cases: [], organs: [] }), (e: unknown) => isMedmaskError(e) && e.code === 'USAGE');
});
