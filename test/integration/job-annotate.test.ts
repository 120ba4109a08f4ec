/**
 * The `annotate` job on the server: phantoms → annotate with the three demo models → one
 * prediction per image, decisions, a review queue by priority, and no duplicates on a
 * re-submission or a retried run.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { annotateHandler } from '../../src/queue/handlers/annotate.js';
import { saveMaskVersion } from '../../src/store/index.js';
import { registerModelDirs } from '../helpers/models.js';
import { phantomsDataset, startTestServer, waitJob as waitJobOn, type TestServer } from '../helpers/server.js';

let s: TestServer;
let MODELS: string[];
const waitJob = (id: string) => waitJobOn(s, id);
before(async () => {
  s = await startTestServer();
  MODELS = await registerModelDirs(s, ['models/demo/demo-resnet', 'models/demo/demo-densenet', 'models/demo/demo-efficientnet']);
});
after(async () => {
  await s?.close();
});

const LABEL_MAP = { nodule: 'abnormal', consolidation: 'abnormal', cavity: 'abnormal' };

test('annotate job: bad input is a 400 naming the field', async () => {
  const cases: [unknown, RegExp][] = [
    [{}, /datasetId/],
    [{ datasetId: 'x', models: [] }, /models must be a list/],
    [{ datasetId: 'x', models: ['models/demo/nope'] }, /models\[0\] "models\/demo\/nope" is not a model reference: jobs name registered models as name@version/],
    [{ datasetId: 'x', models: MODELS, mcSamples: -1 }, /mcSamples/],
    [{ datasetId: 'x', models: MODELS, labelKind: 'mask' }, /labelKind/],
    [{ datasetId: 'x', models: MODELS, pipeline: { fusion: 'bogus' } }, /pipeline/],
    [{ datasetId: 'x', models: MODELS, colour: 1 }, /unknown field\(s\) colour/],
  ];
  for (const [input, re] of cases) {
    const r = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'annotate', input } });
    assert.equal(r.statusCode, 400, `${JSON.stringify(input)}: ${r.body}`);
    assert.match(r.json().message, re);
  }
});

test('annotate job: phantoms → annotate with the demo ensemble, idempotent', async () => {
  const datasetId = await phantomsDataset(s, { kind: '2d', n: 8, seed: 3, size: 64, project: 'ann', dataset: 'ann', reviewCases: false });

  const input = { datasetId, models: MODELS, labelMap: LABEL_MAP, mcSamples: 4, seed: 1 };
  const r = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'annotate', input } });
  assert.equal(r.statusCode, 202, r.body);
  const jobId = r.json().job.id as string;
  const job = await waitJob(jobId);
  assert.equal(job.status, 'done', JSON.stringify(job.error));
  assert.equal(job.result.predictions, 8);
  assert.deepEqual(job.result.errors, []);

  const db = s.store.db;
  const preds = await db.selectFrom('predictions').innerJoin('images', 'images.id', 'predictions.image_id').selectAll('predictions').where('images.dataset_id', '=', datasetId).execute();
  assert.equal(preds.length, 8, 'one prediction per image');
  assert.equal(new Set(preds.map((p) => p.image_id)).size, 8);
  for (const p of preds) {
    assert.ok(['accept', 'review', 'ood'].includes(p.decision), p.decision);
    const probs = JSON.parse(p.probabilities) as Record<string, number>;
    assert.deepEqual(Object.keys(probs).sort(), ['abnormal', 'healthy']);
    assert.ok(Math.abs(probs.abnormal! + probs.healthy! - 1) < 1e-3);
    assert.equal(typeof p.uncertainty, 'number');
    assert.ok(Number.isFinite(p.priority));
  }
  const masks = await db.selectFrom('masks').innerJoin('images', 'images.id', 'masks.image_id').select(['masks.id', 'masks.priority', 'masks.decision']).where('images.dataset_id', '=', datasetId).execute();
  assert.equal(masks.length, 8, 'one review case per image');
  const versions = await db.selectFrom('mask_versions').select(['mask_id', 'blob']).where('job_id', '=', jobId).execute();
  assert.equal(versions.length, 8, 'one candidate mask version per image');
  // Heat maps (and MC uncertainty maps) exist for images with a non-normal target the models agree on.
  const withMaps = preds.filter((p) => p.heatmap_blob);
  assert.ok(withMaps.length >= 1, 'some predictions carry a heat map');
  for (const p of withMaps) assert.ok((await s.blobs.get(p.heatmap_blob!)).subarray(1, 4).toString('latin1') === 'PNG', 'heat maps are PNGs');
  const maskData = await s.as('viewer', { url: `/api/masks/${versions[0]!.mask_id}/versions/1/data` });
  assert.equal(maskData.statusCode, 200);

  const q = (await s.as('viewer', { url: `/api/review/queue?dataset=${datasetId}&limit=100` })).json() as { total: number; items: { priority: number }[] };
  assert.equal(q.total, 8);
  const pr = q.items.map((i) => i.priority);
  assert.deepEqual(pr, [...pr].sort((a, b) => b - a), 'queue sorted by priority');

  // Same input → the same job.
  const again = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'annotate', input: { ...input } } });
  assert.equal(again.statusCode, 202);
  assert.equal(again.json().created, false);
  assert.equal(again.json().job.id, jobId);

  // Retried deliveries of the job's tasks (every chunk run again) write no duplicate rows.
  const work = mkdtempSync(join(tmpdir(), 'medmask-annotate-retry-'));
  try {
    const ctx = {
      jobId,
      type: 'annotate',
      input: annotateHandler.validate(input),
      attempt: 2,
      store: s.store,
      blobs: s.blobs,
      workDir: work,
      userId: null,
      progress: async () => {},
      signal: new AbortController().signal,
    };
    const tasks = await annotateHandler.fanOut!.plan(ctx);
    assert.equal(tasks.length, 1, 'eight images: one chunk of the default size');
    for (const task of tasks) await annotateHandler.fanOut!.runTask({ ...ctx, task });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  assert.equal((await db.selectFrom('predictions').select('id').where('job_id', '=', jobId).execute()).length, 8);
  assert.equal((await db.selectFrom('mask_versions').select('id').where('job_id', '=', jobId).execute()).length, 8);
  assert.equal((await db.selectFrom('masks').innerJoin('images', 'images.id', 'masks.image_id').select('masks.id').where('images.dataset_id', '=', datasetId).execute()).length, 8);

  // A model never supersedes a person: after one case is edited and another accepted, a new run
  // makes its candidates current only on the untouched cases and keeps the other two as drafts.
  assert.equal(job.result.keptAsDrafts, 0);
  const [edited, accepted] = [versions[0]!.mask_id, versions[1]!.mask_id];
  const human = await saveMaskVersion(db, { maskId: edited, baseVersion: 1, blob: versions[1]!.blob, authorId: null, origin: 'human', note: 'expert edit' });
  assert.ok(human.ok);
  await db.updateTable('masks').set({ status: 'accepted' }).where('id', '=', accepted).execute();
  const r2 = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'annotate', input: { ...input, seed: 2 } } });
  const job2Id = r2.json().job.id as string;
  const job2 = await waitJob(job2Id);
  assert.equal(job2.status, 'done', JSON.stringify(job2.error));
  assert.equal(job2.result.keptAsDrafts, 2);
  const cur = await db.selectFrom('masks').select(['id', 'current_version']).where('id', 'in', [edited, accepted]).execute();
  assert.deepEqual(Object.fromEntries(cur.map((c) => [c.id, c.current_version])), { [edited]: 2, [accepted]: 1 }, 'the reviewed cases keep their versions');
  const drafts = await db.selectFrom('mask_drafts').select(['mask_id', 'note']).where('mask_id', 'in', [edited, accepted]).execute();
  assert.equal(drafts.length, 2);
  assert.match(drafts.find((d) => d.mask_id === edited)!.note!, /version 2 was saved by a person/);
  assert.match(drafts.find((d) => d.mask_id === accepted)!.note!, /the case was accepted/);
  const moved = await db.selectFrom('mask_versions').select('mask_id').where('job_id', '=', job2Id).execute();
  assert.equal(moved.length, 6, 'the six untouched cases got the new candidate');
});

test('annotate job: stored labels that are not model classes are a 400 at submission, with the message the job would fail with', async () => {
  const datasetId = await phantomsDataset(s, { kind: '2d', n: 4, seed: 5, size: 48, project: 'ann', dataset: 'ann-bad', reviewCases: false });
  const input = { datasetId, models: MODELS.slice(0, 1), mcSamples: 0 };
  const r = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'annotate', input } });
  assert.equal(r.statusCode, 400, r.body);
  assert.match(r.json().message, /^annotate job: labels "[a-z]+"(, "[a-z]+")* are not classes of the models \(healthy, abnormal\); map them with "labelMap"/);
  // The same check inside the job (a task run directly, as a worker would) fails with the same message.
  const ctx = { jobId: 'direct', type: 'annotate', input: annotateHandler.validate(input), attempt: 1, store: s.store, blobs: s.blobs, workDir: mkdtempSync(join(tmpdir(), 'medmask-annotate-bad-')), userId: null, progress: async () => {}, signal: new AbortController().signal };
  try {
    const [task] = await annotateHandler.fanOut!.plan(ctx);
    await assert.rejects(annotateHandler.fanOut!.runTask({ ...ctx, task: task! }), (e: Error) => e.message === r.json().message);
  } finally {
    rmSync(ctx.workDir, { recursive: true, force: true });
  }
  // A data set that does not exist, or is empty, is a 400 too.
  const missing = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'annotate', input: { ...input, datasetId: 'no-such-set' } } });
  assert.equal(missing.statusCode, 400, missing.body);
  assert.match(missing.json().message, /data set no-such-set does not exist/);
  const project = (await s.as('reviewer', { method: 'POST', url: '/api/projects', payload: { name: 'ann-empty' } })).json().id as string;
  const empty = (await s.as('reviewer', { method: 'POST', url: `/api/projects/${project}/datasets`, payload: { name: 'empty' } })).json().id as string;
  const none = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'annotate', input: { ...input, datasetId: empty } } });
  assert.equal(none.statusCode, 400, none.body);
  assert.match(none.json().message, /has no images/);
  // With the labelMap the same request is accepted.
  const ok = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'annotate', input: { ...input, labelMap: LABEL_MAP } } });
  assert.equal(ok.statusCode, 202, ok.body);
  assert.equal((await waitJob(ok.json().job.id)).status, 'done');
});
