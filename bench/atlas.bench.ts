/**
 * The atlas workflow on one CT-sized abdominal phantom (512 × 512 in plane, ≈ 0.7 mm pixels,
 * ≈ 1 mm slices: about 512 × 512 × 230): resampling to a model's spacing (the baseline), the
 * sliding-window inference of each 3D demo model in models/demo/ (to its label map on the original
 * grid), and the attention maps of 9 organs × 3 models plus the case priority on the original grid.
 * `--quick` uses 256 × 256 in plane.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { abdomenPhantom, ORGANS, organLabel } from '../src/core/phantom/abdomen.js';
import { gridAtSpacing, resampleToGrid } from '../src/core/atlas/resample.js';
import { organAttention } from '../src/core/atlas/attention.js';
import { binaryDilation, binaryErosion } from '../src/core/atlas/morphology.js';
import { casePriority } from '../src/core/atlas/ranking.js';
import { readVolume, writeVolume } from '../src/io/index.js';
import { Segmenter } from '../src/runtime/segment.js';
import { defineBenchmark } from './run.js';

interface State {
  ct: string;
  truth: string;
  shape: number[];
  spacing: number[];
  models: string[];
}

const MODELS = new URL('../models/demo/', import.meta.url).pathname;
const segmenters = (): string[] => (existsSync(MODELS) ? readdirSync(MODELS).filter((d) => existsSync(join(MODELS, d, 'model.json')) && /3d/.test(d)).sort() : []);

export default defineBenchmark<State>({
  description: 'atlas: resample, sliding-window inference per demo 3D model, attention (9 organs × 3 models) + priority, on a 512² × ~230 abdominal CT phantom',
  repetitions: 3,
  async setup(dir, quick) {
    const size = quick ? 256 : 512;
    const ct = join(dir, `ct-${size}.nii.gz`), truth = join(dir, `truth-${size}.nii.gz`);
    if (!existsSync(ct) || !existsSync(truth)) {
      const p = abdomenPhantom({ seed: 7, size, source: 'btcv' });
      await writeVolume(p.image, ct);
      await writeVolume(p.truth, truth, { labelMap: true });
    }
    const v = await readVolume(ct);
    return { ct, truth, shape: [...v.shape], spacing: [...v.spacing], models: segmenters() };
  },
  cases: [
    {
      name: 'resample to 4×4×6 mm',
      baseline: true,
      async run({ state }) {
        const ct = await readVolume(state.ct);
        const t0 = performance.now();
        resampleToGrid(ct.data as Int16Array, ct, gridAtSpacing(ct, [4, 4, 6]));
        return { elapsedMs: performance.now() - t0 };
      },
    },
    ...['demo-unet3d', 'demo-resunet3d', 'demo-segresnet3d'].map((m) => ({
      name: `sliding window ${m}`,
      repetitions: 2,
      skip: (s: State) => (s.models.includes(m) ? undefined : `models/demo/${m} is not there`),
      async run({ state }: { state: State }) {
        const ct = await readVolume(state.ct);
        const seg = await Segmenter.load(join(MODELS, m), { threads: 2 });
        const t0 = performance.now();
        const pred = await seg.predict(ct, { batch: 2 });
        pred.labelMap();
        const ms = performance.now() - t0;
        await seg.release();
        return { elapsedMs: ms };
      },
    })),
    {
      name: 'attention 9 organs × 3 models + priority',
      repetitions: 2,
      async run({ state }) {
        // Three "models": the truth, the truth eroded twice, the truth dilated twice (per organ,
        // uint8 probabilities), so every organ has a disagreement shell; only the attention and
        // the priority are timed.
        const truth = await readVolume(state.truth);
        const d = truth.data as Uint8Array;
        const n = d.length;
        let ms = 0;
        const organs = [];
        for (const o of ORGANS) {
          const l = organLabel(o);
          const mask = new Uint8Array(n);
          for (let v = 0; v < n; v++) mask[v] = d[v] === l ? 1 : 0;
          const er = binaryErosion(mask, truth.shape, { iterations: 2 });
          const di = binaryDilation(mask, truth.shape, { iterations: 2 });
          for (const a of [mask, er, di]) for (let v = 0; v < n; v++) a[v] = a[v]! * 255;
          const t0 = performance.now();
          const att = organAttention([mask, er, di], truth.shape, null);
          ms += performance.now() - t0;
          organs.push({ organ: o, voxels: att.voxels, heatSum: att.heatSum, labelled: o === 'liver' });
        }
        const t1 = performance.now();
        casePriority(organs);
        return { elapsedMs: ms + performance.now() - t1 };
      },
    },
  ],
  summarize(results, state) {
    const get = (name: string) => results.find((r) => r.name === name);
    const out: Record<string, number | string | null> = { ct_shape: state.shape.join('×'), ct_spacing_mm: state.spacing.map((s) => s.toFixed(3)).join('×') };
    for (const m of ['demo-unet3d', 'demo-resunet3d', 'demo-segresnet3d']) {
      const r = get(`sliding window ${m}`);
      out[`${m}_seconds`] = r ? +(r.medianMs / 1000).toFixed(2) : null;
      out[`${m}_peak_rss_mb`] = r ? Math.round(r.peakRssMiB) : null;
    }
    const a = get('attention 9 organs × 3 models + priority');
    out.attention_seconds_per_case = a ? +(a.medianMs / 1000).toFixed(2) : null;
    out.attention_peak_rss_mb = a ? Math.round(a.peakRssMiB) : null;
    out.peak_rss_mb = Math.round(Math.max(...results.map((r) => r.peakRssMiB)));
    return out;
  },
});
