/**
 * The AbdomenAtlas-8K round (Qu et al., NeurIPS 2023) over a Decathlon / nnU-Net data set with
 * partial labels, as resumable steps that read and write files in a work folder:
 *
 * ```
 * WORK/predictions/<model>/<case>/<organ>.nii.gz   soft prediction, uint8 = p · 255 (or float 0…1), image grid
 *                                                  (or <organ>.nii: uncompressed, e.g. a job's scratch folder)
 * WORK/predictions/<model>/<case>.nii.gz           …or a label map (imported models), with
 * WORK/predictions/<model>/labels.json             {"1": "liver", …} when its values differ from the data set's
 * WORK/pseudo/<case>.nii.gz                        pseudo-label map (argmax of the models' mean, > 0.5)
 * WORK/attention/<case>/<organ>.nii.gz             heat map, uint8 = heat · 255, ≥ 1 wherever the binary attention is set
 * WORK/attention/<case>.json                       per organ: flagged voxels, heat sum, parts; source, labelled organs
 * WORK/ranking.json, WORK/review.csv              priorities, ranks, the cases selected for review
 * OUT/labelsTr/<case>.nii.gz, OUT/provenance.json  merged labels: original > revised > pseudo
 * ```
 *
 * `predict` runs ONNX segmenters ({@link Segmenter}); predictions of any other model (TotalSegmentator,
 * nnU-Net, MONAI bundles) can be dropped into WORK/predictions/<name>/ instead.
 * @module
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { MedmaskError } from '../core/errors.js';
import { createVolume, sameGeometry, type Volume } from '../core/volume.js';
import { ATLAS_ATTENTION_DEFAULTS, ensembleStatistics, organAttention, type AttentionOptions, type ProbabilityArray } from '../core/atlas/attention.js';
import { addSourceStatistics, calibratedThresholds, expectedErrorWithin, openingIterations, sourceStatistics, type SourceStatistics } from '../core/atlas/attention-refine.js';
import { connectedComponents } from '../core/masks/binary.js';
import { shapePriorFlags, type ShapePriorOptions } from '../core/atlas/shape-priors.js';
import { MeanAccumulator } from '../core/atlas/pseudo-label.js';
import { organPriorFlags, type CaseShapeSummary, type OrganPriorFlag, type OrganPriorOptions } from '../core/atlas/organ-priors.js';
import { casePriority, rankCases, selectForReview, type PriorityOptions, type RankedCase, type SelectOptions } from '../core/atlas/ranking.js';
import { mergeLabels, type Provenance } from '../core/atlas/merge.js';
import { atomicWrite } from '../io/atomic.js';
import { checkLabelMap, readSegmentationDataset, type SegmentationCase, type SegmentationDataset } from '../io/dataset.js';
import { readVolume, writeVolume } from '../io/index.js';
import { Segmenter, type PredictOptions, type SegmenterLoadOptions } from '../runtime/segment.js';

/** Progress: steps done, total, and what was just done. */
export type AtlasProgress = (done: number, total: number, note?: string) => void;

/** A case of the data set with what the atlas needs. */
export interface AtlasCase {
  id: string;
  image: string;
  /** Partial label map (labelsTr), if any. */
  label?: string;
  /** Source data set (from dataset.json's "medmask" entry; else "default"). */
  source: string;
  /** Organs the source labels; undefined = decide from the label map's values. */
  labelled?: string[];
}

/** The data set as the atlas reads it. */
export interface AtlasDataset {
  ds: SegmentationDataset;
  /** Organ label value → name (no background), by value. */
  organs: { value: number; name: string }[];
  cases: AtlasCase[];
}

/**
 * Read a data set for the atlas: nnU-Net / Decathlon layout; sources and labelled organs from
 * dataset.json's `medmask.cases` when present (as `medmask phantoms 3d` writes).
 * @param dir - the data set folder
 * @param only - restrict to these case ids
 * @returns organs and cases
 * @throws MedmaskError from the data set reader; USAGE for unknown case ids
 */
export async function readAtlasDataset(dir: string, only?: string[]): Promise<AtlasDataset> {
  const ds = await readSegmentationDataset(dir);
  const organs = Object.entries(ds.labels).map(([k, name]) => ({ value: Number(k), name })).filter((o) => o.value > 0).sort((a, b) => a.value - b.value);
  if (!organs.length) throw new MedmaskError('DATASET_INVALID', `${dir}: dataset.json names no organ labels`, { hint: 'add "labels": {"background": 0, "liver": 1, …}' });
  const meta = new Map<string, { source?: string; labelled?: string[] }>();
  const mm = (ds.json.medmask as { cases?: { case: string; source?: string; labelled?: string[] }[] } | undefined)?.cases;
  for (const c of mm ?? []) meta.set(c.case, c);
  let cases: SegmentationCase[] = ds.cases.filter((c) => c.split === 'train' || c.images.length);
  if (only?.length) {
    const ids = new Set(cases.map((c) => c.id));
    const bad = only.filter((id) => !ids.has(id));
    if (bad.length) throw new MedmaskError('USAGE', `case(s) ${bad.join(', ')} are not in ${dir}`, { hint: `cases are named like ${cases[0]?.id}` });
    cases = cases.filter((c) => only.includes(c.id));
  }
  const names = new Set(organs.map((o) => o.name));
  return {
    ds,
    organs,
    cases: cases.map((c) => {
      const m = meta.get(c.id);
      const labelled = m?.labelled?.filter((o) => names.has(o));
      return { id: c.id, image: c.images[0]!, ...(c.label ? { label: c.label } : {}), source: m?.source ?? 'default', ...(labelled ? { labelled } : {}) };
    }),
  };
}

