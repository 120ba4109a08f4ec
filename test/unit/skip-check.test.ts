/**
 * scripts/skip-check.mjs on the TAP that node's own test runner writes for a scratch test file
 * (nested suites, a `#` in a name, skips with and without reasons, a todo): only skips naming a
 * missing GPU pass, and output the check cannot account for is a failure.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
// @ts-expect-error plain ESM script without types
import { findSkips, skipProblems } from '../../scripts/skip-check.mjs';

const dir = mkdtempSync(join(tmpdir(), 'medmask-skipcheck-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Run node's test runner on `source` with the TAP reporter to a file, as scripts/test.mjs does. */
function tapOf(name: string, source: string): string {
  writeFileSync(join(dir, `${name}.test.mjs`), source);
  const tap = join(dir, `${name}.tap`);
  // without NODE_TEST_CONTEXT, which makes a runner started from inside a test report to its parent
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_TEST_CONTEXT'));
  spawnSync(process.execPath, ['--test', '--test-reporter=spec', '--test-reporter-destination=stdout', '--test-reporter=tap', `--test-reporter-destination=${tap}`, join(dir, `${name}.test.mjs`)], { encoding: 'utf8', env });
  return readFileSync(tap, 'utf8');
}

test('skips without a GPU reason are problems, GPU skips and todos are not', () => {
  const tap = tapOf('mixed', `import { test, describe } from 'node:test';
test('plain', () => {});
test('needs a # GPU', { skip: 'no CUDA device on this machine' }, () => {});
test('bare', { skip: true }, () => {});
describe('suite', () => {
  test('inner', (t) => t.skip('python3-numpy missing'));
  test('later', { todo: 'not written' }, () => {});
});
`);
  const { skipped, summarySkipped } = findSkips(tap) as ReturnType<typeof findSkips>;
  assert.equal(summarySkipped, 3);
  assert.deepEqual(skipped, [
    { name: 'needs a # GPU', reason: 'no CUDA device on this machine' },
    { name: 'bare', reason: '' },
    { name: 'inner', reason: 'python3-numpy missing' },
  ]);
  assert.deepEqual(skipProblems(tap), [
    'skipped without a missing GPU as the reason: "bare" (no reason given)',
    'skipped without a missing GPU as the reason: "inner" (python3-numpy missing)',
  ]);
});

test('a run with only a GPU skip passes; a summary the lines do not account for fails', () => {
  assert.deepEqual(skipProblems(tapOf('gpu', `import { test } from 'node:test';\ntest('a', () => {});\ntest('g', { skip: 'no GPU' }, () => {});\n`)), []);
  assert.match(skipProblems('ok 1 - x\n# skipped 2\n').join('\n'), /reports 2 skipped test\(s\), but 0 skip line/);
});
