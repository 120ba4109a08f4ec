import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import dcmjs from 'dcmjs';
import { voxelIndex, voxelToWorld, type Volume } from '../../src/core/volume.js';
import { isMedmaskError } from '../../src/core/errors.js';
import { createDefaultRegistry, listDicomSeries, loadDicom, readVolume, remapUid } from '../../src/io/index.js';

// References written by tools/fixtures/make_dicom_fixtures.py with pydicom (pixel_array * slope +
// intercept, stacked by position along the normal) and numpy (affine from IOP / IPP).
const FIX = new URL('../fixtures/dicom/', import.meta.url).pathname;
interface Case {
  shape: number[];
  affine_lps: number[][];
  hu?: number[];
  hu_sum: number;
  integral: boolean;
  series_uid?: string;
  original_uids?: string[];
  samples?: Record<string, number>;
  files?: number;
  skipped?: number;
  modality?: string;
  series_description?: string;
}
const expected = JSON.parse(readFileSync(join(FIX, 'expected.json'), 'utf8')) as {
  secrets: Record<string, string>;
  cases: Record<string, Case>;
  uid_remap: Array<{ salt: string; uid: string; expected: string }>;
};
const C = expected.cases;

function assertAffine(v: Volume, want: number[][], tol = 1e-5): void {
  const got = voxelToWorld(v);
  want.flat().forEach((w, i) => assert.ok(Math.abs(got[i]! - w) <= tol * Math.max(1, Math.abs(w)), `affine[${i}] ${got[i]} vs numpy ${w}`));
}

function assertValues(v: Volume, c: Case, tol = 1e-6): void {
  assert.deepEqual(v.shape, c.shape);
  if (c.hu) {
    assert.equal(v.data.length, c.hu.length);
    for (let i = 0; i < c.hu.length; i++) {
      if (Math.abs(v.data[i]! - c.hu[i]!) > tol * Math.max(1, Math.abs(c.hu[i]!))) assert.fail(`voxel ${i}: ${v.data[i]} vs pydicom ${c.hu[i]}`);
    }
  }
  for (const [key, want] of Object.entries(c.samples ?? {})) {
    const [i, j, k] = key.split(',').map(Number) as [number, number, number];
    assert.ok(Math.abs(v.data[voxelIndex(v, i, j, k)]! - want) <= tol * Math.max(1, Math.abs(want)), `${key}: ${v.data[voxelIndex(v, i, j, k)]} vs pydicom ${want}`);
  }
  let s = 0;
  for (const x of v.data) s += x;
  assert.ok(Math.abs(s - c.hu_sum) <= 1e-6 * Math.max(1, Math.abs(c.hu_sum)), `sum ${s} vs pydicom ${c.hu_sum}`);
}

async function rejects(p: Promise<unknown>, code: string): Promise<Error & { code: string; details?: Record<string, unknown> }> {
  try {
    await p;
  } catch (e) {
    assert.ok(isMedmaskError(e), `expected a MedmaskError, got ${String(e)}`);
    assert.equal((e as { code: string }).code, code, (e as Error).message);
    return e as Error & { code: string };
  }
  assert.fail(`expected ${code}, but it resolved`);
}

test('oblique CT series with shuffled names: HU, order and affine equal pydicom / numpy', async () => {
  const c = C.series_oblique!;
  const v = await readVolume(join(FIX, 'series_oblique'));
  assert.equal(v.data.constructor.name, 'Int16Array', 'integral HU that fit are int16');
  assertValues(v, c);
  assertAffine(v, c.affine_lps);
  assert.equal(v.meta.format, 'dicom-series');
  assert.equal(v.meta.modality, 'CT');
  assert.equal(v.meta.unit, 'HU');
  assert.equal(v.meta.slices, 6);
  assert.equal(v.meta.skippedFiles, c.skipped, 'README.txt is skipped and counted');
  assert.equal(v.meta.seriesDescription, c.series_description);
  assert.equal(v.meta.windowCenter, 40);
  assert.equal(v.meta.windowWidth, 400);
  assert.equal(v.meta.bitsStored, 12);
});

test('registry picks the series reader for folders and the file reader for files (also without preamble)', async () => {
  const reg = createDefaultRegistry();
  assert.equal((await reg.readerFor(join(FIX, 'series_oblique'))).name, 'dicom-series');
  assert.equal((await reg.readerFor(join(FIX, 'single/ct_small.dcm'))).name, 'dicom');
  assert.equal((await reg.readerFor(join(FIX, 'no_pixel/rtstruct.dcm'))).name, 'dicom', 'a bare dataset without preamble is still DICOM');
});

for (const name of ['single/ct_small.dcm', 'single/mr_small_implicit.dcm', 'single/mr_small_bigendian.dcm', 'single/mr_small_rle.dcm', 'single/rtdose.dcm']) {
  test(`${name}: values and affine equal pydicom's`, async () => {
    const c = C[name]!;
    const v = await readVolume(join(FIX, name));
    assertValues(v, c);
    assertAffine(v, c.affine_lps);
    assert.equal(v.meta.modality, c.modality);
  });
}

test('CT_small: intercept -1024 gives int16 HU, unit HU', async () => {
  const v = await readVolume(join(FIX, 'single/ct_small.dcm'));
  assert.equal(v.data.constructor.name, 'Int16Array');
  assert.equal(v.meta.unit, 'HU');
});

