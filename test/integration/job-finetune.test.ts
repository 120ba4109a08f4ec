/**
 * The `finetune` job (issue 16 §2): phantoms 3d → an atlas job with the registered demo U-Net →
 * an expert's edit on one case → a finetune job warm-starts demo-unet3d@1 in PyTorch on the merged
 * labels (provenance original / revised / pseudo) and either registers demo-unet3d@2 (parent @1,
 * its training data and held-out metrics recorded) or keeps a rejected candidate — exactly as the
 * held-out Dice of child and parent on the same cases decide. A retry returns the same version.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
// @ts-expect-error plain ESM script without types
import { ensureSystemPackages } from '../../scripts/system-deps.mjs';
import { saveMaskVersion } from '../../src/store/index.js';
import { registerModelDirs } from '../helpers/models.js';
import { phantomsDataset, startTestServer, type FinishedJob, type TestServer } from '../helpers/server.js';

let s: TestServer;
before(async () => {
  ensureSystemPackages(['python3-torch', 'python3-nibabel', 'python3-onnx']);
  s = await startTestServer();
});
after(async () => {
  await s?.close();
});

/** Training on a busy 2-core machine takes minutes: poll for up to 10. */
async function waitLong(id: string): Promise<FinishedJob> {
  const t0 = Date.now();
  while (Date.now() - t0 < 600_000) {
    const j = (await s.as('viewer', { url: `/api/jobs/${id}` })).json() as FinishedJob;
    if (j.status === 'done' || j.status === 'failed') return j;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`job ${id} did not finish in 10 minutes`);
}

test('finetune job: bad input is a 400; a path as model is refused with the rule', async () => {
  for (const [input, re] of [
    [{ datasetId: 'x', model: '/srv/models/unet.onnx' }, /finetune job: model "\/srv\/models\/unet.onnx" is not a model reference/],
    [{ datasetId: 'x', model: 'demo-unet3d@1', steps: 2 }, /steps 2 must be 0 or a whole number from 4/],
    [{ datasetId: 'x', model: 'demo-unet3d@1', labelWeights: { pseudo: -1 } }, /labelWeights.pseudo/],
  ] as [unknown, RegExp][]) {
    const r = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'finetune', input } });
    assert.equal(r.statusCode, 400, r.body);
    assert.match(r.json().message, re);
  }
});

test('finetune job: atlas round → expert edit → fine-tune registers the next version or keeps a rejected candidate, by held-out Dice', async () => {
  const [unet] = await registerModelDirs(s, ['models/demo/demo-unet3d']);
  const datasetId = await phantomsDataset(s, { kind: '3d', n: 3, seed: 9, size: 40, project: 'ft', dataset: 'ft', reviewCases: false });
  const a = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'atlas', input: { datasetId, models: [unet], fraction: 0.5 } } });
  assert.equal(a.statusCode, 202, a.body);
  const aj = await waitLong(a.json().job.id);
  assert.equal(aj.status, 'done', JSON.stringify(aj.error));
  // An expert saves one case's merged labels as their own version: its non-original organs become "revised".
  const db = s.store.db;
  const mask = await db.selectFrom('masks').innerJoin('images', 'images.id', 'masks.image_id').select(['masks.id', 'masks.current_version', 'images.name']).where('images.dataset_id', '=', datasetId).where('masks.target', '=', 'organs').orderBy('images.name').executeTakeFirstOrThrow();
  const cur = await db.selectFrom('mask_versions').select('blob').where('mask_id', '=', mask.id).where('version', '=', mask.current_version).executeTakeFirstOrThrow();
  assert.ok((await saveMaskVersion(db, { maskId: mask.id, baseVersion: mask.current_version, blob: cur.blob, authorId: s.users.reviewer.id, origin: 'human', note: 'expert review' })).ok);

  const input = { datasetId, model: 'demo-unet3d', steps: 4, labelWeights: { pseudo: 0.5 }, heldoutFraction: 0.34 };
  const r = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'finetune', input } });
  assert.equal(r.statusCode, 202, r.body);
  assert.equal(r.json().job.input.model, 'demo-unet3d@1', 'pinned at submit');
  const j = await waitLong(r.json().job.id);
  assert.equal(j.status, 'done', JSON.stringify(j.error));
  const res = j.result as { model: string; id: string; decision: string; parent: string; metrics: { heldout: { mean_dice: number }; parentHeldout: { mean_dice: number }; exportCheck: { maxAbsDiff: number } } };
  assert.equal(res.parent, 'demo-unet3d@1');
  const better = res.metrics.heldout.mean_dice >= res.metrics.parentHeldout.mean_dice;
  assert.equal(res.decision, better ? 'accepted' : 'rejected', `child ${res.metrics.heldout.mean_dice} vs parent ${res.metrics.parentHeldout.mean_dice}`);
  const v = (await s.as('viewer', { url: `/api/model-versions/${res.id}` })).json() as { status: string; ref: string | null; parent: { ref: string }; training: { provenance: Record<string, Record<string, string>>; cases: string[]; heldout: string[] }; lineage: { ref: string | null }[] };
  assert.equal(v.parent.ref, 'demo-unet3d@1');
  assert.equal(v.status, better ? 'registered' : 'rejected');
  assert.equal(v.ref, better ? 'demo-unet3d@2' : null);
  assert.equal(v.lineage.at(-1)!.ref, 'demo-unet3d@1');
  // Provenance: the edited case has revised organs, the others pseudo ones; sources' organs are original.
  const prov = v.training.provenance;
  assert.ok(Object.values(prov[mask.name]!).includes('revised'), JSON.stringify(prov[mask.name]));
  assert.ok(Object.entries(prov).filter(([k]) => k !== mask.name).every(([, p]) => !Object.values(p).includes('revised')));
  assert.equal(v.training.cases.length + v.training.heldout.length, 3);
  // The same job again (a failed-then-retried run returns what it stored): submitting the same input is the same job.
  const again = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'finetune', input } });
  assert.equal(again.json().created, false);
});
