// PACS in and out through the server, against a real Orthanc (Debian orthanc + orthanc-dicomweb):
// register → search → import (same volume as `medmask convert`, no PHI stored), edit → accept →
// push a DICOM SEG that Orthanc files under the original study and series; faults: archive down
// during an import, a STOW refusal, a series with a missing slice; a data set's SEGs drawn elsewhere
// read back as partial labels (from the archive, from files, with the CLI).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { readVolume } from '../../src/io/index.js';
import { InProcessQueue } from '../../src/queue/index.js';
import { getVolume } from '../../src/store/volumes.js';
import { ROOT, cli } from '../helpers/cli.js';
import { fixtureFiles, startOrthanc, type OrthancService } from '../helpers/orthanc.js';
import { segFrames, seqOf } from '../helpers/seg-frames.js';
import { multipartBody, startTestServer, waitFor, waitJob, type TestServer } from '../helpers/server.js';

const FIX = new URL('../fixtures/dicom/', import.meta.url).pathname;
const SEGFIX = new URL('../fixtures/dicom-seg-bulk/', import.meta.url).pathname;
const expected = JSON.parse(readFileSync(join(FIX, 'expected.json'), 'utf8')) as { secrets: Record<string, string>; cases: Record<string, { original_uids: string[]; series_uid: string; shape: number[] }> };
const oblique = expected.cases.series_oblique!;

let orthanc: OrthancService;
let s: TestServer;
let tmp: string;
let sourceId: string;
let projectId: string;

