/**
 * The model registry: every version of every registered model, with its manifest, ONNX blob, card,
 * parent version, training data (cases + label provenance) and held-out metrics. Jobs name models
 * by reference — `name@version`, `name` (the current version, pinned at submit time) or a version
 * id — and never by a path on the server (issue 17 §3: a path from a client is never opened).
 *
 * Versions are numbered 1, 2, … per name in registration order. A fine-tune candidate that did
 * worse on held-out data than its parent is kept as a rejected row (status `rejected`, no number)
 * with its metrics and lineage, and no job can use it.
 * @module
 */
import type { Kysely, Selectable } from 'kysely';
import { MedmaskError } from '../core/errors.js';
import type { Database, ModelVersionStatus, ModelVersionsTable } from './schema.js';
import { newId, nowIso, parseJson } from './util.js';

/** A model_versions row. */
export type ModelVersionRow = Selectable<ModelVersionsTable>;

/** A parsed model reference. */
export type ModelRef = { kind: 'name'; name: string; version?: number } | { kind: 'id'; id: string };

/** Model names: what manifests may call a model (and what a reference may name). */
export const MODEL_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
const ID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The rule every job's model reference follows (quoted in errors). */
export const MODEL_REF_RULE = 'jobs name registered models as name@version, name (its current version) or a version id; a path on the server is never opened — an admin registers a model file with POST /api/models';

/**
 * Parse a model reference; anything else (a path, a URL, an empty string) is a USAGE error that
 * states the rule. Nothing is looked up and no file is touched, so the answer reveals nothing
 * about the server's files.
 * @param ref - what the client sent
 * @param field - the field name for the message, e.g. `models[0]`
 * @example
 * parseModelRef('demo-unet3d@2'); // { kind: 'name', name: 'demo-unet3d', version: 2 }
 */
export function parseModelRef(ref: unknown, field = 'model'): ModelRef {
  const shown = typeof ref === 'string' ? JSON.stringify(ref.length > 80 ? `${ref.slice(0, 80)}…` : ref) : JSON.stringify(ref);
  const bad = (): never => {
    throw new MedmaskError('USAGE', `${field} ${shown} is not a model reference: ${MODEL_REF_RULE}`, { hint: 'list the registered models with GET /api/models' });
  };
  if (typeof ref !== 'string') return bad();
  if (ID_RE.test(ref)) return { kind: 'id', id: ref.toLowerCase() };
  const m = /^([^@]+)(?:@([1-9][0-9]{0,8}))?$/.exec(ref);
  if (!m || !MODEL_NAME_RE.test(m[1]!)) return bad();
  return { kind: 'name', name: m[1]!, ...(m[2] ? { version: Number(m[2]) } : {}) };
}

/** `name@version` of a registered version, or `name (rejected candidate id)`. */
export function modelLabel(r: Pick<ModelVersionRow, 'name' | 'version' | 'id'>): string {
  return r.version === null ? `${r.name} (rejected candidate ${r.id})` : `${r.name}@${r.version}`;
}

/** A model version as the API shows it. */
export interface ModelVersionView {
  id: string;
  name: string;
  version: number | null;
  ref: string | null;
  status: ModelVersionStatus;
  hash: string;
  size: number;
  manifest: unknown;
  card: unknown;
  parent: { id: string; ref: string | null } | null;
  training: unknown;
  metrics: unknown;
  note: string | null;
  jobId: string | null;
  createdAt: string;
}

/** Row → API view (the parent's reference resolved by the caller's lookup). */
export function modelVersionView(r: ModelVersionRow, parent?: ModelVersionRow): ModelVersionView {
  return {
    id: r.id,
    name: r.name,
    version: r.version,
    ref: r.version === null ? null : `${r.name}@${r.version}`,
    status: r.status,
    hash: r.blob,
    size: r.size,
    manifest: parseJson(r.manifest),
    card: parseJson(r.card),
    parent: r.parent_id ? { id: r.parent_id, ref: parent?.version != null ? `${parent.name}@${parent.version}` : null } : null,
    training: parseJson(r.training),
    metrics: parseJson(r.metrics),
    note: r.note,
    jobId: r.job_id,
    createdAt: r.created_at,
  };
}

/** What {@link addModelVersion} stores. */
export interface NewModelVersion {
  name: string;
  status: ModelVersionStatus;
  blob: string;
  size: number;
  manifest: unknown;
  card?: unknown;
  parentId?: string | null;
  training?: unknown;
  metrics?: unknown;
  note?: string | null;
  jobId?: string | null;
  createdBy?: string | null;
}

/**
 * Store a new version: registered versions get the next number of their name (the unique index on
 * (name, version) settles two registrations racing for one number: the loser retries).
 * @returns the new row
 * @throws MedmaskError NOT_FOUND when the parent id does not exist
 */
export async function addModelVersion(db: Kysely<Database>, v: NewModelVersion): Promise<ModelVersionRow> {
  if (v.parentId) await getModelVersionById(db, v.parentId);
  for (let attempt = 0; ; attempt++) {
    const version = v.status === 'registered' ? (await currentNumber(db, v.name, true)) + 1 : null;
    const row: ModelVersionRow = {
      id: newId(),
      name: v.name,
      version,
      status: v.status,
      blob: v.blob,
      size: v.size,
      manifest: JSON.stringify(v.manifest),
      card: v.card === undefined || v.card === null ? null : JSON.stringify(v.card),
      parent_id: v.parentId ?? null,
      training: v.training === undefined ? null : JSON.stringify(v.training),
      metrics: v.metrics === undefined ? null : JSON.stringify(v.metrics),
      note: v.note ?? null,
      job_id: v.jobId ?? null,
      created_at: nowIso(),
      created_by: v.createdBy ?? null,
    };
    try {
      await db.insertInto('model_versions').values(row).execute();
      return row;
    } catch (e) {
      if (attempt < 3 && version !== null && /unique|duplicate/i.test((e as Error).message)) continue;
      throw e;
    }
  }
}

