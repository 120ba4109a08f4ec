// Corpus tier: medmask's readers over pydicom's and nibabel's own test files (Debian's
// python3-pydicom / python3-nibabel, installed when missing), against the values pydicom and
// nibabel read from them (test/fixtures/corpus/expected.json, written by
// tools/fixtures/make_corpus_fixtures.py). Files that must be refused are listed with the code and
// the reason; every other file must read, or end in a coded MedmaskError — never a crash.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readVolume } from '../../src/io/index.js';
import { voxelToRas } from '../../src/core/volume.js';
import { isMedmaskError } from '../../src/core/errors.js';
// @ts-expect-error plain ESM script without types
import { ensureSystemPackages } from '../../scripts/system-deps.mjs';

const FIX = new URL('../fixtures/corpus/expected.json', import.meta.url).pathname;
const expected = JSON.parse(readFileSync(FIX, 'utf8')) as { dicom: Record<string, Case>; nifti: Record<string, Case> };
const ROOT = { dicom: '/usr/lib/python3/dist-packages/pydicom/data/test_files', nifti: '/usr/lib/python3/dist-packages/nibabel/tests/data' };

interface Case {
  shape?: number[];
  samples?: number;
  components?: number;
  first?: Array<number | string>;
  mean?: number | string;
  min?: number | string;
  max?: number | string;
  nonFinite?: number;
  pixelSpacing?: number[];
  origin?: number[];
  affineRas?: number[];
  colour?: string;
}

/** Files medmask must refuse, with the code and why (pydicom / nibabel agree or the format is not an image). */
const REFUSED: Record<string, [string, string]> = {
  'MR_truncated.dcm': ['CORRUPT_FILE', 'the pixel data element is 62 bytes short (pydicom and dcm2niix refuse it too); never zero-filled'],
  'badVR.dcm': ['CORRUPT_FILE', 'NumberOfFrames "1A" while the data hold 15 frames; reading 1 would be silently wrong'],
  'no_meta.dcm': ['CORRUPT_FILE', 'this copy starts one byte off: pydicom cannot read it either'],
  'ExplVR_BigEndNoMeta.dcm': ['CORRUPT_FILE', 'big-endian dataset without meta header: the transfer syntax cannot be known'],
  'no_meta_group_length.dcm': ['CORRUPT_FILE', 'meta group without its length: the parse stops part-way'],
  'meta_missing_tsyntax.dcm': ['CORRUPT_FILE', 'the meta header has no transfer syntax'],
  'rtplan_truncated.dcm': ['CORRUPT_FILE', 'truncated RT plan: the parse stops part-way'],
  'UN_sequence.dcm': ['CORRUPT_FILE', 'no image: a lone UN sequence'],
  'nested_priv_SQ.dcm': ['CORRUPT_FILE', 'no image: a lone private sequence'],
  'SC_ybr_full_422_uncompressed.dcm': ['UNSUPPORTED_FORMAT', 'uncompressed YBR_FULL_422 (subsampled chroma) is not decoded'],
  'JPEG2000-embedded-sequence-delimiter.dcm': ['UNSUPPORTED_FORMAT', 'GDCM cannot decode this JPEG 2000 stream'],
  'ExplVR_LitEndNoMeta.dcm': ['NO_PIXEL_DATA', 'an RT Ion Plan'],
  'empty_charset_LEI.dcm': ['NO_PIXEL_DATA', 'no pixel data element'],
  'priv_SQ.dcm': ['NO_PIXEL_DATA', 'no pixel data element'],
  'reportsi.dcm': ['NO_PIXEL_DATA', 'a structured report'],
  'reportsi_with_empty_number_tags.dcm': ['NO_PIXEL_DATA', 'a structured report'],
  'rtplan.dcm': ['NO_PIXEL_DATA', 'an RT plan'],
  'rtstruct.dcm': ['NO_PIXEL_DATA', 'an RT structure set'],
  'test-SR.dcm': ['NO_PIXEL_DATA', 'a structured report'],
  'waveform_ecg.dcm': ['NO_PIXEL_DATA', 'an ECG waveform'],
  'zipMR.gz': ['UNSUPPORTED_FORMAT', 'a gzip-compressed DICOM file: unzip it first'],
  'row_major.dconn.nii': ['UNSUPPORTED_FORMAT', 'a CIFTI-2 connectivity matrix, not an image (nibabel reads it as Cifti2Image)'],
};

