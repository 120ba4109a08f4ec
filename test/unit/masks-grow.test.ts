import { test } from 'node:test';
import assert from 'node:assert/strict';
import { growBright } from '../../src/core/masks/grow.js';
import { buildMask, parseMaskPipeline, type MaskPipeline } from '../../src/core/masks/pipeline.js';
import type { Shape3 } from '../../src/core/masks/binary.js';

const n = 20, grid: Shape3 = [n, n, 1];
const sum = (a: ArrayLike<number>): number => { let s = 0; for (let i = 0; i < a.length; i++) s += a[i]!; return s; };
// a 6×6 mask (x, y 7–12): intensities 5 on its left half, 9 on its right (median 7); beside it on the
// right a flank at 8 (x 13) and 9 (x 14) over y 6–13; the row above it (y 6) at 6; the rest 0
function scene() {
  const mask = new Uint8Array(n * n), image = new Float32Array(n * n);
  for (let y = 7; y <= 12; y++) for (let x = 7; x <= 12; x++) { mask[y * n + x] = 1; image[y * n + x] = x <= 9 ? 5 : 9; }
  for (let x = 6; x <= 12; x++) image[6 * n + x] = 6;
  for (let y = 6; y <= 13; y++) { image[y * n + 13] = 8; image[y * n + 14] = 9; }
  return { mask, image };
}

test('grow-bright: one dilation onto pixels at least as bright as the mask median, inside the ROI', () => {
  const { mask, image } = scene();
  const one = growBright(mask, image, grid, undefined, { pixels: 1, percentile: 50 });
  // the flank column x = 13, y 6–13 (8 px) joins; the row above (6 < 7) and the dark rest do not
  const want = Uint8Array.from(mask);
  for (let y = 6; y <= 13; y++) want[y * n + 13] = 1;
  assert.deepEqual(Array.from(one), Array.from(want));
  // two dilations: the level stays the original mask's median, so x = 14 (9) joins too, nothing else
  const two = growBright(mask, image, grid, undefined, { pixels: 2, percentile: 50 });
  assert.equal(sum(two), 36 + 8 + 8);
  // the ROI bounds it; a higher percentile (9 at p 75: only the bright half) keeps the flank at 8 out
  const roi = new Uint8Array(n * n).fill(1);
  roi[13 * n + 13] = 0;
  assert.equal(sum(growBright(mask, image, grid, roi, {})), 36 + 7);
  assert.equal(sum(growBright(mask, image, grid, undefined, { percentile: 75 })), 36);
  assert.equal(sum(growBright(new Uint8Array(n * n), image, grid, undefined)), 0);
  assert.throws(() => growBright(mask, new Float32Array(10), grid, undefined), /image has 10 values/);
});

test('grow-bright as a pipeline step: withHeads skips it without the heads, parsed and validated', () => {
  const { mask, image } = scene();
  const map = Float32Array.from(mask);
  const pipe: MaskPipeline = { fusion: 'mean', threshold: { method: 'fixed', value: 0.5 }, constraints: [{ op: 'grow-bright', withHeads: true }] };
  const head = new Float32Array(n * n).fill(0.9);
  assert.deepEqual(buildMask([{ map, confidence: 1 }], grid, pipe, { image, head }).trace, [{ step: 'fusion:mean', pixels: 36 }, { step: 'grow-bright', pixels: 44 }]);
  const skipped = buildMask([{ map, confidence: 1 }], grid, pipe, { image });
  assert.deepEqual(skipped.trace, [{ step: 'fusion:mean', pixels: 36 }]);
  assert.ok(skipped.notes.some((s) => /grow-bright: skipped/.test(s)));
  const noImage = buildMask([{ map, confidence: 1 }], grid, pipe, { head });
  assert.equal(sum(noImage.mask), 36);
  assert.ok(noImage.notes.some((s) => /grow-bright: skipped, no image/.test(s)));
  assert.deepEqual(parseMaskPipeline({ constraints: [{ op: 'grow-bright', pixels: 1, percentile: 50 }] }).constraints, [{ op: 'grow-bright', pixels: 1, percentile: 50 }]);
  assert.throws(() => parseMaskPipeline({ constraints: [{ op: 'grow-bright', percentile: 150 }] }), /percentile/);
  assert.throws(() => parseMaskPipeline({ constraints: [{ op: 'grow-bright', pixels: 0 }] }), /pixels/);
});
