/**
 * The 3D loop (issue 16): a simulated AbdomenAtlas campaign run for 3 rounds with the demo 3D
 * segmenters (src/pipeline/atlas-loop.ts): each round predicts every case, ranks by attention,
 * sends the top 5 % per source of the cases nobody reviewed yet to the simulated annotator, merges,
 * fine-tunes every model in PyTorch (warm start from its ONNX weights, tools/train/train3d.py
 * --init) and keeps a fine-tune only when its held-out Dice is not below its parent's; after the
 * last round the models predict once more. Figures: the mean Dice of the pseudo-labels on the
 * cases no round reviewed, per round (`rounds_dice`, the final re-prediction last) and the torch
 * training minutes per round (`round_train_minutes`), written into bench/out/loop.json beside the
 * keys other loop benchmarks put there. Full: the three demo models on 12 phantoms at 40² from three
 * sources (flare, lits, kits: 4 each; each round reviews at most 1 per source, the top 5 % rounded
 * up, so at least 3 cases are never reviewed), 20 steps per fine-tune (the same one-cycle schedule, compressed); `--quick`: the U-Net
 * only on 28 phantoms at 40² (all seven sources, 4 each: at least 7 cases never reviewed), 40 steps. Torch
 * and the ONNX predictions run on one thread each (two threads on two cores shared with other work
 * made the quick loop's steps 10–20× slower). The full set first planned (32 phantoms at 48², 40
 * steps) needs about 3× the CPU and did not fit a shared 2-core machine's hour (docs/atlas.md).
 * `rounds_load`: the machine's 1-minute load average, the mean of samples at each stage of the
 * round. Needs /usr/bin/python3 with Debian's python3-torch, python3-nibabel and python3-onnx.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { atomicWrite } from '../src/io/atomic.js';
import { atlasLoop } from '../src/pipeline/atlas-loop.js';
import { checkTrainer } from '../src/pipeline/atlas-train.js';
import { writeAbdomenDataset } from '../src/pipeline/phantoms.js';
import { defineBenchmark } from './run.js';

interface State {
  dir: string;
  data: string;
  models: string[];
  steps: number;
  figures: string;
  skip?: string;
}

const ROOT = new URL('..', import.meta.url).pathname;
const ALL = ['demo-unet3d', 'demo-resunet3d', 'demo-segresnet3d'].map((m) => join(ROOT, 'models/demo', m));

export default defineBenchmark<State>({
  description: '3D loop: 3 rounds of predict → attention → top 5 % per source reviewed (simulated) → merge → PyTorch fine-tune (warm start) → re-predict, demo 3D models',
  async setup(dir, quick) {
    try {
      checkTrainer();
    } catch (e) {
      return { dir, data: '', models: [], steps: 0, figures: '', skip: (e as Error).message };
    }
    // 4 cases per source: 3 rounds of at most 1 review per source leave at least 1 per source never reviewed.
    const data = join(dir, quick ? 'data-quick-28' : 'data-12-3src');
    if (!existsSync(join(data, 'dataset.json'))) await writeAbdomenDataset(data, quick ? { n: 28, seed: 31, size: 40 } : { n: 12, seed: 31, size: 40, sources: ['flare', 'lits', 'kits'] });
    return { dir, data, models: quick ? ALL.slice(0, 1) : ALL, steps: quick ? 40 : 20, figures: join(dir, quick ? 'figures-quick.json' : 'figures.json') };
  },
  cases: [
    {
      name: '3 rounds',
      baseline: true,
      repetitions: 1,
      warmup: false,
      async run({ state }) {
        const t0 = performance.now();
        const load: number[][] = [];
        const onProgress = (stage: string, round: number, note?: string) => {
          (load[round - 1] ??= []).push(loadavg()[0]!);
          console.error(`${new Date().toISOString().slice(11, 19)} round ${round}: ${stage}${note ? ` ${note}` : ''} (load ${loadavg()[0]!.toFixed(2)})`);
        };
        const loopDir = join(state.dir, state.models.length > 1 ? 'loop-full' : 'loop');
        const r = await atlasLoop(state.data, loopDir, { models: state.models, rounds: 3, fraction: 0.05, steps: state.steps, labelWeights: { pseudo: 0.5 }, threads: 1, predictThreads: 1, onProgress });
        const elapsedMs = performance.now() - t0;
        const figures = {
          // One fixed set of cases for every round: those no round reviewed.
          rounds_dice: [...r.rounds, r.final].map((x) => Number(x.unreviewedDice.toFixed(4))),
          rounds_dice_not_yet_reviewed: [...r.rounds, r.final].map((x) => Number(x.neverReviewedDice.toFixed(4))),
          round_train_minutes: r.rounds.map((x) => Number(x.trainMinutes.toFixed(2))),
          rounds_selected: r.rounds.map((x) => x.selected.length),
          rounds_expert_minutes: r.rounds.map((x) => x.expertMinutes),
          rounds_attention_sensitivity: [...r.rounds, r.final].map((x) => Number(x.attentionSensitivity.toFixed(4))),
          rounds_attention_precision: [...r.rounds, r.final].map((x) => Number(x.attentionPrecision.toFixed(4))),
          rounds_finetune: r.rounds.map((x) => x.finetune.map((f) => `${f.model}: ${f.decision} ${f.heldout.toFixed(3)}/${f.parentHeldout.toFixed(3)}`).join('; ')),
          rounds_finetune_heldout: r.rounds.map((x) => Object.fromEntries(x.finetune.map((f) => [f.model, { decision: f.decision, child: Number(f.heldout.toFixed(4)), parent: Number(f.parentHeldout.toFixed(4)), train_s: f.trainSeconds }]))),
          rounds_load: load.map((xs) => Number((xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(2))),
          loop_models: state.models.map((m) => m.split('/').pop()),
          loop_seconds: Number((elapsedMs / 1000).toFixed(1)),
        };
        await atomicWrite(state.figures, JSON.stringify(figures, null, 1) + '\n');
        // bench/out/loop.json: these keys beside those other loop benchmarks write (bench/run.ts keeps them).
        const out = join(ROOT, 'bench/out/loop.json');
        mkdirSync(join(ROOT, 'bench/out'), { recursive: true });
        const prev = existsSync(out) ? (JSON.parse(readFileSync(out, 'utf8')) as Record<string, unknown>) : {};
        await atomicWrite(out, JSON.stringify({ ...prev, ...figures }, null, 1) + '\n');
        return { elapsedMs };
      },
    },
  ],
  summarize(_results, state) {
    if (!existsSync(state.figures)) return {};
    const f = JSON.parse(readFileSync(state.figures, 'utf8')) as Record<string, unknown>;
    const cell = (x: unknown) => (typeof x === 'object' && x !== null ? JSON.stringify(x) : String(x));
    return Object.fromEntries(Object.entries(f).map(([k, v]) => [k, Array.isArray(v) ? v.map(cell).join(' | ') : (v as number | string)]));
  },
});
