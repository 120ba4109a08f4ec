import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildProgram } from '../../src/cli/main.js';
import { cli, ROOT } from '../helpers/cli.js';

const FIX = join(ROOT, 'test/fixtures');

test('every subcommand has --help', () => {
  const names = buildProgram().commands.map((c) => c.name());
  assert.ok(names.includes('info') && names.includes('convert'), names.join(','));
  const program = buildProgram();
  const all = program.commands.flatMap((c) => [[c], ...c.commands.map((s) => [c, s])]);
  // Every command's help as commander renders it (in-process: spawning ~60 CLIs cost 95 s) ...
  for (const path of all) {
    const text = path[path.length - 1]!.helpInformation();
    assert.match(text, new RegExp(`Usage: medmask ${path.map((c) => c.name()).join(' ')}`));
    assert.match(text, /--verbose/, `${path.map((c) => c.name()).join(' ')} --help lists --verbose`);
  }
  // ... and the real binary answers --help with exit 0 at the top, one level and two levels down.
  for (const path of [[], ['info'], ['atlas', 'run']]) {
    const r = cli(...path, '--help');
    assert.equal(r.code, 0, `${path.join(' ')} --help: ${r.err}`);
    assert.match(r.out, new RegExp(`Usage: medmask${path.length ? ' ' + path.join(' ') : ''}`));
  }
});

test('info prints shape, voxel type, spacing, orientation and range; --json parses', () => {
  const r = cli('info', join(FIX, 'images/grey16.png'));
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /shape\s+37 × 23 × 1/);
  assert.match(r.out, /voxel type\s+uint16/);
  assert.match(r.out, /orientation\s+LPS/);
  const j = cli('info', '--json', join(FIX, 'images/grey8.png'));
  const s = JSON.parse(j.out) as { shape: number[]; voxelType: string };
  assert.deepEqual(s.shape, [29, 19, 1]);
  assert.equal(s.voxelType, 'uint8');
});

