/**
 * `POST /api/datasets/:id/archive`: a whole Decathlon / nnU-Net data set folder as one tar.gz (or
 * tar) body, streamed and unpacked under caps (see `../dataset-upload.ts`), its cases imported with
 * their sources. `medmask upload DATASET_DIR --server URL` sends this request.
 * @module
 */
import { rm } from 'node:fs/promises';
import { Transform } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { MedmaskError } from '../../core/errors.js';
import { getDataset } from '../../store/catalog.js';
import { userOf } from '../auth.js';
import type { ServerContext } from '../context.js';
import { checkSourceName, importDataset, receiveDatasetArchive } from '../dataset-upload.js';
import { errorResponses, idParams, secured } from './schemas.js';

/** Content types the archive route takes (streamed, never buffered). */
export const ARCHIVE_TYPES = ['application/gzip', 'application/x-gzip', 'application/x-tar', 'application/x-gtar'];

/** Register the data-set archive upload route. */
export function datasetUploadRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const max = ctx.settings.maxUploadBytes;
  // Hand the raw request stream to the route; the route counts bytes against the limit itself.
  app.addContentTypeParser(ARCHIVE_TYPES, (_req, payload, done) => done(null, payload));
  app.post<{ Params: { id: string }; Querystring: { source?: string; target: string } }>(
    '/api/datasets/:id/archive',
    {
      config: { permission: 'data:write' },
      schema: {
        tags: ['images'],
        summary: 'Upload a whole Decathlon / nnU-Net data set (dataset.json, imagesTr/, labelsTr/, imagesTs/) as one tar.gz body; dataset.json\'s medmask.cases give each case\'s source and labelled organs',
        description: `Body: the folder as application/gzip (tar.gz) or application/x-tar, at most --max-upload-mb; it may unpack to at most 4× that. One image per case, named <case>.nii.gz; label maps become "mask" labels (provenance original) with their source, which atlas jobs rank by. ?source= is the source of cases dataset.json names none for. All or nothing.`,
        consumes: ARCHIVE_TYPES,
        security: secured,
        params: idParams,
        querystring: { type: 'object', properties: { source: { type: 'string', maxLength: 100 }, target: { type: 'string', minLength: 1, maxLength: 100, default: 'organs' } } },
        response: { ...errorResponses, 413: { ...errorResponses[400], description: 'too large' } },
      },
    },
    async (req, reply) => {
      const d = await getDataset(ctx.store.db, req.params.id);
      const source = req.query.source === undefined ? undefined : checkSourceName(req.query.source, '?source');
      const body = req.body as NodeJS.ReadableStream | undefined;
      if (!body || typeof (body as { pipe?: unknown }).pipe !== 'function') {
        throw new MedmaskError('UNSUPPORTED_FORMAT', `send the data set as ${ARCHIVE_TYPES.slice(0, 2).join(' or ')} (a .tar.gz of the folder)`, { hint: 'medmask upload DATASET_DIR --server URL does this' });
      }
      let seen = 0;
      const limited = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          seen += chunk.length;
          if (seen > max) cb(new MedmaskError('TOO_LARGE', `the archive is larger than the limit of ${(max / 2 ** 20).toFixed(0)} MiB`, { hint: 'split the data set, or raise the server\'s --max-upload-mb' }));
          else cb(null, chunk);
        },
      });
      // Errors reach the reader through the stream; once the reader has given up (a bad archive),
      // later ones (the rest of the body over the limit) have no one left to tell.
      limited.on('error', () => {});
      (body as NodeJS.ReadableStream).pipe(limited);
      (body as NodeJS.ReadableStream).on('error', (e: Error) => limited.destroy(e));
      const { dir, ignored } = await receiveDatasetArchive(limited, ctx.settings.tmpDir, { maxEntryBytes: max, maxTotalBytes: 4 * max, maxEntries: 100_000 });
      try {
        const r = await importDataset(ctx, `${dir}/ds`, { datasetId: d.id, userId: userOf(req).id, target: req.query.target, ...(source ? { source } : {}) });
        req.auditDetails = { images: r.images.length, labels: r.labels, sources: r.sources };
        return reply.code(201).send({ datasetId: d.id, cases: r.images.length, labels: r.labels, sources: r.sources, images: r.images, ignored: ignored.slice(0, 100) });
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  );
}
