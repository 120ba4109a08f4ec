// Sliding-window grid, Gaussian importance map, streaming blender, resampling and reorientation
// against closed forms and brute-force float64 references.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SlabBlender, extractWindow, gaussianImportance, maskBox, planWindows, windowStarts } from '../../src/core/atlas/sliding-window.js';
import { gridAtSpacing, resampleToGrid, type Grid } from '../../src/core/atlas/resample.js';
import { applyAxes, invertAxes, lpsAxes, transformGrid } from '../../src/core/atlas/orientation.js';
import { voxelToWorld, type Mat3, type Vec3 } from '../../src/core/volume.js';
import { isMedmaskError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/random.js';

test('window starts: nnU-Net rule (evenly spread) and MONAI dense_patch_slices; centred when the axis is short', () => {
  assert.deepEqual(windowStarts(100, 64, 0.5), [0, 18, 36]); // k = ceil(36 / 32) + 1 = 3
  assert.deepEqual(windowStarts(100, 64, 0.5, 'monai'), [0, 32, 36]);
  assert.deepEqual(windowStarts(64, 64), [0]);
  assert.deepEqual(windowStarts(50, 64), [-7]);
  assert.deepEqual(windowStarts(96, 32, 0), [0, 32, 64]);
  assert.deepEqual(windowStarts(96, 32, 0, 'monai'), [0, 32, 64]);
  assert.deepEqual(windowStarts(97, 32, 0.75, 'monai'), [0, 8, 16, 24, 32, 40, 48, 56, 64, 65]);
  // Every voxel is covered and the last window ends at n.
  for (const rule of ['nnunet', 'monai'] as const) for (const n of [65, 90, 123]) for (const o of [0, 0.25, 0.5, 0.8]) {
    const s = windowStarts(n, 32, o, rule);
    assert.equal(s[0], 0);
    assert.equal(s[s.length - 1]! + 32, n);
    for (let i = 1; i < s.length; i++) assert.ok(s[i]! - s[i - 1]! <= 32 && s[i]! > s[i - 1]!);
  }
  assert.throws(() => windowStarts(10, 4, 1), (e) => isMedmaskError(e) && /overlap 1/.test(e.message));
});

test('Gaussian importance map equals the closed form exp(−(i − (p−1)/2)² / (2 (p/8)²)) per axis, multiplied', () => {
  const patch: Vec3 = [8, 5, 12];
  const w = gaussianImportance(patch);
  const g = (i: number, p: number) => Math.exp(-((i - (p - 1) / 2) ** 2) / (2 * (p / 8) ** 2));
  for (let z = 0; z < 12; z++) for (let y = 0; y < 5; y++) for (let x = 0; x < 8; x++) {
    const want = g(x, 8) * g(y, 5) * g(z, 12);
    assert.ok(Math.abs(w[x + 8 * (y + 5 * z)]! - want) <= 1e-7 * want + 1e-30, `(${x},${y},${z})`);
  }
  // Hand values: p = 8, σ = 1, centre 3.5: the edge weight is exp(−3.5²/2); p = 5: centre weight 1.
  assert.ok(Math.abs(w[0 + 8 * (2 + 5 * 0)]! / w[3 + 8 * (2 + 5 * 0)]! - Math.exp(-(3.5 ** 2) / 2) / Math.exp(-(0.5 ** 2) / 2)) < 1e-6);
});

test('blender: Σ w·y / Σ w over covering windows equals a float64 brute force, slices handed on in order, ring memory only', () => {
  const shape: Vec3 = [23, 17, 29];
  const patch: Vec3 = [8, 6, 10];
  const C = 2;
  const plan = planWindows(shape, patch, { overlap: 0.5 });
  const w = gaussianImportance(patch);
  const rng = new Rng(9);
  const outs = plan.windows.map(() => Float32Array.from({ length: C * patch[0] * patch[1] * patch[2] }, () => rng.uniform(0, 1)));
  // Brute force in float64.
  const n = shape[0] * shape[1] * shape[2];
  const num = new Float64Array(C * n), den = new Float64Array(n);
  plan.windows.forEach((s, k) => {
    for (let z = 0; z < patch[2]; z++) for (let y = 0; y < patch[1]; y++) for (let x = 0; x < patch[0]; x++) {
      const v = s[0] + x + shape[0] * (s[1] + y + shape[1] * (s[2] + z));
      const pi = x + patch[0] * (y + patch[1] * z);
      den[v]! += w[pi]!;
      for (let c = 0; c < C; c++) num[c * n + v]! += w[pi]! * outs[k]![c * patch[0] * patch[1] * patch[2] + pi]!;
    }
  });
  const got = new Float32Array(C * n);
  const order: number[] = [];
  const plane = shape[0] * shape[1];
  const b = new SlabBlender(shape, patch, C, w, [1, 0], (z, slice) => {
    order.push(z);
    for (let c = 0; c < C; c++) got.set(slice.subarray(c * plane, (c + 1) * plane), c * n + z * plane);
  });
  plan.windows.forEach((s, k) => b.add(s, outs[k]!));
  b.finish();
  assert.deepEqual(order, Array.from({ length: shape[2] }, (_, z) => z));
  let worst = 0;
  for (let c = 0; c < C; c++) for (let v = 0; v < n; v++) worst = Math.max(worst, Math.abs(got[c * n + v]! - num[c * n + v]! / den[v]!));
  assert.ok(worst < 2e-6, `max difference ${worst}`);
  // Out-of-order windows are refused.
  const b2 = new SlabBlender(shape, patch, C, w, [1, 0], () => {});
  b2.add([0, 0, 19], outs[0]!);
  assert.throws(() => b2.add([0, 0, 0], outs[0]!), (e) => isMedmaskError(e) && /sorted by z/.test(e.hint ?? ''));
});

test('blender: a pointwise "model" gives back f(x) exactly where covered; uncovered voxels get the empty value', () => {
  const shape: Vec3 = [30, 20, 12];
  const patch: Vec3 = [16, 16, 8];
  const n = 30 * 20 * 12;
  const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37));
  const f = (v: number) => 1 / (1 + Math.exp(-(2 * v - 0.3)));
  const tissue = new Uint8Array(n);
  // Tissue only in a corner box: windows elsewhere are skipped.
  for (let z = 0; z < 5; z++) for (let y = 0; y < 6; y++) for (let xx = 0; xx < 7; xx++) tissue[xx + 30 * (y + 20 * z)] = 1;
  const plan = planWindows(shape, patch, { tissue });
  assert.ok(plan.skipped > 0 && plan.windows.length < plan.total);
  assert.ok(plan.windows.every((s) => s[0] < 7 && s[1] < 6 && s[2] < 5));
  const buf = new Float32Array(patch[0] * patch[1] * patch[2]);
  const res = new Float32Array(n);
  const b = new SlabBlender(shape, patch, 1, gaussianImportance(patch), [-1], (z, s) => res.set(s, z * 600));
  for (const s of plan.windows) {
    extractWindow(x, shape, s, patch, buf);
    b.add(s, buf.map(f));
  }
  b.finish();
  const covered = new Uint8Array(n);
  for (const s of plan.windows) for (let z = 0; z < 8; z++) for (let y = 0; y < 16; y++) for (let xx = 0; xx < 16; xx++) covered[s[0] + xx + 30 * (s[1] + y + 20 * (s[2] + z))] = 1;
  for (let v = 0; v < n; v++) {
    if (covered[v]) assert.ok(Math.abs(res[v]! - Math.fround(f(x[v]!))) < 1e-6, `voxel ${v}`);
    else assert.equal(res[v], -1);
  }
  assert.deepEqual(maskBox(tissue, shape), { lo: [0, 0, 0], hi: [7, 6, 5] });
  assert.equal(maskBox(new Uint8Array(n), shape), undefined);
});

