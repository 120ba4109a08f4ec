/**
 * DICOM SEG export, checked against references written by tools/fixtures/make_dicom_seg_check.py:
 * pydicom wrote the source series and the label map, dciodvfy validated the SEG medmask wrote from
 * them (no errors), pydicom decoded its frames (decoded_frames.npy) and rebuilt the label map from
 * the per-frame positions and references. Here the SEG is written again and read back with
 * dicom-parser (not the dcmjs that wrote it), bit-unpacked by hand.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dicomParser from 'dicom-parser';
import { loadSegExpected, segFrames, seqOf } from '../helpers/seg-frames.js';
import { createVolume, voxelToWorld, type Volume } from '../../src/core/volume.js';
import { abdomenPhantom, ABDOMEN_LABELS } from '../../src/core/phantom/abdomen.js';
import { isMedmaskError } from '../../src/core/errors.js';
import { loadDicom } from '../../src/io/dicom-series.js';
import { decodeNpy } from '../../src/io/npy.js';
import { encodeDicomSeg, organTerm, rgbToDicomLab, writeDicomSeg, ORGAN_TERMS } from '../../src/io/dicom-seg.js';
import { SEG_FIXTURE } from '../helpers/dicom-seg-fixture.js';

const FIX = new URL('../fixtures/dicom-seg/', import.meta.url).pathname;
const expected = loadSegExpected();

/** A SEG as dicom-parser reads it. */
interface DecodedSeg {
  rows: number;
  cols: number;
  frames: Uint8Array[];
  perFrame: { segment: number; position: number[]; referenced?: string; dimension: number[] }[];
  segments: { number: number; label: string; description: string; algorithmType: string; type: string; scheme: string; category: string }[];
  iop: number[];
  pixelSpacing: number[];
  study: string;
  frameOfReference: string;
  referencedSeries?: string;
  referencedInstances: string[];
  sopClass: string;
}

const numbers = (s: string | undefined) => (s ?? '').split('\\').map(Number);

function decodeSeg(bytes: Uint8Array): DecodedSeg {
  const { d, rows, cols, frames } = segFrames(bytes);
  const seq = seqOf;
  const perFrame = seq(d, 'x52009230').map((fg) => {
    const src = seq(fg, 'x00089124')[0];
    const ref = src ? seq(src, 'x00082112')[0]?.string('x00081155') : undefined;
    const fc = seq(fg, 'x00209111')[0]!;
    const dimEl = fc.elements.x00209157!;
    const dimension = Array.from({ length: dimEl.length / 4 }, (_, i) => fc.uint32('x00209157', i)!);
    return { segment: seq(fg, 'x0062000a')[0]!.uint16('x0062000b')!, position: numbers(seq(fg, 'x00209113')[0]!.string('x00200032')), ...(ref ? { referenced: ref } : {}), dimension };
  });
  const segments = seq(d, 'x00620002').map((s) => ({
    number: s.uint16('x00620004')!,
    label: s.string('x00620005')!,
    description: s.string('x00620006')!,
    algorithmType: s.string('x00620008')!,
    type: seq(s, 'x0062000f')[0]!.string('x00080100')!,
    scheme: seq(s, 'x0062000f')[0]!.string('x00080102')!,
    category: seq(s, 'x00620003')[0]!.string('x00080100')!,
  }));
  const shared = seq(d, 'x52009229')[0]!;
  const rs = seq(d, 'x00081115')[0];
  return {
    rows,
    cols,
    frames,
    perFrame,
    segments,
    iop: numbers(seq(shared, 'x00209116')[0]!.string('x00200037')),
    pixelSpacing: numbers(seq(shared, 'x00289110')[0]!.string('x00280030')),
    study: d.string('x0020000d')!,
    frameOfReference: d.string('x00200052')!,
    ...(rs ? { referencedSeries: rs.string('x0020000e')! } : {}),
    referencedInstances: rs ? seq(rs, 'x0008114a').map((i) => i.string('x00081155')!) : [],
    sopClass: d.string('x00080016')!,
  };
}

