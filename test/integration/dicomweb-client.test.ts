// The DICOMweb client against a real Orthanc (Debian orthanc + orthanc-dicomweb), seeded with
// pydicom's multi-slice CT fixture through Orthanc's own REST API.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMedmaskError } from '../../src/core/errors.js';
import { DicomwebClient } from '../../src/dicomweb/client.js';
import { importSeries } from '../../src/dicomweb/import-series.js';
import { readVolume } from '../../src/io/index.js';
import { cli } from '../helpers/cli.js';
import { fixtureFiles, startOrthanc, type OrthancService } from '../helpers/orthanc.js';
import { freePort } from '../helpers/services.js';

const FIX = new URL('../fixtures/dicom/', import.meta.url).pathname;
const expected = JSON.parse(readFileSync(join(FIX, 'expected.json'), 'utf8')) as { secrets: Record<string, string> };

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

let orthanc: OrthancService;
let tmp: string;
const seriesFiles = fixtureFiles(join(FIX, 'series_oblique'));

before(async () => {
  orthanc = await startOrthanc({ auth: { username: 'medmask', password: 'pacs-secret-1' } });
  await orthanc.seed(seriesFiles);
  tmp = mkdtempSync(join(tmpdir(), 'medmask-dw-'));
});
after(async () => {
  await orthanc?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

const client = () => new DicomwebClient({ url: orthanc.dicomweb, auth: { type: 'basic', ...orthanc.auth! }, timeoutMs: 10_000 });

test('QIDO-RS: series and studies found by patient id, date range, modality, accession number and description; misses find nothing', async () => {
  const c = client();
  const s = expected.secrets;
  const byPid = await c.searchSeries({ patientId: s.PatientID });
  assert.equal(byPid.length, 1);
  assert.equal(byPid[0]!.modality, 'CT');
  assert.equal(byPid[0]!.instances, seriesFiles.length);
  assert.equal(byPid[0]!.accessionNumber, s.AccessionNumber);
  assert.equal((await c.searchSeries({ accessionNumber: s.AccessionNumber, modality: 'CT' })).length, 1);
  assert.equal((await c.searchSeries({ accessionNumber: s.AccessionNumber, modality: 'MR' })).length, 0);
  assert.equal((await c.searchSeries({ patientId: 'nobody-here' })).length, 0);
  assert.equal((await c.searchSeries({ seriesDescription: 'Oblique*' })).length, 1);
  const studies = await c.searchStudies({ patientId: s.PatientID, studyDate: '19000101-' });
  assert.equal(studies.length, 1);
  assert.equal(studies[0]!.studyInstanceUid, byPid[0]!.studyInstanceUid);
  assert.equal((await c.searchStudies({ patientId: s.PatientID, studyDate: '-19000101' })).length, 0);
  const inst = await c.searchInstances(byPid[0]!.studyInstanceUid, byPid[0]!.seriesInstanceUid);
  assert.equal(inst.length, seriesFiles.length);
  c.close();
});

test('WADO-RS: the series comes back as the very files that were stored (multipart/related, byte for byte)', async () => {
  const c = client();
  const [s] = await c.searchSeries({ patientId: expected.secrets.PatientID });
  const dir = mkdtempSync(join(tmp, 'wado-'));
  let last = 0;
  const r = await c.retrieveSeries(s!.studyInstanceUid, s!.seriesInstanceUid, dir, { onInstance: (p) => (last = p.instances) });
  assert.equal(r.files.length, seriesFiles.length);
  assert.equal(last, seriesFiles.length);
  assert.deepEqual(r.files.map((f) => sha(readFileSync(f))).sort(), seriesFiles.map((f) => sha(readFileSync(f))).sort());
  assert.equal(r.bytes, seriesFiles.reduce((n, f) => n + statSync(f).size, 0));
  c.close();
});

test('errors name the endpoint and the status: wrong password (401), unknown series (404), archive down (refused)', async () => {
  const wrong = new DicomwebClient({ url: orthanc.dicomweb, auth: { type: 'basic', username: 'medmask', password: 'nope' } });
  await assert.rejects(wrong.searchSeries({}), (e) => isMedmaskError(e) && e.code === 'REMOTE_REFUSED' && e.message.includes(`GET ${orthanc.dicomweb}/series`) && /answered 401/.test(e.message) && !e.message.includes('nope'));
  const c = client();
  await assert.rejects(c.retrieveSeries('1.2.3', '1.2.3.4', tmp), (e) => isMedmaskError(e) && e.code === 'NOT_FOUND' && /answered 404/.test(e.message));
  const down = new DicomwebClient({ url: `http://127.0.0.1:${await freePort()}/dicom-web`, timeoutMs: 2000 });
  await assert.rejects(down.searchStudies({}), (e) => isMedmaskError(e) && e.code === 'REMOTE_UNAVAILABLE' && /connection refused/.test(e.message));
  assert.throws(() => new DicomwebClient({ url: 'http://user:pw@127.0.0.1/dicom-web' }), (e) => isMedmaskError(e) && e.code === 'USAGE' && !e.message.includes('pw@'));
  wrong.close();
  c.close();
});

test('CLI: medmask dicomweb search | pull (a volume equal to reading the files) | push a SEG; a bad password exits 3 naming the endpoint', async () => {
  process.env.MEDMASK_DICOMWEB_PASSWORD = orthanc.auth!.password;
  const conn = ['--url', orthanc.dicomweb, '--user', orthanc.auth!.username];
  const found = cli('dicomweb', 'search', ...conn, '--patient-id', expected.secrets.PatientID!, '--modality', 'CT', '--json');
  assert.equal(found.code, 0, found.err);
  const series = JSON.parse(found.out) as { studyInstanceUid: string; seriesInstanceUid: string }[];
  assert.equal(series.length, 1);
  const { studyInstanceUid: study, seriesInstanceUid: uid } = series[0]!;
  const nii = join(tmp, 'pulled.nii.gz');
  const pulled = cli('dicomweb', 'pull', ...conn, '--study', study, '--series', uid, '--out', nii);
  assert.equal(pulled.code, 0, pulled.err);
  assert.match(pulled.out, /de-identified/);
  // `medmask convert` reads a folder with the same reader (the server test runs convert itself).
  const [a, b] = [await readVolume(nii), await readVolume(join(FIX, 'series_oblique'))];
  assert.deepEqual(a.shape, b.shape);
  assert.deepEqual([...a.data], [...b.data]);
  a.origin.forEach((v, i) => assert.ok(Math.abs(v - b.origin[i]!) < 1e-4));

  const seg = join(FIX, '../dicom-seg/medmask.seg.dcm');
  const pushed = cli('dicomweb', 'push', ...conn, seg);
  assert.equal(pushed.code, 0, pushed.err);
  assert.match(pushed.out, /^stored 2\.25\./m);
  const segs = await orthanc.post<string[]>('/tools/find', { Level: 'Instance', Query: { Modality: 'SEG' } });
  assert.equal(segs.length, 1);

  process.env.MEDMASK_DICOMWEB_PASSWORD = 'wrong';
  const bad = cli('dicomweb', 'search', ...conn);
  assert.equal(bad.code, 3);
  assert.match(bad.err, /REMOTE_REFUSED/);
  assert.ok(bad.err.includes(`${orthanc.dicomweb}/series`) && /401/.test(bad.err), bad.err);
  delete process.env.MEDMASK_DICOMWEB_PASSWORD;
});

test('import resumes: instances already on disk from an earlier try are kept, only the missing ones are fetched (one by one)', async () => {
  const c = client();
  const [s] = await c.searchSeries({ patientId: expected.secrets.PatientID });
  const dir = mkdtempSync(join(tmp, 'resume-'));
  // An earlier try got 4 of the 6 instances, and a fifth cut off mid-transfer.
  seriesFiles.slice(0, 4).forEach((f, i) => copyFileSync(f, join(dir, `instance-00000${i + 1}.dcm`)));
  writeFileSync(join(dir, 'instance-000005.dcm'), readFileSync(seriesFiles[4]!).subarray(0, 100));
  const r = await importSeries(c, s!.studyInstanceUid, s!.seriesInstanceUid, { uidSalt: 'salt', dir });
  assert.equal(r.refetched, 2);
  assert.equal(r.instances, 6);
  const ref = await readVolume(join(FIX, 'series_oblique'));
  assert.deepEqual([...r.volume.data], [...ref.data]);
  assert.equal(r.uidMap.filter((u) => u.kind === 'instance').length, 6);
  assert.equal(r.phi.PatientID, expected.secrets.PatientID);
  c.close();
});
