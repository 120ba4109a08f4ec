/**
 * The `atlas` job: one round of the 3D multi-organ workflow (docs/atlas.md) over a stored data set
 * of CT volumes with partial organ labels — the segmenters predict every organ, attention maps flag
 * likely errors, cases are ranked and the top N % per source selected, labels merged (original >
 * revised > pseudo). Every case gets a prediction and a mask version (the merged label map) on its
 * `organs` review case, with the attention heat map as a blob; selected cases are `review` with
 * their priority, the others `accept`. Idempotent like every handler: a retry writes nothing twice.
 * @module
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MedmaskError } from '../../core/errors.js';
import { ABDOMEN_LABELS, PHANTOM_SOURCES } from '../../core/phantom/abdomen.js';
import type { Volume } from '../../core/volume.js';
import { atomicWrite } from '../../io/atomic.js';
import { readVolume } from '../../io/index.js';
import { putVolume } from '../../store/volumes.js';
import { caseOriginOf } from '../../store/images.js';
import { atlasRun } from '../../pipeline/atlas-run.js';
import { recordPrediction } from '../../store/masks.js';
import { checkModelRefs, materializeModels, pinModelRefs } from '../../runtime/model-registry.js';
import type { JobContext, JobHandler } from '../handlers.js';

/** Input of the atlas job. */
export interface AtlasJobInput {
  datasetId: string;
  /** Registered 3D segmenters: name@version, name (pinned at submit) or version id — never a path. */
  models: string[];
  /** Fraction of each source's cases sent to review (default 0.05). */
  fraction?: number;
  /** The review case name (default "organs", as the phantoms job uses). */
  target?: string;
}

const HINT = 'input: { "datasetId": string, "models": ["demo-unet3d@1", …], "fraction"?: 0…1, "target"?: string }';

function usage(msg: string): never {
  throw new MedmaskError('USAGE', `atlas job: ${msg}`, { hint: HINT });
}

function validate(raw: unknown): AtlasJobInput {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) usage('input must be an object');
  const o = raw as Record<string, unknown>;
  const extra = Object.keys(o).filter((k) => !['datasetId', 'models', 'fraction', 'target'].includes(k));
  if (extra.length) usage(`unknown field(s) ${extra.join(', ')}`);
  if (typeof o.datasetId !== 'string' || !o.datasetId.trim() || o.datasetId.length > 100) usage(`datasetId ${JSON.stringify(o.datasetId)} must be a data set id`);
  const models = checkModelRefs(o.models, 'atlas job: models');
  if (o.fraction !== undefined && !(typeof o.fraction === 'number' && o.fraction >= 0 && o.fraction <= 1)) usage(`fraction ${JSON.stringify(o.fraction)} must be a number from 0 to 1`);
  if (o.target !== undefined && (typeof o.target !== 'string' || !o.target.trim() || o.target.length > 100)) usage('target must be a non-empty name of at most 100 characters');
  return { datasetId: o.datasetId, models, ...(o.fraction !== undefined ? { fraction: o.fraction as number } : {}), ...(o.target !== undefined ? { target: o.target as string } : {}) };
}

