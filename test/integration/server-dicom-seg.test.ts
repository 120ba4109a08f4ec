/**
 * DICOM SEG export through the server: a DICOM series uploaded over the API is exported as a SEG
 * that references it. The facts checked against come from outside medmask's writer: the
 * de-identified UIDs and slice positions pydicom computed for the fixture series
 * (test/fixtures/dicom-seg/expected.json, remapped with the same salt the server is given here),
 * the image metadata the API reports, and the mask that was saved. The SEG is read back with
 * dicom-parser (not the dcmjs that wrote it) and bit-unpacked by hand; dciodvfy validates it when
 * installed. A NIfTI upload on the same grid still exports, without a reference; a reference the
 * encoder refuses is named in export.json and the SEG is written without it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import dicomParser from 'dicom-parser';
import { loadSegExpected, segFrames, seqOf } from '../helpers/seg-frames.js';
import { createVolume, type Mat3, type Vec3 } from '../../src/core/volume.js';
import { encodeNifti } from '../../src/io/nifti.js';
import { decodeNpy } from '../../src/io/npy.js';
import { makeDataset, untar } from '../helpers/api-suite.js';
import { ROOT } from '../helpers/cli.js';
import { SEG_FIXTURE } from '../helpers/dicom-seg-fixture.js';
import { multipartBody, startTestServer, type TestServer } from '../helpers/server.js';
import { referencedBlobs } from '../../src/store/integrity.js';

const FIX = join(ROOT, 'test/fixtures/dicom-seg');
const expected = loadSegExpected();
/** The label map saved as the mask version (organ values, x fastest). */
const truth = Uint8Array.from(decodeNpy(new Uint8Array(readFileSync(join(FIX, 'labels.npy')))).data);
const seriesFiles = readdirSync(join(FIX, 'series')).sort().map((name) => ({ name, data: readFileSync(join(FIX, 'series', name)) }));
/** SegmentLabel → label value, as the fixture's check recorded them for the organ names. */
const VALUE_OF_LABEL = new Map(expected.segments.map((x) => [x.label, x.value]));
VALUE_OF_LABEL.set('lesion', 1);

interface DecodedSeg {
  rows: number;
  cols: number;
  frames: Uint8Array[];
  perFrame: { segment: number; position: number[]; referenced: string[] }[];
  segmentLabels: Map<number, string>;
  study: string;
  frameOfReference: string;
  referencedSeries: string[];
  referencedInstances: string[];
}

const numbers = (s: string | undefined) => (s ?? '').split('\\').map(Number);

function decodeSeg(bytes: Buffer): DecodedSeg {
  const u8 = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  assert.equal(bytes.subarray(128, 132).toString('latin1'), 'DICM');
  const { d, rows, cols, frames } = segFrames(u8);
  const seq = seqOf;
  const perFrame = seq(d, 'x52009230').map((fg) => ({
    segment: seq(fg, 'x0062000a')[0]!.uint16('x0062000b')!,
    position: numbers(seq(fg, 'x00209113')[0]!.string('x00200032')),
    // DerivationImageSequence → SourceImageSequence → ReferencedSOPInstanceUID
    referenced: seq(fg, 'x00089124').flatMap((di) => seq(di, 'x00082112').map((si) => si.string('x00081155')!)),
  }));
  const segmentLabels = new Map(seq(d, 'x00620002').map((s) => [s.uint16('x00620004')!, s.string('x00620005')!]));
  const rs = seq(d, 'x00081115');
  return {
    rows,
    cols,
    frames,
    perFrame,
    segmentLabels,
    study: d.string('x0020000d')!,
    frameOfReference: d.string('x00200052') ?? '',
    referencedSeries: rs.map((r) => r.string('x0020000e')!),
    referencedInstances: rs.flatMap((r) => seq(r, 'x0008114a').map((i) => i.string('x00081155')!)),
  };
}

/** The slice (index into expected.slice_positions) a frame position lies on. */
function sliceAt(position: number[]): number {
  const k = expected.slice_positions.findIndex((p) => Math.hypot(p[0]! - position[0]!, p[1]! - position[1]!, p[2]! - position[2]!) < 1e-3);
  assert.ok(k >= 0, `frame at ${position.join('\\')} lies on no slice of the source series`);
  return k;
}

