/**
 * DICOMweb records: archives registered per project (password or token encrypted with the
 * deployment's key, `secret-box.ts`), series imports with their UID mapping (the
 * only place original UIDs and patient attributes are stored), and DICOM SEG pushes.
 * @module
 */
import type { Kysely, Selectable } from 'kysely';
import { MedmaskError } from '../core/errors.js';
import type { DicomwebAuth, DicomwebEndpoint } from '../dicomweb/client.js';
import type { Database, DicomwebImportsTable, DicomwebPushesTable, DicomwebSourcesTable } from './schema.js';
import { isSealed, type SecretBox } from './secret-box.js';
import { newId, nowIso } from './util.js';

type Db = Kysely<Database>;
export type DicomwebSourceRow = Selectable<DicomwebSourcesTable>;
export type DicomwebImportRow = Selectable<DicomwebImportsTable>;
export type DicomwebPushRow = Selectable<DicomwebPushesTable>;

/** A source as the API shows it: no password or token. */
export interface DicomwebSourceView {
  id: string;
  projectId: string;
  name: string;
  url: string;
  auth: { type: DicomwebAuth['type']; username?: string };
  tls: { ca: boolean; insecure: boolean };
  timeoutMs: number;
  autoPush: boolean;
  createdAt: string;
}

/** The API view of a source row. */
export function sourceView(r: DicomwebSourceRow): DicomwebSourceView {
  const auth = JSON.parse(r.auth) as DicomwebAuth;
  const tls = JSON.parse(r.tls) as { ca?: string; insecure?: boolean };
  return { id: r.id, projectId: r.project_id, name: r.name, url: r.url, auth: { type: auth.type, ...(auth.type === 'basic' ? { username: auth.username } : {}) }, tls: { ca: !!tls.ca, insecure: !!tls.insecure }, timeoutMs: r.timeout_ms, autoPush: !!r.auto_push, createdAt: r.created_at };
}

/** The client endpoint of a source row, its password or token decrypted with the deployment's key. */
export function sourceEndpoint(r: DicomwebSourceRow, box: SecretBox): DicomwebEndpoint {
  const auth = JSON.parse(r.auth) as DicomwebAuth;
  const what = `DICOMweb source "${r.name}"`;
  // A value not yet sealed (a row from before encryption, sealed at the next start) is used as it is.
  const open = (v: string) => (isSealed(v) ? box.open(v, what) : v);
  const clear: DicomwebAuth = auth.type === 'basic' ? { ...auth, password: open(auth.password) } : auth.type === 'bearer' ? { ...auth, token: open(auth.token) } : auth;
  return { url: r.url, auth: clear, tls: JSON.parse(r.tls) as { ca?: string; insecure?: boolean }, timeoutMs: r.timeout_ms };
}

/** An auth object with its password or token encrypted (as stored). */
function sealAuth(a: DicomwebAuth | undefined, box: SecretBox): DicomwebAuth {
  if (!a || a.type === 'none') return { type: 'none' };
  if (a.type === 'basic') return { ...a, password: isSealed(a.password) ? a.password : box.seal(a.password) };
  return { ...a, token: isSealed(a.token) ? a.token : box.seal(a.token) };
}

/**
 * Encrypt the credentials still stored in clear (rows written before encryption at rest); run at
 * start-up, once the deployment's key is known and checked. Idempotent.
 * @returns how many sources were sealed now
 */
export async function sealClearSources(db: Db, box: SecretBox): Promise<number> {
  let n = 0;
  for (const r of await db.selectFrom('dicomweb_sources').select(['id', 'auth']).execute()) {
    const a = JSON.parse(r.auth) as DicomwebAuth;
    const sealed = JSON.stringify(sealAuth(a, box));
    if (sealed === r.auth || a.type === 'none') continue;
    // Compare-and-set: a row another process sealed meanwhile is left as that process wrote it.
    const u = await db.updateTable('dicomweb_sources').set({ auth: sealed }).where('id', '=', r.id).where('auth', '=', r.auth).executeTakeFirst();
    n += Number(u.numUpdatedRows ?? 0);
  }
  return n;
}

