/**
 * A data set's existing DICOM SEGs as partial labels (docs/pacs.md "Labels drawn elsewhere"):
 * from the archive the data set was imported from (a `dicomweb-seg-import` job: per-case status in
 * its result), or from SEG files sent in one request (read at once; the same per-case status in the
 * answer). SEGs are matched to cases by the series they reference: the archive's original series
 * UID of an imported case, or medmask's de-identified one (a SEG drawn on an export).
 * @module
 */
import type { FastifyInstance } from 'fastify';
import { readFile, rm } from 'node:fs/promises';
import { MedmaskError, isMedmaskError } from '../../core/errors.js';
import { ORGAN_LABELS, segHeader, type SegSource } from '../../dicomweb/seg-labels.js';
import { segImportCounts, storeCaseSegs, validateSegImportInput, validateSegOptions, type SegImportCase } from '../../queue/handlers/dicomweb-seg-import.js';
import { getSource } from '../../store/dicomweb.js';
import { createJob } from '../../store/jobs.js';
import { userOf } from '../auth.js';
import type { ServerContext } from '../context.js';
import { receiveMultipart } from '../upload.js';
import { idParams, secured } from './schemas.js';

const TAGS = ['pacs'];
const labelsSchema = { type: 'object', minProperties: 1, maxProperties: 255, additionalProperties: { type: 'integer', minimum: 1, maximum: 255 }, description: 'label name → value (default: the AbdomenAtlas organs, spleen 1 … pancreas 9)' };
const renameSchema = { type: 'object', maxProperties: 1000, additionalProperties: { type: 'string', minLength: 1, maxLength: 100 }, description: 'SegmentLabel (or segment number) → label name, for labels that neither match a name nor a common synonym' };

