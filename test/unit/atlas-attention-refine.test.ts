// Attention refinements (core/atlas/attention-refine.ts) and organ-level priors
// (core/atlas/organ-priors.ts) against closed forms on synthetic maps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { organAttention } from '../../src/core/atlas/attention.js';
import { StatHistogram, addSourceStatistics, calibratedThresholds, dropSmallAttention, dropUnlikelyAttention, expectedErrorMap, expectedErrorWithin, openingIterations, sourceStatistics } from '../../src/core/atlas/attention-refine.js';
import { casePriority, expectedDiceLoss } from '../../src/core/atlas/ranking.js';
import { meanLabelDice } from '../../src/core/metrics/segmentation.js';
import { organPriorFlags, type CaseShapeSummary } from '../../src/core/atlas/organ-priors.js';
import { isMedmaskError } from '../../src/core/errors.js';

const shape = [16, 16, 16] as const;
const idx = (x: number, y: number, z: number) => x + 16 * (y + 16 * z);
/** Set a cube of side `s` with corner (x, y, z). */
function cube(m: Uint8Array | Float32Array, x0: number, y0: number, z0: number, s: number, value = 1): void {
  for (let z = z0; z < z0 + s; z++) for (let y = y0; y < y0 + s; y++) for (let x = x0; x < x0 + s; x++) m[idx(x, y, z)] = value;
}
const count = (a: Uint8Array) => a.reduce((s, x) => s + x, 0);

test('size filter in mm³: a 27-voxel cube goes, a 125-voxel cube stays (closed form, anisotropic voxels)', () => {
  // Voxels of 2 × 2 × 3 mm = 12 mm³: 27 voxels = 324 mm³, 125 voxels = 1500 mm³.
  const spacing = [2, 2, 3] as const;
  // Two models that disagree completely inside the cubes (std 0.5, entropy 0) and agree on 0 elsewhere.
  const a = new Float32Array(16 ** 3), b = new Float32Array(16 ** 3);
  cube(a, 1, 1, 1, 3);
  cube(a, 8, 8, 8, 5);
  const open0 = { erosions: 0, dilations: 0 };
  const plain = organAttention([a, b], shape, null, open0);
  assert.equal(plain.voxels, 27 + 125);
  const filtered = organAttention([a, b], shape, null, open0, { spacing, minComponentMm3: 1000 });
  assert.equal(filtered.voxels, 125);
  assert.equal(filtered.binary[idx(2, 2, 2)], 0);
  assert.equal(filtered.binary[idx(10, 10, 10)], 1);
  assert.equal(filtered.heat[idx(2, 2, 2)], 0);
  // The cut is inclusive: exactly 324 mm³ keeps the small cube, 324.1 drops it.
  assert.equal(organAttention([a, b], shape, null, open0, { spacing, minComponentMm3: 324 }).voxels, 152);
  assert.equal(organAttention([a, b], shape, null, open0, { spacing, minComponentMm3: 324.1 }).voxels, 125);
  // On the masks directly, with the counts removed; the overlap term is not the filter's business.
  const inc = new Uint8Array(16 ** 3), unc = new Uint8Array(16 ** 3);
  cube(inc, 1, 1, 1, 3);
  cube(unc, 8, 8, 8, 5);
  const r = dropSmallAttention({ inconsistency: inc, uncertainty: unc }, shape, spacing, 1000);
  assert.deepEqual([r.removedComponents, r.removedVoxels, count(inc), count(unc), count(r.kept)], [1, 27, 0, 125, 125]);
  assert.throws(() => dropSmallAttention({ inconsistency: inc, uncertainty: unc }, shape, [2, 0, 3], 10), (e: unknown) => isMedmaskError(e) && /spacing/.test(e.message));
});

