// Third-party noise (ITK, GDCM, dcmjs) never reaches stderr on its own: a failing read prints one
// error line with its code (and the hint); `--verbose` — a global option, before or after the
// command — adds what the libraries said and the stack. MEDMASK_DEBUG=1 is an alias.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mha, nrrd } from '../helpers/hostile.js';
import { cli, ROOT } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'medmask-verbose-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

// zlib-declared MetaImage data that are not a zlib stream past its first two bytes: ITK prints "Uncompress failed".
const mhaPath = join(dir, 'bad-zlib.mha');
writeFileSync(mhaPath, mha({ CompressedData: 'True', CompressedDataSize: '22' }, Buffer.concat([Buffer.from([0x78, 0x9c]), Buffer.alloc(20, 0xee)])));
// hex-encoded NRRD data that are not hex digits: ITK's pipeline throws, and says so on stderr.
const nrrdPath = join(dir, 'bad-hex.nrrd');
writeFileSync(nrrdPath, nrrd({ encoding: 'hex' }, Buffer.from('zz'.repeat(48))));
// CT_small with a native PixelData of undefined length: dcmjs logs "Item tag not found…".
const dcmPath = join(dir, 'undef.dcm');
const ct = Buffer.from(readFileSync(join(ROOT, 'test/fixtures/dicom/single/ct_small.dcm')));
ct.writeUInt32LE(0xffffffff, ct.indexOf(Buffer.from([0xe0, 0x7f, 0x10, 0x00]), 132) + 8);
writeFileSync(dcmPath, ct);

const lines = (s: string) => s.split('\n').filter(Boolean);

test('without --verbose: one error line with the code and a hint, no third-party text of its own, no stack', () => {
  let mhaErr = '';
  for (const p of [mhaPath, nrrdPath, dcmPath]) {
    const r = cli('info', p);
    if (p === mhaPath) mhaErr = r.err;
    assert.equal(r.code, 3, r.err);
    const ls = lines(r.err);
    assert.equal(ls.length, 2, `${p}: ${r.err}`);
    assert.match(ls[0]!, /^medmask: error \[CORRUPT_FILE\]: /);
    assert.match(ls[1]!, /^ {2}hint: /);
  }
  assert.match(mhaErr, /ITK: Uncompress failed/, 'the first library line is folded into the one line');
});

test('--verbose (after or before the command) adds the captured library output and the stack; MEDMASK_DEBUG=1 is an alias', () => {
  const after = cli('info', mhaPath, '--verbose');
  assert.equal(after.code, 3);
  assert.match(after.err, /^ {2}third-party output:\n {4}Uncompress failed$/m);
  assert.match(after.err, /^ {2}stack:\n {4}MedmaskError: .*bad-zlib\.mha/m);
  assert.match(after.err, /^ {8}at /m);
  const before = cli('--verbose', 'info', nrrdPath);
  assert.equal(before.code, 3);
  assert.match(before.err, /^ {2}third-party output:\n {4}.*Exception while running pipeline/m);
  // The alias: MEDMASK_DEBUG=1 instead of the flag.
  const dcm = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/run.ts'), 'info', dcmPath], { encoding: 'utf8', cwd: ROOT, env: { ...process.env, MEDMASK_DEBUG: '1' } });
  assert.equal(dcm.status, 3);
  assert.match(dcm.stderr, /^ {2}DICOM parser \(dcmjs\) reported:\n {4}.*Item tag not found after undefined binary length/m);
  assert.match(dcm.stderr, /^ {2}stack:/m);
});
