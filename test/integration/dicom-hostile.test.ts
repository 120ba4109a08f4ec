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

/** CT_small with bytes patched in place (what dcmjs would not write): `patch` gets the bytes and the offset of a tag. */
function patched(name: string, patch: (b: Buffer, at: (group: number, element: number) => number) => void): string {
  const b = Buffer.from(readFileSync(SRC));
  const at = (group: number, element: number) => {
    const tag = Buffer.alloc(4);
    tag.writeUInt16LE(group, 0);
    tag.writeUInt16LE(element, 2);
    const i = b.indexOf(tag, 132);
    assert.ok(i > 0, `tag (${group.toString(16)},${element.toString(16)}) found`);
    return i;
  };
  patch(b, at);
  const p = join(dir, name);
  writeFileSync(p, b);
  return p;
}

test('a CT file cut inside its header, an undefined-length native PixelData and a 0xFFFF value length are CORRUPT_FILE, never "no pixel data", and echo no raw bytes', async () => {
  // Cut at byte 1500: the header elements before the cut parse cleanly, so only the image SOP class tells.
  const cut = join(dir, 'cut-header.dcm');
  writeFileSync(cut, readFileSync(SRC).subarray(0, 1500));
  await refused(cut, 'CORRUPT_FILE', /an image object \(SOP class CT Image .*\) without its pixel data: the file \(1500 bytes\) is cut short/);
  // (7FE0,0010) OW with length 0xFFFFFFFF although the syntax is native (explicit VR little endian).
  await refused(patched('undef-length.dcm', (b, at) => b.writeUInt32LE(0xffffffff, at(0x7fe0, 0x0010) + 8)), 'CORRUPT_FILE', /stop being readable part-way .*undefined/);
  // Modality (0008,0060) CS with length 0xFFFF: its value swallows every element after it.
  let msg = '';
  await assert.rejects(readVolume(patched('ffff.dcm', (b, at) => b.writeUInt16LE(0xffff, at(0x0008, 0x0060) + 6))), (e: MedmaskError) => {
    msg = e.message;
    return e.code === 'CORRUPT_FILE';
  });
  assert.match(msg, /modality an unreadable \d+-character value \(its length field is damaged\)/);
  assert.doesNotMatch(msg, /GE MEDICAL|[\u0000-\u0008\u000e-\u001f\u007f-\u009f]/, 'no raw bytes of the swallowed elements');
  assert.ok(msg.length < 400, `${msg.length} characters`);
});
