/**
 * Export a data set as a streamed .tar.gz: NIfTI (images/ + masks/), PNG (2D only), DICOM SEG
 * masks beside NIfTI images (src/io/dicom-seg.ts; empty masks are listed, not written; a SEG
 * references its source series when the image was uploaded as DICOM), or the
 * nnU-Net v2 layout (imagesTr/CASE_0000.nii.gz, labelsTr/CASE.nii.gz, dataset.json). Masks are
 * each case's current version (or only accepted ones); `export.json` records which version of
 * which mask, by whom, went into each file. Entries are written one at a time, so memory stays at
 * one volume whatever the data set's size.
 * @module
 */
import { PassThrough } from 'node:stream';
import { createGzip } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import tar from 'tar-stream';
import { MedmaskError, isMedmaskError } from '../../core/errors.js';
import { ABDOMEN_LABELS } from '../../core/phantom/abdomen.js';
import { createVolume, type Vec3 } from '../../core/volume.js';
import { encodeDicomSeg, type DicomSegOptions } from '../../io/dicom-seg.js';
import { encodePng } from '../../io/image2d.js';
import { getVolume } from '../../store/volumes.js';
import type { ServerContext } from '../context.js';
import { getDicomHeaders } from '../upload.js';
import { idParams, secured } from './schemas.js';

/** An error as one line for the manifest: its code and message. */
function reason(e: unknown): string {
  return isMedmaskError(e) ? `${e.code}: ${e.message}` : (e as Error)?.message ?? String(e);
}

function stem(name: string): string {
  return name.replace(/\.(nii\.gz|nii|png|jpe?g|tiff?|dcm|dicom|nrrd|mha)$/i, '').replace(/[^A-Za-z0-9._-]/g, '_') || 'image';
}

