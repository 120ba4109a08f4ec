/**
 * Registered models on the server and its workers: register an ONNX file with its manifest (and
 * card, parent, training data, metrics) as a new version; pin a job's model references to exact
 * versions at submit time; and write a job's models out of the blob store into its scratch folder,
 * where the pipelines load them as ordinary model folders. A client's path is never opened: jobs
 * name models by reference only (src/store/models.ts states the rule), and messages name models by
 * `name@version`, never by a path on the server.
 * @module
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MedmaskError } from '../core/errors.js';
import type { BlobStore } from '../store/blob-store.js';
import type { Store } from '../store/db.js';
import {
  addModelVersion, findSameVersion, modelLabel, MODEL_NAME_RE, parseModelRef, resolveModelRef,
  type ModelVersionRow,
} from '../store/models.js';
import type { ModelVersionStatus } from '../store/schema.js';
import { validateManifest, type ModelManifest } from './manifest.js';
import { decodeOnnx } from './onnx-graph.js';

/** What {@link registerModel} takes. */
export interface RegisterModelInput {
  /** The ONNX file's bytes. */
  onnx: Uint8Array;
  /** The medmask-model/1 manifest (parsed JSON). */
  manifest: unknown;
  /** card.json (parsed), when there is one. */
  card?: unknown;
  /** Reference of the parent version; default: the current version of the same name, if any. */
  parent?: string | null;
  /** Cases and label provenance it was trained on. */
  training?: unknown;
  /** Held-out metrics. */
  metrics?: unknown;
  /** Default `registered`; `rejected` keeps a candidate without a number. */
  status?: ModelVersionStatus;
  note?: string;
  jobId?: string;
  createdBy?: string | null;
}

/**
 * Register a model version: validate the manifest and the ONNX graph, store the blob, add the row.
 * Registering the same ONNX bytes and manifest again returns the existing version (created: false).
 * @throws MedmaskError MODEL_INVALID (bad manifest, name, or ONNX), NOT_FOUND (unknown parent)
 * @example
 * const { row } = await registerModel(store, blobs, { onnx, manifest, card });
 * modelLabel(row); // "demo-unet3d@1"
 */
export async function registerModel(store: Store, blobs: BlobStore, input: RegisterModelInput): Promise<{ row: ModelVersionRow; created: boolean }> {
  const manifest: ModelManifest = validateManifest(input.manifest, 'manifest');
  if (!MODEL_NAME_RE.test(manifest.name)) {
    throw new MedmaskError('MODEL_INVALID', `manifest: name ${JSON.stringify(manifest.name)} must be 1–100 letters, digits, ".", "_" or "-", starting with a letter or digit`, { hint: 'jobs name models as name@version, so the name cannot hold "@", "/" or spaces' });
  }
  decodeOnnx(input.onnx, `${manifest.name}.onnx`);
  const { hash, size } = await blobs.put(input.onnx);
  const status = input.status ?? 'registered';
  if (status === 'registered') {
    const same = await findSameVersion(store.db, manifest.name, hash, manifest);
    if (same) return { row: same, created: false };
  }
  let parentId: string | null = null;
  if (input.parent) parentId = (await resolveModelRef(store.db, input.parent, { field: 'parent', allowRejected: false })).id;
  else if (input.parent === undefined) {
    const cur = await store.db.selectFrom('model_versions').select(['id', 'version']).where('name', '=', manifest.name).where('status', '=', 'registered').orderBy('version', 'desc').executeTakeFirst();
    parentId = cur?.id ?? null;
  }
  const row = await addModelVersion(store.db, {
    name: manifest.name, status, blob: hash, size, manifest,
    ...(input.card !== undefined ? { card: input.card } : {}),
    parentId,
    ...(input.training !== undefined ? { training: input.training } : {}),
    ...(input.metrics !== undefined ? { metrics: input.metrics } : {}),
    ...(input.note ? { note: input.note } : {}),
    ...(input.jobId ? { jobId: input.jobId } : {}),
    createdBy: input.createdBy ?? null,
  });
  return { row, created: true };
}

/**
 * Pin a job's model references at submit time: each becomes `name@version` of the version it
 * names now (a bare name → its current version), so the job's input — and its idempotency hash —
 * say exactly which weights it ran.
 * @param field - the input field, for messages (default `models`)
 * @throws MedmaskError USAGE (a path or malformed reference: the rule), NOT_FOUND, CONFLICT (rejected)
 * @example
 * await pinModelRefs(store.db, ['demo-unet3d', 'demo-resunet3d@1']); // ['demo-unet3d@1', 'demo-resunet3d@1']
 */
