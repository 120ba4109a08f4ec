import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createVolume } from '../../src/core/volume.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { seedCases } from '../helpers/viewer-seed.js';

// A 64×64×32 volume: its whole label map as JSON base64 is ~175 KB, over a 64 KiB JSON limit;
// the same labels as binary (128 KiB) fit the upload limit.
const SHAPE: [number, number, number] = [64, 64, 32];
const N = SHAPE[0] * SHAPE[1] * SHAPE[2];
let s: TestServer;
let maskId: string;

before(async () => {
  s = await startTestServer({ settings: { maxJsonSaveBytes: 64 * 1024 } });
  const [c] = await seedCases(s.store, s.blobs, [{ name: 'v.nii.gz', volume: createVolume(SHAPE, 'int16', { data: new Int16Array(N) }), labels: new Uint8Array(N), target: 't', priority: 1 }]);
  maskId = c!.maskId;
});
after(async () => {
  await s?.close();
});

test('JSON mask save: its own body limit, whose 413 names the limit and the binary route; the binary route takes the same labels', async () => {
  const labels = Uint8Array.from({ length: N }, (_, i) => (i * 7919) % 5); // incompressible enough for base64 to stay large
  const big = await s.as('annotator', { method: 'POST', url: `/api/masks/${maskId}/versions`, payload: { baseVersion: 1, labels: Buffer.from(labels).toString('base64') } });
  assert.equal(big.statusCode, 413, big.body);
  const e = big.json();
  assert.equal(e.error, 'TOO_LARGE');
  assert.match(e.message, /64 KiB|65536 bytes/);
  assert.match(e.message, /maxJsonSaveBytes/);
  assert.match(e.hint, new RegExp(`PUT /api/masks/${maskId}/data`));
  assert.equal(e.details.maxJsonSaveBytes, 64 * 1024);
  // nothing was saved
  assert.equal((await s.as('viewer', { url: `/api/masks/${maskId}` })).json().currentVersion, 1);

  // a small JSON save (one slice) still goes through the JSON route
  const plane = new Uint8Array(SHAPE[0] * SHAPE[1]).fill(3);
  const small = await s.as('annotator', { method: 'POST', url: `/api/masks/${maskId}/versions`, payload: { baseVersion: 1, slices: [{ index: 4, labels: Buffer.from(plane).toString('base64') }] } });
  assert.equal(small.statusCode, 201, small.body);
  assert.equal(small.json().version, 2);

  // the whole map as binary: accepted, and it reads back as sent
  const bin = await s.as('annotator', { method: 'PUT', url: `/api/masks/${maskId}/data?baseVersion=2`, headers: { 'content-type': 'application/octet-stream' }, payload: Buffer.from(labels) });
  assert.equal(bin.statusCode, 201, bin.body);
  const back = await s.as('viewer', { url: `/api/masks/${maskId}/versions/3/data?format=raw` });
  assert.equal(back.statusCode, 200);
  assert.deepEqual(new Uint8Array(back.rawPayload), labels);

  // other errors of the route keep the usual mapping (a schema error is a 400 USAGE)
  const bad = await s.as('annotator', { method: 'POST', url: `/api/masks/${maskId}/versions`, payload: { baseVersion: 'x' } });
  assert.equal(bad.statusCode, 400, bad.body);
  assert.equal(bad.json().error, 'USAGE');
});
