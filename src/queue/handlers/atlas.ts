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
import { atlasAttention, atlasMerge, atlasPredict, atlasRank, type CaseAttention } from '../../pipeline/atlas.js';
import { validateManifest } from '../../runtime/manifest.js';
import { checkModelRefs, materializeModels, pinModelRefs } from '../../runtime/model-registry.js';
import { caseOriginOf } from '../../store/images.js';
import { recordPrediction } from '../../store/masks.js';
import { resolveModelRef } from '../../store/models.js';
import { putVolume } from '../../store/volumes.js';
import type { JobContext, JobHandler, PlannedTask, SettledTask, SubmitContext, TaskContext } from '../handlers.js';

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

/** One volume: an atlas task. */
interface AtlasTask {
  /** Position in the job's plan: names the case (case_0000, …) as one whole run would. */
  index: number;
  imageId: string;
  name: string;
  source: string;
  /** The partial organ label map. */
  labelBlob: string;
  /** The organs the case's source labels, as the upload recorded them (else the phantom source's). */
  labelled?: string[];
}

/** What a task hands to the reduce step. */
interface AtlasTaskResult {
  case: string;
  summary: CaseAttention;
  maskBlob: string | null;
  attentionBlob: string | null;
}

/** The data set's volumes with their newest partial organ label and source, or the error the job would fail with. */
async function volumes(ctx: { store: JobContext['store'] }, datasetId: string): Promise<Omit<AtlasTask, 'index'>[]> {
  const db = ctx.store.db;
  const ds = await db.selectFrom('datasets').select('id').where('id', '=', datasetId).executeTakeFirst();
  if (!ds) throw new MedmaskError('NOT_FOUND', `atlas job: data set ${datasetId} does not exist`, { hint: 'list data sets with GET /api/projects/…/datasets' });
  const images = await db.selectFrom('images').select(['id', 'name', 'meta']).where('dataset_id', '=', datasetId).orderBy('name').orderBy('id').execute();
  if (!images.length) throw new MedmaskError('NOT_FOUND', `atlas job: data set ${datasetId} has no images`, { hint: 'upload CT volumes or run a phantoms job with kind "3d" first' });
  // The newest partial organ label per image, and its source ("source:<name>" as the phantoms job stores it).
  const partial = new Map<string, { blob: string | null; source: string }>();
  for (let i = 0; i < images.length; i += 500) {
    const masks = await db.selectFrom('labels').select(['image_id', 'blob', 'value', 'created_at']).where('kind', '=', 'mask').where('image_id', 'in', images.slice(i, i + 500).map((x) => x.id)).orderBy('created_at').execute();
    for (const m of masks) partial.set(m.image_id, { blob: m.blob, source: m.value?.startsWith('source:') ? m.value.slice(7) : 'default' });
  }
  const missing = images.filter((img) => !partial.get(img.id)?.blob);
  if (missing.length) throw new MedmaskError('DATASET_INVALID', `atlas job: ${missing.length} volume(s) have no partial organ label map (e.g. ${missing[0]!.name})`, { hint: 'add a mask label per volume (an empty one when the source labels no organ)' });
  return images.map((img) => {
    const labelled = caseOriginOf(img).labelled;
    return { imageId: img.id, name: img.name, source: partial.get(img.id)!.source, labelBlob: partial.get(img.id)!.blob!, ...(labelled ? { labelled } : {}) };
  });
}

/** At submission: the data set exists, is not empty, every volume has its partial label; the models are segmenters of the data set's organs. */
async function check(raw: unknown, ctx: SubmitContext): Promise<void> {
  const input = raw as AtlasJobInput;
  await volumes(ctx, input.datasetId);
  const organs = new Set<string>(Object.values(ABDOMEN_LABELS));
  for (const m of input.models) {
    const manifest = validateManifest(JSON.parse((await resolveModelRef(ctx.store.db, m)).manifest), m);
    if (manifest.task !== 'segment') throw new MedmaskError('MODEL_INVALID', `atlas job: model "${m}" is a ${manifest.task} model; the atlas needs 3D segmenters (task "segment")`, { hint: 'use demo-unet3d@1 or another registered segmenter (GET /api/models)' });
    const unknown = Object.values(manifest.labels).filter((n) => n !== 'background' && !organs.has(n));
    if (unknown.length) throw new MedmaskError('MODEL_INVALID', `atlas job: model "${m}" predicts organ(s) ${unknown.join(', ')} that the data set does not name (${[...organs].join(', ')})`, { hint: 'use a segmenter of the abdominal organs' });
  }
}

/** Plan: one task per volume. */
async function plan(ctx: JobContext): Promise<PlannedTask[]> {
  const input = ctx.input as AtlasJobInput;
  const vols = await volumes(ctx, input.datasetId);
  await ctx.progress(0.01, `planned ${vols.length} volume(s)`);
  return vols.map((v, index) => ({ key: v.imageId, input: { index, ...v } satisfies AtlasTask }));
}

