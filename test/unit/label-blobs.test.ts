import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { createVolume } from '../../src/core/volume.js';
import { decodeNifti, encodeNifti } from '../../src/io/nifti.js';
import * as niftiReader from 'nifti-reader-js';
import { crc32 } from 'node:zlib';
import { crc32Combine, saveLabelPlanes, type PlaneIndex } from '../../src/server/label-blobs.js';
import { FsBlobStore } from '../../src/store/index.js';

test('label blobs: one gzip member cut at every plane decodes as one .nii.gz (zlib, system gzip, nifti-reader-js as browsers use it); a one-plane edit compresses one plane', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-lb-'));
  try {
    const blobs = new FsBlobStore(join(dir, 'blobs'), { fsync: false });
    const kept = new Map<string, PlaneIndex>();
    const index = { get: async (b: string) => kept.get(b) ?? null, put: async (b: string, m: PlaneIndex) => void kept.set(b, m) };
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
    // zlib inflates the stream: the bytes are the single-stream encoding's bytes
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
    // `gzip -t` checks the trailer (the CRC-32 combined from the pieces' CRCs, and the length)
    assert.equal(spawnSync('gzip', ['-t', f]).status, 0);
    // the browser's reader (NiiVue / nifti-reader-js, fflate inside) reads past the first piece
    const inBrowser = niftiReader.decompress(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer) as ArrayBuffer;
    assert.equal(inBrowser.byteLength, nifti.length);
    assert.ok(Buffer.from(inBrowser).equals(Buffer.from(nifti)));
    // edit one plane: only that plane is compressed again, every other member is the base's
    const edited = labels.slice();
    edited.fill(7, 4 * 24 * 16, 4 * 24 * 16 + 50);
    const second = await saveLabelPlanes({ blobs, index, header: () => { throw new Error('header not needed'); }, shape, base: first.hash, planes: new Map([[4, planeOf(edited, 4)]]), whole: noWhole });
    assert.equal(second.compressedPlanes, 1);
    const v2 = await blobs.get(second.hash);
    assert.deepEqual([...(await decodeNifti(new Uint8Array(v2), 'v2')).data], [...edited]);
    // and as one stream, byte for byte what a whole re-encode of the edited volume inflates to
    assert.ok(Buffer.from(gunzipSync(v2)).equals(Buffer.from(encodeNifti(createVolume(shape, 'uint8', { data: edited, spacing: [0.7, 0.7, 2.5] }), { labelMap: true }))));
    assert.equal(spawnSync('gzip', ['-t', '-'], { input: v2 }).status, 0);
    // only the edited plane's piece differs from the base's (pieces: header, then planes)
    const [m1, m2] = [kept.get(first.hash)!, kept.get(second.hash)!];
    assert.deepEqual(m1.crcs.flatMap((c, t) => (c === m2.crcs[t] ? [] : [t])), [5]);
    assert.deepEqual(m1.lengths.flatMap((n, t) => (n === m2.lengths[t] ? [] : [t])).filter((t) => t !== 5), []);
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

test('crc32Combine: CRC-32 of a concatenation from the parts\' CRCs equals zlib\'s CRC-32 of the bytes', () => {
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
  for (const [la, lb] of [[0, 0], [0, 7], [5, 0], [1, 1], [352, 262144], [1000, 3], [4097, 65536], [3, 1 << 20]] as const) {
    const a = Uint8Array.from({ length: la }, rand);
    const b = Uint8Array.from({ length: lb }, rand);
    const whole = new Uint8Array(la + lb);
    whole.set(a);
    whole.set(b, la);
    assert.equal(crc32Combine(crc32(a), crc32(b), lb), crc32(whole), `lengths ${la} + ${lb}`);
  }
});
