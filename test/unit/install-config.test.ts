/**
 * Install configuration (issue 14 §6): no project config npm does not know (npm 11 warns about one
 * on every `npx medmask`), onnxruntime-node's post-install step (CUDA libraries downloaded from
 * outside the npm registry) denied through package.json's allowScripts (npm ≥ 11.16), and the
 * switch `.ci/run` sets for older npm still read by the installed onnxruntime-node's install script.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../helpers/cli.js';

test('npm reads the project without an "Unknown project config" warning', () => {
  const r = spawnSync('npm', ['config', 'get', 'registry'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /Unknown (project|user|cli) config/);
});

test('onnxruntime-node\'s install step is denied by allowScripts; the README says what npm 10 needs (ONNXRUNTIME_NODE_INSTALL=skip)', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { allowScripts: Record<string, boolean> };
  assert.equal(pkg.allowScripts['onnxruntime-node'], false);
  // every dependency with an install script in the lock file has a decision (npm 11 warns otherwise, npm 12 blocks)
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { hasInstallScript?: boolean }> };
  const withScripts = Object.entries(lock.packages).filter(([, v]) => v.hasInstallScript).map(([k]) => k.split('node_modules/').at(-1)!);
  assert.deepEqual(withScripts.filter((n) => !(n in pkg.allowScripts)), []);
  // .ci/run runs the README's test command verbatim (npm here applies allowScripts); npm 10 users set the variable, as the README says.
  assert.match(readFileSync(join(ROOT, '.ci/run'), 'utf8'), /^npm ci && npm test$/m);
  assert.match(readFileSync(join(ROOT, 'README.md'), 'utf8'), /ONNXRUNTIME_NODE_INSTALL=skip/);
  const script = join(ROOT, 'node_modules/onnxruntime-node/script/install-utils.js');
  assert.ok(existsSync(script), script);
  assert.match(readFileSync(script, 'utf8'), /process\.env\.ONNXRUNTIME_NODE_INSTALL/);
  assert.match(readFileSync(script, 'utf8'), /case 'skip':\s*return false/);
});
