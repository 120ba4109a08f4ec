/**
 * Uploads: multipart files are streamed to a fresh temporary folder under generated names
 * (`f00001.nii.gz` — a client's file name is only ever stored as text, never used as a path),
 * with a size limit on the whole request; then each is read with medmask's reader registry (DICOM is
 * de-identified on import by the DICOM reader: PS3.15 basic profile, UIDs remapped with the
 * installation's salt) and stored as a .nii.gz blob. The temporary folder is always removed.
 * A DICOM upload also keeps the series' de-identified headers (no pixel data, remapped UIDs) as one
 * gzip-compressed JSON blob, named by `meta.dicomHeaders` on the image: what a DICOM SEG export
 * references (study, frame of reference, series, instances).
 * @module
 */
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { gunzip as gunzipCb, gzip as gzipCb } from 'node:zlib';
import type { NaturalizedDataset } from 'dcmjs';
import type { FastifyRequest } from 'fastify';
import { MedmaskError, isMedmaskError } from '../core/errors.js';
import type { Volume } from '../core/volume.js';
import { probeDicom } from '../io/dicom-parse.js';
import { printable } from '../io/limits.js';
import { loadDicom, readVolume } from '../io/index.js';
import type { BlobStore } from '../store/blob-store.js';
import type { ServerContext } from './context.js';

/** A file received from a client. */
export interface UploadedFile {
  /** The client's file name (validated, display only). */
  name: string;
  /** Where it was written (a generated name). */
  path: string;
  size: number;
  isDicom: boolean;
}

/** Extensions kept on the generated name (readers probe by extension as well as content). */
const EXTS = ['.nii.gz', '.nii', '.png', '.jpg', '.jpeg', '.tif', '.tiff', '.dcm', '.dicom', '.nrrd', '.mha'];

/**
 * Check a client file name: a plain name, no folders, no control characters.
 * @throws MedmaskError USAGE naming the bad name
 * @example
 * checkFileName('scan.nii.gz'); // ok
 * checkFileName('../../etc/passwd'); // throws
 */