/** The highest version number of `name` (0 when none); `any` counts every numbered row. */
async function currentNumber(db: Kysely<Database>, name: string, any = false): Promise<number> {
  let q = db.selectFrom('model_versions').select((eb) => eb.fn.max('version').as('v')).where('name', '=', name);
  if (!any) q = q.where('status', '=', 'registered');
  const r = await q.executeTakeFirst();
  return Number(r?.v ?? 0);
}

/** A version by id, or NOT_FOUND. */
export async function getModelVersionById(db: Kysely<Database>, id: string): Promise<ModelVersionRow> {
  const r = await db.selectFrom('model_versions').selectAll().where('id', '=', id).executeTakeFirst();
  if (!r) throw new MedmaskError('NOT_FOUND', `no model version with id ${id}`, { hint: 'list the registered models with GET /api/models' });
  return r;
}

/**
 * Resolve a reference to a version row.
 * @param opts.allowRejected - also return a rejected candidate named by id (for inspection; jobs never do)
 * @throws MedmaskError USAGE for a malformed reference (a path), NOT_FOUND for an unknown name or
 *   version (naming the versions that exist), CONFLICT for a rejected candidate
 * @example
 * const v = await resolveModelRef(db, 'demo-unet3d@1');
 */
export async function resolveModelRef(db: Kysely<Database>, ref: unknown, opts: { field?: string; allowRejected?: boolean } = {}): Promise<ModelVersionRow> {
  const field = opts.field ?? 'model';
  const p = parseModelRef(ref, field);
  let row: ModelVersionRow | undefined;
  if (p.kind === 'id') {
    row = await db.selectFrom('model_versions').selectAll().where('id', '=', p.id).executeTakeFirst();
    if (!row) throw new MedmaskError('NOT_FOUND', `${field}: no model version with id ${p.id}`, { hint: 'list the registered models with GET /api/models' });
  } else {
    const versions = await db.selectFrom('model_versions').select(['version']).where('name', '=', p.name).where('status', '=', 'registered').orderBy('version').execute();
    if (!versions.length) throw new MedmaskError('NOT_FOUND', `${field}: no registered model named "${p.name}"`, { hint: 'list the registered models with GET /api/models; an admin registers one with POST /api/models' });
    const want = p.version ?? versions[versions.length - 1]!.version!;
    row = await db.selectFrom('model_versions').selectAll().where('name', '=', p.name).where('version', '=', want).executeTakeFirst();
    if (!row) throw new MedmaskError('NOT_FOUND', `${field}: "${p.name}" has no version ${want}`, { hint: `registered versions: ${versions.map((v) => `${p.name}@${v.version}`).join(', ')}` });
  }
  if (row.status === 'rejected' && !opts.allowRejected) {
    throw new MedmaskError('CONFLICT', `${field}: ${modelLabel(row)} was rejected (${row.note ?? 'held-out Dice below its parent\'s'}) and cannot be used by jobs`, { hint: `use its parent or the current version of "${row.name}"` });
  }
  return row;
}

/** Every version of `name`, oldest first (rejected candidates included). */
export async function modelVersionsOf(db: Kysely<Database>, name: string): Promise<ModelVersionRow[]> {
  return db.selectFrom('model_versions').selectAll().where('name', '=', name).orderBy('created_at').orderBy('id').execute();
}

/** One line per model name: its current version and counts. */
export interface ModelSummary {
  name: string;
  current: ModelVersionView | null;
  versions: number;
  rejected: number;
}

/** The registry by name (current version of each, with counts). */
export async function listModels(db: Kysely<Database>): Promise<ModelSummary[]> {
  const rows = await db.selectFrom('model_versions').selectAll().orderBy('name').orderBy('created_at').execute();
  const byName = new Map<string, ModelVersionRow[]>();
  for (const r of rows) byName.set(r.name, [...(byName.get(r.name) ?? []), r]);
  const byId = new Map(rows.map((r) => [r.id, r]));
  return [...byName].map(([name, rs]) => {
    const reg = rs.filter((r) => r.status === 'registered').sort((a, b) => a.version! - b.version!);
    const cur = reg[reg.length - 1];
    return { name, current: cur ? modelVersionView(cur, cur.parent_id ? byId.get(cur.parent_id) : undefined) : null, versions: reg.length, rejected: rs.length - reg.length };
  });
}

/**
 * The lineage of a version: itself, its parent, its parent's parent … to the root.
 * @example
 * (await modelLineage(db, v.id)).map(modelLabel); // ['demo-unet3d@3', 'demo-unet3d@2', 'demo-unet3d@1']
 */
export async function modelLineage(db: Kysely<Database>, id: string): Promise<ModelVersionRow[]> {
  const out: ModelVersionRow[] = [];
  const seen = new Set<string>();
  let cur: string | null = id;
  while (cur && !seen.has(cur)) {
    seen.add(cur);
    const r: ModelVersionRow = await getModelVersionById(db, cur);
    out.push(r);
    cur = r.parent_id;
  }
  return out;
}

/** A registered version of `name` whose ONNX blob and manifest equal these (an idempotent re-registration). */
export async function findSameVersion(db: Kysely<Database>, name: string, blob: string, manifest: unknown): Promise<ModelVersionRow | undefined> {
  const rows = await db.selectFrom('model_versions').selectAll().where('name', '=', name).where('blob', '=', blob).where('status', '=', 'registered').execute();
  const m = JSON.stringify(manifest);
  return rows.find((r) => r.manifest === m);
}
