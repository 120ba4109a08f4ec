/**
 * The `dicomweb-import` job: one series from a DICOMweb archive into a data set, through the same
 * assembly, de-identification and UID remapping as a DICOM upload (src/dicomweb/import-series.ts,
 * then the upload path's header blob and `insertImage`). Its input names only the import record
 * (`{ importId }`); the archive's UIDs stay in that record and the mapping table, never in the job
 * row that every reader can list. Resumable: retrieved instances are kept in a folder beside the
 * job's scratch space between tries (only instances still missing are fetched again) and removed
 * when the series is in. Idempotent: `insertImage` keeps an image of the same name.
 * @module
 */
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { MedmaskError, isMedmaskError } from '../../core/errors.js';
import { DicomwebClient } from '../../dicomweb/client.js';
import { importSeries } from '../../dicomweb/import-series.js';
import { remapUid } from '../../io/deidentify.js';
import { putDicomHeaders } from '../../server/upload.js';
import { getImport, getSource, putUidMap, sourceEndpoint, updateImport } from '../../store/dicomweb.js';
import { insertImage } from '../../store/volumes.js';
import type { SecretBox } from '../../store/secret-box.js';
import type { JobContext, JobHandler } from '../handlers.js';

/** Input of the dicomweb-import job. */
export interface DicomwebImportInput {
  importId: string;
}

const UID_RE = /\b[0-9]+(?:\.[0-9]+){4,}\b/g;

/**
 * An error whose message, hint and details name de-identified UIDs in place of the archive's
 * (every dotted number of five or more components is taken for a UID and remapped with the salt).
 * @example
 * throw redactUids(e, uidSalt);
 */
export function redactUids(e: unknown, salt: string): unknown {
  const fix = (t: string) => t.replace(UID_RE, (u) => (u.startsWith('2.25.') ? u : remapUid(u, salt)));
  if (isMedmaskError(e)) return new MedmaskError(e.code, fix(e.message), { cause: e, ...(e.hint ? { hint: fix(e.hint) } : {}), ...(e.details ? { details: JSON.parse(fix(JSON.stringify(e.details))) as Record<string, unknown> } : {}) });
  return new Error(fix(String((e as Error)?.message ?? e)), { cause: e });
}

/**
 * Validate `{ [key]: id, try?: n }` — `try` numbers a retry started by hand, so that it is a job
 * of its own (a finished job with the same input would not run again).
 */
export function validateRecordInput(job: string, key: string, raw: unknown): Record<string, string | number> {
  const o = raw as Record<string, unknown> | null;
  const ok = o && typeof o === 'object' && !Array.isArray(o) && Object.keys(o).every((k) => k === key || k === 'try') && typeof o[key] === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(o[key] as string) && (o.try === undefined || (Number.isInteger(o.try) && (o.try as number) >= 0));
  if (!ok) throw new MedmaskError('USAGE', `${job} job: input must be { "${key}": "…", "try"?: n }`, { hint: 'these jobs are started by the DICOMweb routes (docs/pacs.md), not by POST /api/jobs' });
  return { [key]: o[key] as string, ...(o.try !== undefined ? { try: o.try as number } : {}) };
}

/**
 * The handler, with the installation's UID salt.
 * @example
 * registry.register('dicomweb-import', dicomwebImportHandler({ uidSalt }));
 */
export function dicomwebImportHandler(o: { uidSalt: string; secrets: SecretBox }): JobHandler {
  return {
    description: 'import one series from a DICOMweb archive (WADO-RS), de-identified, into a data set',
    validate: (raw) => validateRecordInput('dicomweb-import', 'importId', raw),
    async run(ctx: JobContext) {
      const { importId } = ctx.input as DicomwebImportInput;
      const db = ctx.store.db;
      const imp = await getImport(db, importId);
      if (imp.status === 'done' && imp.image_id) return { importId, imageId: imp.image_id, resumed: true };
      const source = await getSource(db, imp.source_id);
      await updateImport(db, importId, { status: 'running', job_id: ctx.jobId, error: null });
      const dir = join(dirname(ctx.workDir), `dicomweb-import-${importId}`);
      await mkdir(dir, { recursive: true });
      const client = new DicomwebClient(sourceEndpoint(source, o.secrets));
      try {
        const r = await importSeries(client, imp.study_uid, imp.series_uid, {
          uidSalt: o.uidSalt,
          dir,
          signal: ctx.signal,
          onProgress: (f, m) => void ctx.progress(0.9 * f, m),
        });
        await ctx.progress(0.92, 'storing the volume');
        if (r.headers.length) r.volume.meta.dicomHeaders = (await putDicomHeaders(ctx.blobs, r.headers)).hash;
        const deidSeries = String(r.volume.meta.seriesInstanceUid ?? '');
        r.volume.meta.dicomwebSource = source.name;
        const { image } = await insertImage(db, ctx.blobs, { datasetId: imp.dataset_id, name: `dicomweb-${deidSeries.slice(-16) || importId}`, volume: r.volume, format: 'dicom', createdBy: ctx.userId });
        await putUidMap(db, importId, r.uidMap);
        await updateImport(db, importId, { status: 'done', image_id: image.id, phi: JSON.stringify(r.phi), error: null });
        await rm(dir, { recursive: true, force: true });
        return { importId, imageId: image.id, instances: r.instances, bytes: r.bytes, refetched: r.refetched, shape: r.volume.shape };
      } catch (e0) {
        // Job errors are shown to every reader: the archive's UIDs in them become medmask's.
        const e = redactUids(e0, o.uidSalt);
        // Bad input fails for good; anything else is retried by the queue (the import view reports
        // `failed` once the job has no tries left, and the retry route starts again from the files kept).
        const final = isMedmaskError(e) && e.status < 500;
        await updateImport(db, importId, { status: final ? 'failed' : 'retrying', error: isMedmaskError(e) ? `[${e.code}] ${e.message}` : String((e as Error)?.message ?? e) });
        if (final) await rm(dir, { recursive: true, force: true });
        throw e;
      } finally {
        client.close();
      }
    },
  };
}
