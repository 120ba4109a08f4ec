// Role matrix: every route × every role (and no login) gets exactly what docs/server.md says —
// 401 without a login (except public routes), 403 when the role lacks the route's permission,
// 2xx when it has it. The route list is read from the server's own OpenAPI document, so a new
// route without an entry here fails the test.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../helpers/cli.js';
import { multipartBody, startTestServer, waitFor, type TestServer } from '../helpers/server.js';
import { makeDataset, uploadPng } from '../helpers/api-suite.js';
import { can, permissionMatrixMarkdown, type Permission } from '../../src/server/permissions.js';
import { ROLES, type Role } from '../../src/store/schema.js';

/** The documented permission of every route. */
const EXPECTED: Record<string, Permission> = {
  'GET /health': 'public',
  'GET /ready': 'public',
  'POST /api/auth/login': 'public',
  'POST /api/auth/logout': 'self',
  'GET /api/auth/me': 'self',
  'POST /api/auth/password': 'self',
  'GET /api/tokens': 'self',
  'POST /api/tokens': 'self',
  'DELETE /api/tokens/:id': 'self',
  'GET /api/users': 'admin',
  'POST /api/users': 'admin',
  'PATCH /api/users/:id': 'admin',
  'GET /api/audit': 'admin',
  'GET /api/admin/integrity': 'admin',
  'GET /api/projects': 'read',
  'POST /api/projects': 'data:write',
  'GET /api/projects/:id/datasets': 'read',
  'POST /api/projects/:id/datasets': 'data:write',
  'GET /api/datasets/:id': 'read',
  'GET /api/datasets/:id/images': 'read',
  'POST /api/datasets/:id/images': 'data:write',
  'POST /api/datasets/:id/labels': 'data:write',
  'GET /api/datasets/:id/export': 'read',
  'GET /api/images/:id': 'read',
  'GET /api/images/:id/data': 'read',
  'GET /api/images/:id/slice': 'read',
  'POST /api/images/:id/masks': 'data:write',
  'POST /api/images/:id/cases': 'data:write',
  'GET /api/review/queue': 'read',
  'GET /api/masks/:id': 'read',
  'GET /api/masks/:id/versions/:version/data': 'read',
  'GET /api/masks/:id/versions/:version/slice': 'read',
  'POST /api/masks/:id/versions': 'mask:edit',
  'PUT /api/masks/:id/data': 'mask:edit',
  'GET /api/masks/:id/drafts': 'read',
  'GET /api/masks/:id/drafts/:draftId/data': 'read',
  'POST /api/masks/:id/review': 'mask:review',
  'POST /api/masks/:id/claim': 'mask:edit',
  'DELETE /api/masks/:id/claim': 'mask:edit',
  'GET /api/masks/:id/overlays/:kind': 'read',
  'GET /api/jobs/types': 'read',
  'POST /api/jobs': 'job:run',
  'GET /api/jobs': 'read',
  'GET /api/jobs/:id': 'read',
  'GET /api/jobs/:id/events': 'read',
  'GET /api/jobs/:id/tasks': 'read',
  'GET /api/models': 'read',
  'POST /api/models': 'model:write',
};

let s: TestServer;
before(async () => {
  s = await startTestServer();
});
after(async () => {
  await s?.close();
});

test('docs/server.md prints the permission matrix the code enforces', () => {
  const doc = readFileSync(join(ROOT, 'docs/server.md'), 'utf8');
  assert.ok(doc.includes(permissionMatrixMarkdown()), 'regenerate the table in docs/server.md from permissionMatrixMarkdown()');
});

