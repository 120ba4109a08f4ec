/**
 * Tuning the loop's fine-tune recipe on a **tuning seed** (77; the loop benchmark uses 31): one
 * loop round (0 steps) with the demo 3D models on 39 realistic phantoms at 40² (flare, lits, kits —
 * the benchmark's data at another seed) gives the merged labels (original > revised > pseudo) of a
 * round with 6 reviewed cases and a fixed held-out set of 12 cases (full truth); then fine-tunes of
 * each parent with several learning rates, step counts and pseudo-label weights run in one trainer
 * process (tools/train/train3d.py --jobs), every child and its parent judged on the same 12
 * held-out cases. Prints one line per model and recipe and writes OUT/TAG.json (env TAG, default
 * tune). Env RECIPES: a JSON list of {lr, steps, pseudo, share?} (share: train3d.py's revised_share).
 *
 * Run: `nice -n 10 node --import tsx bench/loop-tune.ts [OUT] [MODEL …]` (default OUT
 * /tmp/medmask-loop-tune, models: the demo U-Net).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { atlasLoop } from '../src/pipeline/atlas-loop.js';
import { writeAbdomenDataset } from '../src/pipeline/phantoms.js';

const ROOT = new URL('..', import.meta.url).pathname;
const out = process.argv[2] ?? '/tmp/medmask-loop-tune';
const tag = process.env.TAG ?? 'tune';
const models = (process.argv.length > 3 ? process.argv.slice(3) : ['demo-unet3d']).map((m) => join(ROOT, 'models/demo', m));
const data = join(out, 'data');
if (!existsSync(join(data, 'dataset.json'))) await writeAbdomenDataset(data, { n: 39, seed: 77, size: 40, sources: ['flare', 'lits', 'kits'], realistic: true });
const loop = join(out, 'loop');
const trainOf = (i: number, m: string) => join(loop, 'round-1', 'ft', `${i}-${basename(m)}`, 'train');
if (!existsSync(join(trainOf(0, models[0]!), 'dataset.json'))) {
  // One round, 0 steps: the merged labels (2 reviewed cases per source) and the held-out set.
  await atlasLoop(data, loop, { models, rounds: 1, fraction: 0.2, steps: 0, heldoutCases: 12, evalCases: 0, threads: 1, predictThreads: 1, crop: true, final: false, onProgress: (s) => console.error(s) });
}
const train = trainOf(0, models[0]!);
const heldout = join(loop, 'heldout');
const recipes = (process.env.RECIPES ? JSON.parse(process.env.RECIPES) : [
  { lr: 3e-4, steps: 20, pseudo: 0.5 },
  { lr: 3e-4, steps: 60, pseudo: 0.5 },
  { lr: 1e-3, steps: 60, pseudo: 0.5 },
  { lr: 3e-4, steps: 60, pseudo: 0 },
  { lr: 3e-4, steps: 60, pseudo: 1 },
  { lr: 1e-3, steps: 60, pseudo: 0 },
  { lr: 1e-3, steps: 120, pseudo: 0.5 },
  { lr: 3e-4, steps: 120, pseudo: 0 },
]) as { lr: number; steps: number; pseudo: number; share?: number }[];
const grid = models.flatMap((m) => recipes.map((r) => ({ model: basename(m), init: m, ...r })));
// The parents' held-out metrics, from the 0-step round (the trainer does not evaluate them again).
const parentHeldout = (i: number) => (JSON.parse(readFileSync(join(trainOf(i, models[i]!), '..', 'finetune-result.json'), 'utf8')) as { parentHeldout: unknown }).parentHeldout;
const jobs = grid.map((r, i) => ({ init: r.init, data: train, heldout, out: join(out, `children-${tag}`, String(i)), steps: r.steps, lr: r.lr, seed: 2, threads: 1, label_weights: `original=1,revised=1,pseudo=${r.pseudo}`, ...(r.share !== undefined ? { revised_share: r.share } : {}), parent_heldout: parentHeldout(models.indexOf(r.init)) }));
await writeFile(join(out, `${tag}-jobs.json`), JSON.stringify(jobs));
const t = spawnSync('/usr/bin/python3', [join(ROOT, 'tools/train/train3d.py'), '--jobs', join(out, `${tag}-jobs.json`)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26 });
if (t.status !== 0) throw new Error(`trainer failed: ${t.status}`);
const lines = t.stdout.trim().split('\n').filter((l) => l.startsWith('{"job"')).map((l) => JSON.parse(l) as { heldout: { mean_dice: number; n: number }; parent_heldout: { mean_dice: number }; train_seconds: number });
const rows = grid.map((r, i) => ({ model: r.model, lr: r.lr, steps: r.steps, pseudo: r.pseudo, share: r.share ?? null, child: lines[i]!.heldout.mean_dice, parent: lines[i]!.parent_heldout.mean_dice, n: lines[i]!.heldout.n, train_s: lines[i]!.train_seconds }));
for (const r of rows) console.log(`${r.model} lr ${r.lr} steps ${r.steps} pseudo ${r.pseudo} revised share ${r.share ?? 'uniform'}: held-out ${r.child.toFixed(4)} (parent ${r.parent.toFixed(4)}, ${r.n} cases) ${r.train_s} s`);
await writeFile(join(out, `${tag}.json`), JSON.stringify({ seed: 77, train: JSON.parse(readFileSync(join(train, 'dataset.json'), 'utf8')).numTraining, rows }, null, 1) + '\n');
