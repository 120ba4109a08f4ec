/**
 * A simulated AbdomenAtlas-8K campaign (Qu et al., NeurIPS 2023) with known truth, run through the
 * product's own file-based steps, then measured:
 *
 * 1. **Data**: seeded 3D abdominal phantoms from several sources, each labelling only some organs
 *    (`writeAbdomenDataset` with `sources`; partial labels in labelsTr/, full truth in truthTr/).
 * 2. **Predictions**: several simulated models (`core/atlas/simulate.ts`: seeded, organ-dependent
 *    missed parts, false blobs, boundary biases, shared and model-specific mistakes) written as soft
 *    predictions in WORK/predictions/<model>/<case>/<organ>.nii.gz — the layout `atlas predict`
 *    writes and imported predictions use. (When the demo 3D models exist, `atlasPredict` fills the
 *    same folder and the rest is unchanged.)
 * 3. **Pseudo-labels and attention** (`atlasAttention`), **ranking and selection** (`atlasRank`).
 * 4. **A simulated annotator** reviews the selected cases: for each organ without an original label
 *    that attention flagged, it replaces the flagged region (grown by `annotatorMargin` voxels) with
 *    the truth and leaves the rest of the pseudo-label alone; revised labels go to
 *    WORK/review/round-1/ with revised.json.
 * 5. **Merge** (`atlasMerge`: original > revised > pseudo) into OUT/final/labelsTr.
 * 6. **Report** (`atlas-report.ts`): attention's voxel- and region-level sensitivity / precision
 *    for real errors (where pseudo-label and truth disagree), Dice of the final labels against the
 *    fraction reviewed for ranked, random and oracle selection at the same budget per source
 *    (every case is also reviewed in memory so any selection's outcome is known), expert minutes
 *    and the speed-up over by-hand annotation.
 *
 * Dice of a case is the mean over the organs it has no original label for (the ones the campaign
 * has to produce); labelled organs are kept as they are by the merge.
 *
 * Phantom voxels are 3–8 mm, while the paper's 2-iteration 3×3×3 opening was tuned for ≈ 1.5 mm CT
 * voxels (it ignores disagreement thinner than ≈ 5 voxels ≈ 7 mm); the campaign therefore opens once
 * by default (`attention: { erosions: 1, dilations: 1 }`). Pass `{ erosions: 2, dilations: 2 }` for
 * the paper's cleaning.
 * @module
 */
