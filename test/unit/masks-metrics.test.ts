import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connectedComponents, fillHoles, keepLargestComponents, morph, otsuThreshold, percentile, removeSmallComponents, binarize, type Shape3 } from '../../src/core/masks/binary.js';
import { buildMask, outsideFraction, parseMaskPipeline, DEFAULT_MASK_PIPELINE, type MaskPipeline } from '../../src/core/masks/pipeline.js';
import { dice, hd95, iou, meanLabelDice, squaredDistanceTo } from '../../src/core/metrics/segmentation.js';
import { auroc, ece, fprAtTpr, riskCoverage, rocCurve } from '../../src/core/metrics/classification.js';
import { combineOod, energy, fitMahalanobis, fitOodCombiner, mahalanobis } from '../../src/core/uncertainty/ood.js';
import { Rng } from '../../src/core/random.js';

const REF = JSON.parse(readFileSync(new URL('../fixtures/metrics/reference.json', import.meta.url), 'utf8')) as {
  masks: { grid: Shape3; spacing: [number, number, number]; a: number[]; b: number[]; dice: number; iou: number; hd95: number; components_full: { count: number; sizes: number[] }; holes_in: number[]; fill_holes: number[]; erode2: number[]; dilate2: number[] }[];
  classification: { labels: number[]; scores: number[]; auroc: number; fpr_at_95tpr: number; confidence: number[]; correct: number[]; ece15: number };
  mahalanobis: { features: number[][]; labels: number[]; shrinkage: number; queries: number[][]; distances: number[] };
};

test('Dice, IoU, HD95 (mm, anisotropic), components, fill holes, erosion and dilation equal SciPy on 2D and 3D masks', () => {
  for (const [i, c] of REF.masks.entries()) {
    const what = `case ${i} (${c.grid.join('×')})`;
    assert.ok(Math.abs(dice(c.a, c.b) - c.dice) < 1e-12, what);
    assert.ok(Math.abs(iou(c.a, c.b) - c.iou) < 1e-12, what);
    assert.ok(Math.abs(hd95(c.a, c.b, c.grid, c.spacing) - c.hd95) < 1e-9, `${what}: hd95 ${hd95(c.a, c.b, c.grid, c.spacing)} vs scipy ${c.hd95}`);
    const comp = connectedComponents(c.a, c.grid);
    assert.equal(comp.count, c.components_full.count, what);
    assert.deepEqual(comp.sizes.slice(1).sort((x, y) => y - x), c.components_full.sizes, what);
    assert.deepEqual(Array.from(fillHoles(c.holes_in, c.grid)), c.fill_holes, `${what}: fill holes`);
    assert.deepEqual(Array.from(morph(c.a, c.grid, 'erode', 2)), c.erode2, `${what}: erosion`);
    assert.deepEqual(Array.from(morph(c.a, c.grid, 'dilate', 2)), c.dilate2, `${what}: dilation`);
  }
});

test('distance transform equals brute force with anisotropic spacing', () => {
  const grid: Shape3 = [9, 7, 5], sp: [number, number, number] = [0.5, 1.5, 2.5];
  const rng = new Rng(3);
  const seed = Uint8Array.from({ length: 9 * 7 * 5 }, () => (rng.random() < 0.05 ? 1 : 0));
  const d = squaredDistanceTo(seed, grid, sp);
  const pts: number[][] = [];
  for (let z = 0; z < 5; z++) for (let y = 0; y < 7; y++) for (let x = 0; x < 9; x++) if (seed[x + 9 * (y + 7 * z)]) pts.push([x, y, z]);
  for (let z = 0; z < 5; z++) for (let y = 0; y < 7; y++) for (let x = 0; x < 9; x++) {
    const want = Math.min(...pts.map(([a, b, c]) => ((x - a!) * sp[0]) ** 2 + ((y - b!) * sp[1]) ** 2 + ((z - c!) * sp[2]) ** 2));
    assert.ok(Math.abs(d[x + 9 * (y + 7 * z)]! - want) < 1e-9);
  }
  assert.equal(hd95(new Uint8Array(4), new Uint8Array(4), [2, 2, 1], [1, 1, 1]), 0);
  assert.equal(hd95(Uint8Array.of(1, 0, 0, 0), new Uint8Array(4), [2, 2, 1], [1, 1, 1]), Infinity);
  // Two discs offset by 3 px along x at 0.5 mm: every boundary distance ≤ 1.5 mm, HD95 close to it.
  const n = 40, a = new Uint8Array(n * n), b = new Uint8Array(n * n);
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) {
    if ((x - 18) ** 2 + (y - 20) ** 2 <= 64) a[y * n + x] = 1;
    if ((x - 21) ** 2 + (y - 20) ** 2 <= 64) b[y * n + x] = 1;
  }
  const h = hd95(a, b, [n, n, 1], [0.5, 0.5, 1]);
  assert.ok(h > 1 && h <= 1.5 + 1e-9, `hd95 ${h}`);
});

