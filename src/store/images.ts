/**
 * Image rows: look-up, a data set's page of images, names already taken, and what an image
 * carries (labels, review cases). Storing a new image is `insertImage` in `volumes.ts`.
 * @module
 */
import type { Kysely, Selectable } from 'kysely';
import { MedmaskError } from '../core/errors.js';
import type { Database, LabelsTable, MasksTable } from './schema.js';
import type { ImageRow } from './volumes.js';

/** An image by id, or NOT_FOUND. */
export async function getImageRow(db: Kysely<Database>, id: string): Promise<ImageRow> {
  const r = await db.selectFrom('images').selectAll().where('id', '=', id).executeTakeFirst();
  if (!r) throw new MedmaskError('NOT_FOUND', `image ${id} does not exist`);
  return r;
}

/** One page of a data set's images, by name. */
export function listImages(db: Kysely<Database>, datasetId: string, page: { limit: number; offset: number }): Promise<ImageRow[]> {
  return db.selectFrom('images').selectAll().where('dataset_id', '=', datasetId).orderBy('name').limit(page.limit).offset(page.offset).execute();
}

/** Which of `names` the data set already has. */
export async function takenImageNames(db: Kysely<Database>, datasetId: string, names: string[]): Promise<string[]> {
  if (!names.length) return [];
  const rows = await db.selectFrom('images').select('name').where('dataset_id', '=', datasetId).where('name', 'in', names).execute();
  return rows.map((r) => r.name);
}

/** Image id by name, for every image of a data set. */
export async function imageIdsByName(db: Kysely<Database>, datasetId: string): Promise<Map<string, string>> {
  const rows = await db.selectFrom('images').select(['id', 'name']).where('dataset_id', '=', datasetId).execute();
  return new Map(rows.map((i) => [i.name, i.id]));
}

/** An image's labels (oldest first) and review cases. */
export async function imageAnnotations(db: Kysely<Database>, imageId: string): Promise<{ labels: Selectable<LabelsTable>[]; cases: Pick<Selectable<MasksTable>, 'id' | 'target' | 'status' | 'current_version' | 'priority' | 'decision'>[] }> {
  const labels = await db.selectFrom('labels').selectAll().where('image_id', '=', imageId).orderBy('created_at').execute();
  const cases = await db.selectFrom('masks').select(['id', 'target', 'status', 'current_version', 'priority', 'decision']).where('image_id', '=', imageId).execute();
  return { labels, cases };
}

/**
 * Remove images (and their labels) that an import added before it failed; blobs stay for the
 * garbage collector. Images with review cases or predictions are never removed here.
 */
export async function deleteImportedImages(db: Kysely<Database>, imageIds: string[]): Promise<void> {
  if (!imageIds.length) return;
  await db.transaction().execute(async (trx) => {
    await trx.deleteFrom('labels').where('image_id', 'in', imageIds).execute();
    await trx.deleteFrom('images').where('id', 'in', imageIds).where('id', 'not in', trx.selectFrom('masks').select('image_id')).where('id', 'not in', trx.selectFrom('predictions').select('image_id')).execute();
  });
}

/** Where an image's case comes from, as an upload recorded it (`meta.dataSource`, `meta.labelled`). */
export function caseOriginOf(img: Pick<ImageRow, 'meta'>): { source?: string; labelled?: string[] } {
  let meta: { dataSource?: unknown; labelled?: unknown };
  try {
    meta = JSON.parse(img.meta || '{}') as typeof meta;
  } catch {
    return {};
  }
  return {
    ...(typeof meta.dataSource === 'string' ? { source: meta.dataSource } : {}),
    ...(Array.isArray(meta.labelled) && meta.labelled.every((x) => typeof x === 'string') ? { labelled: meta.labelled as string[] } : {}),
  };
}
