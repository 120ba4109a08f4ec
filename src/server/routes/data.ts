/**
 * Projects, data sets, images (upload of images / volumes / DICOM, de-identified on import),
 * labels (image-level, CSV or JSON; partial masks with provenance) and image data and slices.
 * @module
 */
import { rm } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import { parse as parseCsv } from 'csv-parse/sync';
import { MedmaskError } from '../../core/errors.js';
import { checkLabelMap } from '../../io/dataset.js';
import { getVolume, insertImage, labelVolume, putVolume, type ImageRow } from '../../store/volumes.js';
import { parseJson } from '../../store/util.js';
import { createDataset, createProject, datasetCounts, getDataset as getDatasetRow, listDatasets, listProjects } from '../../store/catalog.js';
import { caseOriginOf, getImageRow, imageAnnotations, imageIdsByName, listImages, takenImageNames } from '../../store/images.js';
import { addClassLabels, addMaskLabel } from '../../store/labels.js';
import type { Provenance } from '../../store/schema.js';
import { userOf } from '../auth.js';
import type { ServerContext } from '../context.js';
import { extractSlice, rawBytes, slicePng, type SliceAxis } from '../slices.js';
import { readUploads, receiveMultipart } from '../upload.js';
import { checkLabelled, checkSourceName } from '../dataset-upload.js';
import { errorResponses, idParams, objectResponse, pageQuery, secured, NAME_PATTERN } from './schemas.js';

const nameSchema = { type: 'string', minLength: 1, maxLength: 200, pattern: NAME_PATTERN } as const;

/** The API view of an image row. */
export function imageView(r: ImageRow): Record<string, unknown> {
  return {
    id: r.id,
    datasetId: r.dataset_id,
    name: r.name,
    format: r.format,
    shape: parseJson(r.shape),
    spacing: parseJson(r.spacing),
    origin: parseJson(r.origin),
    direction: parseJson(r.direction),
    voxelType: r.voxel_type,
    components: r.components,
    size: r.size,
    hash: r.blob,
    meta: parseJson(r.meta),
    createdAt: r.created_at,
  };
}

/** An image by id or NOT_FOUND. */
export function getImage(ctx: ServerContext, id: string): Promise<ImageRow> {
  return getImageRow(ctx.store.db, id);
}

function getDataset(ctx: ServerContext, id: string) {
  return getDatasetRow(ctx.store.db, id);
}

const LABEL_IMAGE_COLUMNS = ['image', 'file', 'filename', 'path', 'name'];
const LABEL_CLASS_COLUMNS = ['label', 'class', 'diagnosis', 'target'];

/** Parse a labels CSV (header `image,label` or an accepted synonym) into rows. */
export function parseLabelsCsv(text: string): { image: string; label: string; line: number }[] {
  let rows: Record<string, string>[];
  try {
    rows = parseCsv(text, { columns: (h: string[]) => h.map((x) => x.trim().toLowerCase()), skip_empty_lines: true, trim: true, bom: true }) as Record<string, string>[];
  } catch (e) {
    throw new MedmaskError('DATASET_INVALID', `the labels CSV cannot be parsed: ${(e as Error).message}`, { hint: 'a header line "image,label" then one row per image' });
  }
  if (!rows.length) throw new MedmaskError('DATASET_INVALID', 'the labels CSV has no rows', { hint: 'a header line "image,label" then one row per image' });
  const cols = Object.keys(rows[0]!);
  const ic = LABEL_IMAGE_COLUMNS.find((c) => cols.includes(c));
  const lc = LABEL_CLASS_COLUMNS.find((c) => cols.includes(c));
  if (!ic || !lc) throw new MedmaskError('DATASET_INVALID', `the labels CSV header (${cols.join(', ')}) needs an image column (${LABEL_IMAGE_COLUMNS.join('/')}) and a label column (${LABEL_CLASS_COLUMNS.join('/')})`);
  return rows.map((r, i) => ({ image: String(r[ic]).split('/').pop()!, label: String(r[lc]), line: i + 2 }));
}