test('extractWindow pads outside the volume', () => {
  const shape: Vec3 = [3, 2, 2];
  const src = Float32Array.from({ length: 12 }, (_, i) => i + 1);
  const out = new Float32Array(4 * 3 * 3);
  extractWindow(src, shape, [-1, 0, -1], [4, 3, 3], out, -5);
  // z = −1 plane all pad; z = 0: rows y = 0, 1 then a padded row; x = −1 is pad.
  assert.deepEqual(Array.from(out.subarray(0, 12)), new Array(12).fill(-5));
  assert.deepEqual(Array.from(out.subarray(12, 24)), [-5, 1, 2, 3, -5, 4, 5, 6, -5, -5, -5, -5]);
  assert.deepEqual(Array.from(out.subarray(24, 36)), [-5, 7, 8, 9, -5, 10, 11, 12, -5, -5, -5, -5]);
});

const dirs: Record<string, Mat3> = {
  identity: [1, 0, 0, 0, 1, 0, 0, 0, 1],
  ras: [-1, 0, 0, 0, -1, 0, 0, 0, 1],
  // index axes: i → world S, j → world R (−x), k → world P (+y)
  permuted: [0, -1, 0, 0, 0, 1, 1, 0, 0],
};

test('resampling: trilinear reproduces a linear function of world position; the grid keeps its first voxel centre', () => {
  for (const [name, direction] of Object.entries(dirs)) {
    const src: Grid = { shape: [21, 17, 13], spacing: [0.8, 1.1, 2.5], origin: [-10, 5, -300], direction };
    const A = voxelToWorld(src);
    const f = (p: number[]) => 3 + 0.5 * p[0]! - 0.25 * p[1]! + 0.125 * p[2]!;
    const world = (g: Grid, i: number, j: number, k: number) => { const M = voxelToWorld(g); return [0, 1, 2].map((r) => M[r * 4]! * i + M[r * 4 + 1]! * j + M[r * 4 + 2]! * k + M[r * 4 + 3]!); };
    const data = new Float32Array(21 * 17 * 13);
    for (let k = 0, v = 0; k < 13; k++) for (let j = 0; j < 17; j++) for (let i = 0; i < 21; i++, v++) data[v] = f(world(src, i, j, k));
    assert.ok(A.length === 16);
    const dst = gridAtSpacing(src, [1.5, 0.7, 3.1]);
    assert.deepEqual(dst.shape, [Math.floor((20 * 0.8) / 1.5) + 1, Math.floor((16 * 1.1) / 0.7) + 1, Math.floor((12 * 2.5) / 3.1) + 1]);
    assert.deepEqual(dst.origin, src.origin);
    const out = resampleToGrid(data, src, dst) as Float32Array;
    for (let k = 0, v = 0; k < dst.shape[2]; k++) for (let j = 0; j < dst.shape[1]; j++) for (let i = 0; i < dst.shape[0]; i++, v++) {
      const want = f(world(dst, i, j, k));
      assert.ok(Math.abs(out[v]! - want) < 1e-4, `${name} (${i},${j},${k}): ${out[v]} vs ${want}`);
    }
  }
});

