/**
 * Blobs in S3-compatible object storage (AWS S3, MinIO, Ceph RGW) through the AWS SDK for
 * JavaScript v3: `--blobs s3://bucket/prefix`. Same contract as the folder store: content-addressed
 * (`<prefix>/aa/bb/<sha256>`, the folder layout as keys), an object appears only once its bytes are
 * complete (a single PutObject is atomic in S3), every read is checked against its hash.
 *
 * Connection settings come from the AWS SDK's usual sources — `AWS_ACCESS_KEY_ID` /
 * `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, `AWS_PROFILE` and `~/.aws`, instance and
 * container roles, `AWS_REGION` — plus `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_S3`) for a
 * non-AWS service and `MEDMASK_S3_PATH_STYLE` (default: on when an endpoint is set, as MinIO and
 * Ceph RGW usually need).
 * @module
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { CopyObjectCommand, DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client, paginateListObjectsV2, type S3ClientConfig } from '@aws-sdk/client-s3';
import { MedmaskError } from '../core/errors.js';
import type { S3Location } from './s3-url.js';
import { MARKER_NAME, checkHash, removeDeadSpool, sha256, spoolToFile, type BlobEntry, type BlobRef, type BlobStore, type PutStreamOptions } from './blob-store.js';

export { isS3Url, parseS3Url, type S3Location } from './s3-url.js';

/** Options for {@link S3BlobStore}. */
export interface S3BlobStoreOptions {
  /** A ready client (tests; otherwise one is made by {@link s3ClientConfigFromEnv}). */
  client?: S3Client;
  /** Extra client settings over the environment's. */
  clientConfig?: S3ClientConfig;
  /** Local folder where {@link BlobStore.putStream} spools a stream while hashing it (default the OS temp folder). */
  spoolDir?: string;
  /** Environment to read (default process.env). */
  env?: NodeJS.ProcessEnv;
}

/**
 * Client settings from the environment: endpoint (`AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`),
 * path-style addressing (`MEDMASK_S3_PATH_STYLE`, default on with a custom endpoint), region
 * (`AWS_REGION`, `AWS_DEFAULT_REGION`; "us-east-1" when a custom endpoint has none, as MinIO and
 * Ceph accept any). Credentials are left to the SDK's default provider chain.
 */
export function s3ClientConfigFromEnv(env: NodeJS.ProcessEnv = process.env): S3ClientConfig {
  const endpoint = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
  const ps = env.MEDMASK_S3_PATH_STYLE?.trim().toLowerCase();
  if (ps && !['1', 'true', 'yes', 'on', '0', 'false', 'no', 'off'].includes(ps)) {
    throw new MedmaskError('USAGE', `MEDMASK_S3_PATH_STYLE is "${env.MEDMASK_S3_PATH_STYLE}", expected true or false`, { hint: 'true for MinIO / Ceph RGW without bucket DNS names, false for virtual-hosted buckets (AWS)' });
  }
  const forcePathStyle = ps ? ['1', 'true', 'yes', 'on'].includes(ps) : Boolean(endpoint);
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION || (endpoint ? 'us-east-1' : undefined);
  // Keys in the given environment are used as given; otherwise the SDK's provider chain (which
  // reads process.env, profiles and roles) finds them.
  const credentials = env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
    ? { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}) }
    : undefined;
  return {
    ...(credentials ? { credentials } : {}),
    ...(endpoint ? { endpoint } : {}),
    ...(region ? { region } : {}),
    forcePathStyle,
    // Content-MD5 (below) is verified by AWS S3, MinIO and Ceph RGW alike; the SDK's default
    // streaming CRC32 trailers are not understood by every S3-compatible service.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 5,
  };
}

interface SdkError {
  name?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

const isNotFound = (e: unknown) => {
  const x = e as SdkError;
  return x?.name === 'NoSuchKey' || x?.name === 'NotFound' || (x?.$metadata?.httpStatusCode === 404 && x?.name !== 'NoSuchBucket');
};

/**
 * Content-addressed blobs in an S3 bucket.
 * @example
 * const blobs = new S3BlobStore(parseS3Url('s3://medmask-blobs/site-a'));
 * const { hash } = await blobs.put(new TextEncoder().encode('hello'));
 */
export class S3BlobStore implements BlobStore {
  readonly bucket: string;
  readonly prefix: string;
  readonly description: string;
  readonly client: S3Client;
  private readonly spoolDir: string;
  private readonly ownsClient: boolean;

