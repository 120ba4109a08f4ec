/**
 * Labels: image-level classes (from a CSV or JSON) and (partial) label maps with their provenance
 * and, for 3D data sets, the source they come from (`value` = "source:<name>", as the atlas job
 * reads it).
 * @module
 */
import type { Kysely } from 'kysely';
import type { Database, Provenance } from './schema.js';
import { newId, nowIso } from './util.js';

/** Insert image-level class labels in one transaction (batches of 200 rows). */
export async function addClassLabels(db: Kysely<Database>, rows: { imageId: string; label: string }[], createdBy: string | null): Promise<number> {
  const now = nowIso();
  await db.transaction().execute(async (trx) => {
    for (let i = 0; i < rows.length; i += 200) {
      await trx.insertInto('labels').values(rows.slice(i, i + 200).map((r) => ({ id: newId(), image_id: r.imageId, kind: 'class' as const, value: r.label, blob: null, target: null, provenance: 'original' as const, job_id: null, created_at: now, created_by: createdBy }))).execute();
    }
  });
  return rows.length;
}

/** What {@link addMaskLabel} records. */
export interface MaskLabelInput {
  imageId: string;
  /** The stored label map. */
  blob: string;
  /** The structure(s) labelled, e.g. "organs". */
  target: string;
  provenance: Provenance;
  /** The source (site / data set) the label comes from; stored as value "source:<name>". */
  source?: string | null;
  createdBy: string | null;
}

/** Record a (partial) label map of an image; returns the label id. */
export async function addMaskLabel(db: Kysely<Database>, i: MaskLabelInput): Promise<string> {
  const id = newId();
  await db.insertInto('labels').values({ id, image_id: i.imageId, kind: 'mask', value: i.source ? `source:${i.source}` : null, blob: i.blob, target: i.target, provenance: i.provenance, job_id: null, created_at: nowIso(), created_by: i.createdBy }).execute();
  return id;
}
