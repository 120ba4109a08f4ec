/**
 * Content-addressed blob storage: images, masks, heat maps and models are stored once under the
 * SHA-256 of their bytes. {@link BlobStore} is the seam (`blob-store-s3.ts` implements it on
 * S3-compatible object storage); {@link FsBlobStore} keeps them in a folder and writes atomically — bytes go to `tmp/`,
 * are flushed, then renamed to `aa/bb/<hash>` — so a crash never leaves a half-written blob under
 * a hash name, and a database row only ever references a blob whose write has completed.
 * @module
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { MedmaskError } from '../core/errors.js';
import { removeDeadEntries } from './dead-entries.js';

/** A stored blob. */
export interface BlobRef {
  /** SHA-256, 64 lower-case hex digits. */
  hash: string;
  size: number;
}

/** Options for {@link BlobStore.putStream}. */
export interface PutStreamOptions {
  /** Refuse (TOO_LARGE) streams longer than this many bytes. */
  maxBytes?: number;
}

/** Where blobs live. Every method validates the hash, so none can address anything else. */
export interface BlobStore {
  /** Store bytes; returns their hash (storing the same bytes twice is a no-op). */
  put(bytes: Uint8Array): Promise<BlobRef>;
  /** Store a stream, hashing while writing; the blob appears only once the stream ended. */
  putStream(stream: Readable, opts?: PutStreamOptions): Promise<BlobRef>;
  /** The bytes of a blob (NOT_FOUND when absent). */
  get(hash: string): Promise<Buffer>;
  /** A read stream of a blob (NOT_FOUND when absent). */
  stream(hash: string): Promise<Readable>;
  has(hash: string): Promise<boolean>;
  /** Every stored hash (for integrity checks and garbage collection). */
  list(): AsyncIterable<string>;
  /** Every stored blob with its size and last-modified time (for garbage collection). */
  entries(): AsyncIterable<BlobEntry>;
  /** Remove a blob (no-op when absent). Only the garbage collector calls this. */
  delete(hash: string): Promise<void>;
  /** Remove temporary files left by a crash. */
  cleanup(): Promise<number>;
  /** Where the blobs live, for messages: a folder path or `s3://bucket/prefix` (never a secret). */
  readonly description: string;
  /**
   * The store's identity marker (a small named object beside the blobs, not a blob), or null when
   * none was written yet. {@link checkBlobStoreIdentity} uses it to tell one deployment's store
   * from another's however it is mounted or addressed.
   */
  readMarker(): Promise<string | null>;
  /** Write the identity marker (replacing any). */
  writeMarker(text: string): Promise<void>;
}

/** One stored blob, as {@link BlobStore.entries} lists it. */
export interface BlobEntry {
  hash: string;
  size: number;
  /** When the blob was last written. */
  modified: Date;
}

/** Name of the identity marker beside the blobs (folder file or object key under the prefix). */
export const MARKER_NAME = 'medmask-blob-store.json';

const HASH = /^[0-9a-f]{64}$/;

/** Throw unless `hash` is a SHA-256 hex digest. */
export function checkHash(hash: string): void {
  if (typeof hash !== 'string' || !HASH.test(hash)) throw new MedmaskError('USAGE', `"${String(hash).slice(0, 80)}" is not a blob hash (64 hex digits)`);
}