/** The folder name a model's predictions go to: the model folder's name (or the manifest's / .onnx's parent). */
export function modelDirName(path: string): string {
  const b = basename(path.replace(/[\\/]+$/, ''));
  return b === 'model.json' || b.endsWith('.onnx') ? basename(join(path, '..')) : b.replace(/\.json$/, '');
}

/** Options for {@link atlasPredict}. */
export interface AtlasPredictOptions extends Omit<PredictOptions, 'onProgress'> {
  /** Model name (as the manifest) → data set organ name, for models that name organs differently. */
  rename?: Record<string, string>;
  /** Case ids to run (default all). */
  cases?: string[];
  load?: SegmenterLoadOptions;
  /**
   * Write the soft predictions gzip-compressed (`<organ>.nii.gz`, default) or as plain `<organ>.nii`
   * (false): for a work folder that is scratch and read back at once, as the atlas job's per-case
   * tasks do — deflating each organ map cost more than the rest of the file handling of a case.
   */
  compress?: boolean;
  onProgress?: AtlasProgress;
}

/** What {@link atlasPredict} did, per model. */
export interface AtlasPredictResult {
  models: { name: string; dir: string; cases: number; seconds: number; windows: number; skipped: number; secondsPerCase: number }[];
}

/**
 * Run each segmenter over every case and write its soft predictions per organ.
 * @param data - the data set folder
 * @param models - model folders / manifests / .onnx files
 * @param work - the work folder
 * @param opts - sliding-window options, organ renaming, case subset, progress
 * @returns per model: cases, windows, seconds
 * @throws MedmaskError MODEL_INVALID when a model predicts an organ the data set does not name
 *   (and no renaming maps it)
 * @example
 * await atlasPredict('data/abdomen', ['models/demo/demo-unet3d'], 'work');
 */
export async function atlasPredict(data: string, models: string[], work: string, opts: AtlasPredictOptions = {}): Promise<AtlasPredictResult> {
  if (!models.length) throw new MedmaskError('USAGE', 'no model was given', { hint: 'pass --model DIR (repeat for several)' });
  const atlas = await readAtlasDataset(data, opts.cases);
  const known = new Set(atlas.organs.map((o) => o.name));
  const segs: Segmenter[] = [];
  for (const m of models) {
    const seg = await Segmenter.load(m, opts.load);
    const unknown = seg.organs.map((o) => opts.rename?.[o.name] ?? o.name).filter((n) => !known.has(n));
    if (unknown.length) {
      await seg.release();
      for (const s of segs) await s.release();
      throw new MedmaskError('MODEL_INVALID', `${m} predicts organ(s) ${unknown.join(', ')} that the data set does not name (${[...known].join(', ')})`, {
        hint: 'map them with a rename file, e.g. {"gall_bladder": "gallbladder"}',
      });
    }
    segs.push(seg);
  }
  const total = segs.length * atlas.cases.length;
  let done = 0;
  const result: AtlasPredictResult = { models: [] };
  for (let s = 0; s < segs.length; s++) {
    const seg = segs[s]!;
    const name = modelDirName(models[s]!);
    const dir = join(work, 'predictions', name);
    const t0 = performance.now();
    let windows = 0, skipped = 0;
    for (const c of atlas.cases) {
      const image = await readVolume(c.image);
      const { onProgress: _p, rename: _r, cases: _c, load: _l, compress: _z, ...predictOpts } = opts;
      const pred = await seg.predict(image, predictOpts);
      windows += pred.windows.run;
      skipped += pred.windows.skipped;
      const caseDir = join(dir, c.id);
      await mkdir(caseDir, { recursive: true });
      const geo = { spacing: image.spacing, origin: image.origin, direction: image.direction };
      for (let ch = 0; ch < pred.labels.length; ch++) {
        if (pred.labels[ch] === 0) continue;
        const organ = opts.rename?.[pred.names[ch]!] ?? pred.names[ch]!;
        const p = pred.toOriginal(ch);
        const vol = p instanceof Uint8Array
          ? createVolume(image.shape, 'uint8', { ...geo, data: p, meta: { source: `${name} soft prediction`, description: 'p*255' } })
          : createVolume(image.shape, 'float32', { ...geo, data: p, meta: { source: `${name} soft prediction` } });
        await writeVolume(vol, join(caseDir, `${organ}${opts.compress === false ? '.nii' : '.nii.gz'}`));
      }
      done++;
      opts.onProgress?.(done, total, `${name} ${c.id}`);
    }
    const seconds = (performance.now() - t0) / 1000;
    result.models.push({ name, dir, cases: atlas.cases.length, seconds, windows, skipped, secondsPerCase: seconds / Math.max(1, atlas.cases.length) });
    await atomicWrite(join(dir, 'run.json'), JSON.stringify({ model: models[s], manifest: seg.source, ...result.models[result.models.length - 1] }, null, 1) + '\n');
    await seg.release();
  }
  return result;
}