/** Register an archive for a project (names are unique per project). */
export async function createSource(db: Db, s: { projectId: string; name: string; endpoint: DicomwebEndpoint; autoPush: boolean; createdBy: string | null }, box: SecretBox): Promise<DicomwebSourceRow> {
  const dup = await db.selectFrom('dicomweb_sources').select('id').where('project_id', '=', s.projectId).where('name', '=', s.name).executeTakeFirst();
  if (dup) throw new MedmaskError('CONFLICT', `the project already has a DICOMweb source named "${s.name}"`, { hint: 'choose another name, or delete the old one' });
  const row: DicomwebSourceRow = { id: newId(), project_id: s.projectId, name: s.name, url: s.endpoint.url, auth: JSON.stringify(sealAuth(s.endpoint.auth, box)), tls: JSON.stringify(s.endpoint.tls ?? {}), timeout_ms: s.endpoint.timeoutMs ?? 30_000, auto_push: s.autoPush ? 1 : 0, created_at: nowIso(), created_by: s.createdBy };
  await db.insertInto('dicomweb_sources').values(row).execute();
  return row;
}

/** Change a source's auto-push setting. */
export async function setSourceAutoPush(db: Db, id: string, autoPush: boolean): Promise<void> {
  await db.updateTable('dicomweb_sources').set({ auto_push: autoPush ? 1 : 0 }).where('id', '=', id).execute();
}

/** A source by id, or NOT_FOUND. */
export async function getSource(db: Db, id: string): Promise<DicomwebSourceRow> {
  const r = await db.selectFrom('dicomweb_sources').selectAll().where('id', '=', id).executeTakeFirst();
  if (!r) throw new MedmaskError('NOT_FOUND', `no DICOMweb source ${id}`, { hint: 'list them with GET /api/projects/:id/dicomweb' });
  return r;
}

/** The sources of a project. */
export function listSources(db: Db, projectId: string): Promise<DicomwebSourceRow[]> {
  return db.selectFrom('dicomweb_sources').selectAll().where('project_id', '=', projectId).orderBy('name').execute();
}

/** Record a series to import (status queued). */
export async function createImport(db: Db, i: { sourceId: string; datasetId: string; studyUid: string; seriesUid: string; createdBy: string | null }): Promise<DicomwebImportRow> {
  const now = nowIso();
  const row: DicomwebImportRow = { id: newId(), source_id: i.sourceId, dataset_id: i.datasetId, study_uid: i.studyUid, series_uid: i.seriesUid, status: 'queued', job_id: null, image_id: null, error: null, phi: null, created_at: now, updated_at: now, created_by: i.createdBy };
  await db.insertInto('dicomweb_imports').values(row).execute();
  return row;
}

/** An import by id, or NOT_FOUND. */
export async function getImport(db: Db, id: string): Promise<DicomwebImportRow> {
  const r = await db.selectFrom('dicomweb_imports').selectAll().where('id', '=', id).executeTakeFirst();
  if (!r) throw new MedmaskError('NOT_FOUND', `no DICOMweb import ${id}`);
  return r;
}

/** Update an import's state. */
export async function updateImport(db: Db, id: string, set: Partial<Pick<DicomwebImportRow, 'status' | 'job_id' | 'image_id' | 'error' | 'phi'>>): Promise<void> {
  await db.updateTable('dicomweb_imports').set({ ...set, updated_at: nowIso() }).where('id', '=', id).execute();
}

/** The import that made an image (the newest done one), if any. */
export function importOfImage(db: Db, imageId: string): Promise<DicomwebImportRow | undefined> {
  return db.selectFrom('dicomweb_imports').selectAll().where('image_id', '=', imageId).where('status', '=', 'done').orderBy('updated_at', 'desc').executeTakeFirst();
}

