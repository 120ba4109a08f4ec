/**
 * The review side of masks: the queue (filters, total, one page in priority order), a case's
 * history (versions, drafts, reviews, prediction), stored version and draft blobs, accept / reject
 * decisions (only of the version the reviewer saw) and claims.
 * @module
 */
import type { Kysely, Selectable } from 'kysely';
import { MedmaskError } from '../core/errors.js';
import type { MaskRow } from './masks.js';
import type { Database, MaskStatus, PredictionsTable } from './schema.js';
import { newId, nowIso } from './util.js';

/** Filters of {@link reviewQueue}. */
export interface ReviewQueueQuery {
  project?: string;
  dataset?: string;
  /** A status, or "all". */
  status: MaskStatus | 'all';
  decision?: string;
  target?: string;
  /** "me" (claimed by `userId`), "none" (unclaimed, or the claim expired) or "any". Expired claims show as none. */
  claimed: 'me' | 'none' | 'any';
  userId: string;
  /** "priority" (default) or "gain": expected gain of a review descending (active selection, issue 16). */
  order?: 'priority' | 'gain';
  limit: number;
  offset: number;
}

/** A claim without a heartbeat for this long has expired (the browser that held it is gone). */
export const CLAIM_TTL_MS = 5 * 60_000;

/** The oldest `claimed_at` of a live claim at `now` (ISO-8601 UTC text compares in time order). */
export function claimCutoff(now = Date.now()): string {
  return new Date(now - CLAIM_TTL_MS).toISOString();
}

/** Whether a claim taken (or renewed) at `claimedAt` still holds at `now`. */
export function claimLive(claimedBy: string | null, claimedAt: string | null, now = Date.now()): boolean {
  return !!claimedBy && !!claimedAt && now - Date.parse(claimedAt) < CLAIM_TTL_MS;
}

/** One row of the review queue. */
export interface ReviewQueueItem {
  maskId: string;
  imageId: string;
  imageName: string;
  datasetId: string;
  datasetName: string;
  target: string;
  priority: number;
  /** Expected gain of a review (active selection); null before a prediction that computes it. */
  expectedGain: number | null;
  decision: string | null;
  status: MaskStatus;
  currentVersion: number;
  /** User name of the claimer. */
  claimedBy: string | null;
  claimedAt: string | null;
  updatedAt: string;
}

/** Review cases matching the filters: their total and one page, most urgent (priority descending) first. */
export async function reviewQueue(db: Kysely<Database>, q: ReviewQueueQuery): Promise<{ total: number; items: ReviewQueueItem[] }> {
  // Filters on masks alone (data set and project through sub-queries), so the count needs no
  // join and the page can walk the (status, priority desc, id) index and join one page of rows only.
  const cutoff = claimCutoff();
  let base = db.selectFrom('masks');
  if (q.dataset) base = base.where('masks.image_id', 'in', db.selectFrom('images').select('images.id').where('images.dataset_id', '=', q.dataset));
  if (q.project) base = base.where('masks.image_id', 'in', db.selectFrom('images').innerJoin('datasets', 'datasets.id', 'images.dataset_id').select('images.id').where('datasets.project_id', '=', q.project));
  if (q.status !== 'all') base = base.where('masks.status', '=', q.status);
  if (q.decision) base = base.where('masks.decision', '=', q.decision);
  if (q.target) base = base.where('masks.target', '=', q.target);
  if (q.claimed === 'me') base = base.where('masks.claimed_by', '=', q.userId).where('masks.claimed_at', '>', cutoff);
  if (q.claimed === 'none') base = base.where((eb) => eb.or([eb('masks.claimed_by', 'is', null), eb('masks.claimed_at', 'is', null), eb('masks.claimed_at', '<=', cutoff)]));
  const [total, rows] = await Promise.all([
    base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow(),
    base
      .innerJoin('images', 'images.id', 'masks.image_id')
      .innerJoin('datasets', 'datasets.id', 'images.dataset_id')
      // an expired claim names nobody
      .leftJoin('users', (j) => j.onRef('users.id', '=', 'masks.claimed_by').on('masks.claimed_at', '>', cutoff))
      .select(['masks.id', 'masks.image_id', 'masks.target', 'masks.priority', 'masks.expected_gain', 'masks.decision', 'masks.status', 'masks.current_version', 'masks.updated_at', 'masks.claimed_at', 'images.name as image_name', 'images.dataset_id', 'datasets.name as dataset_name', 'users.username as claimed_by'])
      .$if(q.order === 'gain', (qb) => qb.orderBy('masks.expected_gain', (ob) => ob.desc().nullsLast()))
      .orderBy('masks.priority', 'desc')
      .orderBy('masks.id')
      .limit(q.limit)
      .offset(q.offset)
      .execute(),
  ]);
  return {
    total: Number(total.n),
    items: rows.map((r) => ({ maskId: r.id, imageId: r.image_id, imageName: r.image_name, datasetId: r.dataset_id, datasetName: r.dataset_name, target: r.target, priority: r.priority, expectedGain: r.expected_gain, decision: r.decision, status: r.status, currentVersion: r.current_version, claimedBy: r.claimed_by, claimedAt: r.claimed_by ? r.claimed_at : null, updatedAt: r.updated_at })),
  };
}

/** A case's history, as {@link maskHistory} returns it. */
export interface MaskHistory {
  /** Newest first (at most 200). */
  versions: { version: number; parentVersion: number | null; origin: string; author: string | null; jobId: string | null; note: string | null; hash: string; createdAt: string }[];
  drafts: number;
  /** Newest first. */
  reviews: { version: number; decision: string; reason: string | null; timeSpentMs: number | null; reviewer: string | null; createdAt: string }[];
  prediction: Selectable<PredictionsTable> | undefined;
}

