import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { createVolume } from '../../src/core/volume.js';
import { decodeNifti, encodeNifti } from '../../src/io/nifti.js';
import { saveLabelPlanes } from '../../src/server/label-blobs.js';
import { FsBlobStore } from '../../src/store/index.js';

test('label blobs: per-plane gzip members decode as one .nii.gz (zlib, system gzip); a one-plane edit compresses one plane', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-lb-'));
  try {
    const blobs = new FsBlobStore(join(dir, 'blobs'), { fsync: false });
    const kept = new Map<string, number[]>();
    const index = { get: async (b: string) => kept.get(b) ?? null, put: async (b: string, m: number[]) => void kept.set(b, m) };
    const shape: [number, number, number] = [24, 16, 9];
    const labels = Uint8Array.from({ length: 24 * 16 * 9 }, (_, i) => (i % 97 < 30 ? (i % 5) : 0));
    const vol = createVolume(shape, 'uint8', { data: labels, spacing: [0.7, 0.7, 2.5] });
    const nifti = encodeNifti(vol, { labelMap: true });
    const header = () => nifti.subarray(0, 352);
    const planeOf = (a: Uint8Array, z: number) => a.subarray(z * 24 * 16, (z + 1) * 24 * 16);
    const noWhole = () => Promise.reject(new Error('the whole volume is not needed'));
    const first = await saveLabelPlanes({ blobs, index, header, shape, base: null, planes: new Map(Array.from({ length: 9 }, (_, z) => [z, planeOf(labels, z)])), whole: noWhole });
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
    const second = await saveLabelPlanes({ blobs, index, header: () => { throw new Error('header not needed'); }, shape, base: first.hash, planes: new Map([[4, planeOf(edited, 4)]]), whole: noWhole });
    assert.equal(second.compressedPlanes, 1);
    const v2 = await blobs.get(second.hash);
    assert.deepEqual([...(await decodeNifti(new Uint8Array(v2), 'v2')).data], [...edited]);
    // and as one stream, byte for byte what a whole re-encode of the edited volume inflates to
    assert.ok(Buffer.from(gunzipSync(v2)).equals(Buffer.from(encodeNifti(createVolume(shape, 'uint8', { data: edited, spacing: [0.7, 0.7, 2.5] }), { labelMap: true }))));
    // only the edited plane's member differs from the base's (members: header, then planes)
    const [m1, m2] = [kept.get(first.hash)!, kept.get(second.hash)!];
    assert.deepEqual(m1.flatMap((n, t) => (n === m2[t] ? [] : [t])).filter((t) => t !== 5), []);
    // an empty base: unchanged planes share one compressed empty plane; a base written elsewhere: every plane
    const fromEmpty = await saveLabelPlanes({ blobs, index, header, shape, base: null, planes: new Map([[2, planeOf(labels, 2)]]), whole: noWhole });
    assert.equal(fromEmpty.compressedPlanes, 1);
    const want = new Uint8Array(labels.length);
    want.set(planeOf(labels, 2), 2 * 24 * 16);
    assert.deepEqual([...(await decodeNifti(new Uint8Array(await blobs.get(fromEmpty.hash)), 'e')).data], [...want]);
    const foreign = (await blobs.put(gzipSync(nifti))).hash;
    const third = await saveLabelPlanes({ blobs, index, header, shape, base: foreign, planes: new Map([[4, planeOf(edited, 4)]]), whole: async () => edited });
    assert.equal(third.compressedPlanes, 9);
    assert.deepEqual([...(await decodeNifti(new Uint8Array(await blobs.get(third.hash)), 'v3')).data], [...edited]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