test('AUROC, FPR@95TPR and ECE equal scikit-learn / NumPy; ROC ends at (1, 1)', () => {
  const c = REF.classification;
  assert.ok(Math.abs(auroc(c.scores, c.labels) - c.auroc) < 1e-12);
  assert.ok(Math.abs(fprAtTpr(c.scores, c.labels) - c.fpr_at_95tpr) < 1e-12);
  assert.ok(Math.abs(ece(c.confidence, c.correct) - c.ece15) < 1e-12);
  const r = rocCurve(c.scores, c.labels);
  assert.equal(r.fpr.at(-1), 1);
  assert.equal(r.tpr.at(-1), 1);
  assert.equal(ece([0.9, 0.9], [1, 0]), 0.4);
});

test('risk–coverage: a perfect ranking has the smallest area, a random one ≈ the mean error, ties do not depend on order', () => {
  const err = [0, 0, 0, 1, 1];
  const perfect = riskCoverage([0, 1, 2, 3, 4], err);
  const worst = riskCoverage([4, 3, 2, 1, 0], err);
  // Perfect: risks 0, 0, 0, 1/4, 2/5 → area (0.25 + 0.4) / 5.
  assert.ok(Math.abs(perfect.aurc - (0.25 + 0.4) / 5) < 1e-12);
  assert.ok(worst.aurc > perfect.aurc);
  const tied = riskCoverage([1, 1, 1, 1, 1], err);
  assert.ok(Math.abs(tied.aurc - 0.4) < 1e-12, 'all tied: every risk equals the mean error');
  assert.deepEqual(riskCoverage([0, 1, 1, 2], [0, 1, 0, 1]).risk, riskCoverage([0, 1, 1, 2], [0, 0, 1, 1]).risk);
});

test('Mahalanobis with shared shrunk covariance equals NumPy; energy is −logsumexp; the combiner flags the target FPR', () => {
  const m = REF.mahalanobis;
  const model = fitMahalanobis(m.features, m.labels, m.shrinkage);
  for (const [i, q] of m.queries.entries()) assert.ok(Math.abs(mahalanobis(model, q) - m.distances[i]!) < 1e-8 * Math.max(1, m.distances[i]!), `query ${i}`);
  assert.ok(Math.abs(energy([1, 2, 3]) + Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3))) < 1e-12);
  assert.ok(Math.abs(energy([1000, 1000]) + 1000 + Math.log(2)) < 1e-9, 'stable for large logits');
  const rng = new Rng(1);
  const fit = { a: Array.from({ length: 200 }, () => rng.normal()), b: Array.from({ length: 200 }, () => rng.normal(5, 2)) };
  const comb = fitOodCombiner(fit, 0.1);
  const above = fit.a.filter((_, i) => combineOod(comb, { a: fit.a[i]!, b: fit.b[i]! }) > comb.threshold).length;
  assert.ok(above <= 20 && above >= 17, `${above} of 200 fit images above the threshold at FPR 0.1`);
  assert.ok(combineOod(comb, { a: 6, b: 15 }) > comb.threshold);
});

