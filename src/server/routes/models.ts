/**
 * The model registry's routes: register a version (admin: `model:write`), list models with their
 * current version, every version of one model, one version with its lineage. SQL lives in
 * src/store/models.ts; registration in src/runtime/model-registry.ts.
 * @module
 */
import { readFile, rm } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import { MedmaskError } from '../../core/errors.js';
import { registerModel } from '../../runtime/model-registry.js';
import { getModelVersionById, listModels, modelLabel, modelLineage, modelVersionsOf, modelVersionView, resolveModelRef } from '../../store/models.js';
import { userOf } from '../auth.js';
import type { ServerContext } from '../context.js';
import { receiveMultipart } from '../upload.js';
import { errorResponses, objectResponse, secured } from './schemas.js';

const nameParams = { type: 'object', required: ['name'], properties: { name: { type: 'string', minLength: 1, maxLength: 100 } } } as const;

function jsonField(fields: Record<string, string>, key: string): unknown {
  const s = fields[key];
  if (s === undefined) return undefined;
  try {
    return JSON.parse(s) as unknown;
  } catch (e) {
    throw new MedmaskError('USAGE', `the "${key}" field is not valid JSON: ${(e as Error).message}`, { hint: `send ${key} as JSON text` });
  }
}

/** Register the model routes. */
export function modelRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const db = ctx.store.db;

  app.get('/api/models', { config: { permission: 'read' }, schema: { tags: ['models'], summary: 'Registered models: each name with its current version and counts of versions and rejected candidates', security: secured } }, async () => ({ models: await listModels(db) }));

  app.get<{ Params: { name: string } }>(
    '/api/models/:name',
    { config: { permission: 'read' }, schema: { tags: ['models'], summary: 'Every version of a model (rejected fine-tune candidates included), oldest first', security: secured, params: nameParams } },
    async (req) => {
      const rows = await modelVersionsOf(db, req.params.name);
      if (!rows.length) throw new MedmaskError('NOT_FOUND', `no model named "${req.params.name}"`, { hint: 'list the registered models with GET /api/models' });
      const byId = new Map(rows.map((r) => [r.id, r]));
      return { name: req.params.name, versions: rows.map((r) => modelVersionView(r, r.parent_id ? byId.get(r.parent_id) : undefined)) };
    },
  );

  app.get<{ Params: { ref: string } }>(
    '/api/model-versions/:ref',
    {
      config: { permission: 'read' },
      schema: { tags: ['models'], summary: 'One version (by name@version, name for the current one, or id — rejected candidates by id) with its lineage back to the first version', security: secured, params: { type: 'object', required: ['ref'], properties: { ref: { type: 'string', minLength: 1, maxLength: 200 } } } },
    },
    async (req) => {
      const row = await resolveModelRef(db, req.params.ref, { field: 'ref', allowRejected: true });
      const lineage = await modelLineage(db, row.id);
      const parent = row.parent_id ? await getModelVersionById(db, row.parent_id) : undefined;
      return { ...modelVersionView(row, parent), lineage: lineage.map((r) => ({ id: r.id, ref: r.version === null ? null : modelLabel(r), status: r.status })) };
    },
  );

  app.post(
    '/api/models',
    {
      config: { permission: 'model:write' },
      bodyLimit: ctx.settings.maxUploadBytes,
      schema: {
        tags: ['models'],
        summary: 'Register a model version (multipart: the .onnx file; fields "manifest" — its medmask-model/1 JSON, docs/model-manifest.md —, and optional "card" (card.json), "parent" (name@version; default the current version of the same name, "none" for no parent), "training" (cases and label provenance, JSON) and "metrics" (held-out metrics, JSON)). A name already registered gets its next version; the same file and manifest again returns the existing version (200, created: false)',
        consumes: ['multipart/form-data'],
        security: secured,
        response: { 201: objectResponse('registered'), 200: objectResponse('already registered'), ...errorResponses },
      },
    },
    async (req, reply) => {
      const up = await receiveMultipart(req, ctx, { maxFiles: 1 });
      try {
        if (!up.fields.manifest) throw new MedmaskError('USAGE', 'the "manifest" field is missing', { hint: 'send the model.json text as a form field named manifest' });
        let manifest: unknown;
        try {
          manifest = JSON.parse(up.fields.manifest);
        } catch (e) {
          throw new MedmaskError('MODEL_INVALID', `the manifest is not valid JSON: ${(e as Error).message}`);
        }
        const parent = up.fields.parent === undefined ? undefined : up.fields.parent === 'none' ? null : up.fields.parent;
        const card = jsonField(up.fields, 'card'), training = jsonField(up.fields, 'training'), metrics = jsonField(up.fields, 'metrics');
        const { row, created } = await registerModel(ctx.store, ctx.blobs, {
          onnx: new Uint8Array(await readFile(up.files[0]!.path)),
          manifest,
          ...(card !== undefined ? { card } : {}),
          ...(parent !== undefined ? { parent } : {}),
          ...(training !== undefined ? { training } : {}),
          ...(metrics !== undefined ? { metrics } : {}),
          createdBy: userOf(req).id,
        });
        req.auditDetails = { modelId: row.id, ref: modelLabel(row), hash: row.blob, created };
        const parentRow = row.parent_id ? await getModelVersionById(db, row.parent_id) : undefined;
        return reply.code(created ? 201 : 200).send({ ...modelVersionView(row, parentRow), created });
      } finally {
        await rm(up.dir, { recursive: true, force: true });
      }
    },
  );
}