/** The organ a per-organ prediction file names (`<organ>.nii.gz` or `<organ>.nii`), or undefined for other files. */
function predictionStem(file: string): string | undefined {
  const ext = file.endsWith('.nii.gz') ? '.nii.gz' : file.endsWith('.nii') ? '.nii' : undefined;
  return ext ? file.slice(0, -ext.length) : undefined;
}

/** One model's prediction of one case, read lazily per organ. */
interface CasePredictions {
  model: string;
  /** Organ name → probabilities on the image grid; undefined when this model lacks the organ. */
  organ(name: string): Promise<ProbabilityArray | undefined>;
}

async function readLabelsJson(dir: string): Promise<Record<number, string> | undefined> {
  const p = join(dir, 'labels.json');
  if (!existsSync(p)) return undefined;
  try {
    const j = JSON.parse(await readFile(p, 'utf8')) as Record<string, string>;
    return Object.fromEntries(Object.entries(j).map(([k, v]) => [Number(k), v]));
  } catch (e) {
    throw new MedmaskError('DATASET_INVALID', `${p}: not valid JSON (${(e as Error).message})`, { cause: e, hint: 'write {"1": "liver", …}' });
  }
}

function asProbabilities(v: Volume, file: string): ProbabilityArray {
  if (v.data instanceof Uint8Array) return v.data;
  if (v.data instanceof Float32Array) return v.data;
  const f = Float32Array.from(v.data as ArrayLike<number>);
  for (let i = 0; i < f.length; i++) {
    if (!(f[i]! >= 0 && f[i]! <= 1)) throw new MedmaskError('DATASET_INVALID', `${file}: value ${f[i]} at voxel ${i} is not a probability`, { hint: 'probability maps hold 0…1 (float) or 0…255 (uint8)' });
  }
  return f;
}

async function readRenameJson(dir: string): Promise<Record<string, string> | undefined> {
  const p = join(dir, 'rename.json');
  if (!existsSync(p)) return undefined;
  try {
    return JSON.parse(await readFile(p, 'utf8')) as Record<string, string>;
  } catch (e) {
    throw new MedmaskError('DATASET_INVALID', `${p}: not valid JSON (${(e as Error).message})`, { cause: e, hint: 'write {"model organ name": "data set organ name", …}' });
  }
}

/** Model folders under WORK/predictions (sorted). */
function modelFolders(work: string): string[] {
  const root = join(work, 'predictions');
  const models = existsSync(root) ? readdirSync(root).filter((d) => statSync(join(root, d)).isDirectory()).sort() : [];
  if (!models.length) throw new MedmaskError('NOT_FOUND', `${root}: no model predictions`, { hint: 'run medmask atlas predict first, or put each model\'s predictions in a folder there' });
  return models;
}

/**
 * Check every model folder under WORK/predictions before any work: each case has a prediction
 * (per-organ folder or label map), and per-organ files name organs of the data set (or are mapped
 * by the folder's rename.json).
 * @param work - the work folder
 * @param atlas - the data set
 * @throws MedmaskError NOT_FOUND listing every model and the cases it lacks; DATASET_INVALID naming
 *   a prediction file whose organ the data set does not know
 */
export async function checkPredictionFolders(work: string, atlas: AtlasDataset): Promise<void> {
  const root = join(work, 'predictions');
  const known = new Set(atlas.organs.map((o) => o.name));
  const gaps: string[] = [];
  for (const m of modelFolders(work)) {
    const dir = join(root, m);
    const rename = await readRenameJson(dir);
    const lacking = atlas.cases.filter((c) => !existsSync(join(dir, c.id)) && !existsSync(join(dir, `${c.id}.nii.gz`))).map((c) => c.id);
    if (lacking.length) gaps.push(`${m}: no prediction for case ${lacking.slice(0, 8).join(', ')}${lacking.length > 8 ? ` and ${lacking.length - 8} more` : ''}`);
    for (const c of atlas.cases) {
      const caseDir = join(dir, c.id);
      if (!existsSync(caseDir) || !statSync(caseDir).isDirectory()) continue;
      for (const f of readdirSync(caseDir)) {
        const organ = predictionStem(f);
        if (organ === undefined) continue;
        const name = rename?.[organ] ?? organ;
        if (!known.has(name)) {
          throw new MedmaskError('DATASET_INVALID', `${join(caseDir, f)}: model ${m} predicts organ "${organ}", which the data set does not name (${[...known].join(', ')})`, {
            hint: `map the model's organ names in ${join(dir, 'rename.json')}, e.g. {"${organ}": "${[...known][0]}"}`,
          });
        }
      }
    }
  }
  if (gaps.length) {
    throw new MedmaskError('NOT_FOUND', `${root}: prediction folders miss cases of the data set (${gaps.join('; ')})`, {
      hint: 'run medmask atlas predict for those cases, add the missing files, or restrict the run with --cases',
      details: { gaps },
    });
  }
}