export function checkFileName(name: string): string {
  // Control characters and NUL, bidirectional overrides and isolates, zero-width characters: a name
  // must display as what it is (U+202E makes "gpj.exe" show as "exe.jpg").
  // eslint-disable-next-line no-control-regex
  if (!name || name.length > 255 || /[/\\\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/.test(name) || name === '.' || name === '..') {
    throw new MedmaskError('USAGE', `file name ${JSON.stringify(printable(name, 300))} is not allowed: it must be a plain name of at most 255 printable characters without "/", "\\", control characters or bidirectional overrides`, {
      hint: 'send the bare file name (e.g. "scan.nii.gz"); medmask never uses it as a path',
    });
  }
  return name;
}

function safeExt(name: string): string {
  const lower = name.toLowerCase();
  return EXTS.find((e) => lower.endsWith(e)) ?? '';
}

/**
 * Receive a multipart request's files and fields into a temporary folder.
 * @returns the files, the text fields and the folder (remove it with `rm` when done)
 */
export async function receiveMultipart(req: FastifyRequest, ctx: ServerContext, opts: { maxFiles?: number } = {}): Promise<{ files: UploadedFile[]; fields: Record<string, string>; dir: string }> {
  if (!req.isMultipart()) {
    throw new MedmaskError('UNSUPPORTED_FORMAT', `this route takes multipart/form-data (a file upload), not ${req.headers['content-type'] ?? 'no content type'}`, { hint: 'e.g. curl -F file=@scan.nii.gz -H "Authorization: Bearer …" URL' });
  }
  await mkdir(ctx.settings.tmpDir, { recursive: true });
  // The pid in the name lets a restarted server remove what a crashed one left (removeStaleTemp).
  const dir = await mkdtemp(join(ctx.settings.tmpDir, `upload-${process.pid}-`));
  const files: UploadedFile[] = [];
  const fields: Record<string, string> = {};
  let total = 0;
  try {
    // preservePath: see the client's name as sent, so a name with folders is refused, not silently cut.
    const parts = req.parts({ preservePath: true, limits: { fileSize: ctx.settings.maxUploadBytes, files: opts.maxFiles ?? 5000, fields: 50, fieldSize: 1 << 20, parts: (opts.maxFiles ?? 5000) + 50 } });
    for await (const part of parts) {
      if (part.type === 'file') {
        const name = checkFileName(part.filename);
        const path = join(dir, `f${String(files.length + 1).padStart(5, '0')}${safeExt(name)}`);
        await pipeline(part.file, createWriteStream(path));
        if (part.file.truncated) throw new MedmaskError('TOO_LARGE', `${name} is larger than the limit of ${(ctx.settings.maxUploadBytes / 2 ** 20).toFixed(0)} MiB`, { hint: 'raise the server\'s --max-upload-mb' });
        const fh = await open(path, 'r');
        const head = new Uint8Array(1024);
        const { bytesRead } = await fh.read(head, 0, 1024, 0);
        const size = (await fh.stat()).size;
        await fh.close();
        total += size;
        if (total > ctx.settings.maxUploadBytes) throw new MedmaskError('TOO_LARGE', `the files of this upload add up to more than ${(ctx.settings.maxUploadBytes / 2 ** 20).toFixed(0)} MiB`, { hint: 'send them in several requests, or raise the server\'s --max-upload-mb' });
        files.push({ name, path, size, isDicom: size > 0 && probeDicom(head.subarray(0, bytesRead), name) === true });
      } else {
        fields[part.fieldname] = String(part.value);
      }
    }
    if (!files.length) throw new MedmaskError('USAGE', 'the upload holds no file', { hint: 'send the file(s) as multipart parts, e.g. -F file=@scan.nii.gz' });
    return { files, fields, dir };
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
}

/** Re-throw a reader error with the client's file name in place of the temporary path. */
function renamed(e: unknown, path: string, name: string): unknown {
  if (!isMedmaskError(e)) {
    return new MedmaskError('CORRUPT_FILE', `${name}: cannot be read (${(e as Error)?.message ?? String(e)})`, { cause: e, hint: 'check that it is a complete NIfTI, NRRD/MHA, DICOM, PNG, JPEG or TIFF file' });
  }
  const fix = (s: string | undefined) => s?.split(path).join(name);
  return new MedmaskError(e.code, fix(e.message)!, { cause: e, ...(e.hint ? { hint: fix(e.hint)! } : {}), ...(e.details ? { details: JSON.parse(fix(JSON.stringify(e.details))!) as Record<string, unknown> } : {}) });
}

/** A volume read from an upload, with the name and format to record. */
export interface ReadUpload {
  name: string;
  format: string;
  volume: Volume;
}

/**
 * Read uploaded files into volumes: all DICOM files together as one series (a folder), every other
 * file as its own image. The DICOM volume's `meta.dicomHeaders` names the blob of its de-identified
 * headers ({@link putDicomHeaders}, written here).
 * @param fields - `seriesUid` picks one of several DICOM series; `name` names a single result
 */
export async function readUploads(up: { files: UploadedFile[]; fields: Record<string, string>; dir: string }, ctx: ServerContext): Promise<ReadUpload[]> {
  const out: ReadUpload[] = [];
  const dicom = up.files.filter((f) => f.isDicom);
  const other = up.files.filter((f) => !f.isDicom);
  for (const f of other) {
    if (f.size === 0) throw new MedmaskError('CORRUPT_FILE', `${f.name}: the file is empty`, { hint: 'upload the file again' });
    let volume: Volume;
    const opts = { uidSalt: ctx.settings.uidSalt, maxVoxels: ctx.settings.maxVoxels };
    try {
      // Off the event loop, within a time budget (decode-pool.ts); every reader checks the
      // declared size against maxVoxels before it inflates or allocates.
      volume = ctx.decoder ? await ctx.decoder.read(f.path, opts) : await readVolume(f.path, opts);
    } catch (e) {
      throw renamed(e, f.path, f.name);
    }
    out.push({ name: f.name, format: String(volume.meta.format ?? 'image'), volume });
  }
  if (dicom.length) {
    const series = join(up.dir, 'dicom');
    await mkdir(series);
    for (const f of dicom) await rename(f.path, join(series, f.path.split('/').pop()!));
    let volume: Volume;
    let headers: NaturalizedDataset[];
    try {
      const opts = { uidSalt: ctx.settings.uidSalt, maxVoxels: ctx.settings.maxVoxels, ...(up.fields.seriesUid ? { seriesUid: up.fields.seriesUid } : {}) };
      ({ volume, headers } = ctx.decoder ? await ctx.decoder.loadDicom(series, opts) : await loadDicom(series, opts));
    } catch (e) {
      throw renamed(e, series, dicom.length === 1 ? dicom[0]!.name : `the ${dicom.length} DICOM files`);
    }
    // De-identified by loadDicom (PS3.15 basic profile, UIDs remapped, pixel data removed): kept so
    // that a DICOM SEG export can reference the series. Stored before the image row names it.
    if (headers.length) volume.meta.dicomHeaders = (await putDicomHeaders(ctx.blobs, headers)).hash;
    const uid = String(volume.meta.seriesInstanceUid ?? '');
    const name = dicom.length === 1 ? dicom[0]!.name : `dicom-series-${uid.slice(-16) || 'unknown'}`;
    out.push({ name, format: 'dicom', volume });
  }
  if (up.fields.name) {
    if (out.length !== 1) throw new MedmaskError('USAGE', `the "name" field names one image, but the upload makes ${out.length}`, { hint: 'leave "name" out to use the file names' });
    out[0]!.name = checkFileName(up.fields.name);
  }
  return out;
}

const gzip = promisify(gzipCb);
const gunzip = promisify(gunzipCb);

/** Leave binary values (ArrayBuffer, typed arrays) out of the JSON: nothing that references a series needs them. */
function jsonSafe(_key: string, value: unknown): unknown {
  return value instanceof ArrayBuffer || ArrayBuffer.isView(value) ? undefined : value;
}

/**
 * Store a series' de-identified DICOM headers (as {@link loadDicom} returns them, in slice order)
 * as one gzip-compressed JSON blob: an array of naturalized datasets. Binary values are left out.
 * @returns the blob (its hash goes into the image's `meta.dicomHeaders`)
 * @example
 * const { volume, headers } = await loadDicom('ct/', { uidSalt });
 * volume.meta.dicomHeaders = (await putDicomHeaders(blobs, headers)).hash;
 */
export async function putDicomHeaders(blobs: BlobStore, headers: readonly NaturalizedDataset[]): Promise<{ hash: string; size: number }> {
  return blobs.put(await gzip(Buffer.from(JSON.stringify(headers, jsonSafe)), { level: 6 }));
}

/**
 * Read the headers {@link putDicomHeaders} stored.
 * @throws MedmaskError CORRUPT_FILE when the blob is not such a list
 * @example
 * const headers = await getDicomHeaders(blobs, String(meta.dicomHeaders));
 */
export async function getDicomHeaders(blobs: BlobStore, hash: string): Promise<NaturalizedDataset[]> {
  const bytes = await blobs.get(hash);
  const text = (bytes[0] === 0x1f && bytes[1] === 0x8b ? await gunzip(bytes) : bytes).toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new MedmaskError('CORRUPT_FILE', `DICOM header blob ${hash.slice(0, 12)} is not JSON`, { cause: e, hint: 'run GET /api/admin/integrity; upload the series again' });
  }
  if (!Array.isArray(parsed) || !parsed.every((h) => h && typeof h === 'object' && !Array.isArray(h))) {
    throw new MedmaskError('CORRUPT_FILE', `DICOM header blob ${hash.slice(0, 12)} is not a list of DICOM headers`, { hint: 'upload the series again' });
  }
  return parsed as NaturalizedDataset[];
}
