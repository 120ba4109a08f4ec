// resampleToGrid's sparse path (interpolate only where the taps reach non-zero source voxels):
// the same values as the passes over the whole grid, and both equal a per-voxel trilinear /
// nearest reference written here from the closed form, for blobs anywhere (corners, edges, one
// voxel), coarser and finer grids, shifted origins, uint8 and float32 outputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gridAtSpacing, resampleToGrid, type Grid } from '../../src/core/atlas/resample.js';
import { Rng } from '../../src/core/random.js';
import type { Vec3 } from '../../src/core/volume.js';

/** Per-voxel reference: clamp the source coordinate, then trilinear (or round half to even). */
function reference(data: ArrayLike<number>, src: Grid, dst: Grid, nearest: boolean): Float64Array {
  const out = new Float64Array(dst.shape[0] * dst.shape[1] * dst.shape[2]);
  const coord = (ax: number, i: number) => {
    const x = (dst.origin[ax]! - src.origin[ax]! + i * dst.spacing[ax]!) / src.spacing[ax]!; // identity directions here
    return Math.min(src.shape[ax]! - 1, Math.max(0, x));
  };
  const [nx, ny] = src.shape;
  const at = (i: number, j: number, k: number) => data[i + nx * (j + ny * k)]!;
  for (let k = 0, v = 0; k < dst.shape[2]; k++) for (let j = 0; j < dst.shape[1]; j++) for (let i = 0; i < dst.shape[0]; i++, v++) {
    const c = [coord(0, i), coord(1, j), coord(2, k)];
    if (nearest) {
      const r = c.map((x) => { const q = Math.round(x); return Math.abs(x - Math.trunc(x) - 0.5) < 1e-9 && q % 2 ? q - 1 : q; });
      out[v] = at(r[0]!, r[1]!, r[2]!);
      continue;
    }
    const f = c.map(Math.floor), w = c.map((x, a) => x - f[a]!);
    let s = 0;
    for (let m = 0; m < 8; m++) {
      const idx = [0, 1, 2].map((a) => Math.min(src.shape[a]! - 1, f[a]! + ((m >> a) & 1)));
      const wt = [0, 1, 2].reduce((p, a) => p * ((m >> a) & 1 ? w[a]! : 1 - w[a]!), 1);
      s += wt * at(idx[0]!, idx[1]!, idx[2]!);
    }
    out[v] = s;
  }
  return out;
}

test('sparse resampling equals the full passes and the per-voxel reference', () => {
  const rng = new Rng(11);
  const identity = [1, 0, 0, 0, 1, 0, 0, 0, 1] as Grid['direction'];
  const src: Grid = { shape: [23, 19, 11], spacing: [4, 4, 6], origin: [-40, 12, 300], direction: identity };
  const n = 23 * 19 * 11;
  const blobs: [string, Vec3, Vec3][] = [
    ['centre', [8, 6, 3], [14, 12, 7]], ['corner lo', [0, 0, 0], [2, 3, 1]], ['corner hi', [20, 16, 9], [22, 18, 10]],
    ['one voxel', [11, 9, 5], [11, 9, 5]], ['edge slab', [0, 5, 0], [22, 6, 10]], ['everything', [0, 0, 0], [22, 18, 10]],
  ];
  const targets: [string, Grid][] = [
    ['finer (CT grid)', gridAtSpacing(src, [0.7, 0.9, 2.5])],
    ['coarser', gridAtSpacing(src, [5, 7, 9])],
    ['shifted, finer', { shape: [70, 50, 20], spacing: [1.1, 1.3, 2], origin: [-33.3, 20.2, 303.5], direction: identity }],
  ];
  let sparseRuns = 0;
  for (const [bname, lo, hi] of blobs) {
    const f32 = new Float32Array(n), u8 = new Uint8Array(n);
    for (let k = lo[2]; k <= hi[2]; k++) for (let j = lo[1]; j <= hi[1]; j++) for (let i = lo[0]; i <= hi[0]; i++) {
      const v = i + 23 * (j + 19 * k);
      f32[v] = rng.uniform(0.001, 1);
      u8[v] = 1 + Math.floor(rng.uniform(0, 255));
    }
    for (const [tname, dst] of targets) {
      const nd = dst.shape[0] * dst.shape[1] * dst.shape[2];
      for (const nearest of [false, true]) {
        const interpolation = nearest ? 'nearest' : 'linear';
        const a = resampleToGrid(f32, src, dst, { interpolation });
        const b = resampleToGrid(f32, src, dst, { interpolation, sparse: false });
        assert.deepEqual(a, b, `${bname} → ${tname} ${interpolation} float32`);
        const ua = resampleToGrid(u8, src, dst, { interpolation, out: new Uint8Array(nd).fill(7) });
        const ub = resampleToGrid(u8, src, dst, { interpolation, out: new Uint8Array(nd), sparse: false });
        assert.deepEqual(ua, ub, `${bname} → ${tname} ${interpolation} uint8 (a reused output buffer is overwritten)`);
        const ref = reference(f32, src, dst, nearest);
        for (let v = 0; v < nd; v++) assert.ok(Math.abs(a[v]! - ref[v]!) < 1e-5, `${bname} → ${tname} ${interpolation} voxel ${v}: ${a[v]} vs ${ref[v]}`);
        let nz = 0;
        for (let v = 0; v < nd; v++) if (a[v]) nz++;
        if (nz < nd * 0.6) sparseRuns++;
      }
    }
  }
  assert.ok(sparseRuns > 10, 'most cases took the sparse path');
  const zeros = resampleToGrid(new Uint8Array(n), src, targets[0]![1], { out: new Uint8Array(targets[0]![1].shape.reduce((x, y) => x * y, 1)).fill(9) });
  assert.ok(zeros.every((x) => x === 0), 'all-zero input gives zeros');
});
