/**
 * Upload of a whole Medical Segmentation Decathlon / nnU-Net data set in one request: the folder as
 * a tar (optionally gzip-compressed) stream. The archive is never held in memory: it is inflated and
 * unpacked entry by entry (tar-stream) into a fresh temporary folder, with caps on every entry, on
 * the total inflated size and on the number of entries; only `dataset.json`, `imagesTr/`,
 * `labelsTr/` and `imagesTs/` are kept (other entries are listed as ignored), under names checked
 * like any uploaded file name — an entry's path is never used as given. The folder is then read
 * as a data set (`readSegmentationDataset`), cases are imported one by one (images de-identified
 * as any upload, label maps checked against their image's grid and the label ids of dataset.json),
 * and `dataset.json`'s `medmask.cases` (source and labelled organs per case) are recorded: the
 * source as the label's `source:<name>` (what the atlas job ranks per source), both on the image's
 * metadata. All or nothing: a failing case removes the rows this request added.
 * @module
 */
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { MedmaskError, isMedmaskError } from '../core/errors.js';
import { checkLabelMap, readSegmentationDataset, type SegmentationDataset } from '../io/dataset.js';
import { readVolume } from '../io/index.js';
import { deleteImportedImages, takenImageNames } from '../store/images.js';
import { addMaskLabel } from '../store/labels.js';
import { insertImage, labelVolume, putVolume } from '../store/volumes.js';
import type { ServerContext } from './context.js';
import { checkFileName } from './upload.js';

/** Folders of a data set that an upload keeps. */
const KEPT = ['imagesTr', 'labelsTr', 'imagesTs'] as const;

/** Limits of {@link receiveDatasetArchive}. */
export interface ArchiveLimits {
  /** Largest single entry, bytes. */
  maxEntryBytes: number;
  /** Largest total of all entries after inflation, bytes. */
  maxTotalBytes: number;
  /** Most entries. */
  maxEntries: number;
}

/** A source name: letters, digits, `.`, `_`, `-` (1–100), as used in `source:<name>` labels. */
export function checkSourceName(s: unknown, where: string): string {
  if (typeof s !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(s)) {
    throw new MedmaskError('USAGE', `${where}: source ${JSON.stringify(String(s).slice(0, 120))} must be 1–100 letters, digits, ".", "_" or "-" (starting with a letter or digit)`, { hint: 'e.g. "site-a" or "BTCV"' });
  }
  return s;
}

/** Organ names of a `labelled` list (each 1–100 characters, at most 256). */
export function checkLabelled(v: unknown, where: string): string[] {
  const list = typeof v === 'string' ? v.split(',').map((x) => x.trim()).filter(Boolean) : v;
  if (!Array.isArray(list) || list.length > 256 || !list.every((x) => typeof x === 'string' && x.length >= 1 && x.length <= 100)) {
    throw new MedmaskError('USAGE', `${where}: labelled must be a list of organ names (at most 256, each 1–100 characters)`, { hint: 'e.g. ["liver", "spleen"] or "liver,spleen"' });
  }
  return list as string[];
}

/**
 * The body as a stream of tar bytes: gzip is recognised by its first two bytes (and inflated as a
 * stream), anything else is taken as a plain tar.
 */
async function tarStages(body: Readable): Promise<[Readable, ...Transform[]]> {
  const it = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const first = await it.next();
  if (first.done || !first.value.length) throw new MedmaskError('USAGE', 'the request body is empty', { hint: 'send the data set folder as a .tar.gz (medmask upload does this)' });
  const head = first.value;
  const rest = Readable.from((async function* () {
    yield head;
    for (;;) {
      const n = await it.next();
      if (n.done) return;
      yield n.value;
    }
  })());
  return head[0] === 0x1f && head[1] === 0x8b ? [rest, createGunzip()] : [rest];
}

/** Where an entry goes inside the data-set folder, or null when the upload ignores it. */
function placeOf(entryName: string): { sub: string | null; name: string } | null {
  const parts = entryName.replace(/\\/g, '/').split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) throw new MedmaskError('USAGE', `archive entry ${JSON.stringify(entryName.slice(0, 200))} climbs out of the data set folder`, { hint: 'make the archive from inside or just above the data set folder' });
  // One optional top folder (tar -C parent DatasetXXX): drop it.
  const rel = parts.length >= 2 && !KEPT.includes(parts[0] as (typeof KEPT)[number]) && parts[0] !== 'dataset.json' ? parts.slice(1) : parts;
  if (rel.length === 1 && rel[0] === 'dataset.json') return { sub: null, name: 'dataset.json' };
  if (rel.length === 2 && KEPT.includes(rel[0] as (typeof KEPT)[number])) return { sub: rel[0]!, name: checkFileName(rel[1]!) };
  return null;
}

