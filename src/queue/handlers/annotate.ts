/**
 * The `annotate` job: run the annotate pipeline (src/pipeline/annotate.ts, Method 1 of DESIGN.md)
 * on a stored data set. The data set's 2D images are written to the job's scratch folder, with
 * their image-level class labels (optionally mapped onto the models' classes with `labelMap`),
 * the ensemble runs, and per image the job records a prediction — probabilities, uncertainty,
 * OOD score, decision, priority, heat map and uncertainty map — and the candidate mask as a new
 * version of the image's review case for `target` (default "lesion"). Idempotent: a retry writes
 * no duplicate predictions or mask versions (recordPrediction).
 * @module
 */
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { isMedmaskError, MedmaskError } from '../../core/errors.js';
import { parseMaskPipeline, type MaskPipeline } from '../../core/masks/pipeline.js';
import { readVolume } from '../../io/index.js';
import { annotate, stemFor, type AnnotateItem } from '../../pipeline/annotate.js';
import { readResults } from '../../pipeline/evaluate.js';
import { checkModelRefs, materializeModels, pinModelRefs } from '../../runtime/model-registry.js';
import { recordPrediction } from '../../store/masks.js';
import { labelVolume, putVolume, type ImageRow } from '../../store/volumes.js';
import { resolveModelRef } from '../../store/models.js';
import type { JobContext, JobHandler, PlannedTask, SettledTask, SubmitContext, TaskContext } from '../handlers.js';

/** Input of the annotate job. */
export interface AnnotateJobInput {
  datasetId: string;
  /** Registered models: name@version, name (pinned to its current version at submit) or version id — never a path. */
  models: string[];
  /** Use the images' class labels ("class", the default) or none ("none": the ensemble's diagnosis is the target). */
  labelKind?: 'class' | 'none';
  /** Map stored labels onto the models' classes, e.g. { "nodule": "abnormal" }. */
  labelMap?: Record<string, string>;
  /** Mask pipeline (docs/annotate.md). */
  pipeline?: MaskPipeline;
  /** Head-MC samples (default 20; 0 disables MC). */
  mcSamples?: number;
  seed?: number;
  /** The structure the candidate masks are for, i.e. the review case (default "lesion"). */
  target?: string;
  /** Mask heads to fuse: blob hashes of `mask-head.json` files written by a train-mask-head job. */
  maskHeads?: string[];
  /** Images per task (default 8): each task loads the models once and runs on any free worker. */
  chunk?: number;
}

/** Images per task when the input does not say. */
export const DEFAULT_CHUNK = 8;

const HINT = 'input: { "datasetId": string, "models": ["demo-resnet@1", …], "labelKind"?: "class" | "none", "labelMap"?: { "stored label": "model class" }, "pipeline"?: {…}, "mcSamples"?: 0…200, "seed"?: integer, "target"?: string, "maskHeads"?: [blob hash, …], "chunk"?: 1…1000 }';

function usage(msg: string): never {
  throw new MedmaskError('USAGE', `annotate job: ${msg}`, { hint: HINT });
}

