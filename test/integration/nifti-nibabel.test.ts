// NIfTI against nibabel, both ways. The references are made by tools/fixtures/make_nifti_fixtures.py
// (nibabel 5 writes and reads; see its header to regenerate) and committed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { voxelIndex, voxelToRas, voxelToWorld, type Volume, type VoxelArray } from '../../src/core/volume.js';
import { MedmaskError } from '../../src/core/errors.js';
import { encodeNifti } from '../../src/io/nifti.js';
import { readVolume, writeVolume } from '../../src/io/index.js';
import { medmaskNiftiCases } from '../../tools/fixtures/medmask-nifti-cases.js';

const FIX = new URL('../fixtures/nifti/', import.meta.url).pathname;

interface Expected {
  affine: number[][];
  shape: number[];
  dtype: string;
  sform_code: number;
  qform_code: number;
  intent: string;
  xyzt_units: [string, string];
  scl: [number, number];
  sha256_stored: string;
  values: Record<string, number | number[]>;
  sum?: number;
}
const expected = JSON.parse(readFileSync(join(FIX, 'expected.json'), 'utf8')) as Record<string, Expected>;
const seen = JSON.parse(readFileSync(join(FIX, 'nibabel-reads-medmask.json'), 'utf8')) as Record<
  string,
  { affine: number[][]; qform: number[][]; sform_code: number; qform_code: number; shape: number[]; dtype: string; intent: string; sha256_medmask_layout: string; descrip: string }
>;

const close = (a: number, b: number, tol = 1e-5) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));
const sha = (a: VoxelArray) => createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex');

/** numpy dtype string (as nibabel reports it) → the typed array medmask must return when unscaled. */
function arrayNameFor(dtype: string): string {
  if (dtype.startsWith('[(')) return 'Uint8Array'; // RGB24 structured dtype
  const t = dtype.replace(/^[<>|=]/, '');
  const map: Record<string, string> = {
    uint8: 'Uint8Array', u1: 'Uint8Array', int8: 'Int8Array', i1: 'Int8Array', int16: 'Int16Array', i2: 'Int16Array',
    uint16: 'Uint16Array', u2: 'Uint16Array', int32: 'Int32Array', i4: 'Int32Array', uint32: 'Uint32Array', u4: 'Uint32Array',
    float32: 'Float32Array', f4: 'Float32Array', float64: 'Float64Array', f8: 'Float64Array',
  };
  return map[t] ?? `unknown dtype ${dtype}`;
}

/** NIfTI-1 standard: spatial units; medmask works in mm. */
const UNIT_MM: Record<string, number> = { unknown: 1, mm: 1, meter: 1000, micron: 0.001 };

for (const [name, exp] of Object.entries(expected)) {
  test(`NIfTI ${name}: affine, shape, type, voxels and header codes equal nibabel's`, async () => {
    const v = await readVolume(join(FIX, name));
    // affine: nibabel's img.affine, in file units → mm
    const mm = UNIT_MM[exp.xyzt_units[0]]!;
    const got = voxelToRas(v);
    exp.affine.flat().forEach((w, i) => {
      const want = i < 12 ? w * mm : w;
      assert.ok(Math.abs(got[i]! - want) <= 1e-5 * Math.max(1, Math.abs(want)), `affine[${i}] ${got[i]} vs nibabel ${want}`);
    });
    // shape: 4th dimension → components; RGB → 3 components
    const rgb = exp.dtype.startsWith('[(');
    assert.deepEqual(v.shape, [exp.shape[0], exp.shape[1] ?? 1, exp.shape[2] ?? 1]);
    assert.equal(v.components, (exp.shape[3] ?? 1) * (rgb ? 3 : 1));
    // type: stored type unless nibabel scales; scaled → int16 when every value is an integer that fits, else float32
    const [slope, inter] = exp.scl;
    const scaled = !(slope === 1 && inter === 0);
    const vals = Object.values(exp.values).flat();
    const integral = vals.every((x) => Number.isInteger(x) && x >= -32768 && x <= 32767);
    assert.equal(v.data.constructor.name, scaled ? (integral ? 'Int16Array' : 'Float32Array') : arrayNameFor(exp.dtype));
    // voxels: exact at the sampled indices; checksum of every stored voxel when unscaled; sum when scaled
    for (const [key, want] of Object.entries(exp.values)) {
      const [i, j, k] = key.split(',').map(Number) as [number, number, number];
      const w = Array.isArray(want) ? want : [want];
      const g = w.map((_, c) => v.data[voxelIndex(v, i, j, k, c)]!);
      assert.deepEqual(g, w, `voxel ${key}`);
    }
    if (!scaled) assert.equal(sha(v.data), exp.sha256_stored, 'SHA-256 of the voxels (x fastest, components interleaved)');
    if (exp.sum !== undefined) {
      let s = 0;
      for (const x of v.data) s += x;
      assert.ok(close(s, exp.sum, 1e-9), `sum ${s} vs nibabel ${exp.sum}`);
    }
    assert.equal(v.meta.sformCode, exp.sform_code);
    assert.equal(v.meta.qformCode, exp.qform_code);
    assert.equal(v.meta.intent ?? 'none', exp.intent);
  });
}