/** Rebuild the label map from the SEG's frames: slice from the frame position, value from the segment's label. */
function rebuild(seg: DecodedSeg): Uint8Array {
  const [nx, ny, nz] = expected.shape;
  const out = new Uint8Array(nx * ny * nz);
  seg.perFrame.forEach((f, i) => {
    const k = sliceAt(f.position);
    const label = seg.segmentLabels.get(f.segment)!;
    const v = VALUE_OF_LABEL.get(label);
    assert.ok(v !== undefined, `segment ${f.segment} "${label}" names an organ`);
    const fr = seg.frames[i]!;
    for (let p = 0; p < nx * ny; p++) if (fr[p]) {
      assert.equal(out[k * nx * ny + p], 0, `voxel ${p} of slice ${k} is claimed twice`);
      out[k * nx * ny + p] = v;
    }
  });
  return out;
}

function dciodvfy(s: TestServer, name: string, bytes: Buffer): void {
  if (!existsSync('/usr/bin/dciodvfy')) return;
  const file = join(s.dir, name);
  writeFileSync(file, bytes);
  const v = spawnSync('/usr/bin/dciodvfy', [file], { encoding: 'utf8' });
  const lines = `${v.stdout}\n${v.stderr}`.split('\n');
  assert.ok(lines.some((l) => /Warning|Error|^\s*$/.test(l)), 'dciodvfy ran');
  assert.deepEqual(lines.filter((l) => l.startsWith('Error')), [], `dciodvfy errors in ${name}`);
}

interface ManifestMask {
  target: string;
  maskId: string;
  version: number;
  segments?: string[];
  source?: { seriesInstanceUid: string; instances: number };
  sourceError?: string;
  skipped?: string;
}
interface Manifest {
  entries: { image: string; imageId: string; masks: ManifestMask[] }[];
}

async function exportSeg(s: TestServer, ds: string): Promise<{ files: Map<string, Buffer>; manifest: Manifest }> {
  const ex = await s.as('viewer', { url: `/api/datasets/${ds}/export?format=dicom-seg` });
  assert.equal(ex.statusCode, 200, ex.body);
  const files = await untar(ex.rawPayload);
  return { files, manifest: JSON.parse(files.get('export.json')!.toString()) as Manifest };
}

async function saveMask(s: TestServer, imageId: string, labels: Uint8Array, target = 'organs'): Promise<string> {
  const c = await s.as('reviewer', { method: 'POST', url: `/api/images/${imageId}/cases`, payload: { target } });
  assert.equal(c.statusCode, 201, c.body);
  const maskId = c.json().maskId as string;
  const v = await s.as('annotator', { method: 'POST', url: `/api/masks/${maskId}/versions`, payload: { baseVersion: 0, labels: Buffer.from(labels).toString('base64') } });
  assert.equal(v.statusCode, 201, v.body);
  return maskId;
}

let s: TestServer;
before(async () => {
  // The fixture's salt, so the server's remapped UIDs can be compared with pydicom's.
  s = await startTestServer({ uidSalt: SEG_FIXTURE.salt });
  assert.equal(SEG_FIXTURE.salt, expected.salt);
});
after(async () => {
  await s.close();
});

