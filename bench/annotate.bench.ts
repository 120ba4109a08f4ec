/**
 * The whole `medmask annotate` on the demo zoo (three classifiers) over chest phantoms at 256²:
 * bare backbone passes (read + preprocess + onnxruntime, the floor) against the full pipeline
 * without MC and with head MC T = 20 (XGrad-CAM of the agreeing models, fusion, constraints,
 * uncertainty, OOD, writing masks / heat maps / results). Images/s = images ÷ median time. The
 * share of time per stage of the last MC run goes to bench/out/annotate-stages.json.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { annotate, collectItems } from '../src/pipeline/annotate.js';
import { CHEST_PHANTOM_PIPELINE } from '../src/core/masks/pipeline.js';
import { loadEnsemble, releaseEnsemble, runModel } from '../src/pipeline/ensemble.js';
import { writeChestDataset } from '../src/pipeline/phantoms.js';
import { readVolume } from '../src/io/index.js';
import { DEMO_CLASSIFIERS } from '../src/pipeline/demo.js';
import { defineBenchmark } from './run.js';

interface State {
  data: string;
  models: string[];
  images: number;
  work: string;
}

const ROOT = new URL('..', import.meta.url).pathname;

async function items(s: State) {
  return collectItems(s.data, { labels: join(s.data, 'labels.csv'), roiColumn: 'lungs', labelColumn: 'presence' });
}

async function runAnnotate(s: State, mc: number): Promise<number> {
  const out = join(s.work, `run-mc${mc}`);
  const r = await annotate({ models: s.models, items: await items(s), out, mcSamples: mc, fresh: true, pipeline: CHEST_PHANTOM_PIPELINE });
  if (mc) {
    const total = Object.values(r.stageSeconds).reduce((a, b) => a + b, 0);
    const shares = Object.fromEntries(Object.entries(r.stageSeconds).map(([k, v]) => [k, +(v / total).toFixed(3)]));
    mkdirSync(join(ROOT, 'bench/out'), { recursive: true });
    writeFileSync(join(ROOT, 'bench/out/annotate-stages.json'), JSON.stringify({ images: s.images, mcSamples: mc, seconds: r.stageSeconds, shares, imagesPerSecond: r.imagesPerSecond }, null, 1) + '\n');
  }
  return r.done;
}

export default defineBenchmark<State>({
  description: 'annotate over chest phantoms (256², 3 classifiers): bare forwards vs full pipeline without MC and with head MC T=20',
  repetitions: 3,
  setup: async (dir, quick) => {
    const n = quick ? 12 : 40;
    const data = join(dir, `chest-v2-${n}`);
    if (!existsSync(join(data, 'labels.csv'))) await writeChestDataset(data, { n, seed: 4242, size: 256, oodFraction: 0 });
    const models = DEMO_CLASSIFIERS.map((m) => join(ROOT, m));
    const missing = models.filter((m) => !existsSync(join(m, 'model.json')));
    if (missing.length) throw new Error(`the demo zoo is missing (${missing.join(', ')}); it is committed under models/demo — rebuild it with /usr/bin/python3 tools/train/build_zoo.py`);
    return { data, models, images: n, work: join(dir, 'work') };
  },
  cases: [
    {
      name: 'forwards only',
      baseline: true,
      run: async ({ state }) => {
        const ens = await loadEnsemble(state.models);
        try {
          let n = 0;
          for (const it of await items(state)) {
            const vol = await readVolume(it.path);
            for (const m of ens) n += (await runModel(m, vol)).logits.length;
          }
          return n;
        } finally {
          await releaseEnsemble(ens);
        }
      },
    },
    { name: 'annotate, no MC', run: ({ state }) => runAnnotate(state, 0) },
    { name: 'annotate, MC 20', run: ({ state }) => runAnnotate(state, 20) },
  ],
});