for (const c of medmaskNiftiCases()) {
  test(`nibabel reads medmask's ${c.name} with the same affine (sform and qform), type, voxels and description`, () => {
    const nb = seen[c.name];
    assert.ok(nb, `nibabel-reads-medmask.json lacks ${c.name}: rerun tools/fixtures (see make_nifti_fixtures.py's header)`);
    const ras = voxelToRas(c.volume);
    nb.affine.flat().forEach((w, i) => assert.ok(close(ras[i]!, w), `sform[${i}] nibabel ${w} vs ${ras[i]}`));
    nb.qform.flat().forEach((w, i) => assert.ok(close(ras[i]!, w, 1e-4), `qform[${i}] nibabel ${w} vs ${ras[i]}`));
    assert.equal(nb.sform_code, 1);
    assert.equal(nb.qform_code, 1);
    assert.equal(nb.descrip, c.opts.description ?? 'medmask');
    const { data, components: nc, shape } = c.volume;
    const rgb = nc === 3 && data instanceof Uint8Array && !c.opts.labelMap;
    assert.deepEqual(nb.shape, [...shape, ...(nc > 1 && !rgb ? [nc] : [])]);
    let want: VoxelArray = data;
    if (c.opts.labelMap) {
      assert.equal(nb.intent, 'label');
      const hi = Math.max(...data);
      assert.equal(nb.dtype, hi <= 255 ? 'uint8' : 'uint16');
      want = hi <= 255 ? Uint8Array.from(data) : Uint16Array.from(data);
    } else {
      assert.equal(nb.intent, 'none');
      assert.equal(rgb ? 'Uint8Array' : arrayNameFor(nb.dtype), data.constructor.name);
      if (rgb) assert.ok(nb.dtype.startsWith('[('), `RGB24 expected, nibabel saw ${nb.dtype}`);
    }
    // nibabel's voxels rearranged by numpy into medmask's layout (x fastest, 4th dim interleaved)
    assert.equal(sha(want), nb.sha256_medmask_layout);
  });

  test(`the writer still produces the bytes nibabel checked for ${c.name}`, () => {
    const committed = readFileSync(join(FIX, 'medmask-written', c.name));
    const raw = c.name.endsWith('.gz') ? gunzipSync(committed) : committed;
    assert.ok(Buffer.from(encodeNifti(c.volume, c.opts)).equals(raw), 'writer output changed: rerun the fixture scripts and review nibabel-reads-medmask.json');
  });
}

