/**
 * The 2D loop on the server: reviewers accept masks → a `train-mask-head` job trains a head from
 * the reviewed cases → an `annotate` job fuses it → the review queue can be ordered by the
 * expected gain of a review (active selection).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { phantomsDataset, startTestServer, waitJob as waitJobOn, type TestServer } from '../helpers/server.js';
import { registerModelDirs } from '../helpers/models.js';

let s: TestServer;
let MODELS: string[];
const waitJob = (id: string) => waitJobOn(s, id);
before(async () => {
  s = await startTestServer();
  MODELS = await registerModelDirs(s, ['models/demo/demo-resnet']);
});
after(async () => {
  await s?.close();
});


test('train-mask-head job: bad input is a 400 naming the field; no reviewed masks is a clear failure', async () => {
  const cases: [unknown, RegExp][] = [
    [{}, /datasetId/],
    [{ datasetId: 'x', models: [] }, /models must be a list/],
    [{ datasetId: 'x', models: ['models/demo/nope'] }, /models\[0\] "models\/demo\/nope" is not a model reference: jobs name registered models as name@version/],
    [{ datasetId: 'x', models: MODELS, pixels: 3 }, /pixels/],
    [{ datasetId: 'x', models: MODELS, colour: 1 }, /unknown field\(s\) colour/],
  ];
  for (const [input, re] of cases) {
    const r = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'train-mask-head', input } });
    assert.equal(r.statusCode, 400, `${JSON.stringify(input)}: ${r.body}`);
    assert.match(r.json().message, re);
  }
  const bad = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'annotate', input: { datasetId: 'x', models: MODELS, maskHeads: ['nothex'] } } });
  assert.equal(bad.statusCode, 400);
  assert.match(bad.json().message, /maskHeads/);
  const datasetId = await phantomsDataset(s, { kind: '2d', n: 3, seed: 2, size: 64, project: 'mh0', dataset: 'mh0' });
  const r = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'train-mask-head', input: { datasetId, models: MODELS } } });
  const job = await waitJob(r.json().job.id as string);
  assert.equal(job.status, 'failed');
  assert.match(JSON.stringify(job.error), /no reviewed \\"lesion\\" masks \(accepted or edited by a person\)/);
});

test('reviews → train-mask-head job → annotate with the head → review queue by expected gain', async () => {
  const datasetId = await phantomsDataset(s, { kind: '2d', n: 16, seed: 7, size: 96, project: 'mh', dataset: 'mh' });
  const db = s.store.db;
  const cases = await db.selectFrom('masks').innerJoin('images', 'images.id', 'masks.image_id').innerJoin('labels', 'labels.image_id', 'images.id')
    .select(['masks.id', 'labels.value']).where('images.dataset_id', '=', datasetId).where('labels.kind', '=', 'class').orderBy('images.name').execute();
  const lesionCases = cases.filter((c) => c.value !== 'healthy').slice(0, 6);
  assert.ok(lesionCases.length >= 4, 'the phantom set has lesion images to review');
  for (const c of lesionCases) {
    const r = await s.as('reviewer', { method: 'POST', url: `/api/masks/${c.id}/review`, payload: { decision: 'accept', version: 1 } });
    assert.equal(r.statusCode, 201, r.body);
  }
  const t = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'train-mask-head', input: { datasetId, models: MODELS, pixels: 64 } } });
  assert.equal(t.statusCode, 202, t.body);
  const tj = await waitJob(t.json().job.id as string);
  assert.equal(tj.status, 'done', JSON.stringify(tj.error));
  assert.equal(tj.result.reviewed, lesionCases.length);
  assert.equal(tj.result.accepted, lesionCases.length);
  const head = (tj.result.heads as unknown[])[0] as { maskHead: string; onnx: string; lesionImages: number };
  assert.equal(head.lesionImages, lesionCases.length);
  const file = JSON.parse((await s.blobs.get(head.maskHead)).toString('utf8')) as { format: string; head: { channels: number; layers?: { channels: number }[] } };
  assert.equal(file.format, 'medmask-mask-head/1');
  assert.equal(file.head.channels, 128 + 32, 'the ResNet CAM target has 128 channels, its stride-8 layer (the default hypercolumn) 32');
  assert.equal(file.head.layers?.[0]?.channels, 32);
  assert.ok((await s.blobs.get(head.onnx)).byteLength > 1000);

  const labelMap = { nodule: 'abnormal', consolidation: 'abnormal', cavity: 'abnormal' };
  const a = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'annotate', input: { datasetId, models: MODELS, labelMap, mcSamples: 4, maskHeads: [head.maskHead] } } });
  assert.equal(a.statusCode, 202, a.body);
  const aj = await waitJob(a.json().job.id as string);
  assert.equal(aj.status, 'done', JSON.stringify(aj.error));
  assert.equal(aj.result.predictions, 16);

  type Item = { maskId: string; priority: number; expectedGain: number | null; status: string };
  const byGain = (await s.as('viewer', { url: `/api/review/queue?dataset=${datasetId}&status=all&order=gain&limit=100` })).json() as { total: number; items: Item[] };
  assert.equal(byGain.total, 16);
  const gains = byGain.items.map((i) => i.expectedGain);
  assert.ok(gains.every((g) => typeof g === 'number' && g >= 0), JSON.stringify(gains));
  for (let i = 1; i < gains.length; i++) assert.ok(gains[i - 1]! >= gains[i]!, `ordered by expected gain: ${gains.join(', ')}`);
  assert.ok(new Set(gains).size > 2, 'the gains differ between cases');
  const byPriority = (await s.as('viewer', { url: `/api/review/queue?dataset=${datasetId}&status=all&limit=100` })).json() as { items: Item[] };
  for (let i = 1; i < byPriority.items.length; i++) assert.ok(byPriority.items[i - 1]!.priority >= byPriority.items[i]!.priority, 'the default order is still priority');
});