/** Register the data routes. */
export function dataRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const db = ctx.store.db;
  app.addContentTypeParser('text/csv', { parseAs: 'string', bodyLimit: 16 * 2 ** 20 }, (_req, body, done) => done(null, body));

  // ── projects ──
  app.get('/api/projects', { config: { permission: 'read' }, schema: { tags: ['data'], summary: 'List projects', security: secured } }, async () => {
    const rows = await listProjects(db);
    return { projects: rows.map((r) => ({ id: r.id, name: r.name, createdAt: r.created_at })) };
  });
  app.post<{ Body: { name: string } }>(
    '/api/projects',
    { config: { permission: 'data:write' }, schema: { tags: ['data'], summary: 'Create a project', security: secured, body: { type: 'object', required: ['name'], additionalProperties: false, properties: { name: nameSchema } }, response: { 201: objectResponse('created'), ...errorResponses } } },
    async (req, reply) => {
      return reply.code(201).send(await createProject(db, req.body.name, userOf(req).id));
    },
  );

  // ── data sets ──
  app.get<{ Params: { id: string } }>('/api/projects/:id/datasets', { config: { permission: 'read' }, schema: { tags: ['data'], summary: 'Data sets of a project', security: secured, params: idParams } }, async (req) => {
    const rows = await listDatasets(db, req.params.id);
    return { datasets: rows.map((r) => ({ id: r.id, projectId: r.project_id, name: r.name, description: r.description, createdAt: r.created_at })) };
  });
  app.post<{ Params: { id: string }; Body: { name: string; description?: string } }>(
    '/api/projects/:id/datasets',
    { config: { permission: 'data:write' }, schema: { tags: ['data'], summary: 'Create a data set in a project', security: secured, params: idParams, body: { type: 'object', required: ['name'], additionalProperties: false, properties: { name: nameSchema, description: { type: 'string', maxLength: 2000 } } } } },
    async (req, reply) => {
      return reply.code(201).send(await createDataset(db, { projectId: req.params.id, name: req.body.name, description: req.body.description ?? null, createdBy: userOf(req).id }));
    },
  );
  app.get<{ Params: { id: string } }>('/api/datasets/:id', { config: { permission: 'read' }, schema: { tags: ['data'], summary: 'A data set with counts', security: secured, params: idParams } }, async (req) => {
    const d = await getDataset(ctx, req.params.id);
    const counts = await datasetCounts(db, d.id);
    return { id: d.id, projectId: d.project_id, name: d.name, description: d.description, createdAt: d.created_at, images: counts.images, cases: counts.cases };
  });

  // ── images ──
  app.get<{ Params: { id: string }; Querystring: { limit: number; offset: number } }>(
    '/api/datasets/:id/images',
    { config: { permission: 'read' }, schema: { tags: ['images'], summary: 'Images of a data set', security: secured, params: idParams, querystring: { type: 'object', properties: pageQuery } } },
    async (req) => {
      const d = await getDataset(ctx, req.params.id);
      const rows = await listImages(db, d.id, req.query);
      return { images: rows.map(imageView) };
    },
  );
  app.post<{ Params: { id: string } }>(
    '/api/datasets/:id/images',
    {
      config: { permission: 'data:write' },
      bodyLimit: ctx.settings.maxUploadBytes,
      schema: {
        tags: ['images'],
        summary: 'Upload images or volumes (multipart: one or more files; DICOM files together make one series, de-identified on import; fields "name", "seriesUid", "source" (the case\'s source for per-source atlas ranking), "labelled" (organs the source labels, comma-separated))',
        consumes: ['multipart/form-data'],
        security: secured,
        params: idParams,
        response: { 201: objectResponse('imported', { images: { type: 'array', items: { type: 'object', additionalProperties: true } } }), ...errorResponses, 413: { ...errorResponses[400], description: 'too large' }, 415: { ...errorResponses[400], description: 'not multipart, or not an image' } },
      },
    },
    async (req, reply) => {
      const d = await getDataset(ctx, req.params.id);
      const up = await receiveMultipart(req, ctx);
      try {
        const vols = await readUploads(up, ctx);
        // The case's source (and labelled organs) for atlas jobs' per-source ranking.
        const origin = {
          ...(up.fields.source !== undefined ? { dataSource: checkSourceName(up.fields.source, 'the "source" field') } : {}),
          ...(up.fields.labelled !== undefined ? { labelled: checkLabelled(up.fields.labelled, 'the "labelled" field') } : {}),
        };
        for (const v of vols) v.volume.meta = { ...v.volume.meta, ...origin };
        const names = vols.map((v) => v.name);
        const dup = names.find((n, i) => names.indexOf(n) !== i);
        if (dup) throw new MedmaskError('USAGE', `two uploaded files are both named "${dup}"`);
        const taken = await takenImageNames(db, d.id, names);
        if (taken.length) throw new MedmaskError('CONFLICT', `the data set already has image(s) named ${taken.map((t) => `"${t}"`).join(', ')}`, { hint: 'rename the file(s) or send a "name" field' });
        const out: Record<string, unknown>[] = [];
        for (const v of vols) {
          const { image, created } = await insertImage(db, ctx.blobs, { datasetId: d.id, name: v.name, volume: v.volume, format: v.format, createdBy: userOf(req).id });
          if (!created) throw new MedmaskError('CONFLICT', `the data set already has an image named "${v.name}" (uploaded at the same time)`, { hint: 'rename the file or send a "name" field' });
          void ctx.slices?.prepare(image.blob, () => ctx.blobs.get(image.blob)); // the viewer's slice files, in the slice worker
          out.push(imageView(image));
        }
        req.auditDetails = { images: out.map((o) => o.id), names };
        return reply.code(201).send({ images: out });
      } finally {
        await rm(up.dir, { recursive: true, force: true });
      }
    },
  );
  app.get<{ Params: { id: string } }>('/api/images/:id', { config: { permission: 'read' }, schema: { tags: ['images'], summary: 'Image metadata (de-identified), its labels and review cases', security: secured, params: idParams } }, async (req) => {
    const img = await getImage(ctx, req.params.id);
    const { labels, cases: masks } = await imageAnnotations(db, img.id);
    return {
      ...imageView(img),
      labels: labels.map((l) => ({ id: l.id, kind: l.kind, value: l.value, target: l.target, provenance: l.provenance, hash: l.blob, createdAt: l.created_at })),
      cases: masks.map((m) => ({ maskId: m.id, target: m.target, status: m.status, currentVersion: m.current_version, priority: m.priority, decision: m.decision })),
    };
  });
  app.get<{ Params: { id: string } }>('/api/images/:id/data', { config: { permission: 'read' }, schema: { tags: ['images'], summary: 'The image as .nii.gz', security: secured, params: idParams } }, async (req, reply) => {
    const img = await getImage(ctx, req.params.id);
    void reply.type('application/gzip').header('content-disposition', `attachment; filename="image-${img.id}.nii.gz"`);
    return reply.send(await ctx.blobs.stream(img.blob));
  });
  app.get<{ Params: { id: string }; Querystring: { axis: SliceAxis; index: number; format: 'raw' | 'png'; low?: number; high?: number } }>(
    '/api/images/:id/slice',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['images'],
        summary: 'One slice: raw voxels (stored type, little-endian; headers X-Width, X-Height, X-Voxel-Type) or an 8-bit PNG windowed to [low, high]',
        security: secured,
        params: idParams,
        querystring: { type: 'object', required: ['index'], properties: { axis: { type: 'string', enum: ['x', 'y', 'z'], default: 'z' }, index: { type: 'integer', minimum: 0 }, format: { type: 'string', enum: ['raw', 'png'], default: 'raw' }, low: { type: 'number' }, high: { type: 'number' } } },
      },
    },
    async (req, reply) => {
      const img = await getImage(ctx, req.params.id);
      const vol = await getVolume(ctx.blobs, img.blob);
      const s = extractSlice(vol, req.query.axis, req.query.index);
      void reply.header('x-width', String(s.width)).header('x-height', String(s.height)).header('x-components', String(s.components)).header('x-voxel-type', img.voxel_type);
      if (req.query.format === 'png') {
        const win = req.query.low !== undefined && req.query.high !== undefined ? ([req.query.low, req.query.high] as [number, number]) : undefined;
        return reply.type('image/png').send(await slicePng(s, win));
      }
      return reply.type('application/octet-stream').send(rawBytes(s.data));
    },
  );

  // ── labels ──
  app.post<{ Params: { id: string }; Body: string | { labels: { image: string; label: string }[] } }>(
    '/api/datasets/:id/labels',
    {
      config: { permission: 'data:write' },
      schema: {
        tags: ['labels'],
        summary: 'Image-level labels: JSON { labels: [{ image, label }] } or a CSV (text/csv, header image,label); image names must exist in the data set',
        security: secured,
        params: idParams,
        body: {
          anyOf: [
            { type: 'string', description: 'CSV text' },
            { type: 'object', required: ['labels'], additionalProperties: false, properties: { labels: { type: 'array', minItems: 1, maxItems: 100000, items: { type: 'object', required: ['image', 'label'], additionalProperties: false, properties: { image: { type: 'string', minLength: 1, maxLength: 255 }, label: { type: 'string', minLength: 1, maxLength: 200 } } } } } },
          ],
        },
      },
    },
    async (req, reply) => {
      const d = await getDataset(ctx, req.params.id);
      const rows = typeof req.body === 'string' ? parseLabelsCsv(req.body) : req.body.labels.map((l, i) => ({ ...l, line: i + 1 }));
      const byName = await imageIdsByName(db, d.id);
      const missing = rows.filter((r) => !byName.has(r.image));
      if (missing.length) {
        throw new MedmaskError('DATASET_INVALID', `${missing.length} label(s) name images the data set does not have: ${missing.slice(0, 10).map((m) => `"${m.image}" (row ${m.line})`).join(', ')}${missing.length > 10 ? ', …' : ''}`, { hint: 'upload the images first; names are the uploaded file names' });
      }
      await addClassLabels(db, rows.map((r) => ({ imageId: byName.get(r.image)!, label: r.label })), userOf(req).id);
      req.auditDetails = { labels: rows.length };
      return reply.code(201).send({ added: rows.length });
    },
  );
  app.post<{ Params: { id: string } }>(
    '/api/images/:id/masks',
    {
      config: { permission: 'data:write' },
      bodyLimit: ctx.settings.maxUploadBytes,
      schema: { tags: ['labels'], summary: 'Upload a (partial) label map for an image (multipart: one file on the image grid; fields "target", "provenance" original|pseudo|revised, "source" (default: the image\'s))', consumes: ['multipart/form-data'], security: secured, params: idParams },
    },
    async (req, reply) => {
      const img = await getImage(ctx, req.params.id);
      const up = await receiveMultipart(req, ctx, { maxFiles: 1 });
      try {
        const prov = (up.fields.provenance ?? 'original') as Provenance;
        if (!['original', 'pseudo', 'revised'].includes(prov)) throw new MedmaskError('USAGE', `provenance "${prov}" must be original, pseudo or revised`);
        const target = up.fields.target ?? 'mask';
        if (target.length > 100) throw new MedmaskError('USAGE', 'target must be at most 100 characters');
        const [v] = await readUploads({ ...up, fields: {} }, ctx);
        const image = await getVolume(ctx.blobs, img.blob);
        checkLabelMap(image, v!.volume, undefined, { image: img.name, label: v!.name });
        for (let i = 0; i < v!.volume.data.length; i++) {
          const x = v!.volume.data[i]!;
          if (!(x >= 0 && x <= 255 && Number.isInteger(x))) throw new MedmaskError('DATASET_INVALID', `${v!.name}: label values must be whole numbers 0…255, found ${x}`);
        }
        const { hash } = await putVolume(ctx.blobs, labelVolume(img, Uint8Array.from(v!.volume.data)), true);
        const source = up.fields.source !== undefined ? checkSourceName(up.fields.source, 'the "source" field') : (caseOriginOf(img).source ?? null);
        const id = await addMaskLabel(db, { imageId: img.id, blob: hash, target, provenance: prov, source, createdBy: userOf(req).id });
        req.auditDetails = { labelId: id, target, provenance: prov };
        return reply.code(201).send({ id, target, provenance: prov, hash, ...(source ? { source } : {}) });
      } finally {
        await rm(up.dir, { recursive: true, force: true });
      }
    },
  );
}
