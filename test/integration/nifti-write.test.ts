import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { voxelToRas, voxelToWorld, type Volume } from '../../src/core/volume.js';
import { MedmaskError } from '../../src/core/errors.js';
import { encodeNifti } from '../../src/io/nifti.js';
import { readVolume, writeVolume } from '../../src/io/index.js';
import { medmaskNiftiCases } from '../../tools/fixtures/medmask-nifti-cases.js';

const FIX = new URL('../fixtures/nifti-ref/', import.meta.url).pathname;
const seen = JSON.parse(readFileSync(join(FIX, 'nibabel-reads-medmask.json'), 'utf8')) as Record<
  string,
  { affine: number[][]; qform: number[][]; sform_code: number; qform_code: number; shape: number[]; dtype: string; intent: string; sha256: string }
>;

const close = (a: number, b: number, tol = 1e-5) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));

for (const c of medmaskNiftiCases()) {
  test(`nibabel reads medmask's ${c.name} with the same affine (sform and qform), type and voxels`, () => {
    const nb = seen[c.name];
    assert.ok(nb, `nibabel-reads-medmask.json lacks ${c.name}: rerun tools/fixtures (see the script header)`);
    const ras = voxelToRas(c.volume);
    nb.affine.flat().forEach((w, i) => assert.ok(close(ras[i]!, w), `sform[${i}] nibabel ${w} vs ${ras[i]}`));
    nb.qform.flat().forEach((w, i) => assert.ok(close(ras[i]!, w, 1e-4), `qform[${i}] nibabel ${w} vs ${ras[i]}`));
    assert.equal(nb.sform_code, 1);
    assert.equal(nb.qform_code, 1);
    if (c.opts.labelMap) {
      assert.equal(nb.intent, 'label');
      assert.equal(nb.dtype, Math.max(...c.volume.data) <= 255 ? 'uint8' : 'uint16');
    }
    // nibabel's voxels in x-fastest order, components as the slowest (4th) axis
    const { data, components: nc } = c.volume;
    const nvox = data.length / nc;
    const elems = Array.from({ length: data.length }, (_, i) => data[(i % nvox) * nc + Math.floor(i / nvox)]!);
    const typed = nb.dtype === 'uint8' ? Uint8Array.from(elems) : nb.dtype === 'uint16' ? Uint16Array.from(elems) : new (data.constructor as new (a: number[]) => typeof data)(elems);
    const sha = createHash('sha256').update(new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength)).digest('hex');
    assert.equal(sha, nb.sha256);
  });

  test(`the writer still produces the bytes nibabel checked for ${c.name}`, () => {
    const committed = readFileSync(join(FIX, 'medmask-written', c.name));
    const raw = c.name.endsWith('.gz') ? gunzipSync(committed) : committed;
    assert.ok(Buffer.from(encodeNifti(c.volume, c.opts)).equals(raw));
  });
}

test('read → write → read is lossless in data and geometry for every nibabel reference file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-nii-'));
  try {
    const names = Object.keys(JSON.parse(readFileSync(join(FIX, 'expected.json'), 'utf8')) as object);
    for (const name of names) {
      const a = await readVolume(join(FIX, name));
      const out = join(dir, name.replace(/\.nii(\.gz)?$/, '.nii.gz'));
      await writeVolume(a, out);
      const b = await readVolume(out);
      assert.deepEqual(b.shape, a.shape, name);
      assert.equal(b.components, a.components, name);
      assert.equal(b.data.constructor.name, a.data.constructor.name, name);
      assert.deepEqual(Array.from(b.data), Array.from(a.data), name);
      const A = voxelToWorld(a);
      const B = voxelToWorld(b);
      A.forEach((x, i) => assert.ok(close(B[i]!, x, 1e-6), `${name} affine[${i}] ${B[i]} vs ${x}`));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad NIfTI: truncated .nii.gz, short data, wrong vox_offset — each a clear error naming the file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-nii-'));
  try {
    const gz = readFileSync(join(FIX, 'oblique_int16.nii.gz'));
    writeFileSync(join(dir, 'cut.nii.gz'), gz.subarray(0, Math.floor(gz.length / 2)));
    await assert.rejects(readVolume(join(dir, 'cut.nii.gz')), (e: MedmaskError) =>
      e.code === 'CORRUPT_FILE' && e.message.includes('cut.nii.gz') && /gzip/.test(e.message) && /truncated/.test(e.hint ?? ''));

    const raw = gunzipSync(gz);
    writeFileSync(join(dir, 'short.nii'), raw.subarray(0, raw.length - 10));
    await assert.rejects(readVolume(join(dir, 'short.nii')), (e: MedmaskError) =>
      e.code === 'CORRUPT_FILE' && e.message.includes('short.nii') && /only \d+ bytes follow/.test(e.message));

    const bad = Buffer.from(raw);
    bad.writeFloatLE(1e6, 108); // vox_offset beyond the end of the file
    writeFileSync(join(dir, 'offset.nii'), bad);
    await assert.rejects(readVolume(join(dir, 'offset.nii')), (e: MedmaskError) =>
      e.code === 'CORRUPT_FILE' && e.message.includes('offset.nii') && /vox_offset 1000000/.test(e.message));
    bad.writeFloatLE(100, 108); // inside the header
    writeFileSync(join(dir, 'offset2.nii'), bad);
    await assert.rejects(readVolume(join(dir, 'offset2.nii')), /vox_offset 100 lies inside the 348-byte header/);

    const lab: Volume = await readVolume(join(FIX, 'scaled_uint8.nii.gz'));
    await assert.rejects(writeVolume(lab, join(dir, 'x.nii.gz'), { labelMap: true }), /integer labels/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