async function run(ctx: JobContext): Promise<unknown> {
  const input = ctx.input as AtlasJobInput;
  const db = ctx.store.db;
  const target = input.target ?? 'organs';
  const images = await db.selectFrom('images').selectAll().where('dataset_id', '=', input.datasetId).orderBy('name').orderBy('id').execute();
  if (!images.length) throw new MedmaskError('NOT_FOUND', `atlas job: data set ${input.datasetId} has no images`, { hint: 'upload CT volumes or run a phantoms job with kind "3d" first' });
  // The newest partial organ label per image, and its source ("source:<name>" as the phantoms job stores it).
  const masks = await db.selectFrom('labels').select(['image_id', 'blob', 'value', 'created_at']).where('kind', '=', 'mask').where('image_id', 'in', images.map((i) => i.id)).orderBy('created_at').execute();
  const partial = new Map<string, { blob: string | null; source: string }>();
  for (const m of masks) partial.set(m.image_id, { blob: m.blob, source: m.value?.startsWith('source:') ? m.value.slice(7) : 'default' });
  // Write the data set in the nnU-Net layout the atlas reads (blobs are .nii.gz already).
  const data = join(ctx.workDir, 'data');
  await mkdir(join(data, 'imagesTr'), { recursive: true });
  await mkdir(join(data, 'labelsTr'), { recursive: true });
  const caseOf = new Map<string, string>();
  const cases: { case: string; source: string; labelled?: string[] }[] = [];
  for (const [i, img] of images.entries()) {
    if (ctx.signal.aborted) throw new Error('job aborted');
    const id = `case_${String(i).padStart(4, '0')}`;
    caseOf.set(id, img.id);
    await writeFile(join(data, 'imagesTr', `${id}_0000.nii.gz`), await ctx.blobs.get(img.blob));
    const p = partial.get(img.id);
    if (p?.blob) await writeFile(join(data, 'labelsTr', `${id}.nii.gz`), await ctx.blobs.get(p.blob));
    // Labelled organs: as uploaded (dataset.json medmask.cases, or the upload's "labelled" field), else the phantom source's.
    const labelled = caseOriginOf(img).labelled ?? (PHANTOM_SOURCES as Record<string, { labelled: readonly string[] }>)[p?.source ?? '']?.labelled;
    cases.push({ case: id, source: p?.source ?? 'default', ...(labelled ? { labelled: [...labelled] } : {}) });
  }
  const missing = cases.filter((c) => !existsSync(join(data, 'labelsTr', `${c.case}.nii.gz`)));
  if (missing.length) throw new MedmaskError('DATASET_INVALID', `atlas job: ${missing.length} volume(s) have no partial organ label map (e.g. ${images.find((i) => i.id === caseOf.get(missing[0]!.case))?.name})`, { hint: 'add a mask label per volume (an empty one when the source labels no organ)' });
  await atomicWrite(join(data, 'dataset.json'), JSON.stringify({
    name: 'medmask-atlas-job',
    channel_names: { 0: 'CT' },
    labels: { background: 0, ...Object.fromEntries(Object.entries(ABDOMEN_LABELS).map(([k, v]) => [v, Number(k)])) },
    numTraining: cases.length,
    file_ending: '.nii.gz',
    medmask: { cases },
  }));
  await ctx.progress(0.05, `exported ${images.length} volume(s)`);
  const work = join(ctx.workDir, 'work'), out = join(ctx.workDir, 'out');
  const r = await atlasRun(data, work, out, {
    models: await materializeModels(ctx.store, ctx.blobs, input.models, join(ctx.workDir, 'models')),
    rank: { fraction: input.fraction ?? 0.05 },
    export: { formats: ['nifti'] },
    onProgress: (d, t, note) => void ctx.progress(0.05 + (0.85 * d) / t, note),
  });
  const ranking = JSON.parse(await readFile(join(work, 'ranking.json'), 'utf8')) as { ranked: { id: string; priority: number; selected: boolean; organs: string[] }[] };
  let recorded = 0;
  let keptAsDrafts = 0;
  for (const c of ranking.ranked) {
    const imageId = caseOf.get(c.id);
    if (!imageId) continue;
    const merged = join(out, 'labelsTr', `${c.id}.nii.gz`);
    const maskBlob = existsSync(merged) ? (await ctx.blobs.put(await readFile(merged))).hash : undefined;
    const attentionBlob = await maxHeat(ctx, join(work, 'attention', c.id));
    const rec = await recordPrediction(db, {
      jobId: ctx.jobId,
      imageId,
      target,
      probabilities: {},
      decision: c.selected ? 'review' : 'accept',
      priority: c.priority,
      ...(maskBlob ? { maskBlob } : {}),
      ...(attentionBlob ? { attentionBlob } : {}),
    });
    recorded++;
    if (maskBlob && rec.version === null) keptAsDrafts++;
  }
  // keptAsDrafts: merged label maps not made current because a person already reviewed or edited the case.
  return { datasetId: input.datasetId, cases: r.cases, selected: r.rank.selected.length, perSource: r.rank.perSource, recorded, keptAsDrafts, headline: r.report.headline };
}

/** The per-organ attention heat maps of a case (uint8, heat × 255) folded into one by maximum, as a blob. */
async function maxHeat(ctx: JobContext, caseDir: string): Promise<string | undefined> {
  if (!existsSync(caseDir)) return undefined;
  const files = (await readdir(caseDir)).filter((f) => f.endsWith('.nii.gz'));
  let acc: Volume | undefined;
  for (const f of files) {
    const v = await readVolume(join(caseDir, f));
    if (!acc) acc = { ...v, data: Uint8Array.from(v.data as ArrayLike<number>) };
    else for (let i = 0; i < acc.data.length; i++) if (v.data[i]! > acc.data[i]!) acc.data[i] = v.data[i]!;
  }
  return acc ? (await putVolume(ctx.blobs, acc)).hash : undefined;
}

/**
 * The `atlas` job handler.
 * @example
 * POST /api/jobs { "type": "atlas", "input": { "datasetId": "…", "models": ["demo-unet3d@1", "demo-resunet3d@1"] } }
 */
export const atlasHandler: JobHandler = {
  description: 'one round of the 3D multi-organ workflow over a stored data set: predictions, attention, ranking, merged labels, review cases',
  validate,
  resolve: async (input, { store }) => ({ ...(input as AtlasJobInput), models: await pinModelRefs(store.db, (input as AtlasJobInput).models) }),
  run,
};