/**
 * Unpack a tar / tar.gz data-set stream into a new folder under `tmpDir`.
 * @returns the folder (remove it when done), the entries kept, and those ignored
 * @throws MedmaskError TOO_LARGE past a limit, CORRUPT_FILE for a broken archive, USAGE for a bad entry name
 */
export async function receiveDatasetArchive(body: Readable, tmpDir: string, limits: ArchiveLimits): Promise<{ dir: string; kept: number; ignored: string[] }> {
  await mkdir(tmpDir, { recursive: true });
  const dir = await mkdtemp(join(tmpDir, `dataset-${process.pid}-`));
  const root = join(dir, 'ds');
  await mkdir(root);
  for (const sub of KEPT) await mkdir(join(root, sub));
  const ignored: string[] = [];
  let kept = 0;
  let entries = 0;
  let total = 0;
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;
  const extract = tar.extract();
  // While the pipeline runs it hears every error; an entry failing after it has given up (the body
  // already refused as too large) must not become an uncaught exception.
  extract.on('error', () => {});
  extract.on('entry', (header, stream, next) => {
    // Destroying the extractor destroys the entry with the error; the error is reported once, by the pipeline.
    stream.on('error', () => {});
    void (async () => {
      entries++;
      if (entries > limits.maxEntries) throw new MedmaskError('TOO_LARGE', `the archive has more than ${limits.maxEntries} entries`, { hint: 'split the data set into several uploads' });
      // Every entry counts towards the total, kept or not: a huge ignored entry is refused too.
      const size = header.size ?? 0;
      if (size > limits.maxEntryBytes) throw new MedmaskError('TOO_LARGE', `${header.name.slice(0, 200)}: ${mib(size)} is more than the limit of ${mib(limits.maxEntryBytes)} per file`, { hint: 'raise the server\'s --max-upload-mb' });
      total += size;
      if (total > limits.maxTotalBytes) throw new MedmaskError('TOO_LARGE', `the data set unpacks to more than ${mib(limits.maxTotalBytes)}`, { hint: 'split it into several uploads, or raise the server\'s --max-upload-mb' });
      const place = header.type === 'file' ? placeOf(header.name) : null;
      if (!place) {
        if (header.type === 'file' || header.type === 'symlink' || header.type === 'link') ignored.push(header.name.slice(0, 200));
        stream.resume();
        await new Promise<void>((r) => stream.once('end', () => r()));
        return;
      }
      await pipeline(stream, createWriteStream(place.sub ? join(root, place.sub, place.name) : join(root, place.name)));
      kept++;
    })().then(() => next(), (e: unknown) => next(e as Error));
  });
  try {
    await pipeline([...(await tarStages(body)), extract]);
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    if (isMedmaskError(e)) throw e;
    throw new MedmaskError('CORRUPT_FILE', `the data-set archive cannot be read: ${(e as Error).message}`, { cause: e, hint: 'send a .tar or .tar.gz of the folder that holds dataset.json, imagesTr/ and labelsTr/' });
  }
  if (!kept) {
    await rm(dir, { recursive: true, force: true });
    throw new MedmaskError('DATASET_INVALID', 'the archive holds no dataset.json, imagesTr/, labelsTr/ or imagesTs/ entries', { hint: 'archive the data set folder itself, e.g. tar czf ds.tar.gz -C Dataset001_Abdomen .' });
  }
  return { dir, kept, ignored };
}

/** Per-case source and labelled organs from dataset.json's `medmask.cases`. */
export function caseOrigins(ds: SegmentationDataset): Map<string, { source?: string; labelled?: string[] }> {
  const out = new Map<string, { source?: string; labelled?: string[] }>();
  const mm = ds.json.medmask as { cases?: unknown } | undefined;
  if (mm === undefined) return out;
  if (!mm || typeof mm !== 'object' || !Array.isArray(mm.cases)) throw new MedmaskError('DATASET_INVALID', 'dataset.json: "medmask" must be an object with a "cases" list', { hint: '"medmask": { "cases": [{ "case": "case_0000", "source": "site-a", "labelled": ["liver"] }] }' });
  const ids = new Set(ds.cases.map((c) => c.id));
  for (const [i, raw] of (mm.cases as unknown[]).entries()) {
    const c = raw as { case?: unknown; source?: unknown; labelled?: unknown };
    const where = `dataset.json medmask.cases[${i}]`;
    if (typeof c?.case !== 'string' || !ids.has(c.case)) throw new MedmaskError('DATASET_INVALID', `${where}: case ${JSON.stringify(c?.case)} is not a case of the data set`, { hint: `cases are named by their files, e.g. ${[...ids].slice(0, 3).join(', ')}` });
    out.set(c.case, { ...(c.source !== undefined ? { source: checkSourceName(c.source, where) } : {}), ...(c.labelled !== undefined ? { labelled: checkLabelled(c.labelled, where) } : {}) });
  }
  return out;
}

