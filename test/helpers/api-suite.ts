/**
 * The server API suite, run by server-api.test.ts on SQLite and by server-api-pg.test.ts on a
 * real PostgreSQL: every test talks to a fresh server through fastify inject.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { decodeNifti } from '../../src/io/nifti.js';
import { readVolume } from '../../src/io/index.js';
import { ROOT } from './cli.js';
import { multipartBody, startTestServer, waitFor, type TestServer } from './server.js';

const FIX = join(ROOT, 'test/fixtures');

/** Untar a .tar.gz into name → bytes. */
export async function untar(gz: Buffer): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const ex = tar.extract();
  const done = new Promise<void>((res, rej) => {
    ex.on('entry', (h, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => chunks.push(c as Buffer));
      stream.on('end', () => {
        out.set(h.name, Buffer.concat(chunks));
        next();
      });
    });
    ex.on('finish', res);
    ex.on('error', rej);
  });
  ex.end(gunzipSync(gz));
  await done;
  return out;
}

/** Make a project + data set; returns the data set id. */
export async function makeDataset(s: TestServer, name: string): Promise<string> {
  const p = await s.as('admin', { method: 'POST', url: '/api/projects', payload: { name: `p-${name}` } });
  assert.equal(p.statusCode, 201, p.body);
  const d = await s.as('admin', { method: 'POST', url: `/api/projects/${p.json().id}/datasets`, payload: { name } });
  assert.equal(d.statusCode, 201, d.body);
  return d.json().id as string;
}

/** Upload the 29×19 uint8 PNG fixture; returns the image. */
export async function uploadPng(s: TestServer, datasetId: string, name = 'grey8.png'): Promise<{ id: string; shape: number[] }> {
  const mp = multipartBody([{ name, data: readFileSync(join(FIX, 'images/grey8.png')), type: 'image/png' }]);
  const r = await s.as('reviewer', { method: 'POST', url: `/api/datasets/${datasetId}/images`, ...mp });
  assert.equal(r.statusCode, 201, r.body);
  return r.json().images[0];
}