/** Store the de-identified → original UID mapping of an import (idempotent). */
export async function putUidMap(db: Db, importId: string, rows: readonly { deid: string; original: string; kind: string }[]): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx.deleteFrom('dicomweb_uid_map').where('import_id', '=', importId).execute();
    for (let i = 0; i < rows.length; i += 200) {
      await trx.insertInto('dicomweb_uid_map').values(rows.slice(i, i + 200).map((r) => ({ import_id: importId, deid_uid: r.deid, original_uid: r.original, kind: r.kind }))).execute();
    }
  });
}

/** The mapping of an import: de-identified UID → original. */
export async function getUidMap(db: Db, importId: string): Promise<Map<string, string>> {
  const rows = await db.selectFrom('dicomweb_uid_map').select(['deid_uid', 'original_uid']).where('import_id', '=', importId).execute();
  return new Map(rows.map((r) => [r.deid_uid, r.original_uid]));
}

/** Record a push (status queued). */
export async function createPush(db: Db, p: { maskId: string; version: number; sourceId: string; createdBy: string | null }): Promise<DicomwebPushRow> {
  const now = nowIso();
  const row: DicomwebPushRow = { id: newId(), mask_id: p.maskId, version: p.version, source_id: p.sourceId, status: 'queued', reason: null, seg_sop_instance_uid: null, attempts: 0, job_id: null, created_at: now, updated_at: now, created_by: p.createdBy };
  await db.insertInto('dicomweb_pushes').values(row).execute();
  return row;
}

/** A push by id, or NOT_FOUND. */
export async function getPush(db: Db, id: string): Promise<DicomwebPushRow> {
  const r = await db.selectFrom('dicomweb_pushes').selectAll().where('id', '=', id).executeTakeFirst();
  if (!r) throw new MedmaskError('NOT_FOUND', `no DICOM SEG push ${id}`);
  return r;
}

/** Update a push's state. */
export async function updatePush(db: Db, id: string, set: Partial<Pick<DicomwebPushRow, 'status' | 'reason' | 'seg_sop_instance_uid' | 'attempts' | 'job_id'>>): Promise<void> {
  await db.updateTable('dicomweb_pushes').set({ ...set, updated_at: nowIso() }).where('id', '=', id).execute();
}

/** The pushes of a mask, newest first. */
export function listPushes(db: Db, maskId: string): Promise<DicomwebPushRow[]> {
  return db.selectFrom('dicomweb_pushes').selectAll().where('mask_id', '=', maskId).orderBy('created_at', 'desc').execute();
}

/**
 * Record a (partial) label map read from a DICOM SEG as an original label of an image; the same
 * map (image, target, blob) recorded before is not recorded again (its id is returned).
 */
export async function insertSegLabel(db: Db, l: { imageId: string; blob: string; target: string; value: string; createdBy: string | null; jobId?: string | null }): Promise<string> {
  const had = await db.selectFrom('labels').select('id').where('image_id', '=', l.imageId).where('target', '=', l.target).where('blob', '=', l.blob).where('kind', '=', 'mask').executeTakeFirst();
  if (had) return had.id;
  const id = newId();
  await db.insertInto('labels').values({ id, image_id: l.imageId, kind: 'mask', value: l.value, blob: l.blob, target: l.target, provenance: 'original', job_id: l.jobId ?? null, created_at: nowIso(), created_by: l.createdBy }).execute();
  return id;
}

/** The finished imports of a data set from one archive, oldest first, one per image. */
export async function doneImportsOfDataset(db: Db, datasetId: string, sourceId: string): Promise<DicomwebImportRow[]> {
  const rows = await db.selectFrom('dicomweb_imports').selectAll().where('dataset_id', '=', datasetId).where('source_id', '=', sourceId).where('status', '=', 'done').where('image_id', 'is not', null).orderBy('created_at').execute();
  const seen = new Set<string>();
  return rows.filter((r) => !seen.has(r.image_id!) && !!seen.add(r.image_id!));
}
