/**
 * Versioned masks. A mask is one review case (an image and a target structure); each edit is a
 * new row in `mask_versions` with its parent, author, time and origin. A save names the version it
 * edits: the compare-and-set on `masks.current_version` lets exactly one of several concurrent
 * saves on the same version through; every other one is kept as a draft and answered with the
 * current version, so no edit is ever lost and the history stays linear.
 * @module
 */
import type { Kysely, Selectable, Transaction } from 'kysely';
import { MedmaskError } from '../core/errors.js';
import type { Database, MaskOrigin, MasksTable, MaskVersionsTable } from './schema.js';
import { newId, nowIso } from './util.js';

/** A mask row. */
export type MaskRow = Selectable<MasksTable>;
/** A mask version row. */
export type MaskVersionRow = Selectable<MaskVersionsTable>;

/** What to save. */
export interface SaveMaskInput {
  maskId: string;
  /** The version the edit was made on (0 for a mask without versions). */
  baseVersion: number;
  /** Blob hash of the new label map. */
  blob: string;
  authorId: string | null;
  origin: MaskOrigin;
  jobId?: string | null;
  note?: string | null;
}

/** Outcome of {@link saveMaskVersion}. */
export type SaveMaskResult =
  | { ok: true; version: number; versionId: string }
  | { ok: false; currentVersion: number; draftId: string };

/**
 * Save a new version if `baseVersion` is still current; otherwise keep the edit as a draft.
 * @returns `{ ok: true, version }` or `{ ok: false, currentVersion, draftId }`
 * @example
 * const r = await saveMaskVersion(db, { maskId, baseVersion: 3, blob, authorId, origin: 'human' });
 * if (!r.ok) reply.code(409).send({ currentVersion: r.currentVersion, draftId: r.draftId });
 */
export async function saveMaskVersion(db: Kysely<Database>, s: SaveMaskInput): Promise<SaveMaskResult> {
  if (!Number.isInteger(s.baseVersion) || s.baseVersion < 0) throw new MedmaskError('USAGE', `baseVersion ${s.baseVersion} must be a whole number ≥ 0`);
  return db.transaction().execute(async (trx) => {
    const now = nowIso();
    const next = s.baseVersion + 1;
    const upd = await trx
      .updateTable('masks')
      .set({ current_version: next, updated_at: now, status: 'open' })
      .where('id', '=', s.maskId)
      .where('current_version', '=', s.baseVersion)
      .executeTakeFirst();
    if (Number(upd.numUpdatedRows) === 1) {
      const versionId = newId();
      await trx
        .insertInto('mask_versions')
        .values({ id: versionId, mask_id: s.maskId, version: next, parent_version: s.baseVersion || null, blob: s.blob, author_id: s.authorId, origin: s.origin, job_id: s.jobId ?? null, note: s.note ?? null, created_at: now })
        .execute();
      return { ok: true as const, version: next, versionId };
    }
    const m = await trx.selectFrom('masks').select('current_version').where('id', '=', s.maskId).executeTakeFirst();
    if (!m) throw new MedmaskError('NOT_FOUND', `mask ${s.maskId} does not exist`);
    if (s.baseVersion > m.current_version) {
      throw new MedmaskError('USAGE', `baseVersion ${s.baseVersion} is newer than the mask's current version ${m.current_version}`, { hint: 'send the version you loaded (GET /api/masks/:id)' });
    }
    const draftId = newId();
    await trx
      .insertInto('mask_drafts')
      .values({ id: draftId, mask_id: s.maskId, base_version: s.baseVersion, current_version: m.current_version, blob: s.blob, author_id: s.authorId, note: s.note ?? null, created_at: now })
      .execute();
    return { ok: false as const, currentVersion: m.current_version, draftId };
  });
}

/** Get or create the mask (review case) of an image and target. */
export async function ensureMask(db: Kysely<Database> | Transaction<Database>, imageId: string, target: string, init: { priority?: number; decision?: string | null } = {}): Promise<MaskRow> {
  const now = nowIso();
  await db
    .insertInto('masks')
    .values({ id: newId(), image_id: imageId, target, current_version: 0, status: 'open', priority: init.priority ?? 0, decision: init.decision ?? null, prediction_id: null, expected_gain: null, claimed_by: null, claimed_at: null, created_at: now, updated_at: now })
    .onConflict((oc) => oc.columns(['image_id', 'target']).doNothing())
    .execute();
  return db.selectFrom('masks').selectAll().where('image_id', '=', imageId).where('target', '=', target).executeTakeFirstOrThrow();
}

