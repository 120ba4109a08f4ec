/**
 * The model registry (issue 16 §1, issue 17 §3): versions numbered per name, lineage through
 * parents, idempotent re-registration, rejected candidates kept but unusable, admin-only
 * registration, jobs pinned to name@version at submit, and paths from clients never opened —
 * a path answers 400 stating the rule, the same whether the file exists or not, naming no folder
 * of the server.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Migrator, type Kysely } from 'kysely';
import { registerModel } from '../../src/runtime/model-registry.js';
import { openStore } from '../../src/store/index.js';
import { migrationList, migrateToLatest } from '../../src/store/migrations.js';
import { ROOT } from '../helpers/cli.js';
import { registerModelDirs } from '../helpers/models.js';
import { multipartBody, startTestServer, type TestServer } from '../helpers/server.js';

let s: TestServer;
before(async () => {
  s = await startTestServer();
});
after(async () => {
  await s?.close();
});

const UNET = join(ROOT, 'models/demo/demo-unet3d');
const onnx = () => readFileSync(join(UNET, 'model.onnx'));
const manifest = () => JSON.parse(readFileSync(join(UNET, 'model.json'), 'utf8')) as Record<string, unknown>;

test('registry: versions per name, parent defaults to the current version, same bytes again is the same version', async () => {
  const [v1] = await registerModelDirs(s, ['models/demo/demo-unet3d']);
  assert.equal(v1, 'demo-unet3d@1');
  const again = await s.as('admin', { method: 'POST', url: '/api/models', ...multipartBody([{ name: 'model.onnx', data: onnx() }], { manifest: JSON.stringify(manifest()) }) });
  assert.equal(again.statusCode, 200, again.body);
  assert.equal(again.json().created, false);
  assert.equal(again.json().ref, 'demo-unet3d@1');
  // A changed manifest (same weights) is a new version whose parent is version 1.
  const m2 = { ...manifest(), description: 'the same weights with a new description' };
  const r2 = await s.as('admin', { method: 'POST', url: '/api/models', ...multipartBody([{ name: 'model.onnx', data: onnx() }], { manifest: JSON.stringify(m2), training: JSON.stringify({ cases: ['case_0001'], provenance: { case_0001: { liver: 'revised' } } }), metrics: JSON.stringify({ heldout: { mean_dice: 0.9 } }) }) });
  assert.equal(r2.statusCode, 201, r2.body);
  assert.equal(r2.json().ref, 'demo-unet3d@2');
  assert.equal(r2.json().parent.ref, 'demo-unet3d@1');
  assert.deepEqual(r2.json().training.provenance, { case_0001: { liver: 'revised' } });
  const list = (await s.as('viewer', { method: 'GET', url: '/api/models' })).json().models as { name: string; current: { ref: string }; versions: number }[];
  const unet = list.find((m) => m.name === 'demo-unet3d')!;
  assert.equal(unet.current.ref, 'demo-unet3d@2');
  assert.equal(unet.versions, 2);
  const one = await s.as('viewer', { method: 'GET', url: '/api/model-versions/demo-unet3d@2' });
  assert.equal(one.statusCode, 200, one.body);
  assert.deepEqual(one.json().lineage.map((l: { ref: string }) => l.ref), ['demo-unet3d@2', 'demo-unet3d@1']);
  assert.equal(one.json().metrics.heldout.mean_dice, 0.9);
  const missing = await s.as('viewer', { method: 'GET', url: '/api/model-versions/demo-unet3d@7' });
  assert.equal(missing.statusCode, 404);
  assert.match(missing.json().hint, /registered versions: demo-unet3d@1, demo-unet3d@2/);
});

test('registry: only admins register; a bad manifest name is refused', async () => {
  const r = await s.as('reviewer', { method: 'POST', url: '/api/models', ...multipartBody([{ name: 'model.onnx', data: onnx() }], { manifest: JSON.stringify(manifest()) }) });
  assert.equal(r.statusCode, 403);
  const bad = await s.as('admin', { method: 'POST', url: '/api/models', ...multipartBody([{ name: 'model.onnx', data: onnx() }], { manifest: JSON.stringify({ ...manifest(), name: 'a/b@c' }) }) });
  assert.equal(bad.statusCode, 422, bad.body);
  assert.match(bad.json().message, /name "a\/b@c" must be/);
});

test('registry: a rejected candidate keeps its metrics and lineage, gets no number, and no job may use it', async () => {
  const parent = (await s.as('viewer', { method: 'GET', url: '/api/model-versions/demo-unet3d@1' })).json() as { id: string };
  const { row } = await registerModel(s.store, s.blobs, { onnx: new Uint8Array(onnx()), manifest: { ...manifest(), description: 'candidate' }, status: 'rejected', parent: 'demo-unet3d@1', metrics: { heldout: { mean_dice: 0.5 }, parentHeldout: { mean_dice: 0.8 } }, note: 'held-out mean Dice 0.500 < parent 0.800' });
  assert.equal(row.version, null);
  assert.equal(row.parent_id, parent.id);
  const view = await s.as('viewer', { method: 'GET', url: `/api/model-versions/${row.id}` });
  assert.equal(view.json().status, 'rejected');
  assert.deepEqual(view.json().lineage.map((l: { ref: string | null }) => l.ref), [null, 'demo-unet3d@1']);
  // The current version is still the newest registered one.
  const list = (await s.as('viewer', { method: 'GET', url: '/api/models' })).json().models as { name: string; current: { ref: string }; rejected: number }[];
  assert.equal(list.find((m) => m.name === 'demo-unet3d')!.current.ref, 'demo-unet3d@2');
  assert.equal(list.find((m) => m.name === 'demo-unet3d')!.rejected, 1);
  const job = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'atlas', input: { datasetId: 'x', models: [row.id] } } });
  assert.equal(job.statusCode, 409, job.body);
  assert.match(job.json().message, /was rejected \(held-out mean Dice 0\.500 < parent 0\.800\) and cannot be used by jobs/);
});

test('registry: a job naming a model without a version is pinned to the current version at submit', async () => {
  // train-mask-head checks nothing against the database at submit (atlas and annotate would refuse
  // the missing data set first), so the stored input shows the pinning; the job itself then fails.
  const r = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'train-mask-head', input: { datasetId: 'pin-test', models: ['demo-unet3d'] } } });
  assert.equal(r.statusCode, 202, r.body);
  assert.deepEqual(r.json().job.input.models, ['demo-unet3d@2']);
  // By version id it is pinned to the same name@version.
  const v1 = (await s.as('viewer', { method: 'GET', url: '/api/model-versions/demo-unet3d@1' })).json() as { id: string };
  const r1 = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'train-mask-head', input: { datasetId: 'pin-test', models: [v1.id] } } });
  assert.deepEqual(r1.json().job.input.models, ['demo-unet3d@1']);
  // atlas and annotate pin the same way, after which their submission check refuses the missing data set.
  const a = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'atlas', input: { datasetId: 'pin-test', models: ['demo-unet3d'] } } });
  assert.equal(a.statusCode, 400, a.body);
  assert.match(a.json().message, /data set pin-test does not exist/);
});

test('registry: paths from clients are refused with the rule, the same answer whether the file exists or not, naming no server folder', async () => {
  const answers: string[] = [];
  for (const path of ['/etc/shadow', '/etc/no-such-file-here', 'models/demo/demo-unet3d', 'models/demo/nope', '../../etc/passwd', join(ROOT, 'models/demo/demo-unet3d/model.onnx'), 'C:\\models\\x.onnx', 'file:///etc/shadow', '']) {
    for (const type of ['atlas', 'annotate']) {
      const r = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type, input: { datasetId: 'x', models: [path] } } });
      assert.equal(r.statusCode, 400, `${type} ${path}: ${r.body}`);
      const body = r.json() as { message: string; hint?: string };
      assert.match(body.message, /is not a model reference: jobs name registered models as name@version, name \(its current version\) or a version id; a path on the server is never opened/);
      const text = `${body.message} ${body.hint ?? ''}`;
      assert.ok(!text.includes(ROOT.replace(/\/$/, '')) || path.startsWith(ROOT), `${path}: the answer names the install folder: ${text}`);
      assert.doesNotMatch(text, /exist|readable|permission/i, `${path}: the answer says something about the file: ${text}`);
      answers.push(body.message.replace(JSON.stringify(path.length > 80 ? `${path.slice(0, 80)}…` : path), 'PATH'));
    }
  }
  assert.equal(new Set(answers.map((a) => a.replace(/^(atlas|annotate) job: /, ''))).size, 1, 'one answer for every path, existing or not');
  // Nothing was queued.
  const jobs = await s.store.db.selectFrom('jobs').select('id').where('input', 'like', '%etc%').execute();
  assert.equal(jobs.length, 0);
});

test('migration 0012: a model registered before versions becomes version 1 of its name', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-migrate-'));
  const store = await openStore(join(dir, 'old.sqlite'), { migrate: false });
  try {
    const all = migrationList('sqlite');
    const old = Object.fromEntries(Object.entries(all).filter(([k]) => k < '0003'));
    const r = await new Migrator({ db: store.db, provider: { getMigrations: async () => old } }).migrateToLatest();
    assert.equal(r.error, undefined);
    // The 0001 schema's single-version table, as an older server left it.
    await (store.db as unknown as Kysely<Record<string, Record<string, unknown>>>).insertInto('models').values({ id: 'm-old', name: 'legacy-net', blob: 'a'.repeat(64), size: 3, manifest: '{"name":"legacy-net"}', created_at: '2026-01-01T00:00:00.000Z', created_by: null }).execute();
    await migrateToLatest(store.db, 'sqlite');
    const rows = await store.db.selectFrom('model_versions').selectAll().execute();
    assert.deepEqual(rows.map((x) => [x.id, x.name, x.version, x.status, x.blob]), [['m-old', 'legacy-net', 1, 'registered', 'a'.repeat(64)]]);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