test('Otsu and percentile thresholds; components helpers; fusion by intersection, mean and confidence weights', () => {
  const vals = [...new Array(50).fill(0.1), ...new Array(50).fill(0.9)];
  const t = otsuThreshold(vals);
  assert.ok(t > 0.1 && t < 0.9, `otsu ${t}`);
  assert.equal(binarize(vals, { method: 'otsu' }).mask.reduce((a, b) => a + b, 0), 50);
  assert.equal(percentile([1, 2, 3, 4], 50), 2.5);
  const grid: Shape3 = [6, 1, 1];
  assert.deepEqual(Array.from(removeSmallComponents([1, 0, 1, 1, 0, 1], grid, 2)), [0, 0, 1, 1, 0, 0]);
  assert.deepEqual(Array.from(keepLargestComponents([1, 0, 1, 1, 0, 1], grid, 1)), [0, 0, 1, 1, 0, 0]);
  const g: Shape3 = [4, 1, 1];
  const a = { map: [0.9, 0.8, 0.1, 0.0], confidence: 0.9 }, b = { map: [0.0, 0.9, 0.8, 0.1], confidence: 0.3 };
  const fixed = { method: 'fixed' as const, value: 0.5 };
  assert.deepEqual(Array.from(buildMask([a, b], g, { fusion: 'intersection', threshold: fixed, constraints: [] }).mask), [0, 1, 0, 0]);
  assert.deepEqual(Array.from(buildMask([a, b], g, { fusion: 'mean', threshold: fixed, constraints: [] }).mask), [0, 1, 0, 0]);
  // Weighted: (0.9·0.9 + 0.3·0)/1.2 = 0.675 > 0.5 at pixel 0; (0.9·0.1 + 0.3·0.8)/1.2 = 0.275 at pixel 2.
  assert.deepEqual(Array.from(buildMask([a, b], g, { fusion: 'confidence-weighted', threshold: fixed, constraints: [] }).mask), [1, 1, 0, 0]);
});

test('constraints: restrict to the ROI, fill holes, remove small, area cap reported; a pipeline file with a typo names the field', () => {
  const n = 20, grid: Shape3 = [n, n, 1];
  const map = new Float32Array(n * n), roi = new Uint8Array(n * n);
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) {
    const r2 = (x - 10) ** 2 + (y - 10) ** 2;
    if (r2 <= 25 && r2 > 2) map[y * n + x] = 1; // a ring with a hole
    if (x === 1 && y === 1) map[y * n + x] = 1; // a speck
    if (x < 14) roi[y * n + x] = 1;
  }
  const res = buildMask([{ map, confidence: 1 }], grid, {
    fusion: 'intersection', threshold: { method: 'fixed', value: 0.5 },
    constraints: [{ op: 'restrict', to: 'roi' }, { op: 'remove-small', minPixels: 3 }, { op: 'fill-holes' }, { op: 'max-area', fraction: 0.05 }],
  }, { roi });
  let expected = 0;
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) if ((x - 10) ** 2 + (y - 10) ** 2 <= 25 && x < 14) expected++;
  assert.equal(res.mask.reduce((a, b) => a + b, 0), expected);
  assert.equal(res.mask[1 * n + 1], 0);
  assert.ok(res.failures.some((f) => /exceeds 0.05/.test(f)), res.failures.join('; '));
  assert.throws(() => parseMaskPipeline({ constraints: [{ op: 'fil-holes' }] }, 'p.json'), /p\.json: constraints\[0\]\.op.*fil-holes.*did you mean "fill-holes"/);
  assert.throws(() => parseMaskPipeline({ fusion: 'intersect' }), /fusion: .*intersect.*did you mean "intersection"/);
  assert.throws(() => parseMaskPipeline({ constraints: [{ op: 'remove-small' }] }), /constraints\[0\]\.minPixels/);
  assert.deepEqual(parseMaskPipeline({}), DEFAULT_MASK_PIPELINE);
  const full = { fusion: 'mean', threshold: { method: 'percentile', p: 90 }, constraints: [{ op: 'restrict', to: 'roi' }, { op: 'refine', dilate: 2, core: 0.6 }, { op: 'open', iterations: 1 }, { op: 'remove-small', minPixels: 12 }, { op: 'fill-holes' }, { op: 'keep-largest', k: 2 }, { op: 'max-area', fraction: 0.3 }, { op: 'close' }] };
  assert.deepEqual(parseMaskPipeline(full), full);
  assert.deepEqual(parseMaskPipeline(DEFAULT_MASK_PIPELINE), DEFAULT_MASK_PIPELINE);
  assert.throws(() => parseMaskPipeline({ threshold: { method: 'fixed', value: 0.5, vlaue: 1 } }), /threshold\.vlaue/);
});

