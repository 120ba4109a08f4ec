/**
 * One whole AbdomenAtlas-8K round (Qu et al., NeurIPS 2023) over a data set with partial labels:
 *
 * ```
 * check (labels on their image grids, known values) → predict (each ONNX segmenter, sliding window;
 * models whose predictions are all there are reused) → pseudo-labels + attention → rank (top N % per
 * source → WORK/review.csv) → merge (original > revised > pseudo; revisions from WORK/revised/ when
 * present) → export (NIfTI, nnU-Net, MSD, DICOM SEG) → effort report
 * ```
 *
 * Files: WORK as `atlas.ts` describes; OUT/labelsTr + OUT/provenance.json (merged), OUT/export/…,
 * OUT/report/report.{json,html}, OUT/run.json (this summary).
 * @module
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { MedmaskError } from '../core/errors.js';
import { atomicWrite } from '../io/atomic.js';
import type { Provenance } from '../core/atlas/merge.js';
import {
  atlasAttention, atlasMerge, atlasPredict, atlasRank, checkAtlasDataset, modelDirName, readAtlasDataset,
  type AtlasAttentionOptions, type AtlasPredictOptions, type AtlasPredictResult, type AtlasProgress, type AtlasRankOptions,
} from './atlas.js';
import { atlasExport, exportFormatsFor, type AtlasExportOptions, type AtlasExportResult } from './atlas-export.js';
import { atlasReportFromWork, writeAtlasReport, type AtlasReport, type WorkReportOptions } from './atlas-report.js';

/** Options for {@link atlasRun}. */
export interface AtlasRunOptions {
  /** ONNX segmenters (model folders / manifests). Without any, WORK/predictions must hold imported predictions. */
  models?: string[];
  /** Re-run models whose predictions already exist for every case (default false: reuse them). */
  repredict?: boolean;
  predict?: Omit<AtlasPredictOptions, 'onProgress' | 'cases'>;
  attention?: Omit<AtlasAttentionOptions, 'onProgress' | 'cases'>;
  /** Ranking and selection (default: the top 5 % of each source). */
  rank?: AtlasRankOptions;
  /** Revised labels (default WORK/revised when it exists). */
  revised?: string;
  export?: Omit<AtlasExportOptions, 'onProgress' | 'cases'>;
  report?: Omit<WorkReportOptions, 'final'>;
  cases?: string[];
  /** One progress for the whole round: steps done, total, what was just done. */
  onProgress?: AtlasProgress;
}

/** What {@link atlasRun} did. */
export interface AtlasRunResult {
  data: string;
  work: string;
  out: string;
  cases: number;
  sources: Record<string, number>;
  seconds: Record<string, number>;
  predict: { ran: AtlasPredictResult['models']; reused: string[]; models: string[] };
  attention: { flaggedVoxels: number; casesFlagged: number };
  rank: { fraction: number; selected: string[]; perSource: Record<string, { cases: number; selected: number }>; reviewCsv: string };
  merge: { revised?: string; provenance: Record<Provenance, number>; conflicts: number };
  export: AtlasExportResult;
  report: { json: string; html: string; headline: AtlasReport['headline'] };
}

/**
 * Run a whole round: check → predict → attention → rank → merge → export → report.
 * @param data - Decathlon / nnU-Net data set with partial labels
 * @param work - work folder (predictions, pseudo-labels, attention, ranking)
 * @param out - output folder (merged labels, exports, report, run.json)
 * @param opts - models, step options, revised labels, progress
 * @returns a summary of every step (also written as OUT/run.json)
 * @throws MedmaskError from each step; checks that can fail (label geometry and values, prediction
 *   folders, organ names) run before the slow ones
 * @example
 * const r = await atlasRun('data/abdomen', 'work', 'round-1', { models: ['models/demo/demo-unet3d', 'models/demo/demo-resunet3d'] });
 * r.rank.selected; // cases for the expert
 */
