import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createVolume } from '../../src/core/volume.js';
import { extractViewSlice, parseSlice, windowValue, type ViewAxis } from '../../src/core/viewer/index.js';
import { putVolume } from '../../src/store/volumes.js';
import { readAxialPlanes } from '../../src/server/slice-stream.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { seedCases } from '../helpers/viewer-seed.js';

// A small CT-like volume with two labelled boxes and a heat map with two blobs, made here so every
// expected value is known without the server.
const SHAPE: [number, number, number] = [12, 10, 6];
const N = SHAPE[0] * SHAPE[1] * SHAPE[2];
const ct = Int16Array.from({ length: N }, (_, v) => -1000 + ((v * 37) % 1400));
const labels = new Uint8Array(N);
const heat = new Float32Array(N);
const at = (i: number, j: number, k: number) => i + SHAPE[0] * (j + SHAPE[1] * k);
for (let k = 1; k <= 3; k++) for (let j = 2; j <= 5; j++) for (let i = 2; i <= 6; i++) labels[at(i, j, k)] = 5;
for (let k = 2; k <= 4; k++) for (let j = 6; j <= 8; j++) for (let i = 8; i <= 10; i++) labels[at(i, j, k)] = 7;
for (let k = 0; k <= 1; k++) for (let j = 0; j <= 2; j++) for (let i = 0; i <= 2; i++) heat[at(i, j, k)] = 0.7; // 18 voxels
heat[at(1, 1, 1)] = 1.8; // the peak (normalised to 1)
for (let j = 7; j <= 8; j++) heat[at(5, j, 5)] = 1.2; // 2 voxels

let s: TestServer;
let maskId: string;

before(async () => {
  s = await startTestServer();
  const [c] = await seedCases(s.store, s.blobs, [{ name: 'ct.nii.gz', volume: createVolume(SHAPE, 'int16', { data: ct, spacing: [0.8, 0.8, 2.5] }), labels, target: 'organs', priority: 0.8, attention: heat }]);
  maskId = c!.maskId;
});
after(async () => {
  await s?.close();
});

async function slice(role: 'viewer' | 'annotator', query: string) {
  const res = await s.as(role, { url: `/api/viewer/masks/${maskId}/slice?${query}` });
  assert.equal(res.statusCode, 200, res.body.slice(0, 300));
  assert.equal(res.headers['content-type'], 'application/x-medmask-slice');
  const b = res.rawPayload;
  return parseSlice(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer);
}

test('viewer: case info gives geometry, CT window, label values present and overlays', async () => {
  const res = await s.as('viewer', { url: `/api/viewer/masks/${maskId}` });
  assert.equal(res.statusCode, 200, res.body);
  const info = res.json();
  assert.deepEqual(info.shape, SHAPE);
  assert.deepEqual(info.spacing, [0.8, 0.8, 2.5]);
  assert.equal(info.voxelType, 'int16');
  assert.equal(info.modality, 'ct');
  assert.deepEqual(info.window, [-160, 240]);
  assert.deepEqual(info.labels, [5, 7]);
  assert.deepEqual(info.overlays, { heatmap: false, uncertainty: false, attention: true });
  assert.equal(info.currentVersion, 1);
  assert.equal(info.versions[0].origin, 'model');
});

