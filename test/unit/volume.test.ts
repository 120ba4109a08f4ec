import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createVolume, voxelToWorld, voxelToRas, geometryFromAffine, orientationCode, sameGeometry, type Mat3 } from '../../src/core/volume.js';

test('voxelToWorld maps voxel indices by origin + direction·spacing (closed form)', () => {
  // 90° rotation about z: i → +y (posterior), j → −x (right).
  const dir: Mat3 = [0, -1, 0, 1, 0, 0, 0, 0, 1];
  const v = createVolume([4, 5, 6], 'int16', { spacing: [2, 3, 4], origin: [10, 20, 30], direction: dir });
  const a = voxelToWorld(v);
  // voxel (1, 2, 3): world = (10 - 2*3, 20 + 1*2, 30 + 3*4)
  const w = [0, 1, 2].map((r) => a[r * 4]! * 1 + a[r * 4 + 1]! * 2 + a[r * 4 + 2]! * 3 + a[r * 4 + 3]!);
  assert.deepEqual(w, [4, 22, 42]);
  assert.equal(orientationCode(dir), 'PRS');
  const g = geometryFromAffine(a);
  assert.deepEqual(g.spacing, [2, 3, 4]);
  assert.deepEqual(g.direction, dir);
  assert.equal(g.shear, 0);
});

test('RAS affine negates x and y of the LPS affine; identity LPS reads as RAS code "RAS" when flipped', () => {
  const v = createVolume([2, 2, 2], 'uint8', { direction: [-1, 0, 0, 0, -1, 0, 0, 0, 1], origin: [5, 6, 7] });
  const ras = voxelToRas(v);
  assert.deepEqual(ras.slice(0, 4).map((x) => x + 0), [1, 0, 0, -5]);
  assert.equal(orientationCode(v.direction), 'RAS');
});

test('createVolume rejects inconsistent data with the numbers in the message', () => {
  assert.throws(() => createVolume([2, 2, 1], 'uint8', { data: new Uint8Array(3) }), /data length 3 does not match shape 2×2×1/);
  assert.throws(() => createVolume([2, 0, 1], 'uint8'), /shape \[2,0,1\]/);
});

test('sameGeometry notices a shifted origin', () => {
  const a = createVolume([3, 3, 3], 'uint8');
  const b = createVolume([3, 3, 3], 'uint8', { origin: [0, 0, 0.01] });
  assert.equal(sameGeometry(a, b), false);
  assert.equal(sameGeometry(a, b, 0.1), true);
});
