// Declared size before decode, and readers that never guess: decompression bombs, headers that
// declare more than the cap, impossible geometry and damaged NRRD/MetaImage fields are refused with
// a coded error that names the field; the same through the upload API, whose decode runs in worker
// threads with a time budget. Inputs are built from the format specs (test/helpers/hostile.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { readVolume } from '../../src/io/index.js';
import type { MedmaskError } from '../../src/core/errors.js';
import { hugePng, mha, nifti2, niftiBomb, niftiHeader, nrrd, smallNifti } from '../helpers/hostile.js';
import { multipartBody, startTestServer } from '../helpers/server.js';
import { makeDataset } from '../helpers/api-suite.js';
import { cli } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'medmask-hostile-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, bytes: Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
}

async function refused(p: string, code: string, message: RegExp, opts = {}): Promise<MedmaskError> {
  let err: MedmaskError | undefined;
  await assert.rejects(readVolume(p, opts), (e: MedmaskError) => {
    err = e;
    return true;
  });
  assert.equal(err!.code, code, `${p}: ${err!.message}`);
  assert.match(err!.message, message);
  return err!;
}

test('a NIfTI gzip bomb (4×4×4 header + 1.5 GiB of zeros) is refused after a few MiB of inflation', async () => {
  const p = file('bomb.nii.gz', niftiBomb(1536));
  const before = process.memoryUsage().rss;
  const e = await refused(p, 'INPUT_TOO_LARGE', /inflate to more than \d+ bytes, more than the 480 bytes its header declares/);
  const grown = (process.memoryUsage().rss - before) / 2 ** 20;
  assert.ok(grown < 100, `RSS grew ${grown.toFixed(0)} MiB`);
  assert.equal(e.status, 413);
});

test('a header declaring more voxels than the cap is refused before anything is inflated, naming the size and the cap', async () => {
  const huge = gzipNifti(niftiHeader({ dims: [32767, 32767, 32767] }));
  const e = await refused(file('huge.nii.gz', huge), 'INPUT_TOO_LARGE', /declares 32767×32767×32767 .* over the cap of 2147483648 voxels/);
  assert.equal((e.details as { maxVoxels: number }).maxVoxels, 2 ** 31);
  await refused(file('small-cap.nii', smallNifti()), 'INPUT_TOO_LARGE', /4×4×4 .*over the cap of 10 voxels/, { maxVoxels: 10 });
  // The environment variable sets the cap for the CLI and library calls.
  process.env.MEDMASK_MAX_VOXELS = '63';
  try {
    await refused(file('env-cap.nii', smallNifti()), 'INPUT_TOO_LARGE', /over the cap of 63 voxels/);
  } finally {
    delete process.env.MEDMASK_MAX_VOXELS;
  }
  const v = await readVolume(file('ok.nii', smallNifti()), { maxVoxels: 64 });
  assert.deepEqual(Array.from(v.data.slice(0, 4)), [0, 1, 2, 3]);
});

function gzipNifti(h: Buffer): Buffer {
  return gzipSync(h);
}

test('a 16000×16000 PNG is refused from its header when over the cap (sharp never decodes it)', async () => {
  await refused(file('huge.png', hugePng(16000, 16000)), 'INPUT_TOO_LARGE', /16000×16000×1 png 8-bit .*over the cap of 100000000/, { maxVoxels: 1e8 });
});

test('NIfTI: scl_slope overflow and an infinite scl_inter with a valid slope are refused; an infinite srow is CORRUPT_FILE', async () => {
  await refused(file('slope.nii', smallNifti({ dims: [4, 4, 4], slope: 1e38 })), 'CORRUPT_FILE', /scl_slope 9\.99\d*e\+37 .*past the float32 range/);
  await refused(file('inter.nii', smallNifti({ dims: [4, 4, 4], slope: 2, inter: Infinity })), 'CORRUPT_FILE', /scl_inter Infinity is not finite/);
  await refused(file('srow.nii', smallNifti({ dims: [4, 4, 4], srow: [Infinity, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0] })), 'CORRUPT_FILE', /srow|affine/);
});