/**
 * Add a version made by a job, once: if this job already added a version to this mask (a retried
 * or redelivered job), that version is returned and nothing is written. A job never supersedes a
 * person: when the case was accepted or rejected, or its current version was saved by a person,
 * the job's candidate is kept as a draft of that version (once per job and candidate) and `null`
 * is returned, so re-running a model after review changes nothing a reviewer sees as current.
 * @returns the new (or earlier) version number, or null when the candidate was kept as a draft
 */
export async function addJobVersion(db: Kysely<Database>, maskId: string, jobId: string, blob: string, origin: MaskOrigin = 'model', note?: string): Promise<number | null> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const existing = await db.selectFrom('mask_versions').select('version').where('mask_id', '=', maskId).where('job_id', '=', jobId).executeTakeFirst();
    if (existing) return existing.version;
    const m = await db.selectFrom('masks').select(['current_version', 'status']).where('id', '=', maskId).executeTakeFirstOrThrow();
    const cur = m.current_version > 0 ? await db.selectFrom('mask_versions').select('origin').where('mask_id', '=', maskId).where('version', '=', m.current_version).executeTakeFirst() : undefined;
    if (m.status !== 'open' || cur?.origin === 'human') {
      const why = m.status !== 'open' ? `the case was ${m.status}` : `version ${m.current_version} was saved by a person`;
      const draftNote = `candidate of job ${jobId} (${origin}) kept as a draft: ${why}${note ? `; ${note}` : ''}`;
      const dup = await db.selectFrom('mask_drafts').select('id').where('mask_id', '=', maskId).where('note', '=', draftNote).where('blob', '=', blob).executeTakeFirst();
      if (!dup) {
        await db
          .insertInto('mask_drafts')
          .values({ id: newId(), mask_id: maskId, base_version: m.current_version, current_version: m.current_version, blob, author_id: null, note: draftNote, created_at: nowIso() })
          .execute();
      }
      return null;
    }
    try {
      const r = await db.transaction().execute(async (trx) => {
        const upd = await trx.updateTable('masks').set({ current_version: m.current_version + 1, updated_at: nowIso() }).where('id', '=', maskId).where('current_version', '=', m.current_version).executeTakeFirst();
        if (Number(upd.numUpdatedRows) !== 1) return null;
        await trx
          .insertInto('mask_versions')
          .values({ id: newId(), mask_id: maskId, version: m.current_version + 1, parent_version: m.current_version || null, blob, author_id: null, origin, job_id: jobId, note: note ?? null, created_at: nowIso() })
          .execute();
        return m.current_version + 1;
      });
      if (r !== null) return r;
    } catch (e) {
      // A unique violation on (mask, job): another delivery of the same job won the race.
      const again = await db.selectFrom('mask_versions').select('version').where('mask_id', '=', maskId).where('job_id', '=', jobId).executeTakeFirst();
      if (again) return again.version;
      throw e;
    }
  }
  throw new MedmaskError('CONFLICT', `mask ${maskId} kept changing while job ${jobId} tried to add its version`, { hint: 'retry the job' });
}

/** What a job records for one image and target (the annotate and atlas pipelines' output). */
export interface PredictionInput {
  jobId: string;
  imageId: string;
  target: string;
  probabilities: Record<string, number>;
  uncertainty?: number | null;
  oodScore?: number | null;
  /** accept | review | ood */
  decision: string;
  priority: number;
  /** Expected gain of a review (active selection), when the pipeline gave one. */
  expectedGain?: number | null;
  heatmapBlob?: string | null;
  uncertaintyBlob?: string | null;
  attentionBlob?: string | null;
  /** Candidate mask (blob of a .nii.gz label map on the image grid). */
  maskBlob?: string | null;
}

/**
 * Record a prediction and its candidate mask idempotently: a retried job writes no duplicate
 * prediction (unique job × image × target) and no duplicate mask version (unique mask × job).
 * The review case's priority and decision follow the newest prediction.
 * @returns the ids written (or found)
 * @example
 * await recordPrediction(db, { jobId, imageId, target: 'lesion', probabilities: { nodule: 0.9 }, decision: 'review', priority: 0.7, maskBlob });
 */