function validate(raw: unknown): AnnotateJobInput {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) usage('input must be an object');
  const o = raw as Record<string, unknown>;
  const known = ['datasetId', 'models', 'labelKind', 'labelMap', 'pipeline', 'mcSamples', 'seed', 'target', 'maskHeads', 'chunk'];
  const extra = Object.keys(o).filter((k) => !known.includes(k));
  if (extra.length) usage(`unknown field(s) ${extra.join(', ')}`);
  if (typeof o.datasetId !== 'string' || !o.datasetId.trim() || o.datasetId.length > 100) usage(`datasetId ${JSON.stringify(o.datasetId)} must be a data set id (the annotate pipeline runs on one stored data set)`);
  const models = checkModelRefs(o.models, 'annotate job: models');
  const labelKind = o.labelKind ?? 'class';
  if (labelKind !== 'class' && labelKind !== 'none') usage(`labelKind ${JSON.stringify(o.labelKind)} must be "class" or "none"`);
  let labelMap: Record<string, string> | undefined;
  if (o.labelMap !== undefined) {
    if (typeof o.labelMap !== 'object' || o.labelMap === null || Array.isArray(o.labelMap)) usage('labelMap must be an object { "stored label": "model class" }');
    for (const [k, v] of Object.entries(o.labelMap)) if (typeof v !== 'string' || !v) usage(`labelMap["${k}"] must be a class name`);
    labelMap = o.labelMap as Record<string, string>;
  }
  let pipeline: MaskPipeline | undefined;
  if (o.pipeline !== undefined) pipeline = parseMaskPipeline(o.pipeline, 'annotate job: pipeline');
  if (o.mcSamples !== undefined && (!Number.isInteger(o.mcSamples) || (o.mcSamples as number) < 0 || (o.mcSamples as number) > 200)) usage(`mcSamples ${JSON.stringify(o.mcSamples)} must be a whole number from 0 to 200`);
  if (o.seed !== undefined && !Number.isInteger(o.seed)) usage(`seed ${JSON.stringify(o.seed)} must be an integer`);
  if (o.target !== undefined && (typeof o.target !== 'string' || !o.target.trim() || o.target.length > 100)) usage('target must be a non-empty name of at most 100 characters');
  if (o.maskHeads !== undefined && (!Array.isArray(o.maskHeads) || o.maskHeads.length > 16 || !o.maskHeads.every((h) => typeof h === 'string' && /^[0-9a-f]{64}$/.test(h)))) usage('maskHeads must be a list of blob hashes (the "maskHead" of each head in a train-mask-head job\'s result)');
  if (o.chunk !== undefined && (!Number.isInteger(o.chunk) || (o.chunk as number) < 1 || (o.chunk as number) > 1000)) usage(`chunk ${JSON.stringify(o.chunk)} must be a whole number of images per task from 1 to 1000`);
  return {
    ...(o.maskHeads !== undefined ? { maskHeads: o.maskHeads as string[] } : {}),
    datasetId: o.datasetId,
    models,
    labelKind,
    ...(labelMap ? { labelMap } : {}),
    ...(pipeline ? { pipeline } : {}),
    ...(o.mcSamples !== undefined ? { mcSamples: o.mcSamples as number } : {}),
    ...(o.seed !== undefined ? { seed: o.seed as number } : {}),
    ...(o.target !== undefined ? { target: o.target as string } : {}),
    ...(o.chunk !== undefined ? { chunk: o.chunk as number } : {}),
  };
}

/** One chunk of images: an annotate task. */
interface AnnotateTask {
  /** Index of the chunk's first image in the job (MC seeds are seed + index, as in one whole run). */
  start: number;
  images: { id: string; name: string; label?: string }[];
}

/** The newest class label per image, mapped with labelMap (none with labelKind "none"). */
async function imageLabels(ctx: { store: JobContext['store'] }, input: AnnotateJobInput, imageIds: string[]): Promise<Map<string, string>> {
  const labels = new Map<string, string>();
  if (input.labelKind === 'none' || !imageIds.length) return labels;
  for (let i = 0; i < imageIds.length; i += 500) {
    const rows = await ctx.store.db.selectFrom('labels').select(['image_id', 'value', 'created_at']).where('kind', '=', 'class').where('image_id', 'in', imageIds.slice(i, i + 500)).orderBy('created_at').execute();
    for (const r of rows) if (r.value) labels.set(r.image_id, input.labelMap?.[r.value] ?? r.value);
  }
  return labels;
}

async function datasetImages(ctx: { store: JobContext['store'] }, datasetId: string): Promise<{ id: string; name: string }[]> {
  const db = ctx.store.db;
  const ds = await db.selectFrom('datasets').select('id').where('id', '=', datasetId).executeTakeFirst();
  if (!ds) throw new MedmaskError('NOT_FOUND', `annotate job: data set ${datasetId} does not exist`, { hint: 'list data sets with GET /api/projects/…/datasets' });
  const images = await db.selectFrom('images').select(['id', 'name']).where('dataset_id', '=', datasetId).orderBy('name').orderBy('id').execute();
  if (!images.length) throw new MedmaskError('NOT_FOUND', `annotate job: data set ${datasetId} has no images`, { hint: 'upload images or run a phantoms job first' });
  return images;
}

function labelsError(bad: string[], classes: readonly string[]): MedmaskError {
  return new MedmaskError('DATASET_INVALID', `annotate job: labels ${bad.map((l) => `"${l}"`).join(', ')} are not classes of the models (${classes.join(', ')}); map them with "labelMap" or run with "labelKind": "none"`, {
    hint: 'map the stored labels onto the models\' classes with "labelMap", or run with "labelKind": "none"',
  });
}

