// Pseudo-labels, case priority, review selection and label merging (AbdomenAtlas-8K, Qu et al.
// 2023) against hand-computed cases.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MeanAccumulator, labelMapFromProbabilities, meanProbability, thresholdMasks } from '../../src/core/atlas/pseudo-label.js';
import { casePriority, rankCases, selectForReview, type CaseScore } from '../../src/core/atlas/ranking.js';
import { mergeLabels } from '../../src/core/atlas/merge.js';
import { isMedmaskError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/random.js';

const close = (a: ArrayLike<number>, b: number[], tol = 1e-6) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < b.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= tol, `[${i}] ${a[i]} vs ${b[i]}`);
};

test('pseudo-label: mean of soft predictions; label maps count as 0/1; uint8 reads as value/255', () => {
  const acc = new MeanAccumulator(4);
  acc.addProbabilities(Float32Array.from([0.2, 0.9, 0.5, 0]));
  acc.addProbabilities(Uint8Array.from([255, 0, 51, 0])); // 1, 0, 0.2, 0
  acc.addLabelMap(Uint8Array.from([5, 5, 0, 3]), 5); // 1, 1, 0, 0
  assert.equal(acc.count, 3);
  close(acc.mean(), [(0.2 + 1 + 1) / 3, (0.9 + 0 + 1) / 3, (0.5 + 0.2) / 3, 0]);
  close(meanProbability([Float32Array.from([0.1, 0.3]), Float32Array.from([0.3, 0.3])]), [0.2, 0.3]);
  assert.throws(() => new MeanAccumulator(4).mean(), (e) => isMedmaskError(e) && /no prediction/.test(e.message));
  assert.throws(() => acc.addProbabilities(new Float32Array(3)), (e) => isMedmaskError(e) && /3 voxels, expected 4/.test(e.message));
});

test('pseudo-label: argmax with threshold or background; threshold mode paints later organs over earlier ones', () => {
  const liver = Float32Array.from([0.9, 0.6, 0.3, 0.5, 0.7]);
  const spleen = Float32Array.from([0.1, 0.7, 0.2, 0.5, 0.7]);
  // argmax over organs, kept when > 0.5; ties go to the earlier organ (numpy argmax).
  assert.deepEqual(labelMapFromProbabilities([liver, spleen], { labels: [5, 1] }), Uint8Array.from([5, 1, 0, 0, 5]));
  // softmax-style: background competes.
  const bg = Float32Array.from([0, 0.1, 0.5, 0.6, 0.2]);
  assert.deepEqual(labelMapFromProbabilities([liver, spleen], { labels: [5, 1], background: bg }), Uint8Array.from([5, 1, 0, 0, 5]));
  assert.deepEqual(labelMapFromProbabilities([liver, spleen], { mode: 'threshold', labels: [5, 1] }), Uint8Array.from([5, 1, 0, 0, 1]));
  assert.deepEqual(thresholdMasks([liver, Uint8Array.from([0, 128, 127, 255, 1])]), [Uint8Array.from([1, 1, 0, 0, 1]), Uint8Array.from([0, 1, 0, 1, 0])]);
  assert.throws(() => labelMapFromProbabilities([liver], { labels: [300] }), (e) => isMedmaskError(e) && /300/.test(e.message));
  assert.throws(() => labelMapFromProbabilities([liver], { threshold: 2 }), (e) => isMedmaskError(e) && /threshold 2/.test(e.message));
});

test('priority: attention voxels over unlabelled organs (default), all organs, heat, volume- and slice-normalised', () => {
  const organs = [
    { organ: 'liver', voxels: 120, heatSum: 30, labelled: true },
    { organ: 'spleen', voxels: 40, heatSum: 10, labelled: false },
    { organ: 'pancreas', voxels: 60, heatSum: 25, labelled: false },
  ];
  assert.equal(casePriority(organs), 100);
  assert.equal(casePriority(organs, { organs: 'all' }), 220);
  assert.equal(casePriority(organs, { measure: 'heat' }), 35);
  assert.equal(casePriority(organs, { normalise: 'volume' }, { voxels: 1000, slices: 10 }), 0.1);
  assert.equal(casePriority(organs, { normalise: 'slices', organs: 'all' }, { voxels: 1000, slices: 10 }), 22);
  assert.throws(() => casePriority(organs, { normalise: 'volume' }), (e) => isMedmaskError(e) && /grid/.test(e.message));
  assert.throws(() => casePriority([{ organ: 'x', voxels: 1, labelled: false }], { measure: 'heat' }), (e) => isMedmaskError(e) && /x has no heat sum/.test(e.message));
  assert.throws(() => casePriority(organs, { organs: 'some' as 'all' }), (e) => isMedmaskError(e) && /"some"/.test(e.message));
});

