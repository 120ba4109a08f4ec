import { Option, type Command } from 'commander';
import { MedmaskError } from '../core/errors.js';
import { SOURCE_NAMES, type SourceName } from '../core/phantom/abdomen.js';
import type { EffortRates } from '../core/atlas/effort.js';
import { ATTENTION_PRESETS, type AttentionPreset } from '../core/atlas/attention-refine.js';
import { atlasAttention, atlasMerge, atlasPredict, atlasRank, type AtlasAttentionOptions, type AtlasPredictOptions, type AtlasRankOptions } from '../pipeline/atlas.js';
import { atlasExport, ATLAS_EXPORT_FORMATS, type AtlasExportFormat, type AtlasExportOptions } from '../pipeline/atlas-export.js';
import { atlasReportFromWork, writeAtlasReport, type AtlasReport } from '../pipeline/atlas-report.js';
import { runAtlasCampaign } from '../pipeline/atlas-campaign.js';
import { atlasRun } from '../pipeline/atlas-run.js';
import { atlasLoop, loopTable } from '../pipeline/atlas-loop.js';
import { atlasFinetune, atlasFinetuneHook } from '../pipeline/atlas-finetune.js';
import { numberOption, startProgress } from './output.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const list = (s?: string) => (s ? s.split(',').map((x) => x.trim()).filter(Boolean) : undefined);
const collect = (v: string, prev: string[] = []) => [...prev, v];

/** `original=1,revised=1,pseudo=0.5` → weights by label provenance. */
export function parseLabelWeights(s: string | undefined, onlyTrusted?: boolean): Partial<Record<'original' | 'revised' | 'pseudo', number>> | undefined {
  const out: Partial<Record<'original' | 'revised' | 'pseudo', number>> = {};
  for (const part of list(s) ?? []) {
    const [k, v] = part.split('=');
    const w = Number(v);
    if (!['original', 'revised', 'pseudo'].includes(k!.trim()) || !(w >= 0 && w <= 10)) throw new MedmaskError('USAGE', `--label-weights "${part}" must be original|revised|pseudo=WEIGHT with a weight from 0 to 10`, { hint: 'e.g. --label-weights original=1,revised=1,pseudo=0.5' });
    out[k!.trim() as 'original'] = w;
  }
  if (onlyTrusted) out.pseudo = 0;
  return Object.keys(out).length ? out : undefined;
}

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

/** A progress bar started on the first tick (so its total is known), quiet with --json. */
function lazyBar(label: string, json?: boolean) {
  let bar: ReturnType<typeof startProgress> | undefined;
  return {
    tick: (_done: number, total: number, note?: string) => {
      bar ??= startProgress(label, total, { quiet: !!json });
      bar.tick(1, note);
    },
    stop: () => bar?.stop(),
  };
}

interface PredictFlags { overlap?: string; batch?: string; threads?: string; device?: string; float32?: boolean; skip?: boolean; crop?: boolean; tissue?: string; rename?: string }
interface AttentionFlags { preset?: string; stdThreshold?: string; entropyThreshold?: string; erosions?: string; dilations?: string; overlapExclude?: string; threshold?: string }
interface RankFlags { fraction?: string; organs?: string; measure?: string; organPriors?: boolean; normalise?: string; acrossSources?: boolean; includeZero?: boolean }
interface ExportFlags { format?: string; dicom?: string; uidSalt?: string; datasetId?: string; datasetName?: string }
interface ReportFlags { truth?: string; minutesPerOrgan?: string; minutesPerCase?: string; hoursPerYear?: string; weeks?: string; minRegion?: string; title?: string }

function addPredictFlags(c: Command): Command {
  return c
    .option('--overlap <0..1>', 'window overlap (default: the manifest\'s, else 0.5)')
    .option('--batch <n>', 'windows per model run')
    .option('--threads <n>', 'onnxruntime threads (with --rounds: the trainer\'s too)')
    .option('--device <cpu|cuda>', 'where inference runs', 'cpu')
    .option('--float32', 'keep float32 probabilities (default uint8, p·255)')
    .option('--no-skip', 'run every window, also those with no tissue')
    .option('--crop', 'lay the window grid over the body\'s bounding box (fewer windows; moves them, so results differ more from a plain sliding window)')
    .option('--tissue <value>', 'tissue is image value above this, for cropping and skipping (default -500, HU)')
    .option('--rename <file>', 'JSON mapping model organ names to the data set\'s');
}

function predictOptions(o: PredictFlags): Omit<AtlasPredictOptions, 'onProgress' | 'cases'> {
  const overlap = o.overlap === undefined ? undefined : numberOption('--overlap', o.overlap, 0.5, (v) => v >= 0 && v < 1, 'a fraction in [0, 1)');
  const batch = o.batch === undefined ? undefined : numberOption('--batch', o.batch, 2, (v) => Number.isInteger(v) && v >= 1 && v <= 64, 'a whole number from 1 to 64');
  const threads = o.threads === undefined ? undefined : numberOption('--threads', o.threads, 0, (v) => Number.isInteger(v) && v >= 1 && v <= 256, 'a whole number of threads');
  const device = choice('--device', o.device, ['cpu', 'cuda'] as const, 'cpu');
  const tissueHu = numberOption('--tissue', o.tissue, -500, Number.isFinite, 'a number');
  const rename = readRename(o.rename);
  return {
    ...(overlap !== undefined ? { overlap } : {}),
    ...(batch !== undefined ? { batch } : {}),
    ...(rename ? { rename } : {}),
    precision: o.float32 ? 'float32' : 'uint8',
    skipEmpty: o.skip !== false,
    ...(o.crop ? { crop: true } : {}),
    tissueHu,
    load: { device, ...(threads ? { threads } : {}) },
  };
}

