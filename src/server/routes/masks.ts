/**
 * Review cases and versioned masks: the review queue (by priority, with filters), a mask's history,
 * its data and slices, saves that carry the version they edit (stale → 409 with the current
 * version, the edit kept as a draft), accept / reject, claims, and the heat-map overlays.
 * @module
 */
import { versionAuthor } from '../../store/review-rules.js';
import { promisify } from 'node:util';
import { gunzip as gunzipCb, gzipSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import { MedmaskError } from '../../core/errors.js';
import { checkLabelMap } from '../../io/dataset.js';
import { decodeNifti, encodeNifti } from '../../io/nifti.js';
import { caseBlobs, getMask, saveMaskVersion, ensureMask, staleSaveError, type MaskRow } from '../../store/masks.js';
import { getVolume, imageGeometry, labelVolume, putVolume } from '../../store/volumes.js';
import { parseJson } from '../../store/util.js';
import { claimLive, claimMask, draftBlob, listDrafts, maskHistory, predictionOf, releaseClaim, reviewMask, reviewQueue, versionBlob, type ReviewQueueQuery } from '../../store/review.js';
import type { ImageRow } from '../../store/volumes.js';
import { userOf } from '../auth.js';
import type { ServerContext } from '../context.js';
import { overlayMime } from '../overlays.js';
import { extractSlice, rawBytes, slicePng, type SliceAxis } from '../slices.js';
import { getImage } from './data.js';
import { errorResponses, idParams, objectResponse, pageQuery, secured } from './schemas.js';

/** Body of a JSON save. */
export interface SaveBody {
  baseVersion: number;
  /** base64 of the whole label map (uint8, x fastest), optionally gzip-compressed. */
  labels?: string;
  /** Per-slice edits on top of baseVersion: each replaces one plane. */
  slices?: { axis?: SliceAxis; index: number; labels: string }[];
  note?: string;
}

const gunzipAsync = promisify(gunzipCb);

async function gunzipMaybe(b: Buffer, max: number, what: string): Promise<Buffer> {
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) {
    try {
      // On the thread pool, not the event loop: a large mask (or a bomb, stopped at the cap) takes a while.
      return await gunzipAsync(b, { maxOutputLength: max + 1 });
    } catch (e) {
      throw new MedmaskError('CORRUPT_FILE', `${what}: the gzip data cannot be decompressed or exceed ${max} bytes (${(e as Error).message})`);
    }
  }
  return b;
}

/** Voxels of a mask version (zeros for version 0). */
async function versionData(ctx: ServerContext, mask: MaskRow, img: ImageRow, version: number): Promise<Uint8Array> {
  const g = imageGeometry(img);
  const n = g.shape[0] * g.shape[1] * g.shape[2];
  if (version === 0) return new Uint8Array(n);
  const vol = await getVolume(ctx.blobs, await versionBlob(ctx.store.db, mask, version));
  return vol.data as Uint8Array;
}

/** Apply one plane of labels onto a copy of the voxels. */
function applySlice(data: Uint8Array, shape: [number, number, number], axis: SliceAxis, index: number, plane: Uint8Array): void {
  const [nx, ny, nz] = shape;
  const n = axis === 'z' ? nz : axis === 'y' ? ny : nx;
  if (!Number.isInteger(index) || index < 0 || index >= n) throw new MedmaskError('USAGE', `slice index ${index} is outside 0…${n - 1} along ${axis}`);
  const [w, h] = axis === 'z' ? [nx, ny] : axis === 'y' ? [nx, nz] : [ny, nz];
  if (plane.length !== w * h) throw new MedmaskError('USAGE', `a ${axis} slice needs ${w}×${h} = ${w * h} labels, got ${plane.length}`);
  if (axis === 'z') {
    data.set(plane, index * nx * ny);
    return;
  }
  for (let r = 0; r < h; r++) for (let q = 0; q < w; q++) data[axis === 'y' ? q + nx * (index + ny * r) : index + nx * (q + ny * r)] = plane[q + w * r]!;
}