test('ranking: descending priority, ties by id; top ceil(5 %) per source; zero-priority cases skipped', () => {
  const cases: CaseScore[] = [];
  // 30 lits cases with priority index + 1, 10 kits cases with priority 100 + index, 5 amos with 0.
  for (let i = 0; i < 30; i++) cases.push({ id: `lits_${String(i).padStart(2, '0')}`, source: 'lits', priority: i + 1 });
  for (let i = 0; i < 10; i++) cases.push({ id: `kits_${i}`, source: 'kits', priority: 100 + i });
  for (let i = 0; i < 5; i++) cases.push({ id: `amos_${i}`, source: 'amos', priority: 0 });
  const shuffled = new Rng(3).shuffle(cases);
  const ranked = rankCases(shuffled);
  assert.deepEqual(ranked.slice(0, 3).map((c) => c.id), ['kits_9', 'kits_8', 'kits_7']);
  assert.equal(ranked[10]!.id, 'lits_29');
  assert.equal(ranked[10]!.sourceRank, 1);
  assert.deepEqual(ranked.slice(-5).map((c) => c.id), ['amos_0', 'amos_1', 'amos_2', 'amos_3', 'amos_4']); // ties by id
  // 5 % of 30 = 1.5 → 2; of 10 → 1; amos has only zero priorities → none.
  assert.deepEqual(selectForReview(ranked).map((c) => c.id), ['kits_9', 'lits_29', 'lits_28']);
  assert.deepEqual(selectForReview(ranked, { includeZero: true }).map((c) => c.id), ['kits_9', 'lits_29', 'lits_28', 'amos_0']);
  // Over all cases: ceil(0.1 × 45) = 5, all kits.
  assert.deepEqual(selectForReview(ranked, { fraction: 0.1, perSource: false }).map((c) => c.id), ['kits_9', 'kits_8', 'kits_7', 'kits_6', 'kits_5']);
  assert.equal(selectForReview(ranked, { fraction: 0 }).length, 0);
  assert.equal(selectForReview(ranked, { fraction: 1, includeZero: true }).length, 45);
  assert.throws(() => selectForReview(ranked, { fraction: 5 }), (e) => isMedmaskError(e) && /fraction 5/.test(e.message));
  assert.throws(() => rankCases([{ id: 'a', source: 's', priority: 1 }, { id: 'a', source: 's', priority: 2 }]), (e) => isMedmaskError(e) && /"a" appears twice/.test(e.message));
  assert.throws(() => rankCases([{ id: 'a', source: 's', priority: NaN }]), (e) => isMedmaskError(e) && /NaN/.test(e.message));
});

test('merge: original > revised > pseudo per organ, voxel conflicts go to the trusted layer, provenance kept', () => {
  // Labels: 1 spleen, 5 liver, 9 pancreas, 6 stomach (nobody has it).
  const original = { data: Uint8Array.from([5, 5, 0, 0, 0, 0, 1, 0]), organs: [5] }; // liver only (the 1 is ignored)
  const revised = { data: Uint8Array.from([0, 9, 9, 0, 0, 1, 0, 0]), organs: [9] }; // pancreas reviewed
  const pseudo = { data: Uint8Array.from([1, 1, 5, 9, 1, 0, 0, 5]), organs: [1, 5, 9] };
  const r = mergeLabels({ original, revised, pseudo }, [1, 5, 6, 9], 8);
  assert.deepEqual(r.provenance, { 1: 'pseudo', 5: 'original', 6: 'none', 9: 'revised' });
  // v0: pseudo spleen under original liver → 5; v1: pseudo spleen, revised pancreas, original liver → 5
  // v2: pseudo liver ignored (liver is original), revised pancreas → 9; v3: pseudo pancreas ignored → 0
  // v4: pseudo spleen → 1; v5: revised says 1 but is only authoritative for 9 → 0; v6: original's 1 ignored → 0
  // v7: pseudo liver ignored → 0.
  assert.deepEqual(r.data, Uint8Array.from([5, 5, 9, 0, 1, 0, 0, 0]));
  assert.equal(r.conflicts, 2); // voxels v0 and v1 (v1 overwritten twice, counted once)
  assert.throws(() => mergeLabels({ pseudo: { data: new Uint8Array(3), organs: [1] } }, [1], 8), (e) => isMedmaskError(e) && /pseudo label map has 3 voxels/.test(e.message));
  assert.throws(() => mergeLabels({ pseudo: { data: new Uint8Array(8), organs: [7] } }, [1], 8), (e) => isMedmaskError(e) && /organ label 7/.test(e.message));
});
