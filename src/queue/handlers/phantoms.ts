/**
 * The `phantoms` job: write a seeded phantom data set (src/pipeline/phantoms.ts) and import it into
 * a project — images, image-level labels (2D) or partial organ labels (3D) — and, unless
 * `reviewCases` is false, one review case per image whose first version is a stand-in candidate
 * (2D: the lesion mask; 3D: the source's partial labels) with a priority: 2D, smaller lesions
 * first; 3D, cases with more unlabelled organs first (AbdomenAtlas ranks cases by what is not
 * labelled, Qu et al. 2023). It gives the server and the review UI real data before the annotate
 * pipeline exists. Idempotent: a retry imports nothing twice.
 * @module
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MedmaskError } from '../../core/errors.js';
import { ABDOMEN_LABELS } from '../../core/phantom/abdomen.js';
import { readVolume } from '../../io/index.js';
import { writeAbdomenDataset, writeChestDataset } from '../../pipeline/phantoms.js';
import { recordPrediction } from '../../store/masks.js';
import { ensureDataset, ensureProject, insertImage, labelVolume, putVolume, type ImageRow } from '../../store/volumes.js';
import { newId, nowIso } from '../../store/util.js';
import type { JobContext, JobHandler } from '../handlers.js';

/** Input of the phantoms job. */
export interface PhantomsJobInput {
  kind: '2d' | '3d';
  n: number;
  seed: number;
  /** 2D image size or 3D in-plane voxels. */
  size?: number;
  /** Project name (default "phantoms"). */
  project?: string;
  /** Data set name (default "phantoms-2d-n10-seed1"). */
  dataset?: string;
  /** Create review cases (default true). */
  reviewCases?: boolean;
}

function usage(msg: string): never {
  throw new MedmaskError('USAGE', `phantoms job: ${msg}`, { hint: 'input: { "kind": "2d" | "3d", "n": 1…500, "seed": integer, "size"?, "project"?, "dataset"?, "reviewCases"? }' });
}

function validate(raw: unknown): PhantomsJobInput {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) usage('input must be an object');
  const o = raw as Record<string, unknown>;
  const known = ['kind', 'n', 'seed', 'size', 'project', 'dataset', 'reviewCases'];
  const extra = Object.keys(o).filter((k) => !known.includes(k));
  if (extra.length) usage(`unknown field(s) ${extra.join(', ')}`);
  if (o.kind !== '2d' && o.kind !== '3d') usage(`kind ${JSON.stringify(o.kind)} must be "2d" or "3d"`);
  const kind = o.kind;
  const n = o.n;
  if (!Number.isInteger(n) || (n as number) < 1 || (n as number) > 500) usage(`n ${JSON.stringify(n)} must be a whole number from 1 to 500`);
  const seed = o.seed ?? 0;
  if (!Number.isInteger(seed)) usage(`seed ${JSON.stringify(seed)} must be an integer`);
  const [lo, hi] = kind === '2d' ? [32, 1024] : [32, 256];
  if (o.size !== undefined && (!Number.isInteger(o.size) || (o.size as number) < lo || (o.size as number) > hi)) usage(`size ${JSON.stringify(o.size)} must be a whole number from ${lo} to ${hi}`);
  for (const k of ['project', 'dataset'] as const) {
    if (o[k] !== undefined && (typeof o[k] !== 'string' || !(o[k] as string).trim() || (o[k] as string).length > 200)) usage(`${k} must be a non-empty name of at most 200 characters`);
  }
  if (o.reviewCases !== undefined && typeof o.reviewCases !== 'boolean') usage('reviewCases must be true or false');
  return { kind, n: n as number, seed: seed as number, ...(o.size !== undefined ? { size: o.size as number } : {}), ...(o.project ? { project: o.project as string } : {}), ...(o.dataset ? { dataset: o.dataset as string } : {}), ...(o.reviewCases !== undefined ? { reviewCases: o.reviewCases as boolean } : {}) };
}

async function addLabelOnce(ctx: JobContext, image: ImageRow, l: { kind: 'class' | 'mask'; value?: string; blob?: string; target?: string }): Promise<void> {
  const db = ctx.store.db;
  const exists = await db.selectFrom('labels').select('id').where('image_id', '=', image.id).where('kind', '=', l.kind).where('job_id', '=', ctx.jobId).executeTakeFirst();
  if (exists) return;
  await db
    .insertInto('labels')
    .values({ id: newId(), image_id: image.id, kind: l.kind, value: l.value ?? null, blob: l.blob ?? null, target: l.target ?? null, provenance: 'original', job_id: ctx.jobId, created_at: nowIso(), created_by: ctx.userId })
    .execute();
}