test('refine: a coarse saliency blob snaps to the bright lesion inside it and drops a rib crossing the region', () => {
  const n = 64, grid: Shape3 = [n, n, 1];
  const image = new Float32Array(n * n), fused = new Float32Array(n * n), truth = new Uint8Array(n * n);
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) {
    const i = y * n + x;
    image[i] = 60 + ((x * 7 + y * 13) % 5); // lung with a little texture
    if (Math.abs(y - 20) <= 2) image[i] = 100; // a rib band across the picture
    if ((x - 30) ** 2 + (y - 30) ** 2 <= 36) {
      image[i] = 110;
      truth[i] = 1;
    }
    fused[i] = Math.exp(-((x - 31) ** 2 + (y - 29) ** 2) / (2 * 9 ** 2)); // a coarse, offset CAM
  }
  const coarse = binarize(fused, { method: 'fixed', value: 0.5 }).mask;
  assert.ok(dice(coarse, truth) < 0.6, `the coarse mask is coarse (${dice(coarse, truth)})`);
  const res = buildMask([{ map: fused, confidence: 1 }], grid, { fusion: 'mean', threshold: { method: 'fixed', value: 0.5 }, constraints: [{ op: 'refine', dilate: 3 }, { op: 'fill-holes' }] }, { image });
  assert.ok(dice(res.mask, truth) > 0.95, `refined Dice ${dice(res.mask, truth)}`);
  for (let x = 0; x < n; x++) assert.equal(res.mask[20 * n + x], 0, 'the rib is not part of the lesion');
  const skipped = buildMask([{ map: fused, confidence: 1 }], grid, { fusion: 'mean', threshold: { method: 'fixed', value: 0.5 }, constraints: [{ op: 'refine' }] });
  assert.deepEqual(skipped.notes, ['refine: skipped, no image intensities given']);
});

/** A noisy lung (58 ± 4 grey levels) with horizontal rib bands 6 px thick every 16 rows. */
function noisyLung(n: number, seed: number): Float32Array {
  const rng = new Rng(seed), image = new Float32Array(n * n);
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) image[y * n + x] = 58 + rng.normal(0, 4) + (y % 16 < 6 ? 40 : 0);
  return image;
}
const refineOnly = (refine: Record<string, unknown>, after: MaskPipeline['constraints'] = []): MaskPipeline =>
  parseMaskPipeline({ fusion: 'mean', threshold: { method: 'fixed', value: 0.5 }, constraints: [{ op: 'refine', ...refine }, ...after] });