/** One volume: fetch its two blobs, predict with every segmenter, attention and pseudo-labels, merge (original > pseudo). */
async function runTask(ctx: TaskContext): Promise<AtlasTaskResult> {
  const input = ctx.input as AtlasJobInput;
  const t = ctx.task.input as AtlasTask;
  const id = caseName(t.index);
  const data = join(ctx.workDir, 'data');
  await mkdir(join(data, 'imagesTr'), { recursive: true });
  await mkdir(join(data, 'labelsTr'), { recursive: true });
  const image = await ctx.store.db.selectFrom('images').select('blob').where('id', '=', t.imageId).executeTakeFirst();
  if (!image) throw new MedmaskError('NOT_FOUND', `atlas job: volume ${t.name} (${t.imageId}) was deleted after the job was planned`);
  await writeFile(join(data, 'imagesTr', `${id}_0000.nii.gz`), await ctx.blobs.get(image.blob));
  await writeFile(join(data, 'labelsTr', `${id}.nii.gz`), await ctx.blobs.get(t.labelBlob));
  // Labelled organs: as uploaded (dataset.json medmask.cases, or the upload's "labelled" field), else the phantom source's.
  const known = t.labelled ?? (PHANTOM_SOURCES as Record<string, { labelled: readonly string[] }>)[t.source]?.labelled;
  await atomicWrite(join(data, 'dataset.json'), JSON.stringify({
    name: 'medmask-atlas-job',
    channel_names: { 0: 'CT' },
    labels: { background: 0, ...Object.fromEntries(Object.entries(ABDOMEN_LABELS).map(([k, v]) => [v, Number(k)])) },
    numTraining: 1,
    file_ending: '.nii.gz',
    medmask: { cases: [{ case: id, source: t.source, ...(known ? { labelled: [...known] } : {}) }] },
  }));
  const work = join(ctx.workDir, 'work'), out = join(ctx.workDir, 'out');
  // The work folder is this task's scratch, read back at once: soft predictions uncompressed.
  await atlasPredict(data, await materializeModels(ctx.store, ctx.blobs, input.models, join(ctx.workDir, 'models')), work, { compress: false, ...(ctx.threads ? { load: { threads: ctx.threads } } : {}) });
  if (ctx.signal.aborted) throw new Error('job aborted');
  const [summary] = await atlasAttention(data, work);
  await atlasMerge(data, work, out);
  const merged = join(out, 'labelsTr', `${id}.nii.gz`);
  const maskBlob = existsSync(merged) ? (await ctx.blobs.put(await readFile(merged))).hash : null;
  const attentionBlob = (await maxHeat(ctx, join(work, 'attention', id))) ?? null;
  return { case: id, summary: summary!, maskBlob, attentionBlob };
}

const caseName = (index: number) => `case_${String(index).padStart(4, '0')}`;

/** Reduce: rank the cases and select the top fraction per source; record each case's prediction and merged label map. */
async function reduce(ctx: JobContext, tasks: readonly SettledTask[]): Promise<unknown> {
  const input = ctx.input as AtlasJobInput;
  const target = input.target ?? 'organs';
  const done = tasks.filter((t) => t.status === 'done');
  const failed = tasks.filter((t) => t.status === 'failed').map((t) => ({ image: (t.input as AtlasTask).name, error: t.error ?? 'failed' }));
  const byCase = new Map(done.map((t) => [(t.result as AtlasTaskResult).case, t]));
  let perSource: Record<string, { cases: number; selected: number }> = {};
  let selected = 0, recorded = 0, keptAsDrafts = 0;
  if (done.length) {
    // atlasRank reads WORK/attention/<case>.json: the same ranking code as `medmask atlas rank`.
    const work = join(ctx.workDir, 'rank');
    await mkdir(join(work, 'attention'), { recursive: true });
    for (const t of done) {
      const r = t.result as AtlasTaskResult;
      await writeFile(join(work, 'attention', `${r.case}.json`), JSON.stringify(r.summary));
    }
    const ranking = await atlasRank(work, { fraction: input.fraction ?? 0.05 });
    perSource = {};
    for (const c of ranking.ranked) {
      const s = (perSource[c.source] ??= { cases: 0, selected: 0 });
      s.cases++;
      if (c.selected) s.selected++;
    }
    selected = ranking.selected.length;
    for (const [i, c] of ranking.ranked.entries()) {
      if (ctx.signal.aborted) throw new Error('job aborted');
      const t = byCase.get(c.id)!;
      const r = t.result as AtlasTaskResult;
      const rec = await recordPrediction(ctx.store.db, {
        jobId: ctx.jobId,
        imageId: (t.input as AtlasTask).imageId,
        target,
        probabilities: {},
        decision: c.selected ? 'review' : 'accept',
        priority: c.priority,
        ...(r.maskBlob ? { maskBlob: r.maskBlob } : {}),
        ...(r.attentionBlob ? { attentionBlob: r.attentionBlob } : {}),
      });
      recorded++;
      if (r.maskBlob && rec.version === null) keptAsDrafts++;
      await ctx.progress((i + 1) / ranking.ranked.length, `recorded ${i + 1}/${ranking.ranked.length}`);
    }
  }
  // keptAsDrafts: merged label maps not made current because a person already reviewed or edited the case.
  return { datasetId: input.datasetId, cases: done.length, selected, perSource, recorded, keptAsDrafts, failed };
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
  description: 'one round of the 3D multi-organ workflow over a stored data set, one task per volume on any worker: predictions, attention, merged labels; then ranking and review cases',
  validate,
  resolve: async (input, { store }) => ({ ...(input as AtlasJobInput), models: await pinModelRefs(store.db, (input as AtlasJobInput).models) }),
  check,
  fanOut: { plan, runTask, reduce },
};
