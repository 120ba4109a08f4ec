/**
 * Upload sources (issue 14 §2): a seeded 3D phantom data set (nnU-Net layout, dataset.json with
 * `medmask.cases`) sent by `medmask upload DIR --server URL` to a listening server becomes images
 * and partial labels carrying each case's source and labelled organs; an atlas job over it ranks
 * per phantom source (perSource keys are the sources dataset.json names, not "default"). The
 * archive route refuses entries that climb out, archives over the limit, and a broken case without
 * keeping the cases before it; single uploads take a "source" field that the label map inherits.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { createVolume } from '../../src/core/volume.js';
import { encodeNifti } from '../../src/io/nifti.js';
import { writeAbdomenDataset } from '../../src/pipeline/phantoms.js';
import { cliWithToken } from '../helpers/cli-in-process.js';
import { multipartBody, startTestServer, waitJob, type TestServer } from '../helpers/server.js';
import { registerModelDirs } from '../helpers/models.js';

let s: TestServer;
let dir: string;
let url: string;
let cases: { case: string; source: string; labelled: string[] }[];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'medmask-upload-test-'));
  await writeAbdomenDataset(join(dir, 'abdomen'), { n: 4, seed: 11, size: 48, sources: ['btcv', 'lits'] });
  cases = (JSON.parse(readFileSync(join(dir, 'abdomen', 'dataset.json'), 'utf8')) as { medmask: { cases: typeof cases } }).medmask.cases;
  s = await startTestServer();
  url = await s.app.listen({ host: '127.0.0.1', port: 0 });
});
after(async () => {
  await s?.close();
  rmSync(dir, { recursive: true, force: true });
});

const cli = cliWithToken;

function tarGz(entries: { name: string; data: Uint8Array | string }[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) pack.entry({ name: e.name }, Buffer.from(e.data));
  pack.finalize();
  return new Promise((res, rej) => {
    const chunks: Buffer[] = [];
    pack.on('data', (c: unknown) => chunks.push(c as Buffer));
    pack.on('end', () => res(gzipSync(Buffer.concat(chunks))));
    pack.on('error', rej);
  });
}

test('medmask upload: the phantom folder arrives with each case\'s source and labelled organs; atlas ranks per source', async () => {
  const noToken = await cli(undefined, 'upload', join(dir, 'abdomen'), '--server', url);
  assert.equal(noToken.code, 2);
  assert.match(noToken.err, /MEDMASK_TOKEN is not set/);
  const badToken = await cli('not-a-token', 'upload', join(dir, 'abdomen'), '--server', url, '--quiet');
  assert.equal(badToken.code, 2, badToken.err);
  assert.match(badToken.err, /UNAUTHENTICATED/);
  const r = await cli(s.users.reviewer.token, 'upload', join(dir, 'abdomen'), '--server', url, '--project', 'up', '--dataset', 'abdomen', '--json');
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /4 case\(s\)/, 'progress on stderr');
  const answer = JSON.parse(r.out) as { datasetId: string; cases: number; labels: number; sources: Record<string, number> };
  assert.equal(answer.cases, 4);
  assert.equal(answer.labels, 4);
  const expectSources: Record<string, number> = {};
  for (const c of cases) expectSources[c.source] = (expectSources[c.source] ?? 0) + 1;
  assert.deepEqual(answer.sources, expectSources);
  // Each image carries its case's source and labelled organs; its partial label is "source:<name>".
  for (const c of cases) {
    const img = await s.store.db.selectFrom('images').selectAll().where('dataset_id', '=', answer.datasetId).where('name', '=', `${c.case}.nii.gz`).executeTakeFirstOrThrow();
    const meta = JSON.parse(img.meta) as { dataSource: string; labelled: string[] };
    assert.equal(meta.dataSource, c.source);
    assert.deepEqual(meta.labelled, c.labelled);
    const label = await s.store.db.selectFrom('labels').selectAll().where('image_id', '=', img.id).executeTakeFirstOrThrow();
    assert.equal(label.value, `source:${c.source}`);
    assert.equal(label.target, 'organs');
  }
  // The same upload again is refused (names taken), nothing doubled.
  const again = await cli(s.users.reviewer.token, 'upload', join(dir, 'abdomen'), '--server', url, '--dataset-id', answer.datasetId, '--quiet');
  assert.equal(again.code, 5, again.err);
  assert.match(again.err, /already has image\(s\) named/);
  // An atlas job over the uploaded set ranks per source.
  const job = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'atlas', input: { datasetId: answer.datasetId, models: await registerModelDirs(s, ['models/demo/demo-unet3d']), fraction: 0.5 } } });
  assert.equal(job.statusCode, 202, job.body);
  const done = await waitJob(s, job.json().job.id);
  assert.equal(done.status, 'done', JSON.stringify(done.error));
  const perSource = done.result.perSource as Record<string, { cases: number }>;
  assert.deepEqual(Object.keys(perSource).sort(), Object.keys(expectSources).sort());
  for (const [k, n] of Object.entries(expectSources)) assert.equal(perSource[k]!.cases, n, k);
});

test('archive route: climbing entries, an archive over the limit and a broken case are refused, and nothing is kept', async () => {
  const p = await s.as('admin', { method: 'POST', url: '/api/projects', payload: { name: 'bad-archives' } });
  const d = await s.as('admin', { method: 'POST', url: `/api/projects/${p.json().id}/datasets`, payload: { name: 'd' } });
  const ds = d.json().id as string;
  const post = (body: Buffer, q = '') => s.as('reviewer', { method: 'POST', url: `/api/datasets/${ds}/archive${q}`, headers: { 'content-type': 'application/gzip' }, payload: body });
  const files = (root: string) => ['dataset.json', ...cases.flatMap((c) => [`imagesTr/${c.case}_0000.nii.gz`, `labelsTr/${c.case}.nii.gz`])].map((f) => ({ name: `${root}${f}`, data: readFileSync(join(dir, 'abdomen', f)) }));
  const climb = await post(await tarGz([...files(''), { name: '../../etc/evil', data: 'x' }]));
  assert.equal(climb.statusCode, 400, climb.body);
  assert.match(climb.json().message, /climbs out/);
  const noise = Buffer.alloc(9 * 2 ** 20);
  for (let i = 0, x = 1; i < noise.length; i++) noise[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  const big = await post(await tarGz([{ name: 'imagesTr/noise_0000.nii.gz', data: noise }]));
  assert.equal(big.statusCode, 413, big.body);
  const notTar = await post(gzipSync(Buffer.from('just text, not a tar archive at all')));
  assert.ok([400, 422].includes(notTar.statusCode), notTar.body);
  // Case 2's label map is on another grid: the whole upload is refused and case 1 is not kept.
  const broken: { name: string; data: Uint8Array | string }[] = files('Dataset042/');
  const bad = broken.findIndex((f) => f.name.endsWith(`labelsTr/${cases[1]!.case}.nii.gz`));
  broken[bad] = { name: broken[bad]!.name, data: gzipSync(encodeNifti(createVolume([5, 5, 5], 'uint8'))) };
  broken.push({ name: 'Dataset042/truthTr/ignored.nii.gz', data: 'x' });
  const r = await post(await tarGz(broken));
  assert.equal(r.statusCode, 422, r.body);
  assert.match(r.json().message, new RegExp(`labelsTr/${cases[1]!.case}`));
  assert.equal((await s.as('viewer', { url: `/api/datasets/${ds}` })).json().images, 0, 'all or nothing');
  // A good archive with one top folder and an extra folder: imported, the extra entry listed as ignored; ?source= fills in.
  const good: { name: string; data: Uint8Array | string }[] = files('Dataset042/').map((f) => (f.name.endsWith('dataset.json') ? { name: f.name, data: JSON.stringify({ ...JSON.parse(String(f.data)), medmask: undefined }) } : f));
  good.push({ name: 'Dataset042/truthTr/ignored.nii.gz', data: 'x' });
  const ok = await post(await tarGz(good), '?source=site-z');
  assert.equal(ok.statusCode, 201, ok.body);
  assert.deepEqual(ok.json().sources, { 'site-z': 4 });
  assert.deepEqual(ok.json().ignored, ['Dataset042/truthTr/ignored.nii.gz']);
});

test('single uploads: a "source" field on the image, inherited by its label map', async () => {
  const p = await s.as('admin', { method: 'POST', url: '/api/projects', payload: { name: 'single' } });
  const d = await s.as('admin', { method: 'POST', url: `/api/projects/${p.json().id}/datasets`, payload: { name: 'd' } });
  const vol = gzipSync(encodeNifti(createVolume([6, 6, 4], 'int16')));
  const bad = multipartBody([{ name: 'ct.nii.gz', data: vol }], { source: '../x' });
  const br = await s.as('reviewer', { method: 'POST', url: `/api/datasets/${d.json().id}/images`, headers: bad.headers, payload: bad.payload });
  assert.equal(br.statusCode, 400);
  assert.match(br.json().message, /source/);
  const mp = multipartBody([{ name: 'ct.nii.gz', data: vol }], { source: 'hospital-b', labelled: 'liver,spleen' });
  const up = await s.as('reviewer', { method: 'POST', url: `/api/datasets/${d.json().id}/images`, headers: mp.headers, payload: mp.payload });
  assert.equal(up.statusCode, 201, up.body);
  const img = up.json().images[0] as { id: string; meta: { dataSource: string; labelled: string[] } };
  assert.equal(img.meta.dataSource, 'hospital-b');
  assert.deepEqual(img.meta.labelled, ['liver', 'spleen']);
  const lab = multipartBody([{ name: 'lab.nii.gz', data: gzipSync(encodeNifti(createVolume([6, 6, 4], 'uint8'), { labelMap: true })) }], { target: 'organs' });
  const lr = await s.as('reviewer', { method: 'POST', url: `/api/images/${img.id}/masks`, headers: lab.headers, payload: lab.payload });
  assert.equal(lr.statusCode, 201, lr.body);
  assert.equal(lr.json().source, 'hospital-b');
  const row = await s.store.db.selectFrom('labels').select('value').where('id', '=', lr.json().id).executeTakeFirstOrThrow();
  assert.equal(row.value, 'source:hospital-b');
});