test('refine minContrast: a region that is nearly all background is not split inside its own noise', () => {
  const n = 96, grid: Shape3 = [n, n, 1];
  const rng = new Rng(11);
  const image = new Float32Array(n * n), fused = new Float32Array(n * n), truth = new Uint8Array(n * n);
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) {
    const i = y * n + x;
    image[i] = 58 + 6 * Math.sin(x / 5) * Math.cos(y / 7) + rng.normal(0, 3); // lung texture and noise
    if ((x - 44) ** 2 + (y - 50) ** 2 <= 9) {
      image[i] += 30; // a small nodule, 29 px, in a salient blob of ~2500 px
      truth[i] = 1;
    }
    fused[i] = Math.exp(-((x - 48) ** 2 + (y - 46) ** 2) / (2 * 24 ** 2));
  }
  const otsuOnly = buildMask([{ map: fused, confidence: 1 }], grid, refineOnly({ dilate: 0, core: 0 }), { image });
  const robust = buildMask([{ map: fused, confidence: 1 }], grid, refineOnly({ dilate: 0, core: 0, minContrast: 3 }), { image });
  assert.ok(dice(otsuOnly.mask, truth) < 0.3, `Otsu alone splits the noise (Dice ${dice(otsuOnly.mask, truth)})`);
  assert.ok(dice(robust.mask, truth) > 0.9, `with minContrast the nodule alone (Dice ${dice(robust.mask, truth)})`);
});

test('refine bridge: a cavity whose top and bottom walls the rib suppression flattened is closed and filled, ribs stay out', () => {
  const n = 96, grid: Shape3 = [n, n, 1];
  const image = noisyLung(n, 5), fused = new Float32Array(n * n), truth = new Uint8Array(n * n);
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) {
    const i = y * n + x, d = Math.hypot(x - 48, y - 56);
    if (d <= 12) {
      image[i] = d < 7 ? 40 : 58 + 45; // dark air-filled centre, wall 5 px thick
      truth[i] = 1;
    }
    fused[i] = Math.exp(-((x - 50) ** 2 + (y - 54) ** 2) / (2 * 10 ** 2));
  }
  const steps: MaskPipeline['constraints'] = [{ op: 'fill-holes' }];
  const base = { dilate: 4, core: 0.6, suppress: 4, suppressShape: 'vertical', polarity: 'bright', minContrast: 2 };
  const open = buildMask([{ map: fused, confidence: 1 }], grid, refineOnly(base, steps), { image });
  const bridged = buildMask([{ map: fused, confidence: 1 }], grid, refineOnly({ ...base, bridge: 7 }, steps), { image });
  // Without the bridge the vertical opening leaves two side arcs: the lumen cannot be filled.
  assert.ok(dice(open.mask, truth) < 0.75, `side arcs only (Dice ${dice(open.mask, truth)})`);
  assert.ok(dice(bridged.mask, truth) > 0.85, `the whole cavity (Dice ${dice(bridged.mask, truth)})`);
  let ribOutside = 0;
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) if (bridged.mask[y * n + x] && Math.hypot(x - 48, y - 56) > 12 + 7) ribOutside++;
  assert.equal(ribOutside, 0, 'rib pixels beyond the bridge radius are not restored');
});

test('refine polarity: a dark lesion is picked when the side is fixed to dark', () => {
  const n = 64, grid: Shape3 = [n, n, 1];
  const rng = new Rng(3);
  const image = new Float32Array(n * n), fused = new Float32Array(n * n), truth = new Uint8Array(n * n);
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) {
    const i = y * n + x;
    image[i] = 150 + rng.normal(0, 3);
    if ((x - 30) ** 2 + (y - 32) ** 2 <= 49) {
      image[i] = 90 + rng.normal(0, 3);
      truth[i] = 1;
    }
    fused[i] = Math.exp(-((x - 32) ** 2 + (y - 32) ** 2) / (2 * 12 ** 2));
  }
  const dark = buildMask([{ map: fused, confidence: 1 }], grid, refineOnly({ dilate: 2, polarity: 'dark', minContrast: 3 }), { image });
  const bright = buildMask([{ map: fused, confidence: 1 }], grid, refineOnly({ dilate: 2, polarity: 'bright', minContrast: 3 }), { image });
  assert.ok(dice(dark.mask, truth) > 0.9, `dark Dice ${dice(dark.mask, truth)}`);
  const auto = buildMask([{ map: fused, confidence: 1 }], grid, refineOnly({ dilate: 2, minContrast: 3 }), { image });
  assert.ok(dice(auto.mask, truth) > 0.9, `auto: the side with more saliency (Dice ${dice(auto.mask, truth)})`);
  assert.ok(dice(bright.mask, truth) < 0.5, `bright does not find it (Dice ${dice(bright.mask, truth)})`);
  assert.throws(() => parseMaskPipeline({ constraints: [{ op: 'refine', polarity: 'brite' }] }), /constraints\[0\]\.polarity: "brite" is not one of auto, bright, dark/);
});