/** The model folders under WORK/predictions and, for one case, how to read each organ. */
async function casePredictions(work: string, image: Volume, c: AtlasCase, organs: { value: number; name: string }[]): Promise<CasePredictions[]> {
  const root = join(work, 'predictions');
  const models = modelFolders(work);
  const out: CasePredictions[] = [];
  for (const m of models) {
    const dir = join(root, m);
    const caseDir = join(dir, c.id);
    const labelFile = join(dir, `${c.id}.nii.gz`);
    const check = (v: Volume, file: string) => {
      if (!sameGeometry(image, v, 1e-2 * Math.min(...image.spacing))) {
        throw new MedmaskError('GEOMETRY_MISMATCH', `${file}: grid ${v.shape.join('×')} differs from the image ${c.image} (${image.shape.join('×')}) in shape or position`, { hint: 'predictions must be on the image grid; resample them first' });
      }
    };
    if (existsSync(caseDir)) {
      const rename = await readRenameJson(dir);
      // Data set organ name → its file in this model's folder.
      const fileOf = new Map<string, string>();
      for (const f of readdirSync(caseDir).sort()) {
        const stem = predictionStem(f);
        if (stem !== undefined) fileOf.set(rename?.[stem] ?? stem, f);
      }
      out.push({
        model: m,
        async organ(name) {
          const file = fileOf.get(name);
          if (file === undefined) return undefined;
          const f = join(caseDir, file);
          const v = await readVolume(f);
          check(v, f);
          return asProbabilities(v, f);
        },
      });
    } else if (existsSync(labelFile)) {
      const mapped = await readLabelsJson(dir);
      const names = mapped ?? Object.fromEntries(organs.map((o) => [o.value, o.name]));
      const known = new Set(organs.map((o) => o.name));
      const unknown = Object.values(names).filter((n) => n !== 'background' && !known.has(n));
      if (unknown.length) throw new MedmaskError('DATASET_INVALID', `${join(dir, 'labels.json')}: organ(s) ${unknown.join(', ')} are not in the data set`, { hint: 'map the model\'s label values to the data set\'s organ names' });
      let cached: Volume | undefined;
      const load = async () => {
        if (cached) return cached;
        const v = await readVolume(labelFile);
        check(v, labelFile);
        // Without labels.json the values must be the data set's: another label list needs a mapping.
        const allowed = new Set([0, ...Object.keys(names).map(Number)]);
        const extra = new Set<number>();
        for (let i = 0; i < v.data.length && extra.size < 6; i++) if (!allowed.has(v.data[i]!)) extra.add(v.data[i]!);
        if (extra.size) {
          throw new MedmaskError('DATASET_INVALID', `${labelFile}: model ${m}'s label map holds value(s) ${[...extra].join(', ')} that ${mapped ? `${join(dir, 'labels.json')} does not map` : 'the data set does not name'}`, {
            hint: `write ${join(dir, 'labels.json')} mapping each of the model's values to an organ of the data set, e.g. {"${[...extra][0]}": "${organs[0]!.name}"}`,
          });
        }
        cached = v;
        return v;
      };
      out.push({
        model: m,
        async organ(name) {
          const value = Object.entries(names).find(([, n]) => n === name)?.[0];
          if (value === undefined) return undefined;
          const d = (await load()).data;
          const p = new Uint8Array(d.length);
          const val = Number(value);
          for (let i = 0; i < d.length; i++) p[i] = d[i] === val ? 255 : 0;
          return p;
        },
      });
    } else {
      throw new MedmaskError('NOT_FOUND', `${dir}: no prediction for case ${c.id} (neither ${c.id}/ nor ${c.id}.nii.gz)`, { hint: `run medmask atlas predict for this case, or remove ${m} from ${root}` });
    }
  }
  return out;
}

/** Options for {@link atlasAttention}. */
export interface AtlasAttentionOptions extends AttentionOptions {
  /**
   * Write the pseudo-labels (`pseudo/`) only: no attention maps, no summaries (returns `[]`). For
   * callers that score an ensemble's pseudo-labels (the loop's campaign accept rule): pass 2, each
   * organ's attention, takes most of the time. Default false.
   */
  pseudoOnly?: boolean;
  /** Organs that do not count as "another organ" for the overlap (AbdomenAtlas leaves vessels out). */
  overlapExclude?: string[];
  /** Pseudo-label threshold on the mean probability (default 0.5). */
  threshold?: number;
  /**
   * Also flag what breaks an organ's shape in the pseudo-label — background enclosed by the organ
   * in a slice, pieces other than the largest (core/atlas/shape-priors.ts) — where the models are
   * confidently wrong together. Default false: AbdomenAtlas's attention as published.
   */
  shapePriors?: boolean | ShapePriorOptions;
  /**
   * Drop attention components (of inconsistency ∨ uncertainty, 26-connected) smaller than this
   * many mm³ after the opening (default none, as the paper).
   */
  minComponentMm3?: number;
  /**
   * Drop attention components whose expected wrong volume — Σ min(p̄, 1 − p̄) over the component
   * times the voxel volume — is below this many mm³ (core/atlas/attention-refine.ts; default none).
   */
  minExpectedErrorMm3?: number;
  /**
   * Opening depth in mm: erosions = dilations = round(depth / voxel size) per case, replacing
   * `erosions` / `dilations` (default none: the iterations as given).
   */
  openingMm?: number;
  /**
   * Per-source calibration: each threshold is raised to this quantile of the values it flags over
   * the source's cases (a first pass over the predictions; default none, the paper's fixed
   * thresholds).
   */
  calibrateQuantile?: number;
  cases?: string[];
  onProgress?: AtlasProgress;
}

