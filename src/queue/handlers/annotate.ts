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
import type { JobContext, JobHandler } from '../handlers.js';

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
}

const HINT = 'input: { "datasetId": string, "models": ["demo-resnet@1", …], "labelKind"?: "class" | "none", "labelMap"?: { "stored label": "model class" }, "pipeline"?: {…}, "mcSamples"?: 0…200, "seed"?: integer, "target"?: string }';

function usage(msg: string): never {
  throw new MedmaskError('USAGE', `annotate job: ${msg}`, { hint: HINT });
}

function validate(raw: unknown): AnnotateJobInput {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) usage('input must be an object');
  const o = raw as Record<string, unknown>;
  const known = ['datasetId', 'models', 'labelKind', 'labelMap', 'pipeline', 'mcSamples', 'seed', 'target', 'maskHeads'];
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
  };
}

async function run(ctx: JobContext): Promise<unknown> {
  const input = ctx.input as AnnotateJobInput;
  const db = ctx.store.db;
  const target = input.target ?? 'lesion';
  const ds = await db.selectFrom('datasets').select('id').where('id', '=', input.datasetId).executeTakeFirst();
  if (!ds) throw new MedmaskError('NOT_FOUND', `annotate job: data set ${input.datasetId} does not exist`, { hint: 'list data sets with GET /api/projects/…/datasets' });
  const images = await db.selectFrom('images').selectAll().where('dataset_id', '=', input.datasetId).orderBy('name').orderBy('id').execute();
  if (!images.length) throw new MedmaskError('NOT_FOUND', `annotate job: data set ${input.datasetId} has no images`, { hint: 'upload images or run a phantoms job first' });
  // Image-level labels: the newest class label per image.
  const labels = new Map<string, string>();
  if (input.labelKind !== 'none') {
    const rows = await db.selectFrom('labels').select(['image_id', 'value', 'created_at']).where('kind', '=', 'class').where('image_id', 'in', images.map((i) => i.id)).orderBy('created_at').execute();
    for (const r of rows) if (r.value) labels.set(r.image_id, input.labelMap?.[r.value] ?? r.value);
  }
  // Export the images to the scratch folder (blobs are .nii.gz).
  const dir = join(ctx.workDir, 'images');
  await mkdir(dir, { recursive: true });
  const byRel = new Map<string, ImageRow>();
  const items: AnnotateItem[] = [];
  for (const img of images) {
    if (ctx.signal.aborted) throw new Error('job aborted');
    const rel = `${img.id}.nii.gz`;
    const path = join(dir, rel);
    await writeFile(path, await ctx.blobs.get(img.blob));
    byRel.set(rel, img);
    const label = labels.get(img.id);
    items.push({ path, rel, ...(label ? { label } : {}) });
  }
  await ctx.progress(0.05, `exported ${images.length} image(s)`);
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
      ...(input.seed !== undefined ? { seed: input.seed } : {}),
      ...(maskHeads.length ? { maskHeads } : {}),
      onProgress: (d, t) => void ctx.progress(0.05 + (0.8 * d) / t, `annotated ${d}/${t}`),
    });
  } catch (e) {
    if (isMedmaskError(e) && e.code === 'DATASET_INVALID') throw new MedmaskError('DATASET_INVALID', `annotate job: ${e.message}; map them with "labelMap" or run with "labelKind": "none"`, { hint: 'map the stored labels onto the models\' classes with "labelMap", or run with "labelKind": "none"' });
    throw e;
  }
  const results = await readResults(out);
  const ok = results.filter((r) => r.status === 'ok');
  let recorded = 0;
  let keptAsDrafts = 0;
  const errors: { image: string; error: string }[] = [];
  for (const r of results) {
    if (r.status !== 'ok') errors.push({ image: byRel.get(r.image)?.name ?? r.image, error: r.error ?? 'failed' });
  }
  for (const [i, r] of ok.entries()) {
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
    await ctx.progress(0.85 + (0.15 * (i + 1)) / ok.length, `recorded ${i + 1}/${ok.length}`);
  }
  // keptAsDrafts: candidates not made current because a person already reviewed or edited the case.
  return { datasetId: input.datasetId, target, images: images.length, predictions: recorded, keptAsDrafts, errors, decisions: summary.decisions, seconds: summary.seconds };
}

/**
 * The `annotate` job handler.
 * @example
 * POST /api/jobs { "type": "annotate", "input": { "datasetId": "…", "models": ["demo-resnet@1"], "labelMap": { "nodule": "abnormal" } } }
 */
export const annotateHandler: JobHandler = {
  description: 'run the annotate pipeline (candidate masks, heat maps, uncertainty and decisions from an ensemble of classifiers) on a data set',
  validate,
  resolve: async (input, { store }) => ({ ...(input as AnnotateJobInput), models: await pinModelRefs(store.db, (input as AnnotateJobInput).models) }),
  run,
};