/** SHA-256 hex of bytes. */
export function sha256(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Options for {@link FsBlobStore}. */
export interface FsBlobStoreOptions {
  /** fsync each blob before it is renamed into place (default true: durable across power loss). */
  fsync?: boolean;
}

/**
 * Blobs in a folder: `<dir>/aa/bb/<hash>`, temporary files in `<dir>/tmp/`.
 * @example
 * const blobs = new FsBlobStore('medmask-data/blobs');
 * const { hash } = await blobs.put(new TextEncoder().encode('hello'));
 * (await blobs.get(hash)).toString(); // 'hello'
 */
export class FsBlobStore implements BlobStore {
  readonly dir: string;
  readonly description: string;
  private readonly fsync: boolean;
  constructor(dir: string, opts: FsBlobStoreOptions = {}) {
    this.dir = dir;
    this.description = dir;
    this.fsync = opts.fsync ?? true;
  }

  /** The file of a blob (validated hash). */
  pathOf(hash: string): string {
    checkHash(hash);
    return join(this.dir, hash.slice(0, 2), hash.slice(2, 4), hash);
  }

  private async tmpPath(): Promise<string> {
    const tmp = join(this.dir, 'tmp');
    await mkdir(tmp, { recursive: true });
    return join(tmp, `${process.pid}-${randomBytes(8).toString('hex')}`);
  }

  private async commit(tmp: string, hash: string): Promise<void> {
    const dest = this.pathOf(hash);
    try {
      await mkdir(join(this.dir, hash.slice(0, 2), hash.slice(2, 4)), { recursive: true });
      // rename replaces atomically; a concurrent put of the same bytes renames identical content.
      await rename(tmp, dest);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  }

  /** Refresh a stored blob's time (the same bytes stored again), so the collector's grace period counts from now. */
  private async touch(hash: string): Promise<void> {
    const now = new Date();
    await utimes(this.pathOf(hash), now, now).catch(() => {});
  }

  async put(bytes: Uint8Array): Promise<BlobRef> {
    const hash = sha256(bytes);
    if (await this.has(hash)) {
      await this.touch(hash);
      return { hash, size: bytes.byteLength };
    }
    const tmp = await this.tmpPath();
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(bytes);
      if (this.fsync) await fh.sync();
    } catch (e) {
      await fh.close();
      await rm(tmp, { force: true });
      throw e;
    }
    await fh.close();
    await this.commit(tmp, hash);
    return { hash, size: bytes.byteLength };
  }

  async putStream(stream: Readable, opts: PutStreamOptions = {}): Promise<BlobRef> {
    const tmp = await this.tmpPath();
    let spooled: SpooledFile;
    try {
      spooled = await spoolToFile(stream, tmp, opts);
      if (this.fsync) {
        const fh = await open(tmp, 'r+');
        await fh.sync();
        await fh.close();
      }
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
    const { sha256: hash, size } = spooled;
    if (await this.has(hash)) {
      await rm(tmp, { force: true });
      await this.touch(hash);
    } else await this.commit(tmp, hash);
    return { hash, size };
  }

  async get(hash: string): Promise<Buffer> {
    try {
      return await readFile(this.pathOf(hash));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new MedmaskError('NOT_FOUND', `blob ${hash} is missing from the blob store`, { hint: 'the blob folder may have been moved or pruned' });
      throw e;
    }
  }

  async stream(hash: string): Promise<Readable> {
    const p = this.pathOf(hash);
    if (!(await this.has(hash))) throw new MedmaskError('NOT_FOUND', `blob ${hash} is missing from the blob store`);
    return createReadStream(p);
  }

  async has(hash: string): Promise<boolean> {
    try {
      return (await stat(this.pathOf(hash))).isFile();
    } catch {
      return false;
    }
  }

  async *list(): AsyncIterable<string> {
    let top: string[];
    try {
      top = await readdir(this.dir);
    } catch {
      return;
    }
    for (const a of top.filter((n) => /^[0-9a-f]{2}$/.test(n)).sort()) {
      for (const b of (await readdir(join(this.dir, a))).filter((n) => /^[0-9a-f]{2}$/.test(n)).sort()) {
        for (const f of (await readdir(join(this.dir, a, b))).sort()) if (HASH.test(f)) yield f;
      }
    }
  }

  async *entries(): AsyncIterable<BlobEntry> {
    for await (const hash of this.list()) {
      try {
        const st = await stat(this.pathOf(hash));
        yield { hash, size: st.size, modified: st.mtime };
      } catch {
        // removed between the listing and the stat (another collector): not a blob any more
      }
    }
  }

  async delete(hash: string): Promise<void> {
    await rm(this.pathOf(hash), { force: true });
  }

  async readMarker(): Promise<string | null> {
    try {
      return await readFile(join(this.dir, MARKER_NAME), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  async writeMarker(text: string): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const tmp = await this.tmpPath();
    await writeFile(tmp, text, { mode: 0o644 });
    await rename(tmp, join(this.dir, MARKER_NAME));
  }

  async cleanup(): Promise<number> {
    return removeDeadSpool(join(this.dir, 'tmp'));
  }
}

/** What {@link spoolToFile} wrote. */
export interface SpooledFile {
  sha256: string;
  /** Base64 MD5 (only with `md5: true`). */
  md5?: string;
  size: number;
}

/**
 * Write a stream to a file while hashing it, refusing (TOO_LARGE) past `maxBytes`. On failure the
 * stream is destroyed and the file closed; the caller removes the file.
 */
export async function spoolToFile(stream: Readable, path: string, opts: PutStreamOptions & { md5?: boolean } = {}): Promise<SpooledFile> {
  const h = createHash('sha256');
  const md5 = opts.md5 ? createHash('md5') : undefined;
  let size = 0;
  const out = createWriteStream(path);
  try {
    for await (const chunk of stream) {
      const buf = chunk as Buffer;
      size += buf.length;
      if (opts.maxBytes !== undefined && size > opts.maxBytes) {
        throw new MedmaskError('TOO_LARGE', `the upload is larger than ${opts.maxBytes} bytes`, { hint: 'split it, or raise the server\'s --max-upload-mb' });
      }
      h.update(buf);
      md5?.update(buf);
      if (!out.write(buf)) await new Promise<void>((r) => out.once('drain', () => r()));
    }
    await new Promise<void>((res, rej) => out.end((e?: Error | null) => (e ? rej(e) : res())));
  } catch (e) {
    stream.destroy();
    // Wait until the write stream has really closed: its file is opened asynchronously, so
    // removing it before then races the open and leaves the temporary file behind.
    if (!out.closed) await new Promise<void>((r) => {
      out.once('close', () => r());
      out.destroy();
    });
    throw e;
  }
  return { sha256: h.digest('hex'), ...(md5 ? { md5: md5.digest('base64') } : {}), size };
}

/**
 * Remove `<pid>-…` temporary files in `dir` whose process is gone (left by a crash); files of
 * live processes (another server or worker writing) stay.
 * @returns how many were removed
 */
export function removeDeadSpool(dir: string): Promise<number> {
  // Only spool files live here: one without a pid in its name is debris too.
  return removeDeadEntries(dir, (name) => Number(name.split('-')[0]) || null, { unnamed: 'remove' });
}