test('NIfTI-2 (float64 scaling fields): intercept 1e300 and slope 1e300 are refused, not Inf; an ordinary slope / intercept scales exactly', async () => {
  // A NIfTI-1 float32 field turns 1e300 into Infinity (the test above); NIfTI-2 holds it as written.
  await refused(file('inter-1e300.nii', nifti2({ slope: 1, inter: 1e300 })), 'CORRUPT_FILE', /scl_slope 1 and scl_inter 1e\+300 scale the stored value 0 past the float32 range/);
  await refused(file('slope-1e300.nii', nifti2({ slope: 1e300, inter: 0 })), 'CORRUPT_FILE', /scl_slope 1e\+300 .*stored value 1 past the float32 range/);
  const v = await readVolume(file('scaled2.nii', nifti2({ slope: 2.5, inter: -3 })));
  assert.deepEqual(Array.from(v.data.slice(0, 4)), [-3, -0.5, 2, 4.5], '2.5 × stored − 3');
  assert.ok(Array.from(v.data).every(Number.isFinite));
});

test('NRRD: a header without a known extension reads by its own reader; damaged fields are named', async () => {
  const good = await readVolume(file('noext.bin', nrrd()));
  assert.deepEqual(good.shape, [2, 3, 4]);
  assert.deepEqual(good.spacing, [1, 2, 3]);
  assert.deepEqual(good.origin, [10, 20, 30]);
  assert.deepEqual(Array.from(good.data.slice(0, 3)), [-50, -43, -36]);
  await refused(file('skip.nrrd', nrrd({ 'byte skip': '-2' })), 'CORRUPT_FILE', /field "byte skip" "-2"/);
  await refused(file('zero-dir.nrrd', nrrd({ 'space directions': '(0,0,0) (0,2,0) (0,0,3)' })), 'CORRUPT_FILE', /field "space directions" .* zero vector/);
  await refused(file('par-dir.nrrd', nrrd({ 'space directions': '(1,0,0) (2,0,0) (0,0,3)' })), 'CORRUPT_FILE', /direction .*parallel/);
  await refused(file('nan-origin.nrrd', nrrd({ 'space origin': '(nan,0,0)' })), 'CORRUPT_FILE', /field "space origin"/);
  await refused(file('sizes.nrrd', nrrd({ sizes: '2 3' })), 'CORRUPT_FILE', /field "sizes" "2 3" must hold 3 sizes/);
  await refused(file('short.nrrd', nrrd({}, Buffer.alloc(10))), 'CORRUPT_FILE', /raw data are short: .* only 10 bytes follow/);
  await refused(file('big.nrrd', nrrd({ sizes: '40000 40000 40000' })), 'INPUT_TOO_LARGE', /40000×40000×40000 short/);
  await refused(file('escape.nhdr', nrrd({ 'data file': '../../etc/passwd' }, Buffer.alloc(0))), 'CORRUPT_FILE', /field "data file" .* outside/);
});

test('MetaImage: NaN / zero / negative spacing, NaN offset, singular TransformMatrix, CompressedData over raw bytes, truncation', async () => {
  const good = await readVolume(file('good.mha', mha()));
  assert.deepEqual(good.spacing, [1, 2, 3]);
  const zgood = await readVolume(file('zgood.mha', mha({ CompressedData: 'True' })));
  assert.deepEqual(Array.from(zgood.data.slice(0, 3)), [-50, -43, -36]);
  for (const s of ['1 nan 3', '1 0 3', '1 -1 3']) await refused(file('sp.mha', mha({ ElementSpacing: s })), 'CORRUPT_FILE', /ElementSpacing/);
  await refused(file('off.mha', mha({ Offset: 'NaN 0 0' })), 'CORRUPT_FILE', /Offset "NaN 0 0"/);
  await refused(file('tm0.mha', mha({ TransformMatrix: '0 0 0 0 0 0 0 0 0' })), 'CORRUPT_FILE', /TransformMatrix .* singular/);
  await refused(file('tmnan.mha', mha({ TransformMatrix: '1 0 0 0 nan 0 0 0 1' })), 'CORRUPT_FILE', /TransformMatrix/);
  const raw = mha().subarray(0);
  const cd = Buffer.from(raw.toString('latin1').replace('CompressedData = False', 'CompressedData = True'), 'latin1');
  await refused(file('cd.mha', cd), 'CORRUPT_FILE', /CompressedData "True" is True but the data after the header are not zlib-compressed/);
  await refused(file('trunc.mha', mha({}, Buffer.alloc(7))), 'CORRUPT_FILE', /raw data are short/);
});

