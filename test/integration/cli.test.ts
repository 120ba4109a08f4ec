import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildProgram } from '../../src/cli/main.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const FIX = join(ROOT, 'test/fixtures');

/** Run the CLI from source in a child process, as a user would (exit code, stdout, stderr). */
export function cli(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/run.ts'), ...args], { encoding: 'utf8', cwd: ROOT });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

test('every subcommand has --help', () => {
  const names = buildProgram().commands.map((c) => c.name());
  assert.ok(names.includes('info') && names.includes('convert'), names.join(','));
  for (const name of names) {
    const r = cli(name, '--help');
    assert.equal(r.code, 0, `${name} --help: ${r.err}`);
    assert.match(r.out, new RegExp(`Usage: medmask ${name}`));
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
