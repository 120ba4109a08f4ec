/**
 * Opening the blob store a deployment names: a folder path (local disk or a network mount) or
 * `s3://bucket/prefix` (S3-compatible object storage, see `blob-store-s3.ts`).
 * @module
 */
import { resolve } from 'node:path';
import { FsBlobStore, type BlobStore } from './blob-store.js';
import type { S3BlobStoreOptions } from './blob-store-s3.js';
import { isS3Url, parseS3Url } from './s3-url.js';

/** Options for {@link openBlobStore}. */
export interface OpenBlobStoreOptions {
  /** Folder stores: fsync each blob (default true). */
  fsync?: boolean;
  /** S3 stores: client options and the local spool folder. */
  s3?: S3BlobStoreOptions;
}

/**
 * The blob store named by `spec`; an S3 store is checked to answer (ENVIRONMENT error otherwise).
 * @param spec - a folder, or `s3://bucket/prefix`
 * @example
 * const blobs = await openBlobStore(process.env.MEDMASK_BLOBS ?? 'medmask-data/blobs');
 */
export async function openBlobStore(spec: string, opts: OpenBlobStoreOptions = {}): Promise<BlobStore> {
  if (isS3Url(spec)) {
    const loc = parseS3Url(spec);
    // The AWS SDK is loaded only for an S3 store.
    const { S3BlobStore } = await import('./blob-store-s3.js');
    const s3 = new S3BlobStore(loc, opts.s3);
    try {
      await s3.ping();
    } catch (e) {
      s3.close();
      throw e;
    }
    return s3;
  }
  return new FsBlobStore(resolve(spec), opts.fsync === undefined ? {} : { fsync: opts.fsync });
}

/** A folder path resolved, an `s3://` address as given (for configuration). */
export function normalizeBlobSpec(spec: string): string {
  return isS3Url(spec) ? spec : resolve(spec);
}
