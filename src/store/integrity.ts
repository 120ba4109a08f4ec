/**
 * Store integrity: every blob a row references exists and holds the bytes its hash names, and
 * (SQLite) the database file passes `PRAGMA integrity_check`. Run after a crash, in tests, and by
 * `GET /api/admin/integrity`.
 * @module
 */
import { sql, type Kysely } from 'kysely';
import { MedmaskError } from '../core/errors.js';
import { sha256, type BlobStore } from './blob-store.js';
import type { Dialect } from './migrations.js';
import type { Database } from './schema.js';

/** Result of {@link verifyStore}. */
export interface IntegrityReport {
  ok: boolean;
  /** Distinct blobs referenced by rows. */
  referenced: number;
  /** Referenced but absent. */
  missing: string[];
  /** Present but their bytes do not hash to their name. */
  corrupt: string[];
  /** SQLite's integrity_check answer ("ok"), or null on PostgreSQL. */
  database: string | null;
}

/** Every distinct blob hash referenced by a row. */
export async function referencedBlobs(db: Kysely<Database>): Promise<Set<string>> {
  const out = new Set<string>();
  const add = (rows: { b: string | null }[]) => rows.forEach((r) => r.b && out.add(r.b));
  add(await db.selectFrom('images').select('blob as b').execute());
  // The de-identified DICOM headers of an image uploaded as DICOM (for DICOM SEG references).
  for (const r of await db.selectFrom('images').select('meta').where('format', '=', 'dicom').execute()) {
    let h: unknown;
    try {
      h = (JSON.parse(r.meta ?? '{}') as { dicomHeaders?: unknown }).dicomHeaders;
    } catch {
      continue; // meta is written by insertImage as JSON; a hand-edited row is the integrity report's business elsewhere
    }
    if (typeof h === 'string' && h) out.add(h);
  }
  add(await db.selectFrom('labels').select('blob as b').execute());
  add(await db.selectFrom('model_versions').select('blob as b').execute());
  add(await db.selectFrom('mask_versions').select('blob as b').execute());
  add(await db.selectFrom('mask_drafts').select('blob as b').execute());
  add(await db.selectFrom('predictions').select('heatmap_blob as b').execute());
  add(await db.selectFrom('predictions').select('uncertainty_blob as b').execute());
  add(await db.selectFrom('predictions').select('attention_blob as b').execute());
  return out;
}

/** True when the blob's bytes hash to its name (stores that check on read, as S3's does, throw CORRUPT_FILE). */
async function intact(blobs: BlobStore, hash: string): Promise<boolean> {
  try {
    return sha256(await blobs.get(hash)) === hash;
  } catch (e) {
    if (e instanceof MedmaskError && e.code === 'CORRUPT_FILE') return false;
    throw e;
  }
}

/**
 * Check that every referenced blob is present and intact.
 * @param opts - `hashContents: false` checks presence only (fast)
 * @returns a report; `ok` when nothing is missing or corrupt and the database check passes
 * @example
 * const r = await verifyStore(store.db, store.dialect, blobs);
 * if (!r.ok) console.error(r.missing, r.corrupt);
 */
export async function verifyStore(db: Kysely<Database>, dialect: Dialect, blobs: BlobStore, opts: { hashContents?: boolean } = {}): Promise<IntegrityReport> {
  let database: string | null = null;
  if (dialect === 'sqlite') {
    const r = await sql<{ integrity_check: string }>`pragma integrity_check`.execute(db);
    database = r.rows.map((x) => x.integrity_check).join('; ');
  }
  const refs = await referencedBlobs(db);
  const missing: string[] = [];
  const corrupt: string[] = [];
  for (const h of refs) {
    if (!(await blobs.has(h))) missing.push(h);
    else if (opts.hashContents !== false && !(await intact(blobs, h))) corrupt.push(h);
  }
  return { ok: !missing.length && !corrupt.length && (database === null || database === 'ok'), referenced: refs.size, missing, corrupt, database };
}