test('every route × every role: 401 without login, 403 without the permission, 2xx with it', async () => {
  const spec = (await s.as('admin', { url: '/docs/json' })).json() as { paths: Record<string, Record<string, { description?: string }>> };
  // Every operation documents its permission; the ones in EXPECTED must document what the docs say.
  const declared = new Map<string, Permission>();
  for (const [p, ms] of Object.entries(spec.paths)) {
    for (const [m, op] of Object.entries(ms)) {
      const perm = /Permission: `([^`]+)`/.exec(op.description ?? '')?.[1] as Permission | undefined;
      assert.ok(perm, `${m} ${p} documents no permission`);
      declared.set(`${m.toUpperCase()} ${p.replace(/\{(\w+)\}/g, ':$1')}`, perm);
    }
  }
  for (const [route, perm] of Object.entries(EXPECTED)) assert.equal(declared.get(route), perm, `${route}: documented permission`);

  // Fixtures: a data set with an image, a case with a version and a draft, a done job with an overlay-less prediction.
  const ds = await makeDataset(s, 'roles');
  const projectId = (await s.as('admin', { url: '/api/projects' })).json().projects.find((p: { name: string }) => p.name === 'p-roles').id as string;
  const img = await uploadPng(s, ds, 'r.png');
  const mask = (await s.as('admin', { method: 'POST', url: `/api/images/${img.id}/cases`, payload: { target: 'lesion' } })).json().maskId as string;
  const n = 29 * 19;
  await s.as('admin', { method: 'POST', url: `/api/masks/${mask}/versions`, payload: { baseVersion: 0, labels: Buffer.alloc(n, 1).toString('base64') } });
  const draft = (await s.as('admin', { method: 'POST', url: `/api/masks/${mask}/versions`, payload: { baseVersion: 0, labels: Buffer.alloc(n, 2).toString('base64') } })).json().details.draftId as string;
  const job = (await s.as('admin', { method: 'POST', url: '/api/jobs', payload: { type: 'test-fail', input: { times: 0, tag: 'roles' } } })).json().job.id as string;
  await waitFor(async () => (await s.as('admin', { url: `/api/jobs/${job}` })).json().status === 'done', 10_000, 'job');
  const victim = (await s.as('admin', { method: 'POST', url: '/api/users', payload: { username: 'victim', password: 'victim-password-1', role: 'viewer' } })).json().user.id as string;
  const onnx = readFileSync(join(ROOT, 'test/fixtures/cam/densenet.onnx'));
  const current = async () => (await s.as('admin', { url: `/api/masks/${mask}` })).json().currentVersion as number;
  let k = 0;

  /** A valid request for each route (unique names where the route creates something). */
  const request = async (route: string, role: Role | null): Promise<Parameters<TestServer['as']>[1]> => {
    const [method, path] = route.split(' ') as [string, string];
    const i = ++k;
    const url = path
      .replace(':version', '1')
      .replace(':draftId', draft)
      .replace(':kind', 'heatmap')
      .replace(':id', path.startsWith('/api/projects') ? projectId : path.startsWith('/api/datasets') ? ds : path.startsWith('/api/images') ? img.id : path.startsWith('/api/masks') ? mask : path.startsWith('/api/jobs') ? job : path.startsWith('/api/users') ? victim : 'x');
    const base = { method: method as 'GET', url };
    switch (route) {
      case 'POST /api/auth/login':
        return { ...base, payload: { username: role ?? 'viewer', password: `pw-${role ?? 'viewer'}-0123456789` } };
      case 'POST /api/auth/password': {
        // A password change revokes the user's API tokens unless kept: keep them, the matrix goes on with them.
        const keepTokens = role ? ((await s.as(role, { url: '/api/tokens' })).json().tokens as Array<{ id: string }>).map((t) => t.id) : [];
        return { ...base, payload: { currentPassword: `pw-${role}-0123456789`, newPassword: `pw-${role}-0123456789`, keepTokens } };
      }
      case 'POST /api/tokens':
        return { ...base, payload: { name: `t${i}` } };
      case 'DELETE /api/tokens/:id': {
        const own = role ? ((await s.as(role, { method: 'POST', url: '/api/tokens', payload: { name: `d${i}` } })).json().id as string) : 'x';
        return { ...base, url: `/api/tokens/${own}` };
      }
      case 'POST /api/users':
        return { ...base, payload: { username: `u${i}`, password: 'some-password-1', role: 'viewer' } };
      case 'PATCH /api/users/:id':
        return { ...base, payload: { disabled: false } };
      case 'POST /api/projects':
        return { ...base, payload: { name: `proj${i}` } };
      case 'POST /api/projects/:id/datasets':
        return { ...base, payload: { name: `ds${i}` } };
      case 'POST /api/datasets/:id/images':
        return { ...base, ...multipartBody([{ name: `img${i}.png`, data: readFileSync(join(ROOT, 'test/fixtures/images/grey8.png')) }]) };
      case 'POST /api/datasets/:id/labels':
        return { ...base, payload: { labels: [{ image: 'r.png', label: 'x' }] } };
      case 'GET /api/images/:id/slice':
      case 'GET /api/masks/:id/versions/:version/slice':
        return { ...base, url: `${url}?index=0` };
      case 'POST /api/images/:id/masks':
        return { ...base, ...multipartBody([{ name: 'm.png', data: readFileSync(join(ROOT, 'test/fixtures/images/grey8.png')) }], { target: 'lungs' }) };
      case 'POST /api/images/:id/cases':
        return { ...base, payload: { target: `t${i}` } };
      case 'POST /api/masks/:id/versions':
        return { ...base, payload: { baseVersion: await current(), labels: Buffer.alloc(n, i % 200).toString('base64') } };
      case 'PUT /api/masks/:id/data':
        return { ...base, url: `${url}?baseVersion=${await current()}`, headers: { 'content-type': 'application/octet-stream' }, payload: Buffer.alloc(n, i % 200) };
      case 'POST /api/masks/:id/review':
        return { ...base, payload: { decision: 'accept', version: await current() } };
      case 'POST /api/jobs':
        return { ...base, payload: { type: 'test-fail', input: { times: 0, tag: `r${i}` } } };
      case 'POST /api/models':
        return { ...base, ...multipartBody([{ name: 'm.onnx', data: onnx }], { manifest: JSON.stringify({ format: 'medmask-model/1', name: `model-${i}`, task: 'classify', model: 'm.onnx', input: { height: 64, width: 64, channels: 3 }, classes: ['a', 'b'] }) }) };
      default:
        return base;
    }
  };
  // The overlay route: a case with a prediction that has a heat map blob, so 2xx is possible.
  const heat = await s.blobs.put(new Uint8Array([1, 2, 3]));
  const p = await s.store.db.selectFrom('masks').select('id').where('id', '=', mask).executeTakeFirstOrThrow();
  await s.store.db.insertInto('predictions').values({ id: 'pred-roles', job_id: job, image_id: img.id, target: 'lesion', probabilities: '{}', uncertainty: null, ood_score: null, decision: 'review', priority: 1, heatmap_blob: heat.hash, uncertainty_blob: null, attention_blob: null, created_at: new Date().toISOString() }).execute();
  await s.store.db.updateTable('masks').set({ prediction_id: 'pred-roles' }).where('id', '=', p.id).execute();

  const failures: string[] = [];
  for (const [route, perm] of declared) {
    // Routes this test knows get valid requests and must answer 2xx; others (added by other
    // modules) must at least pass authorisation and not fail.
    const known = route in EXPECTED;
    for (const role of [null, ...ROLES] as (Role | null)[]) {
      const r = await s.as(role, await request(route, role));
      const want = perm === 'public' ? '2xx' : role === null ? 401 : can(role, perm) ? '2xx' : 403;
      const ok = want === '2xx' ? (known ? r.statusCode >= 200 && r.statusCode < 300 : ![401, 403].includes(r.statusCode) && r.statusCode < 500) : r.statusCode === want;
      if (!ok) failures.push(`${route} as ${role ?? 'anonymous'}: ${r.statusCode} (want ${want}) ${r.body.slice(0, 160)}`);
    }
  }
  assert.deepEqual(failures, []);
});