async function save(ctx: ServerContext, mask: MaskRow, img: ImageRow, data: Uint8Array, baseVersion: number, userId: string, note: string | null) {
  const { hash } = await putVolume(ctx.blobs, labelVolume(img, data), true);
  const r = await saveMaskVersion(ctx.store.db, { maskId: mask.id, baseVersion, blob: hash, authorId: userId, origin: 'human', note });
  if (!r.ok) {
    throw await staleSaveError(ctx.store.db, mask.id, baseVersion, r, 'load the current version, merge or redo your edit, and save with baseVersion set to it (your draft: GET /api/masks/:id/drafts)');
  }
  return { maskId: mask.id, version: r.version, versionId: r.versionId, hash };
}

/** Register the mask and review routes. */
export function maskRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const db = ctx.store.db;
  const maxBytes = ctx.settings.maxUploadBytes;
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: maxBytes }, (_req, body, done) => done(null, body));

  app.get<{ Querystring: { project?: string; dataset?: string; status: string; decision?: string; target?: string; claimed?: 'me' | 'none' | 'any'; order?: 'priority' | 'gain'; limit: number; offset: number } }>(
    '/api/review/queue',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['review'],
        summary: 'Review cases, most urgent first (priority descending; order=gain: expected gain of a review descending, for active selection), with filters and the total count',
        security: secured,
        querystring: {
          type: 'object',
          properties: {
            project: { type: 'string', maxLength: 100 },
            dataset: { type: 'string', maxLength: 100 },
            status: { type: 'string', enum: ['open', 'accepted', 'rejected', 'all'], default: 'open' },
            decision: { type: 'string', maxLength: 20 },
            target: { type: 'string', maxLength: 100 },
            claimed: { type: 'string', enum: ['me', 'none', 'any'], default: 'any' },
            order: { type: 'string', enum: ['priority', 'gain'], default: 'priority' },
            ...pageQuery,
          },
        },
      },
    },
    async (req) => {
      const q = req.query;
      const r = await reviewQueue(db, { ...q, status: q.status as ReviewQueueQuery['status'], claimed: q.claimed ?? 'any', userId: userOf(req).id });
      // The slice files of the cases on screen, in the background (the slice worker): images and
      // versions written by jobs (in other processes) or stored before are ready when opened.
      if (q.limit > 1 && ctx.slices) {
        const slices = ctx.slices;
        void caseBlobs(db, r.items.slice(0, 10).map((i) => i.maskId)).then((list) => {
          for (const b of list) for (const h of [b.image, b.label]) if (h) void slices.prepare(h, () => ctx.blobs.get(h), { background: true });
        }, () => undefined);
      }
      return r;
    },
  );

  app.post<{ Params: { id: string }; Body: { target: string; priority?: number } }>(
    '/api/images/:id/cases',
    { config: { permission: 'data:write' }, schema: { tags: ['review'], summary: 'Open a review case (an empty mask) for an image and target', security: secured, params: idParams, body: { type: 'object', required: ['target'], additionalProperties: false, properties: { target: { type: 'string', minLength: 1, maxLength: 100 }, priority: { type: 'number' } } } } },
    async (req, reply) => {
      const img = await getImage(ctx, req.params.id);
      const m = await ensureMask(db, img.id, req.body.target, { priority: req.body.priority ?? 0 });
      return reply.code(201).send({ maskId: m.id, target: m.target, currentVersion: m.current_version });
    },
  );

  app.get<{ Params: { id: string } }>('/api/masks/:id', { config: { permission: 'read' }, schema: { tags: ['masks'], summary: 'A review case: image, status, version history, drafts count, reviews, prediction', security: secured, params: idParams } }, async (req) => {
    const m = await getMask(db, req.params.id);
    const img = await getImage(ctx, m.image_id);
    const { versions, drafts, reviews, prediction: pred } = await maskHistory(db, m);
    return {
      id: m.id,
      imageId: m.image_id,
      image: { name: img.name, shape: parseJson(img.shape), spacing: parseJson(img.spacing), voxelType: img.voxel_type, datasetId: img.dataset_id },
      target: m.target,
      status: m.status,
      currentVersion: m.current_version,
      priority: m.priority,
      decision: m.decision,
      claimedBy: claimLive(m.claimed_by, m.claimed_at) ? m.claimed_by : null,
      versions,
      drafts,
      reviews,
      prediction: pred ? { id: pred.id, jobId: pred.job_id, probabilities: parseJson(pred.probabilities), uncertainty: pred.uncertainty, oodScore: pred.ood_score, decision: pred.decision, priority: pred.priority, overlays: { heatmap: !!pred.heatmap_blob, uncertainty: !!pred.uncertainty_blob, attention: !!pred.attention_blob } } : null,
    };
  });

  app.get<{ Params: { id: string; version: number }; Querystring: { format: 'nifti' | 'raw' } }>(
    '/api/masks/:id/versions/:version/data',
    {
      config: { permission: 'read' },
      schema: { tags: ['masks'], summary: 'A mask version: .nii.gz label map, or raw uint8 voxels (x fastest); version 0 is empty', security: secured, params: { type: 'object', required: ['id', 'version'], properties: { id: idParams.properties.id, version: { type: 'integer', minimum: 0 } } }, querystring: { type: 'object', properties: { format: { type: 'string', enum: ['nifti', 'raw'], default: 'nifti' } } } },
    },
    async (req, reply) => {
      const m = await getMask(db, req.params.id);
      const img = await getImage(ctx, m.image_id);
      if (req.query.format === 'raw') return reply.type('application/octet-stream').send(rawBytes(await versionData(ctx, m, img, req.params.version)));
      if (req.params.version === 0) return reply.type('application/gzip').send(gzipSync(encodeNifti(labelVolume(img, await versionData(ctx, m, img, 0)), { labelMap: true })));
      const blob = await versionBlob(db, m, req.params.version);
      void reply.type('application/gzip').header('content-disposition', `attachment; filename="mask-${m.id}-v${req.params.version}.nii.gz"`);
      return reply.send(await ctx.blobs.stream(blob));
    },
  );

  app.get<{ Params: { id: string; version: number }; Querystring: { axis: SliceAxis; index: number; format: 'raw' | 'png' } }>(
    '/api/masks/:id/versions/:version/slice',
    {
      config: { permission: 'read' },
      schema: { tags: ['masks'], summary: 'One slice of a mask version (raw uint8 labels, or PNG)', security: secured, params: { type: 'object', required: ['id', 'version'], properties: { id: idParams.properties.id, version: { type: 'integer', minimum: 0 } } }, querystring: { type: 'object', required: ['index'], properties: { axis: { type: 'string', enum: ['x', 'y', 'z'], default: 'z' }, index: { type: 'integer', minimum: 0 }, format: { type: 'string', enum: ['raw', 'png'], default: 'raw' } } } },
    },
    async (req, reply) => {
      const m = await getMask(db, req.params.id);
      const img = await getImage(ctx, m.image_id);
      const data = await versionData(ctx, m, img, req.params.version);
      const s = extractSlice(labelVolume(img, data), req.query.axis, req.query.index);
      void reply.header('x-width', String(s.width)).header('x-height', String(s.height));
      if (req.query.format === 'png') return reply.type('image/png').send(await slicePng(s, [0, 255]));
      return reply.type('application/octet-stream').send(rawBytes(s.data));
    },
  );

  const saveResponses = { 201: objectResponse('saved as a new version', { maskId: { type: 'string' }, version: { type: 'integer' }, versionId: { type: 'string' } }), 409: { ...errorResponses[400], description: 'stale baseVersion: details.currentVersion and details.draftId (the edit is kept as a draft)' }, ...errorResponses };

  app.post<{ Params: { id: string }; Body: SaveBody }>(
    '/api/masks/:id/versions',
    {
      config: { permission: 'mask:edit' },
      // JSON is parsed on the event loop: a small limit of its own; whole volumes go as binary
      bodyLimit: ctx.settings.maxJsonSaveBytes,
      errorHandler(e, req, reply) {
        if ((e as { code?: string }).code !== 'FST_ERR_CTP_BODY_TOO_LARGE') throw e;
        const lim = ctx.settings.maxJsonSaveBytes;
        const size = lim >= 2 ** 20 ? `${(lim / 2 ** 20).toFixed(lim % 2 ** 20 ? 1 : 0)} MiB` : `${lim} bytes`;
        return reply.code(413).send({
          error: 'TOO_LARGE',
          message: `a JSON mask save is limited to ${size} (maxJsonSaveBytes); this body is larger`,
          hint: `send the mask as binary instead: PUT /api/masks/${req.params.id}/data?baseVersion=N with raw uint8 voxels or a .nii.gz (application/octet-stream, up to the upload limit)`,
          details: { maxJsonSaveBytes: lim, binaryRoute: 'PUT /api/masks/:id/data' },
        });
      },
      schema: {
        tags: ['masks'],
        summary: 'Save a mask: the version it edits plus the whole label map (base64, optionally gzip) or per-slice edits',
        security: secured,
        params: idParams,
        body: {
          type: 'object',
          required: ['baseVersion'],
          additionalProperties: false,
          properties: {
            baseVersion: { type: 'integer', minimum: 0 },
            labels: { type: 'string', contentEncoding: 'base64' },
            slices: { type: 'array', minItems: 1, maxItems: 4096, items: { type: 'object', required: ['index', 'labels'], additionalProperties: false, properties: { axis: { type: 'string', enum: ['x', 'y', 'z'], default: 'z' }, index: { type: 'integer', minimum: 0 }, labels: { type: 'string' } } } },
            note: { type: 'string', maxLength: 2000 },
          },
        },
        response: saveResponses,
      },
    },
    async (req, reply) => {
      const b = req.body;
      if ((b.labels === undefined) === (b.slices === undefined)) throw new MedmaskError('USAGE', 'send exactly one of "labels" (the whole map) or "slices" (per-slice edits)');
      const m = await getMask(db, req.params.id);
      const img = await getImage(ctx, m.image_id);
      const g = imageGeometry(img);
      const n = g.shape[0] * g.shape[1] * g.shape[2];
      let data: Uint8Array;
      if (b.labels !== undefined) {
        const raw = await gunzipMaybe(Buffer.from(b.labels, 'base64'), n, 'labels');
        if (raw.length !== n) throw new MedmaskError('USAGE', `labels must hold ${n} voxels (${g.shape.join('×')}), got ${raw.length} bytes`, { hint: 'base64 of uint8 labels, x fastest, optionally gzip-compressed' });
        data = new Uint8Array(raw);
      } else {
        data = new Uint8Array(await versionData(ctx, m, img, Math.min(b.baseVersion, m.current_version)));
        if (b.baseVersion > m.current_version) throw new MedmaskError('USAGE', `baseVersion ${b.baseVersion} is newer than the current version ${m.current_version}`);
        for (const s of b.slices!) applySlice(data, g.shape, s.axis ?? 'z', s.index, new Uint8Array(await gunzipMaybe(Buffer.from(s.labels, 'base64'), n, `slice ${s.index}`)));
      }
      const r = await save(ctx, m, img, data, b.baseVersion, userOf(req).id, b.note ?? null);
      req.auditDetails = { version: r.version, baseVersion: b.baseVersion };
      return reply.code(201).send(r);
    },
  );

  app.put<{ Params: { id: string }; Querystring: { baseVersion: number; note?: string }; Body: Buffer }>(
    '/api/masks/:id/data',
    {
      config: { permission: 'mask:edit' },
      bodyLimit: maxBytes,
      schema: {
        tags: ['masks'],
        summary: 'Save a mask from binary: raw uint8 voxels (x fastest) or a NIfTI (.nii / .nii.gz) on the image grid; ?baseVersion= the version it edits',
        security: secured,
        params: idParams,
        consumes: ['application/octet-stream'],
        querystring: { type: 'object', required: ['baseVersion'], properties: { baseVersion: { type: 'integer', minimum: 0 }, note: { type: 'string', maxLength: 2000 } } },
        response: saveResponses,
      },
    },
    async (req, reply) => {
      if (!Buffer.isBuffer(req.body)) throw new MedmaskError('UNSUPPORTED_FORMAT', 'send the mask as application/octet-stream');
      const m = await getMask(db, req.params.id);
      const img = await getImage(ctx, m.image_id);
      const g = imageGeometry(img);
      const n = g.shape[0] * g.shape[1] * g.shape[2];
      const raw = await gunzipMaybe(req.body, n * 8 + 4096, 'body');
      let data: Uint8Array;
      const isNifti = raw.length >= 348 && (raw.readInt32LE(0) === 348 || raw.readInt32LE(0) === 540);
      if (isNifti) {
        const vol = await decodeNifti(new Uint8Array(raw), 'body');
        const imgVol = await getVolume(ctx.blobs, img.blob);
        checkLabelMap(imgVol, vol, undefined, { image: img.name, label: 'the uploaded mask' });
        data = Uint8Array.from(vol.data, (x) => {
          if (!(x >= 0 && x <= 255 && Number.isInteger(x))) throw new MedmaskError('DATASET_INVALID', `mask values must be whole numbers 0…255, found ${x}`);
          return x;
        });
      } else {
        if (raw.length !== n) throw new MedmaskError('USAGE', `the body must hold ${n} uint8 voxels (${g.shape.join('×')}) or a NIfTI file, got ${raw.length} bytes`);
        data = new Uint8Array(raw);
      }
      const r = await save(ctx, m, img, data, req.query.baseVersion, userOf(req).id, req.query.note ?? null);
      req.auditDetails = { version: r.version, baseVersion: req.query.baseVersion };
      return reply.code(201).send(r);
    },
  );

  app.get<{ Params: { id: string } }>('/api/masks/:id/drafts', { config: { permission: 'read' }, schema: { tags: ['masks'], summary: 'Edits refused as stale, kept as drafts', security: secured, params: idParams } }, async (req) => {
    const m = await getMask(db, req.params.id);
    return { drafts: await listDrafts(db, m.id) };
  });
  app.get<{ Params: { id: string; draftId: string }; Querystring: { format: 'nifti' | 'raw' } }>(
    '/api/masks/:id/drafts/:draftId/data',
    { config: { permission: 'read' }, schema: { tags: ['masks'], summary: 'A draft: .nii.gz label map, or raw uint8 voxels (x fastest)', security: secured, params: { type: 'object', required: ['id', 'draftId'], properties: { id: idParams.properties.id, draftId: idParams.properties.id } }, querystring: { type: 'object', properties: { format: { type: 'string', enum: ['nifti', 'raw'], default: 'nifti' } } } } },
    async (req, reply) => {
      const blob = await draftBlob(db, req.params.id, req.params.draftId);
      if (req.query.format === 'raw') {
        const data = (await getVolume(ctx.blobs, blob)).data;
        return reply.type('application/octet-stream').send(rawBytes(data instanceof Uint8Array ? data : Uint8Array.from(data)));
      }
      return reply.type('application/gzip').send(await ctx.blobs.stream(blob));
    },
  );

  app.post<{ Params: { id: string }; Body: { decision: 'accept' | 'reject'; version: number; reason?: string; timeSpentMs?: number } }>(
    '/api/masks/:id/review',
    {
      config: { permission: 'mask:review' },
      schema: {
        tags: ['review'],
        summary: 'Accept or reject the version you looked at (a reason is required to reject); time spent is recorded',
        security: secured,
        params: idParams,
        body: { type: 'object', required: ['decision', 'version'], additionalProperties: false, properties: { decision: { type: 'string', enum: ['accept', 'reject'] }, version: { type: 'integer', minimum: 0 }, reason: { type: 'string', maxLength: 2000 }, timeSpentMs: { type: 'integer', minimum: 0, maximum: 86_400_000 } } },
      },
    },
    async (req, reply) => {
      const b = req.body;
      if (b.decision === 'reject' && !b.reason?.trim()) throw new MedmaskError('USAGE', 'a rejection needs a reason', { hint: 'send { "decision": "reject", "reason": "…" }' });
      const m = await getMask(db, req.params.id);
      const user = userOf(req).id;
      // Four-eyes review (setting fourEyesReview): nobody accepts a version they wrote themselves.
      if (ctx.settings.fourEyesReview && b.decision === 'accept' && (await versionAuthor(db, m.id, b.version)) === user) {
        throw new MedmaskError('FORBIDDEN', `four-eyes review is on: you wrote version ${b.version} of this mask, so another reviewer must accept it`, { hint: 'ask another reviewer; an administrator can turn the rule off with the fourEyesReview setting' });
      }
      const ok = await reviewMask(db, { maskId: m.id, version: b.version, reviewerId: user, decision: b.decision, reason: b.reason ?? null, timeSpentMs: b.timeSpentMs ?? null });
      if (!ok) {
        const cur = await getMask(db, m.id);
        throw new MedmaskError('CONFLICT', `you reviewed version ${b.version}, but the mask is at version ${cur.current_version}`, { hint: 'look at the current version and review it', details: { currentVersion: cur.current_version } });
      }
      req.auditDetails = { decision: b.decision, version: b.version };
      return reply.code(201).send({ maskId: m.id, status: b.decision === 'accept' ? 'accepted' : 'rejected', version: b.version });
    },
  );

  app.post<{ Params: { id: string } }>('/api/masks/:id/claim', { config: { permission: 'mask:edit' }, schema: { tags: ['review'], summary: 'Mark the case as yours (shown in the queue)', security: secured, params: idParams } }, async (req) => {
    const m = await getMask(db, req.params.id);
    await claimMask(db, m.id, userOf(req).id);
    return { maskId: m.id, claimedBy: userOf(req).username };
  });
  app.delete<{ Params: { id: string } }>('/api/masks/:id/claim', { config: { permission: 'mask:edit' }, schema: { tags: ['review'], summary: 'Release your claim', security: secured, params: idParams } }, async (req) => {
    const m = await getMask(db, req.params.id);
    await releaseClaim(db, m.id, userOf(req).id);
    return { maskId: m.id, claimedBy: null };
  });

  app.get<{ Params: { id: string; kind: 'heatmap' | 'uncertainty' | 'attention' } }>(
    '/api/masks/:id/overlays/:kind',
    { config: { permission: 'read' }, schema: { tags: ['masks'], summary: 'The prediction\'s heat map (XGrad-CAM), uncertainty or attention map as stored: .nii.gz (atlas jobs) or the PNG picture annotate draws, with its content type', security: secured, params: { type: 'object', required: ['id', 'kind'], properties: { id: idParams.properties.id, kind: { type: 'string', enum: ['heatmap', 'uncertainty', 'attention'] } } } } },
    async (req, reply) => {
      const m = await getMask(db, req.params.id);
      const p = await predictionOf(db, m);
      const blob = p?.[`${req.params.kind}_blob` as 'heatmap_blob'];
      if (!blob) throw new MedmaskError('NOT_FOUND', `mask ${m.id} has no ${req.params.kind} map`, { hint: 'overlays come from annotate / atlas jobs' });
      const bytes = await ctx.blobs.get(blob); // annotate stores pictures (PNG), atlas NIfTI: tell by content
      const { type, ext } = overlayMime(bytes);
      return reply.type(type).header('content-disposition', `attachment; filename="${req.params.kind}-${m.id}${ext}"`).send(bytes);
    },
  );
}
