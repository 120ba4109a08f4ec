/**
 * DICOMweb routes (docs/pacs.md): an admin registers an archive for a project; roles with `phi`
 * search it (QIDO-RS; searches are audited by field name, never value); series are imported as
 * one job each; accepted masks go back as DICOM SEG (STOW-RS) with a per-case status, by hand or
 * automatically on accept. The archive's original UIDs are shown only to roles with `phi`.
 * @module
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { MedmaskError } from '../../core/errors.js';
import { DicomwebClient, checkEndpointUrl, type DicomwebAuth, type DicomwebEndpoint, type DicomwebQuery } from '../../dicomweb/client.js';
import { createImport, createPush, insertSegLabel, createSource, getImport, getPush, getSource, importOfImage, listPushes, listSources, setSourceAutoPush, sourceEndpoint, sourceView, updateImport, updatePush, type DicomwebImportRow, type DicomwebPushRow } from '../../store/dicomweb.js';
import { createJob, getJob } from '../../store/jobs.js';
import { getMask } from '../../store/masks.js';
import { ensureDataset, getVolume, labelVolume, putVolume } from '../../store/volumes.js';
import { readFile, rm } from 'node:fs/promises';
import { ABDOMEN_LABELS } from '../../core/phantom/abdomen.js';
import { readDicomSeg } from '../../io/dicom-seg-read.js';
import { receiveMultipart } from '../upload.js';
import { audit } from '../audit.js';
import { userOf } from '../auth.js';
import type { ServerContext } from '../context.js';
import { can } from '../permissions.js';
import { dicomwebSegRoutes } from './dicomweb-segs.js';
import { idParams, secured } from './schemas.js';

const TAGS = ['pacs'];
const str = (max: number) => ({ type: 'string', minLength: 1, maxLength: max });
const queryProps = {
  patientId: { type: 'string', maxLength: 64 },
  patientName: { type: 'string', maxLength: 200 },
  studyDate: { type: 'string', maxLength: 17, description: 'YYYYMMDD or YYYYMMDD-YYYYMMDD (either end may be empty)' },
  modality: { type: 'string', maxLength: 16 },
  accessionNumber: { type: 'string', maxLength: 64 },
  studyDescription: { type: 'string', maxLength: 200 },
  seriesDescription: { type: 'string', maxLength: 200 },
  studyInstanceUid: { type: 'string', maxLength: 64 },
  limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
  offset: { type: 'integer', minimum: 0, maximum: 1_000_000 },
};

interface SourceBody {
  name: string;
  url: string;
  auth?: { type: 'none' | 'basic' | 'bearer'; username?: string; password?: string; token?: string };
  tls?: { ca?: string; insecure?: boolean };
  timeoutMs?: number;
  autoPush?: boolean;
  /** Try a QIDO-RS search before saving (default true). */
  check?: boolean;
}

function authOf(a: SourceBody['auth']): DicomwebAuth {
  if (!a || a.type === 'none') return { type: 'none' };
  if (a.type === 'basic') {
    if (!a.username || a.password === undefined) throw new MedmaskError('USAGE', 'basic auth needs username and password', { hint: '{ "type": "basic", "username": "…", "password": "…" }' });
    return { type: 'basic', username: a.username, password: a.password };
  }
  if (!a.token) throw new MedmaskError('USAGE', 'bearer auth needs a token', { hint: '{ "type": "bearer", "token": "…" }' });
  return { type: 'bearer', token: a.token };
}

/** An import's status: a retrying import whose job has no tries left has failed. */
function importStatus(r: DicomwebImportRow, jobStatus: string | undefined): string {
  return r.status === 'retrying' && jobStatus === 'failed' ? 'failed' : r.status;
}

/** The API view of an import; the archive's UIDs only for roles with `phi`. */
async function importView(ctx: ServerContext, r: DicomwebImportRow, req: FastifyRequest): Promise<Record<string, unknown>> {
  const job = r.job_id ? await getJob(ctx.store.db, r.job_id).catch(() => undefined) : undefined;
  return {
    id: r.id,
    sourceId: r.source_id,
    datasetId: r.dataset_id,
    status: importStatus(r, job?.status),
    imageId: r.image_id,
    error: r.error,
    jobId: r.job_id,
    progress: job?.progress ?? (r.status === 'done' ? 1 : 0),
    message: job?.message ?? null,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    ...(can(userOf(req).role, 'phi') ? { original: { studyInstanceUid: r.study_uid, seriesInstanceUid: r.series_uid } } : {}),
  };
}

