import { test } from 'node:test';
import assert from 'node:assert/strict';
import { erosionDepth, pruneThin } from '../../src/core/masks/prune.js';
import { openClose, type Shape3 } from '../../src/core/masks/binary.js';
import { buildMask, parseMaskPipeline, type MaskPipeline } from '../../src/core/masks/pipeline.js';

const sum = (a: ArrayLike<number>): number => { let s = 0; for (let i = 0; i < a.length; i++) s += a[i]!; return s; };
function rect(m: Uint8Array, n: number, x0: number, y0: number, w: number, h: number) {
  for (let y = y0; y < y0 + h; y++) for (let x = x0; x < x0 + w; x++) m[y * n + x] = 1;
}

test('erosionDepth is the chessboard distance to the background (border counts as background)', () => {
  const n = 7, grid: Shape3 = [n, n, 1];
  const d = erosionDepth(new Uint8Array(n * n).fill(1), grid);
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) assert.equal(d[y * n + x], 1 + Math.min(x, y, n - 1 - x, n - 1 - y), `(${x},${y})`);
  assert.equal(sum(erosionDepth(new Uint8Array(n * n), grid)), 0);
});

test('prune-thin: a lesion keeps its body and loses a thin structure joined to it; small or thin components stay whole', () => {
  const n = 48, grid: Shape3 = [n, n, 1];
  const m = new Uint8Array(n * n);
  rect(m, n, 4, 4, 11, 11); // lesion 11×11: depth 6, radius ⌊0.6·6⌋ = 3 (a 7×7 element)
  rect(m, n, 15, 8, 14, 3); // a rib 3 px wide joined to its right side: no 7×7 square fits in it
  rect(m, n, 30, 30, 5, 5); // a small nodule 5×5: depth 3, radius 1, a 3×3 element fits everywhere
  rect(m, n, 4, 30, 20, 2); // a vessel alone, 2 px wide: depth 1 < minDepth 3, kept whole
  const out = pruneThin(m, grid, { fraction: 0.6 });
  const want = new Uint8Array(n * n);
  rect(want, n, 4, 4, 11, 11);
  rect(want, n, 30, 30, 5, 5);
  rect(want, n, 4, 30, 20, 2);
  assert.deepEqual(Array.from(out), Array.from(want));
  // one fixed opening cannot do both: the element that removes the rib (radius 2) also erases the vessel and
  // the one that keeps the vessel (radius 1) keeps the rib
  assert.equal(sum(openClose(m, grid, 'open', 2)), 121 + 25);
  assert.ok(sum(openClose(m, grid, 'open', 1)) > sum(want));
  // two lesions 1 px apart, each opened with its own radius: the right one loses its tail, the left one nothing
  const m2 = new Uint8Array(n * n);
  rect(m2, n, 2, 2, 15, 15); // depth 8, radius 4
  rect(m2, n, 18, 2, 9, 9); // depth 5, radius 3
  rect(m2, n, 18, 11, 2, 10); // its 2-px tail running down beside the big lesion (1 px gap)
  const out2 = pruneThin(m2, grid, { fraction: 0.6 });
  const want2 = new Uint8Array(n * n);
  rect(want2, n, 2, 2, 15, 15);
  rect(want2, n, 18, 2, 9, 9);
  assert.deepEqual(Array.from(out2), Array.from(want2));
  // minDepth above the lesion's depth (6) leaves everything alone, and so does fraction 0
  assert.deepEqual(Array.from(pruneThin(m, grid, { fraction: 0.6, minDepth: 7 })), Array.from(m));
  assert.deepEqual(Array.from(pruneThin(m, grid, { fraction: 0 })), Array.from(m));
});

test('prune-thin as a pipeline step: traced, parsed, validated', () => {
  const n = 48, grid: Shape3 = [n, n, 1];
  const map = new Float32Array(n * n);
  rect(map as unknown as Uint8Array, n, 4, 4, 11, 11);
  for (let y = 8; y < 11; y++) for (let x = 15; x < 29; x++) map[y * n + x] = 1;
  const pipe: MaskPipeline = { fusion: 'mean', threshold: { method: 'fixed', value: 0.5 }, constraints: [{ op: 'prune-thin', fraction: 0.6 }] };
  const r = buildMask([{ map, confidence: 1 }], grid, pipe);
  assert.deepEqual(r.trace, [{ step: 'fusion:mean', pixels: 121 + 42 }, { step: 'prune-thin', pixels: 121 }]);
  // withHeads: skipped (noted, not traced) without the mask heads' map, run with it
  const gated: MaskPipeline = { ...pipe, constraints: [{ op: 'prune-thin', fraction: 0.6, withHeads: true }] };
  const skipped = buildMask([{ map, confidence: 1 }], grid, gated);
  assert.deepEqual(skipped.trace, [{ step: 'fusion:mean', pixels: 121 + 42 }]);
  assert.ok(skipped.notes.some((s) => /prune-thin: skipped/.test(s)), skipped.notes.join('; '));
  const ran = buildMask([{ map, confidence: 1 }], grid, gated, { head: new Float32Array(n * n).fill(0.9) });
  assert.deepEqual(ran.trace.map((t) => t.pixels), [121 + 42, 121]);
  assert.throws(() => parseMaskPipeline({ constraints: [{ op: 'prune-thin', fraction: 0.6, withHeads: 'yes' }] }), /withHeads/);
  assert.deepEqual(parseMaskPipeline({ constraints: [{ op: 'prune-thin', fraction: 0.6 }] }).constraints, [{ op: 'prune-thin', fraction: 0.6 }]);
  assert.throws(() => parseMaskPipeline({ constraints: [{ op: 'prune-thin' }] }), /fraction/);
  assert.throws(() => parseMaskPipeline({ constraints: [{ op: 'prune-thin', fraction: 1.5 }] }), /fraction/);
  assert.throws(() => parseMaskPipeline({ constraints: [{ op: 'prune-thin', fraction: 0.5, minDepth: 0 }] }), /minDepth/);
});