test('two series: AMBIGUOUS_SERIES lists both; seriesUid chooses one', async () => {
  const dir = join(FIX, 'two_series');
  const mr = C['two_series/mr']!;
  const ct = C['two_series/ct']!;
  const e = await rejects(readVolume(dir), 'AMBIGUOUS_SERIES');
  assert.match(e.message, new RegExp(mr.series_uid!.replace(/\./g, '\\.')));
  assert.match(e.message, new RegExp(ct.series_uid!.replace(/\./g, '\\.')));
  assert.match(e.message, /T1 axial/);
  assert.match(e.message, /CT half slope/);
  assert.match((e as { hint?: string }).hint ?? '', /--series/);
  const listed = await listDicomSeries(dir);
  assert.deepEqual(listed.map((s) => s.seriesInstanceUid).sort(), [mr.series_uid, ct.series_uid].sort());
  assert.deepEqual(listed.map((s) => s.frames).sort(), [2, 3]);

  const vct = await readVolume(dir, { seriesUid: ct.series_uid! });
  assert.equal(vct.data.constructor.name, 'Float32Array', 'slope 0.5 gives non-integral HU: float32');
  assertValues(vct, ct);
  assertAffine(vct, ct.affine_lps);
  const vmr = await readVolume(dir, { seriesUid: mr.series_uid! });
  assertValues(vmr, mr);
  assertAffine(vmr, mr.affine_lps);
  assert.equal(vmr.meta.modality, 'MR');
  // the de-identified UID chooses the same series
  const again = await readVolume(dir, { seriesUid: remapUid(ct.series_uid!, 'k'), uidSalt: 'k' });
  assert.deepEqual(again.shape, vct.shape);
  await rejects(readVolume(dir, { seriesUid: '1.2.3.4' }), 'NOT_FOUND');
});

test('no PixelData: NO_PIXEL_DATA naming the file and its SOP class', async () => {
  const file = join(FIX, 'no_pixel/rtstruct.dcm');
  const e = await rejects(readVolume(file), 'NO_PIXEL_DATA');
  assert.ok(e.message.includes(file), e.message);
  assert.match(e.message, /RT Structure Set/);
  const e2 = await rejects(readVolume(join(FIX, 'no_pixel')), 'NO_PIXEL_DATA');
  assert.ok(e2.message.includes('rtstruct.dcm'));
});

test('a missing slice is a clear error, not a wrong geometry', async () => {
  const e = await rejects(readVolume(join(FIX, 'gap_series')), 'CORRUPT_FILE');
  assert.match(e.message, /not evenly spaced/);
  assert.match(e.message, /4\.000 mm/);
});

test('de-identification: nothing medmask stores holds a patient string or an original UID', async () => {
  const c = C.series_oblique!;
  const salt = 'project-secret';
  const { volume, headers } = await loadDicom(join(FIX, 'series_oblique'), { uidSalt: salt });
  assert.equal(headers.length, 6);
  const stored: Buffer[] = [Buffer.from(JSON.stringify(volume.meta), 'utf8')];
  for (const h of headers) stored.push(dcmjs.data.datasetToBuffer(h));
  const forbidden = [...Object.values(expected.secrets), ...c.original_uids!];
  for (const [i, bytes] of stored.entries()) {
    const text = bytes.toString('latin1');
    for (const s of forbidden) assert.ok(!text.includes(s), `${i === 0 ? 'volume.meta' : `rewritten DICOM ${i}`} contains "${s}"`);
    // The ISO 8859 encoding of the name parts, and UTF-16 would not hide it either.
    assert.ok(!text.includes('Quintessa') && !text.includes('Zyxwvut'));
  }
  // The re-written DICOM parses and says it was de-identified.
  const back = dcmjs.data.DicomMetaDictionary.naturalizeDataset(dcmjs.data.DicomMessage.readFile(new Uint8Array(stored[1]!).buffer).dict);
  assert.equal(back.PatientIdentityRemoved, 'YES');
  assert.ok(String(back.DeidentificationMethod).includes('PS3.15'));
  assert.ok(Array.isArray(volume.meta.removedTags) && (volume.meta.removedTags as string[]).includes('PatientName'));

  // UIDs: consistent within the series, equal to the independent (Python) remap, different with another salt.
  const studies = new Set(headers.map((h) => h.StudyInstanceUID));
  const series = new Set(headers.map((h) => h.SeriesInstanceUID));
  const sops = new Set(headers.map((h) => h.SOPInstanceUID));
  assert.equal(studies.size, 1);
  assert.equal(series.size, 1);
  assert.equal(sops.size, 6);
  assert.equal(volume.meta.seriesInstanceUid, [...series][0]);
  for (const u of [...studies, ...series, ...sops]) assert.match(String(u), /^2\.25\.\d{1,39}$/);
  const other = await loadDicom(join(FIX, 'series_oblique'), { uidSalt: 'another-salt' });
  assert.notEqual(other.volume.meta.seriesInstanceUid, volume.meta.seriesInstanceUid);
  assert.notEqual(other.headers[0]!.StudyInstanceUID, headers[0]!.StudyInstanceUID);
  const same = await loadDicom(join(FIX, 'series_oblique'), { uidSalt: salt });
  assert.equal(same.volume.meta.seriesInstanceUid, volume.meta.seriesInstanceUid);
  for (const r of expected.uid_remap) {
    if (r.uid === c.series_uid) {
      const v = r.salt === salt ? volume : (await loadDicom(join(FIX, 'series_oblique'), { uidSalt: r.salt })).volume;
      assert.equal(v.meta.seriesInstanceUid, r.expected, `salt "${r.salt}"`);
    }
  }
});