/** At submission: the data set exists and has images, the models are classifiers, the (mapped) labels are their classes. */
async function check(raw: unknown, ctx: SubmitContext): Promise<void> {
  const input = raw as AnnotateJobInput;
  const images = await datasetImages(ctx, input.datasetId);
  const classesOf = async (ref: string) => ((JSON.parse((await resolveModelRef(ctx.store.db, ref)).manifest) as { classes?: string[] }).classes ?? []);
  const classes = await classesOf(input.models[0]!);
  for (const m of input.models.slice(1)) {
    const other = await classesOf(m);
    if (other.join('\0') !== classes.join('\0')) throw new MedmaskError('MODEL_INVALID', `annotate job: model "${m}" has classes (${other.join(', ')}) but "${input.models[0]}" has (${classes.join(', ')})`, { hint: 'an ensemble\'s models must share their classes, in the same order' });
  }
  const labels = await imageLabels(ctx, input, images.map((i) => i.id));
  const bad = [...new Set([...labels.values()].filter((l) => !classes.includes(l)))];
  if (bad.length) throw labelsError(bad, classes);
}

/** Plan: the data set's images in chunks of `chunk` (each chunk one task on any worker). */
async function plan(ctx: JobContext): Promise<PlannedTask[]> {
  const input = ctx.input as AnnotateJobInput;
  const images = await datasetImages(ctx, input.datasetId);
  const labels = await imageLabels(ctx, input, images.map((i) => i.id));
  const size = input.chunk ?? DEFAULT_CHUNK;
  const tasks: PlannedTask[] = [];
  for (let start = 0; start < images.length; start += size) {
    const t: AnnotateTask = { start, images: images.slice(start, start + size).map((img) => ({ id: img.id, name: img.name, ...(labels.has(img.id) ? { label: labels.get(img.id)! } : {}) })) };
    tasks.push({ key: `chunk-${String(start / size).padStart(5, '0')}`, input: t });
  }
  await ctx.progress(0.01, `planned ${images.length} image(s) in ${tasks.length} task(s)`);
  return tasks;
}

/** A chunk: fetch only its images' blobs, run the ensemble, record a prediction and candidate mask per image. */
async function runTask(ctx: TaskContext): Promise<unknown> {
  const input = ctx.input as AnnotateJobInput;
  const t = ctx.task.input as AnnotateTask;
  const db = ctx.store.db;
  const target = input.target ?? 'lesion';
  const rows = await db.selectFrom('images').selectAll().where('id', 'in', t.images.map((i) => i.id)).execute();
  const byId = new Map(rows.map((r) => [r.id, r]));
  const dir = join(ctx.workDir, 'images');
  await mkdir(dir, { recursive: true });
  const byRel = new Map<string, ImageRow>();
  const items: AnnotateItem[] = [];
  for (const ref of t.images) {
    if (ctx.signal.aborted) throw new Error('job aborted');
    const img = byId.get(ref.id);
    if (!img) throw new MedmaskError('NOT_FOUND', `annotate job: image ${ref.name} (${ref.id}) was deleted after the job was planned`);
    const rel = `${img.id}.nii.gz`;
    const path = join(dir, rel);
    await writeFile(path, await ctx.blobs.get(img.blob));
    byRel.set(rel, img);
    items.push({ path, rel, ...(ref.label ? { label: ref.label } : {}) });
  }
  const out = join(ctx.workDir, 'run');
  const maskHeads: string[] = [];
  for (const [k, h] of (input.maskHeads ?? []).entries()) {
    const dir = join(ctx.workDir, `mask-head-${k}`);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'mask-head.json'), await ctx.blobs.get(h));
    maskHeads.push(dir);
  }
  let summary;
  try {
    summary = await annotate({
      models: await materializeModels(ctx.store, ctx.blobs, input.models, join(ctx.workDir, 'models')),
      items,
      out,
      fresh: true,
      ...(input.pipeline ? { pipeline: input.pipeline } : {}),
      ...(input.mcSamples !== undefined ? { mcSamples: input.mcSamples } : {}),
      seed: (input.seed ?? 0) + t.start,
      ...(maskHeads.length ? { maskHeads } : {}),
    });
  } catch (e) {
    if (isMedmaskError(e) && e.code === 'DATASET_INVALID' && /are not classes/.test(e.message)) {
      const classes = /\(([^)]*)\)\s*$/.exec(e.message)?.[1]?.split(', ') ?? [];
      throw labelsError([...new Set(items.map((i) => i.label).filter((l): l is string => !!l && !classes.includes(l)))], classes);
    }
    throw e;
  }
  const results = await readResults(out);
  let recorded = 0;
  let keptAsDrafts = 0;
  const errors: { image: string; error: string }[] = [];
  for (const r of results) {
    if (r.status !== 'ok') {
      errors.push({ image: byRel.get(r.image)?.name ?? r.image, error: r.error ?? 'failed' });
      continue;
    }
    if (ctx.signal.aborted) throw new Error('job aborted');
    const image = byRel.get(r.image);
    if (!image) continue;
    const m = await readVolume(join(out, r.mask ?? `masks/${stemFor(r.image)}.png`));
    const { hash: maskBlob } = await putVolume(ctx.blobs, labelVolume(image, Uint8Array.from(m.data as ArrayLike<number>, (v) => (v ? 1 : 0))), true);
    const heatmapBlob = r.heatmap ? (await ctx.blobs.put(await readFile(join(out, r.heatmap)))).hash : null;
    const uncertaintyBlob = r.uncertaintyMap ? (await ctx.blobs.put(await readFile(join(out, r.uncertaintyMap)))).hash : null;
    const rec = await recordPrediction(db, {
      jobId: ctx.jobId,
      imageId: image.id,
      target,
      probabilities: r.probabilities ?? {},
      uncertainty: r.uncertainty?.entropy ?? null,
      oodScore: r.ood?.score ?? null,
      decision: r.decision ?? 'review',
      priority: r.priority ?? 0,
      expectedGain: r.uncertainty?.expectedGain ?? null,
      heatmapBlob,
      uncertaintyBlob,
      maskBlob,
    });
    recorded++;
    if (maskBlob && rec.version === null) keptAsDrafts++;
  }
  return { predictions: recorded, keptAsDrafts, errors, decisions: summary.decisions, seconds: summary.seconds };
}