/**
 * Rebuild a label map on a grid from a decoded SEG: each frame goes to the slice whose position
 * (computed from the grid, not from the writer) it carries; segment number → value by name.
 */
function rebuild(seg: DecodedSeg, grid: Volume, valueOf: (segment: number) => number): Uint8Array {
  const [nx, ny, nz] = grid.shape;
  const a = voxelToWorld(grid);
  const out = new Uint8Array(nx * ny * nz);
  seg.perFrame.forEach((f, i) => {
    let k = -1;
    for (let kk = 0; kk < nz; kk++) {
      const p = [a[3]! + a[2]! * kk, a[7]! + a[6]! * kk, a[11]! + a[10]! * kk];
      if (Math.hypot(p[0]! - f.position[0]!, p[1]! - f.position[1]!, p[2]! - f.position[2]!) < 1e-3) k = kk;
    }
    assert.ok(k >= 0, `frame ${i + 1} at ${f.position.join('\\')} matches no slice of the grid`);
    const v = valueOf(f.segment);
    const fr = seg.frames[i]!;
    for (let p = 0; p < nx * ny; p++) if (fr[p]) {
      assert.equal(out[k * nx * ny + p], 0, `voxel ${p} of slice ${k} is claimed twice`);
      out[k * nx * ny + p] = v;
    }
  });
  return out;
}

async function fixtureInputs() {
  const { volume, headers } = await loadDicom(join(FIX, 'series'), { uidSalt: expected.salt });
  const npy = decodeNpy(new Uint8Array(readFileSync(join(FIX, 'labels.npy'))));
  const labels = createVolume(volume.shape, 'uint8', { data: Uint8Array.from(npy.data), spacing: volume.spacing, origin: volume.origin, direction: volume.direction });
  return { volume, headers, labels, truth: npy.data };
}

function expectCode(fn: () => unknown, code: string, re: RegExp): void {
  assert.throws(fn, (e: unknown) => isMedmaskError(e) && e.code === code && re.test(e.message) && !!e.hint);
}

test('the fixture SEG passed dciodvfy without errors', () => {
  for (const [name, lines] of Object.entries(expected.dciodvfy)) {
    assert.ok(lines.length > 0, `${name}: dciodvfy output recorded`);
    assert.deepEqual(lines.filter((l) => l.startsWith('Error')), [], name);
  }
});