async function run(ctx: JobContext): Promise<unknown> {
  const input = ctx.input as PhantomsJobInput;
  const dir = join(ctx.workDir, 'data');
  const db = ctx.store.db;
  const datasetName = input.dataset ?? `phantoms-${input.kind}-n${input.n}-seed${input.seed}`;
  const projectId = await ensureProject(db, input.project ?? 'phantoms', ctx.userId);
  const datasetId = await ensureDataset(db, projectId, datasetName, ctx.userId, `seeded ${input.kind} phantoms (medmask phantoms ${input.kind} --n ${input.n} --seed ${input.seed})`);
  const half = (d: number, t: number) => ctx.progress((0.5 * d) / t, `writing phantoms ${d}/${t}`);
  const reviewCases = input.reviewCases !== false;
  let images = 0;
  let cases = 0;
  if (input.kind === '2d') {
    await writeChestDataset(dir, { n: input.n, seed: input.seed, oodFraction: 0, ...(input.size ? { size: input.size } : {}) }, (d, t) => void half(d, t));
    const truth = JSON.parse(await readFile(join(dir, 'truth.json'), 'utf8')) as { images: { image: string; label: string; lesionPixels: number; lungPixels: number }[] };
    for (const [i, t] of truth.images.entries()) {
      if (ctx.signal.aborted) throw new Error('job aborted');
      const name = t.image.split('/').pop()!;
      const vol = await readVolume(join(dir, t.image));
      const { image } = await insertImage(db, ctx.blobs, { datasetId, name, volume: vol, format: 'image', createdBy: ctx.userId });
      images++;
      await addLabelOnce(ctx, image, { kind: 'class', value: t.label });
      if (reviewCases) {
        const m = await readVolume(join(dir, 'masks', name));
        const data = Uint8Array.from(m.data, (v) => (v ? 1 : 0));
        const { hash } = await putVolume(ctx.blobs, labelVolume(image, data), true);
        // Smaller lesions are harder: priority 1 for a 1-pixel lesion, → 0 for large ones; healthy 0.
        const priority = t.lesionPixels ? 1 / (1 + t.lesionPixels / 200) : 0;
        await recordPrediction(db, { jobId: ctx.jobId, imageId: image.id, target: 'lesion', probabilities: { [t.label]: 1 }, decision: t.lesionPixels ? 'review' : 'accept', priority, maskBlob: hash });
        cases++;
      }
      await ctx.progress(0.5 + (0.5 * (i + 1)) / truth.images.length, `imported ${i + 1}/${truth.images.length}`);
    }
  } else {
    await writeAbdomenDataset(dir, { n: input.n, seed: input.seed, ...(input.size ? { size: input.size } : {}) }, (d, t) => void half(d, t));
    const ds = JSON.parse(await readFile(join(dir, 'dataset.json'), 'utf8')) as { medmask: { cases: { case: string; source: string; labelled: string[] }[] } };
    const all = Object.keys(ABDOMEN_LABELS).length;
    for (const [i, c] of ds.medmask.cases.entries()) {
      if (ctx.signal.aborted) throw new Error('job aborted');
      const vol = await readVolume(join(dir, 'imagesTr', `${c.case}_0000.nii.gz`));
      const { image } = await insertImage(db, ctx.blobs, { datasetId, name: `${c.case}.nii.gz`, volume: vol, format: 'nifti', createdBy: ctx.userId });
      images++;
      const partial = await readVolume(join(dir, 'labelsTr', `${c.case}.nii.gz`));
      const { hash } = await putVolume(ctx.blobs, labelVolume(image, Uint8Array.from(partial.data)), true);
      await addLabelOnce(ctx, image, { kind: 'mask', blob: hash, target: 'organs', value: `source:${c.source}` });
      if (reviewCases) {
        const priority = (all - c.labelled.length) / all;
        await recordPrediction(db, { jobId: ctx.jobId, imageId: image.id, target: 'organs', probabilities: {}, decision: 'review', priority, maskBlob: hash });
        cases++;
      }
      await ctx.progress(0.5 + (0.5 * (i + 1)) / ds.medmask.cases.length, `imported ${i + 1}/${ds.medmask.cases.length}`);
    }
  }
  return { projectId, datasetId, dataset: datasetName, images, cases };
}

/**
 * The `phantoms` job handler.
 * @example
 * POST /api/jobs { "type": "phantoms", "input": { "kind": "2d", "n": 20, "seed": 1 } }
 */
export const phantomsHandler: JobHandler = {
  description: 'write a seeded phantom data set (2d chest radiographs or 3d abdominal CT) and import it with review cases',
  validate,
  run,
};
