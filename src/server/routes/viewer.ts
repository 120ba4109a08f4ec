/**
 * What the review UI's slice viewer needs from the server: only what is on screen. A case's
 * display facts in one request; one slice (or a tile of it) with the image — raw voxels, or
 * windowed to 8 bits — plus the labels of a version and the heat-map overlays, packed into one
 * binary response the browser views as typed arrays without copying; a stack of label planes for a
 * fill through a slice range; flagged regions (connected components of the attention map); and
 * saves as compact per-slice diffs on the version the edit was made on (stale → 409 with the
 * current version, the edit kept as a draft, as every other save). Slices are read from the
 * volumes' slice files (volume-slices.ts, made by a worker thread at upload, queue listing and
 * save): one positioned read per slice, no decode on a request.
 *
 * Binary slice format (`application/x-medmask-slice`): bytes 0–3 `MMS1`, 4–7 the header length H
 * (uint32 LE), then H bytes of JSON `{ axis, index, width, height, tile, version, layers: [{ name,
 * type, offset, length }] }`, then each layer's bytes at its offset (8-byte aligned, little-endian).
 * @module
 */
import { join } from 'node:path';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { MedmaskError } from '../../core/errors.js';
import type { Volume, VoxelArray } from '../../core/volume.js';
import { voxelTypeOf } from '../../core/volume.js';
import { applyRuns, checkRuns, runsVoxels } from '../../core/viewer/diff.js';
import type { flaggedRegions } from '../../core/viewer/regions.js';
import { windowToGrey } from '../../core/viewer/window.js';
import { getMask, labelPlanes, recordLabelPlanes, saveMaskVersion, staleSaveError, type MaskRow } from '../../store/masks.js';
import { encodeNifti } from '../../io/nifti.js';
import { getVolume, imageGeometry, labelVolume, type ImageRow } from '../../store/volumes.js';
import { reviewProgress } from '../../store/review-progress.js';
import { claimLive } from '../../store/review.js';
import { parseJson } from '../../store/util.js';
import { userOf } from '../auth.js';
import type { ServerContext } from '../context.js';
import { RegionsPool } from '../regions-pool.js';
import { extractSlice, type SliceAxis } from '../slices.js';
import { getImage } from './data.js';
import { errorResponses, idParams, objectResponse, secured } from './schemas.js';
import { webUiRoutes } from './web-ui.js';
import { decodeOverlay } from '../overlays.js';
import { displayStats, ViewerCaches, type ImageStats } from '../viewer-cache.js';
import { saveLabelPlanes } from '../label-blobs.js';
import { VolumeSlices } from '../volume-slices.js';

/** The server's context plus this server's viewer caches, slice-addressable volume files and regions worker. */
type Vc = ServerContext & { caches: ViewerCaches; slices: VolumeSlices; regions: RegionsPool };

export { CLAIM_TTL_MS } from '../../store/review.js';

/** Overlay kinds a prediction may carry. */
export const OVERLAY_KINDS = ['heatmap', 'uncertainty', 'attention'] as const;
/** An overlay kind. */
export type OverlayKind = (typeof OVERLAY_KINDS)[number];

/** Body of a diff save. */
export interface EditsBody {
  /** The version the edits were made on. */
  baseVersion: number;
  /**
   * The version this save replaces (default baseVersion). Set it to the current version to keep
   * your edit after a conflict ("keep mine"): your edits on baseVersion win over the newer one.
   */
  onto?: number;
  /** Per axial plane (z; 0 for 2D): `[start, length, value]` runs of in-plane indices. */
  planes: { z: number; runs: number[] }[];
  note?: string;
}

/**
 * Display range, window and CT-ness of an image, from its voxels (or, for a volume not decoded
 * yet, from its middle axial plane): cached per blob so every request of a case agrees.
 */
function imageStats(caches: ViewerCaches, hash: string, d: VoxelArray, nz: number): ImageStats {
  return caches.stats.get(hash) ?? caches.stats.set(hash, displayStats(d, nz));
}

