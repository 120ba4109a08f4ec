/**
 * The `finetune` job: one fine-tune of the AbdomenAtlas-8K loop (Qu et al. 2023) on the server.
 * The stored data set's CT volumes and the current version of each volume's organ case (the merged
 * labels an `atlas` job wrote, with the experts' edits) are exported with their label provenance —
 * organs the volume's source labelled are `original`, the other organs `revised` when a person
 * saved the current version, else `pseudo` — and the registered model named by `model` is
 * warm-started and trained on them in a PyTorch child process (src/pipeline/atlas-train.ts).
 * The new weights are registered as the model's next version only when their held-out mean Dice
 * is not below the parent's on the same held-out cases; otherwise they are kept as a rejected
 * candidate with their metrics. Idempotent: a retried job returns the version it registered.
 *
 * Needs `/usr/bin/python3` with Debian's python3-torch, python3-nibabel and python3-onnx on the
 * worker that runs it; without them the job fails at once with an ENVIRONMENT error naming them.
 * @module
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isMedmaskError, MedmaskError } from '../../core/errors.js';
import type { Provenance } from '../../core/atlas/merge.js';
import { ABDOMEN_LABELS, PHANTOM_SOURCES } from '../../core/phantom/abdomen.js';
import { atomicWrite } from '../../io/atomic.js';
import { atlasFinetune } from '../../pipeline/atlas-finetune.js';
import { checkTrainer } from '../../pipeline/atlas-train.js';
import { pinModelRefs, registerModel, writeModelFolder } from '../../runtime/model-registry.js';
import { modelLabel, parseModelRef, resolveModelRef } from '../../store/models.js';
import type { JobContext, JobHandler } from '../handlers.js';

/** Input of the finetune job. */
export interface FinetuneJobInput {
  datasetId: string;
  /** The registered 3D segmenter to fine-tune (name@version; a bare name is pinned at submit). */
  model: string;
  /** Training steps (default 40). */
  steps?: number;
  /** Loss weights by label provenance (default all 1); pseudo 0 = original + revised labels only. */
  labelWeights?: Partial<Record<Provenance, number>>;
  /** Train only on volumes with a revised organ. */
  onlyRevised?: boolean;
  heldoutFraction?: number;
  seed?: number;
  /** The review case holding the merged labels (default "organs", as the atlas job writes). */
  target?: string;
}

const HINT = 'input: { "datasetId": string, "model": "demo-unet3d@1", "steps"?: 0 | 4…5000, "labelWeights"?: { "original"?: w, "revised"?: w, "pseudo"?: w }, "onlyRevised"?: boolean, "heldoutFraction"?: 0…1, "seed"?: integer, "target"?: string }';
const usage = (msg: string): never => {
  throw new MedmaskError('USAGE', `finetune job: ${msg}`, { hint: HINT });
};

function validate(raw: unknown): FinetuneJobInput {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) usage('input must be an object');
  const o = raw as Record<string, unknown>;
  const extra = Object.keys(o).filter((k) => !['datasetId', 'model', 'steps', 'labelWeights', 'onlyRevised', 'heldoutFraction', 'seed', 'target'].includes(k));
  if (extra.length) usage(`unknown field(s) ${extra.join(', ')}`);
  if (typeof o.datasetId !== 'string' || !o.datasetId.trim() || o.datasetId.length > 100) usage(`datasetId ${JSON.stringify(o.datasetId)} must be a data set id`);
  parseModelRef(o.model, 'finetune job: model');
  if (o.steps !== undefined && !(Number.isInteger(o.steps) && ((o.steps as number) === 0 || ((o.steps as number) >= 4 && (o.steps as number) <= 5000)))) usage(`steps ${JSON.stringify(o.steps)} must be 0 or a whole number from 4 to 5000`);
  if (o.labelWeights !== undefined) {
    if (typeof o.labelWeights !== 'object' || o.labelWeights === null || Array.isArray(o.labelWeights)) usage('labelWeights must be an object { "original"?: w, "revised"?: w, "pseudo"?: w }');
    for (const [k, v] of Object.entries(o.labelWeights as object)) if (!['original', 'revised', 'pseudo'].includes(k) || !(typeof v === 'number' && v >= 0 && v <= 10)) usage(`labelWeights.${k} must be original, revised or pseudo with a weight from 0 to 10`);
  }
  if (o.onlyRevised !== undefined && typeof o.onlyRevised !== 'boolean') usage('onlyRevised must be true or false');
  if (o.heldoutFraction !== undefined && !(typeof o.heldoutFraction === 'number' && o.heldoutFraction > 0 && o.heldoutFraction < 1)) usage('heldoutFraction must be a number between 0 and 1');
  if (o.seed !== undefined && !Number.isInteger(o.seed)) usage('seed must be an integer');
  if (o.target !== undefined && (typeof o.target !== 'string' || !o.target.trim() || o.target.length > 100)) usage('target must be a non-empty name of at most 100 characters');
  return o as unknown as FinetuneJobInput;
}