test('DICOM series upload → dicom-seg export references the de-identified series and every source instance; frames decode to the saved mask; dciodvfy passes', async () => {
  const ds = await makeDataset(s, 'dicom-seg-series');
  const up = await s.as('reviewer', { method: 'POST', url: `/api/datasets/${ds}/images`, ...multipartBody(seriesFiles) });
  assert.equal(up.statusCode, 201, up.body);
  const img = up.json().images[0] as { id: string; shape: number[]; meta: Record<string, unknown> };
  assert.deepEqual(img.shape, expected.shape);

  // What the server reports for the image, and pydicom's remapping of the original UIDs.
  const meta = (await s.as('viewer', { url: `/api/images/${img.id}` })).json().meta as Record<string, unknown>;
  assert.equal(meta.seriesInstanceUid, expected.series_instance_uid_remapped);
  assert.equal(typeof meta.dicomHeaders, 'string');
  assert.ok((await referencedBlobs(s.store.db)).has(meta.dicomHeaders as string), 'the integrity check (and any clean-up) knows the headers blob is in use');

  // The stored headers: de-identified, no pixel data, nothing identifying added.
  const stored = gunzipSync(await s.blobs.get(meta.dicomHeaders as string)).toString('utf8');
  const headers = JSON.parse(stored) as Record<string, unknown>[];
  assert.equal(headers.length, seriesFiles.length);
  for (const secret of [...Object.values(expected.secrets), ...expected.original_uids]) assert.ok(!stored.includes(secret), `stored headers contain "${secret}"`);
  assert.ok(headers.every((h) => !('PixelData' in h) && h.PatientIdentityRemoved === 'YES'));
  assert.deepEqual(headers.map((h) => h.SOPInstanceUID), expected.source_sop_instance_uids_remapped, 'headers in slice order, UIDs remapped');

  const maskId = await saveMask(s, img.id, truth);
  const { files, manifest } = await exportSeg(s, ds);
  const name = [...files.keys()].find((k) => k.endsWith('.seg.dcm'))!;
  assert.ok(name, [...files.keys()].join(' '));
  const m = manifest.entries[0]!.masks[0]!;
  assert.equal(m.maskId, maskId);
  assert.equal(m.sourceError, undefined);
  assert.deepEqual(m.source, { seriesInstanceUid: expected.series_instance_uid_remapped, instances: seriesFiles.length });

  const seg = decodeSeg(files.get(name)!);
  assert.deepEqual(seg.referencedSeries, [meta.seriesInstanceUid], 'ReferencedSeriesSequence names the image series the server reports');
  assert.deepEqual([...seg.referencedInstances].sort(), [...expected.source_sop_instance_uids_remapped].sort(), 'every source instance is referenced');
  assert.equal(seg.study, expected.study_instance_uid_remapped);
  assert.equal(seg.study, meta.studyInstanceUid);
  assert.equal(seg.frameOfReference, expected.frame_of_reference_uid_remapped);
  assert.equal(seg.cols, expected.shape[0]);
  assert.equal(seg.rows, expected.shape[1]);
  assert.ok(seg.perFrame.length > 0);
  seg.perFrame.forEach((f, i) => {
    assert.equal(f.referenced.length, 1, `frame ${i + 1}: one source image`);
    assert.ok(expected.source_sop_instance_uids_remapped.includes(f.referenced[0]!), `frame ${i + 1} references a source instance`);
    assert.equal(f.referenced[0], expected.source_sop_instance_uids_remapped[sliceAt(f.position)], `frame ${i + 1} references the instance at its position`);
  });
  assert.deepEqual(rebuild(seg), truth, 'the SEG decodes back to the saved mask');
  dciodvfy(s, 'series.seg.dcm', files.get(name)!);
});

test('a single DICOM file still uploads and its SEG references that one instance', async () => {
  const ds = await makeDataset(s, 'dicom-seg-single');
  const one = seriesFiles[0]!;
  const up = await s.as('reviewer', { method: 'POST', url: `/api/datasets/${ds}/images`, ...multipartBody([one]) });
  assert.equal(up.statusCode, 201, up.body);
  const img = up.json().images[0] as { id: string; name: string; shape: number[]; meta: Record<string, unknown> };
  assert.equal(img.name, one.name);
  assert.deepEqual(img.shape, [expected.shape[0], expected.shape[1], 1]);
  const headers = JSON.parse(gunzipSync(await s.blobs.get(img.meta.dicomHeaders as string)).toString('utf8')) as Record<string, unknown>[];
  assert.equal(headers.length, 1);
  const sop = headers[0]!.SOPInstanceUID as string;
  assert.ok(expected.source_sop_instance_uids_remapped.includes(sop));
  const plane = new Uint8Array(expected.shape[0] * expected.shape[1]);
  plane.fill(1, 30, 90);
  await saveMask(s, img.id, plane, 'lesion');
  const { files, manifest } = await exportSeg(s, ds);
  const name = [...files.keys()].find((k) => k.endsWith('.seg.dcm'))!;
  assert.equal(manifest.entries[0]!.masks[0]!.source?.instances, 1);
  const seg = decodeSeg(files.get(name)!);
  assert.deepEqual(seg.referencedSeries, [expected.series_instance_uid_remapped]);
  assert.deepEqual(seg.referencedInstances, [sop]);
  assert.equal(seg.frames.length, 1);
  assert.deepEqual(seg.perFrame[0]!.referenced, [sop]);
  assert.deepEqual(seg.frames[0], plane);
  dciodvfy(s, 'single.seg.dcm', files.get(name)!);
});

