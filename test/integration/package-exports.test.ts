/**
 * The public API as a user's project sees it: a scratch project with `medmask` in its
 * node_modules (a link to this repository, as `npm install ../medmask` makes it) imports
 * `medmask` and `medmask/core` **by name**, through package.json's `exports` and the built
 * `dist/` (run `npm run build` first; `npm ci` does it), in JavaScript and in TypeScript
 * (`moduleResolution: nodenext`, the declarations in dist/).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ROOT } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'medmask-consumer-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function newest(d: string): number {
  let t = 0;
  for (const n of readdirSync(d)) {
    const p = join(d, n);
    const s = statSync(p);
    t = Math.max(t, s.isDirectory() ? newest(p) : s.mtimeMs);
  }
  return t;
}

before(() => {
  assert.ok(existsSync(join(ROOT, 'dist/index.js')) && existsSync(join(ROOT, 'dist/core/index.d.ts')), 'dist/ is missing: run `npm run build`');
  assert.ok(statSync(join(ROOT, 'dist/index.js')).mtimeMs >= newest(join(ROOT, 'src')) - 1000, 'dist/ is older than src/: run `npm run build`');
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(ROOT, join(dir, 'node_modules', 'medmask'), 'dir');
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies: { medmask: 'file:../medmask' } }));
});

const CONSUMER = `
import * as medmask from 'medmask';
import { MaskEditor, chestPhantom, windowLevel } from 'medmask/core';
const names = ['readVolume', 'writeVolume', 'voxelToRas', 'annotate', 'collectItems', 'fitOod', 'evaluateRun', 'writeReport',
  'trainHead', 'atlasRun', 'runDemo', 'runExplain', 'loadEnsemble', 'ClassifierSession', 'createServer', 'openStore',
  'FsBlobStore', 'InProcessQueue', 'MaskEditor'];
const missing = names.filter((n) => typeof medmask[n] !== 'function');
// the viewer's editor from medmask/core: a brush dot on a 32 x 32 plane, then undo
const ed = new MaskEditor([32, 32, 1]);
const labels = new Uint8Array(32 * 32);
ed.begin('brush');
ed.brush({ axis: 'z', index: 0, labels }, { x: 10.5, y: 12.5 }, { x: 10.5, y: 12.5 }, 3, { value: 2 });
ed.end();
const painted = labels.reduce((n, v) => n + (v === 2 ? 1 : 0), 0);
const centre = labels[10 + 32 * 12];
const far = labels[25 + 32 * 25];
// a server from the package's own parts answers /health
const store = await medmask.openStore(':memory:');
const blobDir = process.argv[2];
const app = await medmask.createServer({ store, blobs: new medmask.FsBlobStore(blobDir), queue: new medmask.InProcessQueue(), runJobs: false });
const health = await app.inject({ url: '/health' });
await app.close();
await store.close?.();
let deep = 'importable';
try { await import('medmask/dist/pipeline/annotate.js'); } catch (e) { deep = e.code; }
console.log(JSON.stringify({ missing, painted, centre, far, edits: ed.edits.size, health: health.statusCode, deep,
  phantom: chestPhantom({ seed: 1, size: 64, label: 'nodule' }).image.length, wl: typeof windowLevel }));
`;

test('a scratch project imports medmask and medmask/core by name and uses them', () => {
  writeFileSync(join(dir, 'main.mjs'), CONSUMER);
  const r = spawnSync(process.execPath, ['main.mjs', join(dir, 'blobs')], { cwd: dir, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
  assert.deepEqual(out.missing, [], 'every documented export is a function');
  assert.equal(out.centre, 2);
  assert.equal(out.far, 0);
  assert.ok((out.painted as number) >= 25 && (out.painted as number) <= 37, `a radius-3 dot: ${out.painted} pixels (π r² ≈ 28)`);
  assert.equal(out.edits, out.painted, 'every painted pixel is an edit');
  assert.equal(out.health, 200);
  assert.equal(out.deep, 'ERR_PACKAGE_PATH_NOT_EXPORTED', 'only the documented entry points are reachable');
  assert.equal(out.phantom, 64 * 64);
  assert.equal(out.wl, 'function');
});

test('TypeScript resolves the types of both entry points by name (nodenext)', () => {
  writeFileSync(join(dir, 'typed.ts'), `import { annotate, atlasRun, trainHead, createServer, readVolume, type AnnotateOptions } from 'medmask';
import { MaskEditor, type Volume } from 'medmask/core';
const opts: Pick<AnnotateOptions, 'out'> = { out: 'run' };
const ed: MaskEditor = new MaskEditor([4, 4, 1]);
export const used: unknown[] = [annotate, atlasRun, trainHead, createServer, readVolume, opts, ed];
export type V = Volume;
// @ts-expect-error the editor takes a 3-D shape
new MaskEditor('not a shape');
`);
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, noEmit: true, skipLibCheck: true, types: [] }, files: ['typed.ts'] }));
  const r = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], { cwd: dir, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});