/** Register the export route. */
export function exportRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const db = ctx.store.db;
  app.get<{ Params: { id: string }; Querystring: { format: 'nifti' | 'png' | 'nnunet' | 'dicom-seg'; target?: string; masks: 'current' | 'accepted' } }>(
    '/api/datasets/:id/export',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['export'],
        summary: 'Export images and masks as a streamed .tar.gz (NIfTI, PNG for 2D, the nnU-Net v2 layout, or DICOM SEG masks beside NIfTI images)',
        security: secured,
        params: idParams,
        querystring: { type: 'object', properties: { format: { type: 'string', enum: ['nifti', 'png', 'nnunet', 'dicom-seg'], default: 'nifti' }, target: { type: 'string', maxLength: 100 }, masks: { type: 'string', enum: ['current', 'accepted'], default: 'current' } } },
      },
    },
    async (req, reply) => {
      const ds = await db.selectFrom('datasets').selectAll().where('id', '=', req.params.id).executeTakeFirst();
      if (!ds) throw new MedmaskError('NOT_FOUND', `data set ${req.params.id} does not exist`);
      const { format, masks: which } = req.query;
      const images = await db.selectFrom('images').selectAll().where('dataset_id', '=', ds.id).orderBy('name').execute();
      let mq = db
        .selectFrom('masks')
        .innerJoin('images', 'images.id', 'masks.image_id')
        .innerJoin('mask_versions', (j) => j.onRef('mask_versions.mask_id', '=', 'masks.id').onRef('mask_versions.version', '=', 'masks.current_version'))
        .leftJoin('users', 'users.id', 'mask_versions.author_id')
        .select(['masks.id', 'masks.image_id', 'masks.target', 'masks.status', 'masks.current_version', 'mask_versions.blob', 'mask_versions.origin', 'users.username'])
        .where('images.dataset_id', '=', ds.id);
      if (req.query.target) mq = mq.where('masks.target', '=', req.query.target);
      if (which === 'accepted') mq = mq.where('masks.status', '=', 'accepted');
      const masks = await mq.execute();
      const targets = [...new Set(masks.map((m) => m.target))].sort();
      if (format === 'nnunet' && targets.length > 1) throw new MedmaskError('USAGE', `the nnU-Net layout holds one label map per case, and this data set has masks for ${targets.join(', ')}`, { hint: 'choose one with ?target=' });
      if (format === 'png') {
        const vol3d = images.find((i) => (JSON.parse(i.shape) as Vec3)[2] !== 1);
        if (vol3d) throw new MedmaskError('USAGE', `PNG export is for 2D images; ${vol3d.name} is a volume`, { hint: 'use ?format=nifti or ?format=nnunet' });
      }
      const byImage = new Map<string, typeof masks>();
      for (const m of masks) byImage.set(m.image_id, [...(byImage.get(m.image_id) ?? []), m]);

      const pack = tar.pack();
      const out = new PassThrough();
      pack.pipe(createGzip({ level: 3 })).pipe(out);
      const add = (name: string, data: Uint8Array | string) =>
        new Promise<void>((res, rej) => {
          const buf = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
          pack.entry({ name, size: buf.length, mtime: new Date(0) }, buf, (e) => (e ? rej(e) : res()));
        });
      const record: Record<string, unknown>[] = [];
      const write = async () => {
        const used = new Set<string>();
        let caseNo = 0;
        for (const img of images) {
          const ms = byImage.get(img.id) ?? [];
          if (format === 'nnunet' && !ms.length) continue;
          let base = stem(img.name);
          while (used.has(base)) base += '_';
          used.add(base);
          const entry: Record<string, unknown> = { image: img.name, imageId: img.id };
          if (format === 'nnunet') {
            const c = `case_${String(caseNo++).padStart(4, '0')}`;
            await add(`imagesTr/${c}_0000.nii.gz`, await ctx.blobs.get(img.blob));
            await add(`labelsTr/${c}.nii.gz`, await ctx.blobs.get(ms[0]!.blob));
            Object.assign(entry, { case: c, maskId: ms[0]!.id, version: ms[0]!.current_version, status: ms[0]!.status, origin: ms[0]!.origin, author: ms[0]!.username });
          } else if (format === 'nifti') {
            await add(`images/${base}.nii.gz`, await ctx.blobs.get(img.blob));
            entry.masks = [];
            for (const m of ms) {
              await add(`masks/${base}__${stem(m.target)}.nii.gz`, await ctx.blobs.get(m.blob));
              (entry.masks as unknown[]).push({ target: m.target, maskId: m.id, version: m.current_version, status: m.status, origin: m.origin, author: m.username });
            }
          } else if (format === 'dicom-seg') {
            await add(`images/${base}.nii.gz`, await ctx.blobs.get(img.blob));
            entry.masks = [];
            // The de-identified headers kept at upload (DICOM only): the SEG references that series.
            const headersHash = (JSON.parse(img.meta || '{}') as { dicomHeaders?: unknown }).dicomHeaders;
            let source: Awaited<ReturnType<typeof getDicomHeaders>> | undefined;
            let sourceError: string | undefined;
            if (typeof headersHash === 'string' && ms.length) {
              try {
                source = await getDicomHeaders(ctx.blobs, headersHash);
              } catch (e) {
                sourceError = `the stored DICOM headers cannot be read: ${reason(e)}`;
              }
            }
            for (const m of ms) {
              const mv = await getVolume(ctx.blobs, m.blob);
              const present = [...new Set(mv.data)].filter((v) => v > 0).sort((a, b) => a - b);
              const info: Record<string, unknown> = { target: m.target, maskId: m.id, version: m.current_version, status: m.status, origin: m.origin, author: m.username };
              if (!present.length) {
                info.skipped = 'empty mask: a DICOM SEG needs at least one segment';
              } else {
                const names = Object.fromEntries(present.map((v) => [v, m.target === 'organs' ? (ABDOMEN_LABELS[v as keyof typeof ABDOMEN_LABELS] ?? `label ${v}`) : present.length === 1 ? m.target : `${m.target} ${v}`]));
                const prov = m.origin === 'human' ? 'revised' : m.origin === 'model' ? 'pseudo' : 'none';
                const labels = createVolume(mv.shape, 'uint8', { data: Uint8Array.from(mv.data), spacing: mv.spacing, origin: mv.origin, direction: mv.direction });
                const opts: DicomSegOptions = { labels: names, provenance: Object.fromEntries(present.map((v) => [v, prov])), contentDescription: `${m.target} v${m.current_version}` };
                let seg: ReturnType<typeof encodeDicomSeg> | undefined;
                if (source) {
                  try {
                    seg = encodeDicomSeg(labels, { ...opts, sourceHeaders: source });
                    info.source = { seriesInstanceUid: String(source[0]?.SeriesInstanceUID ?? ''), instances: source.length };
                  } catch (e) {
                    // Written without the reference, and the manifest says why.
                    info.sourceError = reason(e);
                  }
                } else if (sourceError) {
                  info.sourceError = sourceError;
                }
                seg ??= encodeDicomSeg(labels, opts);
                await add(`masks/${base}__${stem(m.target)}.seg.dcm`, seg.bytes);
                info.segments = seg.segments.map((x) => x.name);
              }
              (entry.masks as unknown[]).push(info);
            }
          } else {
            const v = await getVolume(ctx.blobs, img.blob);
            await add(`images/${base}.png`, await encodePng(v));
            entry.masks = [];
            for (const m of ms) {
              const mv = await getVolume(ctx.blobs, m.blob);
              await add(`masks/${base}__${stem(m.target)}.png`, await encodePng(createVolume(mv.shape, 'uint8', { data: Uint8Array.from(mv.data) }), { labelMap: true }));
              (entry.masks as unknown[]).push({ target: m.target, maskId: m.id, version: m.current_version, status: m.status, origin: m.origin, author: m.username });
            }
          }
          record.push(entry);
        }
        if (format === 'nnunet') {
          const target = targets[0] ?? 'mask';
          const labels = target === 'organs' ? { background: 0, ...Object.fromEntries(Object.entries(ABDOMEN_LABELS).map(([k, v]) => [v, Number(k)])) } : { background: 0, [target]: 1 };
          await add('dataset.json', JSON.stringify({ name: ds.name, channel_names: { 0: 'image' }, labels, numTraining: caseNo, file_ending: '.nii.gz' }, null, 1) + '\n');
        }
        await add('export.json', JSON.stringify({ dataset: { id: ds.id, name: ds.name }, format, masks: which, exportedAt: new Date().toISOString(), entries: record }, null, 1) + '\n');
        pack.finalize();
      };
      write().catch((e: unknown) => {
        req.log.error({ err: e }, 'export failed mid-stream');
        pack.destroy(e as Error);
        out.destroy(e as Error);
      });
      const file = `${stem(ds.name)}-${format}.tar.gz`;
      void reply.type('application/gzip').header('content-disposition', `attachment; filename="${file}"`);
      return reply.send(out);
    },
  );
}
