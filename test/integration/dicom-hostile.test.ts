// DICOM readers never guess: impossible geometry, broken rescale values, a NumberOfFrames that
// disagrees with the data, mosaics and cut files are refused naming the attribute. The inputs are
// pydicom's CT_small (test/fixtures/dicom/single/ct_small.dcm) with one attribute changed by dcmjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dcmjs, { type NaturalizedDataset } from 'dcmjs';
import { readVolume } from '../../src/io/index.js';
import type { MedmaskError } from '../../src/core/errors.js';

const { DicomDict, DicomMessage, DicomMetaDictionary } = dcmjs.data;
const SRC = new URL('../fixtures/dicom/single/ct_small.dcm', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'medmask-dicom-hostile-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** CT_small with `change` applied to its naturalized dataset, written by dcmjs. */
function variant(name: string, change: (ds: NaturalizedDataset) => void): string {
  const bytes = readFileSync(SRC);
  const dd = DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer);
  const ds = DicomMetaDictionary.naturalizeDataset(dd.dict);
  change(ds);
  const out = new DicomDict(dd.meta);
  const log = console.log; // dcmjs lists every private tag it cannot name on stdout
  console.log = () => {};
  try {
    out.dict = DicomMetaDictionary.denaturalizeDataset(ds);
  } finally {
    console.log = log;
  }
  const p = join(dir, name);
  writeFileSync(p, Buffer.from(out.write()));
  return p;
}

async function refused(p: string, code: string, message: RegExp): Promise<void> {
  await assert.rejects(readVolume(p), (e: MedmaskError) => {
    assert.equal(e.code, code, e.message);
    assert.match(e.message, message);
    return true;
  });
}

test('the unchanged rewrite reads (the harness itself is sound)', async () => {
  const v = await readVolume(variant('same.dcm', () => {}));
  assert.deepEqual(v.shape, [128, 128, 1]);
  assert.equal(v.data[0], -849);
});

test('PixelSpacing 0 / -1 / NaN, ImageOrientationPatient zero or parallel, ImagePositionPatient NaN: CORRUPT_FILE naming the attribute', async () => {
  await refused(variant('ps0.dcm', (d) => { d.PixelSpacing = [0, 0.66]; }), 'CORRUPT_FILE', /PixelSpacing .*must hold positive spacings/);
  await refused(variant('psneg.dcm', (d) => { d.PixelSpacing = [-1, 0.66]; }), 'CORRUPT_FILE', /PixelSpacing .*positive/);
  await refused(variant('iop0.dcm', (d) => { d.ImageOrientationPatient = [0, 0, 0, 0, 0, 0]; }), 'CORRUPT_FILE', /ImageOrientationPatient .*zero row or column/);
  await refused(variant('iopp.dcm', (d) => { d.ImageOrientationPatient = [1, 0, 0, 1, 0, 0]; }), 'CORRUPT_FILE', /ImageOrientationPatient .*parallel/);
  await refused(variant('ippnan.dcm', (d) => { d.ImagePositionPatient = ['NaN', '0', '0'] as never; }), 'CORRUPT_FILE', /ImagePositionPatient .*not a finite number/);
});

test('RescaleSlope 0 and a NaN RescaleIntercept are refused (not a constant image, not intercept 0)', async () => {
  await refused(variant('slope0.dcm', (d) => { d.RescaleSlope = '0' as never; }), 'CORRUPT_FILE', /RescaleSlope "0" is 0/);
  await refused(variant('internan.dcm', (d) => { d.RescaleIntercept = 'NaN' as never; }), 'CORRUPT_FILE', /RescaleIntercept .*not a finite number/);
});

test('more frames of data than NumberOfFrames says, a mosaic, and a cut file are refused', async () => {
  await refused(variant('frames.dcm', (d) => {
    const px = new Uint8Array((d.PixelData as ArrayBuffer[])[0]!);
    const two = new Uint8Array(px.length * 2);
    two.set(px);
    two.set(px, px.length);
    d.PixelData = [two.buffer];
  }), 'CORRUPT_FILE', /pixel data hold 2 frames of 128×128×1 but NumberOfFrames says 1/);
  await refused(variant('mosaic.dcm', (d) => { d.ImageType = ['ORIGINAL', 'PRIMARY', 'M', 'MOSAIC']; }), 'UNSUPPORTED_FORMAT', /Siemens mosaic/);
  const bytes = readFileSync(SRC);
  const cut = join(dir, 'cut.dcm');
  writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
  await refused(cut, 'CORRUPT_FILE', /cut short/);
});
