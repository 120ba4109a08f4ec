// The DICOM SEG reader against SEGs written by other tools: pydicom's real dcmqi SEG
// (liver_1frame.dcm, decoded by pydicom in tools/fixtures/make_dicom_seg_read_fixtures.py) and the
// SEG fixture medmask wrote, whose label map numpy saved (tools/fixtures, labels.npy).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isMedmaskError } from '../../src/core/errors.js';
import { ABDOMEN_LABELS } from '../../src/core/phantom/abdomen.js';
import { readDicomSeg } from '../../src/io/dicom-seg-read.js';
import { decodeNpy } from '../../src/io/npy.js';
import { loadDicom } from '../../src/io/index.js';
import { loadSegExpected } from '../helpers/seg-frames.js';

const FIX = new URL('../fixtures/', import.meta.url).pathname;
const liver = readFileSync(join(FIX, 'dicom-seg-read/liver_1frame.dcm'));
const liverExp = JSON.parse(readFileSync(join(FIX, 'dicom-seg-read/expected.json'), 'utf8')) as { rows: number; columns: number; pixel_spacing: number[]; referenced_series: string[]; frames: { position: number[]; pixels: number; sha256: string }[] };
const maxOf = (a: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) if (a[i]! > m) m = a[i]!;
  return m;
};
const ORGANS = Object.fromEntries(Object.entries(ABDOMEN_LABELS).map(([v, n]) => [n, Number(v)]));

test('a real SEG (dcmqi, pydicom test file): frame bits, geometry and the segment name as pydicom reads them', () => {
  const r = readDicomSeg(liver);
  assert.deepEqual(r.labels.shape, [liverExp.columns, liverExp.rows, 1]);
  assert.deepEqual([...r.labels.origin], liverExp.frames[0]!.position);
  assert.deepEqual([r.labels.spacing[0], r.labels.spacing[1]], [liverExp.pixel_spacing[1], liverExp.pixel_spacing[0]]);
  const bits = Uint8Array.from(r.labels.data, (v) => (v ? 1 : 0));
  assert.equal(createHash('sha256').update(bits).digest('hex'), liverExp.frames[0]!.sha256);
  assert.equal(r.segments[0]!.voxels, liverExp.frames[0]!.pixels);
  assert.deepEqual(r.referencedSeries, liverExp.referenced_series);
  // By name into the AbdomenAtlas table: "Liver" is liver (label 5).
  const named = readDicomSeg(liver, { labels: ORGANS });
  assert.equal(named.segments[0]!.name.toLowerCase(), 'liver');
  assert.equal(maxOf(named.labels.data), ORGANS.liver);
  assert.equal(named.labels.meta.labels?.[ORGANS.liver!]?.toLowerCase(), 'liver');
  // A rename file wins; a name the table lacks is an error naming the segment (or skipped).
  assert.equal(maxOf(readDicomSeg(liver, { labels: ORGANS, rename: { Liver: 'spleen' } }).labels.data), ORGANS.spleen);
  assert.throws(() => readDicomSeg(liver, { labels: { kidney: 1 } }), (e) => isMedmaskError(e) && e.code === 'DATASET_INVALID' && /1 "Liver"/.test(e.message));
  assert.equal(maxOf(readDicomSeg(liver, { labels: { kidney: 1 }, unknown: 'skip' }).labels.data), 0);
});

test("medmask's own SEG read back onto its source series equals the label map it was written from (numpy's copy)", async () => {
  const exp = loadSegExpected();
  const { volume } = await loadDicom(join(FIX, 'dicom-seg/series'), { uidSalt: exp.salt });
  const r = readDicomSeg(readFileSync(join(FIX, 'dicom-seg/medmask.seg.dcm')), { reference: volume, labels: ORGANS });
  const want = decodeNpy(new Uint8Array(readFileSync(join(FIX, 'dicom-seg/labels.npy'))));
  assert.deepEqual([...r.labels.data], [...want.data]);
  assert.deepEqual(r.segments.map((s) => s.name).sort(), exp.segments.map((s) => s.name).sort());
  assert.equal(r.overlapVoxels, 0);
  // On a grid it does not fit: an error naming the frame.
  const shifted = { ...volume, origin: [volume.origin[0] + 0.5, volume.origin[1], volume.origin[2]] as [number, number, number] };
  assert.throws(() => readDicomSeg(readFileSync(join(FIX, 'dicom-seg/medmask.seg.dcm')), { reference: shifted, labels: ORGANS }), (e) => isMedmaskError(e) && e.code === 'GEOMETRY_MISMATCH' && /frame 1 at/.test(e.message));
});

test('not a SEG: a clear error', () => {
  assert.throws(() => readDicomSeg(readFileSync(join(FIX, 'dicom/single/ct_small.dcm'))), (e) => isMedmaskError(e) && e.code === 'UNSUPPORTED_FORMAT' && /not Segmentation Storage/.test(e.message));
});