function addAttentionFlags(c: Command, defaults: { erosions: number; dilations: number } = { erosions: 2, dilations: 2 }): Command {
  return c
    .option('--std-threshold <x>', 'inconsistency: std of the models\' probabilities above this (default 0.1)')
    .option('--entropy-threshold <x>', 'uncertainty: mean −p ln p above this (default 0.05)')
    .option('--erosions <n>', `erosions of the 3×3×3 opening (default ${defaults.erosions})`)
    .option('--dilations <n>', `dilations of the opening (default ${defaults.dilations})`)
    .option('--overlap-exclude <organs>', 'organs that do not count as "another organ" for the overlap (AbdomenAtlas: aorta,postcava)')
    .option('--threshold <p>', 'pseudo-label threshold on the mean probability (default 0.5)')
    .option('--preset <name>', 'paper (default: AbdomenAtlas as published), ranking (the paper\'s attention, cases ranked by expected Dice loss with organ priors) or refined (no opening, components expecting < 20 mL wrong dropped, ranking by expected Dice loss; docs/atlas-campaign.md)');
}

/** A preset's refinements and ranking as runAtlasCampaign options. */
function campaignPreset(name: string | undefined): { refine?: AttentionPreset['attention']; rankMeasure?: 'binary' | 'heat' | 'dice'; organPriors?: boolean } {
  const p = presetOption(name);
  return { ...(Object.keys(p.attention).length ? { refine: p.attention } : {}), ...(p.rank.measure ? { rankMeasure: p.rank.measure } : {}), ...(p.rank.organPriors ? { organPriors: true } : {}) };
}

/** The named preset of --preset (core/atlas/attention-refine.ts). */
function presetOption(name: string | undefined): AttentionPreset {
  return ATTENTION_PRESETS[choice('--preset', name, ['paper', 'ranking', 'refined'] as const, 'paper')];
}

function attentionOptions(o: AttentionFlags, defaults: { erosions: number; dilations: number } = { erosions: 2, dilations: 2 }): Omit<AtlasAttentionOptions, 'onProgress' | 'cases'> {
  const nonneg = (v: number) => v >= 0 && Number.isFinite(v);
  const iter = (v: number) => Number.isInteger(v) && v >= 0 && v <= 20;
  const exclude = list(o.overlapExclude);
  return {
    stdThreshold: numberOption('--std-threshold', o.stdThreshold, 0.1, nonneg, 'a number ≥ 0'),
    entropyThreshold: numberOption('--entropy-threshold', o.entropyThreshold, 0.05, nonneg, 'a number ≥ 0'),
    erosions: numberOption('--erosions', o.erosions, defaults.erosions, iter, 'a whole number from 0 to 20'),
    dilations: numberOption('--dilations', o.dilations, defaults.dilations, iter, 'a whole number from 0 to 20'),
    threshold: numberOption('--threshold', o.threshold, 0.5, (v) => v >= 0 && v <= 1, 'a probability'),
    ...(exclude ? { overlapExclude: exclude } : {}),
    ...presetOption(o.preset).attention,
  };
}

function addRankFlags(c: Command): Command {
  return c
    .option('--fraction <0..1>', 'fraction of each source to review (default 0.05)')
    .option('--organs <which>', 'unlabelled (default) or all')
    .option('--measure <m>', 'binary (attention voxels, default), heat (heat-map sum) or dice (expected Dice loss per organ, averaged)')
    .option('--organ-priors', 'add organ-level priors (missing organ, volume or pieces unusual for the source) to the priority')
    .option('--normalise <n>', 'none (default), volume (per voxel) or slices (per slice, as the public calculate_attention.py)')
    .option('--across-sources', 'select the top N % of all cases instead of per source')
    .option('--include-zero', 'also select cases with nothing flagged');
}

function rankOptions(o: RankFlags & { preset?: string }): AtlasRankOptions {
  const preset = presetOption(o.preset).rank;
  return {
    ...(o.organPriors || preset.organPriors ? { organPriors: true } : {}),
    fraction: numberOption('--fraction', o.fraction, 0.05, (v) => v >= 0 && v <= 1, 'a fraction from 0 to 1'),
    organs: choice('--organs', o.organs, ['unlabelled', 'all'] as const, 'unlabelled'),
    measure: choice('--measure', o.measure, ['binary', 'heat', 'dice'] as const, preset.measure ?? 'binary'),
    normalise: choice('--normalise', o.normalise, ['none', 'volume', 'slices'] as const, 'none'),
    perSource: !o.acrossSources,
    includeZero: !!o.includeZero,
  };
}

function addExportFlags(c: Command): Command {
  return c
    .option('--format <list>', `comma-separated: ${ATLAS_EXPORT_FORMATS.join(', ')} (default nifti,nnunet,msd, plus dicom-seg when a DICOM source is known)`)
    .option('--dicom <dir>', 'source DICOM series per case (<dir>/<case>/ or <dir>/<case>.dcm): the SEG references it')
    .option('--uid-salt <salt>', 'UID salt the series were imported with (default $MEDMASK_UID_SALT, else none)')
    .option('--dataset-id <n>', 'nnU-Net / MSD data set number (default 501)')
    .option('--dataset-name <name>', 'nnU-Net / MSD data set name (default AbdomenAtlas)');
}

