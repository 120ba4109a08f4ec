#!/usr/bin/env node
// System packages some tests need (Debian names): PostgreSQL for the server suite on a real
// database, redis-server for the BullMQ queue tests, chromium for the review UI's e2e tests, Orthanc
// with its DICOMweb plugin for the PACS (DICOMweb import, DICOM SEG push) tests.
//   node scripts/system-deps.mjs postgresql redis-server   install what is missing (as root, apt)
//   import { ensureSystemPackages } from './system-deps.mjs'  the same, from a test
// As root, a missing package is installed with `apt-get install -y` (after `apt-get update` when
// the first try fails). As another user nothing is installed: the error says exactly what to run.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function onPath(cmd) {
  return (process.env.PATH ?? '').split(':').some((d) => d && existsSync(join(d, cmd)));
}

/** The newest PostgreSQL server bin folder (Debian: /usr/lib/postgresql/<version>/bin), or undefined. */
export function postgresBinDir() {
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'pg_ctl'))).sort((a, b) => Number(b) - Number(a));
    if (versions.length) return join(root, versions[0], 'bin');
  }
  if (onPath('pg_ctl') && onPath('initdb') && onPath('postgres')) return '';
  return undefined;
}

/** Known packages: how to tell they are there, and the apt package that brings them. */
export const SYSTEM_PACKAGES = {
  postgresql: { apt: 'postgresql', present: () => postgresBinDir() !== undefined, what: 'PostgreSQL server binaries (initdb, pg_ctl, postgres)' },
  'redis-server': { apt: 'redis-server', present: () => onPath('redis-server') || existsSync('/usr/bin/redis-server'), what: 'redis-server' },
  chromium: { apt: 'chromium', present: () => existsSync('/usr/bin/chromium'), what: "Debian's Chromium (/usr/bin/chromium, for the review UI's browser tests)" },
  orthanc: { apt: 'orthanc', present: () => onPath('Orthanc') || existsSync('/usr/sbin/Orthanc'), what: 'the Orthanc DICOM server (/usr/sbin/Orthanc)' },
  'orthanc-dicomweb': { apt: 'orthanc-dicomweb', present: () => orthancDicomwebPlugin() !== undefined, what: "Orthanc's DICOMweb plugin (libOrthancDicomWeb.so)" },
  // The optional PyTorch training back-end (tools/train; fine-tune jobs and their tests).
  'python3-torch': { apt: 'python3-torch', present: () => pyImports('torch'), what: "Debian's PyTorch for /usr/bin/python3 (python3-torch)" },
  'python3-onnx': { apt: 'python3-onnx', present: () => pyImports('onnx'), what: 'onnx for /usr/bin/python3 (python3-onnx)' },
  // The corpus tier reads pydicom's and nibabel's own test files (and their fixture script uses the libraries).
  'python3-pydicom': { apt: 'python3-pydicom', present: () => existsSync('/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm'), what: "pydicom and its test files (the corpus tier)" },
  'python3-nibabel': { apt: 'python3-nibabel', present: () => existsSync('/usr/lib/python3/dist-packages/nibabel/tests/data/anatomical.nii'), what: "nibabel and its test data for /usr/bin/python3 (fine-tune jobs, the corpus tier)" },
};

/** Where Debian's orthanc-dicomweb puts the plugin (the first that exists), or undefined. */
export function orthancDicomwebPlugin() {
  return ['/usr/share/orthanc/plugins/libOrthancDicomWeb.so', '/usr/lib/orthanc/libOrthancDicomWeb.so'].find((p) => existsSync(p))
    ?? (existsSync('/usr/lib/orthanc') ? readdirSync('/usr/lib/orthanc').filter((f) => f.startsWith('libOrthancDicomWeb.so')).map((f) => join('/usr/lib/orthanc', f))[0] : undefined);
}

function pyImports(mod) {
  return existsSync('/usr/bin/python3') && spawnSync('/usr/bin/python3', ['-c', `import ${mod}`], { stdio: 'ignore' }).status === 0;
}

function isRoot() {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

function apt(args) {
  return spawnSync('apt-get', args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}

/** Serialise installs across parallel test processes (apt has its own lock, but fails instead of waiting). */
function withLock(fn) {
  const lock = join(tmpdir(), 'medmask-system-deps.lock');
  const t0 = Date.now();
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      try {
        if (Date.now() - statSync(lock).mtimeMs > 15 * 60_000) rmSync(lock, { recursive: true, force: true });
      } catch {}
      if (Date.now() - t0 > 15 * 60_000) throw new Error(`waited 15 min for ${lock}; remove it if no install is running`);
      execFileSync('sleep', ['1']);
    }
  }
  try {
    return fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/**
 * Make sure the named packages are installed.
 * @param {string[]} names keys of SYSTEM_PACKAGES
 * @returns {string[]} the packages installed now (empty when all were present)
 */
export function ensureSystemPackages(names) {
  for (const n of names) if (!SYSTEM_PACKAGES[n]) throw new Error(`unknown system package ${n}; known: ${Object.keys(SYSTEM_PACKAGES).join(', ')}`);
  const missing = () => names.filter((n) => !SYSTEM_PACKAGES[n].present());
  if (!missing().length) return [];
  const aptNames = () => missing().map((n) => SYSTEM_PACKAGES[n].apt);
  if (!isRoot()) {
    throw new Error(`these tests need ${missing().map((n) => SYSTEM_PACKAGES[n].what).join(' and ')}, which are not installed. Install them with:\n  sudo apt-get install -y ${aptNames().join(' ')}\n(or run the tests as root, and they are installed for you)`);
  }
  return withLock(() => {
    const todo = aptNames();
    if (!todo.length) return [];
    process.stderr.write(`system-deps: installing ${todo.join(' ')} with apt-get …\n`);
    let r = apt(['install', '-y', '--no-install-recommends', ...todo]);
    if (r.status !== 0) {
      process.stderr.write('system-deps: install failed; running apt-get update and trying again …\n');
      apt(['update']);
      r = apt(['install', '-y', '--no-install-recommends', ...todo]);
    }
    if (r.status !== 0 || missing().length) {
      throw new Error(`apt-get install -y ${todo.join(' ')} failed (exit ${r.status}):\n${(r.stderr || r.stdout || '').split('\n').slice(-15).join('\n')}`);
    }
    return todo;
  });
}

const isMain = process.argv[1] && new URL(`file://${process.argv[1]}`).href === import.meta.url;
if (isMain) {
  const names = process.argv.slice(2);
  try {
    const done = ensureSystemPackages(names.length ? names : Object.keys(SYSTEM_PACKAGES));
    console.log(done.length ? `installed ${done.join(' ')}` : 'all present');
  } catch (e) {
    console.error(`system-deps: ${e.message}`);
    process.exit(6);
  }
}
