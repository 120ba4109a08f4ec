import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as nifti from 'nifti-reader-js';
import { createVolume } from '../../src/core/volume.js';
import { parseSlice } from '../../src/core/viewer/index.js';
import { encodeNifti } from '../../src/io/nifti.js';
import type { FsBlobStore } from '../../src/store/index.js';
import { multipartBody, phantomsDataset, startTestServer, waitFor, type TestServer } from '../helpers/server.js';

// An int16 volume with known voxels, uploaded as any user would; every expected value is computed here.
const SHAPE: [number, number, number] = [12, 10, 6];
const [NX, NY, NZ] = SHAPE;
const N = NX * NY * NZ;
const ct = Int16Array.from({ length: N }, (_, v) => -1000 + ((v * 37) % 1400));
let s: TestServer;
let sliceDir: string;

before(async () => {
  s = await startTestServer();
  sliceDir = join(s.dir, 'tmp', 'volume-slices');
});
after(async () => {
  await s?.close();
});

const files = (h: string) => ['z', 'y', 'x', 'json'].map((e) => join(sliceDir, `${h}.${e}`));
const complete = (h: string) => files(h).every((f) => existsSync(f)) && JSON.parse(readFileSync(join(sliceDir, `${h}.json`), 'utf8')).axes.length === 3;
const blobOfVersion = async (maskId: string, version: number) => (await s.store.db.selectFrom('mask_versions').select('blob').where('mask_id', '=', maskId).where('version', '=', version).executeTakeFirstOrThrow()).blob;
const at = (i: number, j: number, k: number) => i + NX * (j + NY * k);

