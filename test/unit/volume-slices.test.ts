import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createVolume } from '../../src/core/volume.js';
import { extractSlice } from '../../src/server/slices.js';
import { VolumeSlices } from '../../src/server/volume-slices.js';

test('volume slices: every slice of every axis read from disk equals extractSlice of the decoded volume', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-vs-'));
  try {
    const vs = new VolumeSlices(join(dir, 'cache'));
    const shape: [number, number, number] = [13, 7, 5];
    const data = Int16Array.from({ length: 13 * 7 * 5 }, (_, i) => ((i * 7919) % 4001) - 2000);
    const vol = createVolume(shape, 'int16', { data });
    assert.equal(await vs.slice('abc', 'z', 0), null, 'nothing before the build');
    await Promise.all([vs.build('abc', vol), vs.build('abc', vol)]); // concurrent builds share the work
    assert.ok(await vs.slice('abc', 'z', 0));
    assert.equal(await vs.slice('abc', 'x', 0), null, 'sagittal planes only once asked for');
    await Promise.all([vs.extend('abc', vol, 'x'), vs.extend('abc', vol, 'y'), vs.extend('abc', vol, 'x')]);
    for (const axis of ['x', 'y', 'z'] as const) {
      const depth = axis === 'z' ? 5 : axis === 'y' ? 7 : 13;
      for (let k = 0; k < depth; k++) {
        const s = await vs.slice('abc', axis, k);
        assert.ok(s instanceof Int16Array);
        assert.deepEqual([...s], [...extractSlice(vol, axis, k).data], `${axis} ${k}`);
      }
      assert.equal(await vs.slice('abc', axis, depth), null, 'outside the volume');
    }
    const w = await vs.whole('abc');
    assert.deepEqual([...w!.data], [...data]);
    assert.deepEqual(w!.meta.shape, shape);
    // a fresh instance (a restarted server) reads the same files without building
    const again = new VolumeSlices(join(dir, 'cache'));
    assert.deepEqual([...(await again.slice('abc', 'y', 3))!], [...extractSlice(vol, 'y', 3).data]);
    assert.ok(readdirSync(join(dir, 'cache')).every((f) => /^abc\.(x|y|z|json)$/.test(f)), 'no temporary files left');
    await again.putJson('abc', 'values', [1, 5]);
    assert.deepEqual(await again.getJson('abc', 'values'), [1, 5]);
    // several components are not sliced here (the viewer greys them first)
    await vs.build('rgb', createVolume([2, 2, 1], 'uint8', { components: 3 }));
    assert.equal(await vs.slice('rgb', 'z', 0), null);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('volume slices: the folder keeps to its budget, removing the volumes built longest ago', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-vs-'));
  try {
    // each volume: 3 × 1000 bytes + its json; a budget of about two volumes
    const vs = new VolumeSlices(join(dir, 'c'), 6500);
    const v = () => createVolume([10, 10, 10], 'uint8', { data: new Uint8Array(1000).fill(3) });
    for (const k of ['a', 'b', 'c']) {
      await vs.build(k, v());
      await vs.extend(k, v(), 'x');
      await vs.extend(k, v(), 'y');
      await new Promise((r) => setTimeout(r, 20)); // distinct build times
    }
    assert.equal(await vs.slice('a', 'z', 0), null, 'the oldest went');
    assert.ok(await vs.slice('b', 'z', 0));
    assert.ok(await vs.slice('c', 'x', 9));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