// A decode on the event loop: only for what has no slice files (several components, a blob the
// slice worker could not read); everything else is read from the files volume-slices.ts keeps.
function volumeOf(ctx: Vc, hash: string): Promise<Volume> {
  return getVolume(ctx.blobs, hash).then((v) => {
    ctx.caches.decoded.set(hash, true);
    return v;
  });
}

/**
 * Make sure a stored volume's slice files are there: normally they were made at upload or when
 * a job or save wrote the blob; for data stored before, the slice worker makes them now (one
 * decode, off the event loop) and this resolves once the axial file is written.
 */
function ready(ctx: Vc, hash: string): Promise<boolean> {
  return ctx.slices.prepare(hash, () => ctx.blobs.get(hash));
}

/** One slice read from a volume's slice files (made first when missing); null when it has none. */
async function sliceOf(ctx: Vc, hash: string, axis: SliceAxis, index: number): Promise<VoxelArray | null> {
  const s = await ctx.slices.slice(hash, axis, index);
  if (s) return s;
  if (!(await ready(ctx, hash))) return null;
  const z = await ctx.slices.slice(hash, axis, index);
  if (z) return z;
  await ctx.slices.settled(hash); // coronal and sagittal files follow the axial one
  return ctx.slices.slice(hash, axis, index);
}

/** Axial plane k of a stored single-component volume: from its slice files, else decoded. */
async function axialPlane(ctx: Vc, hash: string, k: number): Promise<VoxelArray> {
  return (await sliceOf(ctx, hash, 'z', k)) ?? extractSlice(await volumeOf(ctx, hash), 'z', k).data;
}

/** Display facts of an image: written beside its slice files, else computed from the decoded volume. */
async function imageStatsOf(ctx: Vc, img: ImageRow, nz: number): Promise<ImageStats> {
  const hit = ctx.caches.stats.get(img.blob) ?? (await ctx.slices.getJson<ImageStats>(img.blob, 'stats'));
  if (hit) return ctx.caches.stats.set(img.blob, hit);
  if (img.components === 1 && (await ready(ctx, img.blob))) {
    const s = await ctx.slices.getJson<ImageStats>(img.blob, 'stats');
    if (s) return ctx.caches.stats.set(img.blob, s);
  }
  return imageStats(ctx.caches, img.blob, (await volumeOf(ctx, img.blob)).data, nz);
}

function labelValues(caches: ViewerCaches, hash: string, data: Uint8Array): number[] {
  const hit = caches.labels.get(hash);
  if (hit) return hit;
  const seen = new Uint8Array(256);
  for (let i = 0; i < data.length; i++) seen[data[i]!] = 1;
  const out: number[] = [];
  for (let v = 1; v < 256; v++) if (seen[v]) out.push(v);
  return caches.labels.set(hash, out);
}

/** An overlay as 8 bits on the image's grid (0…255 ≙ 0…1), whatever format its job stored (overlays.ts). */
function overlayU8(ctx: Vc, hash: string, img: ImageRow): Promise<Uint8Array> {
  const hit = ctx.caches.overlays.get(hash);
  if (hit) return hit;
  const p = decodeOverlay(ctx.blobs, hash, imageGeometry(img).shape, () => volumeOf(ctx, img.blob));
  p.catch(() => undefined);
  return ctx.caches.overlays.set(hash, p);
}

/** One slice of an overlay (8 bits): from its slice files, else decoded (and its files written). */
async function overlaySlice(ctx: Vc, hash: string, img: ImageRow, axis: SliceAxis, index: number): Promise<Uint8Array> {
  const key = `${hash}-u8`;
  const s = await ctx.slices.slice(key, axis, index);
  if (s) return s as Uint8Array;
  const u8 = await overlayU8(ctx, hash, img);
  const shape = imageGeometry(img).shape;
  void ctx.slices.extend(key, { shape, data: u8, components: 1 }, axis);
  return extractSlice(labelVolume(img, u8), axis, index).data as Uint8Array;
}