test('expected-error filter: a 2 : 1 split keeps its cube, a faint halo of the same size goes (closed form)', () => {
  // Voxels of 2 × 2 × 3 mm = 12 mm³. Cube A (27 voxels): models 1, 0, 0 → p̄ = 1/3, expected error
  // 1/3 per voxel → 9 voxels = 108 mm³. Cube B (125 voxels): models 0.3, 0, 0 → p̄ = 0.1, expected
  // error 0.1 → 12.5 voxels = 150 mm³. Both are flagged by the paper's thresholds (std 0.471, 0.141).
  const spacing = [2, 2, 3] as const;
  const m1 = new Float32Array(16 ** 3), m2 = new Float32Array(16 ** 3), m3 = new Float32Array(16 ** 3);
  cube(m1, 1, 1, 1, 3);
  cube(m1, 8, 8, 8, 5, 0.3);
  const e = expectedErrorMap([m1, m2, m3], 16 ** 3);
  assert.ok(Math.abs(e[idx(2, 2, 2)]! - 1 / 3) < 1e-7 && Math.abs(e[idx(10, 10, 10)]! - 0.1) < 1e-7 && e[idx(0, 0, 0)] === 0);
  // uint8 input reads value / 255; a mean above ½ gives 1 − p̄.
  assert.ok(Math.abs(expectedErrorMap([Uint8Array.of(255), Uint8Array.of(255), Uint8Array.of(0)], 1)[0]! - 1 / 3) < 1e-7);
  // The sum inside a mask without the map: cube A expects 27 / 3 = 9 wrong voxels, cube B 12.5.
  const maskA = new Uint8Array(16 ** 3), maskB = new Uint8Array(16 ** 3);
  cube(maskA, 1, 1, 1, 3);
  cube(maskB, 8, 8, 8, 5);
  assert.ok(Math.abs(expectedErrorWithin([m1, m2, m3], maskA) - 9) < 1e-5);
  assert.ok(Math.abs(expectedErrorWithin([m1, m2, m3], maskB) - 12.5) < 1e-5);
  assert.throws(() => expectedErrorWithin([m1, m2.subarray(1)], maskA), /model 1's probabilities have 4095 voxels, expected 4096/);
  const open0 = { erosions: 0, dilations: 0 };
  assert.equal(organAttention([m1, m2, m3], shape, null, open0).voxels, 152);
  const a = organAttention([m1, m2, m3], shape, null, open0, { spacing, minExpectedErrorMm3: 120 });
  assert.equal(a.voxels, 125);
  assert.equal(a.binary[idx(2, 2, 2)], 0);
  // Inclusive cut at A's 108 mm³; above B's 150 mm³ nothing is left.
  assert.equal(organAttention([m1, m2, m3], shape, null, open0, { spacing, minExpectedErrorMm3: 108 }).voxels, 152);
  assert.equal(organAttention([m1, m2, m3], shape, null, open0, { spacing, minExpectedErrorMm3: 108.1 }).voxels, 125);
  assert.equal(organAttention([m1, m2, m3], shape, null, open0, { spacing, minExpectedErrorMm3: 151 }).voxels, 0);
  // On the masks directly: the counts removed.
  const inc = new Uint8Array(16 ** 3), unc = new Uint8Array(16 ** 3);
  cube(inc, 1, 1, 1, 3);
  cube(unc, 8, 8, 8, 5);
  const r = dropUnlikelyAttention({ inconsistency: inc, uncertainty: unc }, shape, spacing, e, 120);
  assert.deepEqual([r.removedComponents, r.removedVoxels, count(inc), count(unc)], [1, 27, 0, 125]);
  assert.throws(() => dropUnlikelyAttention({ inconsistency: inc, uncertainty: unc }, shape, spacing, new Float32Array(5), 1), (e: unknown) => isMedmaskError(e) && /expected-error map/.test(e.message));
  assert.throws(() => dropUnlikelyAttention({ inconsistency: inc, uncertainty: unc }, shape, spacing, e, -1), (e: unknown) => isMedmaskError(e) && /-1 mm³/.test(e.message));
});

test('expected Dice loss: equals 1 − Dice for a missed part, and ranks a small organ\'s error above a large one\'s', () => {
  // Pseudo-label: 1000 voxels of label 1; truth: the same plus 50 missed voxels → 1 − Dice = 50 / 2050.
  const pred = new Uint8Array(1100), truth = new Uint8Array(1100);
  pred.fill(1, 0, 1000);
  truth.fill(1, 0, 1050);
  assert.ok(Math.abs(expectedDiceLoss(50, 1000) - (1 - meanLabelDice(pred, truth, [1]))) < 1e-12);
  assert.equal(expectedDiceLoss(0, 1000), 0);
  assert.equal(expectedDiceLoss(30, 0), 1); // an organ the pseudo-label lacks
  assert.throws(() => expectedDiceLoss(-1, 10), (e: unknown) => isMedmaskError(e) && /-1/.test(e.message));
  // Case X: 20 expected wrong voxels on a 100-voxel gallbladder; case Y: 200 on a 10,000-voxel liver.
  const organ = (name: string, voxels: number, expectedErrors: number, volumeVoxels: number, labelled = false) => ({ organ: name, voxels, expectedErrors, volumeVoxels, labelled });
  const X = [organ('gallbladder', 60, 20, 100), organ('liver', 0, 0, 10_000), organ('spleen', 500, 400, 800, true)];
  const Y = [organ('gallbladder', 0, 0, 100), organ('liver', 600, 200, 10_000), organ('spleen', 0, 0, 800, true)];
  assert.ok(casePriority(Y) > casePriority(X)); // the paper's attention-voxel count prefers Y
  assert.ok(Math.abs(casePriority(X, { measure: 'dice' }) - (20 / 220) / 2) < 1e-12); // mean over the 2 unlabelled organs
  assert.ok(Math.abs(casePriority(Y, { measure: 'dice' }) - (200 / 20_200) / 2) < 1e-12);
  assert.ok(Math.abs(casePriority(X, { measure: 'dice', organs: 'all' }) - (20 / 220 + 400 / 2000) / 3) < 1e-12);
  assert.throws(() => casePriority(X, { measure: 'dice', normalise: 'volume' }, { voxels: 10, slices: 1 }), (e: unknown) => isMedmaskError(e) && /does not apply/.test(e.message));
  assert.throws(() => casePriority([{ organ: 'liver', voxels: 3, labelled: false }], { measure: 'dice' }), (e: unknown) => isMedmaskError(e) && /liver/.test(e.message));
});

test('opening depth in mm → iterations for the voxel size', () => {
  assert.equal(openingIterations(3, [1.5, 1.5, 1.5]), 2); // the paper's 2 × 3×3×3 on 1.5 mm CT
  assert.equal(openingIterations(3, [6, 6, 6]), 1); // 0.5 rounds up
  assert.equal(openingIterations(3, [8, 8, 8]), 0);
  assert.equal(openingIterations(6, [1, 1, 8]), 3); // geometric mean 2 mm
  assert.throws(() => openingIterations(-1, [1, 1, 1]), (e: unknown) => isMedmaskError(e) && /-1 mm/.test(e.message));
});

test('per-source calibration: histogram quantiles of the flagged values (known quantiles)', () => {
  const h = new StatHistogram(1, 1000);
  for (let i = 0; i < 1000; i++) h.add((i + 0.5) / 1000); // one value per bin: uniform on [0, 1]
  for (const q of [0, 0.1, 0.5, 0.9, 1]) assert.ok(Math.abs(h.quantile(q) - q) < 1e-9, `q ${q}: ${h.quantile(q)}`);
  assert.ok(Number.isNaN(new StatHistogram(1).quantile(0.5)));
  // std values 0.0505…0.4495 step 0.001 (400 values) and entropies all below 0.05: only std values
  // above 0.1 count (350 of them, 0.1005…0.4495), whose median is 0.275.
  const s = sourceStatistics();
  const std = Float64Array.from({ length: 400 }, (_, i) => 0.0505 + i * 0.001);
  const ent = new Float64Array(400).fill(0.01);
  addSourceStatistics(s, std, ent, { stdThreshold: 0.1, entropyThreshold: 0.05 });
  assert.equal(s.std.total, 350);
  assert.equal(s.entropy.total, 0);
  const t = calibratedThresholds(s, 0.5, { stdThreshold: 0.1, entropyThreshold: 0.05 });
  assert.ok(Math.abs(t.stdThreshold - 0.275) < 0.5 / 4096 + 0.001, `median ${t.stdThreshold}`);
  assert.equal(t.entropyThreshold, 0.05); // nothing flagged: the base threshold
  // q = 0 never lowers a threshold.
  assert.equal(calibratedThresholds(s, 0, { stdThreshold: 0.2, entropyThreshold: 0.05 }).stdThreshold, 0.2);
  assert.throws(() => s.std.quantile(1.5), (e: unknown) => isMedmaskError(e) && /1\.5/.test(e.message));
});

test('organ priors: a missing organ, an outlying volume and an extra piece are flagged against their source', () => {
  const organ = (name: string, volumeMm3: number, pieces = 1, labelled = false) => ({ organ: name, volumeMm3, pieces, labelled });
  const spleen = [100_000, 98_000, 102_000, 101_000, 99_000, 0];
  const liver = [1_500_000, 1_480_000, 1_520_000, 3_000_000, 1_510_000, 1_490_000];
  // Left kidney absent in 4 of 6 cases of this source (a variant, not a failure): never "missing".
  const kidney = [0, 0, 0, 150_000, 0, 150_000];
  const cases: CaseShapeSummary[] = spleen.map((s, i) => ({
    id: `a${i}`, source: 'a', voxelMm3: 8,
    organs: [organ('spleen', s), organ('liver', liver[i]!, i === 2 ? 3 : 1), organ('kidney_left', kidney[i]!), organ('pancreas', i === 1 ? 0 : 70_000, 1, i === 1)],
  }));
  // A source with three cases is not judged.
  cases.push(...[0, 1, 2].map((i) => ({ id: `b${i}`, source: 'b', voxelMm3: 8, organs: [organ('spleen', i ? 100_000 : 0)] })));
  const f = organPriorFlags(cases);
  assert.deepEqual(f.get('a5'), [{ organ: 'spleen', kind: 'missing', voxels: 100_000 / 8, value: 0, expected: 100_000 }]);
  // Liver median of the six is 1,505,000; the 3,000,000 case is far outside the 10 % floor × 3.
  assert.deepEqual(f.get('a3')!.map((x) => [x.organ, x.kind, x.voxels]), [['liver', 'volume', (3_000_000 - 1_505_000) / 8]]);
  assert.deepEqual(f.get('a2')!.map((x) => [x.organ, x.kind, x.value, x.expected]), [['liver', 'pieces', 3, 1]]);
  // The labelled pancreas of a1 is absent but labelled: no flag. Nothing else is flagged.
  for (const id of ['a0', 'a1', 'a4', 'b0', 'b1', 'b2']) assert.deepEqual(f.get(id), [], id);
  assert.throws(() => organPriorFlags(cases, { k: 0 }), (e: unknown) => isMedmaskError(e) && /k 0/.test(e.message));
});