test('viewer: slices in all three orientations equal the volume; u8 is windowed; tiles crop; overlays scaled to 0…255', async () => {
  for (const axis of ['x', 'y', 'z'] as ViewAxis[]) {
    const depth = axis === 'z' ? SHAPE[2] : axis === 'y' ? SHAPE[1] : SHAPE[0];
    for (const index of [0, depth - 1, Math.floor(depth / 2)]) {
      const { header, layers } = await slice('viewer', `axis=${axis}&index=${index}&layers=image,labels,attention,heatmap`);
      assert.deepEqual(header.layers.map((l) => l.name), ['image', 'labels', 'attention'], 'an absent overlay is left out');
      assert.ok(layers.image instanceof Int16Array);
      assert.deepEqual([...layers.image!], [...extractViewSlice(ct, SHAPE, axis, index)], `${axis} ${index} image`);
      assert.deepEqual([...layers.labels!], [...extractViewSlice(labels, SHAPE, axis, index)], `${axis} ${index} labels`);
      const h = extractViewSlice(heat, SHAPE, axis, index);
      assert.deepEqual([...layers.attention!], [...h].map((v) => Math.round((v / 1.8) * 255)), `${axis} ${index} attention`);
    }
  }
  const { header, layers } = await slice('viewer', 'axis=z&index=2&layers=image&image=u8&low=-500&high=300');
  assert.deepEqual(header.window, [-500, 300]);
  assert.deepEqual([...layers.image!], [...extractViewSlice(ct, SHAPE, 'z', 2)].map((v) => windowValue(v, -500, 300)));
  const t = await slice('viewer', 'axis=z&index=2&layers=labels&x=2&y=3&w=4&h=2');
  assert.deepEqual(t.header.tile, { x: 2, y: 3, w: 4, h: 2 });
  const full = extractViewSlice(labels, SHAPE, 'z', 2);
  assert.deepEqual([...t.layers.labels!], [...full.subarray(3 * 12 + 2, 3 * 12 + 6), ...full.subarray(4 * 12 + 2, 4 * 12 + 6)]);
  const v0 = await slice('viewer', 'axis=z&index=2&layers=labels&version=0');
  assert.ok(v0.layers.labels!.every((v) => v === 0), 'version 0 is empty');
  const bad = await s.as('viewer', { url: `/api/viewer/masks/${maskId}/slice?axis=z&index=6` });
  assert.equal(bad.statusCode, 400);
  assert.match(bad.json().message, /outside 0…5/);
  assert.equal((await s.as('viewer', { url: `/api/viewer/masks/${maskId}/slice?index=0&layers=bogus` })).statusCode, 400);
  assert.equal((await s.as(null, { url: `/api/viewer/masks/${maskId}/slice?index=0` })).statusCode, 401);
  assert.equal((await s.as('viewer', { url: '/api/viewer/masks/nope/slice?index=0' })).statusCode, 404);
});

test('viewer: label planes for a range fill, and flagged regions of the attention map', async () => {
  const res = await s.as('viewer', { url: `/api/viewer/masks/${maskId}/label-planes?axis=y&from=3&to=5` });
  assert.equal(res.statusCode, 200);
  assert.equal(res.headers['x-width'], '12');
  const got = res.rawPayload;
  for (let j = 3; j <= 5; j++) assert.deepEqual([...got.subarray((j - 3) * 72, (j - 2) * 72)], [...extractViewSlice(labels, SHAPE, 'y', j)]);
  const r = await s.as('viewer', { url: `/api/viewer/masks/${maskId}/regions?threshold=0.3&minVoxels=1` });
  assert.equal(r.statusCode, 200, r.body);
  const body = r.json();
  assert.equal(body.kind, 'attention');
  assert.equal(body.regions.length, 2);
  assert.equal(body.regions[0].voxels, 18);
  assert.deepEqual(body.regions[0].peakAt, [1, 1, 1]);
  assert.equal(body.regions[0].peak, 1);
  assert.deepEqual(body.regions[1].min, [5, 7, 5]);
  assert.equal((await s.as('viewer', { url: `/api/viewer/masks/${maskId}/regions?threshold=0.3&minVoxels=5` })).json().regions.length, 1);
});

