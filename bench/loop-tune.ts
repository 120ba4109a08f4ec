/**
 * Tuning the loop's fine-tune recipe on a **tuning seed** (77; the loop benchmark uses 31): one
 * loop round with the demo U-Net on 27 phantoms at 40² (flare, lits, kits), its merged labels
 * (original > revised > pseudo), then fine-tunes of the same parent with several learning rates,
 * step counts and pseudo-label weights in one trainer process (tools/train/train3d.py --jobs),
 * every child and the parent judged on the same 12 held-out cases (full truth). Prints one line per
 * recipe and writes OUT/tune.json.
 *
 * Run: `nice -n 10 node --import tsx bench/loop-tune.ts [OUT]` (default /tmp/medmask-loop-tune).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { atlasLoop } from '../src/pipeline/atlas-loop.js';
import { writeAbdomenDataset } from '../src/pipeline/phantoms.js';

const ROOT = new URL('..', import.meta.url).pathname;
const out = process.argv[2] ?? '/tmp/medmask-loop-tune';
const data = join(out, 'data');
const unet = join(ROOT, 'models/demo/demo-unet3d');
if (!existsSync(join(data, 'dataset.json'))) await writeAbdomenDataset(data, { n: 27, seed: 77, size: 40, sources: ['flare', 'lits', 'kits'] });
const loop = join(out, 'loop');
if (!existsSync(join(loop, 'round-1', 'ft', '0-demo-unet3d', 'train', 'dataset.json'))) {
  // One round, 0 steps: the merged labels and the held-out set, the parent exported as is.
  await atlasLoop(data, loop, { models: [unet], rounds: 1, fraction: 0.1, steps: 0, heldoutCases: 12, evalCases: 6, threads: 1, predictThreads: 1, crop: true, final: false, onProgress: (s) => console.error(s) });
}
const train = join(loop, 'round-1', 'ft', '0-demo-unet3d', 'train');
const heldout = join(loop, 'heldout');
const recipes = [
  { lr: 3e-4, steps: 20, pseudo: 0.5 },
  { lr: 3e-4, steps: 40, pseudo: 0.5 },
  { lr: 1e-3, steps: 20, pseudo: 0.5 },
  { lr: 1e-4, steps: 40, pseudo: 0.5 },
  { lr: 3e-4, steps: 20, pseudo: 1 },
  { lr: 3e-4, steps: 20, pseudo: 0.25 },
];
const jobs = recipes.map((r, i) => ({ init: unet, data: train, heldout, out: join(out, 'children', String(i)), steps: r.steps, lr: r.lr, seed: 2, threads: 1, label_weights: `original=1,revised=1,pseudo=${r.pseudo}` }));
await writeFile(join(out, 'jobs.json'), JSON.stringify(jobs));
const t = spawnSync('/usr/bin/python3', [join(ROOT, 'tools/train/train3d.py'), '--jobs', join(out, 'jobs.json')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26 });
if (t.status !== 0) throw new Error(`trainer failed: ${t.status}`);
const lines = t.stdout.trim().split('\n').filter((l) => l.startsWith('{"job"')).map((l) => JSON.parse(l) as { heldout: { mean_dice: number; n: number }; parent_heldout: { mean_dice: number }; train_seconds: number });
const rows = recipes.map((r, i) => ({ ...r, child: lines[i]!.heldout.mean_dice, parent: lines[i]!.parent_heldout.mean_dice, n: lines[i]!.heldout.n, train_s: lines[i]!.train_seconds }));
for (const r of rows) console.log(`lr ${r.lr} steps ${r.steps} pseudo ${r.pseudo}: held-out ${r.child.toFixed(4)} (parent ${r.parent.toFixed(4)}, ${r.n} cases) ${r.train_s} s`);
await writeFile(join(out, 'tune.json'), JSON.stringify({ seed: 77, train: JSON.parse(readFileSync(join(train, 'dataset.json'), 'utf8')).numTraining, rows }, null, 1) + '\n');
