/**
 * The `dicomweb-seg-import` job: the DICOM SEGs an archive holds for a data set's imported series
 * (drawn in 3D Slicer, OHIF, …) come back as partial labels. For the studies the data set imported
 * from the archive, QIDO-RS finds the SEG series, WADO-RS retrieves them, each SEG is matched to a
 * case by the original series UID it references (the import records), read onto the case's grid
 * and its segments mapped to label values by name (src/dicomweb/seg-labels.ts); the merged map is
 * stored as an `original` label of the image, made by this job. The result names, per case, what
 * happened (matched with its segments, unknown segments named; no SEG; refused with the reason)
 * and counts SEGs that reference no imported series. It names cases by image, never by the
 * archive's UIDs (job results are shown to every reader). Idempotent: a label map stored before is
 * not stored again.
 * @module
 */
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Kysely } from 'kysely';
import { MedmaskError, isMedmaskError } from '../../core/errors.js';
import { DicomwebClient } from '../../dicomweb/client.js';
import { pullStudySegs } from '../../dicomweb/pull-segs.js';
import { ORGAN_LABELS, mergeCaseSegs, type CaseSegStatus, type SegSource } from '../../dicomweb/seg-labels.js';
import { doneImportsOfDataset, getSource, insertSegLabel, sourceEndpoint } from '../../store/dicomweb.js';
import type { BlobStore } from '../../store/blob-store.js';
import type { Database } from '../../store/schema.js';
import { imageGeometry, labelVolume, putVolume, type ImageRow } from '../../store/volumes.js';
import type { SecretBox } from '../../store/secret-box.js';
import type { JobContext, JobHandler } from '../handlers.js';
import { redactUids } from './dicomweb-import.js';

/** Input of the dicomweb-seg-import job. */
export interface DicomwebSegImportInput {
  sourceId: string;
  datasetId: string;
  /** The labels' target (default "organs"). */
  target?: string;
  /** Label name → value (default: the AbdomenAtlas organs). */
  labels?: Record<string, number>;
  /** SegmentLabel (or number) → label name. */
  rename?: Record<string, string>;
  /** Numbers a retry started by hand. */
  try?: number;
}

/** One case in the job's result. */
export interface SegImportCase extends CaseSegStatus {
  imageId: string;
  image: string;
  /** The label stored (matched cases). */
  labelId?: string;
}

/**
 * Read one case's SEGs onto its image, store the merged map (when matched) as an `original` label,
 * and return the case's status.
 * @example
 * const c = await storeCaseSegs(ctx.store.db, ctx.blobs, img, segs, { labels, target: 'organs', createdBy });
 */
export async function storeCaseSegs(db: Kysely<Database>, blobs: BlobStore, img: ImageRow, segs: readonly SegSource[], o: { labels: Readonly<Record<string, number>>; rename?: Readonly<Record<string, string>>; target: string; createdBy: string | null; jobId?: string }): Promise<SegImportCase> {
  // The grid is the image row's: the volume itself is not read.
  const { labels: map, status } = mergeCaseSegs(segs, imageGeometry(img), { labels: o.labels, ...(o.rename ? { rename: o.rename } : {}) });
  const c: SegImportCase = { imageId: img.id, image: img.name, ...status };
  if (map) {
    const { hash } = await putVolume(blobs, labelVolume(img, map), true);
    const organs = [...new Set(status.segments.filter((x) => x.organ).map((x) => x.organ!))];
    c.labelId = await insertSegLabel(db, { imageId: img.id, blob: hash, target: o.target, value: `dicom-seg:${organs.join(',')}`.slice(0, 500), createdBy: o.createdBy, ...(o.jobId ? { jobId: o.jobId } : {}) });
  }
  return c;
}

/** Counts of a run's cases (matched, no SEG, refused, unknown segments). */
export function segImportCounts(cases: readonly SegImportCase[]): { matched: number; noSeg: number; refused: number; unknownSegments: number } {
  const count = (st: string) => cases.filter((c) => c.status === st).length;
  return { matched: count('matched'), noSeg: count('no-seg'), refused: count('refused'), unknownSegments: cases.reduce((a, c) => a + c.unknown.length, 0) };
}


const ID = /^[A-Za-z0-9_-]{1,64}$/;

/** The mapping options of a SEG import (job input or a files request), checked. */
export interface SegImportOptions {
  target?: string;
  labels?: Record<string, number>;
  rename?: Record<string, string>;
}

/**
 * Check the mapping options: target, label names → values, rename table (its organs must be label names).
 * @throws MedmaskError USAGE naming the bad entry
 */