test('a NIfTI upload on the same grid exports a SEG with no source reference, as before', async () => {
  const ds = await makeDataset(s, 'dicom-seg-nifti');
  // The grid from pydicom's geometry: columns along the row direction, PixelSpacing = row\column spacing.
  const iop = expected.image_orientation_patient;
  const p0 = expected.slice_positions[0]!, p1 = expected.slice_positions[1]!;
  const dz = Math.hypot(p1[0]! - p0[0]!, p1[1]! - p0[1]!, p1[2]! - p0[2]!);
  const n = [0, 1, 2].map((c) => (p1[c]! - p0[c]!) / dz);
  const direction = [iop[0], iop[3], n[0], iop[1], iop[4], n[1], iop[2], iop[5], n[2]] as Mat3;
  const vol = createVolume(expected.shape, 'int16', { spacing: [expected.pixel_spacing[1]!, expected.pixel_spacing[0]!, dz], origin: p0 as Vec3, direction });
  const up = await s.as('reviewer', { method: 'POST', url: `/api/datasets/${ds}/images`, ...multipartBody([{ name: 'ct.nii.gz', data: gzipSync(encodeNifti(vol)) }]) });
  assert.equal(up.statusCode, 201, up.body);
  const img = up.json().images[0] as { id: string; meta: Record<string, unknown> };
  assert.equal(img.meta.dicomHeaders, undefined, 'no DICOM headers for a NIfTI upload');
  await saveMask(s, img.id, truth);
  const { files, manifest } = await exportSeg(s, ds);
  const m = manifest.entries[0]!.masks[0]!;
  assert.equal(m.source, undefined);
  assert.equal(m.sourceError, undefined);
  const name = [...files.keys()].find((k) => k.endsWith('.seg.dcm'))!;
  const seg = decodeSeg(files.get(name)!);
  assert.deepEqual(seg.referencedSeries, [], 'no ReferencedSeriesSequence');
  seg.perFrame.forEach((f, i) => assert.deepEqual(f.referenced, [], `frame ${i + 1} references no source image`));
  assert.deepEqual(rebuild(seg), truth);
  dciodvfy(s, 'nifti.seg.dcm', files.get(name)!);
});

test('a source the encoder refuses is named in export.json, and the SEG is written without the reference', async () => {
  const ds = await makeDataset(s, 'dicom-seg-refused');
  const up = await s.as('reviewer', { method: 'POST', url: `/api/datasets/${ds}/images`, ...multipartBody(seriesFiles) });
  assert.equal(up.statusCode, 201, up.body);
  const img = up.json().images[0] as { id: string; meta: Record<string, unknown> };
  await saveMask(s, img.id, truth);
  // Headers of a series on another grid (as if the wrong series were kept): 99 rows.
  const headers = JSON.parse(gunzipSync(await s.blobs.get(img.meta.dicomHeaders as string)).toString('utf8')) as Record<string, unknown>[];
  const other = await s.blobs.put(gzipSync(JSON.stringify(headers.map((h) => ({ ...h, Rows: 99 })))));
  const setHeaders = (hash: string) => s.store.db.updateTable('images').set({ meta: JSON.stringify({ ...img.meta, dicomHeaders: hash }) }).where('id', '=', img.id).execute();
  await setHeaders(other.hash);
  let { files, manifest } = await exportSeg(s, ds);
  let m = manifest.entries[0]!.masks[0]!;
  assert.equal(m.source, undefined);
  assert.match(m.sourceError ?? '', /^GEOMETRY_MISMATCH: .*source series is 20×99/);
  let seg = decodeSeg(files.get([...files.keys()].find((k) => k.endsWith('.seg.dcm'))!)!);
  assert.deepEqual(seg.referencedSeries, []);
  assert.deepEqual(rebuild(seg), truth);
  // A header blob that is gone: the same, with the reason.
  await setHeaders('0'.repeat(64));
  ({ files, manifest } = await exportSeg(s, ds));
  m = manifest.entries[0]!.masks[0]!;
  assert.match(m.sourceError ?? '', /stored DICOM headers cannot be read/);
  seg = decodeSeg(files.get([...files.keys()].find((k) => k.endsWith('.seg.dcm'))!)!);
  assert.deepEqual(seg.referencedSeries, []);
  assert.deepEqual(rebuild(seg), truth);
});