/** Job errors are visible to every reader: name the job's scratch folder `<job>`, never its server path. */
async function run(ctx: JobContext): Promise<unknown> {
  try {
    return await runFinetune(ctx);
  } catch (e) {
    if (!isMedmaskError(e)) throw e;
    const scrub = (t: string) => t.split(ctx.workDir).join('<job>');
    throw new MedmaskError(e.code, scrub(e.message), { cause: e, ...(e.hint ? { hint: scrub(e.hint) } : {}) });
  }
}

async function runFinetune(ctx: JobContext): Promise<unknown> {
  const input = ctx.input as FinetuneJobInput;
  checkTrainer();
  const db = ctx.store.db;
  const parent = await resolveModelRef(db, input.model, { field: 'model' });
  // A retried job: the version (or rejected candidate) it already stored.
  const done = await db.selectFrom('model_versions').selectAll().where('job_id', '=', ctx.jobId).executeTakeFirst();
  if (done) return { model: modelLabel(done), id: done.id, decision: done.status === 'registered' ? 'accepted' : 'rejected', parent: modelLabel(parent), metrics: JSON.parse(done.metrics ?? 'null') as unknown };
  const manifest = JSON.parse(parent.manifest) as { task?: string };
  if (manifest.task !== 'segment') throw new MedmaskError('MODEL_INVALID', `finetune job: ${modelLabel(parent)} is a "${manifest.task}" model; fine-tuning here trains 3D segmenters`, { hint: '2D classifiers get new heads with medmask train-head' });
  const parentDir = await writeModelFolder(ctx.blobs, parent, join(ctx.workDir, 'parent'));

  // Export volumes, partial labels and merged labels with provenance.
  const target = input.target ?? 'organs';
  const images = await db.selectFrom('images').selectAll().where('dataset_id', '=', input.datasetId).orderBy('name').orderBy('id').execute();
  if (!images.length) throw new MedmaskError('NOT_FOUND', `finetune job: data set ${input.datasetId} has no images`, { hint: 'upload CT volumes and run an atlas job first' });
  const masks = await db.selectFrom('masks').innerJoin('mask_versions', (j) => j.onRef('mask_versions.mask_id', '=', 'masks.id').onRef('mask_versions.version', '=', 'masks.current_version'))
    .select(['masks.image_id', 'mask_versions.blob', 'mask_versions.origin']).where('masks.target', '=', target).where('masks.image_id', 'in', images.map((i) => i.id)).execute();
  const mergedOf = new Map(masks.map((m) => [m.image_id, m]));
  const partials = await db.selectFrom('labels').select(['image_id', 'blob', 'value', 'created_at']).where('kind', '=', 'mask').where('image_id', 'in', images.map((i) => i.id)).orderBy('created_at').execute();
  const partialOf = new Map(partials.map((p) => [p.image_id, p]));
  const data = join(ctx.workDir, 'data'), merged = join(ctx.workDir, 'merged');
  for (const d of [join(data, 'imagesTr'), join(data, 'labelsTr'), join(merged, 'labelsTr')]) await mkdir(d, { recursive: true });
  const organs = Object.values(ABDOMEN_LABELS);
  const cases: { case: string; source: string; labelled: string[] }[] = [];
  const provenance: { case: string; provenance: Record<string, Provenance> }[] = [];
  let revisedCases = 0;
  for (const [i, img] of images.entries()) {
    const m = mergedOf.get(img.id);
    if (!m) continue;
    const id = `case_${String(i).padStart(4, '0')}`;
    const p = partialOf.get(img.id);
    const source = p?.value?.startsWith('source:') ? p.value.slice(7) : 'default';
    const labelled = [...((PHANTOM_SOURCES as Record<string, { labelled: readonly string[] }>)[source]?.labelled ?? [])];
    await writeFile(join(data, 'imagesTr', `${id}_0000.nii.gz`), await ctx.blobs.get(img.blob));
    if (p?.blob) await writeFile(join(data, 'labelsTr', `${id}.nii.gz`), await ctx.blobs.get(p.blob));
    await writeFile(join(merged, 'labelsTr', `${id}.nii.gz`), await ctx.blobs.get(m.blob));
    const human = m.origin === 'human';
    if (human) revisedCases++;
    provenance.push({ case: id, provenance: Object.fromEntries(organs.map((o) => [o, labelled.includes(o) ? 'original' : human ? 'revised' : 'pseudo'])) as Record<string, Provenance> });
    cases.push({ case: id, source, labelled });
  }
  if (cases.length < 2) throw new MedmaskError('NOT_FOUND', `finetune job: ${cases.length} volume(s) of data set ${input.datasetId} have merged labels on case "${target}"; fine-tuning needs at least 2 (training and held-out)`, { hint: 'run an atlas job on the data set first' });
  await atomicWrite(join(data, 'dataset.json'), JSON.stringify({
    name: 'medmask-finetune-job', channel_names: { 0: 'CT' },
    labels: { background: 0, ...Object.fromEntries(Object.entries(ABDOMEN_LABELS).map(([k, v]) => [v, Number(k)])) },
    numTraining: cases.length, file_ending: '.nii.gz', medmask: { cases },
  }));
  await atomicWrite(join(merged, 'provenance.json'), JSON.stringify({ cases: provenance }));
  await ctx.progress(0.05, `exported ${cases.length} volume(s) (${revisedCases} with an expert's labels)`);

  const steps = input.steps ?? 40;
  const r = await atlasFinetune(data, merged, join(ctx.workDir, 'ft'), {
    model: parentDir,
    steps,
    only: input.onlyRevised ? 'revised' : 'all',
    ...(input.labelWeights ? { labelWeights: input.labelWeights } : {}),
    ...(input.heldoutFraction !== undefined ? { heldoutFraction: input.heldoutFraction } : {}),
    ...(input.seed !== undefined ? { seed: input.seed } : {}),
    signal: ctx.signal,
    onProgress: (d, t) => void ctx.progress(0.1 + (0.8 * d) / Math.max(1, t), `step ${d}/${t}`),
  });
  const imageOf = new Map(cases.map((c, i) => [c.case, images[i]?.name ?? c.case]));
  const card = JSON.parse(await readFile(join(r.modelDir, 'card.json'), 'utf8')) as unknown;
  const metrics = { heldout: r.heldout, parentHeldout: r.parentHeldout, exportCheck: r.exportCheck, trainSeconds: r.trainSeconds };
  const { row } = await registerModel(ctx.store, ctx.blobs, {
    onnx: new Uint8Array(await readFile(join(r.modelDir, 'model.onnx'))),
    manifest: { ...(JSON.parse(await readFile(join(r.modelDir, 'model.json'), 'utf8')) as Record<string, unknown>), name: parent.name },
    card,
    parent: parent.id,
    status: r.decision === 'accepted' ? 'registered' : 'rejected',
    ...(r.decision === 'rejected' ? { note: r.reason } : {}),
    training: {
      datasetId: input.datasetId, steps: r.steps, labelWeights: r.labelWeights,
      cases: r.trainCases.map((c) => imageOf.get(c) ?? c), heldout: r.heldoutCases.map((c) => imageOf.get(c) ?? c),
      provenance: Object.fromEntries(provenance.map((p) => [imageOf.get(p.case) ?? p.case, p.provenance])),
    },
    metrics,
    jobId: ctx.jobId,
    createdBy: ctx.userId,
  });
  return { model: modelLabel(row), id: row.id, decision: r.decision, reason: r.reason, parent: modelLabel(parent), metrics };
}

/**
 * The `finetune` job handler.
 * @example
 * POST /api/jobs { "type": "finetune", "input": { "datasetId": "…", "model": "demo-unet3d@1", "steps": 40, "labelWeights": { "pseudo": 0.5 } } }
 */
export const finetuneHandler: JobHandler = {
  description: 'fine-tune a registered 3D segmenter on a data set\'s merged labels (PyTorch on the worker); registers the next version when its held-out Dice is not below its parent\'s, else keeps a rejected candidate',
  validate,
  requires: ['torch'],
  resolve: async (input, { store }) => ({ ...(input as FinetuneJobInput), model: (await pinModelRefs(store.db, [(input as FinetuneJobInput).model], 'model'))[0]! }),
  run,
};