test('read → write → read is lossless in data and geometry for every nibabel reference file (.nii.gz and .nii)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-nii-'));
  try {
    for (const name of Object.keys(expected)) {
      const a = await readVolume(join(FIX, name));
      for (const ext of ['.nii.gz', '.nii']) {
        const out = join(dir, name.replace(/\.(nii(\.gz)?|hdr)$/, ext));
        await writeVolume(a, out);
        const b = await readVolume(out);
        assert.deepEqual(b.shape, a.shape, name);
        assert.equal(b.components, a.components, name);
        assert.equal(b.data.constructor.name, a.data.constructor.name, name);
        assert.deepEqual(Array.from(b.data), Array.from(a.data), name);
        const A = voxelToWorld(a);
        voxelToWorld(b).forEach((x, i) => assert.ok(close(x, A[i]!, 1e-6), `${name} affine[${i}] ${x} vs ${A[i]}`));
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a CT-sized volume (> 1 MiB, read without a second copy) survives NIfTI → NRRD → NIfTI', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-nii-'));
  try {
    const n = 128 * 128 * 40;
    const data = Int16Array.from({ length: n }, (_, i) => ((i * 2654435761) % 3000) - 1024);
    const a: Volume = { data, shape: [128, 128, 40], components: 1, spacing: [0.7, 0.7, 2], origin: [-40, 30, 10], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1], meta: {} };
    await writeVolume(a, join(dir, 'ct.nii.gz'));
    const b = await readVolume(join(dir, 'ct.nii.gz'));
    assert.equal(b.data.length, n);
    assert.ok(Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength).equals(Buffer.from(data.buffer)));
    await writeVolume(b, join(dir, 'ct.nrrd'));
    const c = await readVolume(join(dir, 'ct.nrrd'));
    assert.deepEqual(Array.from(c.data.subarray(0, 1000)), Array.from(data.subarray(0, 1000)));
    assert.ok(Buffer.from(c.data.buffer, c.data.byteOffset, c.data.byteLength).equals(Buffer.from(data.buffer)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad NIfTI: truncated .nii.gz, short data, wrong vox_offset, bad dims, unknown datatype — each a clear error naming the file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-nii-'));
  const isErr = (file: string, code: string, re: RegExp) => (e: unknown) => {
    assert.ok(e instanceof MedmaskError, `expected a MedmaskError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.ok(e.message.includes(file), `message names the file: ${e.message}`);
    assert.match(e.message, re);
    assert.ok(e.hint, 'has a hint');
    return true;
  };
  try {
    const gz = readFileSync(join(FIX, 'oblique_int16.nii.gz'));
    writeFileSync(join(dir, 'cut.nii.gz'), gz.subarray(0, Math.floor(gz.length * 0.6)));
    await assert.rejects(readVolume(join(dir, 'cut.nii.gz')), isErr('cut.nii.gz', 'CORRUPT_FILE', /gzip stream ends early/));

    const raw = gunzipSync(gz);
    writeFileSync(join(dir, 'short.nii'), raw.subarray(0, raw.length - 10));
    await assert.rejects(readVolume(join(dir, 'short.nii')), isErr('short.nii', 'CORRUPT_FILE', /only \d+ bytes follow/));

    // vox_offset is the float32 at byte 108 of a NIfTI-1 header (nifti1.h)
    const bad = Buffer.from(raw);
    bad.writeFloatLE(1e6, 108);
    writeFileSync(join(dir, 'offset.nii'), bad);
    await assert.rejects(readVolume(join(dir, 'offset.nii')), isErr('offset.nii', 'CORRUPT_FILE', /vox_offset 1000000 lies beyond the end/));
    bad.writeFloatLE(100, 108);
    writeFileSync(join(dir, 'offset2.nii'), bad);
    await assert.rejects(readVolume(join(dir, 'offset2.nii')), isErr('offset2.nii', 'CORRUPT_FILE', /vox_offset 100 lies inside the 348-byte header/));

    // dim[2] (int16 at byte 44) negative
    const dims = Buffer.from(raw);
    dims.writeInt16LE(-5, 44);
    writeFileSync(join(dir, 'dims.nii'), dims);
    await assert.rejects(readVolume(join(dir, 'dims.nii')), isErr('dims.nii', 'CORRUPT_FILE', /dims \[6,-5,4\]/));

    // datatype (int16 at byte 70) = 1792, complex128
    const dt = Buffer.from(raw);
    dt.writeInt16LE(1792, 70);
    writeFileSync(join(dir, 'complex.nii'), dt);
    await assert.rejects(readVolume(join(dir, 'complex.nii')), isErr('complex.nii', 'UNSUPPORTED_FORMAT', /datatype 1792 \(complex128\)/));

    // a .hdr whose .img is missing
    writeFileSync(join(dir, 'lonely.hdr'), readFileSync(join(FIX, 'pair_int8.hdr')));
    await assert.rejects(readVolume(join(dir, 'lonely.hdr')), isErr('lonely.hdr', 'NOT_FOUND', /lonely\.img is missing/));

    const scaled: Volume = await readVolume(join(FIX, 'scaled_uint8.nii.gz'));
    await assert.rejects(writeVolume(scaled, join(dir, 'x.nii.gz'), { labelMap: true }), /integer labels/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