  constructor(loc: S3Location, opts: S3BlobStoreOptions = {}) {
    this.bucket = loc.bucket;
    this.prefix = loc.prefix;
    this.description = `s3://${loc.bucket}${loc.prefix ? `/${loc.prefix}` : ''}`;
    this.ownsClient = !opts.client;
    this.client = opts.client ?? new S3Client({ ...s3ClientConfigFromEnv(opts.env), ...opts.clientConfig });
    this.spoolDir = opts.spoolDir ?? join(tmpdir(), 'medmask-s3-spool');
  }

  private key(name: string): string {
    return this.prefix ? `${this.prefix}/${name}` : name;
  }

  /** The object key of a blob (validated hash). */
  keyOf(hash: string): string {
    checkHash(hash);
    return this.key(`${hash.slice(0, 2)}/${hash.slice(2, 4)}/${hash}`);
  }

  /** An SDK failure as a coded error naming the store and what to check. */
  private fail(op: string, e: unknown): never {
    if (e instanceof MedmaskError) throw e;
    const x = e as SdkError;
    const status = x?.$metadata?.httpStatusCode;
    const what = `${x?.name ?? 'Error'}${status ? ` (HTTP ${status})` : ''}: ${x?.message ?? String(e)}`;
    const hint = x?.name === 'NoSuchBucket'
      ? `create the bucket "${this.bucket}" first (it is never created by medmask)`
      : status === 403 || x?.name === 'AccessDenied' || x?.name === 'InvalidAccessKeyId' || x?.name === 'SignatureDoesNotMatch'
        ? 'check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the role) and the bucket policy: medmask needs s3:GetObject, s3:PutObject, s3:DeleteObject and s3:ListBucket'
        : 'check AWS_ENDPOINT_URL, AWS_REGION, the network, and MEDMASK_S3_PATH_STYLE for MinIO / Ceph RGW';
    throw new MedmaskError('ENVIRONMENT', `blob store ${this.description}: ${op} failed: ${what}`, { cause: e, hint });
  }

  private async send<T>(op: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      return this.fail(op, e);
    }
  }

  private missing(hash: string): MedmaskError {
    return new MedmaskError('NOT_FOUND', `blob ${hash} is missing from the blob store ${this.description}`, { hint: 'the bucket or prefix may have been changed, or the object deleted by a lifecycle rule' });
  }

  private corrupt(hash: string, got: string): MedmaskError {
    return new MedmaskError('CORRUPT_FILE', `blob ${hash} in ${this.description} holds other bytes (their SHA-256 is ${got})`, { hint: 'the object was changed outside medmask; restore it from a backup or a bucket version' });
  }