/** Summary of one case's attention. */
export interface CaseAttention {
  case: string;
  source: string;
  labelled: string[];
  models: string[];
  shape: number[];
  /** mm³ of one voxel. */
  voxelMm3?: number;
  organs: { organ: string; voxels: number; heatSum: number; inconsistency: number; uncertainty: number; overlap: number; shapePrior?: number; labelled: boolean; models: number; volumeMm3?: number; pieces?: number; expectedErrors?: number; volumeVoxels?: number }[];
  options: Required<AttentionOptions> & { overlapExclude: string[]; threshold: number; shapePriors?: boolean | ShapePriorOptions; minComponentMm3?: number; minExpectedErrorMm3?: number; openingMm?: number; calibrateQuantile?: number };
}

const count = (a: Uint8Array) => { let s = 0; for (let i = 0; i < a.length; i++) s += a[i]!; return s; };

/** Labelled organs of a case: from the data set's metadata, else the values in its label map (checked against the image grid and label values). */
async function labelledOrgans(c: AtlasCase, organs: { value: number; name: string }[], image?: Volume): Promise<string[]> {
  if (!c.label) return c.labelled ?? [];
  const lab = await readVolume(c.label);
  if (image) checkLabelMap(image, lab, [0, ...organs.map((o) => o.value)], { image: c.image, label: c.label });
  if (c.labelled) return c.labelled;
  const present = new Set<number>();
  for (let i = 0; i < lab.data.length; i++) present.add(lab.data[i]!);
  return organs.filter((o) => present.has(o.value)).map((o) => o.name);
}

/**
 * Check a data set before a long run: every partial label map lies on its image's grid and holds
 * only the data set's label values.
 * @param atlas - from {@link readAtlasDataset}
 * @param onProgress - per case
 * @throws MedmaskError GEOMETRY_MISMATCH or DATASET_INVALID naming the file and the bad values
 * @example
 * await checkAtlasDataset(await readAtlasDataset('data/abdomen'));
 */
export async function checkAtlasDataset(atlas: AtlasDataset, onProgress?: AtlasProgress): Promise<void> {
  let done = 0;
  for (const c of atlas.cases) {
    if (c.label) await labelledOrgans(c, atlas.organs, await readVolume(c.image));
    onProgress?.(++done, atlas.cases.length, c.id);
  }
}

/**
 * Per-source thresholds for `calibrateQuantile`: one pass over every case's predictions, the std
 * and entropy values the base thresholds flag collected per source (core/atlas/attention-refine.ts).
 */
async function calibrateSources(atlas: AtlasDataset, work: string, base: Required<AttentionOptions>, q: number): Promise<Map<string, { stdThreshold: number; entropyThreshold: number }>> {
  const stats = new Map<string, SourceStatistics>();
  for (const c of atlas.cases) {
    const image = await readVolume(c.image);
    const preds = await casePredictions(work, image, c, atlas.organs);
    const s = stats.get(c.source) ?? sourceStatistics();
    stats.set(c.source, s);
    for (const o of atlas.organs) {
      const probs: ProbabilityArray[] = [];
      for (const p of preds) {
        const a = await p.organ(o.name);
        if (a) probs.push(a);
      }
      if (!probs.length) continue;
      const { std, entropy } = ensembleStatistics(probs, image.data.length);
      addSourceStatistics(s, std, entropy, base);
    }
  }
  return new Map([...stats].map(([source, s]) => [source, calibratedThresholds(s, q, base)]));
}

/**
 * Pseudo-labels and attention maps per case (two passes over the organs, one organ's model
 * probabilities in memory at a time).
 * @param data - the data set folder
 * @param work - the work folder holding predictions/
 * @param opts - thresholds, opening, overlap partners, cases, progress
 * @returns per case the attention summary (also written as WORK/attention/<case>.json)
 * @example
 * const summaries = await atlasAttention('data/abdomen', 'work');
 */
