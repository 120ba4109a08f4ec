/**
 * The `atlas` job on the server: 3D phantoms with partial labels → one round with the demo
 * segmenters → every case gets a prediction and a merged label map as a mask version; the
 * selected top fraction per source goes to review with its priority; a re-submission is the same job.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { getVolume } from '../../src/store/volumes.js';
import { registerModelDirs } from '../helpers/models.js';
import { phantomsDataset, startTestServer, waitJob as waitJobOn, type TestServer } from '../helpers/server.js';

let s: TestServer;
let MODELS: string[];
const waitJob = (id: string) => waitJobOn(s, id);
before(async () => {
  s = await startTestServer();
  MODELS = await registerModelDirs(s, ['models/demo/demo-unet3d', 'models/demo/demo-resunet3d']);
});
after(async () => {
  await s?.close();
});


test('atlas job: bad input is a 400 naming the field', async () => {
  for (const [input, re] of [
    [{}, /atlas job: datasetId/],
    [{ datasetId: 'x', models: ['models/demo/nope'] }, /models\[0\] "models\/demo\/nope" is not a model reference/],
    [{ datasetId: 'x', models: MODELS, fraction: 2 }, /fraction/],
  ] as [unknown, RegExp][]) {
    const r = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'atlas', input } });
    assert.equal(r.statusCode, 400, r.body);
    assert.match(r.json().message, re);
  }
  const r = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'atlas', input: { datasetId: 'x', models: ['no-such-model@1'] } } });
  assert.equal(r.statusCode, 404, r.body);
  assert.match(r.json().message, /models\[0\]: no registered model named "no-such-model"/);
});

test('atlas job: phantoms 3d → a round with two demo segmenters → merged labels, selected cases to review', async () => {
  const datasetId = await phantomsDataset(s, { kind: '3d', n: 4, seed: 5, size: 96, project: 'atl', dataset: 'atl', reviewCases: false });
  const input = { datasetId, models: MODELS, fraction: 0.5 };
  const r = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'atlas', input } });
  assert.equal(r.statusCode, 202, r.body);
  const job = await waitJob(r.json().job.id);
  assert.equal(job.status, 'done', JSON.stringify(job.error));
  assert.equal(job.result.recorded, 4);
  const db = s.store.db;
  const preds = await db.selectFrom('predictions').innerJoin('images', 'images.id', 'predictions.image_id').selectAll('predictions').where('images.dataset_id', '=', datasetId).execute();
  assert.equal(preds.length, 4, 'one prediction per volume');
  const review = preds.filter((p) => p.decision === 'review');
  assert.ok(review.length >= 1 && review.length < 4, `${review.length} of 4 selected at 50 % per source`);
  assert.ok(preds.every((p) => p.attention_blob), 'attention heat maps stored');
  const minReview = Math.min(...review.map((p) => p.priority));
  // Selection is per source: a selected case outranks every unselected case of its own source.
  assert.ok(Number.isFinite(minReview));
  // The merged label map keeps the original (partial) labels where the source gave them.
  const masks = await db.selectFrom('masks').innerJoin('images', 'images.id', 'masks.image_id').select(['masks.id', 'masks.image_id']).where('images.dataset_id', '=', datasetId).execute();
  assert.equal(masks.length, 4);
  for (const m of masks) {
    const v = await db.selectFrom('mask_versions').select(['blob']).where('mask_id', '=', m.id).orderBy('version', 'desc').executeTakeFirstOrThrow();
    const merged = await getVolume(s.blobs, v.blob);
    const label = await db.selectFrom('labels').select('blob').where('image_id', '=', m.image_id).where('kind', '=', 'mask').executeTakeFirstOrThrow();
    const partial = await getVolume(s.blobs, label.blob!);
    let kept = 0, total = 0;
    for (let i = 0; i < partial.data.length; i++) if (partial.data[i]) {
      total++;
      if (merged.data[i] === partial.data[i]) kept++;
    }
    assert.equal(kept, total, 'original labels win the merge');
    const organs = new Set(merged.data as unknown as number[]);
    assert.ok(organs.size >= 6, `the merged map covers the organs (${[...organs].join(',')})`);
  }
  const again = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'atlas', input } });
  assert.equal(again.json().job.id, r.json().job.id, 'the same input is the same job');
});