test('outside: the fraction of the salient area farther than reach from the mask', () => {
  assert.equal(outsideFraction(Uint8Array.of(1, 1, 0, 0, 1), Uint8Array.of(1, 0, 0, 0, 0), [5, 1, 1], 1), 1 / 3);
  assert.equal(outsideFraction(new Uint8Array(5), Uint8Array.of(1, 0, 0, 0, 0), [5, 1, 1], 1), 0);
  assert.equal(outsideFraction(Uint8Array.of(0, 1, 1), new Uint8Array(3), [3, 1, 1], 4), 1, 'an empty mask explains nothing');
  // Two equal salient blobs, the constraints keep one (keep-largest breaks the tie): half is outside.
  const n = 64, grid: Shape3 = [n, n, 1];
  const map = new Float32Array(n * n);
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) if ((y >= 10 && y < 20 && ((x >= 8 && x < 18) || (x >= 40 && x < 50)))) map[y * n + x] = 1;
  const res = buildMask([{ map, confidence: 1 }], grid, { fusion: 'mean', threshold: { method: 'fixed', value: 0.5 }, constraints: [{ op: 'keep-largest', k: 1 }] }, { reach: 3 });
  assert.equal(res.outside, 0.5);
});

test('meanLabelDice: per-label Dice of label maps averaged, absent labels count as 1, equals dice() of each label\'s binary masks', () => {
  const pred = [1, 1, 2, 0, 3, 3], truth = [1, 2, 2, 0, 0, 3];
  // label 1: |P|=2 |T|=1 ∩=1 → 2/3; label 2: |P|=1 |T|=2 ∩=1 → 2/3; label 3: |P|=2 |T|=1 ∩=1 → 2/3; label 7: absent → 1
  assert.ok(Math.abs(meanLabelDice(pred, truth, [1, 2, 3, 7]) - (3 * (2 / 3) + 1) / 4) < 1e-12);
  const rng = new Rng(8);
  const a = Array.from({ length: 500 }, () => rng.int(0, 5)), b = a.map((v) => (rng.random() < 0.3 ? rng.int(0, 5) : v));
  const labels = [1, 2, 3, 4, 5];
  const perLabel = labels.map((l) => dice(a.map((v) => +(v === l)), b.map((v) => +(v === l))));
  assert.ok(Math.abs(meanLabelDice(a, b, labels) - perLabel.reduce((x, y) => x + y, 0) / labels.length) < 1e-12);
  assert.equal(meanLabelDice(a, b, []), 1);
  assert.throws(() => meanLabelDice([1], [1, 2], [1]), /label maps differ in size: 1 vs 2 voxels/);
});