/** Register the SEG-as-labels routes. */
export function dicomwebSegRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const db = ctx.store.db;

  app.post<{ Params: { id: string }; Body: { dataset: string; target?: string; labels?: Record<string, number>; rename?: Record<string, string> } }>(
    '/api/dicomweb/:id/seg-imports',
    {
      config: { permission: 'data:write' },
      schema: {
        tags: TAGS,
        summary: "Read the DICOM SEGs the archive holds for a data set's imported series as partial labels (a job; its result gives each case's status: matched, no-seg, refused, unknown segments named)",
        security: secured,
        params: idParams,
        body: { type: 'object', required: ['dataset'], additionalProperties: false, properties: { dataset: { type: 'string', minLength: 1, maxLength: 200, description: 'data set id or name' }, target: { type: 'string', minLength: 1, maxLength: 100 }, labels: labelsSchema, rename: renameSchema } },
      },
    },
    async (req, reply) => {
      const source = await getSource(db, req.params.id);
      const ds = await db.selectFrom('datasets').select(['id', 'name']).where('project_id', '=', source.project_id).where((e) => e.or([e('id', '=', req.body.dataset), e('name', '=', req.body.dataset)])).executeTakeFirst();
      if (!ds) throw new MedmaskError('NOT_FOUND', `the project of archive "${source.name}" has no data set ${JSON.stringify(req.body.dataset)}`, { hint: 'give the data set its series were imported into (id or name)' });
      const input = validateSegImportInput({ sourceId: source.id, datasetId: ds.id, ...(req.body.target ? { target: req.body.target } : {}), ...(req.body.labels ? { labels: req.body.labels } : {}), ...(req.body.rename ? { rename: req.body.rename } : {}) });
      // Each request is a job of its own (a new SEG may have arrived since the last one).
      const { job, enqueue } = await createJob(db, { type: 'dicomweb-seg-import', input: { ...input, try: Date.now() }, createdBy: userOf(req).id });
      if (enqueue) await ctx.queue.enqueue({ jobId: job.id, type: job.type });
      req.auditDetails = { sourceId: source.id, datasetId: ds.id, jobId: job.id };
      return reply.code(202).send({ jobId: job.id, datasetId: ds.id });
    },
  );

  app.post<{ Params: { id: string } }>(
    '/api/datasets/:id/segs',
    {
      config: { permission: 'data:write' },
      bodyLimit: ctx.settings.maxUploadBytes,
      schema: {
        tags: ['labels'],
        summary: 'Read DICOM SEG files (from 3D Slicer, OHIF, …) as partial labels of the data set\'s cases, each matched by the series it references (multipart: the SEG files; fields "target", "labels" and "rename" as JSON); answers each case\'s status',
        consumes: ['multipart/form-data'],
        security: secured,
        params: idParams,
      },
    },
    async (req) => {
      const ds = await db.selectFrom('datasets').select(['id', 'name']).where('id', '=', req.params.id).executeTakeFirst();
      if (!ds) throw new MedmaskError('NOT_FOUND', `no data set ${req.params.id}`);
      const up = await receiveMultipart(req, ctx, { maxFiles: 1000 });
      try {
        const json = (k: string): unknown => {
          if (up.fields[k] === undefined) return undefined;
          try {
            return JSON.parse(up.fields[k]!);
          } catch (e) {
            throw new MedmaskError('USAGE', `field ${k} is not JSON: ${(e as Error).message}`, { hint: k === 'rename' ? '{ "Milz": "spleen" }' : '{ "liver": 1, "spleen": 2 }' });
          }
        };
        const input = validateSegOptions({ target: up.fields.target || undefined, labels: json('labels'), rename: json('rename') }, 'SEG files');
        if (!up.files.length) throw new MedmaskError('USAGE', 'send at least one DICOM SEG file', { hint: 'curl -F seg=@a.seg.dcm -F seg=@b.seg.dcm …' });
        // The cases and the series UIDs that name them: medmask's (de-identified) and, for imported ones, the archive's.
        const images = await db.selectFrom('images').selectAll().where('dataset_id', '=', ds.id).orderBy('name').execute();
        const imported = await db.selectFrom('dicomweb_imports').select(['image_id', 'series_uid']).where('dataset_id', '=', ds.id).where('status', '=', 'done').execute();
        const caseOf = new Map<string, string>();
        for (const img of images) {
          const uid = (JSON.parse(img.meta || '{}') as { seriesInstanceUid?: string }).seriesInstanceUid;
          if (uid) caseOf.set(uid, img.id);
        }
        for (const i of imported) if (i.image_id) caseOf.set(i.series_uid, i.image_id);
        const byImage = new Map<string, SegSource[]>();
        const unreadable: { seg: string; reason: string }[] = [];
        const unmatchedSegs: string[] = [];
        for (const f of up.files) {
          const s: SegSource = { name: f.name, bytes: new Uint8Array(await readFile(f.path)) };
          try {
            const ids = [...new Set(segHeader(s).referencedSeries.map((u) => caseOf.get(u)).filter((x): x is string => !!x))];
            if (!ids.length) unmatchedSegs.push(f.name);
            for (const id of ids) byImage.set(id, [...(byImage.get(id) ?? []), s]);
          } catch (e) {
            if (!isMedmaskError(e)) throw e;
            unreadable.push({ seg: f.name, reason: `[${e.code}] ${e.message}` });
          }
        }
        const labels = input.labels ?? ORGAN_LABELS;
        const target = input.target ?? 'organs';
        const cases: SegImportCase[] = [];
        for (const img of images) cases.push(await storeCaseSegs(db, ctx.blobs, img, byImage.get(img.id) ?? [], { labels, ...(input.rename ? { rename: input.rename } : {}), target, createdBy: userOf(req).id }));
        const counts = segImportCounts(cases);
        req.auditDetails = { datasetId: ds.id, segs: up.files.length, matched: counts.matched };
        return { datasetId: ds.id, target, segs: up.files.length, ...counts, unmatchedSegs, unreadableSegs: unreadable, cases };
      } finally {
        await rm(up.dir, { recursive: true, force: true });
      }
    },
  );
}