async function versionRow(ctx: Vc, mask: MaskRow, version: number) {
  const v = await ctx.store.db.selectFrom('mask_versions').select(['blob']).where('mask_id', '=', mask.id).where('version', '=', version).executeTakeFirst();
  if (!v) throw new MedmaskError('NOT_FOUND', `mask ${mask.id} has no version ${version}`, { hint: `the current version is ${mask.current_version}`, details: { currentVersion: mask.current_version } });
  return v;
}

/** Label values present in a label blob: kept beside its slice files, computed once. */
async function labelValuesOf(ctx: Vc, hash: string, data: () => Promise<Uint8Array>): Promise<number[]> {
  const hit = ctx.caches.labels.get(hash) ?? (await ctx.slices.getJson<number[]>(hash, 'values')) ?? ((await ready(ctx, hash)) ? await ctx.slices.getJson<number[]>(hash, 'values') : null);
  if (hit) return ctx.caches.labels.set(hash, hit);
  const vals = labelValues(ctx.caches, hash, await data());
  void ctx.slices.putJson(hash, 'values', vals);
  return vals;
}

/**
 * Slices of a version's labels: from its slice files, else from the decoded volume (the version's
 * row is looked up once, the volume decoded at most once).
 */
function labelSlicer(ctx: Vc, img: ImageRow, mask: MaskRow, version: number): (axis: SliceAxis, index: number) => Promise<Uint8Array> {
  const shape = imageGeometry(img).shape;
  let row: Promise<{ blob: string }> | undefined;
  return async (axis, index) => {
    const [w, h] = sliceDims(shape, axis);
    if (version === 0) return new Uint8Array(w * h);
    const { blob } = await (row ??= versionRow(ctx, mask, version));
    const s = await sliceOf(ctx, blob, axis, index);
    if (s) return s as Uint8Array;
    const vol = labelVolume(img, (await versionLabels(ctx, mask, version))!.data);
    void ctx.slices.extend(blob, vol, axis);
    return extractSlice(vol, axis, index).data as Uint8Array;
  };
}

/** A version's whole label volume: read from its axial slice file when there is one, else decoded. */
async function labelsWhole(ctx: Vc, mask: MaskRow, version: number): Promise<Uint8Array | null> {
  if (version === 0) return null;
  const row = await versionRow(ctx, mask, version);
  const w = (await ctx.slices.whole(row.blob)) ?? ((await ready(ctx, row.blob)) ? await ctx.slices.whole(row.blob) : null);
  if (w && w.data instanceof Uint8Array) return w.data;
  return (await versionLabels(ctx, mask, version))!.data.slice(); // a copy: the decoded one is cached
}

/** Label voxels of a version (null for version 0: empty). */
async function versionLabels(ctx: Vc, mask: MaskRow, version: number): Promise<{ data: Uint8Array; hash: string } | null> {
  if (version === 0) return null;
  const v = await versionRow(ctx, mask, version);
  const vol = await volumeOf(ctx, v.blob);
  return { data: vol.data as Uint8Array, hash: v.blob };
}

async function predictionOf(ctx: Vc, mask: MaskRow) {
  return mask.prediction_id ? ctx.store.db.selectFrom('predictions').select(['heatmap_blob', 'uncertainty_blob', 'attention_blob']).where('id', '=', mask.prediction_id).executeTakeFirst() : undefined;
}

function overlayBlob(p: Awaited<ReturnType<typeof predictionOf>>, kind: OverlayKind): string | null {
  return p ? (p[`${kind}_blob`] ?? null) : null;
}

/** A plane as grey when the image has several components (luminance of RGB). */
function toGrey(s: { data: VoxelArray; components: number; width: number; height: number }): VoxelArray {
  if (s.components === 1) return s.data;
  const n = s.width * s.height;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const o = i * s.components;
    out[i] = s.components >= 3 ? 0.299 * s.data[o]! + 0.587 * s.data[o + 1]! + 0.114 * s.data[o + 2]! : s.data[o]!;
  }
  return out;
}

