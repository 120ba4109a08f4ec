/**
 * The `train-mask-head` job: learn from the reviews of a data set (issue 16). Every review case of
 * the data set for `target` whose current mask an expert accepted (status `accepted`) or edited
 * (the current version's origin is `human`) is a reviewed mask; the job exports those images and
 * masks to its scratch folder and trains one mask head per model (src/pipeline/train-mask-head.ts).
 * The heads' files (`mask-head.json`, `mask-head.onnx`, `card.md`) go to the blob store; the
 * result names their hashes, and an `annotate` job fuses them with `"maskHeads": [hash of
 * mask-head.json, …]`. Idempotent: blobs are content-addressed, and the job writes nothing else.
 * @module
 */
import { writeFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MedmaskError } from '../../core/errors.js';
import { trainMaskHead, type MaskPair } from '../../pipeline/train-mask-head.js';
import { checkModelRefs, materializeModels, pinModelRefs } from '../../runtime/model-registry.js';
import type { JobContext, JobHandler } from '../handlers.js';

/** Input of the train-mask-head job. */
export interface TrainMaskHeadJobInput {
  datasetId: string;
  /** Registered models (`name@version`, a bare name pinned at submit, or an id), as the annotate job's. */
  models: string[];
  /** Review cases of this target (default "lesion"). */
  target?: string;
  /** Lesion and background pixels sampled per image (default 256). */
  pixels?: number;
  seed?: number;
}

const HINT = 'input: { "datasetId": string, "models": ["demo-resnet@1", …], "target"?: string, "pixels"?: 16…4096, "seed"?: integer }';

function usage(msg: string): never {
  throw new MedmaskError('USAGE', `train-mask-head job: ${msg}`, { hint: HINT });
}

function validate(raw: unknown): TrainMaskHeadJobInput {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) usage('input must be an object');
  const o = raw as Record<string, unknown>;
  const extra = Object.keys(o).filter((k) => !['datasetId', 'models', 'target', 'pixels', 'seed'].includes(k));
  if (extra.length) usage(`unknown field(s) ${extra.join(', ')}`);
  if (typeof o.datasetId !== 'string' || !o.datasetId.trim() || o.datasetId.length > 100) usage(`datasetId ${JSON.stringify(o.datasetId)} must be a data set id`);
  const models = checkModelRefs(o.models, 'train-mask-head job: models');
  if (o.target !== undefined && (typeof o.target !== 'string' || !o.target.trim() || o.target.length > 100)) usage('target must be a non-empty name of at most 100 characters');
  if (o.pixels !== undefined && (!Number.isInteger(o.pixels) || (o.pixels as number) < 16 || (o.pixels as number) > 4096)) usage(`pixels ${JSON.stringify(o.pixels)} must be a whole number from 16 to 4096`);
  if (o.seed !== undefined && !Number.isInteger(o.seed)) usage(`seed ${JSON.stringify(o.seed)} must be an integer`);
  return {
    datasetId: o.datasetId,
    models,
    ...(o.target !== undefined ? { target: o.target as string } : {}),
    ...(o.pixels !== undefined ? { pixels: o.pixels as number } : {}),
    ...(o.seed !== undefined ? { seed: o.seed as number } : {}),
  };
}

async function run(ctx: JobContext): Promise<unknown> {
  const input = ctx.input as TrainMaskHeadJobInput;
  const target = input.target ?? 'lesion';
  const db = ctx.store.db;
  // reviewed = accepted, or the current version was made by a person
  const rows = await db
    .selectFrom('masks')
    .innerJoin('images', 'images.id', 'masks.image_id')
    .innerJoin('mask_versions', (j) => j.onRef('mask_versions.mask_id', '=', 'masks.id').onRef('mask_versions.version', '=', 'masks.current_version'))
    .select(['masks.id as mask_id', 'masks.status', 'images.id as image_id', 'images.blob as image_blob', 'mask_versions.blob as mask_blob', 'mask_versions.origin'])
    .where('images.dataset_id', '=', input.datasetId)
    .where('masks.target', '=', target)
    .where((eb) => eb.or([eb('masks.status', '=', 'accepted'), eb('mask_versions.origin', '=', 'human')]))
    .where('masks.status', '!=', 'rejected')
    .orderBy('images.name')
    .orderBy('images.id')
    .execute();
  if (!rows.length) {
    throw new MedmaskError('NOT_FOUND', `train-mask-head job: data set ${input.datasetId} has no reviewed "${target}" masks (accepted or edited by a person)`, {
      hint: 'review some cases first (accept or correct their masks in the review UI)',
    });
  }
  const pairs: MaskPair[] = [];
  for (const d of ['images', 'masks']) await mkdir(join(ctx.workDir, d), { recursive: true });
  for (const r of rows) {
    if (ctx.signal.aborted) throw new Error('job aborted');
    const image = join(ctx.workDir, 'images', `${r.image_id}.nii.gz`);
    const mask = join(ctx.workDir, 'masks', `${r.image_id}.nii.gz`);
    await writeFile(image, await ctx.blobs.get(r.image_blob));
    await writeFile(mask, await ctx.blobs.get(r.mask_blob));
    pairs.push({ image, mask });
  }
  await ctx.progress(0.05, `exported ${pairs.length} reviewed mask(s)`);
  const heads = [];
  const folders = await materializeModels(ctx.store, ctx.blobs, input.models, join(ctx.workDir, 'models'));
  for (const [k, m] of input.models.entries()) {
    const out = join(ctx.workDir, `head-${k}`);
    const r = await trainMaskHead({
      model: folders[k]!, pairs, out, cache: false,
      ...(input.pixels ? { perClass: input.pixels } : {}), ...(input.seed !== undefined ? { seed: input.seed } : {}),
      signal: ctx.signal,
      onProgress: (e) => {
        if (e.phase === 'train') void ctx.progress(0.05 + (0.95 * (k + e.epoch / e.epochs)) / input.models.length, `${m}: epoch ${e.epoch}`);
      },
    });
    const put = async (f: string) => (await ctx.blobs.put(await readFile(join(out, f)))).hash;
    heads.push({
      model: m,
      parent: r.parent,
      maskHead: await put('mask-head.json'),
      onnx: await put('mask-head.onnx'),
      card: await put('card.md'),
      images: r.images,
      lesionImages: r.lesionImages,
      epochs: r.training.epochsRun,
      valLoss: r.training.valLoss,
      seconds: r.training.seconds,
    });
  }
  return { datasetId: input.datasetId, target, reviewed: rows.length, accepted: rows.filter((r) => r.status === 'accepted').length, edited: rows.filter((r) => r.origin === 'human').length, heads };
}

/**
 * The `train-mask-head` job handler.
 * @example
 * POST /api/jobs { "type": "train-mask-head", "input": { "datasetId": "…", "models": ["demo-resnet@1"] } }
 */
export const trainMaskHeadHandler: JobHandler = {
  description: 'train mask heads (per-pixel lesion heads on the classifiers\' CAM target activations) from the reviewed masks of a data set; annotate jobs fuse them with "maskHeads"',
  validate,
  resolve: async (input, { store }) => ({ ...(input as TrainMaskHeadJobInput), models: await pinModelRefs(store.db, (input as TrainMaskHeadJobInput).models) }),
  run,
};
