/**
 * The 3D loop (issue 16): a simulated AbdomenAtlas campaign run for 3 rounds with the demo 3D
 * segmenters (src/pipeline/atlas-loop.ts): each round predicts every case, ranks by attention,
 * sends the top 5 % per source of the cases nobody reviewed yet to the simulated annotator, merges,
 * fine-tunes every model in PyTorch (warm start from its ONNX weights, tools/train/train3d.py
 * --init) and keeps a fine-tune only when its held-out Dice is not below its parent's; after the
 * last round the models predict once more. Figures: the mean Dice of the pseudo-labels on the
 * cases no round reviewed, per round (`rounds_dice`, the final re-prediction last) and the torch
 * training minutes per round (`round_train_minutes`), written into bench/out/loop.json beside the
 * keys other loop benchmarks put there. Full: 32 phantoms at 48² (8 per source: 1 reviewed per source and
 * round), three models, 40 steps per fine-tune; `--quick`: 28 phantoms at 40², the U-Net only, 40 steps. Needs /usr/bin/python3 with
 * Debian's python3-torch, python3-nibabel and python3-onnx.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
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
    // 28 quick cases: 4 per source, so 3 rounds of 1 review per source leave 7 cases no round reviewed.
    const data = join(dir, quick ? 'data-quick-28' : 'data');
    if (!existsSync(join(data, 'dataset.json'))) await writeAbdomenDataset(data, { n: quick ? 28 : 32, seed: 31, size: quick ? 40 : 48 });
    return { dir, data, models: quick ? ALL.slice(0, 1) : ALL, steps: 40, figures: join(dir, quick ? 'figures-quick.json' : 'figures.json') };
  },
  cases: [
    {
      name: '3 rounds',
      baseline: true,
      repetitions: 1,
      warmup: false,
      async run({ state }) {
        const t0 = performance.now();
        const r = await atlasLoop(state.data, join(state.dir, 'loop'), { models: state.models, rounds: 3, fraction: 0.05, steps: state.steps, labelWeights: { pseudo: 0.5 }, onProgress: (stage, round, note) => console.error(`round ${round}: ${stage}${note ? ` ${note}` : ''}`) });
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
    return Object.fromEntries(Object.entries(f).map(([k, v]) => [k, Array.isArray(v) ? v.join(' | ') : (v as number | string)]));
  },
});