function exportOptions(o: ExportFlags): Omit<AtlasExportOptions, 'onProgress' | 'cases'> {
  const formats = list(o.format);
  if (formats) {
    const bad = formats.filter((f) => !ATLAS_EXPORT_FORMATS.includes(f as AtlasExportFormat));
    if (bad.length) throw new MedmaskError('USAGE', `--format ${bad.join(', ')}: unknown export format`, { hint: `choose from ${ATLAS_EXPORT_FORMATS.join(', ')}` });
  }
  return {
    ...(formats ? { formats: formats as AtlasExportFormat[] } : {}),
    ...(o.dicom ? { dicom: o.dicom } : {}),
    ...(o.uidSalt !== undefined ? { uidSalt: o.uidSalt } : {}),
    ...(o.datasetId !== undefined ? { datasetId: numberOption('--dataset-id', o.datasetId, 501, (v) => Number.isInteger(v) && v >= 1 && v <= 999, 'a whole number from 1 to 999') } : {}),
    ...(o.datasetName !== undefined ? { datasetName: o.datasetName } : {}),
  };
}

function addReportFlags(c: Command): Command {
  return c
    .option('--truth <dir>', 'ground-truth label maps <case>.nii.gz (default DATA/truthTr when it exists)')
    .option('--minutes-per-organ <m>', 'expert minutes to annotate one organ by hand (default 60, the paper\'s)')
    .option('--minutes-per-case <m>', 'expert minutes to review one case (default 15, the paper\'s)')
    .option('--hours-per-year <h>', 'working hours in a year (default 2080)')
    .option('--weeks <w>', 'calendar weeks the campaign took, for the calendar speed-up')
    .option('--min-region <voxels>', 'smallest error / attention component counted at region level (default 8)')
    .option('--title <text>', 'report heading');
}

function reportRates(o: ReportFlags): Partial<EffortRates> | undefined {
  const pos = (v: number) => v > 0 && Number.isFinite(v);
  const r: Partial<EffortRates> = {
    ...(o.minutesPerOrgan !== undefined ? { minutesPerOrganByHand: numberOption('--minutes-per-organ', o.minutesPerOrgan, 60, pos, 'a positive number') } : {}),
    ...(o.minutesPerCase !== undefined ? { minutesPerReviewedCase: numberOption('--minutes-per-case', o.minutesPerCase, 15, pos, 'a positive number') } : {}),
    ...(o.hoursPerYear !== undefined ? { workingHoursPerYear: numberOption('--hours-per-year', o.hoursPerYear, 2080, pos, 'a positive number') } : {}),
  };
  return Object.keys(r).length ? r : undefined;
}

function reportOptions(o: ReportFlags) {
  const rates = reportRates(o);
  return {
    ...(o.truth ? { truth: o.truth } : {}),
    ...(rates ? { rates } : {}),
    ...(o.weeks !== undefined ? { campaignWeeks: numberOption('--weeks', o.weeks, 3, (v) => v > 0 && Number.isFinite(v), 'a positive number of weeks') } : {}),
    ...(o.minRegion !== undefined ? { minRegionVoxels: numberOption('--min-region', o.minRegion, 8, (v) => Number.isInteger(v) && v >= 1, 'a whole number ≥ 1') } : {}),
    ...(o.title ? { title: o.title } : {}),
  };
}

const fmt = (v: number) => Math.round(v).toLocaleString('en-US');
const x = (v: number) => (Number.isFinite(v) ? `${v.toFixed(1)}×` : '∞');

/** The effort report's headline as one line. */
function headlineText(r: AtlasReport['headline'], selected: number): string {
  const dice = r.diceBefore !== undefined ? `; mean Dice of unlabelled organs ${r.diceBefore.toFixed(3)} without review${r.diceAfter !== undefined ? `, ${r.diceAfter.toFixed(3)} after` : ''}` : '';
  return `${r.policy}: ${selected} case(s), ${fmt(r.expertMinutes)} expert min against ${fmt(r.byHandMinutes)} by hand (${x(r.speedup)} less, ${fmt(r.minutesSaved)} min saved)${dice}`;
}

/** `atlas run --rounds N`: the loop (src/pipeline/atlas-loop.ts) in OUT, with its table. */
async function runRounds(o: RankFlags & { data: string; out: string; model?: string[]; revised?: string; json?: boolean; rounds?: string; finetuneSteps?: string; labelWeights?: string; onlyTrusted?: boolean; threads?: string; heldoutCases?: string; evalCases?: string; revisedShare?: string; accept?: 'campaign' | 'model' }): Promise<void> {
  if (!o.model?.length) throw new MedmaskError('USAGE', 'atlas run --rounds needs the segmenters to fine-tune', { hint: 'pass --model DIR (repeat for several)' });
  const lw = parseLabelWeights(o.labelWeights, o.onlyTrusted);
  const r = await atlasLoop(o.data, o.out, {
    models: o.model,
    rounds: numberOption('--rounds', o.rounds, 2, (v) => Number.isInteger(v) && v >= 1 && v <= 50, 'a whole number from 1 to 50'),
    ...(o.fraction !== undefined ? { fraction: numberOption('--fraction', o.fraction, 0.05, (v) => v > 0 && v <= 1, 'a fraction in (0, 1]') } : {}),
    ...(o.revised ? { revised: o.revised } : {}),
    ...(o.finetuneSteps !== undefined ? { steps: numberOption('--finetune-steps', o.finetuneSteps, 60, (v) => Number.isInteger(v) && (v === 0 || v >= 4), '0 or a whole number ≥ 4') } : {}),
    ...(lw ? { labelWeights: lw } : {}),
    ...(o.revisedShare !== undefined ? { revisedShare: numberOption('--revised-share', o.revisedShare, 0.5, (v) => v >= 0 && v <= 1, 'a share from 0 to 1') } : {}),
    // --threads: onnxruntime's and the trainer's (default for the trainer: 1 on a shared or 2-core machine).
    ...(o.threads !== undefined ? (() => { const t = numberOption('--threads', o.threads, 2, (v) => Number.isInteger(v) && v >= 1 && v <= 256, 'a whole number of threads'); return { predictThreads: t, threads: t }; })() : {}),
    ...(o.heldoutCases !== undefined ? { heldoutCases: numberOption('--heldout-cases', o.heldoutCases, 24, (v) => Number.isInteger(v) && v >= 0, 'a whole number ≥ 0') } : {}),
    ...(o.evalCases !== undefined ? { evalCases: numberOption('--eval-cases', o.evalCases, 0, (v) => Number.isInteger(v) && v >= 0, 'a whole number ≥ 0') } : {}),
    ...(o.accept ? { accept: o.accept } : {}),
    onProgress: (stage, round, note) => { if (!o.json) process.stderr.write(`round ${round}: ${stage}${note ? ` (${note})` : ''}\n`); },
  });
  print(o.json, r, [`medmask atlas run --rounds ${r.rounds.length}: → ${r.json}`, ...loopTable(r).map((l) => `  ${l}`)].join('\n'));
}