interface AnnotateTaskResult {
  predictions: number;
  keptAsDrafts: number;
  errors: { image: string; error: string }[];
  decisions: Record<string, number>;
  seconds: number;
}

/** Reduce: the job's summary over its chunks; the images of failed chunks are listed with the error. */
async function reduce(ctx: JobContext, tasks: readonly SettledTask[]): Promise<unknown> {
  const input = ctx.input as AnnotateJobInput;
  const decisions: Record<string, number> = { accept: 0, review: 0, ood: 0 };
  let images = 0, predictions = 0, keptAsDrafts = 0, seconds = 0;
  const errors: { image: string; error: string }[] = [];
  for (const t of tasks) {
    const ti = t.input as AnnotateTask;
    images += ti.images.length;
    if (t.status === 'failed') {
      for (const img of ti.images) errors.push({ image: img.name, error: t.error ?? 'failed' });
      continue;
    }
    const r = t.result as AnnotateTaskResult;
    predictions += r.predictions;
    keptAsDrafts += r.keptAsDrafts;
    seconds += r.seconds;
    errors.push(...r.errors);
    for (const [k, v] of Object.entries(r.decisions)) decisions[k] = (decisions[k] ?? 0) + v;
  }
  // keptAsDrafts: candidates not made current because a person already reviewed or edited the case.
  return { datasetId: input.datasetId, target: input.target ?? 'lesion', images, predictions, keptAsDrafts, errors, decisions, seconds: Math.round(seconds * 100) / 100, tasks: tasks.length, failedTasks: tasks.filter((t) => t.status === 'failed').length };
}

/**
 * The `annotate` job handler.
 * @example
 * POST /api/jobs { "type": "annotate", "input": { "datasetId": "…", "models": ["demo-resnet@1"], "labelMap": { "nodule": "abnormal" } } }
 */
export const annotateHandler: JobHandler = {
  description: 'run the annotate pipeline (candidate masks, heat maps, uncertainty and decisions from an ensemble of classifiers) on a data set, in chunks of images on any worker',
  validate,
  resolve: async (input, { store }) => ({ ...(input as AnnotateJobInput), models: await pinModelRefs(store.db, (input as AnnotateJobInput).models) }),
  check,
  fanOut: { plan, runTask, reduce },
};