function pushView(r: DicomwebPushRow): Record<string, unknown> {
  return { id: r.id, maskId: r.mask_id, version: r.version, sourceId: r.source_id, status: r.status, reason: r.reason, segSopInstanceUid: r.seg_sop_instance_uid, attempts: r.attempts, jobId: r.job_id, createdAt: r.created_at, updatedAt: r.updated_at };
}

/**
 * Queue a DICOM SEG push of a mask version to the archive its image came from.
 * @returns the push record, or undefined when the image was not imported from an archive
 */
export async function queueMaskPush(ctx: ServerContext, maskId: string, version: number, userId: string | null): Promise<DicomwebPushRow> {
  const db = ctx.store.db;
  const mask = await getMask(db, maskId);
  const imp = await importOfImage(db, mask.image_id);
  if (!imp) throw new MedmaskError('USAGE', `mask ${maskId}: its image was not imported from a DICOMweb archive, so there is nowhere to push it`, { hint: 'export it as DICOM SEG instead (GET /api/datasets/:id/export?format=dicom-seg)' });
  const push = await createPush(db, { maskId, version, sourceId: imp.source_id, createdBy: userId });
  return startPushJob(ctx, push, userId);
}

async function startPushJob(ctx: ServerContext, push: DicomwebPushRow, userId: string | null): Promise<DicomwebPushRow> {
  // A retry is a job of its own (input `try`): the failed one may not be marked failed yet.
  const { job, enqueue } = await createJob(ctx.store.db, { type: 'dicomweb-push', input: { pushId: push.id, ...(push.attempts ? { try: push.attempts } : {}) }, createdBy: userId });
  await updatePush(ctx.store.db, push.id, { job_id: job.id, status: 'queued', reason: null });
  if (enqueue) await ctx.queue.enqueue({ jobId: job.id, type: job.type });
  return getPush(ctx.store.db, push.id);
}