test('open with keepIfEmptied keeps a lone blob smaller than the element, and still opens away a thin line beside a large blob', () => {
  const n = 40, grid: Shape3 = [n, n, 1];
  // a 5×5 square: an opening with a 7×7 element (3 iterations) removes it completely
  const small = new Float32Array(n * n);
  for (let y = 10; y < 15; y++) for (let x = 10; x < 15; x++) small[y * n + x] = 1;
  const pipe = (keep: boolean): MaskPipeline => ({ fusion: 'mean', threshold: { method: 'fixed', value: 0.5 }, constraints: [{ op: 'open', iterations: 3, ...(keep ? { keepIfEmptied: true } : {}) }] });
  assert.equal(buildMask([{ map: small, confidence: 1 }], grid, pipe(false)).mask.reduce((a, b) => a + b, 0), 0);
  assert.equal(buildMask([{ map: small, confidence: 1 }], grid, pipe(true)).mask.reduce((a, b) => a + b, 0), 25);
  // a 12×12 square with a 1-px line: the line goes, the square (survives a 7×7 opening) stays whole
  const big = new Float32Array(n * n);
  for (let y = 20; y < 32; y++) for (let x = 20; x < 32; x++) big[y * n + x] = 1;
  for (let x = 2; x < 20; x++) big[5 * n + x] = 1;
  const kept = buildMask([{ map: big, confidence: 1 }], grid, pipe(true)).mask;
  assert.equal(kept.reduce((a, b) => a + b, 0), 144);
  assert.equal(kept[5 * n + 10], 0);
  assert.deepEqual(parseMaskPipeline({ constraints: [{ op: 'open', iterations: 3, keepIfEmptied: true }] }).constraints, [{ op: 'open', iterations: 3, keepIfEmptied: true }]);
  assert.throws(() => parseMaskPipeline({ constraints: [{ op: 'open', keepIfEmptied: 'yes' }] }), /keepIfEmptied/);
});

test('head-cut: mask pixels where the mask heads say background are cut; no heads, or a cut that would empty the mask, leaves it alone', () => {
  const n = 30, grid: Shape3 = [n, n, 1];
  // a 10×10 lesion (x 5–14) with a bright 6-px-wide band joined to its right (x 15–24), as refine
  // leaves a lesion that touches the heart's border
  const map = new Float32Array(n * n);
  for (let y = 10; y < 20; y++) for (let x = 5; x < 25; x++) map[y * n + x] = 1;
  // the heads: lesion probability 0.9 on the lesion, 0.1 on the band, 0.3 exactly on the column x = 15
  const head = new Float32Array(n * n);
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) head[y * n + x] = x < 15 ? 0.9 : x === 15 ? 0.3 : 0.1;
  const pipe: MaskPipeline = { fusion: 'mean', threshold: { method: 'fixed', value: 0.5 }, constraints: [{ op: 'head-cut', below: 0.3 }] };
  const cut = buildMask([{ map, confidence: 1 }], grid, pipe, { head });
  // kept: the lesion (100 px) and the column at exactly 0.3 (10 px); the band beyond it goes
  assert.equal(cut.mask.reduce((a, b) => a + b, 0), 110);
  assert.equal(cut.mask[12 * n + 15], 1);
  assert.equal(cut.mask[12 * n + 16], 0);
  assert.deepEqual(cut.trace.map((t) => t.step), ['fusion:mean', 'head-cut']);
  // without heads the step is skipped, noted and absent from the trace: the mask is the threshold's
  const none = buildMask([{ map, confidence: 1 }], grid, pipe);
  assert.equal(none.mask.reduce((a, b) => a + b, 0), 200);
  assert.deepEqual(none.trace.map((t) => t.step), ['fusion:mean']);
  assert.ok(none.notes.some((s) => /head-cut: skipped/.test(s)), none.notes.join('; '));
  // heads that call everything background do not empty the mask
  const low = buildMask([{ map, confidence: 1 }], grid, pipe, { head: new Float32Array(n * n).fill(0.05) });
  assert.equal(low.mask.reduce((a, b) => a + b, 0), 200);
  assert.throws(() => buildMask([{ map, confidence: 1 }], grid, pipe, { head: new Float32Array(10) }), /heads' map has 10 values/);
  assert.deepEqual(parseMaskPipeline({ constraints: [{ op: 'head-cut', below: 0.3 }] }).constraints, [{ op: 'head-cut', below: 0.3 }]);
  assert.throws(() => parseMaskPipeline({ constraints: [{ op: 'head-cut' }] }), /below/);
  assert.throws(() => parseMaskPipeline({ constraints: [{ op: 'head-cut', below: 1.5 }] }), /below/);
});