export async function recordPrediction(db: Kysely<Database>, p: PredictionInput): Promise<{ predictionId: string; maskId: string; version: number | null }> {
  await db
    .insertInto('predictions')
    .values({
      id: newId(),
      job_id: p.jobId,
      image_id: p.imageId,
      target: p.target,
      probabilities: JSON.stringify(p.probabilities),
      uncertainty: p.uncertainty ?? null,
      ood_score: p.oodScore ?? null,
      decision: p.decision,
      priority: p.priority,
      heatmap_blob: p.heatmapBlob ?? null,
      uncertainty_blob: p.uncertaintyBlob ?? null,
      attention_blob: p.attentionBlob ?? null,
      created_at: nowIso(),
    })
    // A job's reduce step may run again over more cases (failed ones retried): ranks may change.
    .onConflict((oc) => oc.columns(['job_id', 'image_id', 'target']).doUpdateSet({ decision: p.decision, priority: p.priority }))
    .execute();
  const pred = await db.selectFrom('predictions').select('id').where('job_id', '=', p.jobId).where('image_id', '=', p.imageId).where('target', '=', p.target).executeTakeFirstOrThrow();
  const mask = await ensureMask(db, p.imageId, p.target);
  await db.updateTable('masks').set({ priority: p.priority, decision: p.decision, prediction_id: pred.id, updated_at: nowIso(), ...(p.expectedGain !== undefined ? { expected_gain: p.expectedGain } : {}) }).where('id', '=', mask.id).execute();
  const version = p.maskBlob ? await addJobVersion(db, mask.id, p.jobId, p.maskBlob) : null;
  return { predictionId: pred.id, maskId: mask.id, version };
}

/**
 * The CONFLICT error of a refused (stale) save, with who made the current version and when, and
 * the draft the refused edit was kept as.
 * @param hint - what the caller can do next (the two save routes offer different ways)
 */
export async function staleSaveError(db: Kysely<Database>, maskId: string, staleVersion: number, refused: { currentVersion: number; draftId: string }, hint: string): Promise<MedmaskError> {
  const cur = await db
    .selectFrom('mask_versions')
    .leftJoin('users', 'users.id', 'mask_versions.author_id')
    .select(['mask_versions.version', 'mask_versions.origin', 'mask_versions.created_at', 'users.username'])
    .where('mask_id', '=', maskId)
    .where('version', '=', refused.currentVersion)
    .executeTakeFirst();
  return new MedmaskError('CONFLICT', `version ${staleVersion} of mask ${maskId} is stale: the current version is ${refused.currentVersion}; your edit is kept as draft ${refused.draftId}`, {
    hint,
    details: { currentVersion: refused.currentVersion, draftId: refused.draftId, current: cur ? { version: cur.version, origin: cur.origin, author: cur.username, createdAt: cur.created_at } : null },
  });
}

/** A mask by id, or NOT_FOUND. */
export async function getMask(db: Kysely<Database>, id: string): Promise<MaskRow> {
  const m = await db.selectFrom('masks').selectAll().where('id', '=', id).executeTakeFirst();
  if (!m) throw new MedmaskError('NOT_FOUND', `mask ${id} does not exist`, { hint: 'list review cases with GET /api/review/queue' });
  return m;
}

/**
 * The stored volumes a list of cases shows: each case's image blob and its current version's label
 * blob (null for version 0), for making their slice files ahead of the first open.
 */
export async function caseBlobs(db: Kysely<Database>, maskIds: string[]): Promise<{ image: string; label: string | null }[]> {
  if (!maskIds.length) return [];
  const rows = await db
    .selectFrom('masks')
    .innerJoin('images', 'images.id', 'masks.image_id')
    .leftJoin('mask_versions', (j) => j.onRef('mask_versions.mask_id', '=', 'masks.id').onRef('mask_versions.version', '=', 'masks.current_version'))
    .select(['masks.id', 'images.blob as image', 'mask_versions.blob as label'])
    .where('masks.id', 'in', maskIds)
    .execute();
  const order = new Map(maskIds.map((m, i) => [m, i]));
  return rows.sort((a, b) => order.get(a.id)! - order.get(b.id)!).map((r) => ({ image: r.image, label: r.label ?? null }));
}

/**
 * The piece index of a label blob written plane by plane (server/label-blobs.ts): compressed
 * length and CRC-32 of the header's and each axial plane's piece; null for a blob written
 * otherwise (or in the earlier one-member-per-plane layout, which is then rewritten whole once).
 */
export async function labelPlanes(db: Kysely<Database>, blob: string): Promise<{ lengths: number[]; crcs: number[] } | null> {
  const r = await db.selectFrom('label_planes').select('members').where('blob', '=', blob).executeTakeFirst();
  if (!r) return null;
  const v = JSON.parse(r.members) as unknown;
  return v && typeof v === 'object' && !Array.isArray(v) && Array.isArray((v as { lengths?: unknown }).lengths) && Array.isArray((v as { crcs?: unknown }).crcs)
    ? (v as { lengths: number[]; crcs: number[] })
    : null;
}

/** Record the piece index of a label blob (idempotent: a blob's bytes never change). */
export async function recordLabelPlanes(db: Kysely<Database>, blob: string, index: { lengths: number[]; crcs: number[] }): Promise<void> {
  await db.insertInto('label_planes').values({ blob, members: JSON.stringify(index) }).onConflict((oc) => oc.column('blob').doNothing()).execute();
}
