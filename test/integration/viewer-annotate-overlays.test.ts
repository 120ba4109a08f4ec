/**
 * The overlays of a real annotate job in the viewer: the job stores its heat map and uncertainty
 * map as the PNG pictures show_cam_on_image draws; the viewer's slice, regions and overlay
 * endpoints must serve them (scalar maps decoded from the pictures, the right content type).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { displayRgb, overlayHeatmap } from '../../src/core/explain/overlay.js';
import { parseSlice } from '../../src/core/viewer/index.js';
import { getVolume } from '../../src/store/volumes.js';
import { phantomsDataset, startTestServer, waitJob, type TestServer } from '../helpers/server.js';
import { registerModelDirs } from '../helpers/models.js';

let s: TestServer;
before(async () => {
  s = await startTestServer();
});
after(async () => {
  await s?.close();
});

test('viewer: an annotate job\'s heat map, uncertainty map and flagged regions are served from its PNG pictures', async () => {
  const datasetId = await phantomsDataset(s, { kind: '2d', n: 8, seed: 3, size: 64, project: 'vo', dataset: 'vo', reviewCases: false });
  const input = { datasetId, models: await registerModelDirs(s, ['models/demo/demo-resnet', 'models/demo/demo-densenet', 'models/demo/demo-efficientnet']), labelMap: { nodule: 'abnormal', consolidation: 'abnormal', cavity: 'abnormal' }, mcSamples: 4, seed: 1 };
  const r = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'annotate', input } });
  assert.equal(r.statusCode, 202, r.body);
  const job = await waitJob(s, r.json().job.id);
  assert.equal(job.status, 'done', JSON.stringify(job.error));
  const db = s.store.db;
  const rows = await db
    .selectFrom('predictions')
    .innerJoin('masks', 'masks.prediction_id', 'predictions.id')
    .innerJoin('images', 'images.id', 'predictions.image_id')
    .select(['masks.id as maskId', 'predictions.heatmap_blob', 'predictions.uncertainty_blob', 'images.blob as imageBlob', 'images.shape'])
    .where('images.dataset_id', '=', datasetId)
    .where('predictions.heatmap_blob', 'is not', null)
    .execute();
  assert.ok(rows.length >= 1, 'some case carries a heat map');
  const c = rows[0]!;
  const stored = await s.blobs.get(c.heatmap_blob!);
  assert.equal(stored.subarray(1, 4).toString('latin1'), 'PNG', 'the job stores pictures');

  // the overlay download says what it is
  const dl = await s.as('viewer', { url: `/api/masks/${c.maskId}/overlays/heatmap` });
  assert.equal(dl.statusCode, 200);
  assert.equal(dl.headers['content-type'], 'image/png');
  assert.match(String(dl.headers['content-disposition']), /\.png"/);
  assert.ok(dl.rawPayload.equals(stored));

  // case info lists both overlays; one slice carries them as 8-bit maps
  const info = (await s.as('viewer', { url: `/api/viewer/masks/${c.maskId}` })).json();
  assert.equal(info.overlays.heatmap, true);
  const res = await s.as('viewer', { url: `/api/viewer/masks/${c.maskId}/slice?layers=image,labels,heatmap,uncertainty` });
  assert.equal(res.statusCode, 200, res.body.slice(0, 300));
  const b = res.rawPayload;
  const sl = parseSlice(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer);
  const heat = sl.layers.heatmap as Uint8Array;
  assert.ok(heat instanceof Uint8Array && heat.length === 64 * 64, 'heat map layer present');
  if (c.uncertainty_blob) assert.ok(sl.layers.uncertainty instanceof Uint8Array, 'uncertainty layer present');
  let mx = 0;
  for (const v of heat) mx = Math.max(mx, v);
  assert.ok(mx > 128, `the map has a hot spot (max ${mx})`);

  // Independent check: drawing the served map over the stored image the way the job does gives
  // the job's stored picture back (decoded here by sharp, not by the server's path).
  const img = await getVolume(s.blobs, c.imageBlob);
  const redrawn = overlayHeatmap(displayRgb(img), Float32Array.from(heat, (v) => v / 255));
  const png = await sharp(stored).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  assert.equal(png.info.width * png.info.height, 64 * 64);
  let worst = 0;
  for (let i = 0; i < 64 * 64; i++) for (let ch = 0; ch < 3; ch++) worst = Math.max(worst, Math.abs(redrawn[3 * i + ch]! - png.data[i * png.info.channels + ch]!));
  assert.ok(worst <= 4, `redrawn picture differs from the stored one by ${worst}`);

  // flagged regions of the heat map: the hottest region's peak is the map's maximum
  const reg = await s.as('viewer', { url: `/api/viewer/masks/${c.maskId}/regions?kind=heatmap&threshold=0.5&minVoxels=1` });
  assert.equal(reg.statusCode, 200, reg.body);
  const regions = reg.json().regions as { peak: number; voxels: number }[];
  assert.ok(regions.length >= 1);
  assert.ok(Math.abs(regions[0]!.peak - mx / 255) < 1e-6, `peak ${regions[0]!.peak} vs ${mx / 255}`);
  let hot = 0;
  for (const v of heat) if (v >= Math.round(0.5 * 255)) hot++;
  assert.equal(regions.reduce((a, r) => a + r.voxels, 0), hot, 'the regions cover exactly the voxels at or above the threshold');
});
