/**
 * Review progress of a data set, for the viewer's "k of N done · m today": cases, cases decided
 * (accepted or rejected), and the decisions one reviewer recorded since a time.
 * @module
 */
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

/** Progress counts of a data set. */
export interface ReviewProgress {
  /** Review cases of the data set. */
  total: number;
  /** Cases accepted or rejected. */
  done: number;
  /** Decisions the user recorded since the given time (any data set's cases of this one). */
  doneByMeSince: number;
}

/**
 * Count a data set's cases, those decided, and the user's decisions since `since`.
 * @example
 * await reviewProgress(db, datasetId, user.id, '2026-01-01T00:00:00.000Z');
 */
export async function reviewProgress(db: Kysely<Database>, datasetId: string, userId: string, since: string): Promise<ReviewProgress> {
  const [cases, mine] = await Promise.all([
    db
      .selectFrom('masks')
      .innerJoin('images', 'images.id', 'masks.image_id')
      .select((eb) => [eb.fn.countAll<number>().as('total'), eb.fn.sum<number>(eb.case().when('masks.status', '!=', 'open').then(1).else(0).end()).as('done')])
      .where('images.dataset_id', '=', datasetId)
      .executeTakeFirstOrThrow(),
    db
      .selectFrom('reviews')
      .innerJoin('masks', 'masks.id', 'reviews.mask_id')
      .innerJoin('images', 'images.id', 'masks.image_id')
      .select((eb) => eb.fn.count<number>('reviews.mask_id').distinct().as('n'))
      .where('images.dataset_id', '=', datasetId)
      .where('reviews.reviewer_id', '=', userId)
      .where('reviews.created_at', '>=', since)
      .executeTakeFirstOrThrow(),
  ]);
  return { total: Number(cases.total), done: Number(cases.done ?? 0), doneByMeSince: Number(mine.n) };
}