export function validateSegOptions(o: Record<string, unknown>, what: string): SegImportOptions {
  const bad = (why: string) => new MedmaskError('USAGE', `${what}: ${why}`, { hint: 'docs/pacs.md, "Labels drawn elsewhere"' });
  if (o.target !== undefined && (typeof o.target !== 'string' || !o.target || o.target.length > 100)) throw bad('target must be a name of at most 100 characters');
  const labels = o.labels as Record<string, unknown> | undefined;
  if (labels !== undefined && (!labels || typeof labels !== 'object' || Array.isArray(labels) || !Object.keys(labels).length || Object.keys(labels).length > 255 || Object.entries(labels).some(([k, v]) => !k || k.length > 100 || !Number.isInteger(v) || (v as number) < 1 || (v as number) > 255))) throw bad('labels must map 1 to 255 label names to values 1…255');
  const names = Object.keys(labels ?? ORGAN_LABELS).map((n) => n.toLowerCase());
  const rename = o.rename as Record<string, unknown> | undefined;
  if (rename !== undefined) {
    if (!rename || typeof rename !== 'object' || Array.isArray(rename) || Object.keys(rename).length > 1000) throw bad('rename must map segment labels (or numbers) to label names');
    for (const [k, v] of Object.entries(rename)) if (typeof v !== 'string' || !names.includes(v.toLowerCase()) || k.length > 200) throw bad(`rename "${k}" → ${JSON.stringify(v)} is not a label name (${Object.keys(labels ?? ORGAN_LABELS).join(', ')})`);
  }
  return { ...(o.target !== undefined ? { target: o.target as string } : {}), ...(labels ? { labels: labels as Record<string, number> } : {}), ...(rename ? { rename: rename as Record<string, string> } : {}) };
}

/** Check the job's input. */
export function validateSegImportInput(raw: unknown): DicomwebSegImportInput {
  const bad = (why: string) => new MedmaskError('USAGE', `dicomweb-seg-import job: ${why}`, { hint: 'start it with POST /api/dicomweb/:id/seg-imports (docs/pacs.md)' });
  const o = raw as Record<string, unknown> | null;
  if (!o || typeof o !== 'object' || Array.isArray(o)) throw bad('input must be an object');
  const extra = Object.keys(o).filter((k) => !['sourceId', 'datasetId', 'target', 'labels', 'rename', 'try'].includes(k));
  if (extra.length) throw bad(`unknown input field(s) ${extra.join(', ')}`);
  if (typeof o.sourceId !== 'string' || !ID.test(o.sourceId) || typeof o.datasetId !== 'string' || !ID.test(o.datasetId)) throw bad('sourceId and datasetId must be ids');
  if (o.try !== undefined && !(Number.isInteger(o.try) && (o.try as number) >= 0)) throw bad('try must be a whole number');
  return { sourceId: o.sourceId, datasetId: o.datasetId, ...validateSegOptions(o, 'dicomweb-seg-import job'), ...(o.try !== undefined ? { try: o.try as number } : {}) };
}

/**
 * The handler.
 * @example
 * registry.register('dicomweb-seg-import', dicomwebSegImportHandler({ uidSalt }));
 */
export function dicomwebSegImportHandler(o: { uidSalt: string; secrets: SecretBox }): JobHandler {
  return {
    description: "read a data set's DICOM SEGs from its DICOMweb archive as partial labels",
    validate: validateSegImportInput,
    async run(ctx: JobContext) {
      const input = ctx.input as DicomwebSegImportInput;
      const db = ctx.store.db;
      const target = input.target ?? 'organs';
      const labels = input.labels ?? ORGAN_LABELS;
      const source = await getSource(db, input.sourceId);
      const imports = await doneImportsOfDataset(db, input.datasetId, source.id);
      if (!imports.length) throw new MedmaskError('NOT_FOUND', `data set ${input.datasetId} has no series imported from archive "${source.name}"`, { hint: 'import series first (POST /api/dicomweb/:id/imports); SEG files of other cases go through POST /api/datasets/:id/segs' });
      const dir = join(dirname(ctx.workDir), `dicomweb-segs-${ctx.jobId}`);
      await mkdir(dir, { recursive: true });
      const client = new DicomwebClient(sourceEndpoint(source, o.secrets));
      try {
        const studies = [...new Set(imports.map((i) => i.study_uid))];
        await ctx.progress(0, `searching ${studies.length} stud${studies.length === 1 ? 'y' : 'ies'} for SEG series`);
        const { segs, unreadable } = await pullStudySegs(client, studies, { dir, signal: ctx.signal, onStudy: (d, t, n) => void ctx.progress(0.5 * (d / t), `searched ${d}/${t} stud${t === 1 ? 'y' : 'ies'}: ${n} SEG(s)`) });
        const bySeries = new Map<string, SegSource[]>();
        const caseSeries = new Set(imports.map((i) => i.series_uid));
        let unmatched = 0;
        for (const s of segs) {
          const hits = s.referencedSeries.filter((u) => caseSeries.has(u));
          if (!hits.length) unmatched++;
          for (const u of hits) bySeries.set(u, [...(bySeries.get(u) ?? []), s]);
        }
        const cases: SegImportCase[] = [];
        for (const [n, imp] of imports.entries()) {
          const img = await db.selectFrom('images').selectAll().where('id', '=', imp.image_id!).executeTakeFirst();
          if (!img) continue; // the image was deleted since
          cases.push(await storeCaseSegs(db, ctx.blobs, img, bySeries.get(imp.series_uid) ?? [], { labels, ...(input.rename ? { rename: input.rename } : {}), target, createdBy: ctx.userId, jobId: ctx.jobId }));
          await ctx.progress(0.5 + 0.5 * ((n + 1) / imports.length), `${n + 1}/${imports.length} case(s) read`);
        }
        return { sourceId: source.id, datasetId: input.datasetId, target, segs: segs.length, ...segImportCounts(cases), unmatchedSegs: unmatched, unreadableSegs: unreadable, cases };
      } catch (e) {
        // Job errors and results are shown to every reader: the archive's UIDs in them become medmask's.
        throw isMedmaskError(e) || e instanceof Error ? redactUids(e, o.uidSalt) : e;
      } finally {
        client.close();
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}