/** Register `medmask atlas predict|attention|rank|merge|export|report|run|campaign|finetune-hook` (AbdomenAtlas-8K, Qu et al. 2023). */
export function registerAtlas(program: Command): void {
  const atlas = program.command('atlas').description('3D multi-organ annotation as AbdomenAtlas-8K: ensemble predictions, attention maps, case ranking, label merging, exports, effort report');

  addPredictFlags(atlas
    .command('predict')
    .description('run 3D segmenters (ONNX + manifest) over every case by sliding windows; writes WORK/predictions/<model>/<case>/<organ>.nii.gz')
    .requiredOption('--data <dir>', 'nnU-Net / Decathlon data set (imagesTr, labelsTr, dataset.json)')
    .requiredOption('--model <path>', 'model folder, model.json or .onnx (repeat for several)', collect)
    .requiredOption('--work <dir>', 'work folder'))
    .option('--cases <ids>', 'comma-separated case ids (default all)')
    .option('--json', 'print a JSON summary')
    .action(async (o: PredictFlags & { data: string; model: string[]; work: string; cases?: string; json?: boolean }) => {
      const cases = list(o.cases);
      const bar = lazyBar('atlas predict', o.json);
      const r = await atlasPredict(o.data, o.model, o.work, { ...predictOptions(o), ...(cases ? { cases } : {}), onProgress: bar.tick });
      bar.stop();
      print(o.json, r, r.models.map((m) => `${m.name}: ${m.cases} case(s), ${m.windows} windows (${m.skipped} skipped without tissue), ${m.secondsPerCase.toFixed(1)} s per case → ${m.dir}`).join('\n'));
    });

  addAttentionFlags(atlas
    .command('attention')
    .description('pseudo-labels (mean of the models) and attention maps (inconsistency, uncertainty, overlap) per case and organ')
    .requiredOption('--data <dir>', 'the data set')
    .requiredOption('--work <dir>', 'work folder holding predictions/'))
    .option('--cases <ids>', 'comma-separated case ids')
    .option('--json', 'print a JSON summary')
    .action(async (o: AttentionFlags & { data: string; work: string; cases?: string; json?: boolean }) => {
      const cases = list(o.cases);
      const bar = lazyBar('atlas attention', o.json);
      const r = await atlasAttention(o.data, o.work, { ...attentionOptions(o), ...(cases ? { cases } : {}), onProgress: bar.tick });
      bar.stop();
      print(o.json, r.map((c) => ({ case: c.case, source: c.source, organs: Object.fromEntries(c.organs.map((x) => [x.organ, x.voxels])) })),
        r.map((c) => `${c.case} (${c.source}): ${c.organs.filter((x) => x.voxels).map((x) => `${x.organ} ${x.voxels}`).join(', ') || 'nothing flagged'}`).join('\n'));
    });

  addRankFlags(atlas
    .command('rank')
    .description('case priority = attention voxels over the organs without an original label; selects the top N % per source for review')
    .requiredOption('--work <dir>', 'work folder holding attention/'))
    .option('--json', 'print a JSON summary')
    .action(async (o: RankFlags & { work: string; json?: boolean }) => {
      const r = await atlasRank(o.work, rankOptions(o));
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
      const cases = list(o.cases);
      const bar = lazyBar('atlas merge', o.json);
      const r = await atlasMerge(o.data, o.work, o.out, {
        ...(o.revised ? { revised: o.revised } : {}),
        ...(cases ? { cases } : {}),
        onProgress: bar.tick,
      });
      bar.stop();
      const tally: Record<string, number> = {};
      for (const c of r.cases) for (const p of Object.values(c.provenance)) tally[p] = (tally[p] ?? 0) + 1;
      print(o.json, r, `merged ${r.cases.length} case(s) into ${o.out}/labelsTr (organ labels: ${Object.entries(tally).map(([k, v]) => `${k} ${v}`).join(', ')})`);
    });

  addExportFlags(atlas
    .command('export')
    .description('merged labels as NIfTI label maps on each image\'s grid, an nnU-Net v2 and an MSD data set folder, and DICOM SEG (referencing the source series when given)')
    .requiredOption('--data <dir>', 'the data set the labels were made for')
    .requiredOption('--merged <dir>', 'output folder of atlas merge (labelsTr/, provenance.json)')
    .requiredOption('--out <dir>', 'export folder (nifti/, nnunet/, msd/, dicom-seg/, export.json)'))
    .option('--cases <ids>', 'comma-separated case ids')
    .option('--json', 'print a JSON summary')
    .addHelpText('after', '\nExamples:\n  medmask atlas export --data data/abdomen --merged final --out export\n  medmask atlas export --data data/ct --merged final --out export --format dicom-seg --dicom dicom/ --uid-salt "$SALT"')
    .action(async (o: ExportFlags & { data: string; merged: string; out: string; cases?: string; json?: boolean }) => {
      const cases = list(o.cases);
      const bar = lazyBar('atlas export', o.json);
      const r = await atlasExport(o.data, o.merged, o.out, { ...exportOptions(o), ...(cases ? { cases } : {}), onProgress: bar.tick });
      bar.stop();
      const refs = r.dicomSeg?.filter((d) => d.referencedInstances > 0).length;
      print(o.json, r, [`exported ${r.cases} case(s):`, ...r.formats.map((f) => `  ${f.padEnd(9)} ${r.written[f]}${f === 'dicom-seg' ? ` (${refs} of ${r.cases} referencing their source series)` : ''}`)].join('\n'));
    });

  addReportFlags(atlas
    .command('report')
    .description('effort report (HTML + JSON): expert minutes per policy, speed-up over by-hand annotation; with ground truth, Dice before / after review and attention vs real error')
    .requiredOption('--data <dir>', 'the data set')
    .requiredOption('--work <dir>', 'work folder after atlas rank'))
    .option('--merged <dir>', 'output folder of atlas merge: Dice of the merged labels where truth exists')
    .option('--fraction <0..1>', 'review fraction of the ranked / random policies (default: the ranking\'s)')
    .option('--out <dir>', 'report folder (default WORK/report)')
    .option('--json', 'print the report as JSON')
    .action(async (o: ReportFlags & { data: string; work: string; merged?: string; fraction?: string; out?: string; json?: boolean }) => {
      const report = await atlasReportFromWork(o.data, o.work, {
        ...reportOptions(o),
        ...(o.merged ? { final: o.merged } : {}),
        ...(o.fraction !== undefined ? { reviewFraction: numberOption('--fraction', o.fraction, 0.05, (v) => v > 0 && v <= 1, 'a fraction in (0, 1]') } : {}),
      });
      const files = await writeAtlasReport(report, o.out ?? join(o.work, 'report'));
      const att = report.attention?.rates;
      print(o.json, { ...files, report }, [
        headlineText(report.headline, report.selected.length),
        ...(att ? [`attention vs real error: voxel sensitivity ${att.voxelSensitivity.toFixed(2)}, precision ${att.voxelPrecision.toFixed(2)}; region sensitivity ${att.regionSensitivity.toFixed(2)}, precision ${att.regionPrecision.toFixed(2)}`] : []),
        `→ ${files.html}`,
      ].join('\n'));
    });

  const runCmd = atlas
    .command('run')
    .description('a whole round: check → predict → attention → rank (top N % per source) → merge (with revised labels if present) → export → report, with one progress bar')
    .requiredOption('--data <dir>', 'nnU-Net / Decathlon data set with partial labels')
    .requiredOption('--work <dir>', 'work folder (predictions, attention, ranking; WORK/revised/ is read when present)')
    .requiredOption('--out <dir>', 'output folder (labelsTr/, provenance.json, export/, report/, run.json)')
    .option('--model <path>', 'segmenter folder / manifest / .onnx (repeat); without: WORK/predictions holds imported predictions', collect)
    .option('--repredict', 'run models again even where their predictions exist for every case')
    .option('--revised <dir>', 'revised label maps (default WORK/revised when present); with --rounds: a folder of round-1/, round-2/ … revisions')
    .option('--rounds <n>', 'the loop: N rounds of predict → attention → rank → review (--revised, else the simulated annotator on truthTr/) → merge → fine-tune (PyTorch) → re-predict, with a per-round table')
    .option('--finetune-steps <n>', 'with --rounds: fine-tune steps per model per round (default 60, the loop benchmark\'s recipe)')
    .option('--label-weights <list>', 'with --rounds: loss weight per label provenance (default original=1,revised=1,pseudo=0.5; given, unnamed provenances weigh 1)')
    .option('--only-trusted', 'with --rounds: fine-tune on original and revised labels only')
    .option('--revised-share <x>', 'with --rounds: share of the fine-tune patches drawn from the reviewed cases (default 0.5, the loop benchmark\'s recipe; 0: cases drawn uniformly)')
    .option('--heldout-cases <n>', 'with --rounds: cases in the fixed held-out set of the accept rule (full truth; never trained on or reviewed; default min(24, a quarter): the loop benchmark\'s 24)')
    .option('--eval-cases <n>', 'with --rounds: cases in the fixed evaluation set (never reviewed; default half of the rest)')
    .addOption(new Option('--accept <rule>', 'with --rounds: when a fine-tune replaces its model — campaign: its own held-out Dice not below its parent\'s and the pseudo-labels on the held-out cases no worse with it (default with the fixed held-out set); model: its own held-out Dice alone').choices(['campaign', 'model']));
  addReportFlags(addExportFlags(addRankFlags(addAttentionFlags(addPredictFlags(runCmd)))))
    .option('--cases <ids>', 'comma-separated case ids')
    .option('--json', 'print the summary as JSON')
    .addHelpText('after', '\nExamples:\n  medmask atlas run --data data/abdomen --model models/demo/demo-unet3d --model models/demo/demo-resunet3d --work work --out round-1\n  medmask atlas run --data data/abdomen --work work --out round-2 --revised review/round-1   # predictions reused\n  medmask atlas run --data data/abdomen --model models/demo/demo-unet3d --work unused --out loop --rounds 3   # the loop (simulated reviews from truthTr/), the benchmark\'s recipe')
    .action(async (o: PredictFlags & AttentionFlags & RankFlags & ExportFlags & ReportFlags & { data: string; work: string; out: string; model?: string[]; repredict?: boolean; revised?: string; cases?: string; json?: boolean; rounds?: string; finetuneSteps?: string; labelWeights?: string; onlyTrusted?: boolean; heldoutCases?: string; evalCases?: string; revisedShare?: string; accept?: 'campaign' | 'model' }) => {
      if (o.rounds !== undefined) return runRounds(o);
      const cases = list(o.cases);
      const bar = lazyBar('atlas run', o.json);
      const r = await atlasRun(o.data, o.work, o.out, {
        ...(o.model ? { models: o.model } : {}),
        repredict: !!o.repredict,
        predict: predictOptions(o),
        attention: attentionOptions(o),
        rank: rankOptions(o),
        ...(o.revised ? { revised: o.revised } : {}),
        export: exportOptions(o),
        report: reportOptions(o),
        ...(cases ? { cases } : {}),
        onProgress: bar.tick,
      });
      bar.stop();
      const total = Object.values(r.seconds).reduce((a, b) => a + b, 0);
      const sel = r.rank.selected;
      const lines = [
        `medmask atlas run: ${r.cases} case(s) (${Object.entries(r.sources).map(([k, v]) => `${k} ${v}`).join(', ')}) in ${total.toFixed(1)} s`,
        `  predict    ${r.predict.ran.map((m) => `${m.name}: ${m.cases} case(s), ${m.windows} windows (${m.skipped} skipped), ${m.secondsPerCase.toFixed(1)} s/case`).join('; ') || 'nothing to run'}${r.predict.reused.length ? `; reused ${r.predict.reused.join(', ')}` : ''}`,
        `  attention  ${fmt(r.attention.flaggedVoxels)} voxels flagged in ${r.attention.casesFlagged} of ${r.cases} case(s)`,
        `  review     ${sel.length} case(s) selected (top ${+(r.rank.fraction * 100).toFixed(1)} % per source): ${sel.slice(0, 12).join(', ') || 'none'}${sel.length > 12 ? ', …' : ''} → ${r.rank.reviewCsv}`,
        ...(sel.length ? [`             revise the flagged organs into ${join(r.work, 'revised')}/<case>.nii.gz (+ revised.json {case: [organs]}) and run again`] : []),
        `  merge      organ labels: original ${r.merge.provenance.original}, revised ${r.merge.provenance.revised}, pseudo ${r.merge.provenance.pseudo}, none ${r.merge.provenance.none}${r.merge.revised ? ` (revisions from ${r.merge.revised})` : ''} → ${join(r.out, 'labelsTr')}`,
        `  export     ${r.export.formats.join(', ')} → ${r.export.out}`,
        `  report     ${headlineText(r.report.headline, sel.length)} → ${r.report.html}`,
      ];
      print(o.json, r, lines.join('\n'));
    });

  addAttentionFlags(atlas
    .command('campaign')
    .description('a simulated campaign with known truth: phantoms from four partial-label sources, simulated models and/or real segmenters, attention → rank → simulated annotator → merge → effort report with ranked vs random review')
    .requiredOption('--out <dir>', 'campaign folder (data/, work/, final/, report/ are replaced)')
    .option('--n <cases>', 'phantom cases (default 16)')
    .option('--size <voxels>', 'phantom in-plane size (default 48)')
    .option('--seed <n>', 'seed of everything (default 1)')
    .option('--sources <list>', `sources (default flare,lits,kits,msd_pancreas; from ${SOURCE_NAMES.join(', ')})`)
    .option('--model <path>', 'real segmenter run by sliding window (repeat)', collect)
    .option('--no-simulated', 'no simulated models (needs --model)')
    .option('--fraction <0..1>', 'review fraction of the ranked policy (default 0.05)')
    .option('--margin <voxels>', 'voxels the simulated annotator fixes beyond a flagged region (default 1)')
    .option('--min-region <voxels>', 'smallest component counted at region level (default 8)')
    .option('--draws <n>', 'random selections per budget (default 200)'), { erosions: 1, dilations: 1 })
    .option('--json', 'print the summary as JSON')
    .addHelpText('after', '\nThe phantoms\' voxels are 3–8 mm, so the opening defaults to 1 erosion and 1 dilation (--erosions 2 --dilations 2: the paper\'s).\nExample:\n  medmask atlas campaign --out campaign --n 16 --model models/demo/demo-unet3d --model models/demo/demo-resunet3d --no-simulated')
    .action(async (o: AttentionFlags & { out: string; n?: string; size?: string; seed?: string; sources?: string; model?: string[]; simulated?: boolean; fraction?: string; margin?: string; minRegion?: string; draws?: string; json?: boolean }) => {
      const int = (lo: number, hi: number) => (v: number) => Number.isInteger(v) && v >= lo && v <= hi;
      let sources: SourceName[] | undefined;
      if (o.sources) {
        sources = list(o.sources) as SourceName[];
        const bad = sources.filter((s) => !SOURCE_NAMES.includes(s));
        if (bad.length) throw new MedmaskError('USAGE', `--sources ${bad.join(', ')}: unknown source`, { hint: `choose from ${SOURCE_NAMES.join(', ')}` });
      }
      if (o.simulated === false && !o.model?.length) throw new MedmaskError('USAGE', '--no-simulated leaves the campaign without models', { hint: 'add --model DIR (repeat), or keep the simulated models' });
      let stage = '';
      let stageBar: ReturnType<typeof startProgress> | undefined;
      const r = await runAtlasCampaign(o.out, {
        n: numberOption('--n', o.n, 16, int(2, 10000), 'a whole number ≥ 2'),
        size: numberOption('--size', o.size, 48, int(24, 512), 'a whole number from 24 to 512'),
        seed: numberOption('--seed', o.seed, 1, int(0, 2 ** 31), 'a whole number'),
        ...(sources ? { sources } : {}),
        ...(o.model?.length ? { segmenters: o.model } : {}),
        ...(o.simulated === false ? { models: [] } : {}),
        reviewFraction: numberOption('--fraction', o.fraction, 0.05, (v) => v > 0 && v <= 1, 'a fraction in (0, 1]'),
        annotatorMargin: numberOption('--margin', o.margin, 1, int(0, 20), 'a whole number from 0 to 20'),
        minRegionVoxels: numberOption('--min-region', o.minRegion, 8, int(1, 1e9), 'a whole number ≥ 1'),
        randomDraws: numberOption('--draws', o.draws, 200, int(1, 100000), 'a whole number ≥ 1'),
        attention: attentionOptions(o, { erosions: 1, dilations: 1 }),
        ...campaignPreset(o.preset),
        onProgress: (s, d, t) => {
          if (s !== stage) {
            stageBar?.stop();
            stage = s;
            stageBar = startProgress(`campaign ${s}`, t, { quiet: !!o.json });
          }
          stageBar!.tick(1);
        },
      });
      stageBar?.stop();
      const a = r.attention;
      const curve = r.report.curve ?? [];
      print(o.json, { dir: r.dir, report: r.reportFiles, headline: r.report.headline, attention: a, curve, cases: r.cases, seconds: r.seconds }, [
        `campaign of ${r.cases.length} cases in ${Object.values(r.seconds).reduce((s, v) => s + v, 0).toFixed(1)} s → ${r.dir}`,
        `  attention vs real error: voxel sensitivity ${a.voxelSensitivity.toFixed(2)}, precision ${a.voxelPrecision.toFixed(2)}; region sensitivity ${a.regionSensitivity.toFixed(2)}, precision ${a.regionPrecision.toFixed(2)} (paper: 0.78 / 0.83)`,
        `  Dice vs fraction reviewed (ranked | random mean):`,
        ...curve.map((p) => `    ${String(+(p.fraction * 100).toFixed(1)).padStart(5)} %  ${p.ranked.toFixed(4)} | ${p.random.toFixed(4)}`),
        `  ${headlineText(r.report.headline, r.report.selected.length)}`,
        `  → ${r.reportFiles.html}`,
      ].join('\n'));
    });

  atlas
    .command('finetune')
    .description('fine-tune a 3D segmenter on the merged labels (original > revised > pseudo): warm start from its ONNX weights, PyTorch in a child process (Debian python3-torch), a held-out split, ONNX export checked against torch; accepted only when its held-out Dice is not below the parent\'s')
    .requiredOption('--data <dir>', 'the data set')
    .requiredOption('--merged <dir>', 'output folder of atlas merge / atlas run (labelsTr/, provenance.json)')
    .requiredOption('--model <dir>', 'the model folder to fine-tune (model.onnx, model.json, card.json)')
    .requiredOption('--out <dir>', 'folder for train/, heldout/, the new <model>-ft/ and finetune-result.json')
    .option('--steps <n>', 'training steps (default 40; 0 exports the parent as is)')
    .option('--lr <rate>', 'peak learning rate (default 3e-4)')
    .option('--label-weights <list>', 'loss weight per label provenance, e.g. original=1,revised=1,pseudo=0.5 (default all 1)')
    .option('--only-trusted', 'train on original and revised labels only (pseudo-labels weigh 0)')
    .option('--only-revised', 'train on the cases with a revised organ only')
    .option('--heldout <dir>', 'an existing held-out set (imagesTr/, truthTr/); default a seeded share of the cases')
    .option('--heldout-fraction <0..1>', 'share of the cases held out (default 0.2, at least one)')
    .option('--seed <n>', 'seed of the split and the training (default 1 / 0)')
    .option('--threads <n>', 'trainer threads (default 1 on a shared or 2-core machine, else up to 4)')
    .option('--python <path>', 'Python with torch (default /usr/bin/python3)')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExample:\n  medmask atlas finetune --data data/abdomen --merged round-1 --model models/demo/demo-unet3d --out ft-1 --steps 40 --label-weights pseudo=0.5')
    .action(async (o: { data: string; merged: string; model: string; out: string; steps?: string; lr?: string; labelWeights?: string; onlyTrusted?: boolean; onlyRevised?: boolean; heldout?: string; heldoutFraction?: string; seed?: string; threads?: string; python?: string; json?: boolean }) => {
      const lw = parseLabelWeights(o.labelWeights, o.onlyTrusted);
      const bar = lazyBar('atlas finetune', o.json);
      const r = await atlasFinetune(o.data, o.merged, o.out, {
        model: o.model,
        only: o.onlyRevised ? 'revised' : 'all',
        ...(o.steps !== undefined ? { steps: numberOption('--steps', o.steps, 40, (v) => Number.isInteger(v) && (v === 0 || v >= 4), '0 or a whole number ≥ 4') } : {}),
        ...(o.lr !== undefined ? { lr: numberOption('--lr', o.lr, 3e-4, (v) => v > 0 && v < 1, 'a rate in (0, 1)') } : {}),
        ...(lw ? { labelWeights: lw } : {}),
        ...(o.heldout ? { heldout: o.heldout } : {}),
        ...(o.heldoutFraction !== undefined ? { heldoutFraction: numberOption('--heldout-fraction', o.heldoutFraction, 0.2, (v) => v > 0 && v < 1, 'a fraction in (0, 1)') } : {}),
        ...(o.seed !== undefined ? { seed: numberOption('--seed', o.seed, 1, (v) => Number.isInteger(v), 'a whole number') } : {}),
        ...(o.threads !== undefined ? { threads: numberOption('--threads', o.threads, 2, (v) => Number.isInteger(v) && v >= 1 && v <= 256, 'a whole number of threads') } : {}),
        ...(o.python ? { python: o.python } : {}),
        onProgress: (d, t, line) => { if (d > 0) bar.tick(d, t, line.trim().slice(0, 60)); },
      });
      bar.stop();
      print(o.json, r, [
        `medmask atlas finetune: ${r.decision.toUpperCase()} — ${r.reason}`,
        `  trained ${r.steps} step(s) in ${r.trainSeconds} s on ${r.trainCases.length} case(s) (label weights ${Object.entries(r.labelWeights).map(([k, v]) => `${k} ${v}`).join(', ')}); held out: ${r.heldoutCases.join(', ')}`,
        `  export check: max |onnxruntime − torch| ${r.exportCheck.maxAbsDiff.toExponential(1)} (tolerance ${r.exportCheck.tolerance.toExponential(1)})`,
        `  model → ${r.modelDir}${r.decision === 'rejected' ? ' (kept as a rejected candidate: use the parent)' : ''}`,
      ].join('\n'));
    });

  atlas
    .command('finetune-hook')
    .description('export the merged labels (original > revised > pseudo) in the layout tools/train/train3d.py reads, with a held-out split and the manifest of the model to come; prints the exact trainer command and the next round\'s command (trains nothing)')
    .requiredOption('--data <dir>', 'the data set')
    .requiredOption('--merged <dir>', 'output folder of atlas merge / atlas run (labelsTr/, provenance.json)')
    .requiredOption('--out <dir>', 'hook folder (train/, heldout/, <model>-ft/, finetune.json)')
    .option('--model <path>', 'the model to fine-tune: its manifest is reused, its card.json gives the recipe')
    .option('--family <name>', 'unet, resunet or segresnet when no model card says (default unet)')
    .option('--only-revised', 'train on the cases with a revised organ only (default: every merged case)')
    .option('--heldout <dir>', 'an existing held-out set (imagesTr/, truthTr/); default a seeded share of the cases')
    .option('--heldout-fraction <0..1>', 'share of the cases held out (default 0.2, at least one)')
    .option('--steps <n>', 'training steps (default: the card\'s, else 500)')
    .option('--threads <n>', 'trainer threads (default 2)')
    .option('--python <path>', 'Python with torch (default /usr/bin/python3, Debian\'s python3-torch)')
    .option('--cases <ids>', 'comma-separated case ids')
    .option('--json', 'print the summary as JSON')
    .addHelpText('after', '\nExample:\n  medmask atlas finetune-hook --data data/abdomen --merged round-1 --out finetune --model models/demo/demo-unet3d\n  # then run the printed trainer command (minutes to hours on CPU), then the printed atlas run')
    .action(async (o: { data: string; merged: string; out: string; model?: string; family?: string; onlyRevised?: boolean; heldout?: string; heldoutFraction?: string; steps?: string; threads?: string; python?: string; cases?: string; json?: boolean }) => {
      const cases = list(o.cases);
      const r = await atlasFinetuneHook(o.data, o.merged, o.out, {
        ...(o.model ? { model: o.model } : {}),
        ...(o.family ? { family: choice('--family', o.family, ['unet', 'resunet', 'segresnet'] as const, 'unet') } : {}),
        only: o.onlyRevised ? 'revised' : 'all',
        ...(o.heldout ? { heldout: o.heldout } : {}),
        ...(o.heldoutFraction !== undefined ? { heldoutFraction: numberOption('--heldout-fraction', o.heldoutFraction, 0.2, (v) => v > 0 && v < 1, 'a fraction in (0, 1)') } : {}),
        ...(o.steps !== undefined ? { steps: numberOption('--steps', o.steps, 500, (v) => Number.isInteger(v) && v >= 1, 'a whole number ≥ 1') } : {}),
        ...(o.threads !== undefined ? { threads: numberOption('--threads', o.threads, 2, (v) => Number.isInteger(v) && v >= 1 && v <= 256, 'a whole number of threads') } : {}),
        ...(o.python ? { python: o.python } : {}),
        ...(cases ? { cases } : {}),
      });
      print(o.json, r, [
        `fine-tune set: ${r.cases.train.length} training case(s) → ${r.train}; held out: ${r.cases.heldout.length ? r.cases.heldout.join(', ') : r.heldout}`,
        `manifest of the model to come: ${join(r.modelDir, 'model.json')}`,
        ...r.notes.map((n) => `note: ${n}`),
        '',
        'train (PyTorch, tools/train/README.md):',
        `  ${r.command}`,
        'then re-predict in a new round:',
        `  ${r.next}`,
      ].join('\n'));
    });
}
