/**
 * Blob garbage collection: blobs no row references (left by a killed job or upload, a failed
 * import, deleted rows) and older than a grace period are listed — and removed with `delete`.
 * Works on every {@link BlobStore} (folder, S3).
 *
 * Safety: "referenced" is every blob column of the schema (`referencedBlobs`) plus any SHA-256 hex
 * that appears in a job's input or result (conservative: a job may name a blob it is about to
 * record). The grace period protects writes in flight — a blob is stored before the row that
 * names it — and a store refreshes the time of a blob when the same bytes are stored again. Just
 * before removing, the collector reads the references again and re-checks each blob's age, so a
 * blob that became referenced or was re-stored during the scan is kept. Never point two databases
 * at one blob store: each would collect the other's blobs.
 * @module
 */
import type { Kysely } from 'kysely';
import type { BlobEntry, BlobStore } from './blob-store.js';
import { referencedBlobs } from './integrity.js';
import type { Database } from './schema.js';

/** Options for {@link collectGarbage}. */
export interface GcOptions {
  /** Blobs younger than this are kept whatever references them (default 24 h). */
  graceMs?: number;
  /** Remove the unreferenced blobs (default false: a dry run that only reports them). */
  delete?: boolean;
  /** "Now" (tests). */
  now?: Date;
  /** How many unreferenced blobs to list in the report (default 20). */
  sample?: number;
  /** Called every 1000 blobs scanned. */
  onProgress?: (scanned: number) => void;
}

/** What {@link collectGarbage} found and did. */
export interface GcReport {
  dryRun: boolean;
  graceMs: number;
  /** Blobs in the store, and their bytes. */
  stored: number;
  storedBytes: number;
  /** Distinct blobs the database references. */
  referenced: number;
  /** Unreferenced and older than the grace period: removed (or, in a dry run, removable). */
  unreferenced: number;
  unreferencedBytes: number;
  /** Unreferenced but younger than the grace period (kept). */
  young: number;
  /** Removed now (0 in a dry run). */
  deleted: number;
  deletedBytes: number;
  /** The first unreferenced blobs, oldest first. */
  sample: { hash: string; size: number; modified: string }[];
}

const HEX64 = /\b[0-9a-f]{64}\b/g;

/** Every blob the database references, including hashes named in job inputs and results. */
export async function referencedForGc(db: Kysely<Database>): Promise<Set<string>> {
  const refs = await referencedBlobs(db);
  for (const j of await db.selectFrom('jobs').select(['input', 'result']).execute()) {
    for (const text of [j.input, j.result]) for (const m of (text ?? '').matchAll(HEX64)) refs.add(m[0]);
  }
  return refs;
}

/**
 * Find (and with `delete`, remove) unreferenced blobs older than the grace period.
 * @example
 * const r = await collectGarbage(store.db, blobs, { graceMs: 24 * 3600_000 });
 * console.log(`${r.unreferenced} blobs (${r.unreferencedBytes} bytes) can be removed`);
 */
export async function collectGarbage(db: Kysely<Database>, blobs: BlobStore, opts: GcOptions = {}): Promise<GcReport> {
  const graceMs = opts.graceMs ?? 24 * 3600_000;
  const now = (opts.now ?? new Date()).getTime();
  const refs = await referencedForGc(db);
  const report: GcReport = { dryRun: !opts.delete, graceMs, stored: 0, storedBytes: 0, referenced: refs.size, unreferenced: 0, unreferencedBytes: 0, young: 0, deleted: 0, deletedBytes: 0, sample: [] };
  const candidates: BlobEntry[] = [];
  for await (const e of blobs.entries()) {
    report.stored++;
    report.storedBytes += e.size;
    if (report.stored % 1000 === 0) opts.onProgress?.(report.stored);
    if (refs.has(e.hash)) continue;
    if (now - e.modified.getTime() < graceMs) {
      report.young++;
      continue;
    }
    candidates.push(e);
  }
  candidates.sort((a, b) => a.modified.getTime() - b.modified.getTime() || (a.hash < b.hash ? -1 : 1));
  report.unreferenced = candidates.length;
  report.unreferencedBytes = candidates.reduce((s, e) => s + e.size, 0);
  report.sample = candidates.slice(0, opts.sample ?? 20).map((e) => ({ hash: e.hash, size: e.size, modified: e.modified.toISOString() }));
  if (!opts.delete || !candidates.length) return report;
  // Read the references again: rows written while the store was listed keep their blobs.
  const again = await referencedForGc(db);
  const fresh = new Map<string, BlobEntry>();
  for await (const e of blobs.entries()) if (e.modified.getTime() > now - graceMs) fresh.set(e.hash, e);
  for (const e of candidates) {
    if (again.has(e.hash) || fresh.has(e.hash)) continue;
    await blobs.delete(e.hash);
    report.deleted++;
    report.deletedBytes += e.size;
  }
  return report;
}
