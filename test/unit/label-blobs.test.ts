import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { createVolume } from '../../src/core/volume.js';
import { decodeNifti, encodeNifti } from '../../src/io/nifti.js';
import { saveLabelsIncremental } from '../../src/server/label-blobs.js';
import { VolumeSlices } from '../../src/server/volume-slices.js';
import { FsBlobStore } from '../../src/store/index.js';

test('label blobs: per-plane gzip members decode as one .nii.gz (zlib, system gzip); a one-plane edit compresses one plane', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-lb-'));
  try {
    const blobs = new FsBlobStore(join(dir, 'blobs'), { fsync: false });
    const slices = new VolumeSlices(join(dir, 'slices'));
    const shape: [number, number, number] = [24, 16, 9];
    const labels = Uint8Array.from({ length: 24 * 16 * 9 }, (_, i) => (i % 97 < 30 ? (i % 5) : 0));
    const vol = createVolume(shape, 'uint8', { data: labels, spacing: [0.7, 0.7, 2.5] });
    const nifti = encodeNifti(vol, { labelMap: true });
    const header = () => nifti.subarray(0, 352);
    const first = await saveLabelsIncremental(blobs, slices, header, shape, labels, null, new Set());
    assert.equal(first.compressedPlanes, 9);
    const bytes = await blobs.get(first.hash);
    // zlib inflates every member: the bytes are the single-stream encoding's bytes
    assert.ok(Buffer.from(gunzipSync(bytes)).equals(Buffer.from(nifti)));
    const back = await decodeNifti(new Uint8Array(bytes), 'members');
    assert.deepEqual([...back.data], [...labels]);
    assert.deepEqual(back.spacing, [Math.fround(0.7), Math.fround(0.7), 2.5]); // NIfTI stores float32
    // the system's gzip agrees (an independent decoder)
    const f = join(dir, 'v1.nii.gz');
    writeFileSync(f, bytes);
    const z = spawnSync('gzip', ['-dc', f]);
    assert.equal(z.status, 0, String(z.stderr));
    assert.ok(z.stdout.equals(Buffer.from(nifti)));
    // edit one plane: only that plane is compressed again, every other member is the base's
    const edited = labels.slice();
    edited.fill(7, 4 * 24 * 16, 4 * 24 * 16 + 50);
    const second = await saveLabelsIncremental(blobs, slices, () => { throw new Error('header not needed'); }, shape, edited, first.hash, new Set([4]));
    assert.equal(second.compressedPlanes, 1);
    assert.deepEqual([...(await decodeNifti(new Uint8Array(await blobs.get(second.hash)), 'v2')).data], [...edited]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