/** What {@link importDataset} did. */
export interface DatasetImport {
  images: { id: string; name: string; case: string; split: 'train' | 'test'; source: string | null }[];
  labels: number;
  /** Cases per source ("default" for cases without one). */
  sources: Record<string, number>;
}

/**
 * Import an unpacked data set folder into a data set: one image per case (named `<case>.nii.gz`),
 * its label map as a mask label with its source. All or nothing.
 * @param o - `source`: for cases dataset.json gives none; `target`: the label's structure name
 */
export async function importDataset(ctx: ServerContext, root: string, o: { datasetId: string; userId: string; source?: string; target: string; onCase?: (done: number, total: number) => void }): Promise<DatasetImport> {
  const ds = await readSegmentationDataset(root);
  const origins = caseOrigins(ds);
  const multi = ds.cases.find((c) => c.images.length !== 1);
  if (multi) throw new MedmaskError('DATASET_INVALID', `case ${multi.id} has ${multi.images.length} channels; the upload takes one image per case`, { hint: 'upload single-channel data sets (e.g. CT), or one channel per data set' });
  const nameOf = (id: string) => `${id}.nii.gz`;
  const taken = await takenImageNames(ctx.store.db, o.datasetId, ds.cases.map((c) => nameOf(c.id)));
  if (taken.length) throw new MedmaskError('CONFLICT', `the data set already has image(s) named ${taken.slice(0, 10).map((t) => `"${t}"`).join(', ')}${taken.length > 10 ? ', …' : ''}`, { hint: 'upload into a new data set, or remove those cases from the archive' });
  const known = Object.keys(ds.labels).map(Number);
  const added: string[] = [];
  const out: DatasetImport = { images: [], labels: 0, sources: {} };
  try {
    for (const [i, c] of ds.cases.entries()) {
      const origin = origins.get(c.id) ?? {};
      const source = origin.source ?? o.source ?? null;
      const read = async (path: string, what: string) => {
        try {
          return await readVolume(path, { uidSalt: ctx.settings.uidSalt });
        } catch (e) {
          const msg = isMedmaskError(e) ? e.message.split(path).join(what) : (e as Error).message;
          throw new MedmaskError(isMedmaskError(e) ? e.code : 'CORRUPT_FILE', `${what}: ${msg.startsWith(what) ? msg.slice(what.length).replace(/^:\s*/, '') : msg}`, { cause: e });
        }
      };
      const imgFile = c.images[0]!.slice(root.length + 1);
      const volume = await read(c.images[0]!, imgFile);
      volume.meta = { ...volume.meta, ...(source ? { dataSource: source } : {}), ...(origin.labelled ? { labelled: origin.labelled } : {}) };
      const { image, created } = await insertImage(ctx.store.db, ctx.blobs, { datasetId: o.datasetId, name: nameOf(c.id), volume, format: String(volume.meta.format ?? 'nifti'), createdBy: o.userId });
      if (!created) throw new MedmaskError('CONFLICT', `the data set already has an image named "${nameOf(c.id)}" (uploaded at the same time)`);
      added.push(image.id);
      // slice files made now, in the slice worker, so the viewer never decodes this image
      void ctx.slices?.prepare(image.blob, () => ctx.blobs.get(image.blob));
      if (c.label) {
        const labFile = c.label.slice(root.length + 1);
        const lab = await read(c.label, labFile);
        checkLabelMap(volume, lab, known.length ? known : undefined, { image: imgFile, label: labFile });
        const data = new Uint8Array(lab.data.length);
        for (let k = 0; k < data.length; k++) {
          const x = lab.data[k]!;
          if (!(x >= 0 && x <= 255 && Number.isInteger(x))) throw new MedmaskError('DATASET_INVALID', `${labFile}: label values must be whole numbers 0…255, found ${x}`);
          data[k] = x;
        }
        const { hash } = await putVolume(ctx.blobs, labelVolume(image, data), true);
        void ctx.slices?.prepare(hash, () => ctx.blobs.get(hash));
        await addMaskLabel(ctx.store.db, { imageId: image.id, blob: hash, target: o.target, provenance: 'original', source, createdBy: o.userId });
        out.labels++;
      }
      out.images.push({ id: image.id, name: image.name, case: c.id, split: c.split, source });
      out.sources[source ?? 'default'] = (out.sources[source ?? 'default'] ?? 0) + 1;
      o.onCase?.(i + 1, ds.cases.length);
    }
  } catch (e) {
    // All or nothing: the rows of this request go; their blobs are left to `medmask admin gc`.
    await deleteImportedImages(ctx.store.db, added);
    throw e;
  }
  return out;
}