test('viewer: diff saves make a new version equal to base + runs; stale saves get 409 with a draft; keep-mine saves onto the newer version; viewers cannot save', async () => {
  const edits = { baseVersion: 1, planes: [{ z: 2, runs: [0, 3, 9, 30, 2, 0] }] };
  const denied = await s.as('viewer', { method: 'POST', url: `/api/viewer/masks/${maskId}/edits`, payload: edits });
  assert.equal(denied.statusCode, 403);
  const ok = await s.as('annotator', { method: 'POST', url: `/api/viewer/masks/${maskId}/edits`, payload: edits });
  assert.equal(ok.statusCode, 201, ok.body);
  assert.equal(ok.json().version, 2);
  const expected = labels.slice();
  expected.fill(9, 120 * 2, 120 * 2 + 3);
  expected.fill(0, 120 * 2 + 30, 120 * 2 + 32);
  assert.equal(ok.json().changed, [...expected].filter((v, i) => v !== labels[i]).length);
  // read back through the mask routes (not the viewer's)
  const raw = await s.as('viewer', { url: `/api/masks/${maskId}/versions/2/data?format=raw` });
  assert.deepEqual(new Uint8Array(raw.rawPayload), expected);
  // a second reviewer still on version 1
  const stale = await s.as('reviewer', { method: 'POST', url: `/api/viewer/masks/${maskId}/edits`, payload: { baseVersion: 1, planes: [{ z: 0, runs: [5, 1, 4] }] } });
  assert.equal(stale.statusCode, 409, stale.body);
  const c = stale.json();
  assert.equal(c.error, 'CONFLICT');
  assert.equal(c.details.currentVersion, 2);
  assert.equal(c.details.current.author, 'annotator');
  assert.ok(c.details.draftId);
  const m = (await s.as('viewer', { url: `/api/masks/${maskId}` })).json();
  assert.equal(m.drafts, 1, 'the refused edit is kept');
  // keep mine: base 1 + my runs replaces version 2
  const mine = await s.as('reviewer', { method: 'POST', url: `/api/viewer/masks/${maskId}/edits`, payload: { baseVersion: 1, onto: 2, planes: [{ z: 0, runs: [5, 1, 4] }] } });
  assert.equal(mine.statusCode, 201, mine.body);
  assert.equal(mine.json().version, 3);
  const v3 = new Uint8Array((await s.as('viewer', { url: `/api/masks/${maskId}/versions/3/data?format=raw` })).rawPayload);
  const exp3 = labels.slice();
  exp3[5] = 4;
  assert.deepEqual(v3, exp3);
  for (const [body, re] of [
    [{ baseVersion: 3, planes: [{ z: 9, runs: [0, 1, 1] }] }, /outside 0…5/],
    [{ baseVersion: 3, planes: [{ z: 0, runs: [0, 200, 1] }] }, /past the plane's 120/],
    [{ baseVersion: 3, planes: [{ z: 0, runs: [0, 1, 1] }, { z: 0, runs: [1, 1, 1] }] }, /appears twice/],
    [{ baseVersion: 7, planes: [] }, /newer than the current version 3/],
  ] as [unknown, RegExp][]) {
    const r = await s.as('annotator', { method: 'POST', url: `/api/viewer/masks/${maskId}/edits`, payload: body as object });
    assert.equal(r.statusCode, 400, r.body);
    assert.match(r.json().message, re);
  }
});

test('web UI: / is public HTML, assets cannot escape their folder, the viewer routes are in the OpenAPI document', async () => {
  const home = await s.as(null, { url: '/' });
  assert.equal(home.statusCode, 200);
  assert.match(home.headers['content-type'] as string, /text\/html/);
  assert.match(home.body, /medmask/);
  for (const p of ['/assets/..%2F..%2Fpackage.json', '/assets/%2e%2e/index.html', '/assets/nope.js']) assert.equal((await s.as(null, { url: p })).statusCode, 404, p);
  const doc = (await s.as('viewer', { url: '/docs/json' })).json() as { paths: Record<string, unknown> };
  for (const p of ['/api/viewer/masks/{id}/slice', '/api/viewer/masks/{id}/edits', '/api/viewer/masks/{id}/regions']) assert.ok(doc.paths[p], p);
  assert.ok(!doc.paths['/'], 'the UI is not an API route');
});

test('streamed axial planes of stored .nii.gz blobs equal the decoded volume; other layouts are left to the decoder', async () => {
  const { hash } = await putVolume(s.blobs, createVolume(SHAPE, 'int16', { data: ct }));
  const gz = await s.blobs.get(hash);
  const r = await readAxialPlanes(gz, [0, 3, 5]);
  assert.ok(r);
  assert.deepEqual(r.shape, SHAPE);
  assert.equal(r.type, 'int16');
  for (const k of [0, 3, 5]) assert.deepEqual([...r.planes.get(k)!], [...extractViewSlice(ct, SHAPE, 'z', k)], `plane ${k}`);
  const lab = await readAxialPlanes(await s.blobs.get((await putVolume(s.blobs, createVolume(SHAPE, 'uint8', { data: labels }), true)).hash), [2]);
  assert.deepEqual([...lab!.planes.get(2)!], [...extractViewSlice(labels, SHAPE, 'z', 2)]);
  const rgb = await putVolume(s.blobs, createVolume([4, 3, 1], 'uint8', { data: new Uint8Array(36), components: 3 }));
  assert.equal(await readAxialPlanes(await s.blobs.get(rgb.hash), [0]), null, 'RGB: decode it whole');
  assert.equal(await readAxialPlanes(gz, [6]), null, 'a plane past the end');
  assert.equal(await readAxialPlanes(gz.subarray(0, 200), [5]), null, 'truncated');
});