function crop<T extends VoxelArray>(a: T, width: number, t: { x: number; y: number; w: number; h: number }): T {
  if (t.x === 0 && t.y === 0 && t.w === width && a.length === t.w * t.h) return a;
  const out = new (a.constructor as new (n: number) => T)(t.w * t.h);
  for (let r = 0; r < t.h; r++) out.set(a.subarray((t.y + r) * width + t.x, (t.y + r) * width + t.x + t.w) as never, r * t.w);
  return out;
}

/** Pack layers into the binary slice format. */
export function packSlice(header: Record<string, unknown>, layers: { name: string; data: VoxelArray }[]): Buffer {
  const pad = (n: number) => (n + 7) & ~7;
  const descr: { name: string; type: string; offset: number; length: number }[] = [];
  // offsets are relative to the start of the payload; the client adds the payload start
  let off = 0;
  for (const l of layers) {
    descr.push({ name: l.name, type: voxelTypeOf(l.data), offset: off, length: l.data.length });
    off = pad(off + l.data.byteLength);
  }
  const json = Buffer.from(JSON.stringify({ ...header, layers: descr }), 'utf8');
  const start = pad(8 + json.length);
  const buf = Buffer.alloc(start + off);
  buf.write('MMS1', 0, 'latin1');
  buf.writeUInt32LE(json.length, 4);
  json.copy(buf, 8);
  for (const [i, l] of layers.entries()) buf.set(new Uint8Array(l.data.buffer, l.data.byteOffset, l.data.byteLength), start + descr[i]!.offset);
  return buf;
}

function sliceDepth(shape: [number, number, number], axis: SliceAxis): number {
  return axis === 'z' ? shape[2] : axis === 'y' ? shape[1] : shape[0];
}

function sliceDims(shape: [number, number, number], axis: SliceAxis): [number, number] {
  return axis === 'z' ? [shape[0], shape[1]] : axis === 'y' ? [shape[0], shape[2]] : [shape[1], shape[2]];
}

const versionParam = { type: 'integer', minimum: 0, description: 'mask version (default: the current one; 0 = empty)' } as const;
const axisParam = { type: 'string', enum: ['x', 'y', 'z'], default: 'z', description: 'z axial, y coronal, x sagittal' } as const;

/**
 * Register the viewer routes (and the web UI's static files at `/`).
 * @example
 * viewerRoutes(app, ctx); // in createServer, after the other routes
 */