test('convert keeps the pixels; bad input exits non-zero with one clear line and no stack trace', () => {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-cli-'));
  try {
    const out = join(dir, 'x.tif');
    const r = cli('convert', join(FIX, 'images/grey16.png'), out);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /wrote .*x\.tif/);
    const back = JSON.parse(cli('info', '--json', out).out) as { range: number[] };
    const orig = JSON.parse(cli('info', '--json', join(FIX, 'images/grey16.png')).out) as { range: number[] };
    assert.deepEqual(back.range, orig.range);

    writeFileSync(join(dir, 'empty.png'), '');
    const bad = cli('info', join(dir, 'empty.png'));
    assert.equal(bad.code, 3);
    assert.match(bad.err, /error \[CORRUPT_FILE\]: .*empty\.png: the file is empty/);
    assert.doesNotMatch(bad.err, /\n\s+at /, 'no stack trace');

    const missing = cli('info', join(dir, 'nope.nii.gz'));
    assert.equal(missing.code, 3);
    assert.match(missing.err, /NOT_FOUND.*nope\.nii\.gz/);

    const usage = cli('convert', join(FIX, 'images/grey8.png'));
    assert.equal(usage.code, 2);
    assert.match(usage.err, /missing required argument/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad input from the issue list: each exits ≠ 0 with one clear line naming the file and a hint, no stack trace', () => {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-cli-'));
  try {
    const gz = readFileSync(join(FIX, 'nifti/oblique_int16.nii.gz'));
    writeFileSync(join(dir, 'cut.nii.gz'), gz.subarray(0, gz.length >> 1));
    const raw = gunzipSync(gz);
    raw.writeFloatLE(1e6, 108);
    writeFileSync(join(dir, 'offset.nii'), raw);
    writeFileSync(join(dir, 'empty.png'), '');
    mkdirSync(join(dir, 'imgs'));
    writeFileSync(join(dir, 'labels.csv'), 'image,label\nimgs/here.png,healthy\nimgs/missing.png,tuberculosis\n');
    writeFileSync(join(dir, 'imgs/here.png'), readFileSync(join(FIX, 'images/grey8.png')));
    const cases: [string[], RegExp, number][] = [
      [['info', join(dir, 'cut.nii.gz')], /CORRUPT_FILE.*cut\.nii\.gz.*gzip/s, 3],
      [['info', join(dir, 'offset.nii')], /CORRUPT_FILE.*offset\.nii.*vox_offset/s, 3],
      [['info', join(FIX, 'dicom/no_pixel/rtstruct.dcm')], /NO_PIXEL_DATA.*rtstruct\.dcm/s, 3],
      [['info', join(FIX, 'dicom/two_series')], /AMBIGUOUS_SERIES.*--series/s, 3],
      [['info', join(dir, 'empty.png')], /CORRUPT_FILE.*empty\.png/s, 3],
      [['dataset', 'check', join(dir, 'labels.csv')], /NOT_FOUND.*labels\.csv.*line 3: imgs\/missing\.png/s, 3],
    ];
    for (const [args, pattern, code] of cases) {
      const r = cli(...args);
      assert.equal(r.code, code, `${args.join(' ')}: exit ${r.code}\n${r.err}`);
      assert.match(r.err, pattern, args.join(' '));
      assert.match(r.err, /hint: \S/, `${args.join(' ')} gives a hint`);
      assert.doesNotMatch(r.err, /\n\s+at .*:\d+:\d+/, `${args.join(' ')}: no stack trace`);
    }
    // the good row alone passes
    writeFileSync(join(dir, 'good.csv'), 'image,label\nimgs/here.png,healthy\n');
    const ok = cli('dataset', 'check', join(dir, 'good.csv'), '--classes', 'healthy,tuberculosis');
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.out, /1 image\(s\), all present/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('de-identification: NIfTI/NRRD/JSON exported from a DICOM series contain no patient identifier or original UID', () => {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-cli-'));
  try {
    const expected = JSON.parse(readFileSync(join(FIX, 'dicom/expected.json'), 'utf8')) as { secrets: Record<string, string> };
    const series = join(FIX, 'dicom/series_oblique');
    const outputs: Buffer[] = [];
    for (const ext of ['nii.gz', 'nrrd', 'mha']) {
      const out = join(dir, `ct.${ext}`);
      const r = cli('convert', series, out);
      assert.equal(r.code, 0, r.err);
      const bytes = readFileSync(out);
      outputs.push(ext === 'nii.gz' ? gunzipSync(bytes) : bytes);
    }
    const info = cli('info', '--json', series);
    assert.equal(info.code, 0, info.err);
    outputs.push(Buffer.from(info.out));
    // Every instance UID in the source files (standard SOP class / transfer syntax UIDs under
    // 1.2.840.10008 identify no one and stay).
    const uids = new Set<string>();
    for (const f of ['IMG356a192b.dcm', 'IMG77de68da.dcm', 'IMG1b645389', 'IMGac3478d6']) {
      for (const m of readFileSync(join(series, f)).toString('latin1').matchAll(/\d+(?:\.\d+){4,}/g)) if (!m[0].startsWith('1.2.840.10008.')) uids.add(m[0]);
    }
    assert.ok(uids.size >= 6, `found ${uids.size} instance UIDs in the source`);
    const needles = [...Object.values(expected.secrets), ...uids];
    for (const [i, buf] of outputs.entries()) {
      const text = buf.toString('latin1');
      for (const s of needles) assert.ok(!text.includes(s), `output ${i} contains ${JSON.stringify(s)}`);
    }
    // and the identifiers really are in the source files (the test would be void otherwise)
    const src = readFileSync(join(series, 'IMG356a192b.dcm')).toString('latin1');
    assert.ok(src.includes(expected.secrets.PatientName!));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