/** Versions, drafts count, reviews and the prediction of a mask. */
export async function maskHistory(db: Kysely<Database>, m: MaskRow): Promise<MaskHistory> {
  const [versions, drafts, reviews, prediction] = await Promise.all([
    db.selectFrom('mask_versions').leftJoin('users', 'users.id', 'mask_versions.author_id').select(['mask_versions.version', 'mask_versions.parent_version', 'mask_versions.origin', 'mask_versions.created_at', 'mask_versions.note', 'mask_versions.blob', 'mask_versions.job_id', 'users.username']).where('mask_id', '=', m.id).orderBy('version', 'desc').limit(200).execute(),
    db.selectFrom('mask_drafts').select((eb) => eb.fn.countAll<number>().as('n')).where('mask_id', '=', m.id).executeTakeFirstOrThrow(),
    db.selectFrom('reviews').leftJoin('users', 'users.id', 'reviews.reviewer_id').select(['reviews.version', 'reviews.decision', 'reviews.reason', 'reviews.time_spent_ms', 'reviews.created_at', 'users.username']).where('mask_id', '=', m.id).orderBy('reviews.created_at', 'desc').execute(),
    predictionOf(db, m),
  ]);
  return {
    versions: versions.map((v) => ({ version: v.version, parentVersion: v.parent_version, origin: v.origin, author: v.username, jobId: v.job_id, note: v.note, hash: v.blob, createdAt: v.created_at })),
    drafts: Number(drafts.n),
    reviews: reviews.map((r) => ({ version: r.version, decision: r.decision, reason: r.reason, timeSpentMs: r.time_spent_ms, reviewer: r.username, createdAt: r.created_at })),
    prediction,
  };
}

/** The prediction a mask came from, if any. */
export async function predictionOf(db: Kysely<Database>, m: MaskRow): Promise<Selectable<PredictionsTable> | undefined> {
  return m.prediction_id ? db.selectFrom('predictions').selectAll().where('id', '=', m.prediction_id).executeTakeFirst() : undefined;
}

/** The blob of a mask version (version ≥ 1), or NOT_FOUND with details.currentVersion. */
export async function versionBlob(db: Kysely<Database>, m: MaskRow, version: number): Promise<string> {
  const v = await db.selectFrom('mask_versions').select('blob').where('mask_id', '=', m.id).where('version', '=', version).executeTakeFirst();
  if (!v) throw new MedmaskError('NOT_FOUND', `mask ${m.id} has no version ${version}`, { details: { currentVersion: m.current_version } });
  return v.blob;
}

/** A mask's drafts (edits refused as stale), oldest first. */
export async function listDrafts(db: Kysely<Database>, maskId: string): Promise<{ id: string; baseVersion: number; currentVersionAtSave: number; author: string | null; note: string | null; hash: string; createdAt: string }[]> {
  const rows = await db.selectFrom('mask_drafts').leftJoin('users', 'users.id', 'mask_drafts.author_id').select(['mask_drafts.id', 'mask_drafts.base_version', 'mask_drafts.current_version', 'mask_drafts.note', 'mask_drafts.created_at', 'mask_drafts.blob', 'users.username']).where('mask_id', '=', maskId).orderBy('mask_drafts.created_at').execute();
  return rows.map((d) => ({ id: d.id, baseVersion: d.base_version, currentVersionAtSave: d.current_version, author: d.username, note: d.note, hash: d.blob, createdAt: d.created_at }));
}

/** The blob of a draft of a mask, or NOT_FOUND. */
export async function draftBlob(db: Kysely<Database>, maskId: string, draftId: string): Promise<string> {
  const d = await db.selectFrom('mask_drafts').select('blob').where('id', '=', draftId).where('mask_id', '=', maskId).executeTakeFirst();
  if (!d) throw new MedmaskError('NOT_FOUND', `draft ${draftId} of mask ${maskId} does not exist`);
  return d.blob;
}

/** What {@link reviewMask} records. */
export interface ReviewInput {
  maskId: string;
  /** The version the reviewer looked at. */
  version: number;
  reviewerId: string;
  decision: 'accept' | 'reject';
  reason?: string | null;
  timeSpentMs?: number | null;
}

/**
 * Accept or reject a mask at the version the reviewer saw, in one transaction (status, claim
 * released, review row).
 * @returns false when the mask is no longer at that version (nothing written)
 */
export function reviewMask(db: Kysely<Database>, r: ReviewInput): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const u = await trx.updateTable('masks').set({ status: r.decision === 'accept' ? 'accepted' : 'rejected', updated_at: nowIso(), claimed_by: null, claimed_at: null }).where('id', '=', r.maskId).where('current_version', '=', r.version).executeTakeFirst();
    if (Number(u.numUpdatedRows) !== 1) return false;
    await trx.insertInto('reviews').values({ id: newId(), mask_id: r.maskId, version: r.version, reviewer_id: r.reviewerId, decision: r.decision, reason: r.reason ?? null, time_spent_ms: r.timeSpentMs ?? null, created_at: nowIso() }).execute();
    return true;
  });
}

/** Mark a mask as claimed by a user. */
export async function claimMask(db: Kysely<Database>, maskId: string, userId: string): Promise<void> {
  await db.updateTable('masks').set({ claimed_by: userId, claimed_at: nowIso() }).where('id', '=', maskId).execute();
}

/** Release a user's claim on a mask (another user's claim stays). */
export async function releaseClaim(db: Kysely<Database>, maskId: string, userId: string): Promise<void> {
  await db.updateTable('masks').set({ claimed_by: null, claimed_at: null }).where('id', '=', maskId).where('claimed_by', '=', userId).execute();
}