export async function atlasAttention(data: string, work: string, opts: AtlasAttentionOptions = {}): Promise<CaseAttention[]> {
  const atlas = await readAtlasDataset(data, opts.cases);
  const organs = atlas.organs;
  if (organs.length > 16) throw new MedmaskError('USAGE', `${organs.length} organs: overlap bookkeeping handles at most 16`, { hint: 'split the label set' });
  const exclude = new Set(opts.overlapExclude ?? []);
  const threshold = opts.threshold ?? 0.5;
  const options = { ...ATLAS_ATTENTION_DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([k, v]) => v !== undefined && k in ATLAS_ATTENTION_DEFAULTS)) } as Required<AttentionOptions>;
  await checkPredictionFolders(work, atlas);
  const calibrated = opts.calibrateQuantile !== undefined ? await calibrateSources(atlas, work, options, opts.calibrateQuantile) : null;
  const out: CaseAttention[] = [];
  let done = 0;
  for (const c of atlas.cases) {
    const image = await readVolume(c.image);
    const n = image.data.length;
    const preds = await casePredictions(work, image, c, organs);
    const labelled = await labelledOrgans(c, organs, image);
    const spacing = [image.spacing[0], image.spacing[1], image.spacing[2]] as const;
    const iterations = opts.openingMm !== undefined ? openingIterations(opts.openingMm, spacing) : null;
    const caseOptions = { ...options, ...(iterations !== null ? { erosions: iterations, dilations: iterations } : {}), ...calibrated?.get(c.source) };
    const refine = opts.minComponentMm3 || opts.minExpectedErrorMm3 ? { spacing, ...(opts.minComponentMm3 ? { minComponentMm3: opts.minComponentMm3 } : {}), ...(opts.minExpectedErrorMm3 ? { minExpectedErrorMm3: opts.minExpectedErrorMm3 } : {}) } : undefined;
    // Pass 1: mean per organ → pseudo-label argmax and organ bits for the overlap.
    const bits = new Uint16Array(n);
    const best = new Float32Array(n).fill(threshold);
    const pseudo = new Uint8Array(n);
    const modelsPerOrgan: number[] = [];
    for (let o = 0; o < organs.length; o++) {
      const acc = new MeanAccumulator(n);
      for (const p of preds) {
        const a = await p.organ(organs[o]!.name);
        if (a) acc.addProbabilities(a);
      }
      modelsPerOrgan.push(acc.count);
      if (!acc.count) continue;
      const mean = acc.mean();
      const bit = 1 << o;
      const value = organs[o]!.value;
      for (let v = 0; v < n; v++) {
        const m = mean[v]!;
        if (m > threshold) bits[v] = bits[v]! | bit;
        if (m > best[v]!) {
          best[v] = m;
          pseudo[v] = value;
        }
      }
    }
    const geo = { spacing: image.spacing, origin: image.origin, direction: image.direction };
    await mkdir(join(work, 'pseudo'), { recursive: true });
    await writeVolume(createVolume(image.shape, 'uint8', { ...geo, data: pseudo, meta: { labels: Object.fromEntries(organs.map((o) => [o.value, o.name])) } }), join(work, 'pseudo', `${c.id}.nii.gz`), { labelMap: true });
    if (opts.pseudoOnly) {
      opts.onProgress?.(++done, atlas.cases.length, c.id);
      continue;
    }
    // Pass 2: attention per organ.
    let partners = 0;
    organs.forEach((o, i) => { if (!exclude.has(o.name)) partners |= 1 << i; });
    const caseDir = join(work, 'attention', c.id);
    await mkdir(caseDir, { recursive: true });
    const priors = opts.shapePriors ? (opts.shapePriors === true ? {} : opts.shapePriors) : null;
    const summary: CaseAttention = { case: c.id, source: c.source, labelled, models: preds.map((p) => p.model), shape: [...image.shape], organs: [], options: { ...caseOptions, overlapExclude: [...exclude], threshold, ...(priors ? { shapePriors: opts.shapePriors! } : {}), ...(refine?.minComponentMm3 ? { minComponentMm3: refine.minComponentMm3 } : {}), ...(refine?.minExpectedErrorMm3 ? { minExpectedErrorMm3: refine.minExpectedErrorMm3 } : {}), ...(opts.openingMm !== undefined ? { openingMm: opts.openingMm } : {}), ...(calibrated ? { calibrateQuantile: opts.calibrateQuantile! } : {}) } };
    const voxelMm3 = spacing[0] * spacing[1] * spacing[2];
    summary.voxelMm3 = voxelMm3;
    for (let o = 0; o < organs.length; o++) {
      const name = organs[o]!.name;
      if (!modelsPerOrgan[o]) continue;
      const probs: ProbabilityArray[] = [];
      for (const p of preds) {
        const a = await p.organ(name);
        if (a) probs.push(a);
      }
      const bit = 1 << o;
      const others = partners & ~bit;
      const overlap = new Uint8Array(n);
      for (let v = 0; v < n; v++) if (bits[v]! & bit && bits[v]! & others) overlap[v] = 1;
      const a = organAttention(probs, image.shape, overlap, caseOptions, refine);
      let prior = 0;
      if (priors) {
        // Shape-prior voxels join the binary attention at full heat (like the overlap term).
        const f = shapePriorFlags(pseudo, organs[o]!.value, image.shape, priors);
        prior = f.voxels;
        for (let v = 0; v < n; v++) {
          if (!f.mask[v]) continue;
          if (!a.binary[v]) {
            a.binary[v] = 1;
            a.voxels++;
          }
          a.heatSum += 1 - a.heat[v]!;
          a.heat[v] = 1;
        }
      }
      const heat = new Uint8Array(n);
      for (let v = 0; v < n; v++) if (a.binary[v]) heat[v] = Math.max(1, Math.round(a.heat[v]! * 255));
      await writeVolume(createVolume(image.shape, 'uint8', { ...geo, data: heat, meta: { source: `attention ${name}`, description: 'heat*255' } }), join(caseDir, `${name}.nii.gz`));
      // The pseudo-label's volume and pieces, for organ-level priors at ranking (core/atlas/organ-priors.ts).
      const own = new Uint8Array(n);
      let ownVoxels = 0;
      const value = organs[o]!.value;
      for (let v = 0; v < n; v++) if (pseudo[v] === value) { own[v] = 1; ownVoxels++; }
      const pieces = ownVoxels ? connectedComponents(own, image.shape).count : 0;
      // Expected wrong voxels inside the attention, for the expected-Dice ranking (core/atlas/ranking.ts).
      const expectedErrors = expectedErrorWithin(probs, a.binary);
      summary.organs.push({ organ: name, voxels: a.voxels, heatSum: a.heatSum, inconsistency: count(a.inconsistency), uncertainty: count(a.uncertainty), overlap: count(a.overlap), ...(priors ? { shapePrior: prior } : {}), labelled: labelled.includes(name), models: probs.length, volumeMm3: ownVoxels * voxelMm3, pieces, expectedErrors, volumeVoxels: ownVoxels });
    }
    await atomicWrite(join(work, 'attention', `${c.id}.json`), JSON.stringify(summary, null, 1) + '\n');
    out.push(summary);
    done++;
    opts.onProgress?.(done, atlas.cases.length, c.id);
  }
  return out;
}