export function viewerRoutes(app: FastifyInstance, server: ServerContext): void {
  const ctx: Vc = { ...server, caches: new ViewerCaches(), slices: server.slices ?? new VolumeSlices(join(server.settings.tmpDir, 'volume-slices')), regions: new RegionsPool() };
  app.addHook('onClose', () => ctx.regions.close());
  const db = ctx.store.db;

  async function load(id: string): Promise<{ mask: MaskRow; img: ImageRow; shape: [number, number, number] }> {
    const mask = await getMask(db, id);
    const img = await getImage(ctx, mask.image_id);
    return { mask, img, shape: imageGeometry(img).shape };
  }

  app.get<{ Params: { id: string } }>(
    '/api/viewer/masks/:id',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['viewer'],
        summary: 'What the slice viewer needs to open a case: geometry, voxel type, display window, label values, overlays, recent versions, review state',
        security: secured,
        params: idParams,
        response: { 200: objectResponse('the case for the viewer'), ...errorResponses },
      },
    },
    async (req) => {
      const { mask, img, shape } = await load(req.params.id);
      const pred = await predictionOf(ctx, mask);
      // Display facts and label values: small files beside the slice files (no decode); overlays
      // decoded ahead of their request only once the image was decoded anyway (the page asks for
      // them after its first paint).
      const labelBlob = mask.current_version ? (await versionRow(ctx, mask, mask.current_version)).blob : null;
      const [stats, labels] = await Promise.all([
        imageStatsOf(ctx, img, shape[2]),
        labelBlob ? labelValuesOf(ctx, labelBlob, async () => (await versionLabels(ctx, mask, mask.current_version))!.data) : [],
      ]);
      if (ctx.caches.decoded.has(img.blob)) {
        for (const k of OVERLAY_KINDS) {
          const b = overlayBlob(pred, k);
          if (b) void overlayU8(ctx, b, img);
        }
      }
      const versions = await db
        .selectFrom('mask_versions')
        .leftJoin('users', 'users.id', 'mask_versions.author_id')
        .select(['mask_versions.version', 'mask_versions.origin', 'mask_versions.created_at', 'mask_versions.note', 'users.username'])
        .where('mask_id', '=', mask.id)
        .orderBy('version', 'desc')
        .limit(20)
        .execute();
      // claims are renewed by the viewer's heartbeat; one without a recent heartbeat has expired
      const live = claimLive(mask.claimed_by, mask.claimed_at);
      const claimed = live ? await db.selectFrom('users').select('username').where('id', '=', mask.claimed_by!).executeTakeFirst() : undefined;
      return {
        maskId: mask.id,
        imageId: img.id,
        imageName: img.name,
        datasetId: img.dataset_id,
        target: mask.target,
        status: mask.status,
        decision: mask.decision,
        priority: mask.priority,
        currentVersion: mask.current_version,
        claimedBy: claimed?.username ?? null,
        claimedAt: claimed ? mask.claimed_at : null,
        shape,
        spacing: parseJson(img.spacing),
        direction: parseJson(img.direction),
        voxelType: img.voxel_type,
        components: img.components,
        modality: stats.ct ? 'ct' : 'image',
        range: stats.range,
        window: stats.window,
        labels,
        overlays: Object.fromEntries(OVERLAY_KINDS.map((k) => [k, !!overlayBlob(pred, k)])),
        versions: versions.map((v) => ({ version: v.version, origin: v.origin, author: v.username, note: v.note, createdAt: v.created_at })),
      };
    },
  );

  app.get<{ Querystring: { dataset: string; since: string } }>(
    '/api/viewer/progress',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['viewer'],
        summary: 'Review progress of a data set: cases, cases accepted or rejected, and the cases you decided since a time (e.g. your local midnight)',
        security: secured,
        querystring: { type: 'object', required: ['dataset', 'since'], properties: { dataset: { type: 'string', maxLength: 100 }, since: { type: 'string', format: 'date-time' } } },
        response: { 200: objectResponse('progress', { total: { type: 'integer' }, done: { type: 'integer' }, doneByMeSince: { type: 'integer' } }), ...errorResponses },
      },
    },
    async (req) => reviewProgress(db, req.query.dataset, userOf(req).id, new Date(req.query.since).toISOString()),
  );

  app.get<{ Params: { id: string }; Querystring: { axis: SliceAxis; index?: number; version?: number; layers: string; image: 'raw' | 'u8'; low?: number; high?: number; x?: number; y?: number; w?: number; h?: number } }>(
    '/api/viewer/masks/:id/slice',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['viewer'],
        summary: 'One slice (or a tile: x, y, w, h) of the image, a mask version\'s labels and the overlays, in one binary response (see the module docs of src/server/routes/viewer.ts for the format)',
        security: secured,
        params: idParams,
        querystring: {
          type: 'object',
          properties: {
            axis: axisParam,
            index: { type: 'integer', minimum: 0, description: 'slice index (default: the middle one)' },
            version: versionParam,
            layers: { type: 'string', maxLength: 100, default: 'image,labels', pattern: '^(image|labels|heatmap|uncertainty|attention)(,(image|labels|heatmap|uncertainty|attention))*$', description: 'comma-separated: image, labels, heatmap, uncertainty, attention' },
            image: { type: 'string', enum: ['raw', 'u8'], default: 'raw', description: 'raw: the stored voxel type; u8: windowed to [low, high] (default the case\'s window)' },
            low: { type: 'number' },
            high: { type: 'number' },
            x: { type: 'integer', minimum: 0 },
            y: { type: 'integer', minimum: 0 },
            w: { type: 'integer', minimum: 1 },
            h: { type: 'integer', minimum: 1 },
          },
        },
      },
    },
    async (req, reply: FastifyReply) => {
      const q = req.query;
      const { mask, img, shape } = await load(req.params.id);
      const depth = sliceDepth(shape, q.axis);
      const index = q.index ?? Math.floor(depth / 2);
      if (index >= depth) throw new MedmaskError('USAGE', `slice index ${index} is outside 0…${depth - 1} along ${q.axis}`);
      const [width, height] = sliceDims(shape, q.axis);
      const tile = { x: q.x ?? 0, y: q.y ?? 0, w: q.w ?? width - (q.x ?? 0), h: q.h ?? height - (q.y ?? 0) };
      if (tile.x + tile.w > width || tile.y + tile.h > height) throw new MedmaskError('USAGE', `tile ${tile.x},${tile.y} ${tile.w}×${tile.h} does not fit the ${width}×${height} slice`);
      const version = q.version ?? mask.current_version;
      if (version > mask.current_version) throw new MedmaskError('NOT_FOUND', `mask ${mask.id} has no version ${version}`, { details: { currentVersion: mask.current_version } });
      const names = [...new Set(q.layers.split(','))];
      const out: { name: string; data: VoxelArray }[] = [];
      let pred: Awaited<ReturnType<typeof predictionOf>>;
      let window: [number, number] | undefined;
      for (const name of names) {
        if (name === 'image') {
          let data: VoxelArray;
          if (q.axis === 'z' && img.components === 1) data = crop(await axialPlane(ctx, img.blob, index), width, tile);
          else {
            let plane = img.components === 1 ? await sliceOf(ctx, img.blob, q.axis, index) : null;
            if (!plane) {
              const vol = await volumeOf(ctx, img.blob);
              void ctx.slices.extend(img.blob, vol, q.axis); // this orientation from disk next time
              plane = toGrey(extractSlice(vol, q.axis, index));
            }
            data = crop(plane, width, tile);
          }
          if (q.image === 'u8') {
            window = q.low !== undefined && q.high !== undefined ? [q.low, q.high] : (ctx.caches.stats.get(img.blob) ?? (await imageStatsOf(ctx, img, shape[2]))).window;
            const g = new Uint8Array(data.length);
            windowToGrey(data as never, g, window);
            data = g;
          }
          out.push({ name, data });
        } else if (name === 'labels') {
          out.push({ name, data: crop(await labelSlicer(ctx, img, mask, version)(q.axis, index), width, tile) });
        } else {
          pred ??= await predictionOf(ctx, mask);
          const b = overlayBlob(pred, name as OverlayKind);
          if (!b) continue; // absent overlays are simply left out (the header lists what is there)
          out.push({ name, data: crop(await overlaySlice(ctx, b, img, q.axis, index), width, tile) });
        }
      }
      void reply.type('application/x-medmask-slice').header('cache-control', 'private, no-cache');
      return reply.send(packSlice({ axis: q.axis, index, depth, width, height, tile, version, ...(window ? { window } : {}) }, out));
    },
  );

  app.get<{ Params: { id: string }; Querystring: { axis: SliceAxis; from: number; to: number; version?: number } }>(
    '/api/viewer/masks/:id/label-planes',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['viewer'],
        summary: 'Label planes from..to (inclusive) along an axis, concatenated raw uint8 (for a fill through a slice range)',
        security: secured,
        params: idParams,
        querystring: { type: 'object', required: ['from', 'to'], properties: { axis: axisParam, from: { type: 'integer', minimum: 0 }, to: { type: 'integer', minimum: 0 }, version: versionParam } },
      },
    },
    async (req, reply) => {
      const q = req.query;
      const { mask, img, shape } = await load(req.params.id);
      const depth = sliceDepth(shape, q.axis);
      if (q.from > q.to || q.to >= depth) throw new MedmaskError('USAGE', `planes ${q.from}…${q.to} are not a range inside 0…${depth - 1} along ${q.axis}`);
      const [w, h] = sliceDims(shape, q.axis);
      const version = q.version ?? mask.current_version;
      const out = Buffer.alloc(w * h * (q.to - q.from + 1));
      const slice = labelSlicer(ctx, img, mask, version);
      for (let k = q.from; k <= q.to; k++) out.set(await slice(q.axis, k), (k - q.from) * w * h);
      void reply.type('application/octet-stream').header('x-width', String(w)).header('x-height', String(h)).header('x-version', String(version));
      return reply.send(out);
    },
  );

  app.get<{ Params: { id: string }; Querystring: { kind?: OverlayKind; threshold: number; minVoxels: number; max: number } }>(
    '/api/viewer/masks/:id/regions',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['viewer'],
        summary: 'Flagged regions: connected components of the attention map (or heat map / uncertainty) at or above a threshold, most attention first, with bounds, centroid and peak voxel to jump to',
        security: secured,
        params: idParams,
        querystring: {
          type: 'object',
          properties: {
            kind: { type: 'string', enum: [...OVERLAY_KINDS], description: 'default: attention, else uncertainty, else heatmap' },
            threshold: { type: 'number', minimum: 0, maximum: 1, default: 0.5, description: 'fraction of the map\'s 0…1 range' },
            minVoxels: { type: 'integer', minimum: 1, default: 10 },
            max: { type: 'integer', minimum: 1, maximum: 1000, default: 50 },
          },
        },
      },
    },
    async (req) => {
      const { mask, img, shape } = await load(req.params.id);
      const pred = await predictionOf(ctx, mask);
      const kind = req.query.kind ?? (['attention', 'uncertainty', 'heatmap'] as const).find((k) => overlayBlob(pred, k));
      const blob = kind ? overlayBlob(pred, kind) : null;
      if (!kind || !blob) return { kind: kind ?? null, regions: [] };
      const thr = Math.max(1, Math.round(req.query.threshold * 255));
      const key = `${blob}:${thr}:${req.query.minVoxels}:${req.query.max}`;
      // regions are kept beside the overlay's slice files too: no decode after a restart
      const sidecar = `regions-${thr}-${req.query.minVoxels}-${req.query.max}`;
      let regions = ctx.caches.regions.get(key) ?? (await ctx.slices.getJson<ReturnType<typeof flaggedRegions>>(`${blob}-u8`, sidecar));
      if (!regions) {
        regions = await ctx.regions.regions(await overlayU8(ctx, blob, img), shape, { threshold: thr, minVoxels: req.query.minVoxels, maxRegions: req.query.max });
        void ctx.slices.putJson(`${blob}-u8`, sidecar, regions);
      }
      ctx.caches.regions.set(key, regions);
      return { kind, threshold: req.query.threshold, regions: regions.map((r) => ({ ...r, peak: r.peak / 255, mean: r.mean / 255 })) };
    },
  );

  app.post<{ Params: { id: string }; Body: EditsBody }>(
    '/api/viewer/masks/:id/edits',
    {
      config: { permission: 'mask:edit' },
      bodyLimit: ctx.settings.maxUploadBytes,
      schema: {
        tags: ['viewer'],
        summary: 'Save the viewer\'s edits as a new version: per-plane runs [start, length, value] applied on baseVersion; a stale version gets 409 with the current one and the edit is kept as a draft',
        security: secured,
        params: idParams,
        body: {
          type: 'object',
          required: ['baseVersion', 'planes'],
          additionalProperties: false,
          properties: {
            baseVersion: { type: 'integer', minimum: 0 },
            onto: { type: 'integer', minimum: 0 },
            note: { type: 'string', maxLength: 2000 },
            planes: {
              type: 'array',
              maxItems: 100000,
              items: { type: 'object', required: ['z', 'runs'], additionalProperties: false, properties: { z: { type: 'integer', minimum: 0 }, runs: { type: 'array', items: { type: 'integer' } } } },
            },
          },
        },
        response: {
          201: objectResponse('saved as a new version', { maskId: { type: 'string' }, version: { type: 'integer' }, versionId: { type: 'string' }, changed: { type: 'integer' } }),
          409: { ...errorResponses[400], description: 'stale version: details.currentVersion, details.draftId (the edit is kept as a draft), details.current (who saved it, when)' },
          ...errorResponses,
        },
      },
    },
    async (req, reply) => {
      const b = req.body;
      const { mask, img, shape } = await load(req.params.id);
      const plane = shape[0] * shape[1];
      const onto = b.onto ?? b.baseVersion;
      if (b.baseVersion > mask.current_version) throw new MedmaskError('USAGE', `baseVersion ${b.baseVersion} is newer than the current version ${mask.current_version}`, { hint: 'send the version you loaded' });
      if (onto < b.baseVersion) throw new MedmaskError('USAGE', `onto ${onto} must not be older than baseVersion ${b.baseVersion}`);
      const seen = new Set<number>();
      for (const p of b.planes) {
        if (p.z >= shape[2]) throw new MedmaskError('USAGE', `plane z=${p.z} is outside 0…${shape[2] - 1}`);
        if (seen.has(p.z)) throw new MedmaskError('USAGE', `plane z=${p.z} appears twice`);
        seen.add(p.z);
        checkRuns(p.runs, plane, `plane z=${p.z}`);
      }
      // Only the edited planes are read (from the base's slice files), changed and compressed; the
      // base's other planes are copied as compressed (label-blobs.ts). No whole volume is decoded.
      const baseBlob = b.baseVersion ? (await versionRow(ctx, mask, b.baseVersion)).blob : null;
      const planes = new Map<number, Uint8Array>();
      let changed = 0;
      for (const p of b.planes) {
        const cur = baseBlob ? await sliceOf(ctx, baseBlob, 'z', p.z) : null;
        const data = cur ? (cur as Uint8Array) : baseBlob ? extractSlice(labelVolume(img, (await versionLabels(ctx, mask, b.baseVersion))!.data), 'z', p.z).data as Uint8Array : new Uint8Array(plane);
        changed += applyRuns(data, 0, p.runs);
        planes.set(p.z, data);
      }
      // the whole new volume: for a base written elsewhere, and for the new version's slice files
      let whole: Promise<Uint8Array> | undefined;
      const wholeNew = () => (whole ??= (async () => {
        const base = await labelsWhole(ctx, mask, b.baseVersion);
        const data = base ?? new Uint8Array(plane * shape[2]);
        for (const [z, p] of planes) data.set(p, z * plane);
        return data;
      })());
      const { hash } = await saveLabelPlanes({
        blobs: ctx.blobs,
        index: { get: (h) => labelPlanes(db, h), put: (h, m) => recordLabelPlanes(db, h, m) },
        header: () => encodeNifti(labelVolume(img, new Uint8Array(plane * shape[2])), { labelMap: true }).subarray(0, 352),
        shape,
        base: baseBlob,
        planes,
        whole: wholeNew,
      });
      // the new version's slice files, in the slice worker (its voxels handed over once read)
      void ctx.slices.prepareFrom(hash, shape, wholeNew);
      const r = await saveMaskVersion(db, { maskId: mask.id, baseVersion: onto, blob: hash, authorId: userOf(req).id, origin: 'human', note: b.note ?? null });
      if (!r.ok) {
        req.auditDetails = { conflict: true, baseVersion: b.baseVersion, onto, currentVersion: r.currentVersion, draftId: r.draftId };
        throw await staleSaveError(db, mask.id, onto, r, 'look at the current version; keep yours (save again with onto set to it), take theirs, or re-apply your edits on it');
      }
      req.auditDetails = { version: r.version, baseVersion: b.baseVersion, onto, planes: b.planes.length, voxels: b.planes.reduce((s, p) => s + runsVoxels(p.runs), 0), changed };
      return reply.code(201).send({ maskId: mask.id, version: r.version, versionId: r.versionId, changed });
    },
  );

  webUiRoutes(app);
}