const NOT_IMAGES = /\.(txt|json|dump)$/;

function num(x: number | string | undefined): number {
  return typeof x === 'number' ? x : Number(x);
}

function close(a: number, b: number, tol: number, what: string): void {
  if (Number.isNaN(b)) assert.ok(Number.isNaN(a), `${what}: ${a} vs NaN`);
  else assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${what}: medmask ${a}, reference ${b}`);
}

test.before(() => {
  (ensureSystemPackages as (n: string[]) => string[])(['python3-pydicom', 'python3-nibabel']);
});

for (const kind of ['dicom', 'nifti'] as const) {
  test(`${kind}: every file of the reference library reads as the reference reads it, or is refused as listed`, async () => {
    let read = 0;
    let refused = 0;
    const files = readdirSync(ROOT[kind]).filter((f) => !NOT_IMAGES.test(f) && statSync(join(ROOT[kind], f)).isFile() && (kind === 'dicom' || /\.nii(\.gz)?$/.test(f)));
    for (const name of files) {
      const e = expected[kind][name];
      const path = join(ROOT[kind], name);
      const want = REFUSED[name];
      let vol;
      try {
        vol = await readVolume(path);
      } catch (err) {
        assert.ok(isMedmaskError(err), `${name}: not a MedmaskError: ${String(err)}`);
        assert.ok(want, `${name}: refused (${err.code}: ${err.message.split('\n')[0]}) but not on the list${e?.shape ? '; pydicom/nibabel read it' : ''}`);
        assert.equal(err.code, want[0], `${name}: ${err.message}`);
        assert.doesNotMatch(err.message, /[\u0000-\u0008\u000e-\u001f]/, `${name}: raw bytes in the message`);
        refused++;
        continue;
      }
      assert.ok(!want, `${name}: read, but must be refused (${want?.[1]})`);
      read++;
      if (!e?.shape) continue; // the reference cannot decode it here (no decoder in Debian's pydicom set-up)
      assert.deepEqual(vol.shape, e.shape, `${name}: shape`);
      const tol = e.colour ? 0.02 : 1e-5; // YBR→RGB: libjpeg and pydicom round differently
      let sum = 0;
      let n = 0;
      let lo = Infinity;
      let hi = -Infinity;
      let nonFinite = 0;
      for (const x of vol.data) {
        if (!Number.isFinite(x)) {
          nonFinite++;
          continue;
        }
        sum += x;
        n++;
        if (x < lo) lo = x;
        if (x > hi) hi = x;
      }
      assert.equal(nonFinite, e.nonFinite ?? 0, `${name}: non-finite values`);
      close(sum / n, num(e.mean), tol, `${name}: mean`);
      close(lo, num(e.min), e.colour ? 0.05 : 1e-6, `${name}: min`);
      close(hi, num(e.max), e.colour ? 0.05 : 1e-6, `${name}: max`);
      e.first!.forEach((f, i) => close(vol.data[i]!, num(f), e.colour ? 0.05 : 1e-6, `${name}: value ${i}`));
      if (e.pixelSpacing) close(vol.spacing[0], e.pixelSpacing[1]!, 1e-6, `${name}: column spacing`), close(vol.spacing[1], e.pixelSpacing[0]!, 1e-6, `${name}: row spacing`);
      if (e.origin) e.origin.forEach((o, i) => close(vol.origin[i]!, o, 1e-6, `${name}: origin ${i}`));
      if (e.affineRas) {
        const ras = voxelToRas(vol);
        e.affineRas.slice(0, 12).forEach((a, i) => close(ras[i]!, a, 1e-5, `${name}: affine[${i}]`));
      }
    }
    for (const name of Object.keys(REFUSED)) if ((kind === 'dicom') === !/\.nii/.test(name)) assert.ok(files.includes(name), `${name}: listed but not in the library`);
    assert.ok(read > (kind === 'dicom' ? 40 : 6), `only ${read} files read`);
    console.log(`${kind}: ${read} read (${files.filter((f) => expected[kind][f]?.shape).length} checked against the reference), ${refused} refused as listed`);
  });
}