/** Options for {@link atlasRank}. */
export interface AtlasRankOptions extends PriorityOptions, SelectOptions {
  /**
   * Organ-level priors (core/atlas/organ-priors.ts: an organ missing, of a volume or with pieces
   * unusual for the case's source) add their expected error voxels to the priority. Default false:
   * the AbdomenAtlas priority.
   */
  organPriors?: boolean | OrganPriorOptions;
}

/** Result of {@link atlasRank}. */
export interface AtlasRankResult {
  ranked: (RankedCase & { selected: boolean; organs: string[]; priorFlags?: OrganPriorFlag[] })[];
  selected: string[];
  options: AtlasRankOptions;
}

/** An attention summary as organ-prior input (needs the volumes atlasAttention records since organ priors exist). */
function shapeSummary(c: CaseAttention, dir: string): CaseShapeSummary {
  const organs = c.organs.map((o) => {
    if (o.volumeMm3 === undefined || o.pieces === undefined) throw new MedmaskError('USAGE', `${join(dir, `${c.case}.json`)} has no organ volumes`, { hint: 'run medmask atlas attention again (this version records them) before ranking with organ priors' });
    return { organ: o.organ, volumeMm3: o.volumeMm3, pieces: o.pieces, labelled: o.labelled };
  });
  return { id: c.case, source: c.source, voxelMm3: c.voxelMm3 ?? 1, organs };
}

/**
 * Rank cases by attention and select the top N % per source for review; writes WORK/ranking.json
 * and WORK/review.csv (case, source, priority, rank, organs to review by attention, descending).
 * @param work - the work folder holding attention/<case>.json
 * @param opts - priority variant and selection
 * @returns ranked cases and the selection
 * @example
 * const { selected } = await atlasRank('work', { fraction: 0.05 });
 */
export async function atlasRank(work: string, opts: AtlasRankOptions = {}): Promise<AtlasRankResult> {
  const dir = join(work, 'attention');
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.json')).sort() : [];
  if (!files.length) throw new MedmaskError('NOT_FOUND', `${dir}: no attention summaries`, { hint: 'run medmask atlas attention first' });
  const cases: CaseAttention[] = [];
  for (const f of files) cases.push(JSON.parse(await readFile(join(dir, f), 'utf8')) as CaseAttention);
  const flags = opts.organPriors ? organPriorFlags(cases.map((c) => shapeSummary(c, dir)), opts.organPriors === true ? {} : opts.organPriors) : null;
  const scores = cases.map((c) => {
    const grid = { voxels: c.shape.reduce((a, b) => a * b, 1), slices: c.shape[2]! };
    if (opts.measure === 'dice') {
      // Prior voxels join the organ's expected wrong voxels (same unit) before its Dice loss.
      const byOrgan = new Map<string, number>();
      for (const f of flags?.get(c.case) ?? []) byOrgan.set(f.organ, (byOrgan.get(f.organ) ?? 0) + f.voxels);
      const organs = c.organs.map((o) => (byOrgan.has(o.organ) ? { ...o, expectedErrors: (o.expectedErrors ?? 0) + byOrgan.get(o.organ)! } : o));
      return { id: c.case, source: c.source, priority: casePriority(organs, opts, grid) };
    }
    // Prior voxels join the attention voxels before any normalisation (same unit).
    const extra = flags ? flags.get(c.case)!.reduce((s, f) => s + f.voxels, 0) : 0;
    const base = casePriority(c.organs, opts, grid);
    if (!extra) return { id: c.case, source: c.source, priority: base };
    const d = opts.normalise === 'volume' ? grid.voxels : opts.normalise === 'slices' ? grid.slices : 1;
    return { id: c.case, source: c.source, priority: (casePriority(c.organs, { ...opts, normalise: 'none' }) + extra) / d };
  });
  const ranked = rankCases(scores);
  const chosen = new Set(selectForReview(ranked, opts).map((c) => c.id));
  const byId = new Map(cases.map((c) => [c.case, c]));
  const rows = ranked.map((r) => {
    const c = byId.get(r.id)!;
    const organs = c.organs.filter((o) => (opts.organs === 'all' || !o.labelled) && o.voxels > 0).sort((a, b) => b.voxels - a.voxels).map((o) => o.organ);
    return { ...r, selected: chosen.has(r.id), organs, ...(flags ? { priorFlags: flags.get(r.id)! } : {}) };
  });
  const result: AtlasRankResult = { ranked: rows, selected: rows.filter((r) => r.selected).map((r) => r.id), options: opts };
  await atomicWrite(join(work, 'ranking.json'), JSON.stringify(result, null, 1) + '\n');
  const csv = ['case,source,priority,rank,source_rank,selected,organs', ...rows.map((r) => `${r.id},${r.source},${r.priority},${r.rank},${r.sourceRank},${r.selected ? 1 : 0},${r.organs.join(' ')}`)];
  await atomicWrite(join(work, 'review.csv'), csv.join('\n') + '\n');
  return result;
}