test('resampling: nearest copies labels exactly at integer ratios; back to the original grid; integer outputs round and clamp', () => {
  const src: Grid = { shape: [12, 10, 6], spacing: [1, 1, 2], origin: [0, 0, 0], direction: dirs.identity! };
  const labels = Uint8Array.from({ length: 720 }, (_, v) => (v * 7) % 5);
  const dst = gridAtSpacing(src, [2, 3, 4]); // ratios 2, 3, 2
  assert.deepEqual(dst.shape, [6, 4, 3]);
  const down = resampleToGrid(labels, src, dst, { interpolation: 'nearest', out: new Uint8Array(72) });
  for (let k = 0, v = 0; k < 3; k++) for (let j = 0; j < 4; j++) for (let i = 0; i < 6; i++, v++) assert.equal(down[v], labels[2 * i + 12 * (3 * j + 10 * 2 * k)]);
  // Back up with nearest: voxel i of the source takes coarse voxel round_half_even(i / 2) (clamped).
  const up = resampleToGrid(down, dst, src, { interpolation: 'nearest', out: new Uint8Array(720) });
  const rhe = (x: number) => { const r = Math.round(x); return Math.abs(x % 1 - 0.5) < 1e-9 && r % 2 ? r - 1 : r; };
  for (let k = 0, v = 0; k < 6; k++) for (let j = 0; j < 10; j++) for (let i = 0; i < 12; i++, v++) {
    const I = Math.min(5, rhe(i / 2)), J = Math.min(3, rhe(j / 3)), K = Math.min(2, rhe(k / 2));
    assert.equal(up[v], down[I + 6 * (J + 4 * K)], `(${i},${j},${k})`);
  }
  // uint8 probabilities, linear: halfway between 0 and 255 rounds to 128; beyond the last centre clamps.
  const line: Grid = { shape: [2, 1, 1], spacing: [2, 1, 1], origin: [0, 0, 0], direction: dirs.identity! };
  const fine: Grid = { shape: [4, 1, 1], spacing: [1, 1, 1], origin: [0, 0, 0], direction: dirs.identity! };
  assert.deepEqual(Array.from(resampleToGrid(Uint8Array.from([0, 255]), line, fine, { out: new Uint8Array(4) })), [0, 128, 255, 255]);
  assert.throws(() => resampleToGrid(labels, src, { ...dst, direction: dirs.ras! }), (e) => isMedmaskError(e) && e.code === 'GEOMETRY_MISMATCH');
});

test('reorientation to LPS axes keeps every voxel at its world position, and inverts exactly', () => {
  for (const [name, direction] of Object.entries(dirs)) {
    const g: Grid = { shape: [5, 4, 3], spacing: [1, 2, 3], origin: [10, -20, 30], direction };
    const t = lpsAxes(direction);
    const g2 = transformGrid(g, t);
    // The new direction is close to identity (LPS voxel axes).
    for (let r = 0; r < 3; r++) assert.ok(g2.direction[r * 3 + r]! > 0.99, `${name}: ${JSON.stringify(g2.direction)}`);
    const data = Int16Array.from({ length: 60 }, (_, i) => i * 3 - 50);
    const moved = applyAxes(data, g.shape, t);
    const A = voxelToWorld(g), B = voxelToWorld(g2);
    const key = (M: number[], i: number, j: number, k: number) => [0, 1, 2].map((r) => (M[r * 4]! * i + M[r * 4 + 1]! * j + M[r * 4 + 2]! * k + M[r * 4 + 3]!).toFixed(6)).join(',');
    const at = new Map<string, number>();
    for (let k = 0, v = 0; k < 3; k++) for (let j = 0; j < 4; j++) for (let i = 0; i < 5; i++, v++) at.set(key(A, i, j, k), data[v]!);
    for (let k = 0, v = 0; k < g2.shape[2]; k++) for (let j = 0; j < g2.shape[1]; j++) for (let i = 0; i < g2.shape[0]; i++, v++) {
      assert.equal(moved[v], at.get(key(B, i, j, k)), `${name} new voxel (${i},${j},${k})`);
    }
    assert.deepEqual(applyAxes(moved, g2.shape, invertAxes(t)), data);
  }
  assert.deepEqual(lpsAxes(dirs.ras!), { perm: [0, 1, 2], flip: [true, true, false] });
});