test('SEG of a DICOM series: frames equal pydicom\'s decoding, references match the de-identified source', async () => {
  const { labels, headers, truth } = await fixtureInputs();
  assert.equal(SEG_FIXTURE.salt, expected.salt);
  const r = encodeDicomSeg(labels, { ...SEG_FIXTURE.options, sourceHeaders: headers });
  const seg = decodeSeg(r.bytes);
  assert.equal(seg.sopClass, '1.2.840.10008.5.1.4.1.1.66.4');
  assert.equal(seg.cols, expected.shape[0]);
  assert.equal(seg.rows, expected.shape[1]);
  assert.equal(r.frames, expected.number_of_frames);
  // Frames, bit for bit, against pydicom's pixel_array of the SEG it validated.
  const ref = decodeNpy(new Uint8Array(readFileSync(join(FIX, 'decoded_frames.npy'))));
  assert.deepEqual(ref.shape, [expected.number_of_frames, seg.rows, seg.cols]);
  const plane = seg.rows * seg.cols;
  seg.frames.forEach((f, i) => assert.deepEqual(f, Uint8Array.from(ref.data.subarray(i * plane, (i + 1) * plane)), `frame ${i + 1}`));
  // Per-frame functional groups.
  seg.perFrame.forEach((f, i) => {
    const e = expected.frames[i]!;
    assert.equal(f.segment, e.segment, `frame ${i + 1} segment`);
    assert.equal(f.referenced, e.referenced_sop_instance_uid, `frame ${i + 1} source instance`);
    assert.deepEqual(f.dimension, e.dimension_index_values);
    f.position.forEach((p, c) => assert.ok(Math.abs(p - e.position[c]!) < 1e-4, `frame ${i + 1} position ${f.position} vs ${e.position}`));
  });
  // Shared functional groups and references.
  seg.iop.forEach((v, i) => assert.ok(Math.abs(v - expected.image_orientation_patient[i]!) < 1e-6));
  assert.deepEqual(seg.pixelSpacing, expected.pixel_spacing);
  assert.equal(seg.study, expected.study_instance_uid_remapped);
  assert.equal(seg.frameOfReference, expected.frame_of_reference_uid_remapped);
  assert.equal(seg.referencedSeries, expected.series_instance_uid_remapped);
  assert.deepEqual([...seg.referencedInstances].sort(), [...expected.source_sop_instance_uids_remapped].sort());
  // Segments: one per label present, codes and algorithm types.
  assert.deepEqual(seg.segments.map((s) => s.number), expected.segments.map((s) => s.number));
  seg.segments.forEach((s, i) => {
    const e = expected.segments[i]!;
    assert.equal(s.description, e.name);
    assert.equal(s.label, e.label);
    assert.equal(s.algorithmType, e.algorithm_type);
    assert.equal(s.type, expected.snomed[e.name]![0]);
    assert.equal(s.scheme, 'SCT');
    assert.equal(s.category, '123037004');
  });
  assert.equal(seg.segments.find((s) => s.description === 'liver')!.algorithmType, 'MANUAL'); // provenance original
  assert.equal(seg.segments.find((s) => s.description === 'kidney_right')!.algorithmType, 'SEMIAUTOMATIC'); // revised
  assert.equal(seg.segments.find((s) => s.description === 'spleen')!.algorithmType, 'AUTOMATIC');
  assert.ok(!seg.segments.some((s) => s.description === 'gallbladder'), 'no segment for a label that is absent');
  // The label map comes back from positions alone.
  const valueOf = (n: number) => Number(Object.entries(ABDOMEN_LABELS).find(([, name]) => name === seg.segments[n - 1]!.description)![0]);
  assert.deepEqual(rebuild(seg, labels, valueOf), Uint8Array.from(truth));
  // Nothing identifying survives.
  const text = Buffer.from(r.bytes).toString('latin1');
  for (const [k, v] of Object.entries(expected.secrets)) assert.ok(!text.includes(v), `${k} leaked`);
  for (const u of expected.original_uids) assert.ok(!text.includes(u), `original UID ${u} leaked`);
});

test('SEG without a source: a phantom label map decodes back to itself, with SNOMED CT codes for all 9 organs', () => {
  const p = abdomenPhantom({ seed: 4, size: 32, source: 'btcv' });
  const r = encodeDicomSeg(p.truth, { date: new Date(0) });
  const seg = decodeSeg(r.bytes);
  assert.equal(r.referencedInstances, 0);
  assert.equal(seg.referencedSeries, undefined);
  assert.ok(seg.perFrame.every((f) => f.referenced === undefined));
  assert.equal(seg.segments.length, 9);
  for (const s of seg.segments) assert.equal(s.type, expected.snomed[s.description]![0], s.description);
  const valueOf = (n: number) => Number(Object.entries(ABDOMEN_LABELS).find(([, name]) => name === seg.segments[n - 1]!.description)![0]);
  assert.deepEqual(rebuild(seg, p.truth, valueOf), p.truth.data);
  // Geometry: identity direction → IOP 1\0\0\0\1\0; PixelSpacing = [row spacing (y), column spacing (x)].
  assert.deepEqual(seg.iop, [1, 0, 0, 0, 1, 0]);
  seg.pixelSpacing.forEach((v, i) => assert.ok(Math.abs(v - p.truth.spacing[1 - i]!) < 1e-6));
  // Frames only where a segment has voxels.
  let want = 0;
  const [nx, ny, nz] = p.truth.shape;
  for (let l = 1; l <= 9; l++) for (let k = 0; k < nz; k++) if (p.truth.data.subarray(k * nx * ny, (k + 1) * nx * ny).includes(l)) want++;
  assert.equal(r.frames, want);
});