export async function atlasRun(data: string, work: string, out: string, opts: AtlasRunOptions = {}): Promise<AtlasRunResult> {
  const atlas = await readAtlasDataset(data, opts.cases);
  const cases = opts.cases;
  const n = atlas.cases.length;
  const models = opts.models ?? [];
  const names = models.map(modelDirName);
  const dup = names.find((x, i) => names.indexOf(x) !== i);
  if (dup) throw new MedmaskError('USAGE', `two models would write their predictions to ${join(work, 'predictions', dup)}`, { hint: 'give the model folders distinct names' });
  const havePredictions = (name: string) => atlas.cases.every((c) => existsSync(join(work, 'predictions', name, c.id)));
  const toRun = models.filter((m, i) => opts.repredict || !havePredictions(names[i]!));
  const reused = names.filter((x, i) => !toRun.includes(models[i]!));
  if (!models.length && !existsSync(join(work, 'predictions'))) {
    throw new MedmaskError('USAGE', `no --model given and ${join(work, 'predictions')} does not exist`, { hint: 'pass --model DIR (repeat for several), or put imported predictions in WORK/predictions/<model>/' });
  }
  const revised = opts.revised ?? (existsSync(join(work, 'revised')) ? join(work, 'revised') : undefined);
  if (opts.revised && !existsSync(opts.revised)) throw new MedmaskError('NOT_FOUND', `${opts.revised}: no such folder of revised labels`, { hint: 'pass the folder holding <case>.nii.gz revisions (and revised.json), or leave --revised out' });
  const formats = exportFormatsFor(atlas, opts.export ?? {});

  const total = n + toRun.length * n + n + 1 + n + n * formats.length + 1;
  let done = 0;
  const step = (note: string) => opts.onProgress?.(++done, total, note);
  const seconds: Record<string, number> = {};
  let t0 = performance.now();
  const lap = (stage: string) => {
    const t = performance.now();
    seconds[stage] = Math.round((t - t0) / 10) / 100;
    t0 = t;
  };

  await checkAtlasDataset(atlas, (_d, _t, note) => step(`check ${note ?? ''}`));
  lap('check');
  const ran = toRun.length
    ? (await atlasPredict(data, toRun, work, { ...opts.predict, ...(cases ? { cases } : {}), onProgress: (_d, _t, note) => step(`predict ${note ?? ''}`) })).models
    : [];
  lap('predict');
  const summaries = await atlasAttention(data, work, { ...opts.attention, ...(cases ? { cases } : {}), onProgress: (_d, _t, note) => step(`attention ${note ?? ''}`) });
  lap('attention');
  const rankOpts: AtlasRankOptions = { fraction: 0.05, ...opts.rank };
  const ranking = await atlasRank(work, rankOpts);
  step('rank');
  lap('rank');
  const merged = await atlasMerge(data, work, out, { ...(revised ? { revised } : {}), ...(cases ? { cases } : {}), onProgress: (_d, _t, note) => step(`merge ${note ?? ''}`) });
  lap('merge');
  const exported = await atlasExport(data, out, join(out, 'export'), { ...opts.export, formats, ...(cases ? { cases } : {}), onProgress: (_d, _t, note) => step(`export ${note ?? ''}`) });
  lap('export');
  const report = await atlasReportFromWork(data, work, { ...opts.report, final: out });
  const files = await writeAtlasReport(report, join(out, 'report'));
  step('report');
  lap('report');

  const sources: Record<string, number> = {};
  for (const c of atlas.cases) sources[c.source] = (sources[c.source] ?? 0) + 1;
  const perSource: Record<string, { cases: number; selected: number }> = {};
  for (const r of ranking.ranked) {
    const s = (perSource[r.source] ??= { cases: 0, selected: 0 });
    s.cases++;
    if (r.selected) s.selected++;
  }
  const provenance: Record<Provenance, number> = { original: 0, revised: 0, pseudo: 0, none: 0 };
  for (const c of merged.cases) for (const p of Object.values(c.provenance)) provenance[p]++;
  const result: AtlasRunResult = {
    data, work, out, cases: n, sources, seconds,
    predict: { ran, reused, models: names },
    attention: { flaggedVoxels: summaries.reduce((s, c) => s + c.organs.reduce((a, o) => a + o.voxels, 0), 0), casesFlagged: summaries.filter((c) => c.organs.some((o) => o.voxels > 0)).length },
    rank: { fraction: rankOpts.fraction ?? 0.05, selected: ranking.selected, perSource, reviewCsv: join(work, 'review.csv') },
    merge: { ...(revised ? { revised } : {}), provenance, conflicts: merged.cases.reduce((s, c) => s + c.conflicts, 0) },
    export: exported,
    report: { ...files, headline: report.headline },
  };
  await atomicWrite(join(out, 'run.json'), JSON.stringify(result, null, 1) + '\n');
  return result;
}
