/**
 * Projects and data sets: listing, creation (names unique per level) and a data set's counts.
 * @module
 */
import type { Kysely, Selectable } from 'kysely';
import { MedmaskError } from '../core/errors.js';
import type { Database, DatasetsTable, MaskStatus, ProjectsTable } from './schema.js';
import { newId, nowIso } from './util.js';

/** A project row. */
export type ProjectRow = Selectable<ProjectsTable>;
/** A data set row. */
export type DatasetRow = Selectable<DatasetsTable>;

/** Every project, by name. */
export function listProjects(db: Kysely<Database>): Promise<ProjectRow[]> {
  return db.selectFrom('projects').selectAll().orderBy('name').execute();
}

/** A project by id, or NOT_FOUND. */
export async function getProject(db: Kysely<Database>, id: string): Promise<ProjectRow> {
  const p = await db.selectFrom('projects').selectAll().where('id', '=', id).executeTakeFirst();
  if (!p) throw new MedmaskError('NOT_FOUND', `project ${id} does not exist`);
  return p;
}

/**
 * Create a project.
 * @throws MedmaskError CONFLICT (details.id: the existing one) when the name is taken
 */
export async function createProject(db: Kysely<Database>, name: string, createdBy: string | null): Promise<{ id: string; name: string }> {
  const exists = await db.selectFrom('projects').select('id').where('name', '=', name).executeTakeFirst();
  if (exists) throw new MedmaskError('CONFLICT', `a project named "${name}" exists`, { details: { id: exists.id } });
  const id = newId();
  await db.insertInto('projects').values({ id, name, created_at: nowIso(), created_by: createdBy }).execute();
  return { id, name };
}

/** The data sets of a project (NOT_FOUND for an unknown project), by name. */
export async function listDatasets(db: Kysely<Database>, projectId: string): Promise<DatasetRow[]> {
  const p = await getProject(db, projectId);
  return db.selectFrom('datasets').selectAll().where('project_id', '=', p.id).orderBy('name').execute();
}

/**
 * Create a data set in a project.
 * @throws MedmaskError NOT_FOUND (project), CONFLICT (details.id) when the project has the name
 */
export async function createDataset(db: Kysely<Database>, i: { projectId: string; name: string; description?: string | null; createdBy: string | null }): Promise<{ id: string; name: string; projectId: string }> {
  const p = await getProject(db, i.projectId);
  const exists = await db.selectFrom('datasets').select('id').where('project_id', '=', p.id).where('name', '=', i.name).executeTakeFirst();
  if (exists) throw new MedmaskError('CONFLICT', `the project has a data set named "${i.name}"`, { details: { id: exists.id } });
  const id = newId();
  await db.insertInto('datasets').values({ id, project_id: p.id, name: i.name, description: i.description ?? null, created_at: nowIso(), created_by: i.createdBy }).execute();
  return { id, name: i.name, projectId: p.id };
}

/** A data set by id, or NOT_FOUND. */
export async function getDataset(db: Kysely<Database>, id: string): Promise<DatasetRow> {
  const r = await db.selectFrom('datasets').selectAll().where('id', '=', id).executeTakeFirst();
  if (!r) throw new MedmaskError('NOT_FOUND', `data set ${id} does not exist`, { hint: 'list data sets with GET /api/projects/:id/datasets' });
  return r;
}

/** Number of images of a data set and of its review cases per status. */
export async function datasetCounts(db: Kysely<Database>, datasetId: string): Promise<{ images: number; cases: Partial<Record<MaskStatus, number>> }> {
  const images = await db.selectFrom('images').select((eb) => eb.fn.countAll<number>().as('n')).where('dataset_id', '=', datasetId).executeTakeFirstOrThrow();
  const cases = await db.selectFrom('masks').innerJoin('images', 'images.id', 'masks.image_id').select(['masks.status', (eb) => eb.fn.countAll<number>().as('n')]).where('images.dataset_id', '=', datasetId).groupBy('masks.status').execute();
  return { images: Number(images.n), cases: Object.fromEntries(cases.map((c) => [c.status, Number(c.n)])) };
}
