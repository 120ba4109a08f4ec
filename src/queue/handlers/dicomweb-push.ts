/**
 * The `dicomweb-push` job: one mask version as a DICOM SEG to the archive its image came from,
 * referencing the original study, series and instances (src/io/dicom-seg.ts writes the SEG
 * against the de-identified headers kept at import; src/dicomweb/seg-for-archive.ts puts the
 * archive's UIDs and patient attributes back), sent with STOW-RS. The push record says what
 * happened: `sent`, `refused` with the archive's reason (final: fix the archive, then retry), or
 * `failed` while the archive cannot be reached (retried by the queue). Input: `{ pushId }`.
 * @module
 */
import { MedmaskError, isMedmaskError } from '../../core/errors.js';
import { ABDOMEN_LABELS } from '../../core/phantom/abdomen.js';
import { createVolume } from '../../core/volume.js';
import { DicomwebClient } from '../../dicomweb/client.js';
import { reidentifySeg } from '../../dicomweb/seg-for-archive.js';
import { encodeDicomSeg, type SegmentProvenance } from '../../io/dicom-seg.js';
import { getDicomHeaders } from '../../server/upload.js';
import { getPush, getSource, getUidMap, importOfImage, sourceEndpoint, updatePush } from '../../store/dicomweb.js';
import { getMask } from '../../store/masks.js';
import { getVolume } from '../../store/volumes.js';
import type { SecretBox } from '../../store/secret-box.js';
import type { JobContext, JobHandler } from '../handlers.js';
import { redactUids, validateRecordInput } from './dicomweb-import.js';

/** Input of the dicomweb-push job. */
export interface DicomwebPushInput {
  pushId: string;
}

/** Segment names of a mask: the AbdomenAtlas organs for "organs", else the target. */
export function segmentNames(target: string, present: readonly number[]): Record<number, string> {
  return Object.fromEntries(present.map((v) => [v, target === 'organs' ? (ABDOMEN_LABELS[v as keyof typeof ABDOMEN_LABELS] ?? `label ${v}`) : present.length === 1 ? target : `${target} ${v}`]));
}

/**
 * The handler, with the installation's UID salt (for the UIDs in error messages).
 * @example
 * registry.register('dicomweb-push', dicomwebPushHandler({ uidSalt }));
 */
export function dicomwebPushHandler(o: { uidSalt: string; secrets: SecretBox }): JobHandler {
  return {
    description: 'send one mask version as DICOM SEG (STOW-RS) to the DICOMweb archive its image came from',
    validate: (raw) => validateRecordInput('dicomweb-push', 'pushId', raw),
    async run(ctx: JobContext) {
      const { pushId } = ctx.input as DicomwebPushInput;
      const db = ctx.store.db;
      const push = await getPush(db, pushId);
      if (push.status === 'sent') return { pushId, status: 'sent', segSopInstanceUid: push.seg_sop_instance_uid };
      const mask = await getMask(db, push.mask_id);
      const imp = await importOfImage(db, mask.image_id);
      if (!imp) throw new MedmaskError('USAGE', `mask ${mask.id}: its image was not imported from a DICOMweb archive`, { hint: 'export it as DICOM SEG instead (GET /api/datasets/:id/export?format=dicom-seg)' });
      const image = await db.selectFrom('images').selectAll().where('id', '=', mask.image_id).executeTakeFirstOrThrow();
      const version = await db.selectFrom('mask_versions').select(['blob', 'origin']).where('mask_id', '=', mask.id).where('version', '=', push.version).executeTakeFirst();
      if (!version) throw new MedmaskError('NOT_FOUND', `mask ${mask.id} has no version ${push.version}`);
      const headersHash = (JSON.parse(image.meta || '{}') as { dicomHeaders?: unknown }).dicomHeaders;
      if (typeof headersHash !== 'string') throw new MedmaskError('USAGE', `image ${image.name} has no stored DICOM headers to reference`, { hint: 'import the series again' });
      const source = await getSource(db, push.source_id);
      await updatePush(db, pushId, { status: 'sending', attempts: push.attempts + 1, job_id: ctx.jobId });
      const client = new DicomwebClient(sourceEndpoint(source, o.secrets));
      try {
        const mv = await getVolume(ctx.blobs, version.blob);
        const present = [...new Set(mv.data)].filter((v) => v > 0).sort((a, b) => a - b);
        if (!present.length) throw new MedmaskError('USAGE', `mask ${mask.id} version ${push.version} is empty: a DICOM SEG needs at least one segment`);
        const prov: SegmentProvenance = version.origin === 'human' ? 'revised' : version.origin === 'model' ? 'pseudo' : 'none';
        const labels = createVolume(mv.shape, 'uint8', { data: Uint8Array.from(mv.data), spacing: mv.spacing, origin: mv.origin, direction: mv.direction });
        const seg = encodeDicomSeg(labels, {
          sourceHeaders: await getDicomHeaders(ctx.blobs, headersHash),
          labels: segmentNames(mask.target, present),
          provenance: Object.fromEntries(present.map((v) => [v, prov])),
          seriesDescription: `medmask ${mask.target}`.slice(0, 64),
          contentDescription: `${mask.target} v${push.version}`.slice(0, 64),
        });
        const { bytes } = reidentifySeg(seg.bytes, { uidMap: await getUidMap(db, imp.id), phi: JSON.parse(imp.phi ?? '{}') as Record<string, string> });
        await ctx.progress(0.5, 'sending the DICOM SEG (STOW-RS)');
        const r = await client.store([bytes]);
        if (r.failed.length || !r.stored.some((s) => s.sopInstanceUid === seg.sopInstanceUid)) {
          const reason = r.failed.map((f) => f.reason).join('; ') || `the archive did not confirm the SEG (HTTP ${r.status})`;
          throw new MedmaskError('REMOTE_REFUSED', `POST ${client.name}/studies: the archive refused the DICOM SEG (${reason})`, { details: { failed: r.failed } });
        }
        await updatePush(db, pushId, { status: 'sent', reason: null, seg_sop_instance_uid: seg.sopInstanceUid });
        return { pushId, status: 'sent', segSopInstanceUid: seg.sopInstanceUid, segments: seg.segments.map((s) => s.name), frames: seg.frames };
      } catch (e0) {
        const e = redactUids(e0, o.uidSalt);
        const refused = isMedmaskError(e) && e.status < 500;
        await updatePush(db, pushId, { status: refused ? 'refused' : 'failed', reason: isMedmaskError(e) ? `[${e.code}] ${e.message}` : String((e as Error)?.message ?? e) });
        throw e;
      } finally {
        client.close();
      }
    },
  };
}
