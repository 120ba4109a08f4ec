/**
 * Shape-prior attention (core/atlas/shape-priors.ts) on hand-built label maps whose holes and
 * stray pieces are known by construction.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { shapePriorFlags } from '../../src/core/atlas/shape-priors.js';

const S: [number, number, number] = [20, 20, 6];
const at = (x: number, y: number, z: number) => x + S[0] * (y + S[1] * z);

/** A 12×12 block of organ 5 in slices 1–4 with a 2×2 background cavity in slices 2–3, a blob elsewhere. */
function scene() {
  const m = new Uint8Array(S[0] * S[1] * S[2]);
  for (let z = 1; z <= 4; z++) for (let y = 4; y < 16; y++) for (let x = 4; x < 16; x++) m[at(x, y, z)] = 5;
  const hole: number[] = [];
  for (let z = 2; z <= 3; z++) for (let y = 9; y < 11; y++) for (let x = 9; x < 11; x++) { m[at(x, y, z)] = 0; hole.push(at(x, y, z)); }
  // Another organ enclosed by organ 5 in slice 4: not background, so not a hole.
  m[at(7, 7, 4)] = 3;
  // A stray piece of organ 5, far away (2 voxels), and an organ-3 blob that must not count.
  const stray = [at(1, 1, 0), at(2, 1, 0)];
  for (const v of stray) m[v] = 5;
  m[at(18, 18, 5)] = 3;
  return { m, hole, stray };
}

test('shape priors: enclosed background and stray pieces are flagged, nothing else', () => {
  const { m, hole, stray } = scene();
  const f = shapePriorFlags(m, 5, S);
  const on = (a: Uint8Array) => [...a.keys()].filter((v) => a[v]);
  assert.deepEqual(on(f.holes), [...hole].sort((a, b) => a - b));
  assert.deepEqual(on(f.strays), stray);
  assert.equal(f.voxels, hole.length + stray.length);
  assert.deepEqual(on(f.mask), [...hole, ...stray].sort((a, b) => a - b));
  // Switched off one at a time.
  assert.equal(shapePriorFlags(m, 5, S, { holes: false }).voxels, stray.length);
  assert.equal(shapePriorFlags(m, 5, S, { strays: false }).voxels, hole.length);
  // A cavity open to the outside in its slice is not enclosed: cut a channel to the border.
  const open = m.slice();
  for (let x = 11; x < 20; x++) for (let z = 2; z <= 3; z++) open[at(x, 9, z)] = 0;
  assert.equal(shapePriorFlags(open, 5, S, { strays: false }).voxels, 0);
  // An organ absent from the map: nothing flagged; a map of the wrong size: a clear error.
  assert.equal(shapePriorFlags(m, 9, S).voxels, 0);
  assert.throws(() => shapePriorFlags(m.subarray(1), 5, S), /voxels|grid|shape/);
});