// Shared fixtures: the archive and its registration; each test imports what it needs (the oblique
// series once, through `obliqueImage`), so that tests run alone (--test-name-pattern) or in any order.
before(async () => {
  orthanc = await startOrthanc({ auth: { username: 'medmask', password: 'pacs-secret-2' } });
  await orthanc.seed(fixtureFiles(join(FIX, 'series_oblique')));
  await orthanc.seed(fixtureFiles(join(FIX, 'gap_series')));
  // Retries 0.3, 0.6, 1.2, 2.4 s apart: long enough to outlast the outage below.
  s = await startTestServer({ queue: new InProcessQueue({ attempts: 6, backoffMs: 300 }) });
  tmp = mkdtempSync(join(tmpdir(), 'medmask-pacs-'));
  projectId = (await s.as('admin', { method: 'POST', url: '/api/projects', payload: { name: 'pacs' } })).json().id as string;
  const r = await s.as('admin', { method: 'POST', url: `/api/projects/${projectId}/dicomweb`, payload: { name: 'orthanc', url: orthanc.dicomweb, auth: { type: 'basic', ...orthanc.auth } } });
  assert.equal(r.statusCode, 201, r.body);
  sourceId = r.json().id as string;
});
after(async () => {
  await s?.close();
  await orthanc?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

/** The CLI from source in a child process, without blocking this process (the server under test answers it). */
function cliAsync(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/run.ts'), ...args], { cwd: ROOT, env: { ...process.env, ...env } });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  child.stderr.on('data', (d: Buffer) => (err += d));
  return new Promise((res) => child.on('close', (code) => res({ code: code ?? -1, out, err })));
}

async function importSeries(study: string, series: string, dataset = 'from-pacs', source = sourceId): Promise<{ id: string; jobId: string }> {
  const r = await s.as('reviewer', { method: 'POST', url: `/api/dicomweb/${source}/imports`, payload: { dataset, series: [{ studyInstanceUid: study, seriesInstanceUid: series }] } });
  assert.equal(r.statusCode, 202, r.body);
  return r.json().imports[0] as { id: string; jobId: string };
}

let oblique0: Promise<{ id: string; jobId: string; imageId: string }> | undefined;
/** The oblique CT series imported into "from-pacs" (once per file, by whichever test asks first). */
function obliqueImage(): Promise<{ id: string; jobId: string; imageId: string }> {
  oblique0 ??= (async () => {
    const imp = await importSeries(oblique.original_uids[0]!, oblique.series_uid);
    const job = await waitJob(s, imp.jobId);
    assert.equal(job.status, 'done', JSON.stringify(job));
    return { ...imp, imageId: String(job.result.imageId) };
  })();
  return oblique0;
}

/** A case on the oblique image with a mask saved as version 1. */
async function maskWith(target: string, data: Uint8Array): Promise<string> {
  const { imageId } = await obliqueImage();
  const mask = (await s.as('reviewer', { method: 'POST', url: `/api/images/${imageId}/cases`, payload: { target } })).json().maskId as string;
  const saved = await s.as('annotator', { method: 'PUT', url: `/api/masks/${mask}/data?baseVersion=0`, headers: { 'content-type': 'application/octet-stream' }, payload: Buffer.from(data) });
  assert.equal(saved.statusCode, 201, saved.body);
  return mask;
}

test('admin registers the archive (checked with a search; credentials never returned); phi roles search it, others are refused', async () => {
  const bad = await s.as('admin', { method: 'POST', url: `/api/projects/${projectId}/dicomweb`, payload: { name: 'orthanc', url: orthanc.dicomweb, auth: { type: 'basic', username: 'medmask', password: 'wrong' } } });
  assert.equal(bad.statusCode, 424, bad.body);
  assert.match(bad.json().message, /answered 401/);
  const r = await s.as('admin', { method: 'POST', url: `/api/projects/${projectId}/dicomweb`, payload: { name: 'orthanc-again', url: orthanc.dicomweb, auth: { type: 'basic', ...orthanc.auth } } });
  assert.equal(r.statusCode, 201, r.body);
  assert.deepEqual(r.json().auth, { type: 'basic', username: 'medmask' });
  const listed = await s.as('viewer', { url: `/api/projects/${projectId}/dicomweb` });
  assert.ok(!listed.body.includes(orthanc.auth!.password));
  // Encrypted at rest: the row holds no password, and the archive is reached with it (searches below).
  const rows = JSON.stringify(await s.store.db.selectFrom('dicomweb_sources').selectAll().execute());
  assert.ok(!rows.includes(orthanc.auth!.password) && rows.includes('enc:v1:'), rows);
  assert.equal((await s.as('reviewer', { method: 'POST', url: `/api/projects/${projectId}/dicomweb`, payload: { name: 'x', url: orthanc.dicomweb } })).statusCode, 403);

  for (const role of ['annotator', 'viewer'] as const) assert.equal((await s.as(role, { url: `/api/dicomweb/${sourceId}/series?patientId=${expected.secrets.PatientID}` })).statusCode, 403);
  const found = await s.as('reviewer', { url: `/api/dicomweb/${sourceId}/series?patientId=${expected.secrets.PatientID}&modality=CT` });
  assert.equal(found.statusCode, 200, found.body);
  const series = found.json().series as { seriesInstanceUid: string; studyInstanceUid: string; instances: number; patientId: string }[];
  const one = series.find((x) => x.seriesInstanceUid === oblique.series_uid);
  assert.equal(one?.instances, 6, found.body);
  assert.equal((await s.as('reviewer', { url: `/api/dicomweb/${sourceId}/series?patientId=nobody&modality=CT` })).json().series.length, 0);
  const studies = await s.as('reviewer', { url: `/api/dicomweb/${sourceId}/studies?accessionNumber=${expected.secrets.AccessionNumber}&studyDate=19000101-` });
  assert.ok(studies.json().studies.some((x: { studyInstanceUid: string }) => x.studyInstanceUid === oblique.original_uids[0]), studies.body);
  assert.equal((await s.as('reviewer', { url: `/api/dicomweb/${sourceId}/studies?accessionNumber=${expected.secrets.AccessionNumber}&studyDate=-19000101` })).json().studies.length, 0);
  // The audit log records the search by field names, not the patient id.
  const log = await s.store.db.selectFrom('audit_log').selectAll().where('action', 'like', 'GET /api/dicomweb/%').execute();
  assert.ok(log.length >= 2 && log.every((l) => !JSON.stringify(l).includes(expected.secrets.PatientID)) && JSON.parse(log[0]!.details!).fields.includes('patientId'));
});

test('import: one job per series; the volume equals `medmask convert` of the same files; no PHI or original UID in anything medmask stores or shows without phi', async () => {
  const imp = await obliqueImage();
  const view = (await s.as('reviewer', { url: `/api/dicomweb/imports/${imp.id}` })).json();
  assert.equal(view.status, 'done');
  assert.equal(view.original.seriesInstanceUid, oblique.series_uid);
  const viewerView = await s.as('viewer', { url: `/api/dicomweb/imports/${imp.id}` });
  assert.equal(viewerView.json().original, undefined);
  const imageId = imp.imageId;
  assert.equal(view.imageId, imageId);

  const out = join(tmp, 'convert.nii.gz');
  const c = cli('convert', join(FIX, 'series_oblique'), out);
  assert.equal(c.code, 0, c.err);
  const ref = await readVolume(out);
  const img = await s.store.db.selectFrom('images').selectAll().where('id', '=', imageId).executeTakeFirstOrThrow();
  const got = await getVolume(s.blobs, img.blob);
  assert.deepEqual(got.shape, ref.shape);
  assert.deepEqual([...got.data], [...ref.data]);
  for (const k of ['spacing', 'origin'] as const) got[k].forEach((v, i) => assert.ok(Math.abs(v - ref[k][i]!) < 1e-4, `${k}[${i}] ${v} vs ${ref[k][i]}`));
  got.direction.forEach((v, i) => assert.ok(Math.abs(v - ref.direction[i]!) < 1e-5, `direction[${i}]`));

  // Everything stored outside the mapping tables: every table row and every blob (gunzipped).
  const secrets = [...Object.values(expected.secrets), ...oblique.original_uids];
  const leaks: string[] = [];
  const tables = ['users', 'projects', 'datasets', 'images', 'labels', 'jobs', 'predictions', 'masks', 'mask_versions', 'reviews', 'audit_log', 'dicomweb_sources', 'dicomweb_pushes'] as const;
  for (const t of tables) {
    const text = JSON.stringify(await s.store.db.selectFrom(t).selectAll().execute());
    for (const x of secrets) if (text.includes(x)) leaks.push(`${t}: ${x}`);
  }
  const walk = (d: string): string[] => readdirSync(d).flatMap((f) => (statSync(join(d, f)).isDirectory() ? walk(join(d, f)) : [join(d, f)]));
  for (const f of walk(join(s.dir, 'blobs'))) {
    let b = readFileSync(f);
    if (b[0] === 0x1f && b[1] === 0x8b) b = gunzipSync(b);
    const text = b.toString('latin1');
    for (const x of secrets) if (text.includes(x)) leaks.push(`blob ${f}: ${x}`);
  }
  // Nothing left in the scratch folders either.
  const left = walk(s.dir).filter((f) => f.endsWith('.dcm'));
  assert.deepEqual(leaks, []);
  assert.deepEqual(left, []);
});

test('edit, accept, push: Orthanc holds a SEG under the original patient, study and series whose frames are the accepted mask', async () => {
  const { imageId } = await obliqueImage();
  const img = await s.store.db.selectFrom('images').selectAll().where('id', '=', imageId).executeTakeFirstOrThrow();
  const [nx, ny, nz] = JSON.parse(img.shape) as number[];
  const data = new Uint8Array(nx! * ny! * nz!);
  // A box in slices 1..3, known voxel by voxel.
  for (let k = 1; k <= 3; k++) for (let j = 4; j < 15; j++) for (let i = 6 + k; i < 20; i++) data[i + nx! * (j + ny! * k)] = 1;
  const mask = await maskWith('liver', data);
  assert.equal((await s.as('reviewer', { method: 'POST', url: `/api/masks/${mask}/push`, payload: {} })).statusCode, 400, 'not accepted yet');
  assert.equal((await s.as('reviewer', { method: 'POST', url: `/api/masks/${mask}/review`, payload: { decision: 'accept', version: 1 } })).statusCode, 201);
  const push = await s.as('reviewer', { method: 'POST', url: `/api/masks/${mask}/push`, payload: {} });
  assert.equal(push.statusCode, 202, push.body);
  const job = await waitJob(s, push.json().jobId);
  assert.equal(job.status, 'done', JSON.stringify(job));
  const pushes = (await s.as('viewer', { url: `/api/masks/${mask}/pushes` })).json().pushes;
  assert.equal(pushes[0].status, 'sent');

  // This push's SEG (other tests push others).
  const segIds = await orthanc.post<string[]>('/tools/find', { Level: 'Instance', Query: { Modality: 'SEG', SOPInstanceUID: pushes[0].segSopInstanceUid } });
  assert.equal(segIds.length, 1);
  const tags = await orthanc.get<Record<string, unknown>>(`/instances/${segIds[0]}/simplified-tags`);
  assert.equal(tags.Modality, 'SEG');
  assert.equal(tags.SOPClassUID, '1.2.840.10008.5.1.4.1.1.66.4');
  assert.equal(tags.PatientID, expected.secrets.PatientID);
  assert.equal(tags.StudyInstanceUID, oblique.original_uids[0]);
  const refSeries = (tags.ReferencedSeriesSequence as { SeriesInstanceUID: string; ReferencedInstanceSequence: { ReferencedSOPInstanceUID: string }[] }[])[0]!;
  assert.equal(refSeries.SeriesInstanceUID, oblique.series_uid);
  for (const ri of refSeries.ReferencedInstanceSequence) assert.ok(oblique.original_uids.includes(ri.ReferencedSOPInstanceUID), ri.ReferencedSOPInstanceUID);

  // Frames, decoded with dicom-parser (not dcmjs, which wrote them), placed by ImagePositionPatient.
  const file = await orthanc.bytes(`/instances/${segIds[0]}/file`);
  const segPath = join(tmp, 'pushed.seg.dcm');
  writeFileSync(segPath, file);
  const { d, rows, cols, frames } = segFrames(file);
  assert.deepEqual([cols, rows], [nx, ny]);
  const vol = await getVolume(s.blobs, img.blob);
  const got = new Uint8Array(data.length);
  const perFrame = seqOf(d, 'x52009230');
  frames.forEach((f, n) => {
    const ipp = seqOf(perFrame[n]!, 'x00209113')[0]!.string('x00200032')!.split('\\').map(Number);
    // slice index from the position along the volume's third axis
    const dz = [0, 1, 2].map((a) => ipp[a]! - vol.origin[a]!);
    const col2 = [vol.direction[2]!, vol.direction[5]!, vol.direction[8]!];
    const k = Math.round((dz[0]! * col2[0]! + dz[1]! * col2[1]! + dz[2]! * col2[2]!) / vol.spacing[2]);
    got.set(f, k * nx! * ny!);
  });
  assert.deepEqual([...got], [...data]);
  const dciodvfy = spawnSync('dciodvfy', ['-new', segPath], { encoding: 'utf8' });
  if (!dciodvfy.error) assert.ok(!/^Error/m.test(dciodvfy.stderr), dciodvfy.stderr);

  // And back in: the archive's SEG read as partial organ labels of the image (Liver → label 5).
  const back = await s.as('reviewer', { method: 'POST', url: `/api/images/${imageId}/seg`, ...multipartBody([{ name: 'from-pacs.seg.dcm', data: file }], { target: 'organs' }) });
  assert.equal(back.statusCode, 201, back.body);
  const label = await s.store.db.selectFrom('labels').selectAll().where('id', '=', back.json().id).executeTakeFirstOrThrow();
  const lv = await getVolume(s.blobs, label.blob!);
  assert.deepEqual([...lv.data], [...data].map((v) => v * 5));
});

test('a STOW refusal is recorded with the archive\'s reason, and a retry sends it; automatic push on accept', async (t) => {
  const { imageId } = await obliqueImage();
  const img = await s.store.db.selectFrom('images').selectAll().where('id', '=', imageId).executeTakeFirstOrThrow();
  const n = (JSON.parse(img.shape) as number[]).reduce((a, b) => a * b);
  const data = new Uint8Array(n);
  data.fill(1, 2000, 2600);
  const mask = await maskWith('spleen', data);
  writeFileSync(orthanc.refuseSegFlag, '');
  t.after(async () => {
    rmSync(orthanc.refuseSegFlag, { force: true });
    await s.as('admin', { method: 'PATCH', url: `/api/dicomweb/${sourceId}`, payload: { autoPush: false } });
  });
  assert.equal((await s.as('admin', { method: 'PATCH', url: `/api/dicomweb/${sourceId}`, payload: { autoPush: true } })).json().autoPush, true);
  assert.equal((await s.as('reviewer', { method: 'POST', url: `/api/masks/${mask}/review`, payload: { decision: 'accept', version: 1 } })).statusCode, 201);
  const refused = await waitFor(async () => {
    const p = (await s.as('viewer', { url: `/api/masks/${mask}/pushes` })).json().pushes[0];
    return p && p.status === 'refused' ? p : undefined;
  }, 20_000, 'refused push').catch(async (e) => {
    throw new Error(`${(e as Error).message}: ${(await s.as('viewer', { url: `/api/masks/${mask}/pushes` })).body}`);
  });
  assert.match(refused.reason, /REMOTE_REFUSED/);
  assert.match(refused.reason, /0xC000|refus/i);
  rmSync(orthanc.refuseSegFlag);
  const retry = await s.as('reviewer', { method: 'POST', url: `/api/dicomweb/pushes/${refused.id}/retry` });
  assert.equal(retry.statusCode, 202, retry.body);
  await waitFor(async () => (await s.as('viewer', { url: `/api/masks/${mask}/pushes` })).json().pushes[0].status === 'sent', 20_000, 'sent after retry').catch(async (e) => {
    throw new Error(`${(e as Error).message}: ${(await s.as('viewer', { url: `/api/masks/${mask}/pushes` })).body} ${(await s.as('viewer', { url: `/api/jobs/${retry.json().jobId}` })).body}`);
  });
  const p = (await s.as('viewer', { url: `/api/masks/${mask}/pushes` })).json().pushes[0];
  assert.equal(p.attempts, 2);
});

test('faults: the archive down during an import (the job retries and finishes when it is back); a series with a missing slice names the instances around the gap', async (t) => {
  t.after(() => orthanc.start().catch(() => undefined)); // the archive is back for later tests even when this one fails
  await orthanc.pause();
  const imp = await importSeries(oblique.original_uids[0]!, oblique.series_uid, 'outage');
  await waitFor(async () => (await s.as('admin', { url: `/api/jobs/${imp.jobId}` })).json().attempts >= 2, 20_000, 'a failed try');
  const mid = (await s.as('admin', { url: `/api/jobs/${imp.jobId}` })).json();
  assert.notEqual(mid.status, 'done');
  // Between tries the import says "retrying" (during a try it says "running"): wait for that state, not for a time.
  let during = (await s.as('viewer', { url: `/api/dicomweb/imports/${imp.id}` })).json();
  await waitFor(async () => (during = (await s.as('viewer', { url: `/api/dicomweb/imports/${imp.id}` })).json()).status === 'retrying', 20_000, 'the import to say retrying');
  assert.equal(during.status, 'retrying');
  assert.match(during.error, /REMOTE_UNAVAILABLE.*connection refused/);
  await orthanc.start();
  const job = await waitJob(s, imp.jobId);
  assert.equal(job.status, 'done', JSON.stringify(job));

  const list = await orthanc.get<Record<string, { Value?: string[] }>[]>('/dicom-web/series');
  const gap = list.find((x) => x['0020000E']!.Value![0] !== oblique.series_uid && x['00080060']?.Value?.[0] === 'CT')!;
  const gi = await importSeries(gap['0020000D']!.Value![0]!, gap['0020000E']!.Value![0]!, 'gap');
  const failed = await waitJob(s, gi.jobId);
  assert.equal(failed.status, 'failed');
  assert.match(String(failed.error), /CORRUPT_FILE/);
  assert.match(String(failed.error), /instance\(s\) missing between InstanceNumber \d+ and InstanceNumber \d+/);
  assert.ok(!String(failed.error).includes(gap['0020000E']!.Value![0]!), 'the archive UID is not in the job error');
  assert.equal((await s.as('viewer', { url: `/api/dicomweb/imports/${gi.id}` })).json().status, 'failed');
  const again = await s.as('reviewer', { method: 'POST', url: `/api/dicomweb/imports/${gi.id}/retry` });
  assert.equal(again.statusCode, 202, again.body);
  assert.notEqual(again.json().jobId, gi.jobId, 'a retry is a job of its own');
});

test("a data set's existing SEGs come back as partial labels: from the archive (a job, per-case status), from SEG files, and with `dicomweb pull-seg`", async () => {
  // A SEG written by pydicom (tools/fixtures/make_dicom_seg_bulk_fixtures.py) on the oblique series,
  // in an archive of its own (the pushes of other tests stay out of its study).
  const segFix = JSON.parse(readFileSync(join(SEGFIX, 'expected.json'), 'utf8')) as { referenced_series: string; study: string; segments: Record<string, string>; frames: { segment: number; position: number[]; on: number[] }[] };
  const archive = await startOrthanc();
  try {
    await archive.seed([...fixtureFiles(join(FIX, 'series_oblique')), join(FIX, 'two_series', 'b1'), join(FIX, 'two_series', 'b2'), join(SEGFIX, 'oblique.seg.dcm')]);
    const src = (await s.as('admin', { method: 'POST', url: `/api/projects/${projectId}/dicomweb`, payload: { name: 'seg-archive', url: archive.dicomweb } })).json().id as string;
    const ct = expected.cases['two_series/ct']!;
    const imps = [await importSeries(segFix.study, segFix.referenced_series, 'seg-labels', src), await importSeries(segFix.study, ct.series_uid, 'seg-labels', src)];
    const imageIds: string[] = [];
    for (const i of imps) {
      const j = await waitJob(s, i.jobId);
      assert.equal(j.status, 'done', JSON.stringify(j));
      imageIds.push(String(j.result.imageId));
    }
    const img = await s.store.db.selectFrom('images').selectAll().where('id', '=', imageIds[0]!).executeTakeFirstOrThrow();
    const vol = await getVolume(s.blobs, img.blob);
    // The truth: each fixture frame's pixels on the slice its position falls on (AbdomenAtlas values).
    const truth = (values: Record<number, number>): number[] => {
      const [nx, ny] = vol.shape;
      const out = new Array<number>(vol.data.length).fill(0);
      const col = (c: number) => [vol.direction[c]!, vol.direction[3 + c]!, vol.direction[6 + c]!];
      for (const f of segFix.frames) {
        const d = [0, 1, 2].map((a) => f.position[a]! - vol.origin[a]!);
        const along = (c: number) => (d[0]! * col(c)[0]! + d[1]! * col(c)[1]! + d[2]! * col(c)[2]!) / vol.spacing[c]!;
        assert.ok(Math.abs(along(0)) < 1e-3 && Math.abs(along(1)) < 1e-3, 'frames lie on slices of the image');
        const k = Math.round(along(2));
        for (const p of f.on) if (values[f.segment]) out[k * nx * ny + p] = values[f.segment]!;
      }
      return out;
    };
    const ORG = { spleen: 1, kidney_left: 3, liver: 5 };

    // From the archive: LIVER (case), "Left Kidney" (synonym), Milz (rename); Tumor is named as unknown.
    const start = await s.as('reviewer', { method: 'POST', url: `/api/dicomweb/${src}/seg-imports`, payload: { dataset: 'seg-labels', rename: { Milz: 'spleen' } } });
    assert.equal(start.statusCode, 202, start.body);
    assert.equal((await s.as('annotator', { method: 'POST', url: `/api/dicomweb/${src}/seg-imports`, payload: { dataset: 'seg-labels' } })).statusCode, 403);
    assert.equal((await s.as('reviewer', { method: 'POST', url: `/api/dicomweb/${src}/seg-imports`, payload: { dataset: 'seg-labels', rename: { Milz: 'milt' } } })).statusCode, 400);
    const job = await waitJob(s, start.json().jobId);
    assert.equal(job.status, 'done', JSON.stringify(job));
    const r = job.result as { matched: number; noSeg: number; refused: number; unknownSegments: number; segs: number; cases: { imageId: string; status: string; labelId?: string; unknown: string[]; segments: { segmentLabel: string; organ?: string; voxels: number }[] }[] };
    assert.deepEqual([r.segs, r.matched, r.noSeg, r.refused, r.unknownSegments], [1, 1, 1, 0, 1]);
    const matched = r.cases.find((c) => c.imageId === imageIds[0])!;
    assert.equal(matched.status, 'matched');
    assert.deepEqual(matched.segments.map((x) => [x.segmentLabel, x.organ ?? null]), [['LIVER', 'liver'], ['Left Kidney', 'kidney_left'], ['Milz', 'spleen'], ['Tumor', null]]);
    assert.match(matched.unknown[0]!, /4 "Tumor"/);
    assert.equal(r.cases.find((c) => c.imageId === imageIds[1])!.status, 'no-seg');
    assert.ok(!JSON.stringify(job).includes(segFix.referenced_series) && !JSON.stringify(job).includes(segFix.study), 'no archive UID in the job');
    const label = await s.store.db.selectFrom('labels').selectAll().where('id', '=', matched.labelId!).executeTakeFirstOrThrow();
    assert.deepEqual([label.image_id, label.provenance, label.target, label.job_id], [imageIds[0], 'original', 'organs', start.json().jobId]);
    assert.deepEqual([...(await getVolume(s.blobs, label.blob!)).data], truth({ 1: ORG.liver, 2: ORG.kidney_left, 3: ORG.spleen }));

    // From files (no rename: Milz is unknown too); a CT slice among them is named as unreadable.
    const files = await s.as('reviewer', { method: 'POST', url: `/api/datasets/${img.dataset_id}/segs`, ...multipartBody([{ name: 'slicer.seg.dcm', data: readFileSync(join(SEGFIX, 'oblique.seg.dcm')) }, { name: 'ct.dcm', data: readFileSync(join(FIX, 'two_series', 'b1')) }]) });
    assert.equal(files.statusCode, 200, files.body);
    const fr = files.json();
    assert.deepEqual([fr.matched, fr.noSeg, fr.unknownSegments, fr.unreadableSegs.length], [1, 1, 2, 1]);
    assert.match(fr.unreadableSegs[0].reason, /ct\.dcm.*not Segmentation Storage/);
    const fromFiles = fr.cases.find((c: { imageId: string }) => c.imageId === imageIds[0]);
    const l2 = await s.store.db.selectFrom('labels').selectAll().where('id', '=', fromFiles.labelId).executeTakeFirstOrThrow();
    assert.deepEqual([...(await getVolume(s.blobs, l2.blob!)).data], truth({ 1: ORG.liver, 2: ORG.kidney_left }));

    // `dicomweb seg-files`: a tar.gz of SEGs sent to the server by the CLI (the job's map again, so the label is stored once).
    const url = await s.app.listen({ host: '127.0.0.1', port: 0 });
    const tgz = join(tmp, 'segs.tar.gz');
    const pack = tar.pack();
    pack.entry({ name: 'slicer/oblique.seg.dcm' }, readFileSync(join(SEGFIX, 'oblique.seg.dcm')));
    pack.finalize();
    const chunks: Buffer[] = [];
    for await (const c of pack) chunks.push(c as Buffer);
    writeFileSync(tgz, gzipSync(Buffer.concat(chunks)));
    const mapFile = join(tmp, 'seg-map.json');
    writeFileSync(mapFile, JSON.stringify({ Milz: 'spleen' }));
    // (Both CLI runs at once: each child spends most of its time starting.)
    const out = join(tmp, 'seg-labels.nii.gz');
    const [sent, c] = await Promise.all([
      cliAsync(['dicomweb', 'seg-files', tgz, '--server', url, '--dataset', img.dataset_id, '--map', mapFile, '--json'], { MEDMASK_TOKEN: s.users.reviewer.token }),
      cliAsync(['dicomweb', 'pull-seg', '--url', archive.dicomweb, '--study', segFix.study, '--series', segFix.referenced_series, '--out', out, '--map', mapFile]),
    ]);
    assert.equal(sent.code, 0, sent.err);
    const sr = JSON.parse(sent.out) as { matched: number; cases: { imageId: string; labelId?: string }[] };
    assert.equal(sr.matched, 1);
    assert.equal(sr.cases.find((c) => c.imageId === imageIds[0])!.labelId, matched.labelId, 'the same label map is stored once');

    // The CLI, without the server: the same map as the job made.
    assert.equal(c.code, 0, c.err);
    assert.match(c.out, /segment 4 "Tumor" → unknown/);
    assert.deepEqual([...(await readVolume(out)).data], truth({ 1: ORG.liver, 2: ORG.kidney_left, 3: ORG.spleen }));
  } finally {
    await archive.stop();
  }
});