/** Options for {@link atlasMerge}. */
export interface AtlasMergeOptions {
  /** Folder of revised label maps `<case>.nii.gz`, with `revised.json` {case: [organs]} (default: the organs present). */
  revised?: string;
  cases?: string[];
  onProgress?: AtlasProgress;
}

/** Result of {@link atlasMerge}. */
export interface AtlasMergeResult {
  cases: { case: string; provenance: Record<string, Provenance>; conflicts: number }[];
}

/**
 * Final labels: original > revised > pseudo per organ; writes OUT/labelsTr/<case>.nii.gz and
 * OUT/provenance.json.
 * @param data - the data set folder (its labelsTr are the originals)
 * @param work - the work folder holding pseudo/
 * @param outDir - output folder
 * @param opts - revised labels, cases, progress
 * @returns per case the provenance and conflicts
 * @example
 * await atlasMerge('data/abdomen', 'work', 'final', { revised: 'review/round1' });
 */
export async function atlasMerge(data: string, work: string, outDir: string, opts: AtlasMergeOptions = {}): Promise<AtlasMergeResult> {
  const atlas = await readAtlasDataset(data, opts.cases);
  const organs = atlas.organs;
  const byName = new Map(organs.map((o) => [o.name, o.value]));
  let revisedList: Record<string, string[]> | undefined;
  if (opts.revised && existsSync(join(opts.revised, 'revised.json'))) {
    revisedList = JSON.parse(await readFile(join(opts.revised, 'revised.json'), 'utf8')) as Record<string, string[]>;
  }
  await mkdir(join(outDir, 'labelsTr'), { recursive: true });
  const result: AtlasMergeResult = { cases: [] };
  let done = 0;
  for (const c of atlas.cases) {
    const image = await readVolume(c.image);
    const n = image.data.length;
    const known = [0, ...organs.map((o) => o.value)];
    const layer = async (file: string, what: string) => {
      const v = await readVolume(file);
      checkLabelMap(image, v, known, { image: c.image, label: `${file} (${what})` });
      return v;
    };
    const input: Parameters<typeof mergeLabels>[0] = {};
    if (c.label) {
      const labelled = await labelledOrgans(c, organs, image);
      input.original = { data: (await layer(c.label, 'original')).data, organs: labelled.map((o) => byName.get(o)!) };
    }
    const revisedFile = opts.revised ? join(opts.revised, `${c.id}.nii.gz`) : undefined;
    if (revisedFile && existsSync(revisedFile)) {
      const v = await layer(revisedFile, 'revised');
      let names = revisedList?.[c.id];
      if (!names) {
        const present = new Set<number>();
        for (let i = 0; i < v.data.length; i++) present.add(v.data[i]!);
        names = organs.filter((o) => present.has(o.value)).map((o) => o.name);
      }
      const unknown = names.filter((x) => !byName.has(x));
      if (unknown.length) throw new MedmaskError('DATASET_INVALID', `${opts.revised}/revised.json: case ${c.id} names unknown organ(s) ${unknown.join(', ')}`, { hint: `use ${organs.map((o) => o.name).join(', ')}` });
      input.revised = { data: v.data, organs: names.map((x) => byName.get(x)!) };
    }
    const pseudoFile = join(work, 'pseudo', `${c.id}.nii.gz`);
    if (existsSync(pseudoFile)) input.pseudo = { data: (await layer(pseudoFile, 'pseudo')).data, organs: organs.map((o) => o.value) };
    const r = mergeLabels(input, organs.map((o) => o.value), n);
    const geo = { spacing: image.spacing, origin: image.origin, direction: image.direction };
    await writeVolume(createVolume(image.shape, 'uint8', { ...geo, data: r.data, meta: { labels: Object.fromEntries(organs.map((o) => [o.value, o.name])) } }), join(outDir, 'labelsTr', `${c.id}.nii.gz`), { labelMap: true });
    result.cases.push({ case: c.id, provenance: Object.fromEntries(organs.map((o) => [o.name, r.provenance[o.value]!])), conflicts: r.conflicts });
    done++;
    opts.onProgress?.(done, atlas.cases.length, c.id);
  }
  await atomicWrite(join(outDir, 'provenance.json'), JSON.stringify(result, null, 1) + '\n');
  return result;
}
