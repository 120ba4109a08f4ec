/**
 * Volumes in the store: every image and mask is kept as a gzip-compressed NIfTI-1 blob (geometry
 * and voxel type preserved, LPS in memory as everywhere in medmask), and described by an `images`
 * row. Decoded volumes are cached by hash (blobs never change), so reading slices of the same
 * image repeatedly costs one decode.
 * @module
 */
import { promisify } from 'node:util';
import { gzip as gzipCb } from 'node:zlib';
import type { Kysely, Selectable } from 'kysely';
import { MedmaskError } from '../core/errors.js';
import { createVolume, voxelTypeOf, type Mat3, type Vec3, type Volume } from '../core/volume.js';
import { decodeNifti, encodeNifti } from '../io/nifti.js';
import type { BlobStore } from './blob-store.js';
import type { Database, ImagesTable } from './schema.js';
import { newId, nowIso } from './util.js';

const gzip = promisify(gzipCb);

/** An image row. */
export type ImageRow = Selectable<ImagesTable>;

/**
 * Encode a volume as .nii.gz and store it.
 * @param labelMap - store as a label map (uint8/uint16, NIfTI intent "label")
 * @returns the blob hash and size
 */
export async function putVolume(blobs: BlobStore, vol: Volume, labelMap = false): Promise<{ hash: string; size: number }> {
  const nii = encodeNifti(vol, { labelMap });
  return blobs.put(await gzip(nii, { level: 3 }));
}

const cache = new Map<string, Promise<Volume>>();
const CACHE_MAX = 16;

/**
 * Read a stored volume (decoded NIfTI), cached by hash.
 * @example
 * const vol = await getVolume(blobs, image.blob);
 */
export function getVolume(blobs: BlobStore, hash: string): Promise<Volume> {
  let p = cache.get(hash);
  if (p) {
    cache.delete(hash);
    cache.set(hash, p);
    return p;
  }
  p = blobs.get(hash).then((b) => decodeNifti(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), `blob ${hash.slice(0, 12)}`));
  p.catch(() => cache.delete(hash));
  cache.set(hash, p);
  while (cache.size > CACHE_MAX) cache.delete(cache.keys().next().value!);
  return p;
}

/** The geometry of an image row as an empty volume description. */
export function imageGeometry(img: ImageRow): { shape: Vec3; spacing: Vec3; origin: Vec3; direction: Mat3 } {
  return { shape: JSON.parse(img.shape) as Vec3, spacing: JSON.parse(img.spacing) as Vec3, origin: JSON.parse(img.origin) as Vec3, direction: JSON.parse(img.direction) as Mat3 };
}

/** A uint8 label map on an image's grid. */
export function labelVolume(img: ImageRow, data: Uint8Array): Volume {
  const g = imageGeometry(img);
  const n = g.shape[0] * g.shape[1] * g.shape[2];
  if (data.length !== n) throw new MedmaskError('GEOMETRY_MISMATCH', `a mask for image ${img.name} needs ${n} voxels (${g.shape.join('×')}), got ${data.length}`);
  return createVolume(g.shape, 'uint8', { data, spacing: g.spacing, origin: g.origin, direction: g.direction, meta: { source: 'medmask-mask' } });
}

/** What {@link insertImage} records. */
export interface InsertImageInput {
  datasetId: string;
  name: string;
  volume: Volume;
  format: string;
  createdBy: string | null;
}

/**
 * Store a volume and insert its image row; an image of the same name in the data set is kept and
 * returned (so a retried import writes nothing twice).
 * @returns the row and whether it was created now
 */
export async function insertImage(db: Kysely<Database>, blobs: BlobStore, i: InsertImageInput): Promise<{ image: ImageRow; created: boolean }> {
  const existing = await db.selectFrom('images').selectAll().where('dataset_id', '=', i.datasetId).where('name', '=', i.name).executeTakeFirst();
  if (existing) return { image: existing, created: false };
  const v = i.volume;
  const { hash, size } = await putVolume(blobs, v);
  const meta = { ...v.meta };
  delete meta.source; // may hold a local path
  const r = await db
    .insertInto('images')
    .values({
      id: newId(),
      dataset_id: i.datasetId,
      name: i.name,
      blob: hash,
      size,
      format: i.format,
      shape: JSON.stringify(v.shape),
      spacing: JSON.stringify(v.spacing),
      origin: JSON.stringify(v.origin),
      direction: JSON.stringify(v.direction),
      voxel_type: voxelTypeOf(v.data),
      components: v.components,
      meta: JSON.stringify(meta),
      created_at: nowIso(),
      created_by: i.createdBy,
    })
    .onConflict((oc) => oc.columns(['dataset_id', 'name']).doNothing())
    .executeTakeFirst();
  const image = await db.selectFrom('images').selectAll().where('dataset_id', '=', i.datasetId).where('name', '=', i.name).executeTakeFirstOrThrow();
  return { image, created: Number(r.numInsertedOrUpdatedRows ?? 0) === 1 };
}

/** Get or create a project by name. */
export async function ensureProject(db: Kysely<Database>, name: string, createdBy: string | null): Promise<string> {
  await db.insertInto('projects').values({ id: newId(), name, created_at: nowIso(), created_by: createdBy }).onConflict((oc) => oc.column('name').doNothing()).execute();
  return (await db.selectFrom('projects').select('id').where('name', '=', name).executeTakeFirstOrThrow()).id;
}

/** Get or create a data set by project and name. */
export async function ensureDataset(db: Kysely<Database>, projectId: string, name: string, createdBy: string | null, description: string | null = null): Promise<string> {
  await db
    .insertInto('datasets')
    .values({ id: newId(), project_id: projectId, name, description, created_at: nowIso(), created_by: createdBy })
    .onConflict((oc) => oc.columns(['project_id', 'name']).doNothing())
    .execute();
  return (await db.selectFrom('datasets').select('id').where('project_id', '=', projectId).where('name', '=', name).executeTakeFirstOrThrow()).id;
}