  /**
   * True when the blob is stored. An object stored more than an hour ago is copied onto itself
   * (server-side, no bytes through this process) to refresh its time: the same bytes stored again
   * must not be taken by the garbage collector as old and unreferenced.
   */
  private async storedRefreshed(hash: string): Promise<boolean> {
    const key = this.keyOf(hash);
    let modified: Date | undefined;
    try {
      modified = (await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }))).LastModified;
    } catch (e) {
      if (isNotFound(e)) return false;
      return this.fail(`head ${hash}`, e);
    }
    if (modified && Date.now() - modified.getTime() > 3600_000) {
      await this.send(`refresh ${hash}`, () => this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: key, CopySource: `${this.bucket}/${encodeURIComponent(key).replace(/%2F/g, '/')}`, MetadataDirective: 'REPLACE', ContentType: 'application/octet-stream' })));
    }
    return true;
  }

  async put(bytes: Uint8Array): Promise<BlobRef> {
    const hash = sha256(bytes);
    if (await this.storedRefreshed(hash)) return { hash, size: bytes.byteLength };
    const md5 = createHash('md5').update(bytes).digest('base64');
    await this.send(`put ${hash}`, () => this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.keyOf(hash), Body: bytes, ContentLength: bytes.byteLength, ContentMD5: md5, ContentType: 'application/octet-stream' })));
    return { hash, size: bytes.byteLength };
  }

  async putStream(stream: Readable, opts: PutStreamOptions = {}): Promise<BlobRef> {
    // The key is the hash, known only at the end: spool to a local file while hashing, then one
    // PutObject with a known length (atomic: the object appears whole or not at all).
    await mkdir(this.spoolDir, { recursive: true });
    const tmp = join(this.spoolDir, `${process.pid}-${randomBytes(8).toString('hex')}`);
    try {
      const { sha256: hash, md5, size } = await spoolToFile(stream, tmp, { ...opts, md5: true });
      if (!(await this.storedRefreshed(hash))) {
        await this.send(`put ${hash}`, () => this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.keyOf(hash), Body: createReadStream(tmp), ContentLength: size, ContentMD5: md5, ContentType: 'application/octet-stream' })));
      }
      return { hash, size };
    } finally {
      await rm(tmp, { force: true });
    }
  }

  async get(hash: string): Promise<Buffer> {
    const key = this.keyOf(hash);
    let bytes: Uint8Array;
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      bytes = await r.Body!.transformToByteArray();
    } catch (e) {
      if (isNotFound(e)) throw this.missing(hash);
      return this.fail(`get ${hash}`, e);
    }
    const got = sha256(bytes);
    if (got !== hash) throw this.corrupt(hash, got);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  async stream(hash: string): Promise<Readable> {
    const key = this.keyOf(hash);
    let body: Readable;
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      body = r.Body as Readable;
    } catch (e) {
      if (isNotFound(e)) throw this.missing(hash);
      return this.fail(`get ${hash}`, e);
    }
    // Hash while streaming; a mismatch fails the stream at its end (the client sees a broken
    // transfer, never a silently wrong file).
    const h = createHash('sha256');
    const corrupt = (got: string) => this.corrupt(hash, got);
    const check = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        h.update(chunk);
        cb(null, chunk);
      },
      flush(cb) {
        const got = h.digest('hex');
        cb(got === hash ? null : corrupt(got));
      },
    });
    body.on('error', (e) => check.destroy(e));
    return body.pipe(check);
  }

  async has(hash: string): Promise<boolean> {
    const key = this.keyOf(hash);
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      return this.fail(`head ${hash}`, e);
    }
  }

  async *entries(): AsyncIterable<BlobEntry> {
    const base = this.prefix ? `${this.prefix}/` : '';
    const pages = paginateListObjectsV2({ client: this.client, pageSize: 1000 }, { Bucket: this.bucket, Prefix: base });
    try {
      for await (const page of pages) {
        for (const o of page.Contents ?? []) {
          const rest = o.Key?.slice(base.length) ?? '';
          const m = /^([0-9a-f]{2})\/([0-9a-f]{2})\/([0-9a-f]{64})$/.exec(rest);
          if (!m || m[3]!.slice(0, 2) !== m[1] || m[3]!.slice(2, 4) !== m[2]) continue;
          yield { hash: m[3]!, size: o.Size ?? 0, modified: o.LastModified ?? new Date(0) };
        }
      }
    } catch (e) {
      this.fail('list', e);
    }
  }

  async *list(): AsyncIterable<string> {
    for await (const e of this.entries()) yield e.hash;
  }

  async delete(hash: string): Promise<void> {
    const key = this.keyOf(hash);
    await this.send(`delete ${hash}`, () => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key })));
  }

  async cleanup(): Promise<number> {
    // Nothing half-written can exist in the bucket (PutObject is atomic); only local spool files
    // of processes that are gone.
    return removeDeadSpool(this.spoolDir);
  }

  async readMarker(): Promise<string | null> {
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(MARKER_NAME) }));
      return await r.Body!.transformToString('utf8');
    } catch (e) {
      if (isNotFound(e)) return null;
      return this.fail('read the identity marker', e);
    }
  }

  async writeMarker(text: string): Promise<void> {
    const body = Buffer.from(text, 'utf8');
    await this.send('write the identity marker', () => this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.key(MARKER_NAME), Body: body, ContentLength: body.length, ContentMD5: createHash('md5').update(body).digest('base64'), ContentType: 'application/json' })));
  }

  /** Check that the bucket answers (ENVIRONMENT error naming the cause otherwise). */
  async ping(): Promise<void> {
    await this.send('list', () => this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix ? `${this.prefix}/` : '', MaxKeys: 1 })));
  }

  /** Release the client's connections (only a client this store made). */
  close(): void {
    if (this.ownsClient) this.client.destroy();
  }
}