test('slice files: made at upload and after each save (no decode on a request: the blobs can be gone); a one-slice save rewrites one plane piece of the deflate stream and reads back as a whole re-encode', async () => {
  const p = await s.as('admin', { method: 'POST', url: '/api/projects', payload: { name: 'sf' } });
  const d = await s.as('admin', { method: 'POST', url: `/api/projects/${p.json().id}/datasets`, payload: { name: 'sf' } });
  const mp = multipartBody([{ name: 'ct.nii.gz', data: gzipSync(encodeNifti(createVolume(SHAPE, 'int16', { data: ct, spacing: [0.8, 0.8, 2.5] }))) }]);
  const up = await s.as('reviewer', { method: 'POST', url: `/api/datasets/${d.json().id}/images`, headers: mp.headers, payload: mp.payload });
  assert.equal(up.statusCode, 201, up.body);
  const imageId = up.json().images[0].id as string;
  const imgBlob = (await s.store.db.selectFrom('images').select('blob').where('id', '=', imageId).executeTakeFirstOrThrow()).blob;
  // right after the upload, without any viewer request: the image's files (axial, coronal, sagittal)
  await waitFor(async () => complete(imgBlob), 20_000, 'slice files of the upload');
  assert.equal(readFileSync(join(sliceDir, `${imgBlob}.z`)).length, N * 2);
  const c = await s.as('reviewer', { method: 'POST', url: `/api/images/${imageId}/cases`, payload: { target: 't' } });
  const maskId = c.json().maskId as string;

  // two one-plane saves: v1 (on the empty v0) paints z=2, v2 paints z=4
  const edit = async (baseVersion: number, z: number, runs: number[]) => {
    const r = await s.as('annotator', { method: 'POST', url: `/api/viewer/masks/${maskId}/edits`, payload: { baseVersion, planes: [{ z, runs }] } });
    assert.equal(r.statusCode, 201, r.body);
    return r.json().version as number;
  };
  assert.equal(await edit(0, 2, [5, 10, 3]), 1);
  assert.equal(await edit(1, 4, [0, 7, 7, 30, 4, 7]), 2);
  const want = new Uint8Array(N);
  want.fill(3, 2 * NX * NY + 5, 2 * NX * NY + 15);
  want.fill(7, 4 * NX * NY, 4 * NX * NY + 7);
  want.fill(7, 4 * NX * NY + 30, 4 * NX * NY + 34);
  const [b1, b2] = [await blobOfVersion(maskId, 1), await blobOfVersion(maskId, 2)];
  await waitFor(async () => complete(b1) && complete(b2), 20_000, 'slice files of the saved versions');

  // v2's bytes are v1's except the edited plane's piece (pieces after the 10-byte gzip header:
  // the NIfTI header, then plane 0…)
  const [g1, g2] = [await s.blobs.get(b1), await s.blobs.get(b2)];
  const pieces = async (b: string) => (JSON.parse((await s.store.db.selectFrom('label_planes').select('members').where('blob', '=', b).executeTakeFirstOrThrow()).members) as { lengths: number[] }).lengths;
  const [m1, m2] = [await pieces(b1), await pieces(b2)];
  assert.equal(m1.length, NZ + 1);
  const chunk = (g: Buffer, m: number[], t: number) => g.subarray(10 + m.slice(0, t).reduce((a, x) => a + x, 0), 10 + m.slice(0, t + 1).reduce((a, x) => a + x, 0));
  const differ = m1.flatMap((_, t) => (chunk(g1, m1, t).equals(chunk(g2, m2, t)) ? [] : [t]));
  assert.deepEqual(differ, [4 + 1]);
  // an independent reader: the system's gzip inflates the stream, nifti-reader-js parses the
  // header and voxels; the bytes equal a whole re-encode of the expected labels
  const f = join(s.dir, 'v2.nii.gz');
  writeFileSync(f, g2);
  const z = spawnSync('gzip', ['-dc', f]);
  assert.equal(z.status, 0, String(z.stderr));
  const raw = z.stdout.buffer.slice(z.stdout.byteOffset, z.stdout.byteOffset + z.stdout.byteLength) as ArrayBuffer;
  const hdr = nifti.readHeader(raw)!;
  assert.deepEqual(hdr.dims.slice(1, 4), SHAPE);
  assert.deepEqual([...new Uint8Array(nifti.readImage(hdr, raw))], [...want]);
  assert.ok(z.stdout.equals(Buffer.from(encodeNifti(createVolume(SHAPE, 'uint8', { data: want, spacing: [0.8, 0.8, 2.5] }), { labelMap: true }))));
  // the downloads every other reader uses still decode to the same labels
  const dl = await s.as('viewer', { url: `/api/masks/${maskId}/versions/2/data?format=raw` });
  assert.deepEqual([...new Uint8Array(dl.rawPayload)], [...want]);

  // Gone from the blob store, the image and v2 are still served: every slice the viewer asks for
  // is read from the slice files, nothing is decoded
  const fs = s.blobs as FsBlobStore;
  for (const h of [imgBlob, b2]) rmSync(fs.pathOf(h));
  const info = (await s.as('viewer', { url: `/api/viewer/masks/${maskId}` })).json();
  assert.deepEqual(info.labels, [3, 7]);
  assert.equal(info.modality, 'ct');
  for (const [axis, index] of [['z', 4], ['y', 3], ['x', 7]] as const) {
    const r = await s.as('viewer', { url: `/api/viewer/masks/${maskId}/slice?axis=${axis}&index=${index}&layers=image,labels` });
    assert.equal(r.statusCode, 200, r.body.slice(0, 300));
    const sl = parseSlice(r.rawPayload.buffer.slice(r.rawPayload.byteOffset, r.rawPayload.byteOffset + r.rawPayload.byteLength) as ArrayBuffer);
    const img = sl.layers.image!, lab = sl.layers.labels!;
    const [w, h] = axis === 'z' ? [NX, NY] : axis === 'y' ? [NX, NZ] : [NY, NZ];
    for (let b = 0; b < h; b++) for (let a = 0; a < w; a++) {
      const v = axis === 'z' ? at(a, b, index) : axis === 'y' ? at(a, index, b) : at(index, a, b);
      assert.equal(img[a + w * b], ct[v]);
      assert.equal(lab[a + w * b], want[v]);
    }
  }
});

test('slice files: a job\'s images and versions get theirs when the cases are listed in the queue (the job ran in another process)', async () => {
  const ds = await phantomsDataset(s, { kind: '3d', n: 2, seed: 4, size: 32, project: 'sfj', dataset: 'sfj', reviewCases: true });
  const rows = await s.store.db.selectFrom('masks').innerJoin('images', 'images.id', 'masks.image_id').innerJoin('mask_versions', (j) => j.onRef('mask_versions.mask_id', '=', 'masks.id').onRef('mask_versions.version', '=', 'masks.current_version')).select(['images.blob as image', 'mask_versions.blob as label']).where('images.dataset_id', '=', ds).execute();
  assert.ok(rows.length >= 2);
  const hashes = rows.flatMap((r) => [r.image, r.label]);
  assert.ok(hashes.every((h) => !existsSync(join(sliceDir, `${h}.json`))), 'not made before the listing');
  const q = await s.as('viewer', { url: `/api/review/queue?dataset=${ds}` });
  assert.equal(q.statusCode, 200, q.body);
  await waitFor(async () => hashes.every(complete), 30_000, 'slice files of the job\'s cases');
});
