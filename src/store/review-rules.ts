/**
 * What review rules need to know from the database (the four-eyes setting: who wrote a version).
 * @module
 */
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

/**
 * The author of one version of a mask (null for model versions, undefined when there is no such version).
 * @example
 * const author = await versionAuthor(db, maskId, 3);
 */
export async function versionAuthor(db: Kysely<Database>, maskId: string, version: number): Promise<string | null | undefined> {
  const row = await db.selectFrom('mask_versions').select('author_id').where('mask_id', '=', maskId).where('version', '=', version).executeTakeFirst();
  return row ? row.author_id : undefined;
}
