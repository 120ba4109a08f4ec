/**
 * `s3://bucket/prefix` addresses, without loading the AWS SDK (the CLI parses `--blobs` on every
 * start; the SDK is loaded only when an S3 store is opened).
 * @module
 */
import { MedmaskError } from '../core/errors.js';

/** Bucket and key prefix of an `s3://bucket/prefix` address. */
export interface S3Location {
  bucket: string;
  /** Key prefix without leading or trailing slash ("" for the bucket's root). */
  prefix: string;
}

/** True for `s3://…` addresses. */
export function isS3Url(spec: string): boolean {
  return /^s3:\/\//i.test(spec);
}

/**
 * Parse `s3://bucket/prefix`.
 * @example
 * parseS3Url('s3://medmask-blobs/site-a'); // { bucket: 'medmask-blobs', prefix: 'site-a' }
 */
export function parseS3Url(spec: string): S3Location {
  const m = /^s3:\/\/([^/?#]+)\/?([^?#]*)$/i.exec(spec);
  // S3 bucket naming rules (3–63 of lower-case letters, digits, dots, hyphens).
  if (!m || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(m[1]!)) {
    throw new MedmaskError('USAGE', `blob store "${spec}" is not an s3://bucket/prefix address`, { hint: 'e.g. --blobs s3://medmask-blobs/site-a (bucket names: 3–63 lower-case letters, digits, dots, hyphens)' });
  }
  const prefix = m[2]!.replace(/^\/+|\/+$/g, '');
  if (prefix.split('/').some((p) => p === '.' || p === '..')) throw new MedmaskError('USAGE', `blob store "${spec}": the prefix must not contain "." or ".." parts`);
  return { bucket: m[1]!, prefix };
}

