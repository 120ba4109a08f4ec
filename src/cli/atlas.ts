import type { Command } from 'commander';
import { MedmaskError } from '../core/errors.js';
import { atlasAttention, atlasMerge, atlasPredict, atlasRank } from '../pipeline/atlas.js';
import { startProgress } from './output.js';
import { numberOption } from './phantoms.js';
import { readFileSync } from 'node:fs';

const list = (s?: string) => (s ? s.split(',').map((x) => x.trim()).filter(Boolean) : undefined);
const collect = (v: string, prev: string[] = []) => [...prev, v];

function choice<T extends string>(name: string, v: string | undefined, allowed: readonly T[], fallback: T): T {
  if (v === undefined) return fallback;
  if (!allowed.includes(v as T)) throw new MedmaskError('USAGE', `${name} "${v}" is not one of ${allowed.join(', ')}`, { hint: `pass ${name} ${allowed[0]}` });
  return v as T;
}

function readRename(path?: string): Record<string, string> | undefined {
  if (!path) return undefined;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, string>;
  } catch (e) {
    throw new MedmaskError('USAGE', `--rename ${path}: ${(e as Error).message}`, { cause: e, hint: 'a JSON object {"model organ name": "data set organ name"}' });
  }
}

const print = (json: boolean | undefined, obj: unknown, text: string) => process.stdout.write(json ? JSON.stringify(obj) + '\n' : text + '\n');