test('SEG output is deterministic and its UIDs follow the content', () => {
  const p = abdomenPhantom({ seed: 5, size: 32, source: 'lits' });
  const a = encodeDicomSeg(p.truth, { date: new Date(1e12) });
  const b = encodeDicomSeg(p.truth, { date: new Date(1e12) });
  assert.deepEqual(a.bytes, b.bytes);
  const other = createVolume(p.truth.shape, 'uint8', { ...p.truth, data: p.truth.data.map((v) => (v === 5 ? 0 : v)) });
  const c = encodeDicomSeg(other, { date: new Date(1e12) });
  assert.notEqual(c.sopInstanceUid, a.sopInstanceUid);
  assert.match(a.sopInstanceUid, /^2\.25\.\d+$/);
});

test('writeDicomSeg reads the source folder itself', async () => {
  const { labels } = await fixtureInputs();
  const dir = await mkdtemp(join(tmpdir(), 'medmask-seg-'));
  try {
    const out = join(dir, 'case.seg.dcm');
    const r = await writeDicomSeg(labels, out, { ...SEG_FIXTURE.options, sourceDicom: join(FIX, 'series'), uidSalt: expected.salt });
    assert.deepEqual(new Uint8Array(await readFile(out)), r.bytes);
    assert.equal(decodeSeg(r.bytes).referencedSeries, expected.series_instance_uid_remapped);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('SEG export refuses bad input with the bad value named', async () => {
  const { labels, headers } = await fixtureInputs();
  const shifted = createVolume(labels.shape, 'uint8', { ...labels, origin: [labels.origin[0] + 2, labels.origin[1], labels.origin[2]] });
  expectCode(() => encodeDicomSeg(shifted, { ...SEG_FIXTURE.options, sourceHeaders: headers }), 'GEOMETRY_MISMATCH', /slice 0 of the label map/);
  const narrow = createVolume([labels.shape[0] - 1, labels.shape[1], labels.shape[2]], 'uint8');
  narrow.data[0] = 1;
  expectCode(() => encodeDicomSeg(narrow, { sourceHeaders: headers }), 'GEOMETRY_MISMATCH', /19×16/);
  // Headers that did not go through de-identification (loadDicom returns none then; forge one).
  const rawHeaders = headers.map((h) => ({ ...h, PatientIdentityRemoved: undefined }));
  expectCode(() => encodeDicomSeg(labels, { sourceHeaders: rawHeaders }), 'USAGE', /not de-identified/);
  expectCode(() => encodeDicomSeg(createVolume([4, 4, 2], 'uint8'), {}), 'USAGE', /no labelled voxel/);
  const stray = createVolume([4, 4, 2], 'uint8');
  stray.data[3] = 12;
  expectCode(() => encodeDicomSeg(stray, { labels: { ...ABDOMEN_LABELS } }), 'USAGE', /label value 12/);
  const frac = createVolume([4, 4, 1], 'float32');
  frac.data[1] = 2.5;
  expectCode(() => encodeDicomSeg(frac, {}), 'USAGE', /holds 2\.5/);
  expectCode(() => encodeDicomSeg(labels, { contentLabel: 'bad-label' }), 'USAGE', /contentLabel/);
});

test('organ terms: aliases and CIELab colours', () => {
  assert.equal(organTerm('IVC')?.type.value, ORGAN_TERMS.postcava!.type.value);
  assert.equal(organTerm('right kidney')?.type.value, '9846003');
  assert.equal(organTerm('Gall-Bladder')?.type.value, '28231008');
  assert.equal(organTerm('brain'), undefined);
  // CIELab of sRGB white and black (D65): L* = 100 / 0, a* = b* = 0 → 65535 / 0, 32896, 32896.
  const white = rgbToDicomLab([255, 255, 255]);
  assert.equal(white[0], 65535);
  assert.ok(Math.abs(white[1] - 32896) <= 2 && Math.abs(white[2] - 32896) <= 2, String(white));
  assert.deepEqual(rgbToDicomLab([0, 0, 0]), [0, 32896, 32896]);
});
