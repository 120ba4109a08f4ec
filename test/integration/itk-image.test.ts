import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createVolume, voxelToWorld, type Mat3 } from '../../src/core/volume.js';
import { MedmaskError } from '../../src/core/errors.js';
import { readVolume, writeVolume } from '../../src/io/index.js';

const FIX = new URL('../fixtures/nifti/', import.meta.url).pathname;

test('NRRD written by hand per the NRRD spec: geometry from "space directions" (non-symmetric) and data', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-itk-'));
  try {
    // Axis i points +y (posterior) 2 mm, axis j points −x (right) 3 mm, axis k +z 4 mm.
    const hdr = 'NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\nsizes: 2 3 4\n' +
      'space directions: (0,2,0) (-3,0,0) (0,0,4)\nkinds: domain domain domain\nendian: little\nencoding: raw\nspace origin: (10,20,30)\n\n';
    const data = Int16Array.from({ length: 24 }, (_, i) => i * 10 - 5);
    const p = join(dir, 'hand.nrrd');
    writeFileSync(p, Buffer.concat([Buffer.from(hdr), Buffer.from(data.buffer)]));
    const v = await readVolume(p);
    assert.equal(v.meta.format, 'nrrd');
    assert.deepEqual(v.shape, [2, 3, 4]);
    assert.deepEqual(v.spacing, [2, 3, 4]);
    assert.deepEqual(Array.from(v.data), Array.from(data));
    // voxel (1, 2, 3) → origin + 1·(0,2,0) + 2·(−3,0,0) + 3·(0,0,4) = (4, 22, 42)
    const a = voxelToWorld(v);
    const w = [0, 1, 2].map((r) => a[r * 4]! * 1 + a[r * 4 + 1]! * 2 + a[r * 4 + 2]! * 3 + a[r * 4 + 3]! + 0);
    assert.deepEqual(w, [4, 22, 42]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the NRRD writer puts each index axis direction × spacing into "space directions" (non-symmetric direction)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-itk-'));
  try {
    // columns: i → +y (posterior), j → −x (right), k → +z; as a row-major matrix this is not symmetric
    const direction: Mat3 = [0, -1, 0, 1, 0, 0, 0, 0, 1];
    const v = createVolume([2, 3, 4], 'float32', { data: Float32Array.from({ length: 24 }, (_, i) => i / 4), spacing: [2, 3, 4], origin: [10, 20, 30], direction });
    const p = join(dir, 'w.nrrd');
    await writeVolume(v, p, { compress: false });
    const text = readFileSync(p).subarray(0, 1024).toString('latin1');
    assert.match(text, /space: left-posterior-superior/);
    const m = /space directions: (.*)/.exec(text);
    assert.ok(m, text);
    const vecs = [...m[1]!.matchAll(/\(([^)]*)\)/g)].map((x) => x[1]!.split(',').map(Number));
    assert.deepEqual(vecs, [[0, 2, 0], [-3, 0, 0], [0, 0, 4]]);
    assert.match(text, /space origin: \(10,\s*20,\s*30\)/);
    assert.match(text, /type: float/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('NIfTI → NRRD → MHA → NIfTI keeps data, voxel type and geometry', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-itk-'));
  try {
    for (const name of ['oblique_int16.nii.gz', 'sform_wins_uint16.nii.gz', 'qform_only_float32.nii', 'fourd_int16.nii.gz', 'bigendian_int32.nii', 'rgb24.nii', 'pair_int8.hdr', 'flat_uint32.nii', 'nifti2_float64.nii.gz']) {
      const a = await readVolume(join(FIX, name));
      let cur = a;
      for (const ext of ['nrrd', 'mha', 'mhd', 'nii.gz']) {
        const p = join(dir, `${name}.${ext}`);
        await writeVolume(cur, p);
        cur = await readVolume(p);
      }
      assert.deepEqual(cur.shape, a.shape, name);
      assert.equal(cur.components, a.components, name);
      assert.equal(cur.data.constructor.name, a.data.constructor.name, name);
      assert.deepEqual(Array.from(cur.data), Array.from(a.data), name);
      const A = voxelToWorld(a);
      voxelToWorld(cur).forEach((x, i) => assert.ok(Math.abs(x - A[i]!) < 1e-4, `${name} affine[${i}] ${x} vs ${A[i]}`));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a broken NRRD is a clear CORRUPT_FILE error naming the file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-itk-'));
  try {
    const p = join(dir, 'broken.nrrd');
    writeFileSync(p, 'NRRD0004\ntype: short\ndimension: 3\nsizes: 4 4 4\nencoding: raw\n\n\x01\x02');
    await assert.rejects(readVolume(p), (e: MedmaskError) => e.code === 'CORRUPT_FILE' && e.message.includes('broken.nrrd'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