/** Register the suite; `database` starts the database (none → SQLite) and says how to stop it. */
export function apiSuite(label: string, database: () => Promise<{ url?: string; stop?: () => Promise<void> }> = async () => ({})): void {
  let s: TestServer;
  let db: { url?: string; stop?: () => Promise<void> } = {};
  before(async () => {
    db = await database();
    s = await startTestServer({ db: db.url });
  });
  after(async () => {
    await s?.close();
    await db.stop?.();
  });

  test(`${label}: health is public, everything else needs a login; /docs serves OpenAPI to logged-in users`, async () => {
    assert.equal((await s.as(null, { url: '/health' })).statusCode, 200);
    const ready = await s.as(null, { url: '/ready' });
    assert.equal(ready.statusCode, 200);
    assert.deepEqual(ready.json(), { ready: true, database: true, queue: true });
    const anon = await s.as(null, { url: '/api/projects' });
    assert.equal(anon.statusCode, 401);
    assert.equal(anon.json().error, 'UNAUTHENTICATED');
    assert.equal((await s.as(null, { url: '/docs/json' })).statusCode, 401);
    const spec = await s.as('viewer', { url: '/docs/json' });
    assert.equal(spec.statusCode, 200);
    const doc = spec.json() as { openapi: string; paths: Record<string, unknown> };
    assert.match(doc.openapi, /^3\./);
    assert.ok(doc.paths['/api/masks/{id}/versions'] && doc.paths['/api/review/queue'], Object.keys(doc.paths).join(' '));
    const ui = await s.as('viewer', { url: '/docs' });
    assert.equal(ui.statusCode, 200, ui.body.slice(0, 200));
    assert.match(ui.body, /swagger/i);
  });

  test(`${label}: cookie sessions need the CSRF token on writes; bearer tokens do not; revoked tokens stop working`, async () => {
    const u = s.users.annotator;
    const noCsrf = await s.app.inject({ method: 'POST', url: '/api/tokens', cookies: { medmask_session: u.cookie }, payload: { name: 'x' } });
    assert.equal(noCsrf.statusCode, 403);
    assert.match(noCsrf.json().message, /CSRF/);
    const wrong = await s.app.inject({ method: 'POST', url: '/api/tokens', cookies: { medmask_session: u.cookie }, headers: { 'x-csrf-token': 'nope' }, payload: { name: 'x' } });
    assert.equal(wrong.statusCode, 403);
    const ok = await s.app.inject({ method: 'POST', url: '/api/tokens', cookies: { medmask_session: u.cookie }, headers: { 'x-csrf-token': u.csrf }, payload: { name: 'x' } });
    assert.equal(ok.statusCode, 201);
    const tok = ok.json() as { id: string; token: string };
    const me = await s.app.inject({ url: '/api/auth/me', headers: { authorization: `Bearer ${tok.token}` } });
    assert.equal(me.json().user.username, 'annotator');
    assert.equal((await s.as('annotator', { method: 'DELETE', url: `/api/tokens/${tok.id}` })).statusCode, 200);
    const after = await s.app.inject({ url: '/api/auth/me', headers: { authorization: `Bearer ${tok.token}` } });
    assert.equal(after.statusCode, 401);
    const garbage = await s.app.inject({ url: '/api/auth/me', headers: { authorization: 'Basic abc' } });
    assert.equal(garbage.statusCode, 401);
    const bad = await s.app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'viewer', password: 'wrong password!' } });
    assert.equal(bad.statusCode, 401);
    assert.equal(bad.json().error, 'UNAUTHENTICATED');
  });

  test(`${label}: images and DICOM upload; DICOM is de-identified before anything is stored`, async () => {
    const ds = await makeDataset(s, 'uploads');
    const img = await uploadPng(s, ds);
    assert.deepEqual(img.shape, [29, 19, 1]);
    // The raw slice equals the PNG's pixels as medmask's reader sees them (and the reader is checked against Pillow elsewhere).
    const ref = await readVolume(join(FIX, 'images/grey8.png'));
    const slice = await s.as('viewer', { url: `/api/images/${img.id}/slice?axis=z&index=0` });
    assert.equal(slice.statusCode, 200);
    assert.equal(slice.headers['x-width'], '29');
    assert.deepEqual(new Uint8Array(slice.rawPayload), new Uint8Array(ref.data.buffer, ref.data.byteOffset, ref.data.byteLength));
    const png = await s.as('viewer', { url: `/api/images/${img.id}/slice?index=0&format=png` });
    assert.equal(png.headers['content-type'], 'image/png');
    // Same name again: conflict, not a silent duplicate.
    const again = await s.as('reviewer', { method: 'POST', url: `/api/datasets/${ds}/images`, ...multipartBody([{ name: 'grey8.png', data: readFileSync(join(FIX, 'images/grey8.png')) }]) });
    assert.equal(again.statusCode, 409);

    const expected = JSON.parse(readFileSync(join(FIX, 'dicom/expected.json'), 'utf8')) as { secrets: Record<string, string>; cases: Record<string, { shape: number[]; original_uids?: string[] }> };
    const dir = join(FIX, 'dicom/series_oblique');
    const files = readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && e.name !== 'README.txt')
      .map((e) => ({ name: e.name, data: readFileSync(join(e.parentPath ?? e.path, e.name)) }));
    assert.equal(files.length, 6);
    const up = await s.as('reviewer', { method: 'POST', url: `/api/datasets/${ds}/images`, ...multipartBody(files) });
    assert.equal(up.statusCode, 201, up.body);
    const dic = up.json().images[0] as { id: string; shape: number[]; format: string; hash: string };
    assert.deepEqual(dic.shape, expected.cases.series_oblique!.shape);
    const meta = await s.as('viewer', { url: `/api/images/${dic.id}` });
    const blob = gunzipSync(await s.blobs.get(dic.hash));
    const forbidden = [...Object.values(expected.secrets), ...(expected.cases.series_oblique!.original_uids ?? [])];
    const stored = [meta.body, blob.toString('latin1')];
    const rows = await s.store.db.selectFrom('images').selectAll().execute();
    stored.push(JSON.stringify(rows));
    for (const text of stored) for (const secret of forbidden) assert.ok(!text.includes(secret), `stored data contains "${secret}"`);
    assert.equal(meta.json().meta.deidentified, true);
  });

  test(`${label}: labels from JSON and CSV; names that are not in the data set are listed`, async () => {
    const ds = await makeDataset(s, 'labels');
    await uploadPng(s, ds, 'a.png');
    await uploadPng(s, ds, 'b.png');
    const j = await s.as('reviewer', { method: 'POST', url: `/api/datasets/${ds}/labels`, payload: { labels: [{ image: 'a.png', label: 'nodule' }] } });
    assert.equal(j.statusCode, 201, j.body);
    const c = await s.as('reviewer', { method: 'POST', url: `/api/datasets/${ds}/labels`, headers: { 'content-type': 'text/csv' }, payload: 'image,label\nimages/b.png,healthy\n' });
    assert.equal(c.statusCode, 201, c.body);
    const bad = await s.as('reviewer', { method: 'POST', url: `/api/datasets/${ds}/labels`, headers: { 'content-type': 'text/csv' }, payload: 'image,label\nzzz.png,healthy\n' });
    assert.equal(bad.statusCode, 422);
    assert.match(bad.json().message, /"zzz\.png" \(row 2\)/);
    const imgs = (await s.as('viewer', { url: `/api/datasets/${ds}/images` })).json().images as { id: string; name: string }[];
    const b = (await s.as('viewer', { url: `/api/images/${imgs.find((i) => i.name === 'b.png')!.id}` })).json();
    assert.deepEqual(b.labels.map((l: { value: string }) => l.value), ['healthy']);
  });

  test(`${label}: versioned masks — whole and per-slice saves, stale save → 409 kept as a draft, review`, async () => {
    const ds = await makeDataset(s, 'masks');
    const img = await uploadPng(s, ds);
    const n = 29 * 19;
    const c = await s.as('reviewer', { method: 'POST', url: `/api/images/${img.id}/cases`, payload: { target: 'lesion', priority: 0.5 } });
    assert.equal(c.statusCode, 201, c.body);
    const maskId = c.json().maskId as string;
    const labels = new Uint8Array(n);
    labels.fill(1, 10, 50);
    const v1 = await s.as('annotator', { method: 'POST', url: `/api/masks/${maskId}/versions`, payload: { baseVersion: 0, labels: Buffer.from(labels).toString('base64') } });
    assert.equal(v1.statusCode, 201, v1.body);
    assert.equal(v1.json().version, 1);
    // Per-slice edit (gzip) on version 1.
    const plane = new Uint8Array(n);
    plane.fill(2, 100, 120);
    const v2 = await s.as('reviewer', { method: 'POST', url: `/api/masks/${maskId}/versions`, payload: { baseVersion: 1, slices: [{ index: 0, labels: gzipSync(plane).toString('base64') }], note: 'slice edit' } });
    assert.equal(v2.statusCode, 201, v2.body);
    // A stale save: based on version 1 while 2 is current.
    const stale = await s.as('annotator', { method: 'POST', url: `/api/masks/${maskId}/versions`, payload: { baseVersion: 1, labels: Buffer.from(labels).toString('base64') } });
    assert.equal(stale.statusCode, 409);
    const body = stale.json() as { error: string; details: { currentVersion: number; draftId: string; current: { author: string } } };
    assert.equal(body.error, 'CONFLICT');
    assert.equal(body.details.currentVersion, 2);
    assert.equal(body.details.current.author, 'reviewer');
    const drafts = (await s.as('viewer', { url: `/api/masks/${maskId}/drafts` })).json().drafts as { id: string; baseVersion: number }[];
    assert.deepEqual(drafts.map((d) => [d.id, d.baseVersion]), [[body.details.draftId, 1]]);
    const draft = await decodeNifti(new Uint8Array(gunzipSync((await s.as('viewer', { url: `/api/masks/${maskId}/drafts/${body.details.draftId}/data` })).rawPayload)));
    assert.deepEqual(new Uint8Array(draft.data.buffer, draft.data.byteOffset, n), labels, 'the refused edit is kept byte for byte');
    // Binary save, NIfTI download round trip.
    const raw = await s.as('viewer', { url: `/api/masks/${maskId}/versions/2/data?format=raw` });
    assert.deepEqual(new Uint8Array(raw.rawPayload), plane, 'a one-slice image: the slice replaced everything');
    const put = await s.as('annotator', { method: 'PUT', url: `/api/masks/${maskId}/data?baseVersion=2`, headers: { 'content-type': 'application/octet-stream' }, payload: Buffer.from(labels) });
    assert.equal(put.statusCode, 201, put.body);
    const nii = await decodeNifti(new Uint8Array((await s.as('viewer', { url: `/api/masks/${maskId}/versions/3/data` })).rawPayload));
    assert.deepEqual(nii.shape, [29, 19, 1]);
    assert.deepEqual(Array.from(nii.data), Array.from(labels));
    const m = (await s.as('viewer', { url: `/api/masks/${maskId}` })).json() as { versions: { version: number; parentVersion: number | null; author: string }[]; drafts: number; currentVersion: number };
    assert.deepEqual(m.versions.map((v) => [v.version, v.parentVersion, v.author]), [[3, 2, 'annotator'], [2, 1, 'reviewer'], [1, null, 'annotator']]);
    assert.equal(m.drafts, 1);
    // Review: stale version → 409; reject needs a reason; accept the current one.
    assert.equal((await s.as('reviewer', { method: 'POST', url: `/api/masks/${maskId}/review`, payload: { decision: 'accept', version: 2 } })).statusCode, 409);
    assert.equal((await s.as('reviewer', { method: 'POST', url: `/api/masks/${maskId}/review`, payload: { decision: 'reject', version: 3 } })).statusCode, 400);
    const acc = await s.as('reviewer', { method: 'POST', url: `/api/masks/${maskId}/review`, payload: { decision: 'accept', version: 3, timeSpentMs: 4200 } });
    assert.equal(acc.statusCode, 201, acc.body);
    const q = (await s.as('viewer', { url: `/api/review/queue?dataset=${ds}&status=accepted` })).json();
    assert.equal(q.total, 1);
    assert.equal((await s.as('viewer', { url: `/api/review/queue?dataset=${ds}` })).json().total, 0, 'accepted cases leave the open queue');
  });

  test(`${label}: phantoms job end to end — SSE progress, same input is the same job, queue sorted by priority, nnU-Net export`, async () => {
    const input = { kind: '2d', n: 6, seed: 11, size: 64, project: 'jobs', dataset: 'ph' };
    const r = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'phantoms', input } });
    assert.equal(r.statusCode, 202, r.body);
    const id = r.json().job.id as string;
    const sse = await s.as('viewer', { url: `/api/jobs/${id}/events` });
    assert.equal(sse.headers['content-type'], 'text/event-stream');
    const events = sse.body.split('\n\n').filter(Boolean).map((e) => ({ event: /event: (\w+)/.exec(e)![1], data: JSON.parse(/data: (.*)/.exec(e)![1]!) as { status: string; progress: number } }));
    assert.equal(events.at(-1)!.event, 'end');
    assert.equal(events.at(-1)!.data.status, 'done');
    const progress = events.map((e) => e.data.progress);
    assert.deepEqual(progress, [...progress].sort((a, b) => a - b), 'progress never goes back');
    const again = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'phantoms', input: { ...input } } });
    assert.equal(again.statusCode, 202);
    assert.equal(again.json().created, false);
    assert.equal(again.json().job.id, id);
    const job = (await s.as('viewer', { url: `/api/jobs/${id}` })).json() as { result: { datasetId: string; images: number; cases: number }; attempts: number };
    assert.equal(job.attempts, 1);
    assert.deepEqual([job.result.images, job.result.cases], [6, 6]);
    const q = (await s.as('viewer', { url: `/api/review/queue?dataset=${job.result.datasetId}&limit=100` })).json() as { total: number; items: { priority: number; maskId: string; currentVersion: number }[] };
    assert.equal(q.total, 6);
    const pr = q.items.map((i) => i.priority);
    assert.deepEqual(pr, [...pr].sort((a, b) => b - a));
    const page = (await s.as('viewer', { url: `/api/review/queue?dataset=${job.result.datasetId}&limit=2&offset=2` })).json() as typeof q;
    assert.deepEqual(page.items.map((i) => i.maskId), q.items.slice(2, 4).map((i) => i.maskId));
    // Export nnU-Net: every case, images as stored, labels equal the phantom's exact lesion masks.
    const ex = await s.as('viewer', { url: `/api/datasets/${job.result.datasetId}/export?format=nnunet` });
    assert.equal(ex.statusCode, 200, ex.body);
    const files = await untar(ex.rawPayload);
    const names = [...files.keys()].sort();
    assert.equal(names.filter((f) => f.startsWith('imagesTr/')).length, 6);
    assert.equal(names.filter((f) => f.startsWith('labelsTr/')).length, 6);
    const dsj = JSON.parse(files.get('dataset.json')!.toString()) as { numTraining: number; labels: Record<string, number> };
    assert.equal(dsj.numTraining, 6);
    assert.deepEqual(dsj.labels, { background: 0, lesion: 1 });
    const manifest = JSON.parse(files.get('export.json')!.toString()) as { entries: { case: string; image: string }[] };
    const { chestPhantom } = await import('../../src/core/phantom/chest.js');
    const { Rng } = await import('../../src/core/random.js');
    for (const e of manifest.entries) {
      const idx = Number(/img_(\d+)/.exec(e.image)![1]);
      const truth = chestPhantom({ seed: new Rng(11).fork(`case-${idx}`).seed, size: 64 });
      const lab = await decodeNifti(new Uint8Array(files.get(`labelsTr/${e.case}.nii.gz`)!));
      assert.deepEqual(Array.from(lab.data), Array.from(truth.mask), `${e.image}: exported mask = phantom truth`);
    }
    const pngs = await untar((await s.as('viewer', { url: `/api/datasets/${job.result.datasetId}/export?format=png` })).rawPayload);
    assert.equal([...pngs.keys()].filter((k) => k.endsWith('.png')).length, 12);
    const segs = await untar((await s.as('viewer', { url: `/api/datasets/${job.result.datasetId}/export?format=dicom-seg` })).rawPayload);
    const segFiles = [...segs.keys()].filter((k) => k.endsWith('.seg.dcm'));
    const lesionCases = manifest.entries.filter((e) => chestPhantom({ seed: new Rng(11).fork(`case-${Number(/img_(\d+)/.exec(e.image)![1])}`).seed, size: 64 }).mask.some((v) => v)).length;
    assert.equal(segFiles.length, lesionCases, 'one SEG per non-empty mask');
    for (const f of segFiles) {
      const b = segs.get(f)!;
      assert.equal(b.subarray(128, 132).toString('latin1'), 'DICM');
      assert.ok(b.includes(Buffer.from('1.2.840.10008.5.1.4.1.1.66.4')), `${f} is a Segmentation object`);
    }
  });

  test(`${label}: job types — unknown is a 400 listing the known ones, annotate and atlas inputs are checked at submit time`, async () => {
    const u = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'nope', input: {} } });
    assert.equal(u.statusCode, 400);
    assert.match(u.json().hint, /phantoms/);
    const at = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'atlas', input: {} } });
    assert.equal(at.statusCode, 400);
    assert.match(at.json().message, /atlas job: datasetId/);
    const a = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'annotate', input: {} } });
    assert.equal(a.statusCode, 400);
    assert.match(a.json().message, /datasetId/);
    const bad = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'phantoms', input: { kind: '4d', n: 1 } } });
    assert.equal(bad.statusCode, 400);
    assert.match(bad.json().message, /kind "4d" must be "2d" or "3d"/);
  });

  test(`${label}: bad input is a 4xx with a clear message, never a 500`, async () => {
    const ds = await makeDataset(s, 'bad-input');
    const up = (files: Parameters<typeof multipartBody>[0]) => s.as('reviewer', { method: 'POST', url: `/api/datasets/${ds}/images`, ...multipartBody(files) });
    const big = await up([{ name: 'big.nii', data: new Uint8Array(9 * 2 ** 20) }]);
    assert.equal(big.statusCode, 413, big.body);
    assert.equal(big.json().error, 'TOO_LARGE');
    const ct = await s.as('reviewer', { method: 'POST', url: `/api/datasets/${ds}/images`, headers: { 'content-type': 'application/xml' }, payload: '<x/>' });
    assert.equal(ct.statusCode, 415, ct.body);
    const json = await s.as('reviewer', { method: 'POST', url: `/api/datasets/${ds}/images`, payload: { file: 'x' } });
    assert.equal(json.statusCode, 415, json.body);
    assert.match(json.json().message, /multipart/);
    const text = await up([{ name: 'notes.png', data: 'this is not an image at all' }]);
    assert.ok([415, 422].includes(text.statusCode), text.body);
    assert.match(text.json().message, /notes\.png/);
    assert.doesNotMatch(text.body, /upload-|f0000/, 'no temporary path leaks into the message');
    const empty = await up([{ name: 'empty.nii.gz', data: '' }]);
    assert.equal(empty.statusCode, 422, empty.body);
    const trav = await up([{ name: '../../etc/passwd.png', data: readFileSync(join(FIX, 'images/grey8.png')) }]);
    assert.equal(trav.statusCode, 400, trav.body);
    assert.match(trav.json().message, /not allowed/);
    const trav2 = await up([{ name: '..\\..\\x.png', data: readFileSync(join(FIX, 'images/grey8.png')) }]);
    assert.equal(trav2.statusCode, 400);
    const malformed = await s.as('reviewer', { method: 'POST', url: '/api/projects', headers: { 'content-type': 'application/json' }, payload: '{"name": ' });
    assert.equal(malformed.statusCode, 400, malformed.body);
    assert.equal(malformed.json().error, 'USAGE');
    const schema = await s.as('reviewer', { method: 'POST', url: '/api/projects', payload: { nme: 'x' } });
    assert.equal(schema.statusCode, 400);
    assert.match(schema.json().message, /name/);
    for (const url of ['/api/images/nope', '/api/masks/nope', '/api/jobs/nope', '/api/datasets/nope', '/api/datasets/nope/export', '/api/masks/nope/versions/1/data', '/api/nothing-here']) {
      const r = await s.as('viewer', { url });
      assert.equal(r.statusCode, 404, `${url}: ${r.body}`);
      assert.equal(r.json().error, 'NOT_FOUND');
    }
    const img = await uploadPng(s, ds, 'ok.png');
    const c = (await s.as('reviewer', { method: 'POST', url: `/api/images/${img.id}/cases`, payload: { target: 't' } })).json().maskId as string;
    const short = await s.as('annotator', { method: 'POST', url: `/api/masks/${c}/versions`, payload: { baseVersion: 0, labels: Buffer.from([1, 2, 3]).toString('base64') } });
    assert.equal(short.statusCode, 400);
    assert.match(short.json().message, /551 voxels/);
    const both = await s.as('annotator', { method: 'POST', url: `/api/masks/${c}/versions`, payload: { baseVersion: 0 } });
    assert.equal(both.statusCode, 400);
    const future = await s.as('annotator', { method: 'POST', url: `/api/masks/${c}/versions`, payload: { baseVersion: 7, labels: Buffer.alloc(551).toString('base64') } });
    assert.equal(future.statusCode, 400);
    const slice = await s.as('viewer', { url: `/api/images/${img.id}/slice?index=5` });
    assert.equal(slice.statusCode, 400);
    const wrongMask = await s.as('reviewer', { method: 'POST', url: `/api/images/${img.id}/masks`, ...multipartBody([{ name: 'm.png', data: readFileSync(join(FIX, 'images/rgb8.png')) }]) });
    assert.equal(wrongMask.statusCode, 422, wrongMask.body);
  });

  test(`${label}: every write is in the audit log, failed logins included; integrity check passes`, async () => {
    await s.app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'ghost', password: 'whatever-123' } });
    const log = (await s.as('admin', { url: '/api/audit?limit=1000' })).json().entries as { action: string; status: number; username: string | null; details: Record<string, unknown> | null }[];
    assert.ok(log.some((e) => e.action === 'POST /api/auth/login' && e.status === 401 && e.details?.username === 'ghost'));
    assert.ok(log.some((e) => e.action === 'POST /api/masks/:id/versions' && e.status === 201 && e.username === 'annotator'));
    assert.ok(log.some((e) => e.action === 'POST /api/masks/:id/versions' && e.status === 409));
    assert.ok(log.some((e) => e.action === 'POST /api/datasets/:id/images' && e.status === 201));
    assert.ok(!log.some((e) => e.action.startsWith('GET ')), 'reads are not audited');
    const integ = (await s.as('admin', { url: '/api/admin/integrity' })).json() as { ok: boolean; referenced: number };
    assert.equal(integ.ok, true);
    assert.ok(integ.referenced > 5);
  });
}