export async function pinModelRefs(db: Store['db'], refs: readonly unknown[], field = 'models'): Promise<string[]> {
  const out: string[] = [];
  for (const [i, r] of refs.entries()) out.push(modelLabel(await resolveModelRef(db, r, { field: `${field}[${i}]` })));
  return out;
}

/**
 * Check a job's model references without the store (submit-time syntax check inside a handler's
 * `validate`): a path or anything that is not a reference is refused with the rule.
 * @example
 * checkModelRefs(input.models, 'atlas job: models');
 */
export function checkModelRefs(refs: unknown, field: string, max = 16): string[] {
  if (!Array.isArray(refs) || !refs.length || refs.length > max) {
    throw new MedmaskError('USAGE', `${field} must be a list of 1 to ${max} registered model references (name@version or id)`, { hint: 'list the registered models with GET /api/models' });
  }
  return refs.map((r, i) => {
    parseModelRef(r, `${field}[${i}]`);
    return r as string;
  });
}

/**
 * Write registered models into `dir` as model folders (`<name>@<version>/model.onnx`, `model.json`,
 * `card.json`) for the pipelines, which load folders. The manifest's `model` is set to the file
 * written; its card field is dropped when there is no card.
 * @returns the folders, in the order of `refs`
 * @example
 * const paths = await materializeModels(ctx.store, ctx.blobs, input.models, join(ctx.workDir, 'models'));
 */
export async function materializeModels(store: Store, blobs: BlobStore, refs: readonly string[], dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const [i, ref] of refs.entries()) {
    const row = await resolveModelRef(store.db, ref, { field: `models[${i}]` });
    out.push(await writeModelFolder(blobs, row, join(dir, `${row.name}@${row.version}`)));
  }
  return out;
}

/** Write one version as a model folder; returns the folder. */
export async function writeModelFolder(blobs: BlobStore, row: ModelVersionRow, folder: string): Promise<string> {
  await mkdir(folder, { recursive: true });
  const manifest = JSON.parse(row.manifest) as Record<string, unknown>;
  delete manifest.card;
  await writeFile(join(folder, 'model.onnx'), await blobs.get(row.blob));
  await writeFile(join(folder, 'model.json'), JSON.stringify({ ...manifest, model: 'model.onnx' }, null, 1) + '\n');
  if (row.card) await writeFile(join(folder, 'card.json'), row.card);
  return folder;
}

/** The bundled demo zoo (models/demo in the package). */
export const DEMO_ZOO = fileURLToPath(new URL('../../models/demo/', import.meta.url));

/**
 * Register the bundled demo models (models/demo/*: model.onnx, model.json, card.json) that the
 * registry does not hold under their name yet, as their version 1. `medmask serve` calls it on
 * start (unless `--no-demo-models`), so a fresh server can run the demo jobs; an existing name is
 * never touched, so an admin's own versions stay current.
 * @returns the names registered now
 * @example
 * await registerDemoModels(store, blobs); // ['demo-densenet', 'demo-efficientnet', …] on a fresh database
 */
export async function registerDemoModels(store: Store, blobs: BlobStore, zoo = DEMO_ZOO): Promise<string[]> {
  if (!existsSync(zoo)) return [];
  const done: string[] = [];
  for (const d of (await readdir(zoo, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name).sort()) {
    const dir = join(zoo, d);
    if (!existsSync(join(dir, 'model.json')) || !existsSync(join(dir, 'model.onnx'))) continue;
    const manifest = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8')) as { name: string };
    const have = await store.db.selectFrom('model_versions').select('id').where('name', '=', manifest.name).executeTakeFirst();
    if (have) continue;
    const card = existsSync(join(dir, 'card.json')) ? (JSON.parse(await readFile(join(dir, 'card.json'), 'utf8')) as unknown) : undefined;
    const metrics = (card as { metrics?: { heldout?: unknown } } | undefined)?.metrics?.heldout;
    await registerModel(store, blobs, {
      onnx: new Uint8Array(await readFile(join(dir, 'model.onnx'))),
      manifest,
      ...(card !== undefined ? { card } : {}),
      ...(metrics !== undefined ? { metrics: { heldout: metrics } } : {}),
      training: { source: 'bundled demo zoo (models/demo)', data: (card as { data?: unknown } | undefined)?.data ?? null },
      parent: null,
      note: 'bundled demo model',
    });
    done.push(manifest.name);
  }
  return done;
}
