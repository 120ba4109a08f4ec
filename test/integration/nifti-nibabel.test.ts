import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { voxelToRas, voxelIndex, type Volume } from '../../src/core/volume.js';
import { readVolume } from '../../src/io/index.js';

const FIX = new URL('../fixtures/nifti-ref/', import.meta.url).pathname;
const expected = JSON.parse(readFileSync(join(FIX, 'expected.json'), 'utf8')) as Record<
  string,
  { affine: number[][]; shape: number[]; dtype: string; values: Record<string, number | number[]>; sum?: number }
>;

function assertAffine(v: Volume, want: number[][], tol = 1e-5): void {
  const got = voxelToRas(v);
  want.flat().forEach((w, i) => assert.ok(Math.abs(got[i]! - w) <= tol * Math.max(1, Math.abs(w)), `affine[${i}] ${got[i]} vs nibabel ${w}`));
}

for (const [name, exp] of Object.entries(expected)) {
  test(`NIfTI ${name}: affine, shape and scaled values equal nibabel's`, async () => {
    const v = await readVolume(join(FIX, name));
    assertAffine(v, exp.affine);
    assert.deepEqual(v.shape, [exp.shape[0], exp.shape[1] ?? 1, exp.shape[2] ?? 1]);
    for (const [key, want] of Object.entries(exp.values)) {
      const [i, j, k] = key.split(',').map(Number) as [number, number, number];
      const got = Array.from({ length: v.components }, (_, c) => v.data[voxelIndex(v, i, j, k, c)]!);
      const w = Array.isArray(want) ? want : [want];
      assert.equal(got.length, w.length, `${key} components`);
      got.forEach((g, c) => assert.ok(Math.abs(g - w[c]!) <= 1e-6 * Math.max(1, Math.abs(w[c]!)), `${key}[${c}]: ${g} vs nibabel ${w[c]}`));
    }
    if (exp.sum !== undefined && v.components === 1) {
      let s = 0;
      for (const x of v.data) s += x;
      assert.ok(Math.abs(s - exp.sum) <= 1e-6 * Math.max(1, Math.abs(exp.sum)), `sum ${s} vs nibabel ${exp.sum}`);
    }
  });
}

test('NIfTI stored types are kept; CT with intercept -1024 comes out as int16', async () => {
  assert.equal((await readVolume(join(FIX, 'oblique_int16.nii.gz'))).data.constructor.name, 'Int16Array');
  assert.equal((await readVolume(join(FIX, 'sform_wins_uint16.nii.gz'))).data.constructor.name, 'Uint16Array');
  assert.equal((await readVolume(join(FIX, 'ct_intercept_uint16.nii.gz'))).data.constructor.name, 'Int16Array');
  assert.equal((await readVolume(join(FIX, 'scaled_uint8.nii.gz'))).data.constructor.name, 'Float32Array');
  assert.equal((await readVolume(join(FIX, 'nifti2_float64.nii.gz'))).data.constructor.name, 'Float64Array');
});