/** Register `medmask atlas predict|attention|rank|merge` (AbdomenAtlas-8K, Qu et al. 2023). */
export function registerAtlas(program: Command): void {
  const atlas = program.command('atlas').description('3D multi-organ annotation as AbdomenAtlas-8K: ensemble predictions, attention maps, case ranking, label merging');

  atlas
    .command('predict')
    .description('run 3D segmenters (ONNX + manifest) over every case by sliding windows; writes WORK/predictions/<model>/<case>/<organ>.nii.gz')
    .requiredOption('--data <dir>', 'nnU-Net / Decathlon data set (imagesTr, labelsTr, dataset.json)')
    .requiredOption('--model <path>', 'model folder, model.json or .onnx (repeat for several)', collect)
    .requiredOption('--work <dir>', 'work folder')
    .option('--overlap <0..1>', 'window overlap (default: the manifest\'s, else 0.5)')
    .option('--batch <n>', 'windows per model run')
    .option('--threads <n>', 'onnxruntime threads')
    .option('--device <cpu|cuda>', 'where inference runs', 'cpu')
    .option('--float32', 'keep float32 probabilities (default uint8, p·255)')
    .option('--no-skip', 'run every window, also those with no tissue')
    .option('--tissue <value>', 'tissue is image value above this, for cropping and skipping (default -500, HU)')
    .option('--rename <file>', 'JSON mapping model organ names to the data set\'s')
    .option('--cases <ids>', 'comma-separated case ids (default all)')
    .option('--json', 'print a JSON summary')
    .action(async (o: { data: string; model: string[]; work: string; overlap?: string; batch?: string; threads?: string; device?: string; float32?: boolean; skip?: boolean; tissue?: string; rename?: string; cases?: string; json?: boolean }) => {
      const overlap = o.overlap === undefined ? undefined : numberOption('--overlap', o.overlap, 0.5, (v) => v >= 0 && v < 1, 'a fraction in [0, 1)');
      const batch = o.batch === undefined ? undefined : numberOption('--batch', o.batch, 2, (v) => Number.isInteger(v) && v >= 1 && v <= 64, 'a whole number from 1 to 64');
      const threads = o.threads === undefined ? undefined : numberOption('--threads', o.threads, 0, (v) => Number.isInteger(v) && v >= 1 && v <= 256, 'a whole number of threads');
      const device = choice('--device', o.device, ['cpu', 'cuda'] as const, 'cpu');
      const cases = list(o.cases);
      const tissueHu = numberOption('--tissue', o.tissue, -500, Number.isFinite, 'a number');
      let bar: ReturnType<typeof startProgress> | undefined;
      const rename = readRename(o.rename);
      const r = await atlasPredict(o.data, o.model, o.work, {
        ...(overlap !== undefined ? { overlap } : {}),
        ...(batch !== undefined ? { batch } : {}),
        ...(cases ? { cases } : {}),
        ...(rename ? { rename } : {}),
        precision: o.float32 ? 'float32' : 'uint8',
        skipEmpty: o.skip !== false,
        tissueHu,
        load: { device, ...(threads ? { threads } : {}) },
        onProgress: (done, total, note) => {
          bar ??= startProgress('atlas predict', total, { quiet: !!o.json });
          bar.tick(1, note);
        },
      });
      bar?.stop();
      print(o.json, r, r.models.map((m) => `${m.name}: ${m.cases} case(s), ${m.windows} windows (${m.skipped} skipped without tissue), ${m.secondsPerCase.toFixed(1)} s per case → ${m.dir}`).join('\n'));
    });

  atlas
    .command('attention')
    .description('pseudo-labels (mean of the models) and attention maps (inconsistency, uncertainty, overlap) per case and organ')
    .requiredOption('--data <dir>', 'the data set')
    .requiredOption('--work <dir>', 'work folder holding predictions/')
    .option('--std-threshold <x>', 'inconsistency: std of the models\' probabilities above this (default 0.1)')
    .option('--entropy-threshold <x>', 'uncertainty: mean −p ln p above this (default 0.05)')
    .option('--erosions <n>', 'erosions of the 3×3×3 opening (default 2)')
    .option('--dilations <n>', 'dilations of the opening (default 2)')
    .option('--overlap-exclude <organs>', 'organs that do not count as "another organ" for the overlap (AbdomenAtlas: aorta,postcava)')
    .option('--threshold <p>', 'pseudo-label threshold on the mean probability (default 0.5)')
    .option('--cases <ids>', 'comma-separated case ids')
    .option('--json', 'print a JSON summary')
    .action(async (o: { data: string; work: string; stdThreshold?: string; entropyThreshold?: string; erosions?: string; dilations?: string; overlapExclude?: string; threshold?: string; cases?: string; json?: boolean }) => {
      const nonneg = (v: number) => v >= 0 && Number.isFinite(v);
      const iter = (v: number) => Number.isInteger(v) && v >= 0 && v <= 20;
      let bar: ReturnType<typeof startProgress> | undefined;
      const cases = list(o.cases);
      const exclude = list(o.overlapExclude);
      const r = await atlasAttention(o.data, o.work, {
        stdThreshold: numberOption('--std-threshold', o.stdThreshold, 0.1, nonneg, 'a number ≥ 0'),
        entropyThreshold: numberOption('--entropy-threshold', o.entropyThreshold, 0.05, nonneg, 'a number ≥ 0'),
        erosions: numberOption('--erosions', o.erosions, 2, iter, 'a whole number from 0 to 20'),
        dilations: numberOption('--dilations', o.dilations, 2, iter, 'a whole number from 0 to 20'),
        threshold: numberOption('--threshold', o.threshold, 0.5, (v) => v >= 0 && v <= 1, 'a probability'),
        ...(exclude ? { overlapExclude: exclude } : {}),
        ...(cases ? { cases } : {}),
        onProgress: (done, total, note) => {
          bar ??= startProgress('atlas attention', total, { quiet: !!o.json });
          bar.tick(1, note);
        },
      });
      bar?.stop();
      print(o.json, r.map((c) => ({ case: c.case, source: c.source, organs: Object.fromEntries(c.organs.map((x) => [x.organ, x.voxels])) })),
        r.map((c) => `${c.case} (${c.source}): ${c.organs.filter((x) => x.voxels).map((x) => `${x.organ} ${x.voxels}`).join(', ') || 'nothing flagged'}`).join('\n'));
    });

  atlas
    .command('rank')
    .description('case priority = attention voxels over the organs without an original label; selects the top N % per source for review')
    .requiredOption('--work <dir>', 'work folder holding attention/')
    .option('--fraction <0..1>', 'fraction of each source to review (default 0.05)')
    .option('--organs <which>', 'unlabelled (default) or all')
    .option('--measure <m>', 'binary (attention voxels, default) or heat (heat-map sum)')
    .option('--normalise <n>', 'none (default), volume (per voxel) or slices (per slice, as the public calculate_attention.py)')
    .option('--across-sources', 'select the top N % of all cases instead of per source')
    .option('--include-zero', 'also select cases with nothing flagged')
    .option('--json', 'print a JSON summary')
    .action(async (o: { work: string; fraction?: string; organs?: string; measure?: string; normalise?: string; acrossSources?: boolean; includeZero?: boolean; json?: boolean }) => {
      const r = await atlasRank(o.work, {
        fraction: numberOption('--fraction', o.fraction, 0.05, (v) => v >= 0 && v <= 1, 'a fraction from 0 to 1'),
        organs: choice('--organs', o.organs, ['unlabelled', 'all'] as const, 'unlabelled'),
        measure: choice('--measure', o.measure, ['binary', 'heat'] as const, 'binary'),
        normalise: choice('--normalise', o.normalise, ['none', 'volume', 'slices'] as const, 'none'),
        perSource: !o.acrossSources,
        includeZero: !!o.includeZero,
      });
      print(o.json, { selected: r.selected, ranked: r.ranked.map((c) => ({ case: c.id, source: c.source, priority: c.priority, rank: c.rank })) },
        `${r.ranked.length} case(s) ranked; ${r.selected.length} selected for review: ${r.selected.join(', ') || 'none'}\n(${o.work}/ranking.json, ${o.work}/review.csv)`);
    });

  atlas
    .command('merge')
    .description('final labels per organ: original > revised > pseudo-label, with provenance')
    .requiredOption('--data <dir>', 'the data set (labelsTr are the originals)')
    .requiredOption('--work <dir>', 'work folder holding pseudo/')
    .requiredOption('--out <dir>', 'output folder (labelsTr/, provenance.json)')
    .option('--revised <dir>', 'revised label maps <case>.nii.gz (+ revised.json {case: [organs]})')
    .option('--cases <ids>', 'comma-separated case ids')
    .option('--json', 'print a JSON summary')
    .action(async (o: { data: string; work: string; out: string; revised?: string; cases?: string; json?: boolean }) => {
      let bar: ReturnType<typeof startProgress> | undefined;
      const cases = list(o.cases);
      const r = await atlasMerge(o.data, o.work, o.out, {
        ...(o.revised ? { revised: o.revised } : {}),
        ...(cases ? { cases } : {}),
        onProgress: (done, total, note) => {
          bar ??= startProgress('atlas merge', total, { quiet: !!o.json });
          bar.tick(1, note);
        },
      });
      bar?.stop();
      const tally: Record<string, number> = {};
      for (const c of r.cases) for (const p of Object.values(c.provenance)) tally[p] = (tally[p] ?? 0) + 1;
      print(o.json, r, `merged ${r.cases.length} case(s) into ${o.out}/labelsTr (organ labels: ${Object.entries(tally).map(([k, v]) => `${k} ${v}`).join(', ')})`);
    });
}