test('upload API: a NIfTI bomb and an over-cap PNG answer 413 INPUT_TOO_LARGE; a decode past its budget is stopped (413)', async () => {
  const s = await startTestServer({ maxUploadBytes: 64 * 2 ** 20, settings: { maxVoxels: 1e8, decodeWorkers: 2 } });
  try {
    const ds = await makeDataset(s, 'hostile');
    const up = (name: string, data: Buffer) => s.as('reviewer', { method: 'POST', url: `/api/datasets/${ds}/images`, ...multipartBody([{ name, data }]) });
    const bomb = await up('bomb.nii.gz', niftiBomb(1536));
    assert.equal(bomb.statusCode, 413, bomb.body);
    assert.equal(bomb.json().error, 'INPUT_TOO_LARGE');
    assert.match(bomb.json().message, /^bomb\.nii\.gz: /, 'the client name, not the temporary path');
    const png = await up('huge.png', hugePng(16000, 16000));
    assert.equal(png.statusCode, 413, png.body);
    assert.match(png.json().message, /over the cap of 100000000 voxels/);
    const health = await s.app.inject({ url: '/health' });
    assert.equal(health.statusCode, 200);
    const ok = await up('small.nii', smallNifti());
    assert.equal(ok.statusCode, 201, ok.body);
  } finally {
    await s.close();
  }
  const t = await startTestServer({ settings: { decodeTimeoutMs: 1, decodeWorkers: 1 } });
  try {
    const ds = await makeDataset(t, 'slow');
    const r = await t.as('reviewer', { method: 'POST', url: `/api/datasets/${ds}/images`, ...multipartBody([{ name: 'small.nii', data: smallNifti() }]) });
    assert.equal(r.statusCode, 413, r.body);
    assert.match(r.json().message, /budget of 0\.0 s/);
  } finally {
    await t.close();
  }
});

test('manifests: a UTF-8 BOM is accepted; mc.samples 1e9 and a 5 MB name are refused as MODEL_INVALID', async () => {
  const { readManifest } = await import('../../src/runtime/manifest.js');
  const base = JSON.parse(readFileSync(new URL('../../models/demo/demo-resnet/model.json', import.meta.url), 'utf8')) as Record<string, unknown>;
  const m = await readManifest(file('bom.json', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(base))])));
  assert.equal(m.name, 'demo-resnet');
  await assert.rejects(readManifest(file('mc.json', Buffer.from(JSON.stringify({ ...base, mc: { dropout: 0.2, samples: 1e9 } })))), (e: MedmaskError) => e.code === 'MODEL_INVALID' && /samples/.test(e.message) && /10000/.test(e.message));
  await assert.rejects(readManifest(file('name.json', Buffer.from(JSON.stringify({ ...base, name: 'x'.repeat(5e6) })))), (e: MedmaskError) => e.code === 'MODEL_INVALID' && /at most 200/.test(e.message) && e.message.length < 2000);
});

test('label CSVs: Latin-1 and UTF-16 are named as encoding errors; "../" and absolute image paths are refused', async () => {
  const { readLabelsCsv } = await import('../../src/io/dataset.js');
  const d = join(dir, 'csv');
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, 'café.png'), hugePng(2, 2));
  writeFileSync(join(d, 'ok.png'), hugePng(2, 2));
  const csv = (name: string, bytes: Buffer) => {
    writeFileSync(join(d, name), bytes);
    return readLabelsCsv(join(d, name));
  };
  await assert.rejects(csv('latin1.csv', Buffer.from('image,label\ncafé.png,healthy\n', 'latin1')), (e: MedmaskError) => e.code === 'DATASET_INVALID' && /line 2: bytes that are not UTF-8 .*Latin-1/.test(e.message));
  await assert.rejects(csv('utf16.csv', Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('image,label\nok.png,healthy\n', 'utf16le')])), (e: MedmaskError) => e.code === 'DATASET_INVALID' && /UTF-16/.test(e.message));
  for (const p of ['../../../../etc/passwd', '/etc/passwd']) {
    await assert.rejects(csv('escape.csv', Buffer.from(`image,label\n${p},healthy\n`)), (e: MedmaskError) => e.code === 'DATASET_INVALID' && /points outside the images folder/.test(e.message), p);
  }
  const rows = await csv('utf8.csv', Buffer.from('\ufeffimage,label\ncafé.png,healthy\n', 'utf8'));
  assert.equal(rows[0]!.id, 'café');
});

test('CLI: info and convert refuse an over-cap header with INPUT_TOO_LARGE (exit 3), naming the declared size and the cap', () => {
  const p = file('cli-huge.nii.gz', gzipNifti(niftiHeader({ dims: [4096, 4096, 4096] })));
  for (const args of [['info', p], ['convert', p, join(dir, 'out.nii.gz')]]) {
    const r = cli(...args);
    assert.equal(r.code, 3, r.err);
    assert.match(r.err, /\[INPUT_TOO_LARGE\].*4096×4096×4096 .*over the cap of 2147483648 voxels/);
    assert.doesNotMatch(r.err, /^\s+at /m, 'no stack trace');
  }
});
