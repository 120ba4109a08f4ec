#!/usr/bin/env node
// Runs medmask's test suite with node's own test runner (TypeScript through tsx).
//   node scripts/test.mjs            all tiers: type check, unit, integration, e2e
//   node scripts/test.mjs unit       one tier (unit | integration | fuzz | corpus | e2e)
// Tests that need system packages install them first via scripts/system-deps.mjs (as root, with
// apt) or fail with a message naming the package.
// A skipped test fails the run unless its reason names a missing GPU (scripts/skip-check.mjs reads
// a TAP copy of the run that node's runner writes beside the spec output).
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { skipProblems } from './skip-check.mjs';

const root = new URL('..', import.meta.url).pathname;
const tiers = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const selected = tiers.length ? tiers : ['unit', 'integration', 'fuzz', 'corpus', 'e2e'];

function find(dir) {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (name === 'fixtures' || name === 'node_modules') continue;
    if (statSync(p).isDirectory()) out.push(...find(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out.sort();
}

function run(cmd, args) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, env: process.env });
  if (r.error) throw r.error;
  return r.status ?? 1;
}

if (!tiers.length) {
  console.log('== type check (tsc --noEmit) ==');
  if (run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json', '--noEmit']) !== 0) process.exit(1);
  if (run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'src/core/tsconfig.json']) !== 0) {
    console.error('src/core must stay pure (no Node APIs): see src/core/README.md');
    process.exit(1);
  }
  if (run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'web/tsconfig.json']) !== 0) process.exit(1); // the review UI (DOM types)
}
const files = selected.flatMap((t) => find(join(root, 'test', t)));
if (!files.length) {
  console.error(`no test files found for ${selected.join(', ')}`);
  process.exit(1);
}
console.log(`== ${files.length} test files (${selected.join(', ')}) ==`);
const tapDir = mkdtempSync(join(tmpdir(), 'medmask-test-'));
const tap = join(tapDir, 'run.tap');
let status;
let problems;
try {
  status = run(process.execPath, [
    '--import', 'tsx', '--test',
    '--test-reporter=spec', '--test-reporter-destination=stdout',
    '--test-reporter=tap', `--test-reporter-destination=${tap}`,
    ...files.map((f) => f.slice(root.length)),
  ]);
  problems = existsSync(tap) ? skipProblems(readFileSync(tap, 'utf8')) : ['the test runner wrote no TAP output to check for skipped tests'];
} finally {
  rmSync(tapDir, { recursive: true, force: true });
}
if (problems.length) {
  console.error(`\n== ${problems.length} skip problem(s): a test may only be skipped for a missing GPU ==`);
  for (const p of problems) console.error(`  ${p}`);
  process.exit(status || 1);
}
process.exit(status);
