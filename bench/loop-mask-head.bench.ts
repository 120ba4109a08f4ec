/**
 * The 2D loop of issue 16: mask heads trained from reviewed masks (the phantom truth as a
 * simulated expert) on the demo zoo's three classifiers, fused into `annotate`. Figures:
 * mean lesion Dice on held-out phantoms (seeds nothing was tuned on) with 0, 10, 25 and 50
 * reviewed masks, with the 95 % interval of the mean, and the time to train the three heads from
 * 50 reviewed masks (backbone passes included, no cache). The Dice figures and the training time
 * are merged into `bench/out/loop.json` (`mask_head_dice`, `mask_head_dice_ci95`, the paired
 * gain over 0 masks `mask_head_gain_ci95` — all three over the pooled held-out set —,
 * `mask_head_dice_by_seed` / `mask_head_dice_by_seed_ci95` (per held-out seed and N),
 * `mask_head_dice_linear_25` for the first pass's fusion rule, `mask_head_train_s_50`) beside the
 * keys the 3D loop benchmark writes there.
 *
 * The reviewed masks are the first N lesion images of a pool seed (6161); the fusion weight and
 * the hypercolumn layers (train-mask-head's default `--layers auto`) were chosen on seed 5555, the
 * chest pipeline's `head-cut` level (0.3), `prune-thin` fraction (0.6) and `grow-bright` (1 px,
 * median) on seeds 5555, 7777 and 4242. The held-out set (pre-registered in the seventh pass, before
 * any measurement on it): every lesion image of seeds 880013, 880101, 880202 and 880303, 200
 * phantoms each, pooled — one 127-image seed gave a ±0.03 interval, and 880013 alone is a hard
 * seed (0.765 with the CAMs alone against 0.819 on the tuning seeds), so it stays visible in
 * `mask_head_dice_by_seed`. `--quick`: 60 phantoms of seed 880101, N = 0 and 25.
 */
import { existsSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { CHEST_PHANTOM_PIPELINE } from '../src/core/masks/pipeline.js';
import { DEFAULT_MASK_HEAD_FUSION, type MaskHeadFusion } from '../src/core/train/mask-head.js';
import { dice } from '../src/core/metrics/segmentation.js';
import { readVolume } from '../src/io/index.js';
import { annotate, collectItems, type AnnotateItem } from '../src/pipeline/annotate.js';
import { DEMO_CLASSIFIERS } from '../src/pipeline/demo.js';
import { readResults } from '../src/pipeline/evaluate.js';
import { writeChestDataset } from '../src/pipeline/phantoms.js';
import { trainMaskHead, type MaskPair, type TrainMaskHeadOptions } from '../src/pipeline/train-mask-head.js';
import { mergeLoopJson } from './loop-json.js';
import { defineBenchmark } from './run.js';

/** Inputs of the benchmark. */
export interface LoopState {
  pool: string;
  /** The held-out phantom sets, one per seed, pooled for the figures. */
  heldOut: { seed: number; dir: string }[];
  models: string[];
  work: string;
  counts: number[];
}

const ROOT = new URL('..', import.meta.url).pathname;
/** The held-out seeds (pre-registered in the seventh pass, before any measurement on them). */
export const HELD_OUT_SEEDS = [880013, 880101, 880202, 880303] as const;
/** Training timings of this child process's repetitions. */
const timings: { wall: number; cpu: number; load: number }[] = [];

/** The first `n` lesion images of a phantom set, as reviewed masks (truth = the simulated expert). */
export function reviewedPairs(dir: string, n: number): MaskPair[] {
  const lines = readFileSync(join(dir, 'labels.csv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split(','));
  return lines.filter((c) => c[1] !== 'healthy').slice(0, n).map((c) => ({ image: join(dir, c[0]!), mask: join(dir, c[3]!), roi: join(dir, c[4]!) }));
}

/** Train one mask head per model on the pairs; returns the head folders. */
export async function trainHeads(models: readonly string[], pairs: MaskPair[], out: string, opts: { cache?: string | false; layers?: TrainMaskHeadOptions['layers'] } = {}): Promise<string[]> {
  const dirs: string[] = [];
  for (const [k, m] of models.entries()) {
    const dir = join(out, `head-${k}`);
    await trainMaskHead({ model: m, pairs, out: dir, cache: opts.cache ?? false, seed: 0, ...(opts.layers ? { layers: opts.layers } : {}) });
    dirs.push(dir);
  }
  return dirs;
}

/** Lesion Dice per lesion image of an annotate run against the phantom truth. */
export async function lesionDice(run: string, data: string): Promise<number[]> {
  const out: number[] = [];
  for (const r of await readResults(run)) {
    if (r.status !== 'ok' || r.label === 'healthy' || !r.mask) continue;
    const stem = r.image.split('/').pop()!;
    const a = await readVolume(join(run, r.mask));
    const t = await readVolume(join(data, 'masks', stem));
    out.push(dice(Uint8Array.from(a.data as ArrayLike<number>, (v) => (v ? 1 : 0)), Uint8Array.from(t.data as ArrayLike<number>, (v) => (v ? 1 : 0))));
  }
  return out;
}

/** Items of a phantom set (lesion images only when asked), binary labels as the demo zoo's. */
export async function phantomItems(data: string, lesionOnly: boolean): Promise<AnnotateItem[]> {
  const items = await collectItems(data, { labels: join(data, 'labels.csv'), roiColumn: 'lungs', labelColumn: 'presence' });
  return lesionOnly ? items.filter((i) => i.label !== 'healthy') : items;
}

/** Mean and 95 % interval of the mean (normal approximation). */
export function meanCi(xs: readonly number[]): { mean: number; ci95: [number, number] } {
  const n = xs.length;
  const m = xs.reduce((a, b) => a + b, 0) / n;
  const sd = Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / Math.max(1, n - 1));
  const h = 1.96 * sd / Math.sqrt(n);
  return { mean: m, ci95: [m - h, m + h] };
}

/** Annotate `items` with the given heads (none = CAMs alone) and return the lesion Dice values. */
export async function diceWith(state: { models: string[] }, items: AnnotateItem[], data: string, out: string, heads: string[], weight?: number, fusion?: MaskHeadFusion): Promise<number[]> {
  await annotate({ models: state.models, items, out, mcSamples: 0, fresh: true, pipeline: CHEST_PHANTOM_PIPELINE, maskHeads: heads, ...(weight !== undefined ? { maskHeadWeight: weight } : {}), ...(fusion ? { maskHeadFusion: fusion } : {}) });
  return lesionDice(out, data);
}

/** The chest pipeline's `head-cut` level (null without one). */
function headCut(): number | null {
  for (const c of CHEST_PHANTOM_PIPELINE.constraints) if (c.op === 'head-cut') return c.below;
  return null;
}

/** The chest pipeline's `prune-thin` fraction (null without one). */
function pruneThinFraction(): number | null {
  for (const c of CHEST_PHANTOM_PIPELINE.constraints) if (c.op === 'prune-thin') return c.fraction;
  return null;
}

export default defineBenchmark<LoopState>({
  description: 'mask heads from reviewed masks (demo zoo, chest phantoms): held-out lesion Dice (four seeds pooled) with 0/10/25/50 reviewed masks, and the time to train three heads from 50',
  repetitions: 3,
  setup: async (dir, quick) => {
    const pool = join(dir, 'pool-6161');
    if (!existsSync(join(pool, 'labels.csv'))) await writeChestDataset(pool, { n: 100, seed: 6161, size: 256, oodFraction: 0 });
    const n = quick ? 60 : 200;
    const heldOut = (quick ? [880101] : [...HELD_OUT_SEEDS]).map((seed) => ({ seed, dir: join(dir, `heldout-${seed}-${n}`) }));
    for (const h of heldOut) if (!existsSync(join(h.dir, 'labels.csv'))) await writeChestDataset(h.dir, { n, seed: h.seed, size: 256, oodFraction: 0 });
    const models = DEMO_CLASSIFIERS.map((m) => join(ROOT, m));
    return { pool, heldOut, models, work: join(dir, 'work'), counts: quick ? [0, 25] : [0, 10, 25, 50] };
  },
  cases: [
    {
      name: 'train 3 heads, 50 masks',
      baseline: true,
      run: async ({ state }) => {
        const t0 = performance.now();
        const c0 = process.cpuUsage();
        await trainHeads(state.models, reviewedPairs(state.pool, 50), join(state.work, 'timing'));
        const s = (performance.now() - t0) / 1000;
        const c = process.cpuUsage(c0);
        // wall time, and the CPU time of this process (less sensitive to other load on the machine);
        // the medians over the repetitions so far (warm-up included) go to loop.json
        timings.push({ wall: s, cpu: (c.user + c.system) / 1e6, load: loadavg()[0]! });
        const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
        await mergeLoopJson({
          mask_head_train_s_50: +med(timings.map((t) => t.wall)).toFixed(2),
          mask_head_train_cpu_s_50: +med(timings.map((t) => t.cpu)).toFixed(2),
          mask_head_train_load: +med(timings.map((t) => t.load)).toFixed(1),
        });
        return { elapsedMs: s * 1000 };
      },
    },
    {
      name: 'held-out Dice vs reviewed masks',
      repetitions: 1,
      warmup: false,
      run: async ({ state }) => {
        const t0 = performance.now();
        const sets = await Promise.all(state.heldOut.map(async (h) => ({ ...h, items: await phantomItems(h.dir, true) })));
        const images = sets.reduce((a, h) => a + h.items.length, 0);
        const r4 = (x: number) => +x.toFixed(4);
        const dices: Record<string, number> = {};
        const ci: Record<string, [number, number]> = {};
        const bySeed: Record<string, Record<string, number>> = {};
        const bySeedCi: Record<string, Record<string, [number, number]>> = {};
        // per N, the lesion Dice of every held-out image, seeds in order (the pooled set)
        const per: Record<string, number[]> = {};
        const extra: Record<string, unknown> = {};
        const show = (what: string, d: { mean: number; ci95: [number, number] }, k: number) =>
          console.error(`${what}: mean lesion Dice ${d.mean.toFixed(3)} [${d.ci95[0].toFixed(3)}, ${d.ci95[1].toFixed(3)}] over ${k} images (${((performance.now() - t0) / 60000).toFixed(1)} min)`);
        for (const n of state.counts) {
          const heads = n ? await trainHeads(state.models, reviewedPairs(state.pool, n), join(state.work, `heads-${n}`), { cache: join(state.work, 'cache') }) : [];
          const all: number[] = [];
          for (const h of sets) {
            const ds = await diceWith(state, h.items, h.dir, join(state.work, `run-${n}-${h.seed}`), heads);
            const d = meanCi(ds);
            (bySeed[String(h.seed)] ??= {})[String(n)] = r4(d.mean);
            (bySeedCi[String(h.seed)] ??= {})[String(n)] = [r4(d.ci95[0]), r4(d.ci95[1])];
            show(`reviewed ${n}, seed ${h.seed}`, d, ds.length);
            all.push(...ds);
          }
          const d = meanCi(all);
          per[String(n)] = all;
          dices[String(n)] = r4(d.mean);
          ci[String(n)] = [r4(d.ci95[0]), r4(d.ci95[1])];
          show(`reviewed ${n}, pooled`, d, all.length);
          if (n && n === 25) {
            // the first pass's rule on the same heads, for the record (docs/annotate.md)
            const lin: number[] = [];
            for (const h of sets) lin.push(...await diceWith(state, h.items, h.dir, join(state.work, `run-${n}-${h.seed}-linear`), heads, undefined, 'linear'));
            const l = meanCi(lin);
            extra.mask_head_dice_linear_25 = r4(l.mean);
            show(`reviewed ${n}, linear fusion, pooled`, l, lin.length);
          }
        }
        // paired gain over the CAMs alone (same images, same order): mean and 95 % interval
        const gain: Record<string, [number, number, number]> = {};
        for (const n of state.counts) {
          if (!n || !per['0']) continue;
          const g = meanCi(per[String(n)]!.map((v, i) => v - per['0']![i]!));
          gain[String(n)] = [r4(g.mean), r4(g.ci95[0]), r4(g.ci95[1])];
        }
        await mergeLoopJson({
          mask_head_dice: dices, mask_head_dice_ci95: ci, mask_head_gain_ci95: gain, mask_head_dice_images: images,
          mask_head_dice_seed: sets.map((h) => h.seed), mask_head_dice_by_seed: bySeed, mask_head_dice_by_seed_ci95: bySeedCi,
          mask_head_dice_by_seed_images: Object.fromEntries(sets.map((h) => [String(h.seed), h.items.length])),
          mask_head_fusion: DEFAULT_MASK_HEAD_FUSION, mask_head_layers: 'auto', mask_head_cut: headCut(), mask_head_prune_thin: pruneThinFraction(), mask_head_load: +loadavg()[0]!.toFixed(1), ...extra,
        });
        return { elapsedMs: performance.now() - t0 };
      },
    },
  ],
});