/** Register the DICOMweb routes, and the hook that pushes accepted masks where a source says so. */
export function dicomwebRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const db = ctx.store.db;

  app.post<{ Params: { id: string }; Body: SourceBody }>(
    '/api/projects/:id/dicomweb',
    {
      config: { permission: 'admin' },
      schema: {
        tags: TAGS,
        summary: 'Register a DICOMweb archive (QIDO-RS / WADO-RS / STOW-RS root) for a project; credentials are stored on the server and never returned',
        security: secured,
        params: idParams,
        body: {
          type: 'object',
          required: ['name', 'url'],
          additionalProperties: false,
          properties: {
            name: str(100),
            url: str(2000),
            auth: { type: 'object', required: ['type'], additionalProperties: false, properties: { type: { type: 'string', enum: ['none', 'basic', 'bearer'] }, username: { type: 'string', maxLength: 200 }, password: { type: 'string', maxLength: 1000 }, token: { type: 'string', maxLength: 8000 } } },
            tls: { type: 'object', additionalProperties: false, properties: { ca: { type: 'string', maxLength: 200_000 }, insecure: { type: 'boolean' } } },
            timeoutMs: { type: 'integer', minimum: 1000, maximum: 600_000 },
            autoPush: { type: 'boolean' },
            check: { type: 'boolean' },
          },
        },
      },
    },
    async (req, reply) => {
      const project = await db.selectFrom('projects').select('id').where('id', '=', req.params.id).executeTakeFirst();
      if (!project) throw new MedmaskError('NOT_FOUND', `no project ${req.params.id}`);
      const b = req.body;
      checkEndpointUrl(b.url);
      const endpoint: DicomwebEndpoint = { url: b.url.replace(/\/+$/, ''), auth: authOf(b.auth), tls: b.tls ?? {}, timeoutMs: b.timeoutMs ?? 30_000 };
      if (b.check !== false) {
        const c = new DicomwebClient(endpoint);
        try {
          await c.searchStudies({ limit: 1 });
        } finally {
          c.close();
        }
      }
      const row = await createSource(db, { projectId: project.id, name: b.name, endpoint, autoPush: !!b.autoPush, createdBy: userOf(req).id }, ctx.secrets);
      req.auditDetails = { sourceId: row.id, url: endpoint.url, auth: endpoint.auth!.type };
      return reply.code(201).send(sourceView(row));
    },
  );

  app.get<{ Params: { id: string } }>('/api/projects/:id/dicomweb', { config: { permission: 'read' }, schema: { tags: TAGS, summary: "The project's DICOMweb archives (no credentials)", security: secured, params: idParams } }, async (req) => {
    return { sources: (await listSources(db, req.params.id)).map(sourceView) };
  });

  app.patch<{ Params: { id: string }; Body: { autoPush: boolean } }>(
    '/api/dicomweb/:id',
    { config: { permission: 'admin' }, schema: { tags: TAGS, summary: 'Change whether accepted masks are pushed to this archive automatically', security: secured, params: idParams, body: { type: 'object', required: ['autoPush'], additionalProperties: false, properties: { autoPush: { type: 'boolean' } } } } },
    async (req) => {
      await getSource(db, req.params.id);
      await setSourceAutoPush(db, req.params.id, req.body.autoPush);
      req.auditDetails = { autoPush: req.body.autoPush };
      return sourceView(await getSource(db, req.params.id));
    },
  );

  for (const level of ['studies', 'series'] as const) {
    app.get<{ Params: { id: string }; Querystring: DicomwebQuery }>(
      `/api/dicomweb/:id/${level}`,
      { config: { permission: 'phi' }, schema: { tags: TAGS, summary: `Search the archive's ${level} (QIDO-RS); the answer holds patient identifiers`, security: secured, params: idParams, querystring: { type: 'object', additionalProperties: false, properties: queryProps } } },
      async (req) => {
        const source = await getSource(db, req.params.id);
        const c = new DicomwebClient(sourceEndpoint(source, ctx.secrets));
        try {
          const results = level === 'studies' ? await c.searchStudies(req.query) : await c.searchSeries(req.query);
          // Audited: who searched which archive by which fields (never the values: they are PHI).
          await audit(db, { userId: userOf(req).id, action: `GET /api/dicomweb/:id/${level}`, target: `id=${source.id}`, status: 200, ip: req.ip, details: { fields: Object.keys(req.query).filter((k) => k !== 'limit' && k !== 'offset'), results: results.length } });
          return { [level]: results };
        } finally {
          c.close();
        }
      },
    );
  }

  app.post<{ Params: { id: string }; Body: { dataset: string; series: { studyInstanceUid: string; seriesInstanceUid: string }[] } }>(
    '/api/dicomweb/:id/imports',
    {
      config: { permission: 'job:run' },
      schema: {
        tags: TAGS,
        summary: 'Import series from the archive into a data set of its project (one job per series; de-identified like uploads)',
        security: secured,
        params: idParams,
        body: {
          type: 'object',
          required: ['dataset', 'series'],
          additionalProperties: false,
          properties: {
            dataset: str(200),
            series: { type: 'array', minItems: 1, maxItems: 500, items: { type: 'object', required: ['studyInstanceUid', 'seriesInstanceUid'], additionalProperties: false, properties: { studyInstanceUid: { type: 'string', pattern: '^[0-9]+(\\.[0-9]+)*$', maxLength: 64 }, seriesInstanceUid: { type: 'string', pattern: '^[0-9]+(\\.[0-9]+)*$', maxLength: 64 } } } },
          },
        },
      },
    },
    async (req, reply) => {
      const source = await getSource(db, req.params.id);
      const user = userOf(req).id;
      const datasetId = await ensureDataset(db, source.project_id, req.body.dataset, user, `imported from DICOMweb archive "${source.name}"`);
      const imports: Record<string, unknown>[] = [];
      for (const s of req.body.series) {
        const imp = await createImport(db, { sourceId: source.id, datasetId, studyUid: s.studyInstanceUid, seriesUid: s.seriesInstanceUid, createdBy: user });
        const { job, enqueue } = await createJob(db, { type: 'dicomweb-import', input: { importId: imp.id }, createdBy: user });
        await updateImport(db, imp.id, { job_id: job.id });
        if (enqueue) await ctx.queue.enqueue({ jobId: job.id, type: job.type });
        imports.push({ id: imp.id, jobId: job.id });
      }
      req.auditDetails = { sourceId: source.id, datasetId, series: imports.length };
      return reply.code(202).send({ datasetId, imports });
    },
  );

  app.get<{ Params: { id: string } }>('/api/dicomweb/imports/:id', { config: { permission: 'read' }, schema: { tags: TAGS, summary: "An import's status and progress (the archive's UIDs only with the phi permission)", security: secured, params: idParams } }, async (req) => {
    return importView(ctx, await getImport(db, req.params.id), req);
  });

  app.post<{ Params: { id: string } }>('/api/dicomweb/imports/:id/retry', { config: { permission: 'job:run' }, schema: { tags: TAGS, summary: 'Run a failed import again (instances already retrieved are kept)', security: secured, params: idParams } }, async (req, reply) => {
    const imp = await getImport(db, req.params.id);
    const last = imp.job_id ? await getJob(db, imp.job_id).catch(() => undefined) : undefined;
    if (importStatus(imp, last?.status) !== 'failed') throw new MedmaskError('CONFLICT', `import ${imp.id} is ${importStatus(imp, last?.status)}; only a failed import is retried`);
    const tries = await db.selectFrom('jobs').select('id').where('type', '=', 'dicomweb-import').where('input', 'like', `%${imp.id}%`).execute();
    const { job, enqueue } = await createJob(db, { type: 'dicomweb-import', input: { importId: imp.id, try: tries.length }, createdBy: userOf(req).id });
    if (enqueue) {
      await updateImport(db, imp.id, { status: 'queued', job_id: job.id });
      await ctx.queue.enqueue({ jobId: job.id, type: job.type });
    }
    return reply.code(202).send(await importView(ctx, await getImport(db, imp.id), req));
  });

  app.post<{ Params: { id: string }; Body: { version?: number } }>(
    '/api/masks/:id/push',
    { config: { permission: 'mask:review' }, schema: { tags: TAGS, summary: 'Send the accepted mask as DICOM SEG to the archive its image came from (STOW-RS, as a job)', security: secured, params: idParams, body: { type: 'object', additionalProperties: false, properties: { version: { type: 'integer', minimum: 1 } } } } },
    async (req, reply) => {
      const mask = await getMask(db, req.params.id);
      if (mask.status !== 'accepted') throw new MedmaskError('USAGE', `mask ${mask.id} is ${mask.status}: only accepted masks go back to the archive`, { hint: 'accept it first (POST /api/masks/:id/review)' });
      const push = await queueMaskPush(ctx, mask.id, req.body?.version ?? mask.current_version, userOf(req).id);
      req.auditDetails = { pushId: push.id, version: push.version };
      return reply.code(202).send(pushView(push));
    },
  );

  app.get<{ Params: { id: string } }>('/api/masks/:id/pushes', { config: { permission: 'read' }, schema: { tags: TAGS, summary: "The mask's DICOM SEG pushes: sent, refused (with the archive's reason), failed, queued", security: secured, params: idParams } }, async (req) => {
    await getMask(db, req.params.id);
    return { pushes: (await listPushes(db, req.params.id)).map(pushView) };
  });

  app.post<{ Params: { id: string } }>('/api/dicomweb/pushes/:id/retry', { config: { permission: 'mask:review' }, schema: { tags: TAGS, summary: 'Send a refused or failed DICOM SEG push again', security: secured, params: idParams } }, async (req, reply) => {
    const push = await getPush(db, req.params.id);
    if (push.status === 'sent') throw new MedmaskError('CONFLICT', `push ${push.id} was sent already`, { hint: 'push the mask again to send a new version' });
    return reply.code(202).send(pushView(await startPushJob(ctx, push, userOf(req).id)));
  });

  app.post<{ Params: { id: string } }>(
    '/api/images/:id/seg',
    {
      config: { permission: 'data:write' },
      bodyLimit: ctx.settings.maxUploadBytes,
      schema: {
        tags: ['labels'],
        summary: 'Import a DICOM SEG (from 3D Slicer, OHIF, …) as a partial label map of the image (multipart: the SEG file; fields "target" (default organs), "rename" JSON { SegmentLabel: organ }, "unknown" error|skip)',
        consumes: ['multipart/form-data'],
        security: secured,
        params: idParams,
      },
    },
    async (req, reply) => {
      const img = await db.selectFrom('images').selectAll().where('id', '=', req.params.id).executeTakeFirst();
      if (!img) throw new MedmaskError('NOT_FOUND', `no image ${req.params.id}`);
      const up = await receiveMultipart(req, ctx, { maxFiles: 1 });
      try {
        const target = up.fields.target ?? 'organs';
        if (target.length > 100) throw new MedmaskError('USAGE', 'target must be at most 100 characters');
        let rename: Record<string, string> | undefined;
        if (up.fields.rename) {
          try {
            rename = JSON.parse(up.fields.rename) as Record<string, string>;
          } catch (e) {
            throw new MedmaskError('USAGE', `rename is not JSON: ${(e as Error).message}`, { hint: '{ "SegmentLabel": "organ name", "2": "liver" }' });
          }
          if (!rename || typeof rename !== 'object' || Array.isArray(rename) || Object.values(rename).some((v) => typeof v !== 'string')) throw new MedmaskError('USAGE', 'rename must map segment labels (or numbers) to organ names', { hint: '{ "Leber": "liver" }' });
        }
        const unknown = up.fields.unknown === 'skip' ? 'skip' : 'error';
        const organs = target === 'organs' ? Object.fromEntries(Object.entries(ABDOMEN_LABELS).map(([v, n]) => [n, Number(v)])) : undefined;
        const file = up.files[0]!;
        const r = readDicomSeg(new Uint8Array(await readFile(file.path)), { reference: await getVolume(ctx.blobs, img.blob), ...(organs ? { labels: organs } : {}), ...(rename ? { rename } : {}), unknown, label: file.name });
        const data = Uint8Array.from(r.labels.data, (x) => {
          if (x > 255) throw new MedmaskError('DATASET_INVALID', `${file.name}: label value ${x} does not fit a uint8 label map`);
          return x;
        });
        const { hash } = await putVolume(ctx.blobs, labelVolume(img, data), true);
        const segments = r.segments.filter((s) => s.value !== undefined).map((s) => s.name);
        const id = await insertSegLabel(db, { imageId: img.id, blob: hash, target, value: `dicom-seg:${segments.join(',')}`.slice(0, 500), createdBy: userOf(req).id });
        req.auditDetails = { labelId: id, target, segments: segments.length };
        return reply.code(201).send({ id, target, provenance: 'original', hash, segments: r.segments, overlapVoxels: r.overlapVoxels });
      } finally {
        await rm(up.dir, { recursive: true, force: true });
      }
    },
  );

  dicomwebSegRoutes(app, ctx); // a data set's existing SEGs as partial labels

  // Automatic push on accept: after a successful review, where the image's archive asks for it.
  app.addHook('onResponse', async (req, reply) => {
    if (req.method !== 'POST' || req.routeOptions.url !== '/api/masks/:id/review' || reply.statusCode !== 201) return;
    const body = req.body as { decision?: string; version?: number } | undefined;
    if (body?.decision !== 'accept' || typeof body.version !== 'number') return;
    try {
      const maskId = (req.params as { id: string }).id;
      const mask = await getMask(db, maskId);
      const imp = await importOfImage(db, mask.image_id);
      if (!imp) return;
      const source = await getSource(db, imp.source_id);
      if (!source.auto_push) return;
      await queueMaskPush(ctx, maskId, body.version, req.user?.id ?? null);
    } catch (e) {
      req.log.error({ err: e }, 'automatic DICOM SEG push could not be queued');
    }
  });
}