import { existsSync, readdirSync } from 'node:fs';
import { cp, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { MedmaskError } from '../core/errors.js';
import { meanLabelDice } from '../core/metrics/segmentation.js';
import { Rng } from '../core/random.js';
import { createVolume, type Volume } from '../core/volume.js';
import type { AttentionOptions } from '../core/atlas/attention.js';
import { binaryDilation } from '../core/atlas/morphology.js';
import { mergeLabels } from '../core/atlas/merge.js';
import { addDetection, compareAttention, detectionRates, emptyDetection, organError, type DetectionCounts, type DetectionRates } from '../core/atlas/attention-eval.js';
import { caseTrouble, simulateOrganPrediction, DEFAULT_SIMULATED_MODELS, type SimulatedModel } from '../core/atlas/simulate.js';
import type { EffortRates } from '../core/atlas/effort.js';
import type { SourceName } from '../core/phantom/abdomen.js';
import { atomicWrite } from '../io/atomic.js';
import { readVolume, writeVolume } from '../io/index.js';
import { atlasAttention, atlasMerge, atlasPredict, atlasRank, readAtlasDataset } from './atlas.js';
import { buildAtlasReport, writeAtlasReport, type AtlasReport } from './atlas-report.js';
import { writeAbdomenDataset } from './phantoms.js';

/** Options for {@link runAtlasCampaign}. */
export interface CampaignOptions {
  /** Cases (default 16). */
  n?: number;
  /** Seed of everything (default 1). */
  seed?: number;
  /** Phantom in-plane voxels (default 48). */
  size?: number;
  /** Sources, each with its own partial-label policy (default flare, lits, kits, msd_pancreas). */
  sources?: SourceName[];
  /**
   * Realistic phantoms (default true): each source's scanner profile and findings — tumours,
   * cysts, variants, metal, truncation (docs/phantoms.md) — so models fail on some cases and not
   * others, as on real CT. false: the clean phantoms of earlier releases.
   */
  realistic?: boolean;
  /** Simulated models (default {@link DEFAULT_SIMULATED_MODELS}: three; [] for none). */
  models?: readonly SimulatedModel[];
  /**
   * Real segmenters (model folders with model.json, e.g. models/demo/demo-unet3d) run through
   * `atlasPredict` — the sliding window — next to the simulated models (or instead: `models: []`).
   */
  segmenters?: string[];
  /**
   * Reuse the segmenters' predictions of an earlier campaign folder with the same n, seed, size,
   * sources and phantoms (its work/predictions is copied; checked case by case), to compare
   * attention variants without running the models again.
   */
  predictionsFrom?: string;
  /** Share of each source's cases reviewed by the ranked policy (default 0.05, the paper's). */
  reviewFraction?: number;
  /** Budgets of the Dice-vs-fraction curve. */
  fractions?: number[];
  /** Voxels the annotator looks beyond the flagged region (default 1). */
  annotatorMargin?: number;
  /** Attention thresholds and opening (default: paper thresholds, one erosion and one dilation). */
  attention?: AttentionOptions;
  /** Add organ shape priors to attention (atlasAttention's `shapePriors`; default false). */
  shapePriors?: boolean;
  /**
   * Attention refinements (atlasAttention's `minComponentMm3`, `openingMm`, `calibrateQuantile`;
   * default none: AbdomenAtlas's attention with the campaign's opening).
   */
  refine?: { minComponentMm3?: number; minExpectedErrorMm3?: number; openingMm?: number; calibrateQuantile?: number };
  /**
   * Ranking measure (atlasRank's `measure`): `binary` (default, the paper's attention voxels),
   * `heat`, or `dice` — the case's expected Dice loss (core/atlas/ranking.ts).
   */
  rankMeasure?: 'binary' | 'heat' | 'dice';
  /**
   * Organ-level priors in the ranking (atlasRank's `organPriors`; default false). The simulated
   * annotator re-draws a flagged organ of a reviewed case completely, as an expert told "this
   * spleen is missing / of an implausible size" would.
   */
  organPriors?: boolean;
  /** Smallest connected component counted at region level (default 8 voxels). */
  minRegionVoxels?: number;
  /**
   * …in mm³ instead (per case: ⌈mm³ / voxel volume⌉ voxels, at least 1), so that "a region" means
   * the same at every voxel size; replaces minRegionVoxels.
   */
  minRegionMm3?: number;
  /** Expert rates (default the paper's). */
  rates?: Partial<EffortRates>;
  /** Random draws per budget (default 200). */
  randomDraws?: number;
  /** Simulation knobs: share of hard cases (0.3), trouble scale (1). */
  hardShare?: number;
  troubleScale?: number;
  /** Progress: stage, done, total. */
  onProgress?: (stage: string, done: number, total: number) => void;
}

/** One case of the campaign. */
export interface CampaignCase {
  id: string;
  source: string;
  labelled: string[];
  /** Simulated difficulty and number of trouble spots. */
  difficulty: number;
  spots: number;
  priority: number;
  selected: boolean;
  /** Organs the annotator revised (flagged, without an original label). */
  revisedOrgans: string[];
  /** Mean Dice over the organs without an original label: without review, after review. */
  diceBefore: number;
  diceAfter: number;
  /** Voxels the merged labels get wrong without review. */
  errorVoxels: number;
  /** …after review. */
  errorVoxelsAfter: number;
  /** Mean Dice of the merged labels atlasMerge wrote (reviewed or not, as selected), read back. */
  finalDice: number;
}

/** What {@link runAtlasCampaign} returns. */
export interface CampaignResult {
  dir: string;
  data: string;
  work: string;
  final: string;
  cases: CampaignCase[];
  report: AtlasReport;
  reportFiles: { json: string; html: string };
  attention: DetectionRates & { counts: DetectionCounts };
  seconds: Record<string, number>;
}

function errorVoxels(pred: ArrayLike<number>, truth: ArrayLike<number>): number {
  let e = 0;
  for (let v = 0; v < pred.length; v++) if (pred[v] !== truth[v]) e++;
  return e;
}

/**
 * The simulated annotator: for each organ to revise, the pseudo-label outside the flagged region
 * (grown by `margin` voxels, 26-neighbourhood) and the truth inside it.
 * @param pseudo - pseudo-label map
 * @param truth - ground truth
 * @param flagged - per organ label value: its binary attention
 * @param organs - label values to revise
 * @param shape - grid
 * @param margin - voxels beyond the flagged region the annotator also fixes
 * @returns the revised label map (only `organs` painted)
 */
export function simulateAnnotator(pseudo: Uint8Array, truth: ArrayLike<number>, flagged: ReadonlyMap<number, Uint8Array>, organs: readonly number[], shape: readonly [number, number, number], margin = 1): Uint8Array {
  const n = pseudo.length;
  const out = new Uint8Array(n);
  for (const o of organs) {
    const a = flagged.get(o);
    const region = a ? (margin > 0 ? binaryDilation(a, shape, { iterations: margin }) : a) : new Uint8Array(n);
    for (let v = 0; v < n; v++) {
      const inOrgan = region[v] ? truth[v] === o : pseudo[v] === o;
      if (inOrgan) out[v] = o;
    }
  }
  return out;
}

/**
 * Run a simulated campaign in `dir` (data/, work/, final/, report/) and report on it.
 * @param dir - output folder (created); its data/, work/, final/ and report/ subfolders are replaced
 * @param opts - size of the campaign, models, review fraction, attention options, rates
 * @returns per case outcomes, the report, attention's detection rates, seconds per stage
 * @throws MedmaskError USAGE for bad options; errors of the steps it runs
 * @example
 * const r = await runAtlasCampaign('campaign', { n: 16, size: 48 });
 * r.report.curve?.find((p) => p.fraction === 0.25); // ranked vs random Dice
 */
export async function runAtlasCampaign(dir: string, opts: CampaignOptions = {}): Promise<CampaignResult> {
  const n = opts.n ?? 16;
  const seed = opts.seed ?? 1;
  const size = opts.size ?? 48;
  const sources = opts.sources ?? (['flare', 'lits', 'kits', 'msd_pancreas'] as SourceName[]);
  const models = opts.models ?? DEFAULT_SIMULATED_MODELS;
  const fraction = opts.reviewFraction ?? 0.05;
  const margin = opts.annotatorMargin ?? 1;
  const minRegion = opts.minRegionVoxels ?? 8;
  const attentionOpts: AttentionOptions = { erosions: 1, dilations: 1, ...opts.attention };
  if (!Number.isInteger(n) || n < 2) throw new MedmaskError('USAGE', `campaign size n = ${n} must be a whole number ≥ 2`, { hint: 'e.g. --n 16' });
  if (!models.length && !opts.segmenters?.length && !opts.predictionsFrom) throw new MedmaskError('USAGE', 'a campaign needs at least one model', { hint: 'pass simulated models, segmenters, or leave both out for three simulated models' });
  const names = new Set<string>();
  for (const m of models) {
    if (names.has(m.name) || !/^[A-Za-z0-9._-]+$/.test(m.name)) throw new MedmaskError('USAGE', `model name "${m.name}" is repeated or not a folder name`, { hint: 'use distinct names of letters, digits, . _ -' });
    names.add(m.name);
  }
  if (!Number.isInteger(margin) || margin < 0) throw new MedmaskError('USAGE', `annotator margin ${margin} must be a whole number ≥ 0`);
  const data = join(dir, 'data'), work = join(dir, 'work'), final = join(dir, 'final');
  // A campaign starts clean: stale predictions or revisions of an earlier run would be read back.
  for (const sub of [data, work, final, join(dir, 'report')]) await rm(sub, { recursive: true, force: true });
  const seconds: Record<string, number> = {};
  let t0 = performance.now();
  const lap = (stage: string) => {
    const t = performance.now();
    seconds[stage] = (t - t0) / 1000;
    t0 = t;
  };
  const progress = opts.onProgress;

  const realistic = opts.realistic ?? true;
  await writeAbdomenDataset(data, { n, seed, size, sources, realistic }, (d, t) => progress?.('phantoms', d, t));
  lap('phantoms');
  const atlas = await readAtlasDataset(data);
  const organs = atlas.organs;
  const organName = Object.fromEntries(organs.map((o) => [o.value, o.name]));
  const root = new Rng(seed).fork('campaign');
  const trouble = new Map<string, { difficulty: number; spots: number }>();
  const truthPath = (id: string) => join(data, 'truthTr', `${id}.nii.gz`);
  let done = 0;
  for (const c of atlas.cases) {
    const image = await readVolume(c.image);
    const truth = await readVolume(truthPath(c.id));
    const shape = truth.shape;
    const body = new Uint8Array(image.data.length);
    for (let v = 0; v < body.length; v++) body[v] = image.data[v]! > -500 ? 1 : 0;
    const rng = root.fork(c.id);
    const t = caseTrouble(truth.data, shape, rng.fork('trouble'), { organs: organName, spacing: truth.spacing, body, ...(opts.hardShare !== undefined ? { hardShare: opts.hardShare } : {}), ...(opts.troubleScale !== undefined ? { troubleScale: opts.troubleScale } : {}) });
    trouble.set(c.id, { difficulty: t.difficulty, spots: t.spots.length });
    const geo = { spacing: image.spacing, origin: image.origin, direction: image.direction };
    for (const m of models) {
      const caseDir = join(work, 'predictions', m.name, c.id);
      await mkdir(caseDir, { recursive: true });
      for (const o of organs) {
        const p = simulateOrganPrediction(truth.data, shape, o.value, t, m, rng.fork(`${m.name}/${o.name}`), body);
        await writeVolume(createVolume(shape, 'uint8', { ...geo, data: p, meta: { source: `${m.name} simulated soft prediction`, description: 'p*255' } }), join(caseDir, `${o.name}.nii.gz`));
      }
    }
    progress?.('predict', ++done, atlas.cases.length);
  }
  if (opts.predictionsFrom) {
    const from = join(opts.predictionsFrom, 'work', 'predictions');
    for (const m of existsSync(from) ? readdirSync(from) : []) {
      for (const c of atlas.cases) {
        if (!existsSync(join(from, m, c.id))) throw new MedmaskError('NOT_FOUND', `${join(from, m)}: no prediction for case ${c.id}`, { hint: 'predictionsFrom must be a campaign folder run with the same n, seed, size and sources' });
      }
      await cp(join(from, m), join(work, 'predictions', m), { recursive: true });
    }
  } else if (opts.segmenters?.length) await atlasPredict(data, opts.segmenters, work, { onProgress: (d, t) => progress?.('segment', d, t) });
  lap('predict');

  const summaries = await atlasAttention(data, work, { ...attentionOpts, ...opts.refine, ...(opts.shapePriors ? { shapePriors: true } : {}), onProgress: (d, t) => progress?.('attention', d, t) });
  lap('attention');
  const ranking = await atlasRank(work, { fraction, ...(opts.organPriors ? { organPriors: true } : {}), ...(opts.rankMeasure ? { measure: opts.rankMeasure } : {}) });
  const selected = new Set(ranking.selected);
  const priorOrgans = new Map(ranking.ranked.map((r) => [r.id, new Set((r.priorFlags ?? []).map((f) => f.organ))]));
  const priorityOf = new Map(ranking.ranked.map((r) => [r.id, r.priority]));
  lap('rank');

  // Review every case in memory (the campaign's selection also on disk), evaluate attention.
  const reviewDir = join(work, 'review', 'round-1');
  await mkdir(reviewDir, { recursive: true });
  const revisedJson: Record<string, string[]> = {};
  const counts = emptyDetection();
  const perOrgan: Record<string, DetectionCounts> = Object.fromEntries(organs.map((o) => [o.name, emptyDetection()]));
  const pairs: { attention: number; error: number; case: string; organ: string }[] = [];
  const outcomes: Omit<CampaignCase, 'finalDice'>[] = [];
  const summaryOf = new Map(summaries.map((s) => [s.case, s]));
  done = 0;
  for (const c of atlas.cases) {
    const truth = await readVolume(truthPath(c.id));
    const shape = truth.shape;
    const nv = truth.data.length;
    const pseudo = (await readVolume(join(work, 'pseudo', `${c.id}.nii.gz`))).data as Uint8Array;
    const partial = c.label ? (await readVolume(c.label)).data : new Uint8Array(nv);
    const labelled = summaryOf.get(c.id)?.labelled ?? c.labelled ?? [];
    const flagged = new Map<number, Uint8Array>();
    for (const o of organs) {
      const heat = (await readVolume(join(work, 'attention', c.id, `${o.name}.nii.gz`))).data;
      const a = new Uint8Array(nv);
      let any = 0;
      for (let v = 0; v < nv; v++) if (heat[v]) a[v] = any = 1;
      if (any) flagged.set(o.value, a);
      // An organ-level flag: the annotator re-draws the whole organ (attention is scored as it is).
      if (priorOrgans.get(c.id)?.has(o.name)) flagged.set(o.value, new Uint8Array(nv).fill(1));
      const err = organError(pseudo, truth.data, o.value);
      const cmp = compareAttention(a, err, shape, opts.minRegionMm3 !== undefined ? Math.max(1, Math.ceil(opts.minRegionMm3 / (truth.spacing[0] * truth.spacing[1] * truth.spacing[2]) - 1e-9)) : minRegion);
      addDetection(counts, cmp);
      addDetection(perOrgan[o.name]!, cmp);
      pairs.push({ attention: cmp.attentionVoxels, error: cmp.errorVoxels, case: c.id, organ: o.name });
    }
    const unlabelled = organs.filter((o) => !labelled.includes(o.name));
    const toRevise = unlabelled.filter((o) => flagged.has(o.value)).map((o) => o.value);
    const revised = simulateAnnotator(pseudo, truth.data, flagged, toRevise, shape, margin);
    const all = organs.map((o) => o.value);
    const original = { data: partial, organs: organs.filter((o) => labelled.includes(o.name)).map((o) => o.value) };
    const before = mergeLabels({ original, pseudo: { data: pseudo, organs: all } }, all, nv).data;
    const after = mergeLabels({ original, revised: { data: revised, organs: toRevise }, pseudo: { data: pseudo, organs: all } }, all, nv).data;
    const scored = unlabelled.map((o) => o.value);
    if (selected.has(c.id)) {
      const geo = { spacing: truth.spacing, origin: truth.origin, direction: truth.direction };
      await writeVolume(createVolume(shape, 'uint8', { ...geo, data: revised }), join(reviewDir, `${c.id}.nii.gz`), { labelMap: true });
      revisedJson[c.id] = toRevise.map((v) => organName[v]!);
    }
    outcomes.push({
      id: c.id,
      source: c.source,
      labelled,
      difficulty: trouble.get(c.id)!.difficulty,
      spots: trouble.get(c.id)!.spots,
      priority: priorityOf.get(c.id) ?? 0,
      selected: selected.has(c.id),
      revisedOrgans: toRevise.map((v) => organName[v]!),
      diceBefore: meanLabelDice(before, truth.data, scored),
      diceAfter: meanLabelDice(after, truth.data, scored),
      errorVoxels: errorVoxels(before, truth.data),
      errorVoxelsAfter: errorVoxels(after, truth.data),
    });
    progress?.('review', ++done, atlas.cases.length);
  }
  await atomicWrite(join(reviewDir, 'revised.json'), JSON.stringify(revisedJson, null, 1) + '\n');
  lap('review');

  await atlasMerge(data, work, final, { revised: reviewDir });
  const cases: CampaignCase[] = [];
  for (const o of outcomes) {
    const truth = await readVolume(truthPath(o.id));
    const merged: Volume = await readVolume(join(final, 'labelsTr', `${o.id}.nii.gz`));
    const scored = organs.filter((x) => !o.labelled.includes(x.name)).map((x) => x.value);
    cases.push({ ...o, finalDice: meanLabelDice(merged.data, truth.data, scored) });
  }
  lap('merge');

  const report = buildAtlasReport({
    title: 'AbdomenAtlas simulated campaign',
    context: {
      'cases': n, 'seed': seed, 'phantom size': size, 'sources': sources.join(', '), 'phantoms': realistic ? 'realistic (scanner profiles, findings)' : 'clean',
      'models (simulated)': models.map((m) => `${m.name} (skill ${m.skill}, boundary ${m.boundary > 0 ? '+1' : m.boundary})`).join(', ') || 'none',
      ...(opts.segmenters?.length ? { 'segmenters (sliding window)': opts.segmenters.join(', ') } : {}),
      'attention opening': `${attentionOpts.erosions ?? 2} erosion(s), ${attentionOpts.dilations ?? 2} dilation(s)`,
      'attention shape priors': opts.shapePriors ? 'holes and stray pieces' : 'off (AbdomenAtlas)',
      'attention refinements': opts.refine && Object.keys(opts.refine).length ? JSON.stringify(opts.refine) : 'none (AbdomenAtlas)',
      'organ priors in the ranking': opts.organPriors ? 'missing organ, volume, pieces vs the source' : 'off (AbdomenAtlas)',
      'ranking measure': opts.rankMeasure === 'dice' ? 'expected Dice loss per organ, averaged' : opts.rankMeasure === 'heat' ? 'heat-map sum' : 'attention voxels (AbdomenAtlas)',
      'annotator margin (voxels)': margin,
      ...(opts.minRegionMm3 !== undefined ? { 'region size (mm³)': opts.minRegionMm3 } : { 'region size (voxels)': minRegion }),
      'Dice': 'mean over each case\'s organs without an original label',
    },
    cases: cases.map((c) => ({ id: c.id, source: c.source, priority: c.priority, organsToAnnotate: organs.length - c.labelled.length, diceBefore: c.diceBefore, diceAfter: c.diceAfter, errorVoxels: c.errorVoxels, selected: c.selected })),
    organs: organs.map((o) => o.name),
    reviewFraction: fraction,
    ...(opts.fractions ? { fractions: opts.fractions } : {}),
    ...(opts.rates ? { rates: opts.rates } : {}),
    ...(opts.randomDraws ? { randomDraws: opts.randomDraws } : {}),
    seed,
    attention: { counts, perOrgan, pairs, minRegionVoxels: minRegion },
  });
  const reportFiles = await writeAtlasReport(report, join(dir, 'report'));
  await atomicWrite(join(dir, 'report', 'cases.json'), JSON.stringify(cases, null, 1) + '\n');
  lap('report');
  return { dir, data, work, final, cases, report, reportFiles, attention: { ...detectionRates(counts), counts }, seconds };
}
